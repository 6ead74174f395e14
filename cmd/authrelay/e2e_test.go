package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/authrelay/authrelay/internal/loopback"
	"github.com/nats-io/nats.go"
)

// TestEndToEndRealBinaries walks the README's story with real programs: the
// authrelay binary built from this module, the stock nats-server and the nats
// CLI at the versions pinned in go.mod, talking over loopback TCP.
func TestEndToEndRealBinaries(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs real binaries; skipped with -short")
	}
	bin := buildE2EBinaries(t)
	e := newE2E(t, bin)

	// authrelay init --dir ./data
	r := e.authrelay(t, "", "init", "--dir", e.dir, "--listen", e.addr)
	r.wantCode(t, exitOK)
	e.checkInitFiles(t)

	// nats-server -c ./data/nats.conf: the stock server accepts the config
	// unedited, then runs it.
	r = e.run(t, "", bin.natsServer, "-t", "-c", e.conf)
	r.wantCode(t, 0)
	server := e.start(t, "nats-server", bin.natsServer, "-c", e.conf) // killed at cleanup
	e.waitTCP(t, server)

	// A user for the readiness probe: changes apply on the next connect, so
	// it may be added before the relay runs.
	const probePass = "pr0be-pass"
	e.authrelay(t, probePass+"\n", "user", "add", "e2e-probe", "--dir", e.dir, "--account", "APP",
		"--password-stdin", "--pub", "probe.>").wantCode(t, exitOK)

	// authrelay serve --dir ./data --nats nats://127.0.0.1:4222
	serve := e.start(t, "authrelay serve", bin.authrelay, "serve", "--dir", e.dir, "--nats", e.url)
	serveStopped := false
	stopServe := func(t *testing.T) {
		t.Helper()
		if serveStopped {
			return
		}
		serveStopped = true
		if code := serve.stop(t, syscall.SIGTERM); code != 0 {
			t.Errorf("authrelay serve exited with status %d after SIGTERM, want 0 (a clean drain)", code)
		}
	}
	t.Cleanup(func() { stopServe(t) })
	e.waitFor(t, 20*time.Second, "the relay to answer logins", func() error {
		serve.mustRun(t)
		nc, err := e.connect("e2e-probe", probePass)
		if err != nil {
			return err
		}
		nc.Close()
		return nil
	})

	// printf 's3cret-pass\n' | authrelay user add alice --dir ./data --account APP \
	//     --password-stdin --pub 'orders.>' --sub 'orders.>' --sub '_INBOX.>'
	r = e.authrelay(t, "s3cret-pass\n", "user", "add", "alice", "--dir", e.dir, "--account", "APP",
		"--password-stdin", "--pub", "orders.>", "--sub", "orders.>", "--sub", "_INBOX.>")
	r.wantCode(t, exitOK)
	r.wantOutput(t, "added user alice")

	t.Run("publish allowed", func(t *testing.T) {
		// A subscriber logged in as alice proves the message is delivered.
		nc, err := e.connect("alice", "s3cret-pass")
		if err != nil {
			t.Fatalf("connect as alice: %v", err)
		}
		defer nc.Close()
		sub, err := nc.SubscribeSync("orders.>")
		if err != nil {
			t.Fatalf("subscribe orders.>: %v", err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatalf("flush subscription: %v", err)
		}

		// nats --user alice --password s3cret-pass pub orders.new hi
		r := e.nats(t, "--user", "alice", "--password", "s3cret-pass", "pub", "orders.new", "hi")
		r.wantCode(t, 0)
		r.wantOutput(t, `Published 2 bytes to "orders.new"`)
		t.Logf("nats pub orders.new as alice: exit %d, output %q", r.code, r.output())

		msg, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("alice's subscriber on orders.>: %v", err)
		}
		// authrelay sessions alice --dir ./data: who is connected as alice
		// (her subscriber), asked of the stock server.
		r = e.authrelay(t, "", "sessions", "alice", "--dir", e.dir)
		r.wantCode(t, exitOK)
		r.wantOutput(t, "alice")
		r.wantOutput(t, "APP")
		if msg.Subject != "orders.new" || string(msg.Data) != "hi" {
			t.Errorf("alice's subscriber got %q on %q, want \"hi\" on \"orders.new\"", msg.Data, msg.Subject)
		}
	})

	t.Run("publish outside permissions", func(t *testing.T) {
		// nats --user alice --password s3cret-pass pub billing.x hi
		// natscli flushes after the publish and checks the connection's last
		// error, so it sees the server's asynchronous -ERR and fails.
		r := e.nats(t, "--user", "alice", "--password", "s3cret-pass", "pub", "billing.x", "hi")
		t.Logf("nats pub billing.x as alice: exit %d, output %q", r.code, r.output())
		r.wantFailure(t)
		r.wantOutput(t, `Permissions Violation for Publish to "billing.x"`)
		if strings.Contains(r.output(), "Published") {
			t.Errorf("nats pub billing.x claims it published:\n%s", r)
		}

		// The same with a client library: the violation arrives on the
		// asynchronous error handler, and no subscriber sees the message.
		errs := make(chan error, 10)
		nc, err := e.connect("alice", "s3cret-pass", nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			errs <- err
		}))
		if err != nil {
			t.Fatalf("connect as alice: %v", err)
		}
		defer nc.Close()
		if err := nc.Publish("billing.x", []byte("hi")); err != nil {
			t.Fatalf("publish billing.x: %v", err)
		}
		nc.Flush() // The -ERR arrives before the PONG.
		select {
		case err := <-errs:
			if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), `Permissions Violation for Publish to "billing.x"`) {
				t.Errorf("async error = %v, want a permissions violation for publish to billing.x", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("no async error within 5s after publishing to billing.x as alice")
		}
		// A subscription outside --sub is refused as well.
		if _, err := nc.Subscribe("billing.>", func(*nats.Msg) {}); err != nil {
			t.Fatalf("subscribe billing.>: %v", err)
		}
		nc.Flush()
		select {
		case err := <-errs:
			if !strings.Contains(err.Error(), `Permissions Violation for Subscription to "billing.>"`) {
				t.Errorf("async error = %v, want a permissions violation for subscription to billing.>", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("no async error within 5s after subscribing to billing.> as alice")
		}
	})

	t.Run("a user with only --sub may not publish", func(t *testing.T) {
		// printf 'pw\n' | authrelay user add reader --account APP --password-stdin --sub 'metrics.>'
		// nats --user reader --password pw pub svc.billing.cancel forged
		e.authrelay(t, "reader-pass\n", "user", "add", "reader", "--dir", e.dir, "--account", "APP",
			"--password-stdin", "--sub", "metrics.>").wantCode(t, exitOK)
		r := e.nats(t, "--user", "reader", "--password", "reader-pass", "pub", "svc.billing.cancel", "forged")
		t.Logf("nats pub svc.billing.cancel as reader: exit %d, output %q", r.code, r.output())
		r.wantFailure(t)
		r.wantOutput(t, `Permissions Violation for Publish to "svc.billing.cancel"`)
		// The control: --pub '>' grants it.
		e.authrelay(t, "writer-pass\n", "user", "add", "writer", "--dir", e.dir, "--account", "APP",
			"--password-stdin", "--pub", ">").wantCode(t, exitOK)
		r = e.nats(t, "--user", "writer", "--password", "writer-pass", "pub", "svc.billing.cancel", "real")
		r.wantCode(t, 0)
		r.wantOutput(t, `Published 4 bytes to "svc.billing.cancel"`)
	})

	t.Run("wrong password", func(t *testing.T) {
		// nats --user alice --password wrong pub orders.new hi
		r := e.nats(t, "--user", "alice", "--password", "wrong", "pub", "orders.new", "hi")
		t.Logf("nats pub with a wrong password: exit %d, output %q", r.code, r.output())
		r.wantFailure(t)
		r.wantOutput(t, "Authorization Violation")

		r = e.nats(t, "--user", "nobody", "--password", "s3cret-pass", "pub", "orders.new", "hi")
		r.wantFailure(t)
		r.wantOutput(t, "Authorization Violation")
	})

	t.Run("disable and enable", func(t *testing.T) {
		// authrelay user disable alice: her next connect is refused.
		r := e.authrelay(t, "", "user", "disable", "alice", "--dir", e.dir)
		r.wantCode(t, exitOK)
		r = e.nats(t, "--user", "alice", "--password", "s3cret-pass", "pub", "orders.new", "hi")
		t.Logf("nats pub as disabled alice: exit %d, output %q", r.code, r.output())
		r.wantFailure(t)
		r.wantOutput(t, "Authorization Violation")

		r = e.authrelay(t, "", "user", "enable", "alice", "--dir", e.dir)
		r.wantCode(t, exitOK)
		r = e.nats(t, "--user", "alice", "--password", "s3cret-pass", "pub", "orders.new", "hi")
		r.wantCode(t, 0)
		r.wantOutput(t, `Published 2 bytes to "orders.new"`)
	})

	t.Run("failed admin commands", func(t *testing.T) {
		r := e.authrelay(t, "another-pass\n", "user", "add", "alice", "--dir", e.dir, "--account", "APP",
			"--password-stdin", "--pub", "orders.>")
		r.wantCode(t, exitFailure)
		r.wantOutput(t, `user "alice" already exists`)

		// No --password-stdin, no --generate-password, and standard input
		// is not a terminal (it is /dev/null): a usage error, and no user.
		r = e.authrelay(t, "", "user", "add", "bob", "--dir", e.dir, "--account", "APP", "--pub", "orders.>")
		r.wantCode(t, exitUsage)
		r.wantOutput(t, "--password-stdin")
		r = e.authrelay(t, "", "user", "show", "bob", "--dir", e.dir)
		r.wantCode(t, exitFailure)
		r.wantOutput(t, "not found")

		// The old password still works: the failed add changed nothing.
		r = e.nats(t, "--user", "alice", "--password", "s3cret-pass", "pub", "orders.new", "hi")
		r.wantCode(t, 0)
	})

	t.Run("admin login survives the relay", func(t *testing.T) {
		s := e.secrets(t)
		if s.AdminUser == "" || s.AdminPassword == "" {
			t.Fatalf("secrets.json lacks admin_user or admin_password")
		}
		ping := func() e2eResult {
			t.Helper()
			r := e.nats(t, "--user", s.AdminUser, "--password", s.AdminPassword, "server", "ping", "1")
			r.wantCode(t, 0)
			r.wantOutput(t, "1 replies")
			return r
		}
		ping()

		stopServe(t)
		r := ping()
		t.Logf("nats server ping as %s with the relay stopped: exit %d, output %q", s.AdminUser, r.code, r.output())

		// With no relay the server denies a login after authorization.timeout
		// (2 s). natscli has no connect-timeout flag and keeps nats.go's
		// default of 2 s, measured from before the server's own timer starts:
		// it usually gives up first, with an i/o timeout.
		start := time.Now()
		r = e.nats(t, "--user", "alice", "--password", "s3cret-pass", "pub", "orders.new", "hi")
		t.Logf("nats pub as alice with the relay stopped: exit %d after %v, output %q", r.code, time.Since(start).Round(10*time.Millisecond), r.output())
		r.wantFailure(t)
		if out := r.output(); !strings.Contains(out, "Authorization Violation") && !strings.Contains(out, "i/o timeout") {
			t.Errorf("output lacks \"Authorization Violation\" or \"i/o timeout\":\n%s", r)
		}
		if strings.Contains(r.output(), "Published") {
			t.Errorf("nats pub as alice claims it published with the relay stopped:\n%s", r)
		}

		// A client that waits longer than the server gets the server's verdict.
		start = time.Now()
		nc, err := e.connect("alice", "s3cret-pass")
		t.Logf("nats.go connect as alice with the relay stopped: %v after %v", err, time.Since(start).Round(10*time.Millisecond))
		if err == nil {
			nc.Close()
			t.Fatalf("alice connected with the relay stopped")
		}
		if !errors.Is(err, nats.ErrAuthorization) {
			t.Errorf("connect as alice with the relay stopped: %v, want %v", err, nats.ErrAuthorization)
		}
	})

	// The relay never logs a password or seed, whatever it decided.
	stopServe(t)
	logs := serve.stdout.String() + serve.stderr.String()
	s := e.secrets(t)
	for what, secret := range map[string]string{
		"alice's password": "s3cret-pass", "the probe's password": probePass,
		"issuer_seed": s.IssuerSeed, "xkey_seed": s.XKeySeed, "relay_password": s.RelayPassword,
	} {
		if strings.Contains(logs, secret) {
			t.Errorf("authrelay serve logged %s", what)
		}
	}
}

// e2eSecrets is the part of secrets.json the test reads, by its documented
// JSON keys.
type e2eSecrets struct {
	IssuerSeed    string `json:"issuer_seed"`
	XKeySeed      string `json:"xkey_seed"`
	RelayUser     string `json:"relay_user"`
	RelayPassword string `json:"relay_password"`
	AdminUser     string `json:"admin_user"`
	AdminPassword string `json:"admin_password"`
}

// e2eBinaries are the paths of the programs under test.
type e2eBinaries struct {
	authrelay, natsServer, nats string
}

// buildE2EBinaries builds authrelay, nats-server and the nats CLI from the
// module root into a temporary directory. They are built without -race
// whatever the test binary was built with.
func buildE2EBinaries(t *testing.T) e2eBinaries {
	t.Helper()
	goBin := goCommand(t)
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root %s: %v", root, err)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	// One go build for all three: the packages build in parallel, and the
	// nats-server and nats CLI versions are the ones go.mod pins.
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", dir+string(filepath.Separator),
		"./cmd/authrelay", "github.com/nats-io/nats-server/v2", "github.com/nats-io/natscli/nats")
	cmd.Dir = root
	for _, kv := range os.Environ() {
		// A -race in GOFLAGS would slow the programs down for nothing.
		if v, ok := strings.CutPrefix(kv, "GOFLAGS="); ok {
			kv = "GOFLAGS=" + strings.Join(slices.DeleteFunc(strings.Fields(v), func(f string) bool { return f == "-race" }), " ")
		}
		cmd.Env = append(cmd.Env, kv)
	}
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	t.Logf("built authrelay, nats-server and nats in %v", time.Since(start).Round(time.Millisecond))
	b := e2eBinaries{
		authrelay:  filepath.Join(dir, "authrelay"),
		natsServer: filepath.Join(dir, "nats-server"),
		nats:       filepath.Join(dir, "nats"),
	}
	for _, p := range []string{b.authrelay, b.natsServer, b.nats} {
		if runtime.GOOS == "windows" {
			p += ".exe"
		}
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("go build left no binary: %v", err)
		}
	}
	return b
}

// e2e is one run of the story: a directory, a loopback port, the binaries
// and an environment free of the developer's NATS settings.
type e2e struct {
	bin  e2eBinaries
	dir  string // the authrelay directory
	conf string // dir/nats.conf
	addr string // 127.0.0.1:PORT
	url  string // nats://127.0.0.1:PORT
	env  []string
}

func newE2E(t *testing.T, bin e2eBinaries) *e2e {
	t.Helper()
	tmp := t.TempDir()
	home := filepath.Join(tmp, "home")
	if err := os.MkdirAll(filepath.Join(home, ".config"), 0o700); err != nil {
		t.Fatal(err)
	}
	// No NATS context, NATS_* variable or AUTHRELAY_DIR of the developer
	// leaks into the programs.
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "NATS_") || k == "AUTHRELAY_DIR" || k == "HOME" || k == "XDG_CONFIG_HOME" {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"))
	addr := loopback.Addr(t)
	dir := filepath.Join(tmp, "data")
	return &e2e{
		bin:  bin,
		dir:  dir,
		conf: filepath.Join(dir, "nats.conf"),
		addr: addr,
		url:  "nats://" + addr,
		env:  env,
	}
}

// checkInitFiles checks what init wrote: secrets.json private, nats.conf
// free of seeds and plain passwords.
func (e *e2e) checkInitFiles(t *testing.T) {
	t.Helper()
	path := filepath.Join(e.dir, "secrets.json")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("init wrote no secrets.json: %v", err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("secrets.json has mode %#o, want 0600", perm)
	}
	s := e.secrets(t)
	seedRE := regexp.MustCompile(`\bS[AX][A-Z2-7]{56}\b`)
	if !strings.HasPrefix(s.IssuerSeed, "SA") || !seedRE.MatchString(s.IssuerSeed) {
		t.Errorf("secrets.json issuer_seed is not an account seed (SA…)")
	}
	if !strings.HasPrefix(s.XKeySeed, "SX") || !seedRE.MatchString(s.XKeySeed) {
		t.Errorf("secrets.json xkey_seed is not a curve seed (SX…)")
	}
	for k, v := range map[string]string{"relay_user": s.RelayUser, "relay_password": s.RelayPassword, "admin_user": s.AdminUser, "admin_password": s.AdminPassword} {
		if v == "" {
			t.Errorf("secrets.json has no %s", k)
		}
	}

	b, err := os.ReadFile(e.conf)
	if err != nil {
		t.Fatalf("init wrote no nats.conf: %v", err)
	}
	conf := string(b)
	for n, line := range strings.Split(conf, "\n") {
		for k, secret := range map[string]string{"issuer_seed": s.IssuerSeed, "xkey_seed": s.XKeySeed, "relay_password": s.RelayPassword, "admin_password": s.AdminPassword} {
			if secret != "" && strings.Contains(line, secret) {
				t.Errorf("nats.conf line %d holds the %s from secrets.json", n+1, k)
			}
		}
		if seedRE.MatchString(line) {
			t.Errorf("nats.conf line %d holds an nkeys seed", n+1)
		}
	}
	// Every password in the config is a bcrypt hash.
	pwRE := regexp.MustCompile(`password\s*[:=]\s*"([^"]*)"`)
	var settings int
	for _, line := range strings.Split(conf, "\n") {
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		settings += strings.Count(line, "password")
	}
	hashes := pwRE.FindAllStringSubmatch(conf, -1)
	if len(hashes) < 2 || len(hashes) != settings {
		t.Errorf("nats.conf has %d password settings, %d of them quoted: want the relay's and the admin's, all quoted bcrypt hashes\n%s", settings, len(hashes), conf)
	}
	for _, h := range hashes {
		if !strings.HasPrefix(h[1], "$2a$") {
			t.Errorf("nats.conf password %q… is not a bcrypt hash", h[1][:min(len(h[1]), 4)])
		}
	}
	if !strings.Contains(conf, `listen: "`+e.addr+`"`) {
		t.Errorf("nats.conf does not listen on %s:\n%s", e.addr, conf)
	}
}

// secrets reads secrets.json.
func (e *e2e) secrets(t *testing.T) e2eSecrets {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.dir, "secrets.json"))
	if err != nil {
		t.Fatalf("read secrets.json: %v", err)
	}
	var s e2eSecrets
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("secrets.json: %v", err)
	}
	return s
}

// e2eResult is how a finished command went.
type e2eResult struct {
	cmd            string
	code           int
	stdout, stderr string
}

func (r e2eResult) output() string { return r.stdout + r.stderr }

func (r e2eResult) String() string {
	return fmt.Sprintf("$ %s\nexit status %d\n--- stdout\n%s--- stderr\n%s", r.cmd, r.code, r.stdout, r.stderr)
}

func (r e2eResult) wantCode(t *testing.T, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit status %d, want %d:\n%s", r.code, code, r)
	}
}

func (r e2eResult) wantFailure(t *testing.T) {
	t.Helper()
	if r.code == 0 {
		t.Fatalf("exit status 0, want a failure:\n%s", r)
	}
}

func (r e2eResult) wantOutput(t *testing.T, substr string) {
	t.Helper()
	if !strings.Contains(r.output(), substr) {
		t.Errorf("output lacks %q:\n%s", substr, r)
	}
}

// run runs a program to completion with stdin as its standard input (empty:
// /dev/null, not a terminal), bounded by a minute.
func (e *e2e) run(t *testing.T, stdin, name string, args ...string) e2eResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = e.env
	cmd.WaitDelay = 5 * time.Second
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := e2eResult{
		cmd:    filepath.Base(name) + " " + strings.Join(args, " "),
		stdout: stdout.String(),
		stderr: stderr.String(),
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ctx.Err() == nil:
		r.code = ee.ExitCode()
	default:
		t.Fatalf("%s: %v\n%s", r.cmd, err, r)
	}
	return r
}

// authrelay runs the authrelay binary.
func (e *e2e) authrelay(t *testing.T, stdin string, args ...string) e2eResult {
	t.Helper()
	return e.run(t, stdin, e.bin.authrelay, args...)
}

// nats runs the nats CLI against the test server, with no context.
func (e *e2e) nats(t *testing.T, args ...string) e2eResult {
	t.Helper()
	return e.run(t, "", e.bin.nats, append([]string{"--no-context", "--server", e.url, "--timeout", "5s"}, args...)...)
}

// connect logs in to the test server with nats.go.
func (e *e2e) connect(user, pass string, opts ...nats.Option) (*nats.Conn, error) {
	opts = append([]nats.Option{
		nats.UserInfo(user, pass),
		nats.Name("authrelay-e2e"),
		// Longer than the server's authorization timeout, so a login the
		// relay never answers fails with the server's verdict.
		nats.Timeout(5 * time.Second),
		nats.NoReconnect(),
	}, opts...)
	return nats.Connect(e.url, opts...)
}

// waitFor calls try every 100ms until it returns nil, and fails the test if
// that does not happen within timeout.
func (e *e2e) waitFor(t *testing.T, timeout time.Duration, what string, try func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := try()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s; last error: %v", timeout, what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitTCP waits until the server process accepts TCP connections.
func (e *e2e) waitTCP(t *testing.T, p *e2eProcess) {
	t.Helper()
	e.waitFor(t, 10*time.Second, p.name+" to accept connections on "+e.addr, func() error {
		p.mustRun(t)
		c, err := net.DialTimeout("tcp", e.addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// e2eProcess is a program running in the background.
type e2eProcess struct {
	name           string
	cmd            *exec.Cmd
	stdout, stderr syncBuffer
	done           chan struct{} // closed when the process has exited
}

// start starts a background program. Its output is printed if the test
// fails; it is killed at the end of the test if still running.
func (e *e2e) start(t *testing.T, name, path string, args ...string) *e2eProcess {
	t.Helper()
	p := &e2eProcess{name: name, cmd: exec.Command(path, args...), done: make(chan struct{})}
	p.cmd.Env = e.env
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill(t)
		if t.Failed() {
			t.Logf("%s stdout:\n%s", p.name, p.stdout.String())
			t.Logf("%s stderr:\n%s", p.name, p.stderr.String())
		}
	})
	return p
}

// exited reports whether the process has exited.
func (p *e2eProcess) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// mustRun fails the test if the process has exited.
func (p *e2eProcess) mustRun(t *testing.T) {
	t.Helper()
	if p.exited() {
		t.Fatalf("%s exited early: %v\nstdout:\n%s\nstderr:\n%s", p.name, p.cmd.ProcessState, p.stdout.String(), p.stderr.String())
	}
}

// stop sends sig and returns the exit status, failing the test if the
// process does not exit within 10 s.
func (p *e2eProcess) stop(t *testing.T, sig os.Signal) int {
	t.Helper()
	if !p.exited() {
		if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Errorf("signal %s: %v", p.name, err)
		}
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Errorf("%s did not exit within 10s of %v; killing it", p.name, sig)
		p.cmd.Process.Kill()
		<-p.done
	}
	return p.cmd.ProcessState.ExitCode()
}

// kill kills the process, if it still runs, and waits for it.
func (p *e2eProcess) kill(t *testing.T) {
	t.Helper()
	if !p.exited() {
		p.cmd.Process.Kill()
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Errorf("%s did not exit within 10s of SIGKILL", p.name)
	}
}
