package main

import (
	"crypto/x509/pkix"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/internal/testtls"
)

// TestEndToEndCredentials runs the README's credential commands with the
// real binaries: authrelay, a stock nats-server from the files init wrote,
// and the nats CLI with --nkey, --token and --tlscert/--tlskey. Every
// refusal is checked for the relay's reason in the server's auth error
// event.
func TestEndToEndCredentials(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs real binaries; skipped with -short")
	}
	bin := buildE2EBinaries(t)
	t.Run("nkeys and tokens", func(t *testing.T) { e2eNkeysAndTokens(t, bin) })
	t.Run("certificates", func(t *testing.T) { e2eCertificates(t, bin) })
}

// startE2EDir runs init with args, a stock nats-server from its nats.conf
// and authrelay serve with serveArgs, and waits for the relay to answer
// (connect checks a login of a probe user with opts).
func startE2EDir(t *testing.T, e *e2e, initArgs, serveArgs []string, opts ...nats.Option) {
	t.Helper()
	e.authrelay(t, "", append([]string{"init", "--dir", e.dir, "--listen", e.addr}, initArgs...)...).wantCode(t, exitOK)
	server := e.start(t, "nats-server", e.bin.natsServer, "-c", e.conf)
	e.waitTCP(t, server)
	const probePass = "pr0be-pass-e2e"
	e.authrelay(t, probePass+"\n", "user", "add", "e2e-probe", "--dir", e.dir, "--account", "APP",
		"--password-stdin", "--pub", "probe.>").wantCode(t, exitOK)
	serve := e.start(t, "authrelay serve", e.bin.authrelay, append([]string{"serve", "--dir", e.dir, "--nats", e.url}, serveArgs...)...)
	t.Cleanup(func() {
		if code := serve.stop(t, syscall.SIGTERM); code != 0 {
			t.Errorf("authrelay serve exited with status %d after SIGTERM, want 0", code)
		}
	})
	e.waitFor(t, 20*time.Second, "the relay to answer logins", func() error {
		serve.mustRun(t)
		nc, err := e.connect("e2e-probe", probePass, opts...)
		if err != nil {
			return err
		}
		nc.Close()
		return nil
	})
}

// refusedE2E runs the nats CLI with args and checks that the server
// refused it, with the relay's reason want in its auth error event.
func refusedE2E(t *testing.T, e *e2e, events <-chan authErr, want string, args ...string) {
	t.Helper()
	r := e.nats(t, args...)
	r.wantFailure(t)
	r.wantOutput(t, "Authorization Violation")
	select {
	case ev := <-events:
		if !strings.HasSuffix(ev.Reason, want) {
			t.Errorf("nats %s: refused with %q, want %q", strings.Join(args, " "), ev.Reason, want)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("nats %s: no auth error event", strings.Join(args, " "))
	}
}

func e2eNkeysAndTokens(t *testing.T, bin e2eBinaries) {
	e := newE2E(t, bin)
	startE2EDir(t, e, nil, nil)
	events := (&servedDir{dir: e.dir, url: e.url}).authErrors(t)

	// authrelay user add billing-svc --account APP --generate-nkey --nkey-file billing.nk ...
	seedFile := filepath.Join(filepath.Dir(e.dir), "billing.nk")
	r := e.authrelay(t, "", "user", "add", "billing-svc", "--dir", e.dir, "--account", "APP", "--generate-nkey",
		"--nkey-file", seedFile, "--pub", "billing.>", "--sub", "billing.>", "--sub", "_INBOX.>")
	r.wantCode(t, exitOK)
	r.wantOutput(t, "nkey seed written to "+seedFile)
	fi, err := os.Stat(seedFile)
	if err != nil {
		t.Fatal(err)
	}
	if written, err := os.ReadFile(seedFile); err != nil {
		t.Fatal(err)
	} else if strings.Contains(r.output(), strings.TrimSpace(string(written))) {
		t.Errorf("user add printed the seed although it went to --nkey-file:\n%s", r)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", seedFile, fi.Mode().Perm())
	}
	// nats --nkey billing.nk pub billing.invoice hi
	e.nats(t, "--nkey", seedFile, "pub", "billing.invoice", "hi").wantOutput(t, `Published 2 bytes to "billing.invoice"`)
	// A second run of the same file is a reconnect answered from the cache.
	e.nats(t, "--nkey", seedFile, "pub", "billing.invoice", "again").wantCode(t, 0)

	// A key nobody bound, and a seed file that does not match the key
	// bound: bad_credentials.
	strange, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, err := strange.Seed()
	if err != nil {
		t.Fatal(err)
	}
	strangeFile := filepath.Join(filepath.Dir(e.dir), "stranger.nk")
	if err := os.WriteFile(strangeFile, append(seed, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	refusedE2E(t, e, events, "bad_credentials", "--nkey", strangeFile, "pub", "billing.invoice", "hi")

	// --generate-nkey without --nkey-file prints the seed once, alone on
	// its line; --nkey binds a public key.
	r = e.authrelay(t, "", "user", "add", "printed-svc", "--dir", e.dir, "--account", "APP", "--generate-nkey", "--pub", "billing.>")
	r.wantCode(t, exitOK)
	var printed string
	for _, line := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(line, "SU") {
			printed = line
		}
	}
	if _, err := nkeys.FromSeed([]byte(printed)); err != nil {
		t.Fatalf("user add --generate-nkey printed no seed on a line of its own: %v\n%s", err, r)
	}
	pub, err := strange.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	e.authrelay(t, "", "user", "set", "billing-svc", "--dir", e.dir, "--nkey", pub).wantCode(t, exitOK)
	e.nats(t, "--nkey", strangeFile, "pub", "billing.invoice", "hi").wantOutput(t, "Published 2 bytes")
	r = e.authrelay(t, "", "user", "set", "billing-svc", "--dir", e.dir, "--nkey", "SUAM"+strings.Repeat("A", 54))
	r.wantCode(t, exitUsage)
	r.wantOutput(t, "give the public key")

	// authrelay token add --user billing-svc --name ci-deploy --expires 90d
	r = e.authrelay(t, "", "token", "add", "--user", "billing-svc", "--name", "ci-deploy", "--expires", "90d", "--dir", e.dir)
	r.wantCode(t, exitOK)
	token := strings.TrimSuffix(r.stdout, "\n")
	if !strings.HasPrefix(token, "authrelay_") || strings.Contains(token, "\n") {
		t.Fatalf("token add printed %q, want one line with the token", r.stdout)
	}
	// user show says what billing-svc logs in with, never a secret.
	r = e.authrelay(t, "", "user", "show", "billing-svc", "--json", "--dir", e.dir)
	r.wantCode(t, exitOK)
	billingSeed, err := os.ReadFile(seedFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{token, printed, string(seed), strings.TrimSpace(string(billingSeed))} {
		if strings.Contains(r.output(), secret) {
			t.Fatalf("user show prints a secret:\n%s", r)
		}
	}
	var shown struct {
		HashScheme  string `json:"hash_scheme"`
		Credentials struct {
			Password bool     `json:"password"`
			Nkeys    []string `json:"nkeys"`
			Tokens   int      `json:"tokens"`
		} `json:"credentials"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &shown); err != nil {
		t.Fatal(err)
	}
	if c := shown.Credentials; c.Password || len(c.Nkeys) != 2 || c.Tokens != 1 || shown.HashScheme != "none" {
		t.Errorf("user show --json: hash scheme %q, credentials %+v; want none, no password, 2 nkeys, 1 token", shown.HashScheme, c)
	}
	e.authrelay(t, "", "user", "show", "billing-svc", "--dir", e.dir).wantOutput(t, "nkey "+pub)
	// nats --token authrelay_… pub billing.invoice hi
	e.nats(t, "--token", token, "pub", "billing.invoice", "hi").wantOutput(t, `Published 2 bytes to "billing.invoice"`)
	refusedE2E(t, e, events, "bad_credentials", "--token", token[:len(token)-2]+"xx", "pub", "billing.invoice", "hi")

	r = e.authrelay(t, "", "token", "list", "--json", "--dir", e.dir)
	r.wantCode(t, exitOK)
	if strings.Contains(r.output(), token[len("authrelay_"):]) {
		t.Fatalf("token list shows the token:\n%s", r)
	}
	var list []struct {
		ID, User, Name string
		Expires        *time.Time
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].User != "billing-svc" || list[0].Name != "ci-deploy" || list[0].Expires == nil ||
		list[0].Expires.Sub(time.Now()) < 89*24*time.Hour {
		t.Fatalf("token list --json = %+v, want billing-svc's ci-deploy token, expiring in 90 days", list)
	}
	// A connection made with the token closes when the token goes.
	closed := make(chan struct{})
	nc, err := nats.Connect(e.url, nats.Token(token), nats.MaxReconnects(0), nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	e.authrelay(t, "", "token", "rm", list[0].ID, "--dir", e.dir).wantOutput(t, "removed")
	select {
	case <-closed:
	case <-time.After(time.Second):
		t.Error("the connection made with the token is still open 1 s after token rm returned")
	}
	refusedE2E(t, e, events, "bad_credentials", "--token", token, "pub", "billing.invoice", "hi")
	r = e.authrelay(t, "", "token", "rm", list[0].ID, "--dir", e.dir)
	r.wantFailure(t)
	r.wantOutput(t, "not found")
}

func e2eCertificates(t *testing.T, bin e2eBinaries) {
	e := newE2E(t, bin)
	ca := testtls.NewCA(t)
	srvCert, srvKey, _, _ := ca.Issue(t, pkix.Name{CommonName: "127.0.0.1"}, true)
	relayCert, relayKey, _, _ := ca.Issue(t, pkix.Name{CommonName: "authrelay"}, false)
	ingestCert, ingestKey, _, _ := ca.Issue(t, pkix.Name{CommonName: "ingest", Organization: []string{"acme"}}, false)
	otherCert, otherKey, _, _ := ca.Issue(t, pkix.Name{CommonName: "other"}, false)
	tlsArgs := []string{"--tlsca", ca.File, "--tlscert", relayCert, "--tlskey", relayKey}
	startE2EDir(t, e, []string{"--tls-cert", srvCert, "--tls-key", srvKey, "--tls-client-ca", ca.File}, tlsArgs,
		nats.RootCAs(ca.File), nats.ClientCert(relayCert, relayKey))

	sec, err := deploy.Layout{Dir: e.dir}.LoadSecrets()
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan authErr, 16)
	enc, err := nats.Connect(e.url, nats.UserInfo(sec.RelayUser, sec.RelayPassword), nats.RootCAs(ca.File), nats.ClientCert(relayCert, relayKey))
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	if _, err := enc.Subscribe("$SYS.ACCOUNT.CLIENT.AUTH.ERR", func(m *nats.Msg) {
		var ev struct {
			Reason string `json:"reason"`
		}
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			ev.Reason = "decode event: " + err.Error()
		}
		events <- authErr{Reason: ev.Reason}
	}); err != nil {
		t.Fatal(err)
	}
	if err := enc.Flush(); err != nil {
		t.Fatal(err)
	}

	// authrelay user add ingest --account APP --tls-subject 'CN=ingest,O=acme' --pub 'ingest.>'
	e.authrelay(t, "", "user", "add", "ingest", "--dir", e.dir, "--account", "APP", "--tls-subject", "CN=ingest, O=acme",
		"--pub", "ingest.>").wantCode(t, exitOK)
	// nats --tlsca ca.pem --tlscert ingest.pem --tlskey ingest-key.pem pub ingest.reading 21.5
	e.nats(t, "--tlsca", ca.File, "--tlscert", ingestCert, "--tlskey", ingestKey, "pub", "ingest.reading", "21.5").
		wantOutput(t, `Published 4 bytes to "ingest.reading"`)
	refusedE2E(t, e, events, "bad_credentials", "--tlsca", ca.File, "--tlscert", otherCert, "--tlskey", otherKey, "pub", "ingest.reading", "1")
	// Without a certificate the server refuses the TLS handshake itself.
	r := e.nats(t, "--tlsca", ca.File, "pub", "ingest.reading", "1")
	r.wantFailure(t)
	// doctor, as the admin with a certificate, finds verify on.
	r = e.authrelay(t, "", append([]string{"doctor", "--dir", e.dir}, tlsArgs...)...)
	r.wantOutput(t, "verify")
	e.authrelay(t, "", "user", "set", "ingest", "--dir", e.dir, "--clear-tls").wantCode(t, exitOK)
	refusedE2E(t, e, events, "bad_credentials", "--tlsca", ca.File, "--tlscert", ingestCert, "--tlskey", ingestKey, "pub", "ingest.reading", "1")
}
