package deploy_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/idp"
	"github.com/authrelay/authrelay/internal/oidctest"
	"github.com/authrelay/authrelay/relay"
	"github.com/authrelay/authrelay/store"
)

// startOIDCRelay runs the relay as startCredentialRelay does, with the
// identity providers of the store in an idp.Set, as serve builds it; it
// returns the Set, to be updated when the test changes the providers.
func (e *modeEnv) startOIDCRelay() *idp.Set {
	e.t.Helper()
	set, err := idp.NewSet(idp.Options{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(set.Close)
	e.updateProviders(set)
	e.startRelay(func(c *relay.Config) {
		c.Credentials = e.db
		c.Identity = &relay.IdentityConfig{Verifier: set, Users: e.db, Actor: "relay-test"}
		c.Guard = e.db.Lockouts(accounts.DefaultLockoutPolicy)
		c.CacheTTL = time.Minute
		c.Revoke = &relay.RevokeConfig{AdminUser: e.id.AdminUser, AdminLogin: e.id.AdminLogin, Changes: e.db, Poll: 100 * time.Millisecond}
	})
	return set
}

// updateProviders gives set the store's providers, as node does.
func (e *modeEnv) updateProviders(set *idp.Set) {
	e.t.Helper()
	list, err := e.db.IdentityProviders(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	var ps []idp.Provider
	for _, p := range list {
		ps = append(ps, idp.FromStored(p))
	}
	if err := set.Update(ps); err != nil {
		e.t.Fatal(err)
	}
}

// waitProvider waits for the relay's verifier of the provider called
// name to have fetched its keys (a login before that waits for them, as
// long as the server's authorization timeout under a loaded race run).
func waitProvider(t *testing.T, set *idp.Set, name string) {
	t.Helper()
	v := set.Verifier(name)
	if v == nil {
		t.Fatalf("no verifier of provider %s", name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := v.Check(ctx); err != nil {
		t.Fatalf("provider %s: %v", name, err)
	}
}

// addProvider stores an identity provider for o.
func (e *modeEnv) addProvider(name string, o *oidctest.OP, edit func(*accounts.IdentityProvider)) {
	e.t.Helper()
	p := accounts.IdentityProvider{Name: name, Issuer: o.Issuer, Audience: oidctest.Audience, Account: "APP"}
	if edit != nil {
		edit(&p)
	}
	if err := idp.FromStored(p).Validate(); err != nil {
		e.t.Fatal(err)
	}
	if err := e.db.AddIdentityProvider(context.Background(), p); err != nil {
		e.t.Fatal(err)
	}
}

// bindUser adds u bound to provider, with no password.
func (e *modeEnv) bindUser(u accounts.User, provider string) {
	e.t.Helper()
	if err := e.db.AddUserWith(context.Background(), u, "", []accounts.StoredCredential{{Kind: accounts.CredOIDC, Value: provider}}); err != nil {
		e.t.Fatalf("add user %s bound to %s: %v", u.Name, provider, err)
	}
}

// unsignedToken is claims under alg none, with an empty signature.
func unsignedToken(t *testing.T, claims map[string]any) string {
	t.Helper()
	body, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + base64.RawURLEncoding.EncodeToString(body) + "."
}

// TestModesOIDCLogin is an identity provider's login in every mode,
// against zitadel/oidc's OpenID provider running on 127.0.0.1: an ID token
// from the code flow and a JWT access token from the client-credentials
// grant log in as the NATS token, and as the password of the username
// their sub claim names; each lands in the user's account with its
// permissions. Tokens with the wrong audience, the wrong issuer, expired,
// alg none, or the right user's claims as another username are
// bad_credentials, and they count against the address only (the right
// token still logs in after more of them than the lockout's threshold). A
// password user whose name a token's sub claims is not taken over. The
// session ends at the token's exp. Removing the provider closes its users'
// connections and refuses their next login.
func TestModesOIDCLogin(t *testing.T) {
	for _, mode := range loginModes() {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			e := newModeEnv(t, mode, nil, nil)
			o := oidctest.Start(t)
			ctx := context.Background()
			e.addProvider("corp", o, nil)
			person := svc
			person.Name = oidctest.UserSubject
			e.bindUser(person, "corp")
			service := svc
			service.Name = oidctest.ServiceSubject
			e.bindUser(service, "corp")
			e.addUser(accounts.User{Name: "mallory-target", Account: "APP", Permissions: svc.Permissions}, "a-long-password-1")
			waitProvider(t, e.startOIDCRelay(), "corp")
			reasons := e.authErrors()

			idToken, accessToken := o.IDToken(), o.AccessToken()
			closed := make(chan struct{})
			nc, errs, err := e.connect("", "", nats.Token(idToken), nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
			if err != nil {
				t.Fatalf("ID token as the NATS token: %v", err)
			}
			if got, want := e.accountOf(nc), e.accountID("APP"); got != want {
				t.Errorf("%s is in account %q, want %q (APP)", person.Name, got, want)
			}
			requirePubSub(t, nc, "app.orders")
			requireViolation(t, nc, errs, "elsewhere", "")
			for _, c := range []struct {
				what, user, pw string
				opts           []nats.Option
			}{
				{"the ID token again (from the cache)", "", "", []nats.Option{nats.Token(idToken)}},
				{"the access token as the NATS token", "", "", []nats.Option{nats.Token(accessToken)}},
				{"the ID token as the password", person.Name, idToken, nil},
				{"the access token as the password", service.Name, accessToken, nil},
			} {
				c2, errs2, err := e.connect(c.user, c.pw, c.opts...)
				if err != nil {
					t.Fatalf("%s: %v", c.what, err)
				}
				requirePubSub(t, c2, "app.x")
				requireViolation(t, c2, errs2, "elsewhere", "")
				c2.Close()
			}

			bad := map[string]string{}
			claims := o.Claims(oidctest.UserSubject, time.Hour)
			claims["aud"] = "someone-else"
			bad["wrong audience"] = o.Sign(claims)
			claims = o.Claims(oidctest.UserSubject, time.Hour)
			claims["iss"] = "http://127.0.0.1:1"
			bad["wrong issuer"] = o.Sign(claims)
			claims = o.Claims(oidctest.UserSubject, -time.Minute)
			bad["expired"] = o.Sign(claims)
			bad["alg none"] = unsignedToken(t, o.Claims(oidctest.UserSubject, time.Hour))
			for range accounts.DefaultLockoutPolicy.Threshold {
				for what, tok := range bad {
					t.Logf("refused: %s", what)
					e.requireDenied(reasons, relay.ReasonBadCredentials, "", "", nats.Token(tok))
				}
			}
			e.requireDenied(reasons, relay.ReasonBadCredentials, person.Name, bad["alg none"])
			// The ID token is the person's: not the service's password.
			e.requireDenied(reasons, relay.ReasonBadCredentials, service.Name, idToken)
			// A password user whose name a token claims is not that token's.
			e.requireDenied(reasons, relay.ReasonBadCredentials, "", "", nats.Token(o.Sign(o.Claims("mallory-target", time.Hour))))
			pw, _, err := e.connect("mallory-target", "a-long-password-1")
			if err != nil {
				t.Fatalf("the password user after a token claimed its name: %v", err)
			}
			pw.Close()
			// A password user whose password looks like a JWT logs in by
			// it: the user is bound to no provider.
			jwtLike := o.Sign(o.Claims("nobody", time.Hour))
			e.addUser(accounts.User{Name: "jwt-password", Account: "APP", Permissions: svc.Permissions}, jwtLike)
			if c, _, err := e.connect("jwt-password", jwtLike); err != nil {
				t.Fatalf("a password shaped as a JWT: %v", err)
			} else {
				c.Close()
			}
			e.requireDenied(reasons, relay.ReasonBadCredentials, "jwt-password", idToken)
			// None of the failures counted against a name.
			if again, _, err := e.connect("", "", nats.Token(idToken)); err != nil {
				t.Fatalf("ID token after %d bad tokens: %v (locked out by a name anyone may know)", len(bad)*accounts.DefaultLockoutPolicy.Threshold, err)
			} else {
				again.Close()
			}

			// The session ends when the token does.
			short := make(chan struct{})
			if _, _, err := e.connect("", "", nats.Token(o.Sign(o.Claims(oidctest.UserSubject, 2*time.Second))), nats.ClosedHandler(func(*nats.Conn) { close(short) })); err != nil {
				t.Fatalf("a token valid for 2s: %v", err)
			}
			requireClosed(t, short, 6*time.Second, "the token's exp passed")

			if _, err := e.db.RemoveIdentityProvider(ctx, "corp"); err != nil {
				t.Fatal(err)
			}
			requireClosed(t, closed, time.Second+500*time.Millisecond, "provider corp removed")
			e.requireDenied(reasons, relay.ReasonBadCredentials, "", "", nats.Token(idToken))
			e.requireDenied(reasons, relay.ReasonBadCredentials, person.Name, idToken)
		})
	}
}

// TestModesOIDCProviderDown: a provider whose discovery and keys cannot
// be had refuses its users with idp_unavailable, while a password login
// and another provider's token log in promptly, also while a hanging
// provider's logins wait.
func TestModesOIDCProviderDown(t *testing.T) {
	for _, mode := range modes() {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			e := newModeEnv(t, mode, nil, nil)
			up, down, hung := oidctest.Start(t), oidctest.Start(t), oidctest.Start(t)
			down.SetMode(oidctest.Fail)
			hung.SetMode(oidctest.Hang)
			e.addProvider("up", up, nil)
			e.addProvider("down", down, nil)
			e.addProvider("hung", hung, nil)
			u := svc
			u.Name = oidctest.UserSubject
			e.bindUser(u, "up")
			for _, name := range []string{"d1", "h1"} {
				b := svc
				b.Name = name
				e.bindUser(b, map[string]string{"d1": "down", "h1": "hung"}[name])
			}
			e.addUser(accounts.User{Name: "alice", Account: "APP", Permissions: svc.Permissions}, "a-long-password-1")
			waitProvider(t, e.startOIDCRelay(), "up")
			reasons := e.authErrors()

			e.requireDenied(reasons, accounts.ReasonIdpUnavailable, "", "", nats.Token(down.Sign(down.Claims("d1", time.Hour))))
			e.requireDenied(reasons, accounts.ReasonIdpUnavailable, "d1", down.Sign(down.Claims("d1", time.Hour)))

			// Logins of the hung provider wait for its keys; meanwhile the
			// others go on.
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					nc, _, err := e.connect("", "", nats.Token(hung.Sign(hung.Claims("h1", time.Hour))))
					// Refused, or timed out by the server (EOF) while it
					// waited for the keys.
					if err == nil {
						nc.Close()
						t.Error("a token of a provider that never answered logged in")
					}
				})
			}
			time.Sleep(100 * time.Millisecond)
			for _, c := range []struct {
				what     string
				user, pw string
				opts     []nats.Option
			}{
				{"password", "alice", "a-long-password-1", nil},
				{"another provider's token", "", "", []nats.Option{nats.Token(up.IDToken())}},
			} {
				start := time.Now()
				nc, _, err := e.connect(c.user, c.pw, c.opts...)
				if err != nil {
					t.Fatalf("%s login while a provider hangs: %v", c.what, err)
				}
				took := time.Since(start)
				nc.Close()
				if took > time.Second {
					t.Errorf("%s login took %v while a provider hangs, want well under a second", c.what, took)
				}
			}
			wg.Wait()
		})
	}
}

// TestModesOIDCCreateUsers: a provider with create_users creates the
// user of an unknown subject on its first login, in the provider's
// account with the roles its roles claim maps to, with an audit row by
// the relay; its next login finds it. A subject naming a password user
// is refused and the user is left as it was.
func TestModesOIDCCreateUsers(t *testing.T) {
	for _, mode := range modes() {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			e := newModeEnv(t, mode, nil, nil)
			o := oidctest.Start(t)
			ctx := context.Background()
			if err := e.db.AddRole(ctx, accounts.Role{Name: "reader", Permissions: accounts.Permissions{
				Pub: accounts.Rule{Allow: []string{"app.>"}},
				Sub: accounts.Rule{Allow: []string{"app.>", "_INBOX.>"}},
			}}); err != nil {
				t.Fatal(err)
			}
			e.addProvider("corp", o, func(p *accounts.IdentityProvider) {
				p.CreateUsers, p.RolesClaim, p.RoleMap = true, "groups", map[string]string{"nats-readers": "reader", "nats-missing": "no-such-role"}
			})
			e.addUser(accounts.User{Name: "alice", Account: "APP", Permissions: svc.Permissions}, "a-long-password-1")
			waitProvider(t, e.startOIDCRelay(), "corp")
			reasons := e.authErrors()

			claims := o.Claims("newcomer", time.Hour)
			claims["groups"] = []string{"nats-readers", "nats-missing", "other"}
			tok := o.Sign(claims)
			nc, _, err := e.connect("", "", nats.Token(tok))
			if err != nil {
				t.Fatalf("first login of an unknown subject with create_users: %v", err)
			}
			requirePubSub(t, nc, "app.orders")
			nc.Close()
			u, err := e.db.User(ctx, "newcomer")
			if err != nil {
				t.Fatalf("the user was not created: %v", err)
			}
			if u.Account != "APP" || len(u.Roles) != 1 || u.Roles[0] != "reader" {
				t.Errorf("created user: account %q roles %q, want APP [reader]", u.Account, u.Roles)
			}
			if p, err := e.db.UserProvider(ctx, "newcomer"); err != nil || p != "corp" {
				t.Errorf("created user bound to %q, %v; want corp", p, err)
			}
			entries, err := e.db.Audit(ctx, store.AuditFilter{Kind: store.AuditAdmin, User: "newcomer"})
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 || entries[0].Action != "user add" || !strings.Contains(entries[0].Actor, "corp") {
				t.Errorf("audit rows of the creation = %+v, want one 'user add' by the relay for corp", entries)
			}
			if again, _, err := e.connect("newcomer", tok); err != nil {
				t.Fatalf("the created user's token as its password: %v", err)
			} else {
				again.Close()
			}

			e.requireDenied(reasons, relay.ReasonBadCredentials, "", "", nats.Token(o.Sign(o.Claims("alice", time.Hour))))
			if p, err := e.db.UserProvider(ctx, "alice"); err != nil || p != "" {
				t.Errorf("alice bound to %q, %v after a token claimed her name; want none", p, err)
			}
			pw, _, err := e.connect("alice", "a-long-password-1")
			if err != nil {
				t.Fatalf("alice's password after a token claimed her name: %v", err)
			}
			pw.Close()
		})
	}
}

// TestModesOIDCRefresh is the README's refresh story: a client whose
// tokens live 2 seconds, sent through nats.TokenHandler, is disconnected
// at each token's exp and reconnects with a fresh one, and keeps working.
func TestModesOIDCRefresh(t *testing.T) {
	for _, mode := range modes() {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			e := newModeEnv(t, mode, nil, nil)
			o := oidctest.Start(t)
			e.addProvider("corp", o, nil)
			u := svc
			u.Name = oidctest.ServiceSubject
			e.bindUser(u, "corp")
			waitProvider(t, e.startOIDCRelay(), "corp")
			reconnected := make(chan struct{}, 4)
			var mu sync.Mutex
			issued := 0
			nc, _, err := e.connect("", "",
				nats.TokenHandler(func() string {
					mu.Lock()
					issued++
					mu.Unlock()
					return o.Sign(o.Claims(oidctest.ServiceSubject, 2*time.Second))
				}),
				nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond),
				nats.ReconnectHandler(func(*nats.Conn) { reconnected <- struct{}{} }))
			if err != nil {
				t.Fatalf("connect with a token handler: %v", err)
			}
			for i := range 2 {
				select {
				case <-reconnected:
				case <-time.After(8 * time.Second):
					t.Fatalf("no reconnect %d with a fresh token after the token's exp", i+1)
				}
			}
			requirePubSub(t, nc, "app.after-refresh")
			mu.Lock()
			defer mu.Unlock()
			if issued < 3 {
				t.Errorf("the token handler was asked %d times, want one per connect (3)", issued)
			}
		})
	}
}
