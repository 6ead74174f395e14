package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/internal/loopback"
	"github.com/authrelay/authrelay/internal/testtls"
)

// TestNatsURLOrder: the server URL comes from --nats, else $NATS_URL, else
// the --context's URL, else DIR/nats.conf's listen address, as natscli
// orders them; a context's TLS files are taken unless a flag gives them.
func TestNatsURLOrder(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "", "init", "--dir", dir, "--listen", "127.0.0.1:4999")
	home := t.TempDir()
	ctxDir := filepath.Join(home, ".config", "nats", "context")
	if err := os.MkdirAll(ctxDir, 0o700); err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(home, "ca.pem")
	if err := os.WriteFile(ca, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ctxDir, "prod.json"), []byte(`{"url":"nats://ctx.example:4222","ca":"`+ca+`","user":"ignored"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"HOME": home}
	m := &Main{Getenv: func(k string) string { return env[k] }}
	l := deploy.Layout{Dir: dir}
	cases := []struct {
		name    string
		f       natsFlags
		natsURL string
		want    string
		tls     int
	}{
		{"nats.conf", natsFlags{}, "", "nats://127.0.0.1:4999", 0},
		{"context", natsFlags{context: "prod"}, "", "nats://ctx.example:4222", 1},
		{"NATS_URL over the context", natsFlags{context: "prod"}, "nats://env:4222", "nats://env:4222", 1},
		{"--nats over all", natsFlags{url: "nats://flag:4222", context: "prod"}, "nats://env:4222", "nats://flag:4222", 1},
	}
	for _, c := range cases {
		env["NATS_URL"] = c.natsURL
		url, opts, err := c.f.resolve(m, &l)
		if err != nil || url != c.want || len(opts) != c.tls {
			t.Errorf("%s: %q, %d TLS options, %v; want %q, %d", c.name, url, len(opts), err, c.want, c.tls)
		}
	}
	env["NATS_URL"] = ""
	if _, _, err := (natsFlags{context: "nope"}).resolve(m, &l); err == nil || !strings.Contains(err.Error(), "nats context save nope") {
		t.Errorf("a missing context: %v", err)
	}
	if _, _, err := (natsFlags{context: "../prod"}).resolve(m, &l); err == nil {
		t.Error("a context name with a path was accepted")
	}
	if _, _, err := (natsFlags{tlsCert: ca}).resolve(m, &l); err == nil || !strings.Contains(err.Error(), "--tlskey") {
		t.Errorf("--tlscert without --tlskey: %v", err)
	}
}

// TestReloadOverTLS: a server that takes only TLS clients is reloaded
// with --tlsca; without it the error names the URL and the x509 reason.
func TestReloadOverTLS(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "", "init", "--dir", dir)
	caFile, tlsConf := testtls.Server(t)
	opts, err := server.ProcessConfigFile(filepath.Join(dir, deploy.ServerConf))
	if err != nil {
		t.Fatal(err)
	}
	opts.Host, opts.Port, opts.NoSigs, opts.NoLog = "127.0.0.1", server.RANDOM_PORT, true, true
	opts.TLS, opts.TLSConfig, opts.TLSTimeout = true, tlsConf, 2
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	defer ns.Shutdown()
	url := "tls://" + ns.Addr().String()

	r := run(t, "", "reload", "--dir", dir, "--nats", url)
	if r.code != exitFailure || !strings.Contains(r.stderr, url) || !strings.Contains(r.stderr, "x509") {
		t.Errorf("reload over TLS without --tlsca: exit %d, stderr %q; want the URL and the x509 reason", r.code, r.stderr)
	}
	// The server reloads nats.conf, which has no TLS: the reload itself
	// is refused, with the server's reason — the request went through.
	r = run(t, "", "reload", "--dir", dir, "--nats", url, "--tlsca", caFile)
	if !strings.Contains(r.stdout+r.stderr, "nats-server") || strings.Contains(r.stderr, "x509") {
		t.Errorf("reload over TLS with --tlsca: exit %d, stdout %q, stderr %q; want a server's answer", r.code, r.stdout, r.stderr)
	}
}

// TestInitTLS: init --tls-cert --tls-key writes a tls block a stock
// server runs, so that it takes TLS clients only; reload reaches it with
// --tlsca and names the x509 reason without. Half a pair, or a key that
// does not match, is refused before anything is written.
func TestInitTLS(t *testing.T) {
	caFile, certFile, keyFile := testtls.Files(t)
	if r := run(t, "", "init", "--dir", filepath.Join(t.TempDir(), "d"), "--tls-cert", certFile); r.code != exitUsage || !strings.Contains(r.stderr, "--tls-key") {
		t.Errorf("init --tls-cert alone: exit %d, stderr %q", r.code, r.stderr)
	}
	bad := filepath.Join(t.TempDir(), "d")
	if r := run(t, "", "init", "--dir", bad, "--tls-cert", certFile, "--tls-key", caFile); r.code != exitUsage {
		t.Errorf("init with a key that is not one: exit %d, stderr %q", r.code, r.stderr)
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Errorf("a refused init left %s: %v", bad, err)
	}

	// In both modes: in operator mode the same tls block, and the
	// account push goes over TLS as the reload does.
	for _, c := range []struct {
		mode string
		args []string
		done string
	}{
		{"config", nil, "reloaded nats-server"},
		{"operator", []string{"--operator"}, "pushed the accounts to nats-server"},
	} {
		t.Run(c.mode, func(t *testing.T) {
			dir := t.TempDir()
			mustRun(t, "", append([]string{"init", "--dir", dir, "--listen", loopback.Addr(t), "--tls-cert", certFile, "--tls-key", keyFile}, c.args...)...)
			opts, err := server.ProcessConfigFile(filepath.Join(dir, deploy.ServerConf))
			if err != nil {
				t.Fatalf("nats.conf with TLS: %v", err)
			}
			if opts.TLSConfig == nil {
				t.Fatal("nats.conf has no client TLS")
			}
			opts.NoSigs, opts.NoLog = true, true
			ns, err := server.NewServer(opts)
			if err != nil {
				t.Fatal(err)
			}
			go ns.Start()
			if !ns.ReadyForConnections(10 * time.Second) {
				t.Fatal("server not ready")
			}
			defer ns.Shutdown()
			if r := run(t, "", "reload", "--dir", dir); r.code != exitFailure || !strings.Contains(r.stderr, "x509") {
				t.Errorf("reload of a TLS server without --tlsca: exit %d, stderr %q", r.code, r.stderr)
			}
			if r := mustRun(t, "", "reload", "--dir", dir, "--tlsca", caFile); !strings.Contains(r.stdout, c.done) {
				t.Errorf("reload --tlsca: %q, want %q", r.stdout, c.done)
			}
		})
	}
}

// TestServeSaysWhyItCannotConnect: serve pointed at a port nobody listens
// on keeps retrying and says where and why ("connection refused"), not
// only that it timed out; a password in the URL is not logged.
func TestServeSaysWhyItCannotConnect(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "", "init", "--dir", dir)
	addr := loopback.Addr(t)
	url := "nats://someone:url-secret@" + addr
	var errOut syncBuffer
	m := &Main{Stdin: strings.NewReader(""), Stdout: &errOut, Stderr: &errOut,
		Getenv: func(string) string { return "" }, Now: time.Now, BcryptCost: 4}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, []string{"serve", "--dir", dir, "--nats", url, "--revoke=false"}) }()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(errOut.String(), "connection refused") && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve after cancel: %v", err)
	}
	r := result{stderr: errOut.String()}
	if !strings.Contains(r.stderr, "cannot reach nats") || !strings.Contains(r.stderr, addr) || !strings.Contains(r.stderr, "connection refused") {
		t.Errorf("serve against a closed port: stderr lacks where and why:\n%s", r.stderr)
	}
	if strings.Contains(r.stderr, "url-secret") {
		t.Errorf("serve logged the URL's password:\n%s", r.stderr)
	}
}

// TestURLPasswordsAreNotPrinted: a --nats URL with a password, to a
// server that is not there, is named in the error of every command that
// connects, with the password replaced.
func TestURLPasswordsAreNotPrinted(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "", "init", "--dir", dir)
	mustRun(t, "pw-alice-123\n", "user", "add", "alice", "--dir", dir, "--password-stdin", "--sub", "x")
	addr := loopback.Addr(t)
	url := "nats://someone:url-secret@" + addr
	for _, args := range [][]string{
		{"reload", "--dir", dir, "--nats", url},
		{"sessions", "--dir", dir, "--nats", url},
		{"user", "explain", "alice", "--dir", dir, "--nats", url},
		{"account", "add", "ORDERS", "--dir", dir, "--nats", url},
		{"doctor", "--dir", dir, "--nats", url},
	} {
		r := run(t, "", args...)
		out := r.stdout + r.stderr
		if strings.Contains(out, "url-secret") || !strings.Contains(out, "someone:xxxxx@"+addr) {
			t.Errorf("authrelay %s: output does not name the URL with its password replaced:\n%s", strings.Join(args, " "), out)
		}
	}
}
