package store

import (
	"context"
	"errors"
	"testing"

	"github.com/authrelay/authrelay/accounts"
)

// TestIdentityProviderBindings: a user bound to a provider is found by
// (provider, name) while the provider exists; removing the provider
// closes the user's connections (the change feed) and gives it a new
// version, the login query finds nobody, and adding the provider again
// restores it. A binding to a provider that does not exist is refused.
func TestIdentityProviderBindings(t *testing.T) {
	db, _ := newTestDB(t)
	ctx := context.Background()
	if err := db.AddAccount(ctx, "APP"); err != nil {
		t.Fatal(err)
	}
	p := accounts.IdentityProvider{Name: "corp", Issuer: "https://login.example.com", Audience: "nats", RoleMap: map[string]string{"g": "r"}, RolesClaim: "groups"}
	if err := db.AddIdentityProvider(ctx, p); err != nil {
		t.Fatal(err)
	}
	twin := p
	twin.Name = "twin"
	if err := db.AddIdentityProvider(ctx, twin); !errors.Is(err, ErrExists) {
		t.Errorf("a second provider of the same issuer and audience: %v, want ErrExists", err)
	}
	u := accounts.User{Name: "alice", Account: "APP"}
	if err := db.AddUserWith(ctx, accounts.User{Name: "bob", Account: "APP"}, "", []accounts.StoredCredential{{Kind: accounts.CredOIDC, Value: "nope"}}); !errors.Is(err, ErrUnknownProvider) {
		t.Errorf("binding to no provider: %v, want ErrUnknownProvider", err)
	}
	if err := db.AddUserWith(ctx, u, "", []accounts.StoredCredential{{Kind: accounts.CredOIDC, Value: "corp"}}); err != nil {
		t.Fatal(err)
	}
	if has, err := db.HasPassword(ctx, "alice"); err != nil || has {
		t.Errorf("alice, bound to a provider with no password: HasPassword = %v, %v", has, err)
	}
	found, ver, err := db.CredentialUser(ctx, accounts.CredOIDC, accounts.OIDCValue("corp", "alice"))
	if err != nil || found.Name != "alice" {
		t.Fatalf("CredentialUser(corp, alice) = %q, %v", found.Name, err)
	}
	if _, _, err := db.CredentialUser(ctx, accounts.CredOIDC, accounts.OIDCValue("other", "alice")); !errors.Is(err, accounts.ErrInvalidCredentials) {
		t.Errorf("alice as another provider's: %v, want ErrInvalidCredentials", err)
	}
	got, err := db.IdentityProviders(ctx)
	if err != nil || len(got) != 1 || len(got[0].Users) != 1 || got[0].Users[0] != "alice" || got[0].RoleMap["g"] != "r" {
		t.Fatalf("IdentityProviders = %+v, %v", got, err)
	}
	last, err := db.LastUserChange(ctx)
	if err != nil {
		t.Fatal(err)
	}
	users, err := db.RemoveIdentityProvider(ctx, "corp")
	if err != nil || len(users) != 1 {
		t.Fatalf("RemoveIdentityProvider = %v, %v", users, err)
	}
	changes, err := db.UserChangesSince(ctx, last)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) == 0 || changes[0].User != "alice" {
		t.Errorf("changes after the provider's removal = %+v, want alice's (her connections close)", changes)
	}
	if v, err := db.UserVersion(ctx, "alice"); err != nil || v == ver {
		t.Errorf("alice's version after the removal = %d, %v; was %d", v, err, ver)
	}
	if _, _, err := db.CredentialUser(ctx, accounts.CredOIDC, accounts.OIDCValue("corp", "alice")); !errors.Is(err, accounts.ErrInvalidCredentials) {
		t.Errorf("alice after her provider's removal: %v, want ErrInvalidCredentials", err)
	}
	if _, err := db.RemoveIdentityProvider(ctx, "corp"); !errors.Is(err, ErrNotFound) {
		t.Errorf("removing it twice: %v, want ErrNotFound", err)
	}
	if err := db.AddIdentityProvider(ctx, p); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.CredentialUser(ctx, accounts.CredOIDC, accounts.OIDCValue("corp", "alice")); err != nil {
		t.Errorf("alice after her provider came back: %v", err)
	}
}

// TestCreateIdentityUser: a user created on first login is bound to its
// provider, with its audit row; a name a password user has is refused
// with ErrNameTaken and left as it was; one the provider's user has
// already is nil (another login created it), with no second row.
func TestCreateIdentityUser(t *testing.T) {
	db, _ := newTestDB(t)
	ctx := context.Background()
	if err := db.AddAccount(ctx, "APP"); err != nil {
		t.Fatal(err)
	}
	if err := db.AddIdentityProvider(ctx, accounts.IdentityProvider{Name: "corp", Issuer: "https://login.example.com", Audience: "nats", Account: "APP", CreateUsers: true}); err != nil {
		t.Fatal(err)
	}
	if err := db.AddUser(ctx, accounts.User{Name: "alice", Account: "APP"}, "a-long-password-1"); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateIdentityUser(ctx, "relay (idp corp)", accounts.User{Name: "alice", Account: "APP"}, "corp"); !errors.Is(err, ErrNameTaken) {
		t.Errorf("creating a password user's name: %v, want ErrNameTaken", err)
	}
	if p, err := db.UserProvider(ctx, "alice"); err != nil || p != "" {
		t.Errorf("alice bound to %q, %v after the refused creation", p, err)
	}
	for range 2 {
		if err := db.CreateIdentityUser(ctx, "relay (idp corp)", accounts.User{Name: "newcomer", Account: "APP", Roles: []string{"no-such-role"}}, "corp"); err != nil {
			t.Fatal(err)
		}
	}
	if p, err := db.UserProvider(ctx, "newcomer"); err != nil || p != "corp" {
		t.Errorf("newcomer bound to %q, %v", p, err)
	}
	rows, err := db.Audit(ctx, AuditFilter{Kind: AuditAdmin, User: "newcomer"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Actor != "relay (idp corp)" || rows[0].Action != "user add" {
		t.Errorf("audit rows of the creation = %+v, want one 'user add' by the relay", rows)
	}
}
