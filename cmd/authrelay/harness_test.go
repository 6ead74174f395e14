package main

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/authrelay/authrelay/deploy"
)

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// result is what one in-process run of authrelay produced.
type result struct {
	code   int
	stdout string
	stderr string
}

// run runs authrelay in-process with stdin and returns its exit code and output.
func run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errOut syncBuffer
	m := &Main{
		Stdin:  strings.NewReader(stdin),
		Stdout: &out,
		Stderr: &errOut,
		Getenv: func(string) string { return "" },
		Now:    time.Now,
		// The race detector makes bcrypt slow enough to trip the server's
		// connect timeouts; the real-binary test covers the default cost.
		BcryptCost: 4,
	}
	code := m.Exit(m.Run(context.Background(), args))
	return result{code: code, stdout: out.String(), stderr: errOut.String()}
}

// mustRun runs authrelay and fails the test unless it exits 0.
func mustRun(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	r := run(t, stdin, args...)
	if r.code != 0 {
		t.Fatalf("authrelay %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// servedDir is an initialised directory with serve --embedded running on it.
type servedDir struct {
	dir string
	url string
	log *syncBuffer
	hup chan os.Signal
	// stop ends serve (as SIGTERM does) and waits for it; idempotent.
	stop func()
}

// reload asks serve to reload the embedded server's config, as SIGHUP
// does, and waits until it has.
func (s *servedDir) reload(t *testing.T) {
	t.Helper()
	before := strings.Count(s.log.String(), "reloaded nats.conf")
	s.hup <- syscall.SIGHUP
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(s.log.String(), "reloaded nats.conf") == before {
		if strings.Contains(s.log.String(), "reload nats.conf failed") || time.Now().After(deadline) {
			t.Fatalf("reload did not happen:\n%s", s.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// serveEmbedded initialises a directory (without the xkey line in nats.conf
// when xkey is false) and runs 'serve --embedded' on it until the test ends.
func serveEmbedded(t *testing.T, xkey bool, extra ...string) *servedDir {
	t.Helper()
	dir := t.TempDir()
	mustRun(t, "", "init", "--dir", dir)
	// The lightest policy authrelay accepts: under the race detector the
	// default argon2id costs hundreds of milliseconds a login, enough to
	// push a loaded CI machine past the server's 2 s auth timeout. The
	// real-binary tests keep the default.
	cheapHashPolicy(t, dir)
	if !xkey {
		path := deploy.Layout{Dir: dir}.Path(deploy.ServerConf)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var kept []string
		for _, line := range strings.Split(string(b), "\n") {
			if !strings.HasPrefix(strings.TrimSpace(line), "xkey:") {
				kept = append(kept, line)
			}
		}
		if err := os.WriteFile(path, []byte(strings.Join(kept, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return serveOn(t, dir, extra...)
}

// serveOn runs 'serve --embedded' on an initialised directory until the
// test ends or stop is called.
func serveOn(t *testing.T, dir string, extra ...string) *servedDir {
	t.Helper()
	return serveStart(t, dir, extra...)()
}

// serveStart starts 'serve --embedded' on an initialised directory and
// returns at once, with the function that waits, on the test's goroutine,
// until it is ready: several nodes of a cluster, each waiting for the
// others' servers, start side by side.
func serveStart(t *testing.T, dir string, extra ...string) (wait func() *servedDir) {
	t.Helper()
	log := &syncBuffer{}
	ready := make(chan string, 1)
	hup := make(chan os.Signal, 1)
	m := &Main{
		Hup:    hup,
		Stdin:  strings.NewReader(""),
		Stdout: log,
		Stderr: log,
		Getenv: func(string) string { return "" },
		Now:    time.Now,
		Ready:  func(url string) { ready <- url },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	args := append([]string{"serve", "--embedded", "--dir", dir, "--listen", "127.0.0.1:0", "--log-level", "debug"}, extra...)
	go func() { done <- m.Run(ctx, args) }()
	s := &servedDir{dir: dir, log: log, hup: hup}
	return func() *servedDir {
		t.Helper()
		return s.waitReady(t, ready, done, cancel)
	}
}

// waitReady waits until the serve that s runs is ready, or fails the test.
func (s *servedDir) waitReady(t *testing.T, ready chan string, done chan error, cancel context.CancelFunc) *servedDir {
	t.Helper()
	log := s.log
	select {
	case s.url = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("serve exited before it was ready: %v\n%s", err, log.String())
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("serve not ready after 30s\n%s", log.String())
	}
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("serve returned %v after SIGTERM-equivalent cancel", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("serve did not stop within 30s of cancel")
			}
		})
	}
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("serve log:\n%s", log.String())
		}
	})
	return s
}

// connect logs in to s's server as user with password.
func (s *servedDir) connect(user, password string, opts ...nats.Option) (*nats.Conn, error) {
	opts = append([]nats.Option{nats.UserInfo(user, password), nats.Timeout(5 * time.Second), nats.NoReconnect()}, opts...)
	return nats.Connect(s.url, opts...)
}

// addUser adds a user through the CLI code path.
func (s *servedDir) addUser(t *testing.T, name, password string, args ...string) {
	t.Helper()
	mustRun(t, password+"\n", append([]string{"user", "add", name, "--dir", s.dir, "--password-stdin"}, args...)...)
}

// envs are the modes every integration test runs in.
var envs = []struct {
	name string
	xkey bool
}{
	{"xkey", true},
	{"no-xkey", false},
}

// cheapHashPolicy stores in dir's database the lightest argon2id policy the
// hash code takes (8 MiB, one pass): under the race detector the default,
// and even OWASP's minimum that 'hash set' enforces, cost hundreds of
// milliseconds a login, enough to push a loaded CI machine past the
// server's 2 s auth timeout. It writes the setting row directly, as only a
// test may; the real-binary tests keep the default.
func cheapHashPolicy(t *testing.T, dir string) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+deploy.Layout{Dir: dir}.Path(deploy.DatabaseFile)+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`INSERT INTO settings (key, value, updated) VALUES ('argon2id', ?, '')
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
		`{"memory_kib":8192,"time":1,"threads":1,"salt_len":16,"key_len":32}`); err != nil {
		t.Fatal(err)
	}
}
