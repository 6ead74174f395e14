package doctor

import (
	"context"
	"strings"
	"testing"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/internal/loopback"
	"github.com/authrelay/authrelay/internal/oidctest"
	"github.com/authrelay/authrelay/store"
)

// TestIdentityProviders: doctor fetches each provider's discovery document
// and keys: ok for a provider that answers (zitadel/oidc's, on 127.0.0.1),
// a failure naming idp_unavailable for one that is down and for one
// nobody listens for; --offline asks none of them.
func TestIdentityProviders(t *testing.T) {
	d := newTestDir(t, "127.0.0.1:4222")
	ctx := context.Background()
	up, down := oidctest.Start(t), oidctest.Start(t)
	down.SetMode(oidctest.Fail)
	db, err := store.Open(ctx, d.path("authrelay.db"))
	if err != nil {
		t.Fatal(err)
	}
	for name, issuer := range map[string]string{"up": up.Issuer, "down": down.Issuer, "gone": "http://" + loopback.Addr(t)} {
		if err := db.AddIdentityProvider(ctx, accounts.IdentityProvider{Name: name, Issuer: issuer, Audience: oidctest.Audience}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	url := d.startServer(t)
	got := find(Run(ctx, d.online(url)), "identity provider")
	if len(got) != 3 {
		t.Fatalf("identity provider results:\n%s", dump(got))
	}
	for _, r := range got {
		name, _, _ := strings.Cut(r.Message, " ")
		wantStatus := Fail
		if strings.HasPrefix(name, "up") {
			wantStatus = OK
		}
		if r.Status != wantStatus {
			t.Errorf("%s: status %s, want %s", r.Message, r.Status, wantStatus)
		}
		if wantStatus == Fail && !strings.Contains(r.Message, "idp_unavailable") {
			t.Errorf("%s: does not say the logins are refused with idp_unavailable", r.Message)
		}
	}
	if off := find(Run(ctx, d.config()), "identity provider"); len(off) != 0 {
		t.Errorf("--offline checked the providers:\n%s", dump(off))
	}
}
