package relay

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authrelay/authrelay/accounts"
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// env is one way of running the server and relay; every integration test
// body runs in each.
type env struct {
	name string
	xkey bool // auth_callout.xkey set: requests and responses sealed
}

func envs() []env { return []env{{"xkey", true}, {"plain", false}} }

// confTmpl is the test server's config, filled in by serverConf.text. AUTH
// is the callout account: auth is the relay's user (auth_users), probe is a
// static user standing in for anyone who can publish in AUTH.
// allowed_accounts lists only APP, so static users of AUTH and SYS keep plain
// static auth (admin works with no relay).
const confTmpl = `
listen: %[1]q
server_name: relaytest
%[2]s
accounts {
	AUTH { users: [ {user: auth, password: auth-pw}, {user: probe, password: probe-pw} ] }
	APP { %[3]s }
	SYS { users: [ {user: admin, password: admin-pw} ] }
}
system_account: SYS
authorization {
	timeout: 2
	auth_callout {
		issuer: %[4]q
		account: AUTH
		auth_users: [ auth ]
		allowed_accounts: [ APP ]
		%[5]s
	}
}
`

// serverConf is what tests vary in the server's config; the zero value is
// the plain test server.
type serverConf struct {
	listen string // client listen address; empty means 127.0.0.1:-1
	extra  string // more top-level config, such as a websocket block
	app    string // the body of the APP account block, such as limits
}

// wsConf adds a plain-text websocket listener.
const wsConf = `websocket { listen: "127.0.0.1:-1", no_tls: true }`

func (c serverConf) text(issuer string, xkey *accounts.XKey) string {
	listen := c.listen
	if listen == "" {
		listen = "127.0.0.1:-1"
	}
	xline := ""
	if xkey != nil {
		xline = fmt.Sprintf("xkey: %q", xkey.PublicKey())
	}
	return fmt.Sprintf(confTmpl, listen, c.extra, c.app, issuer, xline)
}

// authErrSubject is where the server reports denied connects, in the
// callout account.
const authErrSubject = "$SYS.ACCOUNT.CLIENT.AUTH.ERR"

// harness is a real in-process nats-server configured for auth callout, the
// keys it trusts, an in-memory user store and, once started, a relay.
type harness struct {
	t      *testing.T
	env    env
	srv    *server.Server
	conf   string // the server's config file
	issuer *accounts.Issuer
	xkey   *accounts.XKey // nil in plain mode
	users  *memUsers
	logs   *syncBuffer

	relay    *Relay
	cancel   context.CancelFunc
	done     chan error
	stopOnce sync.Once
	runErr   error
}

func newHarness(t *testing.T, e env) *harness {
	t.Helper()
	return newHarnessConf(t, e, serverConf{})
}

// newHarnessConf is newHarness with a server config other than the plain one.
func newHarnessConf(t *testing.T, e env, sc serverConf) *harness {
	t.Helper()
	keys, err := accounts.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := accounts.NewIssuer(keys.IssuerSeed, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, env: e, issuer: issuer, users: newMemUsers(), logs: &syncBuffer{}}
	if e.xkey {
		h.xkey = mustXKey(t, keys.XKeySeed)
	}
	h.srv, h.conf = runServer(t, sc.text(issuer.PublicKey(), h.xkey))
	h.users.put("alice-pw-7f3a", accounts.User{
		Name:    "alice",
		Account: "APP",
		Permissions: accounts.Permissions{
			Pub: accounts.Rule{Allow: []string{"app.>"}, Deny: []string{"app.secret.>"}},
			Sub: accounts.Rule{Allow: []string{"app.>", "_INBOX.>"}, Deny: []string{"app.secret.>"}},
		},
	})
	h.users.put("dis-pw-91c2", accounts.User{Name: "dis", Account: "APP", Disabled: true})
	h.users.put("old-pw-44d1", accounts.User{Name: "old", Account: "APP", Expires: time.Now().Add(-time.Hour)})
	return h
}

// runServer starts nats-server from conf and stops it when the test ends.
// It returns the server and the path of its config file.
func runServer(t *testing.T, conf string) (*server.Server, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nats.conf")
	opts := loadConf(t, path, conf)
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s, path
}

// loadConf writes conf to path and processes it as nats-server does, with
// the test overrides (no log, no signal handler) that a command line gives.
func loadConf(t *testing.T, path, conf string) *server.Options {
	t.Helper()
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("process config: %v", err)
	}
	opts.NoLog, opts.NoSigs = true, true
	return opts
}

// reload rewrites the server's config file from sc and reloads it, as
// nats-server --signal reload does.
func (h *harness) reload(t *testing.T, sc serverConf) {
	t.Helper()
	if err := h.srv.ReloadOptions(loadConf(t, h.conf, sc.text(h.issuer.PublicKey(), h.xkey))); err != nil {
		t.Fatalf("reload: %v", err)
	}
}

// startRelay runs a relay against the harness's server until the test ends
// (or h.stop), and checks then that Run returned nil and that no password
// reached the log.
func (h *harness) startRelay(mod func(*Config)) {
	h.t.Helper()
	cfg := Config{
		URL:      h.srv.ClientURL(),
		User:     "auth",
		Password: "auth-pw",
		Issuer:   h.issuer,
		XKey:     h.xkey,
		Users:    h.users,
		Workers:  4,
		Logger:   slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		h.t.Fatalf("new relay: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.relay, h.cancel, h.done = r, cancel, make(chan error, 1)
	go func() { h.done <- r.Run(ctx) }()
	select {
	case <-r.Ready():
	case err := <-h.done:
		h.t.Fatalf("relay run: %v", err)
	case <-time.After(5 * time.Second):
		h.t.Fatal("relay not ready after 5s")
	}
	h.t.Cleanup(func() {
		if err := h.stop(); err != nil {
			h.t.Errorf("relay run: %v", err)
		}
		logs := h.logs.String()
		for _, pw := range h.users.secrets() {
			if strings.Contains(logs, pw) {
				h.t.Errorf("relay log contains a password:\n%s", logs)
			}
		}
	})
}

// stop cancels the relay's context and waits for Run to return.
func (h *harness) stop() error {
	h.stopOnce.Do(func() {
		h.cancel()
		select {
		case h.runErr = <-h.done:
		case <-time.After(10 * time.Second):
			h.runErr = errors.New("run did not return 10s after cancel")
		}
	})
	return h.runErr
}

// client is a test connection that records async errors and reconnects.
type client struct {
	nc          *nats.Conn
	errs        chan error
	reconnected chan struct{}
}

// connect logs in as user with password; the password is remembered so the
// relay's log can be checked for it.
func (h *harness) connect(t *testing.T, user, password string, opts ...nats.Option) (*client, error) {
	t.Helper()
	return h.connectURL(t, h.srv.ClientURL(), user, password, opts...)
}

// connectURL is connect to url, such as the server's websocket URL.
func (h *harness) connectURL(t *testing.T, url, user, password string, opts ...nats.Option) (*client, error) {
	t.Helper()
	if password != "" {
		h.users.remember(password)
	}
	c := &client{errs: make(chan error, 16), reconnected: make(chan struct{}, 4)}
	base := []nats.Option{
		nats.Name("relay-test"),
		nats.ReconnectWait(50 * time.Millisecond),
		nats.MaxReconnects(-1),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case c.errs <- err:
			default:
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) {
			select {
			case c.reconnected <- struct{}{}:
			default:
			}
		}),
	}
	if user != "" || password != "" {
		base = append(base, nats.UserInfo(user, password))
	}
	nc, err := nats.Connect(url, append(base, opts...)...)
	if err != nil {
		return nil, err
	}
	t.Cleanup(nc.Close)
	c.nc = nc
	return c, nil
}

func (h *harness) mustConnect(t *testing.T, user, password string, opts ...nats.Option) *client {
	t.Helper()
	return h.mustConnectURL(t, h.srv.ClientURL(), user, password, opts...)
}

func (h *harness) mustConnectURL(t *testing.T, url, user, password string, opts ...nats.Option) *client {
	t.Helper()
	c, err := h.connectURL(t, url, user, password, opts...)
	if err != nil {
		t.Fatalf("connect to %s as %q: %v", url, user, err)
	}
	return c
}

// waitErr waits for an async error that wraps target and mentions subject.
func (c *client) waitErr(t *testing.T, target error, subject string) {
	t.Helper()
	timeout := time.After(3 * time.Second)
	for {
		select {
		case err := <-c.errs:
			if errors.Is(err, target) && strings.Contains(err.Error(), subject) {
				return
			}
			t.Logf("other async error: %v", err)
		case <-timeout:
			t.Fatalf("no %v error about %q", target, subject)
		}
	}
}

// connInfo returns the server's view of the connection.
func (h *harness) connInfo(t *testing.T, nc *nats.Conn) *server.ConnInfo {
	t.Helper()
	cid, err := nc.GetClientID()
	if err != nil {
		t.Fatal(err)
	}
	cz, err := h.srv.Connz(&server.ConnzOptions{Username: true, CID: cid})
	if err != nil {
		t.Fatal(err)
	}
	if len(cz.Conns) != 1 {
		t.Fatalf("connz for cid %d: %d connections", cid, len(cz.Conns))
	}
	return cz.Conns[0]
}

// authErrors subscribes, as the relay's user in the callout account, to the
// server's denied-connect events and returns their reasons.
func (h *harness) authErrors(t *testing.T) <-chan string {
	t.Helper()
	c := h.mustConnect(t, "auth", "auth-pw")
	reasons := make(chan string, 16)
	_, err := c.nc.Subscribe(authErrSubject, func(m *nats.Msg) {
		var ev struct {
			Reason string `json:"reason"`
		}
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			ev.Reason = fmt.Sprintf("decode %s event: %v", authErrSubject, err)
		}
		reasons <- ev.Reason
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return reasons
}

// requireDenied connects as user and checks that the server refuses with
// Authorization Violation and reports want as the reason.
func (h *harness) requireDenied(t *testing.T, reasons <-chan string, want string, user, password string, opts ...nats.Option) {
	t.Helper()
	h.requireDeniedURL(t, reasons, want, h.srv.ClientURL(), user, password, opts...)
}

// requireDeniedURL is requireDenied for a connect to url.
func (h *harness) requireDeniedURL(t *testing.T, reasons <-chan string, want, url, user, password string, opts ...nats.Option) {
	t.Helper()
	c, err := h.connectURL(t, url, user, password, opts...)
	if err == nil {
		c.nc.Close()
		t.Fatalf("connect as %q succeeded, want Authorization Violation", user)
	}
	if !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("connect as %q: %v, want Authorization Violation", user, err)
	}
	select {
	case got := <-reasons:
		if !strings.HasSuffix(got, ": "+want) {
			t.Errorf("auth error reason = %q, want it to end in %q", got, want)
		}
	case <-time.After(3 * time.Second):
		t.Errorf("no %s event for %q", authErrSubject, user)
	}
}

func TestRelay(t *testing.T) {
	for _, e := range envs() {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			testRelay(t, e)
		})
	}
}

func testRelay(t *testing.T, e env) {
	t.Run("allowed user gets the account and permissions from the jwt", func(t *testing.T) {
		h := newHarness(t, e)
		h.startRelay(nil)
		c := h.mustConnect(t, "alice", "alice-pw-7f3a")

		ci := h.connInfo(t, c.nc)
		if ci.Account != "APP" || ci.AuthorizedUser != "alice" {
			t.Errorf("server sees account %q user %q, want APP alice", ci.Account, ci.AuthorizedUser)
		}

		sub, err := c.nc.SubscribeSync("app.orders")
		if err != nil {
			t.Fatal(err)
		}
		if err := c.nc.Publish("app.orders", []byte("hi")); err != nil {
			t.Fatal(err)
		}
		if _, err := sub.NextMsg(3 * time.Second); err != nil {
			t.Fatalf("allowed publish/subscribe: %v", err)
		}

		for _, subj := range []string{"app.secret.plans", "elsewhere"} {
			if err := c.nc.Publish(subj, []byte("x")); err != nil {
				t.Fatal(err)
			}
			c.waitErr(t, nats.ErrPermissionViolation, subj)
		}
		for _, subj := range []string{"app.secret.plans", "elsewhere.>"} {
			if _, err := c.nc.SubscribeSync(subj); err != nil {
				t.Fatal(err)
			}
			c.waitErr(t, nats.ErrPermissionViolation, subj)
		}
		if !c.nc.IsConnected() {
			t.Error("permission violations closed the connection")
		}
	})

	t.Run("denied connects", func(t *testing.T) {
		h := newHarness(t, e)
		h.startRelay(nil)
		reasons := h.authErrors(t)
		tests := []struct {
			name, user, password, want string
			opts                       []nats.Option
		}{
			{name: "wrong password", user: "alice", password: "wrong-pw-0b1e", want: ReasonBadCredentials},
			{name: "unknown user", user: "mallory", password: "alice-pw-7f3a", want: ReasonBadCredentials},
			{name: "disabled user", user: "dis", password: "dis-pw-91c2", want: ReasonUserDisabled},
			{name: "expired user", user: "old", password: "old-pw-44d1", want: ReasonUserExpired},
			{name: "empty password", user: "alice", want: ReasonNoCredentials},
			{name: "token only", want: ReasonNoCredentials, opts: []nats.Option{nats.Token("tok-5e5e")}},
			{name: "nothing", want: ReasonNoCredentials},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				h.requireDenied(t, reasons, tt.want, tt.user, tt.password, tt.opts...)
			})
		}
	})

	t.Run("reserved accounts", func(t *testing.T) {
		// Without ReservedAccounts the server puts the user in SYS, though
		// allowed_accounts does not list it: the relay is the only guard.
		h := newHarness(t, e)
		h.users.put("sneak-pw-3e3e", accounts.User{Name: "sneak", Account: "SYS"})
		h.startRelay(nil)
		if c := h.mustConnect(t, "sneak", "sneak-pw-3e3e"); h.connInfo(t, c.nc).Account != "SYS" {
			t.Fatalf("server placed the user in %q; this test expects it to follow the jwt into SYS", h.connInfo(t, c.nc).Account)
		}

		h = newHarness(t, e)
		h.users.put("sneak-pw-3e3e", accounts.User{Name: "sneak", Account: "SYS"})
		h.startRelay(func(c *Config) { c.ReservedAccounts = []string{"AUTH", "SYS"} })
		h.requireDenied(t, h.authErrors(t), ReasonAccountReserved, "sneak", "sneak-pw-3e3e")
	})

	t.Run("user changes apply on the next connect", func(t *testing.T) {
		h := newHarness(t, e)
		h.startRelay(nil)
		reasons := h.authErrors(t)
		first := h.mustConnect(t, "alice", "alice-pw-7f3a")

		h.users.update("alice", func(pw *string, u *accounts.User) { u.Disabled = true })
		h.requireDenied(t, reasons, ReasonUserDisabled, "alice", "alice-pw-7f3a")
		if !first.nc.IsConnected() {
			t.Error("disabling a user closed its live connection; only a new connect is refused")
		}

		h.users.update("alice", func(pw *string, u *accounts.User) {
			u.Disabled = false
			*pw = "alice-pw-new-2c9d"
			u.Permissions.Pub.Allow = []string{"app.orders"}
		})
		h.requireDenied(t, reasons, ReasonBadCredentials, "alice", "alice-pw-7f3a")
		c := h.mustConnect(t, "alice", "alice-pw-new-2c9d")
		if err := c.nc.Publish("app.other", nil); err != nil {
			t.Fatal(err)
		}
		c.waitErr(t, nats.ErrPermissionViolation, "app.other")
	})

	t.Run("session expiry disconnects and the client is authorised again", func(t *testing.T) {
		h := newHarness(t, e)
		h.startRelay(func(c *Config) { c.SessionTTL = 2 * time.Second })
		c := h.mustConnect(t, "alice", "alice-pw-7f3a")
		firstCID, err := c.nc.GetClientID()
		if err != nil {
			t.Fatal(err)
		}
		c.waitErr(t, nats.ErrAuthExpired, "")
		select {
		case <-c.reconnected:
		case <-time.After(5 * time.Second):
			t.Fatal("client did not reconnect after its session expired")
		}
		sub, err := c.nc.SubscribeSync("app.after")
		if err != nil {
			t.Fatal(err)
		}
		if err := c.nc.Publish("app.after", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := sub.NextMsg(3 * time.Second); err != nil {
			t.Fatalf("after reconnect: %v", err)
		}
		if ci := h.connInfo(t, c.nc); ci.Cid == firstCID || ci.Account != "APP" {
			t.Errorf("after reconnect: cid %d (first %d) account %q, want a new cid in APP", ci.Cid, firstCID, ci.Account)
		}
	})

	t.Run("invalid requests get no reply", func(t *testing.T) {
		h := newHarness(t, e)
		h.startRelay(nil)
		p := newProbe(h)
		fs := p.fs
		now := time.Now()
		valid := func() *jwt.AuthorizationRequestClaims {
			return p.claims("alice", "alice-pw-7f3a", now, 2*time.Second)
		}

		// The control: a valid request does get an answer, so a timeout
		// below means the relay dropped the request.
		if _, err := p.request(p.encode(valid()), 2*time.Second); err != nil {
			t.Fatalf("valid request: %v", err)
		}

		other := newFakeServer(t)
		// ifSealed picks the drop reason the log must show in each mode.
		ifSealed := func(xkey, plain string) string {
			if e.xkey {
				return xkey
			}
			return plain
		}
		tests := []struct {
			name    string
			msg     *nats.Msg
			wantLog string
		}{
			{"forged server id", p.encode(func() *jwt.AuthorizationRequestClaims {
				rc := valid()
				rc.Server.ID = other.id
				return rc
			}()), "is not the server id"},
			{"expired", p.encode(func() *jwt.AuthorizationRequestClaims {
				rc := valid()
				rc.Expires = now.Add(-3 * time.Second).Unix()
				return rc
			}()), "request expired"},
			{"wrong audience", p.encode(func() *jwt.AuthorizationRequestClaims {
				rc := valid()
				rc.Audience = "APP"
				return rc
			}()), `audience \"APP\"`},
			{"garbage", &nats.Msg{Data: []byte("\x00\x01 definitely not a jwt")},
				ifSealed("lacks auth_callout.xkey", "decode request")},
			{"garbage sealed", &nats.Msg{Data: []byte("xkv1 garbage"), Header: nats.Header{XKeyHeader: []string{fs.xk}}},
				ifSealed("open sealed request", "relay has no xkey")},
			{"bad header xkey", &nats.Msg{Data: []byte("xkv1 garbage"), Header: nats.Header{XKeyHeader: []string{"nope"}}},
				ifSealed("not a public curve key", "relay has no xkey")},
			{"empty", &nats.Msg{}, ifSealed("lacks auth_callout.xkey", "decode request")},
			{"unsealed, or sealed with no relay xkey", p.encodeOtherMode(valid()),
				ifSealed("lacks auth_callout.xkey", "relay has no xkey")},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				resp, err := p.request(tt.msg, 300*time.Millisecond)
				if !errors.Is(err, nats.ErrTimeout) {
					t.Errorf("got reply %q, err %v; want no reply (nats.ErrTimeout)", resp, err)
				}
				if !strings.Contains(h.logs.String(), tt.wantLog) {
					t.Errorf("relay log does not give the drop reason %q", tt.wantLog)
				}
			})
		}
	})

	t.Run("issued claims", func(t *testing.T) {
		h := newHarness(t, e)
		userExp := time.Now().Add(30 * time.Minute).Truncate(time.Second)
		h.users.put("bob-pw-1d1d", accounts.User{Name: "bob", Account: "APP", Expires: userExp})
		h.startRelay(func(c *Config) { c.SessionTTL = time.Hour })
		p := newProbe(h)

		rc := p.claims("alice", "alice-pw-7f3a", time.Now(), 2*time.Second)
		before := time.Now()
		resp, err := p.request(p.encode(rc), 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		after := time.Now()
		ar := p.decodeResponse(resp)
		if ar.Subject != rc.UserNkey || ar.Audience != p.fs.id || ar.Issuer != h.issuer.PublicKey() || ar.Error != "" {
			t.Fatalf("response sub %q aud %q iss %q error %q; want sub %q aud %q iss %q and no error",
				ar.Subject, ar.Audience, ar.Issuer, ar.Error, rc.UserNkey, p.fs.id, h.issuer.PublicKey())
		}
		uc, err := jwt.DecodeUserClaims(ar.Jwt)
		if err != nil {
			t.Fatalf("decode user jwt: %v", err)
		}
		if uc.Subject != rc.UserNkey || uc.Audience != "APP" || uc.Name != "alice" || uc.Issuer != h.issuer.PublicKey() {
			t.Errorf("user jwt sub %q aud %q name %q iss %q; want %q APP alice %q",
				uc.Subject, uc.Audience, uc.Name, uc.Issuer, rc.UserNkey, h.issuer.PublicKey())
		}
		perm := func(l jwt.StringList) []string { return slices.Sorted(slices.Values(l)) }
		for _, c := range []struct {
			what      string
			got, want []string
		}{
			{"pub allow", perm(uc.Pub.Allow), []string{"app.>"}},
			{"pub deny", perm(uc.Pub.Deny), []string{"app.secret.>"}},
			{"sub allow", perm(uc.Sub.Allow), []string{"_INBOX.>", "app.>"}},
			{"sub deny", perm(uc.Sub.Deny), []string{"app.secret.>"}},
		} {
			if !slices.Equal(c.got, c.want) {
				t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
			}
		}
		if lo, hi := before.Add(time.Hour).Unix()-1, after.Add(time.Hour).Unix(); uc.Expires < lo || uc.Expires > hi {
			t.Errorf("user jwt exp %d, want now+1h in [%d, %d]", uc.Expires, lo, hi)
		}

		// The user's own expiry caps the session.
		rc = p.claims("bob", "bob-pw-1d1d", time.Now(), 2*time.Second)
		resp, err = p.request(p.encode(rc), 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if uc, err = jwt.DecodeUserClaims(p.decodeResponse(resp).Jwt); err != nil {
			t.Fatalf("decode user jwt: %v", err)
		}
		if uc.Expires != userExp.Unix() {
			t.Errorf("bob's user jwt exp %d, want his own expiry %d", uc.Expires, userExp.Unix())
		}

		// A denial carries the reason and no JWT.
		rc = p.claims("alice", "wrong-pw-8c8c", time.Now(), 2*time.Second)
		resp, err = p.request(p.encode(rc), 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if ar := p.decodeResponse(resp); ar.Error != ReasonBadCredentials || ar.Jwt != "" || ar.Subject != rc.UserNkey {
			t.Errorf("denial: error %q jwt %q sub %q; want %q, no jwt, sub %q", ar.Error, ar.Jwt, ar.Subject, ReasonBadCredentials, rc.UserNkey)
		}
	})

	t.Run("decisions past the deadline are abandoned", func(t *testing.T) {
		// Authenticate blocks until its context ends and records the
		// deadline it was given.
		type call struct{ at, deadline time.Time }
		calls := make(chan call, 4)
		block := func(ctx context.Context, _ string) error {
			d, _ := ctx.Deadline()
			calls <- call{at: time.Now(), deadline: d}
			<-ctx.Done()
			return ctx.Err()
		}

		t.Run("decision timeout", func(t *testing.T) {
			h := newHarness(t, e)
			h.users.setHook(block)
			h.startRelay(func(c *Config) { c.DecisionTimeout = 200 * time.Millisecond })
			p := newProbe(h)
			sent := time.Now()
			if resp, err := p.request(p.encode(p.claims("alice", "alice-pw-7f3a", sent, 5*time.Second)), 500*time.Millisecond); !errors.Is(err, nats.ErrTimeout) {
				t.Errorf("got reply %q, err %v; want none", resp, err)
			}
			// received+200ms, where send <= received <= the call.
			c := recv(t, calls)
			if lo, hi := sent.Add(200*time.Millisecond), c.at.Add(200*time.Millisecond); c.deadline.Before(lo) || c.deadline.After(hi) {
				t.Errorf("authenticate deadline %v, want received+200ms in [%v, %v]", c.deadline, lo, hi)
			}
			waitFor(t, func() bool { return strings.Contains(h.logs.String(), "abandoned") }, "abandon logged")
		})

		t.Run("server deadline", func(t *testing.T) {
			h := newHarness(t, e)
			h.users.setHook(block)
			h.startRelay(func(c *Config) { c.DecisionTimeout = time.Minute })
			p := newProbe(h)
			sent := time.Now()
			rc := p.claims("alice", "alice-pw-7f3a", sent, 2*time.Second)
			wait := time.Until(time.Unix(rc.Expires, 0)) + 300*time.Millisecond
			if resp, err := p.request(p.encode(rc), wait); !errors.Is(err, nats.ErrTimeout) {
				t.Errorf("got reply %q, err %v; want none", resp, err)
			}
			// received + the server's timeout as the request states it
			// (exp-iat) less the answer's margin, where send <= received
			// <= the call: the relay's own clock, never exp against it.
			budget := time.Duration(rc.Expires-rc.IssuedAt)*time.Second - answerMargin
			c := recv(t, calls)
			if lo, hi := sent.Add(budget), c.at.Add(budget); c.deadline.Before(lo) || c.deadline.After(hi) {
				t.Errorf("authenticate deadline %v, want received+%v in [%v, %v]", c.deadline, budget, lo, hi)
			}
		})
	})

	t.Run("static users outside allowed_accounts log in without the relay", func(t *testing.T) {
		h := newHarness(t, e)
		for _, u := range [][2]string{{"admin", "admin-pw"}, {"probe", "probe-pw"}} {
			c := h.mustConnect(t, u[0], u[1])
			if _, err := c.nc.Request("$SYS.REQ.USER.INFO", nil, 2*time.Second); err != nil {
				t.Errorf("%s: user info: %v", u[0], err)
			}
		}
	})
}

// TestRunDrains checks that Run, after its context is cancelled, still
// answers the decision in flight, returns nil and leaves no goroutine behind.
// Not parallel: it counts the relay's goroutines in the whole process.
func TestRunDrains(t *testing.T) {
	for _, e := range envs() {
		t.Run(e.name, func(t *testing.T) {
			h := newHarness(t, e)
			entered, release := make(chan struct{}, 1), make(chan struct{})
			h.users.setHook(func(ctx context.Context, _ string) error {
				entered <- struct{}{}
				select {
				case <-release:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
			h.startRelay(nil)

			connected := make(chan error, 1)
			go func() {
				nc, err := nats.Connect(h.srv.ClientURL(), nats.UserInfo("alice", "alice-pw-7f3a"))
				if err == nil {
					nc.Close()
				}
				connected <- err
			}()
			<-entered
			h.cancel()
			waitFor(t, func() bool { return strings.Contains(h.logs.String(), "relay draining") }, "relay draining")
			close(release)
			if err := <-connected; err != nil {
				t.Errorf("connect in flight during shutdown: %v", err)
			}
			if err := h.stop(); err != nil {
				t.Fatalf("run: %v", err)
			}
			waitFor(t, func() bool { return relayGoroutines() == 0 }, "no relay goroutines left")
			waitFor(t, func() bool {
				cz, err := h.srv.Connz(&server.ConnzOptions{})
				return err == nil && !slices.ContainsFunc(cz.Conns, func(ci *server.ConnInfo) bool { return ci.Name == "authrelay" })
			}, "relay connection closed on the server")

			// A stopped relay answers nothing.
			p := newProbe(h)
			if _, err := p.request(p.encode(p.claims("alice", "alice-pw-7f3a", time.Now(), 2*time.Second)), 200*time.Millisecond); !errors.Is(err, nats.ErrNoResponders) {
				t.Errorf("request after shutdown: %v, want nats.ErrNoResponders", err)
			}
		})
	}
}

// relayGoroutines counts goroutines running the relay's methods.
func relayGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	n := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte("authrelay/relay.(*Relay)")) {
			n++
		}
	}
	return n
}

func TestNew(t *testing.T) {
	keys, err := accounts.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := accounts.NewIssuer(keys.IssuerSeed, nil)
	if err != nil {
		t.Fatal(err)
	}
	users := newMemUsers()
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"ok", Config{Issuer: issuer, Users: users}, ""},
		{"no issuer", Config{Users: users}, "issuer is required"},
		{"no users", Config{Issuer: issuer}, "users is required"},
		{"negative ttl", Config{Issuer: issuer, Users: users, SessionTTL: -1}, "session ttl"},
		{"negative timeout", Config{Issuer: issuer, Users: users, DecisionTimeout: -1}, "decision timeout"},
		{"negative workers", Config{Issuer: issuer, Users: users, Workers: -1}, "workers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := New(tt.cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if r.cfg.DecisionTimeout != DefaultDecisionTimeout || r.cfg.Queue != DefaultQueue ||
					r.cfg.Workers != runtime.GOMAXPROCS(0)*2 || r.cfg.URL != nats.DefaultURL {
					t.Errorf("defaults not applied: %+v", r.cfg)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New: %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestRunTwice(t *testing.T) {
	h := newHarness(t, env{name: "plain"})
	h.startRelay(nil)
	if err := h.relay.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("second Run: %v, want already running", err)
	}
}

// probe sends hand-made auth requests to the relay as the static probe
// user of the callout account, the way a server (or an attacker inside
// AUTH) would.
type probe struct {
	h  *harness
	fs *fakeServer
	nc *nats.Conn
}

func newProbe(h *harness) *probe {
	h.t.Helper()
	return &probe{h: h, fs: newFakeServer(h.t), nc: h.mustConnect(h.t, "probe", "probe-pw").nc}
}

func (p *probe) claims(user, password string, now time.Time, exp time.Duration) *jwt.AuthorizationRequestClaims {
	p.h.users.remember(password)
	rc := p.fs.claims(p.h.t, user, password, now, exp)
	if p.h.env.xkey {
		rc.Server.XKey = p.fs.xk
	}
	return rc
}

// encode signs rc and seals it when the relay has an xkey.
func (p *probe) encode(rc *jwt.AuthorizationRequestClaims) *nats.Msg {
	data := p.fs.encode(p.h.t, rc, nil)
	if !p.h.env.xkey {
		return &nats.Msg{Data: data}
	}
	return &nats.Msg{Data: p.fs.seal(p.h.t, data, p.h.xkey.PublicKey()), Header: nats.Header{XKeyHeader: []string{p.fs.xk}}}
}

// encodeOtherMode signs rc and, the opposite of encode, seals it only when
// the relay has no xkey (to a key the relay does not have).
func (p *probe) encodeOtherMode(rc *jwt.AuthorizationRequestClaims) *nats.Msg {
	data := p.fs.encode(p.h.t, rc, nil)
	if p.h.env.xkey {
		return &nats.Msg{Data: data}
	}
	stranger := newFakeServer(p.h.t)
	return &nats.Msg{Data: p.fs.seal(p.h.t, data, stranger.xk), Header: nats.Header{XKeyHeader: []string{p.fs.xk}}}
}

func (p *probe) request(m *nats.Msg, timeout time.Duration) ([]byte, error) {
	m.Subject = Subject
	resp, err := p.nc.RequestMsg(m, timeout)
	if err != nil {
		return nil, err
	}
	return resp.Data, nil
}

// decodeResponse opens (when sealed) and decodes an authorization response.
func (p *probe) decodeResponse(data []byte) *jwt.AuthorizationResponseClaims {
	p.h.t.Helper()
	if p.h.env.xkey {
		if bytes.HasPrefix(data, []byte("eyJ")) {
			p.h.t.Fatal("response is not sealed")
		}
		var err error
		if data, err = p.fs.xkp.Open(data, p.h.xkey.PublicKey()); err != nil {
			p.h.t.Fatalf("open response: %v", err)
		}
	}
	ar, err := jwt.DecodeAuthorizationResponseClaims(string(data))
	if err != nil {
		p.h.t.Fatalf("decode response: %v", err)
	}
	return ar
}

// memUsers is an in-memory Users with plain-text passwords, for tests. It
// counts its changes as a ChangeCounter and its Authenticate calls.
type memUsers struct {
	mu     sync.Mutex
	byName map[string]memUser
	roles  map[string]accounts.Role
	hook   func(ctx context.Context, name string) error
	seen   map[string]bool // every password the test used, for the log check
	gen    int64
	calls  atomic.Int64 // password verifications: Authenticate and VerifyDummy calls
	// dummies counts VerifyDummy calls, rehashes Rehash calls.
	dummies, rehashes atomic.Int64
}

type memUser struct {
	password string
	user     accounts.User
}

var (
	_ Users         = (*memUsers)(nil)
	_ ChangeCounter = (*memUsers)(nil)
)

func newMemUsers() *memUsers {
	return &memUsers{byName: map[string]memUser{}, roles: map[string]accounts.Role{}, seen: map[string]bool{}}
}

func (m *memUsers) putRole(r accounts.Role) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.roles[r.Name] = r
	m.gen++
}

func (m *memUsers) put(password string, u accounts.User) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.byName[u.Name] = memUser{password: password, user: u}
	m.seen[password] = true
	m.gen++
}

func (m *memUsers) update(name string, f func(password *string, u *accounts.User)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.byName[name]
	f(&e.password, &e.user)
	m.byName[name] = e
	m.seen[e.password] = true
	m.gen++
}

// UserVersion implements ChangeCounter with one counter of every change,
// whichever user it concerns: the coarsest version the contract allows.
func (m *memUsers) UserVersion(context.Context, string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gen, nil
}

func (m *memUsers) setHook(f func(ctx context.Context, name string) error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.hook = f
}

func (m *memUsers) remember(password string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if password != "" {
		m.seen[password] = true
	}
}

func (m *memUsers) secrets() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for pw := range m.seen {
		out = append(out, pw)
	}
	return out
}

// Authenticate implements Users.
func (m *memUsers) Authenticate(ctx context.Context, name, password string) (accounts.User, error) {
	m.calls.Add(1)
	m.mu.Lock()
	e, ok := m.byName[name]
	hook := m.hook
	m.mu.Unlock()
	if hook != nil {
		if err := hook(ctx, name); err != nil {
			return accounts.User{}, err
		}
	}
	if !ok || subtle.ConstantTimeCompare([]byte(e.password), []byte(password)) != 1 {
		// As the store: a wrong password costs a second verification
		// (the previous password, or the dummy).
		m.calls.Add(1)
		return accounts.User{}, accounts.ErrInvalidCredentials
	}
	return e.user, nil
}

// VerifyDummy implements Users.
func (m *memUsers) VerifyDummy(context.Context, string) error {
	m.calls.Add(1)
	m.dummies.Add(1)
	return nil
}

// Rehash implements Users.
func (m *memUsers) Rehash(context.Context, string, string) { m.rehashes.Add(1) }

// RolesNamed implements Users.
func (m *memUsers) RolesNamed(ctx context.Context, names []string) ([]accounts.Role, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []accounts.Role
	for _, n := range names {
		if r, ok := m.roles[n]; ok {
			out = append(out, r)
		}
	}
	return out, nil
}

// syncBuffer is a bytes.Buffer safe for concurrent log writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls cond until it holds, failing the test after 5s.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// recv receives from ch, failing the test after 5s.
func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("timed out waiting on a channel")
		panic("unreachable")
	}
}

func TestRunFailsWhenTheRelayCannotLogIn(t *testing.T) {
	h := newHarness(t, env{name: "plain"})
	r, err := New(Config{
		URL: h.srv.ClientURL(), User: "auth", Password: "not-the-auth-pw", Issuer: h.issuer, Users: h.users,
		NATSOptions: []nats.Option{nats.ReconnectWait(10 * time.Millisecond), nats.ReconnectJitter(0, 0)},
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "connection closed") {
			t.Errorf("run: %v, want connection closed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run still retrying 10s after the server refused the relay's login")
	}
	select {
	case <-r.Ready():
		t.Error("ready closed although the relay never logged in")
	default:
	}
}
