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

	e.operatorStory(t, bin)

	// nats --context op-admin server list: the system admin, with the
	// credentials file init saved beside secrets.json.
	r = e.run(t, "", bin.nats, "--context", "op-admin", "--timeout", "5s", "server", "list")
	r.wantCode(t, 0)
	r.wantOutput(t, "Server Overview")
}

// operatorStory is the README story after init, in either operator
// variant: the stock nats-server checks (-t) and runs the nats.conf
// unedited; alice, added before the relay runs, logs in through 'authrelay
// serve' with the nats CLI and a username and password only; outside her
// permissions is a Permissions Violation, a wrong password an
// Authorization Violation. serve runs until the test ends.
func (e *e2e) operatorStory(t *testing.T, bin e2eBinaries) {
	t.Helper()
	e.run(t, "", bin.natsServer, "-t", "-c", e.conf).wantCode(t, 0)
	server := e.start(t, "nats-server", bin.natsServer, "-c", e.conf)
	e.waitTCP(t, server)

	r := e.authrelay(t, "s3cret-pass\n", "user", "add", "alice", "--dir", e.dir, "--account", "APP",
		"--password-stdin", "--pub", "orders.>", "--sub", "orders.>", "--sub", "_INBOX.>")
	r.wantCode(t, exitOK)
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
	r = e.nats(t, "--user", "alice", "--password", "s3cret-pass", "pub", "orders.new", "hi")
	r.wantCode(t, 0)
	r.wantOutput(t, `Published 2 bytes to "orders.new"`)
	r = e.nats(t, "--user", "alice", "--password", "s3cret-pass", "pub", "billing.new", "hi")
	r.wantFailure(t)
	r.wantOutput(t, "Permissions Violation")
	r = e.nats(t, "--user", "alice", "--password", "wrong-pass", "pub", "orders.new", "hi")
	r.wantFailure(t)
	r.wantOutput(t, "Authorization Violation")
}
