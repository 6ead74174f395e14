package deploy_test

import (
	"bufio"
	"context"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/internal/testtls"
	"github.com/authrelay/authrelay/relay"
)

// svc is a service user without a password: it logs in with an nkey or
// an API token.
var svc = accounts.User{
	Name:    "svc",
	Account: "APP",
	Permissions: accounts.Permissions{
		Pub: accounts.Rule{Allow: []string{"app.>"}},
		Sub: accounts.Rule{Allow: []string{"app.>", "_INBOX.>"}},
	},
}

// newUserKey returns a new user key pair and its public key.
func newUserKey(t *testing.T) (nkeys.KeyPair, string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	p, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return kp, p
}

// nkeyOpt logs in as pub, signing the nonce with kp (which may be another
// key's, for a wrong signature).
func nkeyOpt(pub string, kp nkeys.KeyPair) nats.Option {
	return nats.Nkey(pub, func(nonce []byte) ([]byte, error) { return kp.Sign(nonce) })
}

// startCredentialRelay runs the relay as serve does for credentials:
// with the store's credential lookup, the default lockout policy and
// revocation.
func (e *modeEnv) startCredentialRelay() {
	e.startRelay(func(c *relay.Config) {
		c.Credentials = e.db
		c.Guard = e.db.Lockouts(accounts.DefaultLockoutPolicy)
		c.CacheTTL = time.Minute
		c.Revoke = &relay.RevokeConfig{AdminUser: e.id.AdminUser, AdminLogin: e.id.AdminLogin, Changes: e.db, Poll: 100 * time.Millisecond}
	})
}

// requireClosed waits for closed, the closed handler's channel of a
// connection, to be closed within d.
func requireClosed(t *testing.T, closed <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-closed:
	case <-time.After(d):
		t.Fatalf("%s: the connection is still open %v later", what, d)
	}
}

// TestModesNkeyLogin is an nkey login in every mode: a user with an nkey
// and no password signs the server's nonce and lands in its account with
// its permissions, from the cache on its reconnect; a wrong signature, an
// unknown key and a signature of another connection's nonce are
// bad_credentials, and none of them counts against the user's name (the
// right key still logs in from the same address after more failures than
// the pair's threshold); the user's password login is refused; removing
// the key closes the connection made with it.
func TestModesNkeyLogin(t *testing.T) {
	for _, mode := range loginModes() {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			e := newModeEnv(t, mode, nil, nil)
			kp, svcKey := newUserKey(t)
			ctx := context.Background()
			if err := e.db.AddUserWith(ctx, svc, "", []accounts.StoredCredential{{Kind: accounts.CredNkey, Value: svcKey}}); err != nil {
				t.Fatal(err)
			}
			e.startCredentialRelay()
			reasons := e.authErrors()

			closed := make(chan struct{})
			nc, errs, err := e.connect("", "", nkeyOpt(svcKey, kp), nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
			if err != nil {
				t.Fatalf("nkey login: %v", err)
			}
			if got, want := e.accountOf(nc), e.accountID("APP"); got != want {
				t.Errorf("svc is in account %q, want %q (APP)", got, want)
			}
			requirePubSub(t, nc, "app.orders")
			requireViolation(t, nc, errs, "elsewhere", "")
			again, _, err := e.connect("", "", nkeyOpt(svcKey, kp))
			if err != nil {
				t.Fatalf("second nkey login (from the cache): %v", err)
			}
			again.Close()

			other, otherKey := newUserKey(t)
			for range accounts.DefaultLockoutPolicy.Threshold + 2 {
				e.requireDenied(reasons, relay.ReasonBadCredentials, "", "", nkeyOpt(svcKey, other))
			}
			e.requireDenied(reasons, relay.ReasonBadCredentials, "", "", nkeyOpt(otherKey, other))
			e.requireDenied(reasons, relay.ReasonBadCredentials, "svc", "any-password-at-all")
			replaySignature(t, e, reasons, svcKey, kp)
			// The failures above counted against the address only.
			if nc2, _, err := e.connect("", "", nkeyOpt(svcKey, kp)); err != nil {
				t.Fatalf("nkey login after %d wrong signatures: %v (locked out by a key anyone may know)", accounts.DefaultLockoutPolicy.Threshold+2, err)
			} else {
				nc2.Close()
			}

			if err := e.db.SetCredentials(ctx, "svc", []accounts.CredentialKind{accounts.CredNkey}, nil); err != nil {
				t.Fatal(err)
			}
			requireClosed(t, closed, time.Second, "svc's nkey removed")
			e.requireDenied(reasons, relay.ReasonBadCredentials, "", "", nkeyOpt(svcKey, kp))
		})
	}
}

// replaySignature connects with the raw protocol and sends svcKey's valid
// signature of the nonce of an earlier connection: bad_credentials.
func replaySignature(t *testing.T, e *modeEnv, reasons <-chan string, svcKey string, kp nkeys.KeyPair) {
	t.Helper()
	first := rawConn(t, e)
	nonce := rawNonce(t, first)
	sig, err := kp.Sign([]byte(nonce))
	if err != nil {
		t.Fatal(err)
	}
	first.Close()
	second := rawConn(t, e)
	if n := rawNonce(t, second); n == nonce || n == "" {
		t.Fatalf("the server sent the same nonce %q twice, or none", n)
	}
	requireRawDenied(t, second, reasons, svcKey, sig, relay.ReasonBadCredentials)
}

// requireRawDenied sends c, a raw connection whose INFO was read, a
// CONNECT with nkey and the signature sig, and checks that the login is
// refused with the reason want.
func requireRawDenied(t *testing.T, c net.Conn, reasons <-chan string, nkey string, sig []byte, want string) {
	t.Helper()
	connect, err := json.Marshal(map[string]any{"nkey": nkey, "sig": base64.RawURLEncoding.EncodeToString(sig), "verbose": false, "protocol": 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Fprintf(c, "CONNECT %s\r\nPING\r\n", connect); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(line, "Authorization Violation") {
		t.Fatalf("CONNECT with nkey %s got %q, want Authorization Violation", nkey, line)
	}
	select {
	case got := <-reasons:
		if !strings.Contains(got, want) {
			t.Errorf("refused with %q, want %q", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("no auth error event for the CONNECT with nkey %s", nkey)
	}
}

// rawConn dials the env's server over TCP.
func rawConn(t *testing.T, e *modeEnv) net.Conn {
	t.Helper()
	addr := strings.TrimPrefix(e.srv.ClientURL(), "nats://")
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	return c
}

// rawNonce reads the server's INFO from c and returns its nonce.
func rawNonce(t *testing.T, c net.Conn) string {
	t.Helper()
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	line, ok := strings.CutPrefix(strings.TrimSpace(string(buf[:n])), "INFO ")
	if !ok {
		t.Fatalf("the server's first line is %q, want INFO", buf[:n])
	}
	var info struct {
		Nonce string `json:"nonce"`
	}
	if err := json.Unmarshal([]byte(line), &info); err != nil {
		t.Fatal(err)
	}
	return info.Nonce
}

// TestNkeyWithoutNonce is a config-mode server without the nkey user init
// writes (a nats.conf from before authrelay wrote one): it sends no
// nonce, so a signature proves nothing, and the relay refuses the login
// with nonce_missing, which says what to fix.
func TestNkeyWithoutNonce(t *testing.T) {
	e := newModeEnv(t, deploy.ModeConfig, nil, func(l deploy.Layout) {
		b, err := os.ReadFile(l.Path(deploy.ServerConf))
		if err != nil {
			t.Fatal(err)
		}
		var kept []string
		for _, line := range strings.Split(string(b), "\n") {
			if !strings.Contains(line, deploy.NonceKey) {
				kept = append(kept, line)
			}
		}
		if len(kept) == strings.Count(string(b), "\n")+1 {
			t.Fatalf("nats.conf has no line with the nonce key %s", deploy.NonceKey)
		}
		if err := os.WriteFile(l.Path(deploy.ServerConf), []byte(strings.Join(kept, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	kp, svcKey := newUserKey(t)
	if err := e.db.AddUserWith(context.Background(), svc, "", []accounts.StoredCredential{{Kind: accounts.CredNkey, Value: svcKey}}); err != nil {
		t.Fatal(err)
	}
	e.startCredentialRelay()
	// nats clients refuse to send an nkey to a server that sends no
	// nonce; an attacker replaying a signature of nothing would not.
	c := rawConn(t, e)
	if n := rawNonce(t, c); n != "" {
		t.Fatalf("the server sent nonce %q without an nkey user in its config", n)
	}
	sig, err := kp.Sign(nil)
	if err != nil {
		t.Fatal(err)
	}
	requireRawDenied(t, c, e.authErrors(), svcKey, sig, accounts.ReasonNonceMissing)
}

// TestModesTokenLogin is an API token login in every mode: the token
// alone places the user in its account; a well-formed unknown token, a
// mangled one and an expired one are bad_credentials, a token without
// authrelay's prefix no_credentials; the user's password still works
// beside the token; removing the token refuses it and closes the
// connection made with it.
func TestModesTokenLogin(t *testing.T) {
	for _, mode := range loginModes() {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			e := newModeEnv(t, mode, nil, nil)
			ctx := context.Background()
			u := svc
			if err := e.db.AddUserWith(ctx, u, "svc-pw-5e6f-long", nil); err != nil {
				t.Fatal(err)
			}
			token := addToken(t, e, "svc", time.Time{})
			expired := addToken(t, e, "svc", time.Now().Add(-time.Second))
			e.startCredentialRelay()
			reasons := e.authErrors()

			closed := make(chan struct{})
			nc, errs, err := e.connect("", "", nats.Token(token), nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
			if err != nil {
				t.Fatalf("token login: %v", err)
			}
			if got, want := e.accountOf(nc), e.accountID("APP"); got != want {
				t.Errorf("svc is in account %q, want %q (APP)", got, want)
			}
			requirePubSub(t, nc, "app.orders")
			requireViolation(t, nc, errs, "elsewhere", "")
			pw, _ := e.mustConnect("svc", "svc-pw-5e6f-long")
			pw.Close()

			unknown, err := accounts.NewAPIToken()
			if err != nil {
				t.Fatal(err)
			}
			e.requireDenied(reasons, relay.ReasonBadCredentials, "", "", nats.Token(unknown))
			e.requireDenied(reasons, relay.ReasonBadCredentials, "", "", nats.Token(token[:len(token)-1]))
			e.requireDenied(reasons, relay.ReasonBadCredentials, "", "", nats.Token(expired))
			e.requireDenied(reasons, relay.ReasonNoCredentials, "", "", nats.Token(strings.TrimPrefix(token, accounts.TokenPrefix)))

			if _, err := e.db.RemoveCredential(ctx, accounts.CredToken, accounts.TokenID(accounts.TokenDigest(token))); err != nil {
				t.Fatal(err)
			}
			requireClosed(t, closed, time.Second, "svc's token removed")
			e.requireDenied(reasons, relay.ReasonBadCredentials, "", "", nats.Token(token))
		})
	}
}

// addToken adds an API token for user, expiring at exp (zero: never),
// and returns it.
func addToken(t *testing.T, e *modeEnv, user string, exp time.Time) string {
	t.Helper()
	token, err := accounts.NewAPIToken()
	if err != nil {
		t.Fatal(err)
	}
	c := accounts.StoredCredential{Kind: accounts.CredToken, Value: accounts.TokenDigest(token), User: user, Expires: exp.UTC().Truncate(time.Second)}
	if err := e.db.AddCredential(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	return token
}

// TestModesCertLogin is a TLS client certificate login in both modes,
// through a server with tls { verify: true } from init's --tls-client-ca: a client that presents the
// certificate bound to a user by its subject, and no username, is that
// user; a certificate bound by its public key's fingerprint logs in too,
// one bound to nobody is bad_credentials; a password login of another user
// with a certificate of its own still goes by the password; removing the
// binding closes the connection made with it.
func TestModesCertLogin(t *testing.T) {
	ca := testtls.NewCA(t)
	srvCert, srvKey, _, _ := ca.Issue(t, pkix.Name{CommonName: "127.0.0.1"}, true)
	relayCert, relayKey, _, _ := ca.Issue(t, pkix.Name{CommonName: "authrelay"}, false)
	svcCert, svcKey, _, _ := ca.Issue(t, pkix.Name{CommonName: "svc", Organization: []string{"acme"}}, false)
	fpCert, fpKey, fp, _ := ca.Issue(t, pkix.Name{CommonName: "by-key"}, false)
	strangerCert, strangerKey, _, _ := ca.Issue(t, pkix.Name{CommonName: "stranger"}, false)
	for _, mode := range modes() {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			e := newModeEnvInit(t, mode, deploy.InitOptions{TLS: deploy.TLSFiles{Cert: srvCert, Key: srvKey, ClientCA: ca.File}}, nil)
			// With verify every client presents a certificate: the relay
			// (and its revoker) too.
			e.clientOpts = []nats.Option{nats.RootCAs(ca.File), nats.ClientCert(relayCert, relayKey)}
			ctx := context.Background()
			subject, err := accounts.NormalizeSubject("CN=svc, O=acme")
			if err != nil {
				t.Fatal(err)
			}
			if err := e.db.AddUserWith(ctx, svc, "", []accounts.StoredCredential{{Kind: accounts.CredTLSSubject, Value: subject}}); err != nil {
				t.Fatal(err)
			}
			byKey := svc
			byKey.Name = "bykey"
			if err := e.db.AddUserWith(ctx, byKey, "", []accounts.StoredCredential{{Kind: accounts.CredTLSFingerprint, Value: accounts.CertFingerprint(fp)}}); err != nil {
				t.Fatal(err)
			}
			e.addUser(alice, alicePW)
			e.startCredentialRelay()
			reasons := e.authErrors()

			as := func(cert, key string) nats.Option { return nats.ClientCert(cert, key) }
			closed := make(chan struct{})
			nc, errs, err := e.connect("", "", as(svcCert, svcKey), nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
			if err != nil {
				t.Fatalf("certificate login: %v", err)
			}
			if got, want := e.accountOf(nc), e.accountID("APP"); got != want {
				t.Errorf("svc is in account %q, want %q (APP)", got, want)
			}
			requirePubSub(t, nc, "app.orders")
			requireViolation(t, nc, errs, "elsewhere", "")
			k, _, err := e.connect("", "", as(fpCert, fpKey))
			if err != nil {
				t.Fatalf("login with the certificate bound by its key: %v", err)
			}
			k.Close()
			e.requireDenied(reasons, relay.ReasonBadCredentials, "", "", as(strangerCert, strangerKey))
			// A username and password decide, whatever the certificate.
			pw, _, err := e.connect("alice", alicePW, as(strangerCert, strangerKey))
			if err != nil {
				t.Fatalf("alice's password login with a certificate bound to nobody: %v", err)
			}
			pw.Close()
			e.requireDenied(reasons, relay.ReasonBadCredentials, "alice", "wrong-pw-0b1e-long", as(svcCert, svcKey))

			if err := e.db.SetCredentials(ctx, "svc", []accounts.CredentialKind{accounts.CredTLSSubject, accounts.CredTLSFingerprint}, nil); err != nil {
				t.Fatal(err)
			}
			requireClosed(t, closed, time.Second, "svc's certificate binding removed")
			e.requireDenied(reasons, relay.ReasonBadCredentials, "", "", as(svcCert, svcKey))
		})
	}
}
