package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
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

// startRelay starts exe with args as a relay child, named name in errors,
// with env added to this process's environment.
func (b *bench) startRelay(ctx context.Context, exe, name string, env []string, args ...string) (*relayProc, error) {
	cmd := exec.Command(exe, args...)
	cmd.Env = append(append(os.Environ(), ChildEnv+"=1"), env...)
	cmd.Stdin = nil
	cmd.Stdout = io.Discard
	p := &relayProc{name: name, cmd: cmd, log: &childLog{}, exited: make(chan struct{})}
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

// runAuthrelay runs the authrelay executable with args to completion, such
// as 'authrelay init', and returns an error with its output if it fails.
func (b *bench) runAuthrelay(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, b.cfg.Authrelay, args...)
	cmd.Env = append(os.Environ(), ChildEnv+"=1")
	out := &childLog{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = childSysProcAttr()
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("bench: authrelay %s: %w:\n%s", args[0], err, out.tail())
	}
	return nil
}

func (p *relayProc) pid() int { return p.cmd.Process.Pid }

// awaitReady waits until the relay answers a login.
func (p *relayProc) awaitReady(ctx context.Context, url, name, password string) error {
	deadline := time.Now().Add(relayReady)
	for {
		nc, err := nats.Connect(url, nats.UserInfo(name, password), nats.Timeout(connectTimeout), nats.NoReconnect())
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
			return fmt.Errorf("bench: %s answered no login within %v (last: %v):\n%s", p.name, relayReady, err, p.log.tail())
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
	// caughtUp is set once a cluster relay has said that it caught up
	// with the cluster log.
	caughtUp bool
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
	if strings.Contains(s, "caught up with the cluster log") {
		l.c.caughtUp = true
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
