package store

import (
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/authrelay/authrelay/accounts"
)

func TestAccountLimits(t *testing.T) {
	db, _ := setup(t) // APP without limits, with alice in it
	ctx := t.Context()

	empty, _ := newTestDB(t)
	list, err := empty.AccountList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if list == nil || len(list) != 0 {
		t.Errorf("AccountList of a new store = %#v, want an empty list", list)
	}

	big := accounts.Account{Name: "BIG", Limits: accounts.AccountLimits{MaxConnections: 1<<31 - 1, MaxSubs: 1, MaxPayload: 1 << 20}}
	some := accounts.Account{Name: "B_2", Limits: accounts.AccountLimits{MaxSubs: 100}}
	for _, a := range []accounts.Account{big, some} {
		if err := db.AddAccountWithLimits(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	app := accounts.Account{Name: "APP"}

	t.Run("round trip", func(t *testing.T) {
		for _, want := range []accounts.Account{app, big, some} {
			got, err := db.Account(ctx, want.Name)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("Account(%s) = %+v, want %+v", want.Name, got, want)
			}
		}
		got, err := db.AccountList(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Sorted by byte: 'I' < '_'.
		if want := []accounts.Account{app, big, some}; !reflect.DeepEqual(got, want) {
			t.Errorf("AccountList = %+v, want %+v", got, want)
		}
	})

	t.Run("set", func(t *testing.T) {
		for _, l := range []accounts.AccountLimits{
			{MaxConnections: 10, MaxSubs: 20, MaxPayload: 30},
			{MaxPayload: 1},
			{},
		} {
			if err := db.SetAccountLimits(ctx, "APP", l); err != nil {
				t.Fatal(err)
			}
			got, err := db.Account(ctx, "APP")
			if err != nil {
				t.Fatal(err)
			}
			if want := (accounts.Account{Name: "APP", Limits: l}); got != want {
				t.Errorf("after SetAccountLimits: %+v, want %+v", got, want)
			}
		}
		// Setting the limits it already has is no error.
		if err := db.SetAccountLimits(ctx, "BIG", big.Limits); err != nil {
			t.Errorf("SetAccountLimits to the same limits: %v", err)
		}
	})

	t.Run("users", func(t *testing.T) {
		for _, name := range []string{"zoe", "bob"} {
			if err := db.AddUser(ctx, accounts.User{Name: name, Account: "APP"}, "pw"); err != nil {
				t.Fatal(err)
			}
		}
		for account, want := range map[string][]string{
			"APP": {"alice", "bob", "zoe"},
			"BIG": {},
		} {
			got, err := db.AccountUsers(ctx, account)
			if err != nil {
				t.Fatal(err)
			}
			if got == nil || !reflect.DeepEqual(got, want) {
				t.Errorf("AccountUsers(%s) = %#v, want %#v", account, got, want)
			}
		}
	})
}

func TestAccountErrorsChangeNothing(t *testing.T) {
	db, _ := setup(t) // APP, with alice in it
	ctx := t.Context()
	if err := db.AddAccountWithLimits(ctx, accounts.Account{Name: "CROWD", Limits: accounts.AccountLimits{MaxSubs: 5}}); err != nil {
		t.Fatal(err)
	}
	for i := range 7 {
		if err := db.AddUser(ctx, accounts.User{Name: fmt.Sprintf("u%d", 7-i), Account: "CROWD"}, "pw"); err != nil {
			t.Fatal(err)
		}
	}

	runErrorCases(t, db, []errorCase{
		{
			name: "duplicate account with limits",
			op: func() error {
				return db.AddAccountWithLimits(ctx, accounts.Account{Name: "APP", Limits: accounts.AccountLimits{MaxSubs: 1}})
			},
			want:  []error{ErrExists},
			words: []string{`account "APP" already exists`},
		},
		{
			name: "bad account name with limits",
			op:   func() error { return db.AddAccountWithLimits(ctx, accounts.Account{Name: "$G"}) },
		},
		{
			name: "negative limit",
			op: func() error {
				return db.AddAccountWithLimits(ctx, accounts.Account{Name: "NEG", Limits: accounts.AccountLimits{MaxConnections: -1}})
			},
			words: []string{"max connections -1"},
		},
		{
			name:  "limit too large",
			op:    func() error { return db.SetAccountLimits(ctx, "APP", accounts.AccountLimits{MaxPayload: 1 << 31}) },
			words: []string{"max payload"},
		},
		{
			name:  "limits of missing account",
			op:    func() error { return db.SetAccountLimits(ctx, "NOPE", accounts.AccountLimits{MaxSubs: 1}) },
			want:  []error{ErrNotFound},
			words: []string{`account "NOPE" not found`},
		},
		{
			name: "look up missing account",
			op:   func() error { _, err := db.Account(ctx, "NOPE"); return err },
			want: []error{ErrNotFound},
		},
		{
			name: "users of missing account",
			op:   func() error { _, err := db.AccountUsers(ctx, "NOPE"); return err },
			want: []error{ErrNotFound},
		},
		{
			name:  "remove account with many users",
			op:    func() error { return db.RemoveAccount(ctx, "CROWD") },
			want:  []error{ErrAccountInUse},
			words: []string{`7 users are still in it ("u1", "u2", "u3", "u4", "u5" and 2 more)`},
		},
	})
}

func TestSourcesAndConnTypes(t *testing.T) {
	db, c := setup(t)
	ctx := t.Context()

	for i, tc := range []struct {
		name               string
		src, types         []string
		wantSrc, wantTypes []string
	}{
		{"none", nil, nil, nil, nil},
		{"empty", []string{}, []string{}, nil, nil},
		{
			name:      "canonical already",
			src:       []string{"10.0.0.0/8", "2001:db8::/32"},
			types:     []string{"STANDARD", "LEAFNODE"},
			wantSrc:   []string{"10.0.0.0/8", "2001:db8::/32"},
			wantTypes: []string{"STANDARD", "LEAFNODE"},
		},
		{
			name:      "canonicalised",
			src:       []string{"10.1.2.3/8", "192.0.2.7", "::ffff:198.51.100.1", "2001:DB8:0::1/32", "fe80::1"},
			types:     []string{"websocket", " Mqtt ", "Standard"},
			wantSrc:   []string{"10.0.0.0/8", "192.0.2.7/32", "198.51.100.1/32", "2001:db8::/32", "fe80::1/128"},
			wantTypes: []string{"WEBSOCKET", "MQTT", "STANDARD"},
		},
		{
			name:      "duplicates after canonicalising",
			src:       []string{"10.9.9.9/8", "192.0.2.7/32", "10.0.0.0/8", "192.0.2.7"},
			types:     []string{"mqtt", "MQTT", "leafnode", "Mqtt"},
			wantSrc:   []string{"10.0.0.0/8", "192.0.2.7/32"},
			wantTypes: []string{"MQTT", "LEAFNODE"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := fmt.Sprintf("u%d", i)
			u := accounts.User{Name: name, Account: "APP", Src: tc.src, ConnTypes: tc.types}
			if err := db.AddUser(ctx, u, "pw-"+name); err != nil {
				t.Fatal(err)
			}
			check := func(what string) {
				t.Helper()
				got, err := db.Authenticate(ctx, name, "pw-"+name)
				if err != nil {
					t.Fatal(err)
				}
				assertNames(t, what+": Src", got.Src, tc.wantSrc)
				assertNames(t, what+": ConnTypes", got.ConnTypes, tc.wantTypes)
			}
			check("added")

			// The same through UpdateUser, starting from other values.
			c.Set(t1)
			err := db.UpdateUser(ctx, name, func(u *accounts.User) error {
				u.Src, u.ConnTypes = []string{"0.0.0.0/0"}, []string{"MQTT"}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			err = db.UpdateUser(ctx, name, func(u *accounts.User) error {
				u.Src, u.ConnTypes = tc.src, tc.types
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			check("updated")
		})
	}

	runErrorCases(t, db, []errorCase{
		{
			name: "add with bad prefix",
			op: func() error {
				return db.AddUser(ctx, accounts.User{Name: "bob", Account: "APP", Src: []string{"10.0.0.0/8", "10.0.0.0/33"}}, "pw-bob")
			},
			words: []string{"10.0.0.0/33"},
		},
		{
			name: "add with host name",
			op: func() error {
				return db.AddUserWithHash(ctx, accounts.User{Name: "bob", Account: "APP", Src: []string{"example.com"}},
					"$2a$04$Q.CgCP2Sl9pkcTXEZHazaeMwPaAkSHk7AI51HkyMt5iJQQyUA4qxq")
			},
			words: []string{"example.com"},
		},
		{
			name: "add with bad connection type",
			op: func() error {
				return db.AddUser(ctx, accounts.User{Name: "bob", Account: "APP", ConnTypes: []string{"STANDARD", "tcp"}}, "pw-bob")
			},
			words: []string{`"tcp"`, "WEBSOCKET"},
		},
		{
			name: "update to bad prefix",
			op: func() error {
				return db.UpdateUser(ctx, "alice", func(u *accounts.User) error {
					u.Disabled = true
					u.Src = append(u.Src, "10.0.0.0/")
					return nil
				})
			},
			words: []string{"10.0.0.0/"},
		},
		{
			name: "update to bad connection type",
			op: func() error {
				return db.UpdateUser(ctx, "alice", func(u *accounts.User) error {
					u.ConnTypes = []string{""}
					return nil
				})
			},
			words: []string{"connection type"},
		},
	})
}

// TestReservedAccountsRefused: the store itself never creates a reserved
// account nor places a user in one, whichever method is used, and changes
// nothing when it refuses; other accounts are unaffected.
func TestReservedAccountsRefused(t *testing.T) {
	ctx := t.Context()
	db, _ := newTestDB(t)
	// The accounts exist, as in a database written before they were
	// reserved: the refusal must not depend on their absence.
	for _, a := range []string{"APP", "SYS"} {
		if err := db.AddAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	reserved := []string{"AUTH", "SYS"}
	db.ReservedAccounts = func() ([]string, error) { return reserved, nil }
	if err := db.AddUser(ctx, accounts.User{Name: "bob", Account: "APP"}, "pw-123456"); err != nil {
		t.Fatalf("AddUser into an application account: %v", err)
	}
	hash, err := HashPassword("pw-123456", db.Params)
	if err != nil {
		t.Fatal(err)
	}
	for _, acct := range reserved {
		cases := []struct {
			what string
			err  error
		}{
			{"AddAccount", db.AddAccount(ctx, acct)},
			{"AddAccountWithLimits", db.AddAccountWithLimits(ctx, accounts.Account{Name: acct, Limits: accounts.AccountLimits{MaxSubs: 1}})},
			{"AddUser", db.AddUser(ctx, accounts.User{Name: "eve", Account: acct}, "pw-123456")},
			{"AddUserWithHash", db.AddUserWithHash(ctx, accounts.User{Name: "eve", Account: acct}, hash)},
			{"UpdateUser", db.UpdateUser(ctx, "bob", func(u *accounts.User) error { u.Account = acct; return nil })},
		}
		for _, c := range cases {
			if !errors.Is(c.err, ErrReservedAccount) {
				t.Errorf("%s with account %s: err = %v, want ErrReservedAccount", c.what, acct, c.err)
			}
		}
	}
	if _, err := db.User(ctx, "eve"); !errors.Is(err, ErrNotFound) {
		t.Errorf("User(eve) after the refusals: err = %v, want ErrNotFound", err)
	}
	bob, err := db.User(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if bob.Account != "APP" {
		t.Errorf("bob's account after the refused move = %q, want APP", bob.Account)
	}
	names, err := db.Accounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(names, []string{"APP", "SYS"}) {
		t.Errorf("accounts after the refusals = %v, want [APP SYS]", names)
	}
}
