package main

import (
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/authrelay/authrelay/deploy"
)

// TestOperatorEndToEndRealBinaries runs the README's operator-mode story
// with the real binaries built from go.mod: 'authrelay init --operator',
// the stock nats-server checking (-t) and running the nats.conf unedited,
// 'authrelay serve', and the nats CLI logging in with a username and
// password only (the default_sentinel sends it through the relay); the
// system admin's nats CLI context, saved by init, reaches the system
// account with the admin's credentials file.
func TestOperatorEndToEndRealBinaries(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs real binaries; skipped with -short")
	}
	bin := buildE2EBinaries(t)
	e := newE2E(t, bin)

	// authrelay init --operator --dir ./data
	r := e.authrelay(t, "", "init", "--operator", "--dir", e.dir, "--listen", e.addr, "--nats-context", "op-admin")
	r.wantCode(t, exitOK)
	fi, err := os.Stat(deploy.Layout{Dir: e.dir}.Path(deploy.SecretsFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("secrets.json has mode %#o, want 0600", fi.Mode().Perm())
	}

	// nats-server -t, then -c: unedited.
	e.run(t, "", bin.natsServer, "-t", "-c", e.conf).wantCode(t, 0)
	server := e.start(t, "nats-server", bin.natsServer, "-c", e.conf)
	e.waitTCP(t, server)

	// Users added before the relay runs apply on its first login.
	r = e.authrelay(t, "s3cret-pass\n", "user", "add", "alice", "--dir", e.dir, "--account", "APP",
		"--password-stdin", "--pub", "orders.>", "--sub", "orders.>", "--sub", "_INBOX.>")
	r.wantCode(t, exitOK)

	// authrelay serve --dir ./data
	serve := e.start(t, "authrelay serve", bin.authrelay, "serve", "--dir", e.dir)
	t.Cleanup(func() {
		if code := serve.stop(t, syscall.SIGTERM); code != 0 {
			t.Errorf("authrelay serve exited with status %d after SIGTERM, want 0", code)
		}
	})
	e.waitFor(t, 20*time.Second, "the relay to answer logins", func() error {
		serve.mustRun(t)
		nc, err := e.connect("alice", "s3cret-pass")
		if err != nil {
			return err
		}
		nc.Close()
		return nil
	})

	// nats --user alice --password s3cret-pass pub orders.new hi
	r = e.nats(t, "--user", "alice", "--password", "s3cret-pass", "pub", "orders.new", "hi")
	r.wantCode(t, 0)
	r.wantOutput(t, `Published 2 bytes to "orders.new"`)

	// Outside alice's permissions, and a wrong password.
	r = e.nats(t, "--user", "alice", "--password", "s3cret-pass", "pub", "billing.new", "hi")
	r.wantFailure(t)
	r.wantOutput(t, "Permissions Violation")
	r = e.nats(t, "--user", "alice", "--password", "wrong-pass", "pub", "orders.new", "hi")
	r.wantFailure(t)
	r.wantOutput(t, "Authorization Violation")

	// nats --context op-admin server list: the system admin, with the
	// credentials file init saved beside secrets.json.
	r = e.run(t, "", bin.nats, "--context", "op-admin", "--timeout", "5s", "server", "list")
	r.wantCode(t, 0)
	r.wantOutput(t, "Server Overview")
}
