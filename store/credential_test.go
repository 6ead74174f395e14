package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/authrelay/authrelay/accounts"
)

// testNkey returns the public key of a new user key pair.
func testNkey(t *testing.T) string {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	p, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCredentials covers what the relay and the commands rely on of the
// credentials beside passwords: a user added with an nkey and no password
// has none (its password login fails as a wrong one does) until 'user
// passwd'; one value names one user; an expired token names nobody, an
// expiring one caps the user's expiry; a token is removed by its ID; a
// credential added keeps the user's connections (no change in the feed)
// and gives a new version, one removed is a change; removing the user
// removes its credentials.
func TestCredentials(t *testing.T) {
	ctx := context.Background()
	db, _ := newTestDB(t)
	if err := db.AddAccount(ctx, "APP"); err != nil {
		t.Fatal(err)
	}
	key := testNkey(t)
	svc := accounts.User{Name: "svc", Account: "APP"}
	if err := db.AddUserWith(ctx, svc, "", nil); err == nil {
		t.Fatal("a user with neither a password nor a credential was added")
	}
	if err := db.AddUserWith(ctx, svc, "", []accounts.StoredCredential{{Kind: accounts.CredNkey, Value: key}}); err != nil {
		t.Fatal(err)
	}
	if ok, err := db.HasPassword(ctx, "svc"); err != nil || ok {
		t.Fatalf("HasPassword(svc) = %v, %v; want false", ok, err)
	}
	if _, err := db.Authenticate(ctx, "svc", ""); !errors.Is(err, accounts.ErrInvalidCredentials) {
		t.Fatalf("password login of a user without a password: %v, want ErrInvalidCredentials", err)
	}
	u, ver, err := db.CredentialUser(ctx, accounts.CredNkey, key)
	if err != nil || u.Name != "svc" || u.Account != "APP" {
		t.Fatalf("CredentialUser(nkey) = %+v, %v", u, err)
	}
	if v, err := db.UserVersion(ctx, "svc"); err != nil || v != ver {
		t.Fatalf("CredentialUser's version %d, UserVersion %d (%v)", ver, v, err)
	}

	if err := db.AddUser(ctx, accounts.User{Name: "other", Account: "APP"}, "other-pw-1a2b-long"); err != nil {
		t.Fatal(err)
	}
	err = db.SetCredentials(ctx, "other", nil, []accounts.StoredCredential{{Kind: accounts.CredNkey, Value: key}})
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), `bound to user "svc"`) {
		t.Fatalf("the same nkey for a second user: %v, want ErrExists naming svc", err)
	}
	if err := db.SetCredentials(ctx, "nobody", nil, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("credentials of an unknown user: %v, want ErrNotFound", err)
	}

	feed := func() int64 {
		t.Helper()
		n, err := db.LastUserChange(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	token, err := accounts.NewAPIToken()
	if err != nil {
		t.Fatal(err)
	}
	before, beforeVer := feed(), ver
	exp := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	digest := accounts.TokenDigest(token)
	if err := db.AddCredential(ctx, accounts.StoredCredential{Kind: accounts.CredToken, Value: digest, User: "svc", Name: "ci", Expires: exp}); err != nil {
		t.Fatal(err)
	}
	if after := feed(); after != before {
		t.Errorf("adding a token wrote a change (%d → %d): it would close the user's connections", before, after)
	}
	u, ver, err = db.CredentialUser(ctx, accounts.CredToken, digest)
	if err != nil || !u.Expires.Equal(exp) {
		t.Fatalf("CredentialUser(token) = expires %v, %v; want the token's expiry %v", u.Expires, err, exp)
	}
	if ver == beforeVer {
		t.Error("adding a token kept the user's version: a cached grant would outlive it")
	}
	expired := accounts.TokenDigest(token + "x")
	if err := db.AddCredential(ctx, accounts.StoredCredential{Kind: accounts.CredToken, Value: expired, User: "svc", Expires: time.Now().Add(-time.Second)}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.CredentialUser(ctx, accounts.CredToken, expired); !errors.Is(err, accounts.ErrInvalidCredentials) {
		t.Fatalf("an expired token: %v, want ErrInvalidCredentials", err)
	}
	list, err := db.Credentials(ctx, "svc", accounts.CredToken)
	if err != nil || len(list) != 2 {
		t.Fatalf("tokens of svc: %d, %v; want 2", len(list), err)
	}
	before = feed()
	if _, err := db.RemoveCredential(ctx, accounts.CredToken, "short"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("remove by a non-hex ID: %v, want ErrNotFound", err)
	}
	c, err := db.RemoveCredential(ctx, accounts.CredToken, accounts.TokenID(digest))
	if err != nil || c.Value != digest || c.User != "svc" {
		t.Fatalf("remove by ID = %+v, %v", c, err)
	}
	if after := feed(); after == before {
		t.Error("removing a token wrote no change: the connections made with it would stay open")
	}
	if _, _, err := db.CredentialUser(ctx, accounts.CredToken, digest); !errors.Is(err, accounts.ErrInvalidCredentials) {
		t.Fatalf("a removed token: %v, want ErrInvalidCredentials", err)
	}

	if err := db.SetPassword(ctx, "svc", "svc-pw-9c8d-long"); err != nil {
		t.Fatal(err)
	}
	if ok, err := db.HasPassword(ctx, "svc"); err != nil || !ok {
		t.Fatalf("HasPassword(svc) after passwd = %v, %v; want true", ok, err)
	}
	if err := db.RemoveUser(ctx, "svc"); err != nil {
		t.Fatal(err)
	}
	if list, err := db.Credentials(ctx, "", ""); err != nil || len(list) != 0 {
		t.Fatalf("credentials after the users went: %+v, %v; want none", list, err)
	}
}

// TestReplicationOfCredentials: in cluster mode a credential added,
// changed and removed on one copy is the same on the other (a token's
// digest, an nkey), the other copy's feed gets the change that closes the
// user's connections when one is removed, and the user's version moves
// there too (its caches).
func TestReplicationOfCredentials(t *testing.T) {
	ctx := t.Context()
	log := &sliceLog{}
	a, b := clusterNode(t, log), clusterNode(t, log)
	sync := func() {
		t.Helper()
		for _, db := range []*DB{b, a} {
			if err := log.catchUp(db)(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if da, db := digest(t, a), digest(t, b); da != db {
			t.Fatalf("digests differ after catching up: %s, %s", da, db)
		}
	}
	key := testNkey(t)
	token, err := accounts.NewAPIToken()
	if err != nil {
		t.Fatal(err)
	}
	admin(t, a, "account add", func(ctx context.Context) error { return a.AddAccount(ctx, "APP") })
	admin(t, a, "user add", func(ctx context.Context) error {
		return a.AddUserWith(ctx, accounts.User{Name: "svc", Account: "APP"}, "", []accounts.StoredCredential{{Kind: accounts.CredNkey, Value: key}})
	})
	admin(t, a, "token add", func(ctx context.Context) error {
		return a.AddCredential(ctx, accounts.StoredCredential{Kind: accounts.CredToken, Value: accounts.TokenDigest(token), User: "svc"})
	})
	sync()
	for _, c := range []struct {
		kind  accounts.CredentialKind
		value string
	}{{accounts.CredNkey, key}, {accounts.CredToken, accounts.TokenDigest(token)}} {
		if u, _, err := b.CredentialUser(ctx, c.kind, c.value); err != nil || u.Name != "svc" {
			t.Fatalf("%s of svc on the other copy: %+v, %v", c.kind, u, err)
		}
	}
	if ok, err := b.HasPassword(ctx, "svc"); err != nil || ok {
		t.Errorf("svc has a password on the other copy: %v, %v", ok, err)
	}
	feed, err := b.LastUserChange(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Versions come from each copy's own counter: compare a copy with
	// itself.
	v1, err := a.UserVersion(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	feedA, err := a.LastUserChange(ctx)
	if err != nil {
		t.Fatal(err)
	}
	admin(t, b, "user set", func(ctx context.Context) error {
		return b.SetCredentials(ctx, "svc", []accounts.CredentialKind{accounts.CredNkey}, nil)
	})
	sync()
	if _, _, err := a.CredentialUser(ctx, accounts.CredNkey, key); !errors.Is(err, accounts.ErrInvalidCredentials) {
		t.Errorf("the removed nkey on the first copy: %v, want ErrInvalidCredentials", err)
	}
	if after, err := b.LastUserChange(ctx); err != nil || after == feed {
		t.Errorf("the nkey's removal wrote no change on the copy that made it (%d → %d, %v)", feed, after, err)
	}
	if changes, err := a.UserChangesSince(ctx, feedA); err != nil || len(changes) == 0 || changes[0].User != "svc" {
		t.Errorf("the first copy's change feed after the removal applied: %+v, %v; want a change of svc (it closes svc's connections there)", changes, err)
	}
	if v2, err := a.UserVersion(ctx, "svc"); err != nil || v2 == 0 || v2 == v1 {
		t.Errorf("svc's version on the first copy after the removal: %d, %v", v2, err)
	}
	admin(t, a, "user rm", func(ctx context.Context) error { return a.RemoveUser(ctx, "svc") })
	sync()
	if list, err := b.Credentials(ctx, "", ""); err != nil || len(list) != 0 {
		t.Errorf("credentials on the other copy after the user went: %+v, %v", list, err)
	}
}
