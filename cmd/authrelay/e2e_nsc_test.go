package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/authrelay/authrelay/internal/nsctest"
)

// TestNscOperatorEndToEnd runs the README's "An operator managed with nsc"
// steps with the real nsc (pinned in internal/tools/nsc) and the real
// binaries: an operator nsc made, exported, 'authrelay init --operator
// --nsc', the stock nats-server running the nats.conf unedited, 'authrelay
// serve', the nats CLI logging in with a username and password; then an
// account added with nsc and pushed, registered with 'account add --nsc',
// taking logins from the running relay; and the changes nsc owns refused
// with what to do.
func TestNscOperatorEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs real binaries; skipped with -short")
	}
	bin := buildE2EBinaries(t)
	e := newE2E(t, bin)
	n := nsctest.New(t)

	// The operator, AUTH with the callout, APP, the relay's user: nsc.
	n.NewOperator(t, "APP")
	keys := n.Export(t)

	r := e.authrelay(t, "", "init", "--operator", "--nsc", keys, "--dir", e.dir, "--listen", e.addr)
	r.wantCode(t, exitOK)
	r.wantOutput(t, "imported from nsc: operator ACME, callout account AUTH, relay user authrelay, admin sys, accounts [APP]")
	e.operatorStory(t, bin)

	r = e.authrelay(t, "", "doctor", "--dir", e.dir)
	r.wantCode(t, exitOK)
	r.wantOutput(t, "every account of the database (APP) is allowed by the AUTH account and has a signing key authrelay holds")

	// authrelay signs no account here: an account it does not hold the
	// keys of is refused, as is a limit (nsc's, in the JWT).
	r = e.authrelay(t, "", "account", "add", "ORDERS", "--dir", e.dir)
	r.wantFailure(t)
	r.wantOutput(t, "managed with nsc")
	r.wantOutput(t, "account add ORDERS --nsc KEYDIR")
	r = e.authrelay(t, "", "account", "set", "APP", "--dir", e.dir, "--max-connections", "5")
	r.wantFailure(t)
	r.wantOutput(t, "nsc edit account APP")

	// A new account with nsc, pushed to the running server, then
	// registered: its users log in through the running relay.
	n.Run(t, "add", "account", "ORDERS")
	n.Run(t, "edit", "account", "ORDERS", "--sk", "generate")
	orders := n.Field(t, "sub", "account", "ORDERS")
	n.Run(t, "edit", "authcallout", "--account", "AUTH", "--allowed-account", orders)
	n.Run(t, "edit", "operator", "--account-jwt-server-url", "nats://"+e.addr)
	n.Run(t, "push", "--all")
	keys2 := n.Export(t, "--account", "ORDERS")
	r = e.authrelay(t, "", "account", "add", "ORDERS", "--nsc", keys2, "--dir", e.dir)
	r.wantCode(t, exitOK)
	r.wantOutput(t, "nothing pushed")
	r = e.authrelay(t, "bob-secret-pass\n", "user", "add", "bob", "--dir", e.dir, "--account", "ORDERS",
		"--password-stdin", "--pub", "shop.>")
	r.wantCode(t, exitOK)
	r = e.nats(t, "--user", "bob", "--password", "bob-secret-pass", "pub", "shop.new", "hi")
	r.wantCode(t, 0)
	r.wantOutput(t, `Published 2 bytes to "shop.new"`)

	// The admin takes ORDERS out of AUTH's allowed accounts with nsc: the
	// running relay follows within a second (bob refused), explain says
	// why with the relay's reason, and doctor fails on the account.
	n.Run(t, "edit", "authcallout", "--account", "AUTH", "--rm-allowed-account", orders)
	n.Run(t, "push", "--all")
	e.waitFor(t, 10*time.Second, "bob's login to be refused", func() error {
		if r := e.nats(t, "--user", "bob", "--password", "bob-secret-pass", "pub", "shop.new", "hi"); r.code == 0 {
			return fmt.Errorf("bob still logs in:\n%s", r)
		}
		return nil
	})
	r = e.authrelay(t, "", "user", "explain", "bob", "--dir", e.dir, "--offline")
	r.wantCode(t, exitFailure)
	r.wantOutput(t, "account_not_allowed")
	r = e.authrelay(t, "", "doctor", "--dir", e.dir, "--offline")
	r.wantFailure(t)
	r.wantOutput(t, "account ORDERS (1 user): the AUTH account's allowed_accounts does not list it")

	// An account AUTH does not allow is refused with what to do.
	n.Run(t, "add", "account", "HIDDEN")
	n.Run(t, "edit", "account", "HIDDEN", "--sk", "generate")
	r = e.authrelay(t, "", "account", "add", "HIDDEN", "--nsc", n.Export(t), "--dir", e.dir)
	r.wantCode(t, exitUsage)
	r.wantOutput(t, "allowed_accounts does not list it")
}
