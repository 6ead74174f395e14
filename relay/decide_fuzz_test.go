package relay

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/authrelay/authrelay/accounts"
)

// reasons are every reason code the relay may send.
var reasons = []string{
	ReasonBadCredentials, ReasonUserDisabled, ReasonUserExpired, ReasonNoCredentials,
	ReasonAccountReserved, ReasonInternalError, ReasonTemplateUnsafe,
	ReasonSourceNotAllowed, ReasonConnTypeNotAllowed, ReasonLockedOut, ReasonOverloaded,
}

// FuzzDecide drives the decision and reason-code path with arbitrary
// connect options and client information: it must never panic, every
// denial must carry a known reason code, and a grant must only ever go to a
// known user with the right password and a valid signed JWT.
func FuzzDecide(f *testing.F) {
	for _, s := range []struct{ user, pass, host, kind, typ string }{
		{"alice", "alice-pass", "127.0.0.1", "Client", "nats"},
		{"alice", "wrong", "127.0.0.1", "Client", "nats"},
		{"svc", "svc-pass", "10.1.2.3", "Client", "websocket"},
		{"svc", "svc-pass", "::1", "Leafnode", ""},
		{"evil.x", "evil-pass", "127.0.0.1", "Client", "nats"},
		{"", "", "", "", ""},
		{"alice", "", "not an address", "Client", "mqtt"},
	} {
		f.Add(s.user, s.pass, s.host, s.kind, s.typ)
	}
	keys, err := accounts.GenerateKeys()
	if err != nil {
		f.Fatal(err)
	}
	iss, err := accounts.NewIssuer(keys.IssuerSeed, nil)
	if err != nil {
		f.Fatal(err)
	}
	users := newMemUsers()
	users.putRole(accounts.Role{Name: "svc", Permissions: accounts.Permissions{Sub: accounts.Rule{Allow: []string{"svc.{{name}}.>"}}}})
	users.put("alice-pass", accounts.User{Name: "alice", Account: "APP"})
	users.put("svc-pass", accounts.User{Name: "svc", Account: "APP", Roles: []string{"svc"},
		Src: []string{"10.0.0.0/8"}, ConnTypes: []string{accounts.ConnWebsocket}})
	users.put("evil-pass", accounts.User{Name: "evil.x", Account: "APP", Roles: []string{"svc"}})
	users.put("off-pass", accounts.User{Name: "off", Account: "APP", Disabled: true})
	users.put("sys-pass", accounts.User{Name: "sys", Account: "SYS"})
	r, err := New(Config{Issuer: iss, Users: users, SessionTTL: time.Hour, ReservedAccounts: []string{"SYS"}})
	if err != nil {
		f.Fatal(err)
	}
	// The same with the credential cache: it must decide alike.
	cached, err := New(Config{Issuer: iss, Users: users, SessionTTL: time.Hour, ReservedAccounts: []string{"SYS"},
		CacheTTL: time.Hour, CacheSize: 4})
	if err != nil {
		f.Fatal(err)
	}
	skp, _ := nkeys.CreateServer()
	sid, _ := skp.PublicKey()
	ukp, _ := nkeys.CreateUser()
	unkey, _ := ukp.PublicKey()

	f.Fuzz(func(t *testing.T, user, pass, host, kind, typ string) {
		rc := jwt.NewAuthorizationRequestClaims("fuzz")
		rc.Server.ID = sid
		rc.UserNkey = unkey
		rc.ConnectOptions.Username = user
		rc.ConnectOptions.Password = pass
		rc.ClientInformation.Host = host
		rc.ClientInformation.Kind = kind
		rc.ClientInformation.Type = typ
		d := r.decide(context.Background(), rc)
		for range 2 { // the second may come from the cache
			if c := cached.decide(context.Background(), rc); c.reason != d.reason || (c.userJWT == "") != (d.userJWT == "") {
				t.Fatalf("with the cache: reason %q jwt %v; without: reason %q jwt %v", c.reason, c.userJWT != "", d.reason, d.userJWT != "")
			}
		}
		if d.reason != "" {
			if !slices.Contains(reasons, d.reason) {
				t.Fatalf("unknown reason code %q", d.reason)
			}
			if d.userJWT != "" {
				t.Fatal("a denial carries a user JWT")
			}
			return
		}
		want, ok := map[string]string{"alice": "alice-pass", "svc": "svc-pass"}[user]
		if !ok || pass != want {
			t.Fatalf("granted %q with password %q", user, pass)
		}
		uc, err := jwt.DecodeUserClaims(d.userJWT)
		if err != nil {
			t.Fatalf("granted JWT does not decode: %v", err)
		}
		if uc.Subject != unkey || uc.Audience != "APP" || uc.Name != user {
			t.Fatalf("granted claims sub %q aud %q name %q", uc.Subject, uc.Audience, uc.Name)
		}
	})
}
