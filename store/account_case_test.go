package store

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/authrelay/authrelay/accounts"
)

// TestAccountNamesDifferingOnlyInCaseRefused adds SHOP, then shop and Shop:
// both are refused with ErrExists naming SHOP, and only SHOP is stored.
func TestAccountNamesDifferingOnlyInCaseRefused(t *testing.T) {
	ctx := t.Context()
	db, _ := newTestDB(t)
	if err := db.AddAccount(ctx, "SHOP"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"shop", "Shop"} {
		err := db.AddAccountWithLimits(ctx, accounts.Account{Name: name, Limits: accounts.AccountLimits{MaxSubs: 1}})
		if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), `"SHOP"`) {
			t.Errorf("AddAccount(%s) after SHOP: err = %v, want ErrExists naming SHOP", name, err)
		}
	}
	if err := db.AddAccount(ctx, "SHOP"); !errors.Is(err, ErrExists) {
		t.Errorf("AddAccount(SHOP) again: err = %v, want ErrExists", err)
	}
	if err := db.AddAccount(ctx, "SHOP2"); err != nil {
		t.Errorf("AddAccount(SHOP2): %v", err)
	}
	names, err := db.Accounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names, []string{"SHOP", "SHOP2"}) {
		t.Errorf("accounts = %v, want [SHOP SHOP2]", names)
	}
}

// TestAccountCaseConflictUnderConcurrency adds SHOP, shop, Shop… at once
// from two handles on the same file, as two admin processes would: exactly
// one is stored.
func TestAccountCaseConflictUnderConcurrency(t *testing.T) {
	ctx := t.Context()
	db, path := newTestDB(t)
	other := openTest(t, path)
	names := []string{"SHOP", "shop", "Shop", "sHoP", "SHop", "shoP", "ShOp", "sHOP"}
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		h := db
		if i%2 == 1 {
			h = other
		}
		wg.Go(func() { errs[i] = h.AddAccount(ctx, name) })
	}
	wg.Wait()
	stored := 0
	for i, err := range errs {
		switch {
		case err == nil:
			stored++
		case !errors.Is(err, ErrExists):
			t.Errorf("AddAccount(%s): err = %v, want nil or ErrExists", names[i], err)
		}
	}
	list, err := db.Accounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stored != 1 || len(list) != 1 {
		t.Errorf("%d adds succeeded, accounts = %v; want exactly one", stored, list)
	}
}

// TestUserIntoAccountOfOtherCase points a user at "app" when only APP
// exists: refused as an unknown account, with the hint.
func TestUserIntoAccountOfOtherCase(t *testing.T) {
	ctx := t.Context()
	db, _ := newTestDB(t)
	if err := db.AddAccount(ctx, "APP"); err != nil {
		t.Fatal(err)
	}
	err := db.AddUser(ctx, accounts.User{Name: "bob", Account: "app"}, "pw-123456")
	if !errors.Is(err, ErrUnknownAccount) || !strings.Contains(err.Error(), `did you mean "APP"`) {
		t.Errorf("AddUser into app: err = %v, want ErrUnknownAccount with a hint for APP", err)
	}
	if err := db.AddUser(ctx, accounts.User{Name: "bob", Account: "APP"}, "pw-123456"); err != nil {
		t.Fatal(err)
	}
	err = db.UpdateUser(ctx, "bob", func(u *accounts.User) error { u.Account = "App"; return nil })
	if !errors.Is(err, ErrUnknownAccount) || !strings.Contains(err.Error(), `did you mean "APP"`) {
		t.Errorf("UpdateUser to App: err = %v, want ErrUnknownAccount with a hint for APP", err)
	}
}

// TestReservedAccountOfOtherCaseRefused: with SYS reserved, sys and Sys
// are refused as well, for accounts and for users.
func TestReservedAccountOfOtherCaseRefused(t *testing.T) {
	ctx := t.Context()
	db, _ := newTestDB(t)
	db.ReservedAccounts = func() ([]string, error) { return []string{"AUTH", "SYS"}, nil }
	for _, name := range []string{"sys", "Sys", "auth"} {
		if err := db.AddAccount(ctx, name); !errors.Is(err, ErrReservedAccount) {
			t.Errorf("AddAccount(%s): err = %v, want ErrReservedAccount", name, err)
		}
		err := db.AddUser(ctx, accounts.User{Name: "eve", Account: name}, "pw-123456")
		if !errors.Is(err, ErrReservedAccount) {
			t.Errorf("AddUser into %s: err = %v, want ErrReservedAccount", name, err)
		}
	}
	if err := db.AddAccount(ctx, "SYSTEMS"); err != nil {
		t.Errorf("AddAccount(SYSTEMS): %v", err)
	}
}
