package main

import (
	"syscall"
	"testing"
	"time"
)

// TestEndToEndAccountReload adds an account to a running stock nats-server
// with the real binaries: authrelay writes accounts.conf and has the server
// reload it through the system account ('authrelay reload', and account add
// by itself), without a restart or a signal, and a user placed in the new
// account connects with the nats CLI, isolated from the old one.
func TestEndToEndAccountReload(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs real binaries; skipped with -short")
	}
	bin := buildE2EBinaries(t)
	e := newE2E(t, bin)
	e.authrelay(t, "", "init", "--dir", e.dir, "--listen", e.addr, "--nats-context", "authrelay-admin").wantCode(t, exitOK)
	ns := e.start(t, "nats-server", bin.natsServer, "-c", e.conf)
	e.waitTCP(t, ns)

	// init saved a nats CLI context for the system admin: the real nats
	// CLI lists the servers with it alone (no --server, no password).
	r := e.run(t, "", e.bin.nats, "--context", "authrelay-admin", "--timeout", "5s", "server", "list")
	r.wantCode(t, 0)
	t.Logf("nats --context authrelay-admin server list:\n%s", r.output())
	r.wantOutput(t, "2.15.2")
	if r := e.authrelay(t, "", "init", "--dir", t.TempDir(), "--nats-context", "authrelay-admin"); r.code != exitUsage {
		t.Errorf("init over an existing context: exit %d, want %d\n%s", r.code, exitUsage, r)
	}
	serve := e.start(t, "authrelay serve", bin.authrelay, "serve", "--dir", e.dir, "--nats", e.url)
	t.Cleanup(func() {
		if code := serve.stop(t, syscall.SIGTERM); code != 0 {
			t.Errorf("authrelay serve exited %d after SIGTERM", code)
		}
	})
	e.authrelay(t, "apu-pass\n", "user", "add", "apu", "--dir", e.dir, "--account", "APP", "--password-stdin").wantCode(t, exitOK)
	e.waitFor(t, 20*time.Second, "the relay to answer logins", func() error {
		serve.mustRun(t)
		nc, err := e.connect("apu", "apu-pass")
		if err != nil {
			return err
		}
		nc.Close()
		return nil
	})

	// --no-reload only writes accounts.conf: the server does not know
	// ORDERS yet, and olga is refused.
	r = e.authrelay(t, "", "account", "add", "ORDERS", "--dir", e.dir, "--no-reload")
	r.wantCode(t, exitOK)
	r.wantOutput(t, "authrelay reload")
	e.authrelay(t, "olga-pass\n", "user", "add", "olga", "--dir", e.dir, "--account", "ORDERS",
		"--password-stdin", "--pub", "orders.>", "--sub", "orders.>").wantCode(t, exitOK)
	e.nats(t, "--user", "olga", "--password", "olga-pass", "pub", "orders.new", "hi").wantFailure(t)

	// authrelay reload finds the server from DIR/nats.conf's listen
	// address and reloads it through the system account: no pid, no
	// signal to every nats-server of the host.
	r = e.authrelay(t, "", "reload", "--dir", e.dir)
	r.wantCode(t, exitOK)
	r.wantOutput(t, "reloaded nats-server")
	e.waitFor(t, 20*time.Second, "olga to log in after the reload", func() error {
		ns.mustRun(t)
		nc, err := e.connect("olga", "olga-pass")
		if err != nil {
			return err
		}
		nc.Close()
		return nil
	})
	r = e.nats(t, "--user", "olga", "--password", "olga-pass", "pub", "orders.new", "hi")
	r.wantCode(t, 0)
	r.wantOutput(t, `Published 2 bytes to "orders.new"`)

	// ORDERS and APP are isolated: apu, with every permission in APP, does
	// not see olga's message.
	apu, err := e.connect("apu", "apu-pass")
	if err != nil {
		t.Fatal(err)
	}
	defer apu.Close()
	sub, err := apu.SubscribeSync("orders.>")
	if err != nil {
		t.Fatal(err)
	}
	apu.Flush()
	e.nats(t, "--user", "olga", "--password", "olga-pass", "pub", "orders.new", "again").wantCode(t, 0)
	if msg, err := sub.NextMsg(500 * time.Millisecond); err == nil {
		t.Errorf("APP received %q published in ORDERS", msg.Data)
	}
	// account add reloads by itself: a user of the new account logs in
	// with no other step.
	r = e.authrelay(t, "", "account", "add", "SHIPPING", "--dir", e.dir)
	r.wantCode(t, exitOK)
	r.wantOutput(t, "reloaded nats-server")
	e.authrelay(t, "sven-pass\n", "user", "add", "sven", "--dir", e.dir, "--account", "SHIPPING",
		"--password-stdin", "--pub", "ship.>").wantCode(t, exitOK)
	e.waitFor(t, 20*time.Second, "sven to log in to SHIPPING", func() error {
		nc, err := e.connect("sven", "sven-pass")
		if err != nil {
			return err
		}
		nc.Close()
		return nil
	})
	// The server kept running: same process, no restart.
	ns.mustRun(t)
}
