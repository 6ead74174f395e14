package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/authrelay/authrelay/accounts"
)

// generation reads db's change counter or fails the test.
func generation(t *testing.T, db *DB) int64 {
	t.Helper()
	n, err := db.Generation(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestGeneration checks that every change a login decision could see
// increases the generation, read through another handle as another process
// would, and that what a decision does not read (lockouts, audit rows, the
// hash policy, a rehash at login) leaves it alone.
func TestGeneration(t *testing.T) {
	ctx := t.Context()
	db, path := newTestDB(t)
	other := openTest(t, path) // another process's view
	if err := db.AddAccount(ctx, "APP"); err != nil {
		t.Fatal(err)
	}
	if err := db.AddRole(ctx, accounts.Role{Name: "reader"}); err != nil {
		t.Fatal(err)
	}
	if err := db.AddUser(ctx, accounts.User{Name: "alice", Account: "APP", Roles: []string{"reader"}}, "pw-alice"); err != nil {
		t.Fatal(err)
	}

	changes := []struct {
		name string
		do   func() error
	}{
		{"add account", func() error { return db.AddAccount(ctx, "OTHER") }},
		{"account limits", func() error {
			return db.SetAccountLimits(ctx, "OTHER", accounts.AccountLimits{MaxConnections: 5})
		}},
		{"add user", func() error { return db.AddUser(ctx, accounts.User{Name: "bob", Account: "APP"}, "pw-bob") }},
		{"set password", func() error { return db.SetPassword(ctx, "alice", "pw-alice-2") }},
		{"set password to the same", func() error { return db.SetPassword(ctx, "alice", "pw-alice-2") }},
		{"disable", func() error { return db.SetDisabled(ctx, "alice", true) }},
		{"enable", func() error { return db.SetDisabled(ctx, "alice", false) }},
		{"permissions", func() error {
			return db.UpdateUser(ctx, "alice", func(u *accounts.User) error {
				u.Permissions.Pub.Allow = []string{"orders.>"}
				return nil
			})
		}},
		{"move account", func() error {
			return db.UpdateUser(ctx, "alice", func(u *accounts.User) error {
				u.Account = "OTHER"
				return nil
			})
		}},
		{"give roles", func() error {
			return db.UpdateUser(ctx, "alice", func(u *accounts.User) error {
				u.Roles = nil
				return nil
			})
		}},
		{"add role", func() error { return db.AddRole(ctx, accounts.Role{Name: "writer"}) }},
		{"role permissions", func() error {
			return db.UpdateRole(ctx, "reader", func(r *accounts.Role) error {
				r.Permissions.Sub.Allow = []string{"x.>"}
				return nil
			})
		}},
		{"remove role held", func() error {
			if err := db.UpdateUser(ctx, "bob", func(u *accounts.User) error {
				u.Roles = []string{"writer"}
				return nil
			}); err != nil {
				return err
			}
			_, err := db.RemoveRole(ctx, "writer", true)
			return err
		}},
		{"add an nkey", func() error {
			return db.SetCredentials(ctx, "bob", nil, []accounts.StoredCredential{{Kind: accounts.CredNkey, Value: testNkey(t)}})
		}},
		{"remove the nkeys", func() error {
			return db.SetCredentials(ctx, "bob", []accounts.CredentialKind{accounts.CredNkey}, nil)
		}},
		{"remove user", func() error { return db.RemoveUser(ctx, "bob") }},
		{"move back", func() error {
			return db.UpdateUser(ctx, "alice", func(u *accounts.User) error {
				u.Account = "APP"
				return nil
			})
		}},
		{"remove account", func() error { return db.RemoveAccount(ctx, "OTHER") }},
	}
	for _, c := range changes {
		before := generation(t, other)
		if err := c.do(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if after := generation(t, other); after <= before {
			t.Errorf("%s: generation %d → %d, want it increased", c.name, before, after)
		}
	}

	// What a decision does not read, or reads on every decision anyway.
	l := db.Lockouts(accounts.LockoutPolicy{Threshold: 2, AddrThreshold: 5, UserThreshold: 10, KnownFor: time.Hour, Window: time.Minute, Duration: time.Minute, MaxDuration: time.Hour})
	aw := db.NewAuditWriter(AuditOptions{})
	same := []struct {
		name string
		do   func() error
	}{
		{"authenticate", func() error { _, err := db.Authenticate(ctx, "alice", "pw-alice-2"); return err }},
		{"failed logins and a lockout", func() error {
			for range 3 {
				if err := l.Failed(ctx, "alice", "192.0.2.1", time.Now(), accounts.FailedPassword); err != nil {
					return err
				}
			}
			return nil
		}},
		{"successful login, recording a known address", func() error {
			if err := l.Succeeded(ctx, "alice", "192.0.2.1", time.Now()); err != nil {
				return err
			}
			var n int
			if err := db.sql.QueryRowContext(ctx, `SELECT count(*) FROM known_addrs WHERE user = 'alice'`).Scan(&n); err != nil || n != 1 {
				return fmt.Errorf("known addresses of alice: %d, %v; want 1", n, err)
			}
			return nil
		}},
		{"unlock", func() error { _, err := db.Unlock(ctx, "alice", ""); return err }},
		{"prune lockouts", func() error { _, err := db.PruneLockouts(ctx, time.Now().Add(time.Hour), 0); return err }},
		{"audit", func() error {
			aw.Record(accounts.LoginEvent{Time: time.Now(), User: "alice", Allowed: true})
			if err := aw.Close(ctx); err != nil {
				return err
			}
			return db.AuditAdmin(ctx, "root", "user add", "alice")
		}},
		{"hash policy", func() error { return db.SetHashPolicy(ctx, policyB) }},
		// Nothing is written: the users' versions (and the relays' caches)
		// stay, and no change closes a connection.
		{"update that changes nothing", func() error {
			return db.UpdateUser(ctx, "alice", func(*accounts.User) error { return nil })
		}},
	}
	for _, c := range same {
		before := generation(t, other)
		if err := c.do(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if after := generation(t, other); after != before {
			t.Errorf("%s: generation %d → %d, want it unchanged", c.name, before, after)
		}
	}
}

// TestGenerationRehash checks that a rehash at login, which keeps the
// password, leaves the generation alone, while a password change, even one
// racing the rehash, moves it.
func TestGenerationRehash(t *testing.T) {
	ctx := t.Context()
	db, _, log, _ := policyDB(t, policyA)
	if err := db.AddUser(ctx, accounts.User{Name: "bob", Account: "APP"}, "pw-bob"); err != nil {
		t.Fatal(err)
	}
	if err := db.SetHashPolicy(ctx, policyB); err != nil {
		t.Fatal(err)
	}
	before := generation(t, db)
	if _, err := db.Authenticate(ctx, "bob", "pw-bob"); err != nil {
		t.Fatal(err)
	}
	db.Rehash(ctx, "bob", "pw-bob")
	if errs := log.take(); len(errs) != 1 || errs[0] != nil {
		t.Fatalf("OnRehash got %v, want one nil error: the test needs a rehash", errs)
	}
	wantHashInfo(t, db, "bob", SchemeArgon2id, true)
	if after := generation(t, db); after != before {
		t.Errorf("rehash: generation %d → %d, want it unchanged", before, after)
	}
	if err := db.SetPassword(ctx, "bob", "pw-bob-2"); err != nil {
		t.Fatal(err)
	}
	if after := generation(t, db); after <= before {
		t.Errorf("password change after a rehash: generation %d → %d, want it increased", before, after)
	}
	// A password written by hand, outside the store, counts as a change.
	before = generation(t, db)
	rawExec(t, db, `UPDATE users SET password_hash = password_hash WHERE name = 'bob'`)
	if after := generation(t, db); after <= before {
		t.Errorf("hand-written update: generation %d → %d, want it increased", before, after)
	}
}

// TestGenerationDoesNotWait checks that reading the generation does not wait
// for a writer: it runs on every login.
func TestGenerationDoesNotWait(t *testing.T) {
	db, path := newTestDB(t)
	other := openTest(t, path)
	tx, err := other.sql.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(t.Context(), `INSERT INTO accounts (name, created) VALUES ('X', '')`); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if _, err := db.Generation(ctx); err != nil {
		t.Errorf("Generation while another handle writes: %v", err)
	}
}

func TestPositions(t *testing.T) {
	db, _ := newTestDB(t)
	ctx := t.Context()
	check := func() {
		t.Helper()
		gen, last, err := db.Positions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		wantGen, err := db.Generation(ctx)
		if err != nil {
			t.Fatal(err)
		}
		wantLast, err := db.LastUserChange(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if gen != wantGen || last != wantLast {
			t.Errorf("Positions = %d, %d; want Generation %d, LastUserChange %d", gen, last, wantGen, wantLast)
		}
	}
	check()
	if err := db.AddAccount(ctx, "APP"); err != nil {
		t.Fatal(err)
	}
	if err := db.AddUser(ctx, accounts.User{Name: "alice", Account: "APP"}, "alice-pass"); err != nil {
		t.Fatal(err)
	}
	check()
	if err := db.SetDisabled(ctx, "alice", true); err != nil {
		t.Fatal(err)
	}
	check()
}
