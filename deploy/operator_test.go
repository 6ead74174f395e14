package deploy_test

// Conformance of the relay in both server modes, against real parts: the
// nats.conf 'authrelay init' (or 'init --operator') writes, run by an
// in-process nats-server; the directory's SQLite database; a relay built
// from the directory's Identity, as serve builds it. The points follow
// nats-server's own operator-mode callout tests (server/auth_callout_test.go:
// TestAuthCalloutOperatorModeBasics, …ScopedUser*, …OperatorModeEncryption,
// …ClientAuthErrorOperatorMode,
// …OperatorModeResponseIssuerAccountRequiresKnownSigner).

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/internal/loopback"
	"github.com/authrelay/authrelay/internal/nsctest"
	"github.com/authrelay/authrelay/internal/testtls"
	"github.com/authrelay/authrelay/relay"
	"github.com/authrelay/authrelay/store"
)

// modes are the server modes every shared test body runs in.
func modes() []deploy.Mode { return []deploy.Mode{deploy.ModeConfig, deploy.ModeOperator} }

// modeNsc is operator mode with an operator the real nsc made and manages
// ('init --operator --nsc KEYDIR', operator_nsc.go); newModeEnv sets it up
// with the README's nsc steps. It runs the shared bodies that need no
// account change from authrelay (nsc signs the accounts).
const modeNsc deploy.Mode = "operator-nsc"

// loginModes are modes and modeNsc: the deployments logins, revocation and
// sessions are the same in.
func loginModes() []deploy.Mode { return append(modes(), modeNsc) }

// modeEnv is an initialised directory in one mode, its server and
// database, and once started a relay.
type modeEnv struct {
	t    *testing.T
	mode deploy.Mode
	l    deploy.Layout
	srv  *server.Server
	db   *store.DB
	id   deploy.Identity
	// clientOpts are added to every connection the env makes: the CA of a
	// TLS server.
	clientOpts []nats.Option
}

// cheapHash is the lightest password policy the store takes: the race
// detector makes the default cost hundreds of milliseconds a login.
var cheapHash = store.Argon2Params{Memory: 8192, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// newModeEnv initialises a directory in mode with the accounts accts
// (default APP), lets edit change its files (nil: none), starts the
// server from its nats.conf on a free port and opens its database.
func newModeEnv(t *testing.T, mode deploy.Mode, accts []string, edit func(deploy.Layout)) *modeEnv {
	t.Helper()
	return newModeEnvInit(t, mode, deploy.InitOptions{Accounts: accts}, edit)
}

// newModeEnvInit is newModeEnv with more of init's options (o.Accounts,
// o.MQTTListen); the listen address, mode and bcrypt cost are its own.
func newModeEnvInit(t *testing.T, mode deploy.Mode, o deploy.InitOptions, edit func(deploy.Layout)) *modeEnv {
	t.Helper()
	accts := o.Accounts
	ctx := context.Background()
	if accts == nil {
		accts = []string{"APP"}
	}
	l := deploy.Layout{Dir: t.TempDir()}
	// A port free a moment ago, in nats.conf itself, so that a reload of
	// the file keeps it.
	o.Accounts, o.Listen, o.BcryptCost, o.Operator = accts, loopback.Addr(t), 4, mode != deploy.ModeConfig
	if mode == modeNsc {
		n := nsctest.New(t)
		n.NewOperator(t, accts...)
		o.Accounts, o.Nsc, mode = nil, n.Export(t), deploy.ModeOperator
	}
	if err := deploy.Init(ctx, l, o); err != nil {
		t.Fatalf("init: %v", err)
	}
	if got, err := l.Mode(); err != nil || got != mode {
		t.Fatalf("mode of the new directory = %q, %v; want %q", got, err, mode)
	}
	if edit != nil {
		edit(l)
	}
	opts, err := server.ProcessConfigFile(l.Path(deploy.ServerConf))
	if err != nil {
		t.Fatalf("process %s: %v", deploy.ServerConf, err)
	}
	opts.NoLog, opts.NoSigs = true, true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	db, err := l.OpenDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.Params = cheapHash
	id, err := l.Identity()
	if err != nil {
		t.Fatalf("identity: %v", err)
	}
	if id.Mode != mode {
		t.Fatalf("identity mode = %q, want %q", id.Mode, mode)
	}
	return &modeEnv{t: t, mode: mode, l: l, srv: srv, db: db, id: id}
}

// addUser adds a user with the password pw.
func (e *modeEnv) addUser(u accounts.User, pw string) {
	e.t.Helper()
	if err := e.db.AddUser(context.Background(), u, pw); err != nil {
		e.t.Fatalf("add user %s: %v", u.Name, err)
	}
}

// startRelay runs a relay built from the directory's identity, as serve
// builds it, changed by mod, until the test ends.
func (e *modeEnv) startRelay(mod func(*relay.Config)) {
	e.t.Helper()
	reserved, err := e.l.ReservedAccounts()
	if err != nil {
		e.t.Fatal(err)
	}
	cfg := relay.Config{
		URL:              e.srv.ClientURL(),
		NATSOptions:      e.clientOpts,
		Login:            e.id.RelayLogin,
		Issuer:           e.id.Issuer,
		XKey:             e.id.XKey,
		Users:            e.db,
		ReservedAccounts: reserved,
		Logger:           slog.New(slog.DiscardHandler),
	}
	if mod != nil {
		mod(&cfg)
	}
	r, err := relay.New(cfg)
	if err != nil {
		e.t.Fatalf("new relay: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	select {
	case <-r.Ready():
	case err := <-done:
		cancel()
		e.t.Fatalf("relay run: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		e.t.Fatal("relay not ready after 10s")
	}
	e.t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				e.t.Errorf("relay run: %v", err)
			}
		case <-time.After(10 * time.Second):
			e.t.Error("relay did not stop")
		}
	})
}

// connect logs in with user and password (none when both are empty).
func (e *modeEnv) connect(user, pw string, opts ...nats.Option) (*nats.Conn, chan error, error) {
	errs := make(chan error, 16)
	all := []nats.Option{nats.Name("operator-test"), nats.MaxReconnects(0),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case errs <- err:
			default:
			}
		})}
	if user != "" || pw != "" {
		all = append(all, nats.UserInfo(user, pw))
	}
	all = append(all, e.clientOpts...)
	nc, err := nats.Connect(e.srv.ClientURL(), append(all, opts...)...)
	if err != nil {
		return nil, nil, err
	}
	e.t.Cleanup(nc.Close)
	return nc, errs, nil
}

func (e *modeEnv) mustConnect(user, pw string) (*nats.Conn, chan error) {
	e.t.Helper()
	nc, errs, err := e.connect(user, pw)
	if err != nil {
		e.t.Fatalf("connect as %s: %v", user, err)
	}
	return nc, errs
}

// relayConn connects as the relay's own user, in the callout account.
func (e *modeEnv) relayConn() *nats.Conn {
	e.t.Helper()
	nc, err := nats.Connect(e.srv.ClientURL(), append([]nats.Option{e.id.RelayLogin, nats.Name("operator-test-probe")}, e.clientOpts...)...)
	if err != nil {
		e.t.Fatalf("connect as the relay's user: %v", err)
	}
	e.t.Cleanup(nc.Close)
	return nc
}

// authErrors subscribes, as the relay's user, to the server's events of
// refused logins in the callout account and returns their reasons.
func (e *modeEnv) authErrors() <-chan string {
	e.t.Helper()
	nc := e.relayConn()
	reasons := make(chan string, 16)
	if _, err := nc.Subscribe(relay.AuthErrorSubject, func(m *nats.Msg) {
		var ev struct {
			Reason string `json:"reason"`
		}
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			ev.Reason = fmt.Sprintf("decode event: %v", err)
		}
		reasons <- ev.Reason
	}); err != nil {
		e.t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		e.t.Fatal(err)
	}
	return reasons
}

// requireDenied connects as user and checks that the client sees
// Authorization Violation and that the server reports a reason containing
// want.
func (e *modeEnv) requireDenied(reasons <-chan string, want, user, pw string, opts ...nats.Option) {
	e.t.Helper()
	nc, _, err := e.connect(user, pw, opts...)
	if err == nil {
		nc.Close()
		e.t.Fatalf("connect as %q succeeded, want Authorization Violation", user)
	}
	if !errors.Is(err, nats.ErrAuthorization) {
		e.t.Fatalf("connect as %q: %v, want Authorization Violation", user, err)
	}
	select {
	case got := <-reasons:
		if !strings.Contains(got, want) {
			e.t.Errorf("auth error reason = %q, want it to contain %q", got, want)
		}
	case <-time.After(5 * time.Second):
		e.t.Errorf("no %s event for %q", relay.AuthErrorSubject, user)
	}
}

// accountOf returns the server's name of the account nc is in: the name in
// config mode, the public key in operator mode.
func (e *modeEnv) accountOf(nc *nats.Conn) string {
	e.t.Helper()
	cid, err := nc.GetClientID()
	if err != nil {
		e.t.Fatal(err)
	}
	cz, err := e.srv.Connz(&server.ConnzOptions{CID: cid, Username: true})
	if err != nil || len(cz.Conns) != 1 {
		e.t.Fatalf("connz for cid %d: %v, %d connections", cid, err, len(cz.Conns))
	}
	return cz.Conns[0].Account
}

// accountID is the server's name of the application account name.
func (e *modeEnv) accountID(name string) string {
	e.t.Helper()
	if e.mode == deploy.ModeConfig {
		return name
	}
	s, err := e.l.LoadSecrets()
	if err != nil {
		e.t.Fatal(err)
	}
	p, err := s.Operator.Accounts[name].Pub()
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

func pub(t *testing.T, seed string) string {
	t.Helper()
	kp, err := nkeys.FromSeed([]byte(seed))
	if err != nil {
		t.Fatal(err)
	}
	p, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// requirePubSub checks that nc can publish to and receive on subj.
func requirePubSub(t *testing.T, nc *nats.Conn, subj string) {
	t.Helper()
	sub, err := nc.SubscribeSync(subj)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish(subj, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("publish and receive on %s: %v", subj, err)
	}
}

// requireViolation publishes to pubSubj (when set) and subscribes to
// subSubj (when set), and checks each gives a permissions violation.
func requireViolation(t *testing.T, nc *nats.Conn, errs chan error, pubSubj, subSubj string) {
	t.Helper()
	for _, c := range []struct {
		subj string
		do   func(string) error
	}{
		{pubSubj, func(s string) error { return nc.Publish(s, []byte("x")) }},
		{subSubj, func(s string) error { _, err := nc.SubscribeSync(s); return err }},
	} {
		if c.subj == "" {
			continue
		}
		if err := c.do(c.subj); err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		deadline := time.After(5 * time.Second)
	wait:
		for {
			select {
			case err := <-errs:
				if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), c.subj) {
					break wait
				}
			case <-deadline:
				t.Fatalf("no permissions violation for %q", c.subj)
			}
		}
	}
}

var alice = accounts.User{
	Name:    "alice",
	Account: "APP",
	Permissions: accounts.Permissions{
		Pub: accounts.Rule{Allow: []string{"app.>"}, Deny: []string{"app.secret.>"}},
		Sub: accounts.Rule{Allow: []string{"app.>", "_INBOX.>"}, Deny: []string{"app.secret.>"}},
	},
}

const alicePW = "alice-pw-7f3a-long"

// TestModesLogin is the login story in both modes, from the nats.conf
// init writes: a user logs in with a username and password only (in
// operator mode the server's default_sentinel sends it through the
// relay), lands in its account and can publish and subscribe what its
// permissions allow and nothing else; refused logins carry the relay's
// reason code, the client seeing only Authorization Violation
// (…ClientAuthErrorOperatorMode); the login requests are sealed to the
// relay's xkey (…OperatorModeEncryption).
func TestModesLogin(t *testing.T) {
	for _, mode := range loginModes() {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			e := newModeEnv(t, mode, nil, nil)
			e.addUser(alice, alicePW)
			e.addUser(accounts.User{Name: "dis", Account: "APP", Disabled: true}, "dis-pw-91c2-long")
			e.startRelay(nil)

			// Every request the server sends is sealed: a second
			// subscriber in the callout account sees ciphertext and the
			// server's xkey header, never a JWT with the password in it.
			probe := e.relayConn()
			requests, err := probe.SubscribeSync(relay.Subject)
			if err != nil {
				t.Fatal(err)
			}
			if err := probe.Flush(); err != nil {
				t.Fatal(err)
			}

			nc, errs := e.mustConnect("alice", alicePW)
			if got, want := e.accountOf(nc), e.accountID("APP"); got != want {
				t.Errorf("alice is in account %q, want %q (APP)", got, want)
			}
			requirePubSub(t, nc, "app.orders")
			requireViolation(t, nc, errs, "app.secret.plans", "")
			requireViolation(t, nc, errs, "elsewhere", "elsewhere.>")
			if !nc.IsConnected() {
				t.Error("permission violations closed the connection")
			}

			m, err := requests.NextMsg(5 * time.Second)
			if err != nil {
				t.Fatalf("no login request seen: %v", err)
			}
			if m.Header.Get("Nats-Server-Xkey") == "" || strings.HasPrefix(string(m.Data), "eyJ") || strings.Contains(string(m.Data), alicePW) {
				t.Errorf("login request not sealed to the relay's xkey: header %q, %d bytes", m.Header.Get("Nats-Server-Xkey"), len(m.Data))
			}

			reasons := e.authErrors()
			for _, c := range []struct{ name, user, pw, want string }{
				{"wrong password", "alice", "wrong-pw-0b1e-long", relay.ReasonBadCredentials},
				{"unknown user", "mallory", alicePW, relay.ReasonBadCredentials},
				{"disabled user", "dis", "dis-pw-91c2-long", relay.ReasonUserDisabled},
				{"no credentials", "", "", relay.ReasonNoCredentials},
			} {
				t.Run(c.name, func(t *testing.T) {
					e.t = t
					e.requireDenied(reasons, c.want, c.user, c.pw)
				})
			}
		})
	}
}

// resignAccount rewrites the account JWT of the account pub in l's
// resolver after edit, signed by the operator's signing key, as an
// operator's admin would with nsc.
func resignAccount(t *testing.T, l deploy.Layout, pub string, edit func(*jwt.AccountClaims)) {
	t.Helper()
	oi, err := l.Operator()
	if err != nil {
		t.Fatal(err)
	}
	ac, err := l.AccountJWT(oi, pub)
	if err != nil {
		t.Fatal(err)
	}
	edit(ac)
	s, err := l.LoadSecrets()
	if err != nil {
		t.Fatal(err)
	}
	osk, err := nkeys.FromSeed([]byte(s.Operator.OperatorSigning))
	if err != nil {
		t.Fatal(err)
	}
	j, err := ac.Encode(osk)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(l.Path(deploy.ResolverDir+"/"+pub+".jwt"), []byte(j), 0o644); err != nil {
		t.Fatal(err)
	}
}

// authPub is the AUTH account's public key.
func authPub(t *testing.T, l deploy.Layout) string {
	t.Helper()
	oi, err := l.Operator()
	if err != nil {
		t.Fatal(err)
	}
	return oi.AuthAccount
}

// TestOperatorAccountNotAllowed: the relay never places a user in an
// account the AUTH account's JWT does not allow, and says so with
// account_not_allowed (the server alone would reject the JWT with its own
// reason, or time out). The user moved to an allowed account logs in.
func TestOperatorAccountNotAllowed(t *testing.T) {
	var ordersPub string
	e := newModeEnv(t, deploy.ModeOperator, []string{"APP", "ORDERS"}, func(l deploy.Layout) {
		s, err := l.LoadSecrets()
		if err != nil {
			t.Fatal(err)
		}
		ordersPub = pub(t, s.Operator.Accounts["ORDERS"].Seed)
		// The admin took ORDERS out of the callout's allowed accounts.
		resignAccount(t, l, authPub(t, l), func(ac *jwt.AccountClaims) {
			ac.Authorization.AllowedAccounts.Remove(ordersPub)
		})
	})
	if got := e.id.Accounts; len(got) != 1 || got[0] != "APP" {
		t.Fatalf("placeable accounts = %v, want [APP]", got)
	}
	bob := accounts.User{Name: "bob", Account: "ORDERS", Permissions: alice.Permissions}
	e.addUser(bob, "bob-pw-5d5d-long")
	e.startRelay(nil)
	reasons := e.authErrors()
	e.requireDenied(reasons, relay.ReasonAccountNotAllowed, "bob", "bob-pw-5d5d-long")

	if err := e.db.UpdateUser(context.Background(), "bob", func(u *accounts.User) error { u.Account = "APP"; return nil }); err != nil {
		t.Fatal(err)
	}
	nc, _ := e.mustConnect("bob", "bob-pw-5d5d-long")
	if got, want := e.accountOf(nc), e.accountID("APP"); got != want {
		t.Errorf("bob is in account %q, want APP's %q", got, want)
	}
	requirePubSub(t, nc, "app.x")
}

// TestOperatorAccountsFollowed: a running relay follows an admin's change
// to the accounts' JWTs (as nsc would push it) within about a second: an
// account taken out of AUTH's allowed_accounts is refused with
// account_not_allowed, not placed in for the server to reject; put back,
// its users log in again. No restart, no account command.
func TestOperatorAccountsFollowed(t *testing.T) {
	e := newModeEnv(t, deploy.ModeOperator, []string{"APP", "ORDERS"}, nil)
	bob := accounts.User{Name: "bob", Account: "ORDERS", Permissions: alice.Permissions}
	e.addUser(bob, "bob-pw-5d5d-long")
	e.startRelay(nil)
	nc, _ := e.mustConnect("bob", "bob-pw-5d5d-long")
	nc.Close()
	orders := e.accountID("ORDERS")
	push := func(edit func(*jwt.AccountClaims)) {
		t.Helper()
		resignAccount(t, e.l, authPub(t, e.l), edit)
		res, err := e.l.ReloadAt(context.Background(), e.srv.ClientURL(), 5*time.Second)
		if err != nil || len(res) != 1 || res[0].Err != nil {
			t.Fatalf("push AUTH: %v, %+v", err, res)
		}
	}
	push(func(ac *jwt.AccountClaims) { ac.Authorization.AllowedAccounts.Remove(orders) })
	reasons := e.authErrors()
	deadline := time.Now().Add(5 * time.Second)
	var seen []string
	for {
		nc, _, err := e.connect("bob", "bob-pw-5d5d-long")
		if err == nil {
			nc.Close()
		} else {
			select {
			case r := <-reasons:
				if strings.Contains(r, relay.ReasonAccountNotAllowed) {
					goto back
				}
				seen = append(seen[max(0, len(seen)-2):], accounts.Clip(r, 200))
			case <-time.After(5 * time.Second):
				t.Fatalf("refused (%v) without an auth error event", err)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob's login not refused with %s within 5s of ORDERS leaving allowed_accounts (the last other refusals: %q)", relay.ReasonAccountNotAllowed, seen)
		}
		time.Sleep(100 * time.Millisecond)
	}
back:
	push(func(ac *jwt.AccountClaims) { ac.Authorization.AllowedAccounts.Add(orders) })
	e.waitLogin(t, "bob", "bob-pw-5d5d-long", 5*time.Second)
}

// waitLogin waits until user logs in with pw.
func (e *modeEnv) waitLogin(t *testing.T, user, pw string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		nc, _, err := e.connect(user, pw)
		if err == nil {
			nc.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s cannot log in within %v: %v", user, within, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestOperatorScopedSigningKey: in an account whose signing key is scoped,
// the relay's user JWT carries no permissions of its own and the scope's
// template applies (…ScopedUser*): the user may use what the template
// grants, not what its own permissions would.
func TestOperatorScopedSigningKey(t *testing.T) {
	e := newModeEnv(t, deploy.ModeOperator, nil, func(l deploy.Layout) {
		s, err := l.LoadSecrets()
		if err != nil {
			t.Fatal(err)
		}
		seeds := s.Operator.Accounts["APP"]
		sk, err := nkeys.CreateAccount()
		if err != nil {
			t.Fatal(err)
		}
		skSeed, err := sk.Seed()
		if err != nil {
			t.Fatal(err)
		}
		scope := jwt.NewUserScope()
		scope.Key = pub(t, string(skSeed))
		scope.Role = "scoped"
		scope.Template.Pub.Allow.Add("scoped.>")
		scope.Template.Sub.Allow.Add("scoped.>", "_INBOX.>")
		resignAccount(t, l, pub(t, seeds.Seed), func(ac *jwt.AccountClaims) {
			ac.SigningKeys = jwt.SigningKeys{}
			ac.SigningKeys.AddScopedSigner(scope)
		})
		seeds.SigningSeed = string(skSeed)
		s.Operator.Accounts["APP"] = seeds
		writeSecrets(t, l, s)
	})
	e.addUser(alice, alicePW)
	e.startRelay(nil)

	uc, err := e.id.Issuer.UserClaims(accounts.Grant{Name: "alice", Account: "APP", Permissions: alice.Permissions}, pub(t, mustUserSeed(t)), time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !uc.HasEmptyPermissions() {
		t.Errorf("scoped user JWT carries permissions or limits: %+v", uc.UserPermissionLimits)
	}

	nc, errs := e.mustConnect("alice", alicePW)
	requirePubSub(t, nc, "scoped.a")
	requireViolation(t, nc, errs, "app.orders", "app.orders")
}

func mustUserSeed(t *testing.T) string {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, err := kp.Seed()
	if err != nil {
		t.Fatal(err)
	}
	return string(seed)
}

// writeSecrets replaces l's secrets.json with s.
func writeSecrets(t *testing.T, l deploy.Layout, s deploy.Secrets) {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(l.Path(deploy.SecretsFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestOperatorResponseIssuerMustBeKnownSigner: with requests in clear (the
// AUTH JWT has no xkey), the server accepts only responses signed by the
// AUTH account or one of its signing keys
// (…OperatorModeResponseIssuerAccountRequiresKnownSigner). The relay's
// own issuer, AUTH's signing key, is accepted; a relay holding any other
// account key is refused by the server, whatever user JWT it sends.
func TestOperatorResponseIssuerMustBeKnownSigner(t *testing.T) {
	e := newModeEnv(t, deploy.ModeOperator, nil, func(l deploy.Layout) {
		resignAccount(t, l, authPub(t, l), func(ac *jwt.AccountClaims) { ac.Authorization.XKey = "" })
	})
	e.addUser(alice, alicePW)

	t.Run("unknown signer", func(t *testing.T) {
		e.t = t
		s, err := e.l.LoadSecrets()
		if err != nil {
			t.Fatal(err)
		}
		app := s.Operator.Accounts["APP"]
		placement, err := accounts.NewOperatorMode(authPub(t, e.l), []accounts.OperatorAccount{{Name: "APP", PublicKey: pub(t, app.Seed), SigningSeed: app.SigningSeed}})
		if err != nil {
			t.Fatal(err)
		}
		keys, err := accounts.GenerateKeys()
		if err != nil {
			t.Fatal(err)
		}
		forged, err := accounts.NewIssuer(keys.IssuerSeed, placement)
		if err != nil {
			t.Fatal(err)
		}
		e.startRelay(func(c *relay.Config) { c.Issuer, c.XKey = forged, nil })
		e.requireDenied(e.authErrors(), "signing key is unknown", "alice", alicePW)
	})
	t.Run("the AUTH signing key", func(t *testing.T) {
		e.t = t
		e.startRelay(func(c *relay.Config) { c.XKey = nil })
		nc, _ := e.mustConnect("alice", alicePW)
		requirePubSub(t, nc, "app.orders")
	})
}

// TestAccountAddDisconnects adds an account while 200 clients logged in
// through the relay are connected, the way 'authrelay account add' does it
// (the database, WriteAccountsConf, ReloadAt), and counts the clients the
// server disconnects. In operator mode the account JWT is pushed to the
// resolver: nobody is disconnected, a user of the new account logs in at
// once, and a limit set on it afterwards ('account set') applies live. In
// config mode the same steps reload the server's config, which
// disconnects every client (they reconnect): the reload storm operator
// mode avoids.
func TestAccountAddDisconnects(t *testing.T) {
	const clients = 200
	for _, mode := range modes() {
		t.Run(string(mode), func(t *testing.T) {
			ctx := context.Background()
			e := newModeEnv(t, mode, nil, nil)
			e.addUser(alice, alicePW)
			e.startRelay(func(c *relay.Config) { c.CacheTTL = time.Minute })

			var disconnects atomic.Int64
			conns := make([]*nats.Conn, 0, clients)
			for i := 0; i < clients; i++ {
				nc, _, err := e.connect("alice", alicePW, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond),
					nats.DisconnectErrHandler(func(*nats.Conn, error) { disconnects.Add(1) }))
				if err != nil {
					t.Fatalf("client %d: %v", i, err)
				}
				conns = append(conns, nc)
			}
			t.Cleanup(func() {
				// All at once: a client in the middle of reconnecting
				// takes a while to close.
				var wg sync.WaitGroup
				for _, nc := range conns {
					wg.Go(nc.Close)
				}
				wg.Wait()
			})

			changed := func(what string, change func() error) {
				t.Helper()
				if err := change(); err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				if _, err := e.l.WriteAccountsConf(ctx, e.db); err != nil {
					t.Fatalf("%s: write accounts: %v", what, err)
				}
				res, err := e.l.ReloadAt(ctx, e.srv.ClientURL(), 5*time.Second)
				if err != nil {
					t.Fatalf("%s: apply: %v", what, err)
				}
				for _, r := range res {
					if r.Err != nil {
						t.Fatalf("%s: server %s: %v", what, r.Label(), r.Err)
					}
				}
			}
			changed("account add ORDERS", func() error { return e.db.AddAccount(ctx, "ORDERS") })
			time.Sleep(time.Second) // a disconnect storm, if any, has begun
			got := disconnects.Load()
			t.Logf("%s mode: %d of %d connected clients disconnected by an account add", mode, got, clients)
			if mode == deploy.ModeConfig {
				if got == 0 {
					t.Errorf("config mode: the reload disconnected no client; this test documents that it disconnects them all (relay/limits_test.go)")
				}
				return
			}
			if got != 0 {
				t.Errorf("account add disconnected %d of %d clients in operator mode, want none", got, clients)
			}

			// The new account takes logins at once: the relay learns it
			// from the directory on the first placement there.
			e.addUser(accounts.User{Name: "bob", Account: "ORDERS", Permissions: alice.Permissions}, "bob-pw-5d5d-long")
			bob, _, err := e.connect("bob", "bob-pw-5d5d-long")
			if err != nil {
				t.Fatalf("bob in the new account ORDERS cannot log in: %v", err)
			}
			if got, want := e.accountOf(bob), e.accountID("ORDERS"); got != want {
				t.Errorf("bob is in account %q, want ORDERS (%q)", got, want)
			}
			requirePubSub(t, bob, "app.x")

			// A limit set on the account applies live too: bob holds
			// ORDERS' only connection.
			changed("account set ORDERS --max-connections 1", func() error {
				return e.db.UpdateAccount(ctx, accounts.Account{Name: "ORDERS", Limits: accounts.AccountLimits{MaxConnections: 1}})
			})
			deadline := time.Now().Add(10 * time.Second)
			for {
				nc, _, err := e.connect("bob", "bob-pw-5d5d-long")
				if errors.Is(err, nats.ErrMaxAccountConnectionsExceeded) {
					break // refused by the account's limit: it is live
				}
				if err != nil {
					t.Fatalf("second connection to ORDERS: %v, want %v", err, nats.ErrMaxAccountConnectionsExceeded)
				}
				nc.Close()
				if time.Now().After(deadline) {
					t.Fatal("a second connection to ORDERS is still accepted 10s after --max-connections 1 was pushed")
				}
				time.Sleep(100 * time.Millisecond)
			}
			if !bob.IsConnected() {
				t.Error("the pushed limit disconnected bob, the account's one connection")
			}
			if got := disconnects.Load(); got != 0 {
				t.Errorf("account set disconnected %d of the %d clients of APP", got, clients)
			}

			// account rm: the server deletes the account from its
			// resolver, AUTH no longer allows it, APP's clients stay.
			bob.Close()
			if err := e.db.RemoveUser(ctx, "bob"); err != nil {
				t.Fatal(err)
			}
			ordersPub := e.accountID("ORDERS")
			changed("account rm ORDERS", func() error { return e.db.RemoveAccount(ctx, "ORDERS") })
			admin, err := e.l.ConnectAdmin(e.srv.ClientURL(), "test", 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer admin.Close()
			m, err := admin.Request("$SYS.REQ.ACCOUNT."+ordersPub+".CLAIMS.LOOKUP", nil, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Data) != 0 {
				t.Errorf("the server's resolver still has the removed account ORDERS: %.60s…", m.Data)
			}
			oi, err := e.l.Operator()
			if err != nil {
				t.Fatal(err)
			}
			if auth, err := e.l.AccountJWT(oi, oi.AuthAccount); err != nil || auth.Authorization.AllowedAccounts.Contains(ordersPub) {
				t.Errorf("AUTH still allows the removed account ORDERS (err %v)", err)
			}
			if got := disconnects.Load(); got != 0 {
				t.Errorf("account rm disconnected %d of the %d clients of APP", got, clients)
			}
		})
	}
}

// TestModesRevocation: disabling a user closes its live connection in
// both modes: the relay kicks it as the system admin of the directory (in
// operator mode a user JWT of SYS that authrelay signs), and the next
// connect is refused.
func TestModesRevocation(t *testing.T) {
	for _, mode := range loginModes() {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			e := newModeEnv(t, mode, nil, nil)
			e.addUser(alice, alicePW)
			if e.id.AdminLogin == nil {
				t.Fatal("the directory has no admin login")
			}
			e.startRelay(func(c *relay.Config) {
				c.Revoke = &relay.RevokeConfig{AdminUser: e.id.AdminUser, AdminLogin: e.id.AdminLogin, Changes: e.db, Poll: 100 * time.Millisecond}
			})
			closed := make(chan struct{})
			nc, _, err := e.connect("alice", alicePW, nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
			if err != nil {
				t.Fatal(err)
			}
			requirePubSub(t, nc, "app.orders")
			if err := e.db.UpdateUser(context.Background(), "alice", func(u *accounts.User) error { u.Disabled = true; return nil }); err != nil {
				t.Fatal(err)
			}
			select {
			case <-closed:
			case <-time.After(10 * time.Second):
				t.Fatal("alice's connection is still open 10s after she was disabled")
			}
			e.requireDenied(e.authErrors(), relay.ReasonUserDisabled, "alice", alicePW)
		})
	}
}

// slowUsers is the store with a password check that takes delay longer.
type slowUsers struct {
	*store.DB
	delay time.Duration
}

func (u slowUsers) Authenticate(ctx context.Context, name, password string) (accounts.User, error) {
	time.Sleep(u.delay)
	return u.DB.Authenticate(ctx, name, password)
}

// TestModesNewUserStaysConnected: a user added while the relay runs, with
// revocation on, logs in at once and stays connected: the change that
// added it is swept for older connections, and the login being decided
// (in operator mode a client the default sentinel put in the callout
// account) is not one of them. Disabling the user then closes the
// connection (the positive control: the kick reaches it).
func TestModesNewUserStaysConnected(t *testing.T) {
	for _, mode := range loginModes() {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			e := newModeEnv(t, mode, nil, nil)
			e.startRelay(func(c *relay.Config) {
				// A password check slow enough that the sweep runs
				// while the login is being decided.
				c.Users = slowUsers{DB: e.db, delay: 300 * time.Millisecond}
				c.Revoke = &relay.RevokeConfig{AdminUser: e.id.AdminUser, AdminLogin: e.id.AdminLogin, Changes: e.db, Poll: 20 * time.Millisecond}
			})
			type conn struct {
				nc     *nats.Conn
				closed chan struct{}
			}
			var conns []conn
			for i := range 3 {
				u := alice
				u.Name = fmt.Sprintf("new%d", i)
				e.addUser(u, alicePW)
				closed := make(chan struct{})
				// A slow check on a loaded machine: more than the
				// client's default 2 s to be connected.
				nc, _, err := e.connect(u.Name, alicePW, nats.ClosedHandler(func(*nats.Conn) { close(closed) }), nats.Timeout(20*time.Second))
				if err != nil {
					t.Fatalf("%s right after it was added: %v", u.Name, err)
				}
				conns = append(conns, conn{nc, closed})
			}
			time.Sleep(time.Second)
			for i, c := range conns {
				if !c.nc.IsConnected() {
					t.Fatalf("new%d was disconnected after its login (kicked for the change that added it)", i)
				}
				requirePubSub(t, c.nc, "app.orders")
			}
			if err := e.db.UpdateUser(context.Background(), "new0", func(u *accounts.User) error { u.Disabled = true; return nil }); err != nil {
				t.Fatal(err)
			}
			select {
			case <-conns[0].closed:
			case <-time.After(10 * time.Second):
				t.Fatal("new0's connection is still open 10s after it was disabled")
			}
		})
	}
}

// TestOperatorUserRevocation is nats-server's
// TestOperatorModeUserRevocation against the relay: an admin's revocation
// in the application account's JWT (as 'nsc revocations add-user' makes
// it) of the user key of one relay-authorised connection closes that one
// with "authentication revoked" and leaves the others; revoking every user
// ("*") closes the rest.
func TestOperatorUserRevocation(t *testing.T) {
	e := newModeEnv(t, deploy.ModeOperator, nil, nil)
	bob := alice
	bob.Name = "bob"
	e.addUser(alice, alicePW)
	e.addUser(bob, alicePW)
	e.startRelay(nil)
	// The user key of each login, from the requests the server sends (a
	// second subscriber sees them, sealed to the relay's xkey).
	probe := e.relayConn()
	requests, err := probe.SubscribeSync(relay.Subject)
	if err != nil {
		t.Fatal(err)
	}
	if err := probe.Flush(); err != nil {
		t.Fatal(err)
	}
	revoked := func(user string) (*nats.Conn, chan struct{}) {
		done := make(chan struct{})
		var once sync.Once
		nc, _, err := e.connect(user, alicePW, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrAuthRevoked) {
				once.Do(func() { close(done) })
			}
		}))
		if err != nil {
			t.Fatalf("connect %s: %v", user, err)
		}
		return nc, done
	}
	_, aliceRevoked := revoked("alice")
	m, err := requests.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("alice's login request: %v", err)
	}
	opened, err := e.id.XKey.Open(m.Data, m.Header.Get("Nats-Server-Xkey"))
	if err != nil {
		t.Fatal(err)
	}
	req, err := jwt.DecodeAuthorizationRequestClaims(string(opened))
	if err != nil || req.ConnectOptions.Username != "alice" {
		t.Fatalf("alice's login request: %v, user %q", err, req.ConnectOptions.Username)
	}
	ncB, bobRevoked := revoked("bob")
	app := e.accountID("APP")
	push := func(edit func(*jwt.AccountClaims)) {
		t.Helper()
		resignAccount(t, e.l, app, edit)
		res, err := e.l.ReloadAt(context.Background(), e.srv.ClientURL(), 5*time.Second)
		if err != nil || len(res) != 1 || res[0].Err != nil {
			t.Fatalf("push APP: %v, %+v", err, res)
		}
	}
	push(func(ac *jwt.AccountClaims) { ac.Revoke(req.UserNkey) })
	select {
	case <-aliceRevoked:
	case <-time.After(10 * time.Second):
		t.Fatal("alice's connection not revoked within 10s of the account JWT revoking its user key")
	}
	time.Sleep(200 * time.Millisecond)
	if !ncB.IsConnected() {
		t.Fatal("bob's connection closed by a revocation of alice's user key")
	}
	requirePubSub(t, ncB, "app.orders")
	push(func(ac *jwt.AccountClaims) { ac.RevokeAt(jwt.All, time.Now().Add(time.Minute)) })
	select {
	case <-bobRevoked:
	case <-time.After(10 * time.Second):
		t.Fatal("bob's connection not revoked within 10s of the account JWT revoking every user")
	}
}

// observations records the relay's decisions (relay.Observer).
type observations struct {
	mu  sync.Mutex
	obs []relay.Observation
}

func (o *observations) Decision(ob relay.Observation) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.obs = append(o.obs, ob)
}

func (o *observations) Kick(relay.Kick) {}

// nth waits for the n-th decision (from 1) and returns it: the relay
// tells its observer after it answers, so a client can be connected
// before its decision is observed.
func (o *observations) nth(t *testing.T, n int) relay.Observation {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		o.mu.Lock()
		if len(o.obs) >= n {
			ob := o.obs[n-1]
			o.mu.Unlock()
			return ob
		}
		o.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("decision %d not observed within 10s", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestModesSharedFeatures: what authrelay adds to a login is the same in
// every server mode: a role's grant with {{name}} expanded, the credential
// cache answering a reconnect, the lockout of a guessed password (its
// reason the relay's, the right password then refused too), and the audit
// trail of the logins.
func TestModesSharedFeatures(t *testing.T) {
	for _, mode := range loginModes() {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := newModeEnv(t, mode, nil, nil)
			role := accounts.Role{Name: "svc", Permissions: accounts.Permissions{
				Pub: accounts.Rule{Allow: []string{"svc." + accounts.TemplateName + ".>"}},
				Sub: accounts.Rule{Allow: []string{"svc." + accounts.TemplateName + ".>", "_INBOX.>"}},
			}}
			if err := e.db.AddRole(ctx, role); err != nil {
				t.Fatal(err)
			}
			e.addUser(accounts.User{Name: "carol", Account: "APP", Roles: []string{"svc"}}, alicePW)
			e.addUser(alice, alicePW)
			audit := e.db.NewAuditWriter(store.AuditOptions{})
			var obs observations
			e.startRelay(func(c *relay.Config) {
				c.Guard = e.db.Lockouts(accounts.DefaultLockoutPolicy)
				c.Audit = audit
				c.CacheTTL, c.CacheSize = time.Minute, 100
				c.Observer = &obs
			})

			// The role's grant, with carol's name in it.
			nc, errs := e.mustConnect("carol", alicePW)
			requirePubSub(t, nc, "svc.carol.x")
			requireViolation(t, nc, errs, "svc.dave.x", "svc.dave.x")
			nc.Close()
			if o := obs.nth(t, 1); !o.Allowed || o.CacheHit {
				t.Errorf("carol's first login: %+v, want allowed, from a verified password", o)
			}
			// The reconnect is answered from the cache.
			nc, _ = e.mustConnect("carol", alicePW)
			requirePubSub(t, nc, "svc.carol.x")
			nc.Close()
			if o := obs.nth(t, 2); !o.Allowed || !o.CacheHit {
				t.Errorf("carol's reconnect: %+v, want allowed from the cache", o)
			}

			// Five wrong passwords lock alice at this address; then the
			// right one is refused as locked out too.
			reasons := e.authErrors()
			for range accounts.DefaultLockoutPolicy.Threshold {
				e.requireDenied(reasons, relay.ReasonBadCredentials, "alice", "wrong-pw-0b1e-long")
			}
			e.requireDenied(reasons, relay.ReasonLockedOut, "alice", alicePW)

			if err := audit.Close(ctx); err != nil {
				t.Fatal(err)
			}
			rows, err := e.db.Audit(ctx, store.AuditFilter{Kind: store.AuditLogin})
			if err != nil {
				t.Fatal(err)
			}
			var carolOK, aliceLocked int
			for _, r := range rows {
				switch {
				case r.User == "carol" && r.Result == store.AuditAllowed && r.Account == "APP":
					carolOK++
				case r.User == "alice" && r.Result == store.AuditDenied && r.Reason == relay.ReasonLockedOut:
					aliceLocked++
				}
			}
			if carolOK != 2 || aliceLocked != 1 {
				t.Errorf("audit trail: %d allowed logins of carol in APP (want 2), %d locked_out of alice (want 1); %d rows", carolOK, aliceLocked, len(rows))
			}
		})
	}
}

// TestModesTLS: with init's --tls-cert and --tls-key the server takes TLS
// clients only, in both modes: the relay connects over TLS with the CA,
// a user logs in over TLS through it, and a wrong password is refused
// with the relay's reason; without the CA a client cannot connect.
func TestModesTLS(t *testing.T) {
	ca, cert, key := testtls.Files(t)
	for _, mode := range modes() {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			e := newModeEnvInit(t, mode, deploy.InitOptions{TLS: deploy.TLSFiles{Cert: cert, Key: key}}, nil)
			e.clientOpts = []nats.Option{nats.RootCAs(ca)}
			e.addUser(alice, alicePW)
			e.startRelay(nil)
			nc, _ := e.mustConnect("alice", alicePW)
			if !nc.TLSRequired() {
				t.Error("the server does not require TLS")
			}
			if _, err := nc.TLSConnectionState(); err != nil {
				t.Errorf("alice's connection is not TLS: %v", err)
			}
			requirePubSub(t, nc, "app.orders")
			e.requireDenied(e.authErrors(), relay.ReasonBadCredentials, "alice", "wrong-pw-0b1e-long")
			plain, err := nats.Connect(e.srv.ClientURL(), nats.UserInfo("alice", alicePW), nats.MaxReconnects(0))
			if err == nil {
				plain.Close()
				t.Error("a client without the CA connected to the TLS server")
			}
		})
	}
}

// TestModesSessionExpiry: when no kick reaches a connection, the session
// still ends at its JWT's expiry, in both modes: the server closes it with
// an authorization expired error, and the client's reconnect goes through
// the relay again (refused once the user is disabled: the README's bound
// on a revoked user's connection).
func TestModesSessionExpiry(t *testing.T) {
	for _, mode := range loginModes() {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			e := newModeEnv(t, mode, nil, nil)
			e.addUser(alice, alicePW)
			e.startRelay(func(c *relay.Config) { c.SessionTTL = 2 * time.Second }) // no revocation: no kick
			reconnected := make(chan struct{}, 4)
			nc, errs, err := e.connect("alice", alicePW, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond),
				nats.ReconnectHandler(func(*nats.Conn) { reconnected <- struct{}{} }))
			if err != nil {
				t.Fatal(err)
			}
			requirePubSub(t, nc, "app.orders")
			select {
			case err := <-errs:
				if !errors.Is(err, nats.ErrAuthExpired) {
					t.Fatalf("server said %v, want %v", err, nats.ErrAuthExpired)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("session not ended by the server within 10s of a 2s session")
			}
			select {
			case <-reconnected:
			case <-time.After(10 * time.Second):
				t.Fatal("did not reconnect after the session expired")
			}
			requirePubSub(t, nc, "app.orders")
			// Disabled, with no kick: the next expiry ends the session and
			// the relay refuses the reconnect.
			if err := e.db.UpdateUser(context.Background(), "alice", func(u *accounts.User) error { u.Disabled = true; return nil }); err != nil {
				t.Fatal(err)
			}
			reasons := e.authErrors()
			deadline := time.After(10 * time.Second)
			var seen []string
			for {
				select {
				case r := <-reasons:
					if strings.Contains(r, relay.ReasonUserDisabled) {
						return
					}
					seen = append(seen, r)
				case <-deadline:
					t.Fatalf("the disabled user's reconnect was not refused with %s within 10s of its session's expiry (auth errors: %q)", relay.ReasonUserDisabled, seen)
				}
			}
		})
	}
}

// TestOperatorAccountsConcurrent: account commands running at once each
// keep the others' accounts: every account ends with its seeds in
// secrets.json, its JWT in the resolver and its place in AUTH's
// allowed_accounts.
func TestOperatorAccountsConcurrent(t *testing.T) {
	ctx := context.Background()
	l := deploy.Layout{Dir: t.TempDir()}
	if err := deploy.Init(ctx, l, deploy.InitOptions{Accounts: []string{"APP"}, Listen: "127.0.0.1:4222", BcryptCost: 4, Operator: true}); err != nil {
		t.Fatal(err)
	}
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			// Each command has its own database handle, as separate
			// processes do.
			db, err := l.OpenDatabase(ctx)
			if err != nil {
				errs <- err
				return
			}
			defer db.Close()
			if err := db.AddAccount(ctx, fmt.Sprintf("ACC%d", i)); err != nil {
				errs <- err
				return
			}
			if _, err := l.WriteAccountsConf(ctx, db); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	s, err := l.LoadSecrets()
	if err != nil {
		t.Fatal(err)
	}
	oi, err := l.Operator()
	if err != nil {
		t.Fatal(err)
	}
	auth, err := l.AccountJWT(oi, oi.AuthAccount)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		name := fmt.Sprintf("ACC%d", i)
		seeds, ok := s.Operator.Accounts[name]
		if !ok {
			t.Errorf("%s has no seeds in secrets.json", name)
			continue
		}
		p := pub(t, seeds.Seed)
		ac, err := l.AccountJWT(oi, p)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if ac.Name != name || !ac.SigningKeys.Contains(pub(t, seeds.SigningSeed)) {
			t.Errorf("%s: JWT named %q, signing keys %v", name, ac.Name, ac.SigningKeys.Keys())
		}
		if !auth.Authorization.AllowedAccounts.Contains(p) {
			t.Errorf("%s is not in AUTH's allowed_accounts", name)
		}
	}
	id, err := l.Identity()
	if err != nil {
		t.Fatal(err)
	}
	if len(id.Accounts) != n+1 {
		t.Errorf("placeable accounts %v, want APP and the %d added", id.Accounts, n)
	}
}

// TestServersLackingModes: 'user explain' asks whether the servers have
// an account; in operator mode it asks the resolver by public key, so an
// account of the directory is there (loaded or not) and one authrelay
// holds no keys for is not.
func TestServersLackingModes(t *testing.T) {
	for _, mode := range modes() {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			e := newModeEnv(t, mode, nil, nil)
			nc, err := e.l.ConnectAdmin(e.srv.ClientURL(), "test", 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			for _, c := range []struct {
				account string
				lacking int
			}{{"APP", 0}, {"NOPE", 1}} {
				lacking, servers, err := e.l.ServersLacking(context.Background(), nc, c.account, 5*time.Second)
				if err != nil || servers != 1 || len(lacking) != c.lacking {
					t.Errorf("%s: lacking %v of %d servers, %v; want %d lacking of 1", c.account, lacking, servers, err, c.lacking)
				}
			}
		})
	}
}

// TestModesMQTT: an MQTT client with only a username and password logs in
// through the relay in both modes; in operator mode the server hands it
// the default_sentinel (…OperatorModeMQTTOpaquePasswordUsesDefaultSentinel).
// A wrong password is refused with the relay's reason.
func TestModesMQTT(t *testing.T) {
	for _, mode := range modes() {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			mqtt := loopback.Addr(t)
			e := newModeEnvInit(t, mode, deploy.InitOptions{MQTTListen: mqtt}, func(l deploy.Layout) {
				// MQTT needs JetStream in the user's account.
				ctx := context.Background()
				db, err := l.OpenDatabase(ctx)
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				if err := db.UpdateAccount(ctx, accounts.Account{Name: "APP", JetStream: true}); err != nil {
					t.Fatal(err)
				}
				if _, err := l.WriteAccountsConf(ctx, db); err != nil {
					t.Fatal(err)
				}
			})
			e.addUser(alice, alicePW)
			e.startRelay(nil)
			reasons := e.authErrors()
			if code := mqttConnect(t, mqtt, "alice", alicePW); code != 0 {
				t.Fatalf("mqtt login as alice: CONNACK return code %d, want 0 (accepted)", code)
			}
			if code := mqttConnect(t, mqtt, "alice", "wrong-pw-0b1e-long"); code != 5 {
				t.Errorf("mqtt login with a wrong password: CONNACK return code %d, want 5 (not authorized)", code)
			}
			select {
			case got := <-reasons:
				if !strings.Contains(got, relay.ReasonBadCredentials) {
					t.Errorf("auth error reason %q, want %s", got, relay.ReasonBadCredentials)
				}
			case <-time.After(5 * time.Second):
				t.Error("no auth error event for the wrong MQTT password")
			}
		})
	}
}

// mqttConnect sends an MQTT 3.1.1 CONNECT with user and password to addr
// and returns the CONNACK's return code.
func mqttConnect(t *testing.T, addr, user, password string) byte {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("mqtt dial %s: %v", addr, err)
	}
	defer conn.Close()
	str := func(b []byte, s string) []byte { return append(binary.BigEndian.AppendUint16(b, uint16(len(s))), s...) }
	var body []byte
	body = str(body, "MQTT")
	body = append(body, 4, 0x80|0x40|0x02) // 3.1.1; username, password, clean session
	body = binary.BigEndian.AppendUint16(body, 30)
	body = str(body, "mqtt-"+user)
	body = str(body, user)
	body = str(body, password)
	pkt := append([]byte{0x10, byte(len(body))}, body...) // under 128 bytes: one length byte
	if len(body) >= 128 {
		t.Fatal("mqtt connect packet too long for this test client")
	}
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(pkt); err != nil {
		t.Fatalf("mqtt write: %v", err)
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(conn, ack); err != nil {
		t.Fatalf("mqtt connect as %s: no CONNACK: %v", user, err)
	}
	if ack[0] != 0x20 || ack[1] != 2 {
		t.Fatalf("mqtt connect as %s: got % x, want a CONNACK", user, ack)
	}
	return ack[3]
}
