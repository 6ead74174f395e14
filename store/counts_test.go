package store

import (
	"reflect"
	"testing"

	"github.com/authrelay/authrelay/accounts"
)

// TestCountsInOneQuery: AccountUserCounts and AllRoleHolders give, for every
// account and role at once, what AccountUsers and RoleHolders give one at a
// time, including the accounts and roles nobody is in.
func TestCountsInOneQuery(t *testing.T) {
	db, _ := setupRoles(t) // APP with alice; roles writer, reader, admin.ops
	ctx := t.Context()
	for _, a := range []string{"OPS", "EMPTY"} {
		if err := db.AddAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []accounts.User{
		{Name: "bob", Account: "OPS", Roles: []string{"writer", "reader"}},
		{Name: "carol", Account: "OPS", Roles: []string{"writer"}},
		{Name: "dan", Account: "APP"},
	} {
		if err := db.AddUser(ctx, u, "pw-123456"); err != nil {
			t.Fatal(err)
		}
	}

	counts, err := db.AccountUserCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	names, err := db.Accounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{}
	for _, n := range names {
		users, err := db.AccountUsers(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		want[n] = len(users)
	}
	if !reflect.DeepEqual(counts, want) || counts["EMPTY"] != 0 || counts["OPS"] != 2 {
		t.Errorf("AccountUserCounts = %v, want %v (EMPTY 0, OPS 2)", counts, want)
	}

	holders, err := db.AllRoleHolders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	roles, err := db.Roles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantHolders := map[string][]string{}
	for _, r := range roles {
		h, err := db.RoleHolders(ctx, r.Name)
		if err != nil {
			t.Fatal(err)
		}
		wantHolders[r.Name] = h
	}
	if !reflect.DeepEqual(holders, wantHolders) {
		t.Errorf("AllRoleHolders = %v, want %v", holders, wantHolders)
	}
	if h := holders["admin.ops"]; h == nil || len(h) != 0 {
		t.Errorf("holders of a role nobody holds = %#v, want an empty list", h)
	}
}
