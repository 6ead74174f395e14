package bench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/store"
)

// adminUser is the user the admin writes of (d) change: one that no
// client logs in as, so every write is unrelated to the cached users.
const adminUser = "bench-admin"

// freeLoopbackAddr returns a 127.0.0.1 address with a port that was free a
// moment ago, for the relay child's metrics listener.
func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("bench: find a free port: %w", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		return "", fmt.Errorf("bench: find a free port: %w", err)
	}
	return addr, nil
}

// verifications reads authrelay_verifications_total from the relay child's
// /metrics at addr.
func verifications(ctx context.Context, addr string) (int64, error) {
	v, err := readMetric(ctx, addr, "authrelay_verifications_total")
	return int64(v), err
}

// readMetric reads the metric name (one without labels) from the relay
// child's /metrics at addr.
func readMetric(ctx context.Context, addr, name string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return 0, fmt.Errorf("bench: read relay metrics: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("bench: read relay metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("bench: read relay metrics: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return 0, fmt.Errorf("bench: read relay metrics: %s %q: %w", name, v, err)
			}
			return f, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("bench: read relay metrics: %w", err)
	}
	return 0, fmt.Errorf("bench: read relay metrics: no %s", name)
}

// measureVerified runs measure and records the password verifications the
// relay child ran meanwhile, read from its metrics at addr.
func (b *bench) measureVerified(ctx context.Context, child *relayProc, addr string, l connectLoad) (loadResult, error) {
	before, err := verifications(ctx, addr)
	if err != nil {
		return loadResult{}, err
	}
	res := b.measure(ctx, child, l)
	after, err := verifications(ctx, addr)
	if err != nil {
		return loadResult{}, err
	}
	if res.Relay != nil {
		n := after - before
		res.Relay.Verifications = &n
	}
	return res, nil
}

// adminWriter changes adminUser in the store at path perSec times a
// second, through its own handle (as the CLI would, from another process),
// until stop is called. It alternates the user's publish allow, so each
// write is a real change.
type adminWriter struct {
	writes, failures atomic.Int64
	lastErr          atomic.Value // error
	cancel           context.CancelFunc
	done             chan struct{}
}

func startAdminWriter(ctx context.Context, path string, perSec int) (*adminWriter, error) {
	db, err := store.Open(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("bench: admin writer: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &adminWriter{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		defer db.Close()
		tick := time.NewTicker(time.Second / time.Duration(perSec))
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			allow := []string{"bench.admin.a.>"}
			if i%2 == 1 {
				allow = []string{"bench.admin.b.>"}
			}
			err := db.UpdateUser(ctx, adminUser, func(u *accounts.User) error {
				u.Permissions.Pub.Allow = allow
				return nil
			})
			switch {
			case err == nil:
				w.writes.Add(1)
			case ctx.Err() == nil:
				w.failures.Add(1)
				w.lastErr.Store(err)
			}
		}
	}()
	return w, nil
}

// stop ends the writer and waits for it.
func (w *adminWriter) stop() {
	w.cancel()
	<-w.done
}

// runWarmWithWrites is the phase of (d) that repeats the warm reconnects
// while an admin changes an unrelated user b.cfg.AdminWrites times a
// second. With invalidation as precise as the change, it runs as fast as
// the warm phase and verifies no password.
func (b *bench) runWarmWithWrites(ctx context.Context, dir string, child *relayProc, metricsAddr, url string, warm []string, password string, warmRes *Scenario) error {
	title := fmt.Sprintf("authrelay warm, %d admin write/s", b.cfg.AdminWrites)
	b.progress("(d) %s: %d clients for %v, %d users", title, b.cfg.Clients, b.cfg.Duration, len(warm))
	w, err := startAdminWriter(ctx, filepath.Join(dir, databaseFile), b.cfg.AdminWrites)
	if err != nil {
		return err
	}
	res, err := b.measureVerified(ctx, child, metricsAddr, connectLoad{url: url, clients: b.cfg.Clients, duration: b.cfg.Duration,
		creds: cycle(warm, password)})
	w.stop()
	if err != nil {
		return err
	}
	res.ID, res.Name, res.Title = "d", ScenarioShipped+"-warm-writes", title
	res.AdminWrites = w.writes.Load()
	note := fmt.Sprintf("the warm phase again while %d writes changed %s, a user no client is", res.AdminWrites, adminUser)
	if warmRes != nil && warmRes.ConnectsPerSec > 0 {
		note += fmt.Sprintf("; %s the warm phase's connects/s", fmtRatio(res.ConnectsPerSec/warmRes.ConnectsPerSec))
	}
	if res.Relay != nil && res.Relay.Verifications != nil {
		note += fmt.Sprintf("; %d password verifications", *res.Relay.Verifications)
		if warmRes != nil && warmRes.Relay != nil && warmRes.Relay.Verifications != nil {
			note += fmt.Sprintf(" (warm phase: %d)", *warmRes.Relay.Verifications)
		}
	}
	if n := w.failures.Load(); n > 0 {
		note += fmt.Sprintf("; %d writes failed, the last: %v", n, w.lastErr.Load())
	}
	res.Note = note
	b.rep.Scenarios = append(b.rep.Scenarios, res.Scenario)
	return nil
}
