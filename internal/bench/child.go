package bench

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/relay"
)

// The bench's relay child processes.
const (
	benchCmd = "bench"
	// benchGrantRelayCmd is the hidden 'authrelay bench grant-relay': the
	// relay of scenario (c), which grants every login. It is not listed in
	// any usage text, and runs only on a directory that bench created (see
	// runBenchGrantRelay).
	benchGrantRelayCmd = "grant-relay"
	// benchChildEnv is set in the environment of every relay child. The
	// authrelay binary ignores it; a test binary, which os.Executable
	// names under 'go test', runs the command line as authrelay would
	// when it is set (see TestMain in bench_test.go).
	benchChildEnv = "AUTHRELAY_BENCH_CHILD"
	// benchTokenEnv carries the token that benchTokenFile in the
	// directory must hold for grant-relay to run.
	benchTokenEnv  = "AUTHRELAY_BENCH_TOKEN"
	benchTokenFile = "bench-token"
)

// benchServer is a nats-server running in this process from a config file,
// on 127.0.0.1.
type benchServer struct {
	conf string
	port int
	ns   *server.Server
}

// startBenchServer starts nats-server from conf on 127.0.0.1:port (0: a
// random port).
func startBenchServer(conf string, port int) (*benchServer, error) {
	s := &benchServer{conf: conf, port: port}
	if err := s.start(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *benchServer) start() error {
	opts, err := server.ProcessConfigFile(s.conf)
	if err != nil {
		return fmt.Errorf("bench: load %s: %w", s.conf, err)
	}
	opts.Host = "127.0.0.1"
	opts.Port = s.port
	if s.port == 0 {
		opts.Port = server.RANDOM_PORT
	}
	opts.NoLog, opts.NoSigs = true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("bench: start nats-server: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return fmt.Errorf("bench: start nats-server: not ready on 127.0.0.1:%d within 10s", s.port)
	}
	s.ns = ns
	s.port = ns.Addr().(*net.TCPAddr).Port
	return nil
}

func (s *benchServer) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.port) }

// stop shuts the server down; it may be called more than once.
func (s *benchServer) stop() {
	if s.ns != nil {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
		s.ns = nil
	}
}

// restart shuts the server down and starts it again, from the same config
// on the same port, as an operator's restart would.
func (s *benchServer) restart() error {
	s.stop()
	return s.start()
}

// relayProc is a relay running in a child process.
type relayProc struct {
	name    string
	cmd     *exec.Cmd
	log     *childLog
	exited  chan struct{} // closed once the process has exited
	err     error         // Wait's result, once exited
	once    sync.Once
	stopErr error
}

// startRelay starts os.Executable() with args as a relay child.
func (b *bench) startRelay(ctx context.Context, args ...string) (*relayProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("bench: find this program to run the relay: %w", err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), benchChildEnv+"=1", benchTokenEnv+"="+b.token)
	cmd.Stdin = nil
	cmd.Stdout = io.Discard
	name := args[:1] // serve
	if args[0] == benchCmd {
		name = args[:2] // bench grant-relay
	}
	p := &relayProc{name: "authrelay " + strings.Join(name, " "), cmd: cmd,
		log: &childLog{}, exited: make(chan struct{})}
	cmd.Stderr = p.log
	cmd.SysProcAttr = childSysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start %s: %w", p.name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

func (p *relayProc) pid() int { return p.cmd.Process.Pid }

// awaitReady waits until the relay answers a login.
func (p *relayProc) awaitReady(ctx context.Context, url, name, password string) error {
	deadline := time.Now().Add(benchRelayReady)
	for {
		nc, err := nats.Connect(url, nats.UserInfo(name, password), nats.Timeout(benchConnectTimeout), nats.NoReconnect())
		if err == nil {
			nc.Close()
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("bench: %s exited before it answered a login (%v):\n%s", p.name, p.err, p.log.tail())
		default:
		}
		if ctx.Err() != nil {
			return fmt.Errorf("bench: %w", ctx.Err())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: %s answered no login within %v (last: %v):\n%s", p.name, benchRelayReady, err, p.log.tail())
		}
		sleepCtx(ctx, 100*time.Millisecond)
	}
}

// stop ends the relay with SIGTERM, as an operator would, and waits for it
// to drain and exit; it kills the relay if it does not exit in time. It
// returns an error if the relay did not exit cleanly. It may be called more
// than once.
func (p *relayProc) stop() error {
	p.once.Do(func() {
		select {
		case <-p.exited:
			p.stopErr = fmt.Errorf("bench: %s exited early (%v):\n%s", p.name, p.err, p.log.tail())
			return
		default:
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
			if p.err != nil {
				p.stopErr = fmt.Errorf("bench: %s did not exit cleanly on SIGTERM (%v):\n%s", p.name, p.err, p.log.tail())
			}
		case <-time.After(20 * time.Second):
			p.cmd.Process.Kill()
			<-p.exited
			p.stopErr = fmt.Errorf("bench: %s did not exit within 20s of SIGTERM; killed:\n%s", p.name, p.log.tail())
		}
	})
	return p.stopErr
}

// childLog takes a relay child's stderr (slog text lines), counts the lines
// the report mentions and keeps the last few for error messages.
type childLog struct {
	mu      sync.Mutex
	partial []byte
	last    []string
	c       childLogCounts
}

// childLogCounts are counts of a relay child's log lines. Where the relay
// logs a running total (dropped_total=N) rather than a line per event, the
// count is the highest total logged: a lower bound when the relay
// rate-limits the warning.
type childLogCounts struct {
	warnings  int64 // WARN or ERROR
	dropped   int64 // requests dropped unanswered (queue full)
	shed      int64 // logins denied as overloaded
	abandoned int64 // decisions abandoned past the deadline
	// reconnected is when the relay last logged that it reconnected to
	// the server.
	reconnected time.Time
}

// childLogTotal matches a running total in a relay log line.
var childLogTotal = regexp.MustCompile(`\b(dropped|shed)_total=(\d+)`)

const childLogTail = 20

func (l *childLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.line(string(l.partial[:i]))
		l.partial = l.partial[i+1:]
	}
	if len(l.partial) > 64<<10 {
		l.line(string(l.partial))
		l.partial = nil
	}
	return len(p), nil
}

func (l *childLog) line(s string) {
	if strings.Contains(s, "level=WARN") || strings.Contains(s, "level=ERROR") {
		l.c.warnings++
	}
	totals := map[string]int64{}
	for _, m := range childLogTotal.FindAllStringSubmatch(s, -1) {
		totals[m[1]], _ = strconv.ParseInt(m[2], 10, 64)
	}
	switch {
	case totals["dropped"] > 0:
		l.c.dropped = max(l.c.dropped, totals["dropped"])
	case strings.Contains(s, "dropping auth request"):
		l.c.dropped++
	}
	switch {
	case totals["shed"] > 0:
		l.c.shed = max(l.c.shed, totals["shed"])
	case strings.Contains(s, "overloaded"):
		l.c.shed++
	}
	if strings.Contains(s, "abandoned") {
		l.c.abandoned++
	}
	if strings.Contains(s, "reconnected to nats") {
		l.c.reconnected = time.Now()
	}
	if len(l.last) == childLogTail {
		l.last = append(l.last[:0], l.last[1:]...)
	}
	l.last = append(l.last, s)
}

func (l *childLog) counts() childLogCounts {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.c
}

// tail returns the last lines, indented.
func (l *childLog) tail() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := append([]string(nil), l.last...)
	if len(l.partial) > 0 {
		lines = append(lines, string(l.partial))
	}
	if len(lines) == 0 {
		return "  (no output)"
	}
	return "  " + strings.Join(lines, "\n  ")
}

// runBenchGrantRelay runs the relay of scenario (c): the relay's responder,
// with the same xkey and signing as serve, but with grantUsers in place of
// the store, until SIGINT or SIGTERM. It refuses to run unless the
// directory holds the token bench gave it in its environment, and the
// server is on a loopback address: it grants any login, so it must never
// answer for a real deployment.
func (m *Main) runBenchGrantRelay(ctx context.Context, args []string) error {
	fs := m.newFlagSet("bench "+benchGrantRelayCmd, "\nUsage: (internal to 'authrelay bench')\n")
	dir := fs.String("dir", "", "the directory bench created")
	natsURL := fs.String("nats", "", "the bench's server")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 || *dir == "" || *natsURL == "" {
		return usagef("bench %s is internal to 'authrelay bench'", benchGrantRelayCmd)
	}
	l := Layout{Dir: *dir}
	want, err := os.ReadFile(l.Path(benchTokenFile))
	token := m.Getenv(benchTokenEnv)
	if err != nil || token == "" || subtle.ConstantTimeCompare(want, []byte(token)) != 1 {
		return fmt.Errorf("bench %s: runs only on a directory that 'authrelay bench' created, as its child", benchGrantRelayCmd)
	}
	u, err := url.Parse(*natsURL)
	if err != nil {
		return usagef("--nats %q: %v", *natsURL, err)
	}
	if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("bench %s: --nats %q: only a server on a loopback address", benchGrantRelayCmd, *natsURL)
	}
	secrets, err := l.loadSecrets()
	if err != nil {
		return err
	}
	issuer, err := accounts.NewIssuer(secrets.IssuerSeed, nil)
	if err != nil {
		return fmt.Errorf("bench %s: %w", benchGrantRelayCmd, err)
	}
	xkey, err := accounts.NewXKey(secrets.XKeySeed)
	if err != nil {
		return fmt.Errorf("bench %s: %w", benchGrantRelayCmd, err)
	}
	logger, err := newLogger(m.Stderr, "warn", "text", new(slog.LevelVar))
	if err != nil {
		return err
	}
	// As serve configures the relay, with its defaults, less the store,
	// the lockout guard and the audit trail.
	r, err := relay.New(relay.Config{
		URL:              *natsURL,
		User:             secrets.RelayUser,
		Password:         secrets.RelayPassword,
		Issuer:           issuer,
		XKey:             xkey,
		Users:            grantUsers{},
		ReservedAccounts: []string{authAccount, systemAccount},
		SessionTTL:       time.Hour,
		Logger:           logger,
		Now:              m.Now,
	})
	if err != nil {
		return fmt.Errorf("bench %s: %w", benchGrantRelayCmd, err)
	}
	if err := r.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("bench %s: %w", benchGrantRelayCmd, err)
	}
	return nil
}

// grantUsers is the decision of scenario (c): every name and password is
// granted at once, as benchUser(name) — the account and permissions of the
// users of (d) — without a store or a password hash. It exists only for
// bench's grant relay; serve never uses it.
type grantUsers struct{}

func (grantUsers) Authenticate(_ context.Context, name, _ string) (accounts.User, error) {
	return benchUser(name), nil
}

func (grantUsers) RolesNamed(context.Context, []string) ([]accounts.Role, error) {
	return nil, nil
}

// VerifyDummy and Rehash have nothing to do: there is no password hash.
func (grantUsers) VerifyDummy(context.Context, string) error { return nil }
func (grantUsers) Rehash(context.Context, string, string)    {}

var _ relay.Users = grantUsers{}
