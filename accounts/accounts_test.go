package accounts

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

func newTestIssuer(t *testing.T) (*Issuer, Keys) {
	t.Helper()
	keys, err := GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	iss, err := NewIssuer(keys.IssuerSeed, nil)
	if err != nil {
		t.Fatal(err)
	}
	return iss, keys
}

func newUserNkey(t *testing.T) string {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

func TestUserClaims(t *testing.T) {
	iss, _ := newTestIssuer(t)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	unkey := newUserNkey(t)
	u := User{
		Name:    "alice",
		Account: "APP",
		Permissions: Permissions{
			Pub:  Rule{Allow: []string{"orders.>"}, Deny: []string{"orders.secret"}},
			Sub:  Rule{Allow: []string{"orders.>", "_INBOX.>"}, Deny: []string{"orders.private.>"}},
			Resp: &ResponsePermission{MaxMsgs: 3, TTL: time.Minute},
		},
	}

	for _, tc := range []struct {
		name    string
		ttl     time.Duration
		expires time.Time
		want    int64
	}{
		{"session ttl", time.Hour, time.Time{}, now.Add(time.Hour).Unix()},
		{"no expiry", 0, time.Time{}, 0},
		{"capped by user expiry", time.Hour, now.Add(10 * time.Minute), now.Add(10 * time.Minute).Unix()},
		{"user expiry without ttl", 0, now.Add(10 * time.Minute), now.Add(10 * time.Minute).Unix()},
		{"ttl shorter than user expiry", time.Minute, now.Add(10 * time.Minute), now.Add(time.Minute).Unix()},
		{"user expiry within a second", time.Hour, now.Add(300 * time.Millisecond), now.Unix() + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := u
			u.Expires = tc.expires
			g, err := Resolve(u, nil)
			if err != nil {
				t.Fatal(err)
			}
			uc, err := iss.UserClaims(g, unkey, now, tc.ttl)
			if err != nil {
				t.Fatal(err)
			}
			token, err := iss.IssueUserJWT(uc)
			if err != nil {
				t.Fatal(err)
			}
			got, err := jwt.DecodeUserClaims(token)
			if err != nil {
				t.Fatal(err)
			}
			if got.Subject != unkey || got.Audience != "APP" || got.Name != "alice" || got.Issuer != iss.PublicKey() {
				t.Errorf("sub/aud/name/iss = %s/%s/%s/%s, want %s/APP/alice/%s", got.Subject, got.Audience, got.Name, got.Issuer, unkey, iss.PublicKey())
			}
			if got.Expires != tc.want {
				t.Errorf("exp = %d, want %d", got.Expires, tc.want)
			}
			if !slices.Equal(got.Pub.Allow, jwt.StringList{"orders.>"}) || !slices.Equal(got.Pub.Deny, jwt.StringList{"orders.secret"}) {
				t.Errorf("pub = %+v", got.Pub)
			}
			if !slices.Equal(got.Sub.Allow, jwt.StringList{"orders.>", "_INBOX.>"}) || !slices.Equal(got.Sub.Deny, jwt.StringList{"orders.private.>"}) {
				t.Errorf("sub = %+v", got.Sub)
			}
			if got.Resp == nil || got.Resp.MaxMsgs != 3 || got.Resp.Expires != time.Minute {
				t.Errorf("resp = %+v, want max 3 ttl 1m", got.Resp)
			}
		})
	}

	t.Run("no response permission unless set", func(t *testing.T) {
		u := u
		u.Permissions.Resp = nil
		g, err := Resolve(u, nil)
		if err != nil {
			t.Fatal(err)
		}
		uc, err := iss.UserClaims(g, unkey, now, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if uc.Resp != nil {
			t.Errorf("resp = %+v, want none", uc.Resp)
		}
	})
}

func TestRespond(t *testing.T) {
	iss, _ := newTestIssuer(t)
	unkey := newUserNkey(t)
	skp, _ := nkeys.CreateServer()
	sid, _ := skp.PublicKey()

	token, err := iss.Respond(sid, unkey, "user.jwt.here", "")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := jwt.DecodeAuthorizationResponseClaims(token)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Subject != unkey || rc.Audience != sid || rc.Issuer != iss.PublicKey() || rc.Jwt != "user.jwt.here" || rc.Error != "" {
		t.Errorf("allow response = %+v", rc)
	}

	token, err = iss.Respond(sid, unkey, "", "bad_credentials")
	if err != nil {
		t.Fatal(err)
	}
	rc, err = jwt.DecodeAuthorizationResponseClaims(token)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Error != "bad_credentials" || rc.Jwt != "" {
		t.Errorf("deny response: error %q jwt %q, want bad_credentials and no jwt", rc.Error, rc.Jwt)
	}
}

func TestXKeyRoundTrip(t *testing.T) {
	_, keys := newTestIssuer(t)
	relayX, err := NewXKey(keys.XKeySeed)
	if err != nil {
		t.Fatal(err)
	}
	server, _ := nkeys.CreateCurveKeys()
	serverPub, _ := server.PublicKey()

	sealed, err := server.Seal([]byte("request"), relayX.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	got, err := relayX.Open(sealed, serverPub)
	if err != nil || string(got) != "request" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	resp, err := relayX.Seal([]byte("response"), serverPub)
	if err != nil {
		t.Fatal(err)
	}
	got, err = server.Open(resp, relayX.PublicKey())
	if err != nil || string(got) != "response" {
		t.Fatalf("server Open = %q, %v", got, err)
	}
	other, _ := nkeys.CreateCurveKeys()
	otherPub, _ := other.PublicKey()
	if _, err := relayX.Open(sealed, otherPub); err == nil {
		t.Error("Open with the wrong sender key succeeded")
	}
}

func TestKeyValidation(t *testing.T) {
	_, keys := newTestIssuer(t)
	if _, err := NewIssuer(keys.XKeySeed, nil); err == nil {
		t.Error("NewIssuer accepted a curve seed")
	}
	ukp, _ := nkeys.CreateUser()
	useed, _ := ukp.Seed()
	if _, err := NewIssuer(string(useed), nil); err == nil || !strings.Contains(err.Error(), "SA") {
		t.Errorf("NewIssuer with a user seed: %v, want an error naming SA", err)
	}
	if _, err := NewXKey(keys.IssuerSeed); err == nil {
		t.Error("NewXKey accepted an account seed")
	}
}

func TestValidation(t *testing.T) {
	long := strings.Repeat("a", MaxNameLen+1)
	for _, tc := range []struct {
		what string
		err  error
		ok   bool
	}{
		{"name alice", ValidateName("alice"), true},
		{"name with dot and dash", ValidateName("svc.orders-1@eu"), true},
		{"empty name", ValidateName(""), false},
		{"name with space", ValidateName("a b"), false},
		{"name with tab", ValidateName("a\tb"), false},
		{"name with newline", ValidateName("a\nb"), false},
		{"name with NUL", ValidateName("a\x00b"), false},
		{"name with non-breaking space", ValidateName("a\u00a0b"), false},
		{"invalid utf-8 name", ValidateName("a\xffb"), false},
		{"long name", ValidateName(long), false},
		{"account APP", ValidateAccount("APP"), true},
		{"account with dash", ValidateAccount("team-1_x"), true},
		{"empty account", ValidateAccount(""), false},
		{"account with space", ValidateAccount("A B"), false},
		{"account with brace", ValidateAccount("A}"), false},
		{"account starting with digit", ValidateAccount("1A"), false},
		{"subject", ValidateSubject("orders.new"), true},
		{"subject with wildcards", ValidateSubject("orders.*.>"), true},
		{"full wildcard", ValidateSubject(">"), true},
		{"empty subject", ValidateSubject(""), false},
		{"empty token", ValidateSubject("a..b"), false},
		{"trailing dot", ValidateSubject("a."), false},
		{"> not last", ValidateSubject("a.>.b"), false},
		{"wildcard inside token", ValidateSubject("a.b*"), false},
		{"space in subject", ValidateSubject("a b"), false},
	} {
		if got := tc.err == nil; got != tc.ok {
			t.Errorf("%s: err = %v, want ok=%v", tc.what, tc.err, tc.ok)
		}
	}
}

func TestCheck(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		u    User
		want error
	}{
		{"active", User{}, nil},
		{"disabled", User{Disabled: true}, ErrUserDisabled},
		{"expired", User{Expires: now.Add(-time.Second)}, ErrUserExpired},
		{"expires now", User{Expires: now}, ErrUserExpired},
		{"expires later", User{Expires: now.Add(time.Second)}, nil},
	} {
		if got := tc.u.Check(now); !errors.Is(got, tc.want) || (tc.want == nil && got != nil) {
			t.Errorf("%s: Check = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestResolve(t *testing.T) {
	roles := []Role{
		{Name: "svc", Permissions: Permissions{
			Pub:  Rule{Allow: []string{"svc.{{name}}.>"}},
			Sub:  Rule{Allow: []string{"svc.{{name}}.>", "acct.{{account}}"}, Deny: []string{"svc.{{name}}.admin"}},
			Resp: &ResponsePermission{MaxMsgs: 2},
		}},
		{Name: "reader", Permissions: Permissions{
			Sub:  Rule{Allow: []string{"metrics.>"}, Deny: []string{"metrics.secret"}},
			Resp: &ResponsePermission{TTL: 5 * time.Minute},
		}},
	}
	u := User{Name: "bob", Account: "APP", Roles: []string{"svc", "reader"},
		Permissions: Permissions{Sub: Rule{Allow: []string{"metrics.>", "own.>"}}}}
	g, err := Resolve(u, roles)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"svc.bob.>", "acct.APP", "metrics.>", "own.>"}; !slices.Equal(g.Permissions.Sub.Allow, want) {
		t.Errorf("sub allow = %v, want %v", g.Permissions.Sub.Allow, want)
	}
	if want := []string{"svc.bob.admin", "metrics.secret"}; !slices.Equal(g.Permissions.Sub.Deny, want) {
		t.Errorf("sub deny = %v, want %v", g.Permissions.Sub.Deny, want)
	}
	if want := []string{"svc.bob.>"}; !slices.Equal(g.Permissions.Pub.Allow, want) {
		t.Errorf("pub allow = %v, want %v", g.Permissions.Pub.Allow, want)
	}
	if r := g.Permissions.Resp; r == nil || r.MaxMsgs != 2 || r.TTL != 5*time.Minute {
		t.Errorf("resp = %+v, want the most generous: max 2, ttl 5m", r)
	}

	for _, name := range []string{"evil.alice", "a*", ">", "x y", "{{account}}", "a}}", "{{x"} {
		u := User{Name: name, Account: "APP", Roles: []string{"svc"}}
		if _, err := Resolve(u, roles); !errors.Is(err, ErrUnsafeTemplate) {
			t.Errorf("Resolve for name %q: %v, want ErrUnsafeTemplate", name, err)
		}
	}
	dotted := User{Name: "svc.plain", Account: "APP", Permissions: Permissions{Sub: Rule{Allow: []string{"plain.>"}}}}
	if _, err := Resolve(dotted, nil); err != nil {
		t.Errorf("a dotted name without templates: %v", err)
	}
	if _, err := Resolve(User{Name: "bob", Account: "APP", Roles: []string{"gone"}}, roles); !errors.Is(err, ErrUnknownRole) {
		t.Errorf("unknown role: %v, want ErrUnknownRole", err)
	}
	if err := ValidateSubject("a.{{nmae}}"); err == nil {
		t.Error("ValidateSubject accepted an unknown template")
	}
}

func TestAdmit(t *testing.T) {
	g := Grant{Src: []string{"10.0.0.0/8", "192.0.2.7/32", "::1/128"}, ConnTypes: []string{ConnStandard}}
	for _, tc := range []struct {
		c    Client
		want error
	}{
		{Client{Host: "10.1.2.3", ConnType: ConnStandard}, nil},
		{Client{Host: "192.0.2.7", ConnType: ConnStandard}, nil},
		{Client{Host: "::1", ConnType: ConnStandard}, nil},
		{Client{Host: "::ffff:10.1.2.3", ConnType: ConnStandard}, nil},
		{Client{Host: "192.0.2.8", ConnType: ConnStandard}, ErrSourceNotAllowed},
		{Client{Host: "", ConnType: ConnStandard}, ErrSourceNotAllowed},
		{Client{Host: "10.1.2.3", ConnType: ConnWebsocket}, ErrConnTypeNotAllowed},
		{Client{Host: "10.1.2.3", ConnType: ""}, ErrConnTypeNotAllowed},
	} {
		if got := g.Admit(tc.c); !errors.Is(got, tc.want) || (tc.want == nil && got != nil) {
			t.Errorf("Admit(%+v) = %v, want %v", tc.c, got, tc.want)
		}
	}
	if err := (Grant{}).Admit(Client{}); err != nil {
		t.Errorf("a grant without constraints refused: %v", err)
	}
	if got, want := ClientConnType("Client", "websocket"), ConnWebsocket; got != want {
		t.Errorf("ClientConnType websocket = %q", got)
	}
	if got, want := ClientConnType("Leafnode", ""), ConnLeafnode; got != want {
		t.Errorf("ClientConnType leafnode = %q", got)
	}
	if _, err := ParseSource("10.0.0.0/33"); err == nil {
		t.Error("ParseSource accepted /33")
	}
	if p, err := ParseSource("10.1.2.3/8"); err != nil || p.String() != "10.0.0.0/8" {
		t.Errorf("ParseSource canonical form = %v, %v", p, err)
	}
}
