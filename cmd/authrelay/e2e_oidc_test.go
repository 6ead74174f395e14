package main

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/authrelay/authrelay/internal/oidctest"
)

// TestEndToEndOIDCRealBinaries is the README's OIDC commands with real
// binaries: authrelay and nats-server built from go.mod, the nats CLI,
// zitadel/oidc's provider on 127.0.0.1. A client-credentials access token
// logs in as 'nats --token JWT', an ID token as 'nats --user SUB
// --password JWT'; a token for another audience is refused.
func TestEndToEndOIDCRealBinaries(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs real binaries; skipped with -short")
	}
	bin := buildE2EBinaries(t)
	e := newE2E(t, bin)
	o := oidctest.Start(t)
	e.authrelay(t, "", "init", "--dir", e.dir, "--listen", e.addr).wantCode(t, exitOK)
	server := e.start(t, "nats-server", bin.natsServer, "-c", e.conf)
	e.waitTCP(t, server)
	e.authrelay(t, "", "idp", "add", "corp", "--dir", e.dir, "--issuer", o.Issuer, "--audience", oidctest.Audience).wantCode(t, exitOK)
	for _, name := range []string{oidctest.ServiceSubject, oidctest.UserSubject} {
		e.authrelay(t, "", "user", "add", name, "--dir", e.dir, "--account", "APP", "--idp", "corp", "--pub", "svc.>").wantCode(t, exitOK)
	}
	serve := e.start(t, "authrelay serve", bin.authrelay, "serve", "--dir", e.dir, "--nats", e.url)
	t.Cleanup(func() {
		if code := serve.stop(t, syscall.SIGTERM); code != 0 {
			t.Errorf("authrelay serve exited with status %d after SIGTERM, want 0", code)
		}
	})
	access := o.AccessToken()
	e.waitFor(t, 20*time.Second, "the relay to answer a token login", func() error {
		serve.mustRun(t)
		if r := e.nats(t, "--token", access, "pub", "svc.ready", "x"); r.code != 0 {
			return errors.New(r.String())
		}
		return nil
	})

	// nats --token JWT pub svc.hello hi
	r := e.nats(t, "--token", access, "pub", "svc.hello", "hi")
	r.wantCode(t, 0)
	r.wantOutput(t, `Published 2 bytes to "svc.hello"`)
	// nats --user SUB --password JWT pub svc.hello hi
	r = e.nats(t, "--user", oidctest.UserSubject, "--password", o.IDToken(), "pub", "svc.hello", "hi")
	r.wantCode(t, 0)
	claims := o.Claims(oidctest.ServiceSubject, time.Hour)
	claims["aud"] = "another-api"
	r = e.nats(t, "--token", o.Sign(claims), "pub", "svc.hello", "hi")
	r.wantFailure(t)
	r.wantOutput(t, "Authorization Violation")
}
