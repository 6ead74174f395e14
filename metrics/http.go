package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/authrelay/authrelay/store"
)

// Check is one condition of readiness.
type Check struct {
	// Name is what /readyz names when the check fails.
	Name string
	// Check returns nil when the condition holds, else why not.
	Check func(ctx context.Context) error
}

// readyTimeout bounds each readiness check.
const readyTimeout = 2 * time.Second

// Mux serves /metrics (m), /healthz (200 "ok" while the process runs) and
// /readyz: 200 "ok" when every check holds, else 503 "not ready: NAME:
// ERROR" for the first that fails, in the order given. Each check gets
// two seconds.
func Mux(m *Metrics, checks []Check) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		for _, c := range checks {
			ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
			err := c.Check(ctx)
			cancel()
			if err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprintf(w, "not ready: %s: %v\n", c.Name, err)
				return
			}
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// Serve listens on addr and serves h until stop is called; stop shuts the
// server down gracefully (within five seconds) and waits for it. It logs
// "http listening" with the address listened on (addr's port 0 picks a
// free one). The error is net.Listen's, which names addr.
func Serve(addr string, h http.Handler, logger *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("http server failed", "err", err)
		}
	}()
	logger.Info("http listening", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			logger.Warn("http server shutdown", "err", err)
		}
		<-done
	}, nil
}

// ReadyChecks are a relay's readiness conditions, in the order /readyz
// tries them: the relay answers on a live NATS connection, the database
// answers and its path still names the file the relay has open, the audit
// trail is being written, failed logins are being recorded, a write
// transaction commits (probed at most every few seconds, so that a full
// disk or a read-only database shows without traffic), this host's clock
// is within the relay's clock skew tolerance of every server heard from,
// and the server accepts the relay's keys. The last two pass again by
// themselves when the fault ends.
func ReadyChecks(r Relay, db *store.DB, audit *store.AuditWriter, guard *store.Lockouts) []Check {
	writable := store.NewWriteCheck(db, store.DefaultWriteProbeEvery)
	return []Check{
		{"nats", func(context.Context) error {
			if !r.Connected() {
				return errors.New("relay not connected to nats or not subscribed")
			}
			return nil
		}},
		{"database", db.Ping},
		// The path no longer names the file this relay serves: admin
		// changes go to another file (or none) and the next start would
		// serve something else.
		{"database file", func(context.Context) error { return db.CheckFile() }},
		{"audit", func(context.Context) error { return audit.Health() }},
		{"lockouts", guard.Health},
		// After the audit trail and the lockouts, which name what a
		// failed write lost; this one sees the fault without any traffic.
		{"database writable", writable.Health},
		{"clock", func(context.Context) error {
			if f := r.Health().ClockFault(); f != "" {
				return errors.New(f + "; sync the clocks (NTP)")
			}
			return nil
		}},
		{"relay keys", func(context.Context) error {
			if f := r.Health().KeyFault; f != "" {
				return errors.New(f + "; the relay is out of the queue group until the server accepts its keys")
			}
			return nil
		}},
	}
}
