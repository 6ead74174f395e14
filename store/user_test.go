package store

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/authrelay/authrelay/accounts"
	"golang.org/x/crypto/bcrypt"
)

var (
	t0 = time.Date(2026, 1, 2, 3, 4, 5, 600000007, time.UTC)
	t1 = t0.Add(90 * time.Minute)
)

// fullUser has every field set.
func fullUser(name string) accounts.User {
	return accounts.User{
		Name:    name,
		Account: "APP",
		Permissions: accounts.Permissions{
			Pub:  accounts.Rule{Allow: []string{"orders.>", "_INBOX.>"}, Deny: []string{"orders.admin.*"}},
			Sub:  accounts.Rule{Allow: []string{"events.*"}},
			Resp: &accounts.ResponsePermission{MaxMsgs: 3, TTL: 5 * time.Second},
		},
		Expires:   time.Date(2027, 6, 1, 12, 0, 0, 0, time.FixedZone("CEST", 2*3600)),
		Src:       []string{"10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"},
		ConnTypes: []string{accounts.ConnWebsocket, accounts.ConnStandard},
	}
}

// norm makes users comparable with reflect.DeepEqual: times as UTC instants,
// and nil Roles, Src and ConnTypes as the empty lists the store returns (that
// the store never returns nil is tested on its own).
func norm(u accounts.User) accounts.User {
	for _, l := range []*[]string{&u.Roles, &u.Src, &u.ConnTypes} {
		if *l == nil {
			*l = []string{}
		}
	}
	fix := func(t time.Time) time.Time {
		if t.IsZero() {
			return time.Time{}
		}
		return t.Round(0).UTC()
	}
	u.Expires, u.Created, u.Updated = fix(u.Expires), fix(u.Created), fix(u.Updated)
	return u
}

func assertUser(t *testing.T, got, want accounts.User) {
	t.Helper()
	if g, w := norm(got), norm(want); !reflect.DeepEqual(g, w) {
		t.Errorf("user =\n\t%+v\nwant\n\t%+v", g, w)
	}
}

// setup returns a store with a clock at t0, account APP, and user alice
// (fullUser) with password "pw-alice".
func setup(t *testing.T) (*DB, *clock) {
	t.Helper()
	db, _ := newTestDB(t)
	c := &clock{t: t0}
	db.Now = c.Now
	if err := db.AddAccount(t.Context(), "APP"); err != nil {
		t.Fatal(err)
	}
	if err := db.AddUser(t.Context(), fullUser("alice"), "pw-alice"); err != nil {
		t.Fatal(err)
	}
	return db, c
}

func TestAddUserAndRead(t *testing.T) {
	db, _ := setup(t)
	ctx := t.Context()

	want := fullUser("alice")
	want.Created, want.Updated = t0, t0
	got, err := db.User(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	assertUser(t, got, want)
	if got.Expires.Location() != time.UTC {
		t.Errorf("Expires location = %v, want UTC", got.Expires.Location())
	}

	// A minimal user: nil permission lists stay nil, no expiry, not disabled;
	// nil Roles, Src and ConnTypes come back empty, not nil.
	min := accounts.User{Name: "bob", Account: "APP", Disabled: true}
	if err := db.AddUser(ctx, min, "pw-bob"); err != nil {
		t.Fatal(err)
	}
	// Created and Updated given by the caller are ignored.
	other := accounts.User{Name: "0-first", Account: "APP", Created: t1, Updated: t1}
	if err := db.AddUser(ctx, other, "pw"); err != nil {
		t.Fatal(err)
	}

	users, err := db.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range users {
		names = append(names, u.Name)
	}
	if want := []string{"0-first", "alice", "bob"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("Users names = %q, want %q", names, want)
	}
	min.Created, min.Updated = t0, t0
	assertUser(t, users[2], min)
	if u := users[2]; u.Roles == nil || u.Src == nil || u.ConnTypes == nil {
		t.Errorf("Roles, Src, ConnTypes = %#v, %#v, %#v; want empty, not nil", u.Roles, u.Src, u.ConnTypes)
	}
	if got, want := users[0].Created, t0; !got.Equal(want) {
		t.Errorf("Created = %v, want the store's clock %v", got, want)
	}

	if got, err := db.HashScheme(ctx, "alice"); got != SchemeArgon2id || err != nil {
		t.Errorf("HashScheme = %q, %v; want %q, nil", got, err, SchemeArgon2id)
	}
}

func TestAddUserWithHash(t *testing.T) {
	db, _ := setup(t)
	ctx := t.Context()
	bc, err := bcrypt.GenerateFromPassword([]byte("pw-bcrypt"), 4)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, hash, password, scheme string
	}{
		{"bc", string(bc), "pw-bcrypt", SchemeBcrypt},
		{"nats", "$2a$04$Q.CgCP2Sl9pkcTXEZHazaeMwPaAkSHk7AI51HkyMt5iJQQyUA4qxq", "IW@$6v(y1(t@fhPDvf!5^%", SchemeBcrypt},
		{"ref", "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4", "password", SchemeArgon2id},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := db.AddUserWithHash(ctx, accounts.User{Name: tc.name, Account: "APP"}, tc.hash); err != nil {
				t.Fatal(err)
			}
			if got, err := db.HashScheme(ctx, tc.name); got != tc.scheme || err != nil {
				t.Errorf("HashScheme = %q, %v; want %q, nil", got, err, tc.scheme)
			}
			if _, err := db.Authenticate(ctx, tc.name, tc.password); err != nil {
				t.Errorf("Authenticate with the right password: %v", err)
			}
			if _, err := db.Authenticate(ctx, tc.name, tc.password+"x"); !errors.Is(err, accounts.ErrInvalidCredentials) {
				t.Errorf("Authenticate with a wrong password = %v, want ErrInvalidCredentials", err)
			}
		})
	}

	t.Run("bcrypt over 72 bytes", func(t *testing.T) {
		p72 := strings.Repeat("x", 72)
		h, err := bcrypt.GenerateFromPassword([]byte(p72), 4)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.AddUserWithHash(ctx, accounts.User{Name: "long", Account: "APP"}, string(h)); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Authenticate(ctx, "long", p72); err != nil {
			t.Errorf("Authenticate(72 bytes) = %v", err)
		}
		if _, err := db.Authenticate(ctx, "long", p72+"y"); !errors.Is(err, accounts.ErrInvalidCredentials) {
			t.Errorf("Authenticate(73 bytes, same first 72) = %v, want ErrInvalidCredentials", err)
		}
	})
}

func TestAuthenticate(t *testing.T) {
	db, c := setup(t)
	ctx := t.Context()

	t.Run("right password", func(t *testing.T) {
		got, err := db.Authenticate(ctx, "alice", "pw-alice")
		if err != nil {
			t.Fatal(err)
		}
		want := fullUser("alice")
		want.Created, want.Updated = t0, t0
		assertUser(t, got, want)
	})

	t.Run("unknown user and wrong password look the same", func(t *testing.T) {
		before := db.dummyVerifies.Load()
		_, wrong := db.Authenticate(ctx, "alice", "pw-wrong")
		if !errors.Is(wrong, accounts.ErrInvalidCredentials) {
			t.Fatalf("wrong password: %v, want ErrInvalidCredentials", wrong)
		}
		// Two verifications each: the user's hash and the dummy (alice
		// replaced no password lately), or the dummy twice.
		if got := db.dummyVerifies.Load() - before; got != 1 {
			t.Errorf("wrong password ran %d dummy verifications, want 1 after the user's hash", got)
		}
		_, unknown := db.Authenticate(ctx, "mallory", "pw-wrong")
		if !errors.Is(unknown, accounts.ErrInvalidCredentials) {
			t.Fatalf("unknown user: %v, want ErrInvalidCredentials", unknown)
		}
		if got := db.dummyVerifies.Load() - before; got != 3 {
			t.Errorf("unknown user ran %d dummy verifications, want 2", got-1)
		}
		if got, want := strings.Replace(unknown.Error(), "mallory", "alice", 1), wrong.Error(); got != want {
			t.Errorf("errors differ: unknown user %q, wrong password %q", unknown, wrong)
		}
		if strings.Contains(wrong.Error(), "pw-") {
			t.Errorf("error %q contains the password", wrong)
		}
	})

	t.Run("dummy hash at the current params", func(t *testing.T) {
		if _, err := db.Authenticate(ctx, "mallory", "pw"); !errors.Is(err, accounts.ErrInvalidCredentials) {
			t.Fatal(err)
		}
		dummyParams := func() Argon2Params {
			t.Helper()
			h, err := parseArgon2id(db.dummyHash)
			if err != nil {
				t.Fatal(err)
			}
			return h.params
		}
		if got, want := dummyParams(), db.Params; got != want {
			t.Errorf("dummy hash params = %+v, want %+v", got, want)
		}
		db.Params = Argon2Params{Memory: 128, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
		defer func() { db.Params = testParams }()
		if _, err := db.Authenticate(ctx, "mallory", "pw"); !errors.Is(err, accounts.ErrInvalidCredentials) {
			t.Fatal(err)
		}
		if got, want := dummyParams(), db.Params; got != want {
			t.Errorf("after a change of Params, dummy hash params = %+v, want %+v", got, want)
		}
	})

	t.Run("refused without lookup", func(t *testing.T) {
		before := db.dummyVerifies.Load()
		for _, tc := range []struct{ name, password string }{
			{"alice", ""},
			{"alice", strings.Repeat("p", MaxPasswordLen+1)},
			{"mallory", strings.Repeat("p", MaxPasswordLen+1)},
			{"", "pw"},
			{"has space", "pw"},
			{strings.Repeat("n", 10000), "pw"},
		} {
			_, err := db.Authenticate(ctx, tc.name, tc.password)
			if !errors.Is(err, accounts.ErrInvalidCredentials) {
				t.Errorf("Authenticate(%.10q…, %d bytes) = %v, want ErrInvalidCredentials", tc.name, len(tc.password), err)
			}
			if len(err.Error()) > 200 {
				t.Errorf("error is %d bytes long: the name should not be quoted", len(err.Error()))
			}
		}
		if got := db.dummyVerifies.Load() - before; got != 0 {
			t.Errorf("%d dummy verifications, want 0", got)
		}
	})

	t.Run("disabled and expired users are returned", func(t *testing.T) {
		if err := db.SetDisabled(ctx, "alice", true); err != nil {
			t.Fatal(err)
		}
		u, err := db.Authenticate(ctx, "alice", "pw-alice")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := u.Check(c.Now()), accounts.ErrUserDisabled; !errors.Is(got, want) {
			t.Errorf("Check = %v, want %v", got, want)
		}
		if err := db.SetDisabled(ctx, "alice", false); err != nil {
			t.Fatal(err)
		}
		u, err = db.Authenticate(ctx, "alice", "pw-alice")
		if err != nil {
			t.Fatal(err)
		}
		if got := u.Check(c.Now()); got != nil {
			t.Errorf("Check = %v, want nil", got)
		}
		if got, want := u.Check(u.Expires.Add(time.Second)), accounts.ErrUserExpired; !errors.Is(got, want) {
			t.Errorf("Check after expiry = %v, want %v", got, want)
		}
	})

	t.Run("other errors are not invalid credentials", func(t *testing.T) {
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		_, err := db.Authenticate(cancelled, "alice", "pw-alice")
		if err == nil || errors.Is(err, accounts.ErrInvalidCredentials) || !errors.Is(err, context.Canceled) {
			t.Errorf("Authenticate with a cancelled context = %v, want context.Canceled", err)
		}

		if _, err := db.sql.ExecContext(ctx, `UPDATE users SET password_hash = 'garbage' WHERE name = 'alice'`); err != nil {
			t.Fatal(err)
		}
		_, err = db.Authenticate(ctx, "alice", "pw-alice")
		if err == nil || errors.Is(err, accounts.ErrInvalidCredentials) {
			t.Errorf("Authenticate with a corrupt stored hash = %v, want another error", err)
		}
		if _, err := db.HashScheme(ctx, "alice"); err == nil || strings.Contains(err.Error(), "garbage") {
			t.Errorf("HashScheme with a corrupt stored hash = %v, want an error without the hash", err)
		}

		closed, _ := newTestDB(t)
		closed.Close()
		_, err = closed.Authenticate(ctx, "alice", "pw-alice")
		if err == nil || errors.Is(err, accounts.ErrInvalidCredentials) {
			t.Errorf("Authenticate on a closed store = %v, want another error", err)
		}
	})
}

// TestAuthenticateUnknownUserCost checks, with a lenient bound, that an
// unknown user takes as long as a wrong password. The dummy-verification
// counter in TestAuthenticate is the exact check; this one shows the cost.
func TestAuthenticateUnknownUserCost(t *testing.T) {
	if testing.Short() {
		t.Skip("timing test")
	}
	db, _ := setup(t)
	ctx := t.Context()
	db.Params = Argon2Params{Memory: 4096, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
	if err := db.SetPassword(ctx, "alice", "pw-alice"); err != nil {
		t.Fatal(err)
	}
	fastest := func(name string) time.Duration {
		best := time.Duration(1 << 62)
		for range 7 {
			start := time.Now()
			if _, err := db.Authenticate(ctx, name, "pw-wrong"); !errors.Is(err, accounts.ErrInvalidCredentials) {
				t.Fatal(err)
			}
			best = min(best, time.Since(start))
		}
		return best
	}
	fastest("mallory") // compute the dummy hash
	wrong, unknown := fastest("alice"), fastest("mallory")
	t.Logf("wrong password %v, unknown user %v", wrong, unknown)
	if unknown < wrong/3 || unknown > wrong*3 {
		t.Errorf("unknown user took %v, wrong password %v: want comparable times", unknown, wrong)
	}
}

func TestUpdateUser(t *testing.T) {
	db, c := setup(t)
	ctx := t.Context()
	if err := db.AddAccount(ctx, "OTHER"); err != nil {
		t.Fatal(err)
	}
	c.Set(t1)

	t.Run("keeps other fields", func(t *testing.T) {
		err := db.UpdateUser(ctx, "alice", func(u *accounts.User) error {
			u.Permissions.Sub.Deny = []string{"events.secret"}
			u.Created, u.Updated = time.Time{}, time.Time{} // ignored
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		want := fullUser("alice")
		want.Permissions.Sub.Deny = []string{"events.secret"}
		want.Created, want.Updated = t0, t1
		got, err := db.User(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		assertUser(t, got, want)
		if ok, err := db.Authenticate(ctx, "alice", "pw-alice"); err != nil {
			t.Errorf("password lost by UpdateUser: %v, %v", ok, err)
		}
	})

	t.Run("all fields", func(t *testing.T) {
		err := db.UpdateUser(ctx, "alice", func(u *accounts.User) error {
			u.Account = "OTHER"
			u.Permissions = accounts.Permissions{}
			u.Disabled = true
			u.Expires = time.Time{}
			u.Src, u.ConnTypes = nil, nil
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		want := accounts.User{Name: "alice", Account: "OTHER", Disabled: true, Created: t0, Updated: t1}
		got, err := db.User(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		assertUser(t, got, want)
	})
}

func TestSetPasswordDisabledRemove(t *testing.T) {
	db, c := setup(t)
	ctx := t.Context()
	c.Set(t1)

	if err := db.SetPassword(ctx, "alice", "new-pw"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Authenticate(ctx, "alice", "pw-alice"); !errors.Is(err, accounts.ErrInvalidCredentials) {
		t.Errorf("old password after SetPassword: %v, want ErrInvalidCredentials", err)
	}
	u, err := db.Authenticate(ctx, "alice", "new-pw")
	if err != nil {
		t.Fatal(err)
	}
	want := fullUser("alice")
	want.Created, want.Updated = t0, t1
	assertUser(t, u, want)

	// SetPassword replaces an imported bcrypt hash with argon2id.
	bc, err := bcrypt.GenerateFromPassword([]byte("old"), 4)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.AddUserWithHash(ctx, accounts.User{Name: "bob", Account: "APP"}, string(bc)); err != nil {
		t.Fatal(err)
	}
	if err := db.SetPassword(ctx, "bob", "newer"); err != nil {
		t.Fatal(err)
	}
	if got, err := db.HashScheme(ctx, "bob"); got != SchemeArgon2id || err != nil {
		t.Errorf("HashScheme after SetPassword = %q, %v; want %q", got, err, SchemeArgon2id)
	}

	if err := db.SetDisabled(ctx, "alice", true); err != nil {
		t.Fatal(err)
	}
	if u, err := db.User(ctx, "alice"); err != nil || !u.Disabled {
		t.Errorf("after SetDisabled(true): %+v, %v", u, err)
	}
	if err := db.SetDisabled(ctx, "alice", false); err != nil {
		t.Fatal(err)
	}
	if u, err := db.User(ctx, "alice"); err != nil || u.Disabled {
		t.Errorf("after SetDisabled(false): %+v, %v", u, err)
	}

	if err := db.RemoveUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.User(ctx, "alice"); !errors.Is(err, ErrNotFound) {
		t.Errorf("User after RemoveUser = %v, want ErrNotFound", err)
	}
	if _, err := db.Authenticate(ctx, "alice", "new-pw"); !errors.Is(err, accounts.ErrInvalidCredentials) {
		t.Errorf("Authenticate after RemoveUser = %v, want ErrInvalidCredentials", err)
	}
}

func TestAccounts(t *testing.T) {
	db, _ := setup(t) // APP, with alice in it
	ctx := t.Context()
	for _, name := range []string{"ZED", "B_2", "a-1"} {
		if err := db.AddAccount(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.Accounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"APP", "B_2", "ZED", "a-1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Accounts = %q, want %q", got, want)
	}
	if err := db.RemoveAccount(ctx, "ZED"); err != nil {
		t.Fatal(err)
	}
	got, err = db.Accounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"APP", "B_2", "a-1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Accounts after remove = %q, want %q", got, want)
	}
	if err := db.RemoveUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := db.RemoveAccount(ctx, "APP"); err != nil {
		t.Errorf("RemoveAccount of an emptied account: %v", err)
	}
}

// snapshot is everything a failed operation must leave alone.
type snapshot struct {
	users    []accounts.User
	accounts []accounts.Account
	roles    []accounts.Role
	hashes   map[string]string
}

func takeSnapshot(t *testing.T, db *DB) snapshot {
	t.Helper()
	s := snapshot{hashes: map[string]string{}}
	var err error
	if s.users, err = db.Users(t.Context()); err != nil {
		t.Fatal(err)
	}
	if s.accounts, err = db.AccountList(t.Context()); err != nil {
		t.Fatal(err)
	}
	if s.roles, err = db.Roles(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Read the hashes directly, not with PasswordHashes, which is under
	// test itself.
	rows, err := db.sql.QueryContext(t.Context(), `SELECT name, password_hash FROM users`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, hash string
		if err := rows.Scan(&name, &hash); err != nil {
			t.Fatal(err)
		}
		s.hashes[name] = hash
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return s
}

// errorCase is an operation that must fail and change nothing.
type errorCase struct {
	name    string
	op      func() error
	want    []error  // errors.Is, each
	words   []string // in the message
	secrets []string // never in the message
}

// runErrorCases runs each case as a subtest: the operation fails, with the
// wanted errors and words, without the secrets, the password "pw-alice" or
// any stored hash in its message, and the store is left as it was.
func runErrorCases(t *testing.T, db *DB, cases []errorCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := takeSnapshot(t, db)
			err := tc.op()
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Errorf("error = %v, want %v", err, w)
				}
			}
			for _, w := range tc.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			secrets := append(tc.secrets, "pw-alice")
			for _, h := range before.hashes {
				secrets = append(secrets, h[len(h)-20:])
			}
			for _, s := range secrets {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q contains %q", err, s)
				}
			}
			if after := takeSnapshot(t, db); !reflect.DeepEqual(after, before) {
				t.Errorf("the store changed:\nbefore %+v\nafter  %+v", before, after)
			}
		})
	}
}

func TestErrorsChangeNothing(t *testing.T) {
	db, c := setup(t) // APP, with alice in it
	ctx := t.Context()
	if err := db.AddAccount(ctx, "EMPTY"); err != nil {
		t.Fatal(err)
	}
	c.Set(t1)
	errFn := errors.New("changed my mind")

	runErrorCases(t, db, []errorCase{
		{
			name:  "duplicate user",
			op:    func() error { return db.AddUser(ctx, accounts.User{Name: "alice", Account: "EMPTY"}, "other-pw") },
			want:  []error{ErrExists},
			words: []string{`user "alice" already exists`},
		},
		{
			name: "duplicate user with hash",
			op: func() error {
				return db.AddUserWithHash(ctx, accounts.User{Name: "alice", Account: "APP"}, "$2a$04$Q.CgCP2Sl9pkcTXEZHazaeMwPaAkSHk7AI51HkyMt5iJQQyUA4qxq")
			},
			want:    []error{ErrExists},
			secrets: []string{"Q.CgCP2Sl9pkcTXEZHazaeMwPaAkSHk7AI51HkyMt5iJQQyUA4qxq"},
		},
		{
			name:  "unknown account",
			op:    func() error { return db.AddUser(ctx, accounts.User{Name: "bob", Account: "NOPE"}, "pw-bob") },
			want:  []error{ErrUnknownAccount},
			words: []string{`"bob"`, `"NOPE"`},
		},
		{
			name:  "bad name",
			op:    func() error { return db.AddUser(ctx, accounts.User{Name: "bad name", Account: "APP"}, "pw") },
			words: []string{"whitespace"},
		},
		{
			name:  "empty name",
			op:    func() error { return db.AddUser(ctx, accounts.User{Account: "APP"}, "pw") },
			words: []string{"empty"},
		},
		{
			name: "bad subject",
			op: func() error {
				u := accounts.User{Name: "bob", Account: "APP"}
				u.Permissions.Pub.Allow = []string{"orders..new"}
				return db.AddUser(ctx, u, "pw")
			},
			words: []string{"orders..new"},
		},
		{
			name:  "empty password",
			op:    func() error { return db.AddUser(ctx, accounts.User{Name: "bob", Account: "APP"}, "") },
			words: []string{"password is empty"},
		},
		{
			name: "long password",
			op: func() error {
				return db.AddUser(ctx, accounts.User{Name: "bob", Account: "APP"}, strings.Repeat("s3cr3t", 200))
			},
			words: []string{"1024"},
		},
		{
			name: "garbage hash",
			op: func() error {
				return db.AddUserWithHash(ctx, accounts.User{Name: "bob", Account: "APP"}, "plaintext-pw")
			},
			secrets: []string{"plaintext-pw"},
		},
		{
			name: "unsupported hash",
			op: func() error {
				return db.AddUserWithHash(ctx, accounts.User{Name: "bob", Account: "APP"}, "$argon2i$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$FK6NoBr+qHAMI1jc73xTWNkCEoK9iGY6RWL1n7dNIu4")
			},
			words:   []string{"argon2i"},
			secrets: []string{"FK6NoBr"},
		},
		{
			name: "expiry out of range",
			op: func() error {
				return db.AddUser(ctx, accounts.User{Name: "bob", Account: "APP", Expires: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}, "pw")
			},
		},
		{
			name:  "set password of missing user",
			op:    func() error { return db.SetPassword(ctx, "bob", "pw-bob") },
			want:  []error{ErrNotFound},
			words: []string{`user "bob" not found`},
		},
		{
			name:    "set bad password",
			op:      func() error { return db.SetPassword(ctx, "alice", "bad\xff-pw") },
			secrets: []string{"-pw"},
		},
		{
			name: "disable missing user",
			op:   func() error { return db.SetDisabled(ctx, "bob", true) },
			want: []error{ErrNotFound},
		},
		{
			name: "remove missing user",
			op:   func() error { return db.RemoveUser(ctx, "bob") },
			want: []error{ErrNotFound},
		},
		{
			name: "look up missing user",
			op:   func() error { _, err := db.User(ctx, "bob"); return err },
			want: []error{ErrNotFound},
		},
		{
			name: "hash scheme of missing user",
			op:   func() error { _, err := db.HashScheme(ctx, "bob"); return err },
			want: []error{ErrNotFound},
		},
		{
			name: "update missing user",
			op:   func() error { return db.UpdateUser(ctx, "bob", func(*accounts.User) error { return nil }) },
			want: []error{ErrNotFound},
		},
		{
			name: "update to unknown account",
			op: func() error {
				return db.UpdateUser(ctx, "alice", func(u *accounts.User) error { u.Account = "NOPE"; return nil })
			},
			want:  []error{ErrUnknownAccount},
			words: []string{`"NOPE"`},
		},
		{
			name: "update to bad subject",
			op: func() error {
				return db.UpdateUser(ctx, "alice", func(u *accounts.User) error {
					u.Disabled = true
					u.Permissions.Sub.Allow = append(u.Permissions.Sub.Allow, "a.>.b")
					return nil
				})
			},
			words: []string{"a.>.b"},
		},
		{
			name: "update changing the name",
			op: func() error {
				return db.UpdateUser(ctx, "alice", func(u *accounts.User) error { u.Name = "alice2"; return nil })
			},
			words: []string{"name cannot change"},
		},
		{
			name: "update function fails",
			op: func() error {
				return db.UpdateUser(ctx, "alice", func(u *accounts.User) error { u.Disabled = true; return errFn })
			},
			want: []error{errFn},
		},
		{
			name:  "duplicate account",
			op:    func() error { return db.AddAccount(ctx, "APP") },
			want:  []error{ErrExists},
			words: []string{`account "APP" already exists`},
		},
		{
			name: "bad account",
			op:   func() error { return db.AddAccount(ctx, "$SYS") },
		},
		{
			name: "remove missing account",
			op:   func() error { return db.RemoveAccount(ctx, "NOPE") },
			want: []error{ErrNotFound},
		},
		{
			name:  "remove account in use",
			op:    func() error { return db.RemoveAccount(ctx, "APP") },
			want:  []error{ErrAccountInUse},
			words: []string{`1 user is still in it ("alice")`},
		},
	})
	if _, err := db.Authenticate(ctx, "alice", "pw-alice"); err != nil {
		t.Errorf("alice can no longer log in: %v", err)
	}
}
