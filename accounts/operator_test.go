package accounts

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// newAccountSeed returns a fresh account seed and its public key.
func newAccountSeed(t testing.TB) (seed, pub string) {
	t.Helper()
	kp, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	s, err := kp.Seed()
	if err != nil {
		t.Fatal(err)
	}
	p, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return string(s), p
}

// operatorFixture is an AUTH account with a signing key (the issuer) and
// an application account APP with a signing key.
type operatorFixture struct {
	authPub, authSKPub string
	appPub, appSKPub   string
	issuer             *Issuer
	placement          *OperatorMode
}

func newOperatorFixture(t testing.TB, scoped bool) operatorFixture {
	t.Helper()
	var f operatorFixture
	_, f.authPub = newAccountSeed(t)
	authSK, authSKPub := newAccountSeed(t)
	f.authSKPub = authSKPub
	_, f.appPub = newAccountSeed(t)
	appSK, appSKPub := newAccountSeed(t)
	f.appSKPub = appSKPub
	var err error
	f.placement, err = NewOperatorMode(f.authPub, []OperatorAccount{{Name: "APP", PublicKey: f.appPub, SigningSeed: appSK, Scoped: scoped}})
	if err != nil {
		t.Fatal(err)
	}
	if f.issuer, err = NewIssuer(authSK, f.placement); err != nil {
		t.Fatal(err)
	}
	return f
}

var appGrant = Grant{Name: "alice", Account: "APP", Permissions: Permissions{
	Pub: Rule{Allow: []string{"app.>"}},
	Sub: Rule{Allow: []string{"app.>", "_INBOX.>"}},
}, ConnTypes: []string{jwt.ConnectionTypeStandard}}

// TestOperatorModeUserJWT: in operator mode the user JWT names its account
// by issuer_account, has no audience, and is signed by the account's
// signing key (TestAuthCalloutOperatorModeBasics' "sk" user); the response
// is signed by AUTH's signing key with issuer_account naming AUTH.
func TestOperatorModeUserJWT(t *testing.T) {
	f := newOperatorFixture(t, false)
	user := newUserNkey(t)
	uc, err := f.issuer.UserClaims(appGrant, user, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := f.issuer.IssueUserJWT(uc)
	if err != nil {
		t.Fatal(err)
	}
	got, err := jwt.DecodeUserClaims(tok)
	if err != nil {
		t.Fatal(err)
	}
	if got.Issuer != f.appSKPub || got.IssuerAccount != f.appPub || got.Audience != "" {
		t.Errorf("user jwt iss %s issuer_account %s aud %q; want iss %s (APP's signing key), issuer_account %s (APP), no aud",
			got.Issuer, got.IssuerAccount, got.Audience, f.appSKPub, f.appPub)
	}
	if !got.Pub.Allow.Contains("app.>") || !got.Sub.Allow.Contains("_INBOX.>") || !got.AllowedConnectionTypes.Contains(jwt.ConnectionTypeStandard) {
		t.Errorf("unscoped user jwt lost its permissions: %+v", got.UserPermissionLimits)
	}
	resp, err := f.issuer.Respond("NSERVER", user, tok, "")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := jwt.DecodeAuthorizationResponseClaims(resp)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Issuer != f.authSKPub || rc.IssuerAccount != f.authPub {
		t.Errorf("response iss %s issuer_account %s; want AUTH's signing key %s and AUTH %s", rc.Issuer, rc.IssuerAccount, f.authSKPub, f.authPub)
	}
}

// TestOperatorModeScoped: with a scoped signing key the JWT carries no
// permissions or limits (the server refuses one that does, and applies the
// scope's template instead).
func TestOperatorModeScoped(t *testing.T) {
	f := newOperatorFixture(t, true)
	uc, err := f.issuer.UserClaims(appGrant, newUserNkey(t), time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !uc.HasEmptyPermissions() {
		t.Errorf("scoped user jwt has permissions or limits: %+v", uc.UserPermissionLimits)
	}
	if uc.Expires == 0 || uc.Name != "alice" {
		t.Errorf("scoped user jwt lost its name %q or expiry %d", uc.Name, uc.Expires)
	}
}

// TestOperatorModeNotAllowed: an account the placement does not hold is
// refused with ErrAccountNotAllowed, also after a reload that does not
// bring it, and reloads are paced.
func TestOperatorModeNotAllowed(t *testing.T) {
	f := newOperatorFixture(t, false)
	var mu sync.Mutex
	loads := 0
	f.placement.SetReload(func() ([]OperatorAccount, error) {
		mu.Lock()
		defer mu.Unlock()
		loads++
		return nil, errors.New("directory unreadable")
	})
	for range 5 {
		_, err := f.issuer.UserClaims(Grant{Name: "bob", Account: "ORDERS"}, newUserNkey(t), time.Now(), time.Hour)
		if !errors.Is(err, ErrAccountNotAllowed) {
			t.Fatalf("placement in ORDERS: %v, want ErrAccountNotAllowed", err)
		}
	}
	if loads != 1 {
		t.Errorf("5 placements in an unknown account within a second reloaded %d times, want 1", loads)
	}
	if _, err := f.issuer.UserClaims(appGrant, newUserNkey(t), time.Now(), time.Hour); err != nil {
		t.Errorf("a failed reload lost APP: %v", err)
	}
}

// TestOperatorModeReload: an account added to the directory is placed in
// after the placement reads it again.
func TestOperatorModeReload(t *testing.T) {
	f := newOperatorFixture(t, false)
	ordersSK, _ := newAccountSeed(t)
	_, ordersPub := newAccountSeed(t)
	f.placement.SetReload(func() ([]OperatorAccount, error) {
		return []OperatorAccount{{Name: "ORDERS", PublicKey: ordersPub, SigningSeed: ordersSK}}, nil
	})
	uc, err := f.issuer.UserClaims(Grant{Name: "bob", Account: "ORDERS"}, newUserNkey(t), time.Now(), time.Hour)
	if err != nil {
		t.Fatalf("placement in an account added since: %v", err)
	}
	if uc.IssuerAccount != ordersPub {
		t.Errorf("issuer_account %s, want ORDERS %s", uc.IssuerAccount, ordersPub)
	}
	if _, err := f.issuer.IssueUserJWT(uc); err != nil {
		t.Errorf("sign for the added account: %v", err)
	}
}

// TestOperatorModeDecide: Decide and Explain, given the relay's issuer,
// refuse a user of an account the placement does not place in with
// ReasonAccountNotAllowed, as the relay does, so 'user explain' says what
// the relay would; a user of a placed account is allowed.
func TestOperatorModeDecide(t *testing.T) {
	f := newOperatorFixture(t, false)
	now := time.Now()
	for _, c := range []struct{ account, want string }{{"APP", ""}, {"ORDERS", ReasonAccountNotAllowed}} {
		l := Login{User: User{Name: "bob", Account: c.account}, Now: now, Issuer: f.issuer}
		if v := Decide(&l); v.Reason != c.want {
			t.Errorf("Decide for a user of %s: reason %q (%v), want %q", c.account, v.Reason, v.Err, c.want)
		}
		v, err := Explain(&l)
		if err != nil || v.Reason != c.want {
			t.Errorf("Explain for a user of %s: reason %q, %v; want %q", c.account, v.Reason, err, c.want)
		}
	}
}

// TestOperatorModeChanged: with SetChanged, a placement reads its accounts
// again, at most once a second, when the sources say they changed, though
// every account asked for is known: an account taken away stops being
// placed in.
func TestOperatorModeChanged(t *testing.T) {
	f := newOperatorFixture(t, false)
	var mu sync.Mutex
	changed, loads := false, 0
	f.placement.SetReload(func() ([]OperatorAccount, error) {
		mu.Lock()
		defer mu.Unlock()
		loads++
		return nil, nil // APP is gone
	})
	f.placement.SetChanged(func() bool {
		mu.Lock()
		defer mu.Unlock()
		return changed
	})
	if err := f.issuer.Placeable("APP"); err != nil {
		t.Fatalf("APP before any change: %v", err)
	}
	mu.Lock()
	changed = true
	mu.Unlock()
	f.placement.lastCheck.Store(0) // the next login is due to check
	for range 5 {
		f.issuer.Placeable("APP")
	}
	// The check runs beside the logins: APP goes once it is done.
	deadline := time.Now().Add(5 * time.Second)
	for err := f.issuer.Placeable("APP"); !errors.Is(err, ErrAccountNotAllowed); err = f.issuer.Placeable("APP") {
		if time.Now().After(deadline) {
			t.Fatalf("APP after its removal: %v, want ErrAccountNotAllowed", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if loads < 1 || loads > 2 {
		t.Errorf("%d reloads within a second of one change, want 1 (or 2 with the unknown account's own)", loads)
	}
}

// TestNewOperatorModeRefuses: keys of the wrong kind and the callout
// account itself are refused.
func TestNewOperatorModeRefuses(t *testing.T) {
	authSeed, authPub := newAccountSeed(t)
	sk, _ := newAccountSeed(t)
	_, appPub := newAccountSeed(t)
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	userSeed, err := user.Seed()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		callout string
		accts   []OperatorAccount
	}{
		{"callout not an account key", "not-a-key", nil},
		{"account key invalid", authPub, []OperatorAccount{{Name: "APP", PublicKey: "AXXX", SigningSeed: sk}}},
		{"signing seed of a user", authPub, []OperatorAccount{{Name: "APP", PublicKey: appPub, SigningSeed: string(userSeed)}}},
		{"the callout account", authPub, []OperatorAccount{{Name: "AUTH", PublicKey: authPub, SigningSeed: authSeed}}},
		{"name twice", authPub, []OperatorAccount{{Name: "APP", PublicKey: appPub, SigningSeed: sk}, {Name: "APP", PublicKey: appPub, SigningSeed: sk}}},
	} {
		if _, err := NewOperatorMode(c.callout, c.accts); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
}

// TestSizingIssuerOperator: the sizing issuer of operator mode makes
// responses as large as a real operator placement's, larger than config
// mode's by the issuer_account fields.
func TestSizingIssuerOperator(t *testing.T) {
	now := time.Now()
	f := newOperatorFixture(t, false)
	real, err := f.issuer.ResponseSize(appGrant, now)
	if err != nil {
		t.Fatal(err)
	}
	sizing, err := NewSizingIssuer(true)
	if err != nil {
		t.Fatal(err)
	}
	got, err := sizing.ResponseSize(appGrant, now)
	if err != nil {
		t.Fatal(err)
	}
	config, err := NewSizingIssuer(false)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.ResponseSize(appGrant, now)
	if err != nil {
		t.Fatal(err)
	}
	if got != real || got <= cfg {
		t.Errorf("operator sizing %d bytes, real operator response %d, config mode %d: want sizing = real > config", got, real, cfg)
	}
}

// BenchmarkIssueModes is the issuing part of a granted login, user claims,
// user JWT and signed response, in config mode and in operator mode (the
// account's signing key for the JWT, issuer_account in both tokens).
func BenchmarkIssueModes(b *testing.B) {
	config, err := NewSizingIssuer(false)
	if err != nil {
		b.Fatal(err)
	}
	f := newOperatorFixture(b, false)
	ukp, err := nkeys.CreateUser()
	if err != nil {
		b.Fatal(err)
	}
	user, err := ukp.PublicKey()
	if err != nil {
		b.Fatal(err)
	}
	for _, m := range []struct {
		name string
		iss  *Issuer
	}{{"config", config}, {"operator", f.issuer}} {
		b.Run(m.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				uc, err := m.iss.UserClaims(appGrant, user, time.Now(), time.Hour)
				if err != nil {
					b.Fatal(err)
				}
				tok, err := m.iss.IssueUserJWT(uc)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := m.iss.Respond("NSERVER", user, tok, ""); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
