package store

import (
	"encoding/json"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/authrelay/authrelay/accounts"
)

// TestExport: every account (with its user count), role (with its
// holders) and user is in the document, under the JSON names 'authrelay
// export --json' has always printed; hashes only when asked for, and then
// enough to recreate each user with the password it had.
func TestExport(t *testing.T) {
	db, _ := newTestDB(t)
	ctx := t.Context()
	for _, a := range []accounts.Account{{Name: "APP"}, {Name: "ORDERS", Limits: accounts.AccountLimits{MaxConnections: 5}, JetStream: true}} {
		if err := db.AddAccountWithLimits(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.AddRole(ctx, accounts.Role{Name: "svc", Permissions: accounts.Permissions{Sub: accounts.Rule{Allow: []string{"svc.{{name}}.>"}}}}); err != nil {
		t.Fatal(err)
	}
	if err := db.AddRole(ctx, accounts.Role{Name: "idle", Permissions: accounts.Permissions{Pub: accounts.Rule{Allow: []string{"x"}}}}); err != nil {
		t.Fatal(err)
	}
	expires := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	users := map[string]string{"alice": "alice-pass-1", "bob": "bob-pass-22"}
	if err := db.AddUser(ctx, accounts.User{Name: "alice", Account: "ORDERS", Roles: []string{"svc"}, Expires: expires,
		Permissions: accounts.Permissions{Pub: accounts.Rule{Allow: []string{"orders.>"}, Deny: []string{"orders.secret"}},
			Resp: &accounts.ResponsePermission{MaxMsgs: 2, TTL: time.Second}}}, users["alice"]); err != nil {
		t.Fatal(err)
	}
	if err := db.AddUser(ctx, accounts.User{Name: "bob", Account: "ORDERS", Src: []string{"127.0.0.0/8"}, ConnTypes: []string{"STANDARD"},
		Permissions: accounts.Permissions{Sub: accounts.Rule{Allow: []string{"x.>"}}}}, users["bob"]); err != nil {
		t.Fatal(err)
	}
	if err := db.SetDisabled(ctx, "bob", true); err != nil {
		t.Fatal(err)
	}

	doc, err := db.Export(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := []ExportAccount{{Account: accounts.Account{Name: "APP"}, Users: 0},
		{Account: accounts.Account{Name: "ORDERS", Limits: accounts.AccountLimits{MaxConnections: 5}, JetStream: true}, Users: 2}}, doc.Accounts; !reflect.DeepEqual(got, want) {
		t.Errorf("accounts %+v, want %+v", got, want)
	}
	if len(doc.Roles) != 2 || doc.Roles[0].Name != "idle" || len(doc.Roles[0].Holders) != 0 || doc.Roles[0].Holders == nil ||
		doc.Roles[1].Name != "svc" || !reflect.DeepEqual(doc.Roles[1].Holders, []string{"alice"}) {
		t.Errorf("roles %+v, want idle (no holders, an empty list) and svc held by alice", doc.Roles)
	}
	if len(doc.Users) != 2 {
		t.Fatalf("users %+v, want alice and bob", doc.Users)
	}
	a, b := doc.Users[0], doc.Users[1]
	if a.Name != "alice" || a.Expires == nil || !a.Expires.Equal(expires) || a.Resp == nil || a.Resp.MaxMsgs != 2 ||
		!reflect.DeepEqual(a.Pub.Deny, []string{"orders.secret"}) || !reflect.DeepEqual(a.Roles, []string{"svc"}) || a.Disabled {
		t.Errorf("alice exported as %+v", a)
	}
	if b.Name != "bob" || b.Expires != nil || !b.Disabled || !reflect.DeepEqual(b.Src, []string{"127.0.0.0/8"}) ||
		b.Roles == nil || b.Pub.Allow == nil || b.Pub.Deny == nil {
		t.Errorf("bob exported as %+v (empty lists must be [], not null)", b)
	}
	for _, u := range doc.Users {
		if u.PasswordHash != "" {
			t.Errorf("%s: a hash without withHashes", u.Name)
		}
	}

	// The JSON names are what export has always printed.
	raw, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Accounts, Roles, Users []map[string]json.RawMessage
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what string
		got  map[string]json.RawMessage
		want string
	}{
		{"account", m.Accounts[1], "jetstream jetstream_limits limits name users"},
		{"role", m.Roles[1], "holders name pub resp sub"},
		{"user", m.Users[0], "account conn_types created disabled expires name pub resp roles src sub updated"},
	} {
		if got := strings.Join(slices.Sorted(maps.Keys(c.got)), " "); got != c.want {
			t.Errorf("%s keys %q, want %q", c.what, got, c.want)
		}
	}
	if null := `"allow":null`; strings.Contains(string(raw), null) || strings.Contains(string(raw), `"roles":null`) {
		t.Errorf("export has a null list: %s", raw)
	}

	// With hashes, each user can be recreated elsewhere and logs in with
	// the password it had.
	doc, err = db.Export(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	other := openTest(t, filepath.Join(t.TempDir(), "other.db"))
	if err := other.AddAccount(ctx, "ORDERS"); err != nil {
		t.Fatal(err)
	}
	for _, u := range doc.Users {
		if !strings.HasPrefix(u.PasswordHash, "$argon2id$") {
			t.Fatalf("%s: hash %q, want an argon2id PHC string", u.Name, u.PasswordHash)
		}
		if strings.Contains(u.PasswordHash, users[u.Name]) {
			t.Fatalf("%s: the export holds the password", u.Name)
		}
		if err := other.AddUserWithHash(ctx, accounts.User{Name: u.Name, Account: u.Account}, u.PasswordHash); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := other.Authenticate(ctx, "alice", users["alice"]); err != nil {
		t.Errorf("alice recreated from the export: %v", err)
	}
	if _, err := other.Authenticate(ctx, "alice", users["bob"]); err == nil {
		t.Error("alice recreated from the export logs in with bob's password")
	}
}

// TestExportEmpty: an empty database exports empty lists, not nulls.
func TestExportEmpty(t *testing.T) {
	db, _ := newTestDB(t)
	doc, err := db.Export(t.Context(), true)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(raw), `{"accounts":[],"roles":[],"users":[]}`; got != want {
		t.Errorf("empty export %s, want %s", got, want)
	}
}
