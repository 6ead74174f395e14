package main

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/authrelay/authrelay/deploy"
)

// TestOperatorInitServeEmbedded runs the README's operator story through
// the real program: 'init --operator', 'serve --embedded' on the
// directory, 'user add', and a client with only a username and password
// that lands in APP with its permissions (the server's default_sentinel
// sends it through the relay).
func TestOperatorInitServeEmbedded(t *testing.T) {
	dir := t.TempDir()
	out := mustRun(t, "", "init", "--operator", "--dir", dir).stdout
	if !strings.Contains(out, deploy.ResolverDir+string(os.PathSeparator)) {
		t.Errorf("init --operator output does not name the resolver directory:\n%s", out)
	}
	l := deploy.Layout{Dir: dir}
	if mode, err := l.Mode(); err != nil || mode != deploy.ModeOperator {
		t.Fatalf("mode = %q, %v; want operator", mode, err)
	}
	fi, err := os.Stat(l.Path(deploy.SecretsFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("secrets.json has mode %#o, want 0600", fi.Mode().Perm())
	}
	var secrets map[string]any
	b, err := os.ReadFile(l.Path(deploy.SecretsFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &secrets); err != nil {
		t.Fatal(err)
	}
	if _, ok := secrets["operator"]; !ok {
		t.Errorf("secrets.json has no operator seeds: %v", secrets)
	}
	conf, err := os.ReadFile(l.Path(deploy.ServerConf))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"SO", "SA", "SU", "SX"} {
		// No seed of any kind in the config a server admin reads.
		for _, line := range strings.Split(string(conf), "\n") {
			if strings.Contains(line, ": "+s) {
				t.Errorf("nats.conf holds what looks like a seed: %q", line)
			}
		}
	}
	if _, err := os.Stat(l.Path(deploy.AccountsConf)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("init --operator wrote %s (err %v): accounts are JWTs in operator mode", deploy.AccountsConf, err)
	}

	cheapHashPolicy(t, dir)
	// Added before serve starts: a user changed while serve runs has its
	// connections of before the change kicked, and a connect racing the
	// change is one of them.
	mustRun(t, "s3cret-pass-long\n", "user", "add", "alice", "--dir", dir, "--password-stdin", "--account", "APP", "--pub", "orders.>", "--sub", "orders.>", "--sub", "_INBOX.>")
	s := serveOn(t, dir)

	errs := make(chan error, 4)
	nc, err := s.connect("alice", "s3cret-pass-long", nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	if err != nil {
		t.Fatalf("alice with a username and password only: %v", err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("orders.new")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("orders.new", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("alice publishes and receives orders.new: %v", err)
	}
	if err := nc.Publish("billing.new", []byte("x")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs:
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Errorf("publish to billing.new: %v, want a permissions violation", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("publish to billing.new, outside alice's permissions, was not refused")
	}
	if _, err := s.connect("alice", "wrong-pass-long"); !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("wrong password: %v, want Authorization Violation", err)
	}
}

// TestOperatorInitRefusesCluster: operator mode is single-node for now; a
// cluster flag with --operator is refused and nothing is written.
func TestOperatorInitRefusesCluster(t *testing.T) {
	dir := t.TempDir() + "/d"
	r := run(t, "", "init", "--operator", "--dir", dir, "--cluster-listen", "127.0.0.1:6222", "--routes", "nats://127.0.0.1:6222,nats://127.0.0.1:6223,nats://127.0.0.1:6224")
	if r.code == 0 || !strings.Contains(r.stderr, "--operator") {
		t.Fatalf("init --operator with a cluster: exit %d, stderr %q; want a refusal naming --operator", r.code, r.stderr)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("refused init left %s behind (err %v)", dir, err)
	}
}
