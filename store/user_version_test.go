package store

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/authrelay/authrelay/accounts"
)

// TestUserVersion checks that each change moves the versions of exactly the
// users whose login it can change, read through another handle as another
// process would: a user change that user's, a role change its holders', an
// account change its users'; and that a removed user's version never comes
// back.
func TestUserVersion(t *testing.T) {
	ctx := t.Context()
	db, path := newTestDB(t)
	other := openTest(t, path) // another process's view
	for _, a := range []string{"APP", "OTHER"} {
		if err := db.AddAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []string{"reader", "writer"} {
		if err := db.AddRole(ctx, accounts.Role{Name: r}); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []accounts.User{
		{Name: "alice", Account: "APP", Roles: []string{"reader"}},
		{Name: "bob", Account: "OTHER", Roles: []string{"writer"}},
		{Name: "carol", Account: "APP"},
	} {
		if err := db.AddUser(ctx, u, "pw-"+u.Name); err != nil {
			t.Fatal(err)
		}
	}
	users := []string{"alice", "bob", "carol"}
	versions := func() map[string]int64 {
		t.Helper()
		out := map[string]int64{}
		for _, u := range users {
			v, err := other.UserVersion(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			ver, _, err := other.UserPositions(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			if ver != v {
				t.Fatalf("UserPositions(%s) = %d, UserVersion = %d", u, ver, v)
			}
			out[u] = v
		}
		return out
	}
	seen := map[string][]int64{} // every version each user has had
	for u, v := range versions() {
		if v <= 0 {
			t.Fatalf("%s: version %d, want positive", u, v)
		}
		seen[u] = append(seen[u], v)
	}

	l := db.Lockouts(accounts.LockoutPolicy{Threshold: 2, AddrThreshold: 5, UserThreshold: 10, KnownFor: time.Hour, Window: time.Minute, Duration: time.Minute, MaxDuration: time.Hour})
	changes := []struct {
		name    string
		do      func() error
		changed []string // the users whose version must move; the others' must not
	}{
		{"set password", func() error { return db.SetPassword(ctx, "alice", "pw-alice-2") }, []string{"alice"}},
		{"disable", func() error { return db.SetDisabled(ctx, "bob", true) }, []string{"bob"}},
		{"permissions", func() error {
			return db.UpdateUser(ctx, "carol", func(u *accounts.User) error {
				u.Permissions.Pub.Allow = []string{"orders.>"}
				return nil
			})
		}, []string{"carol"}},
		{"give a role", func() error {
			return db.UpdateUser(ctx, "carol", func(u *accounts.User) error {
				u.Roles = []string{"writer"}
				return nil
			})
		}, []string{"carol"}},
		{"role permissions", func() error {
			return db.UpdateRole(ctx, "writer", func(r *accounts.Role) error {
				r.Permissions.Sub.Allow = []string{"x.>"}
				return nil
			})
		}, []string{"bob", "carol"}},
		{"add an unrelated role", func() error { return db.AddRole(ctx, accounts.Role{Name: "spare"}) }, nil},
		{"change an unrelated role", func() error {
			return db.UpdateRole(ctx, "spare", func(r *accounts.Role) error {
				r.Permissions.Pub.Allow = []string{"y.>"}
				return nil
			})
		}, nil},
		{"add an unrelated user", func() error {
			return db.AddUser(ctx, accounts.User{Name: "dave", Account: "APP"}, "pw-dave")
		}, nil},
		{"change an unrelated user", func() error { return db.SetDisabled(ctx, "dave", true) }, nil},
		{"remove an unrelated user", func() error { return db.RemoveUser(ctx, "dave") }, nil},
		{"add an account", func() error { return db.AddAccount(ctx, "SPARE") }, nil},
		{"account limits", func() error {
			return db.SetAccountLimits(ctx, "OTHER", accounts.AccountLimits{MaxConnections: 5})
		}, []string{"bob"}},
		{"unrelated account limits", func() error {
			return db.SetAccountLimits(ctx, "SPARE", accounts.AccountLimits{MaxConnections: 5})
		}, nil},
		{"remove an unrelated account", func() error { return db.RemoveAccount(ctx, "SPARE") }, nil},
		{"account changed by hand", func() error {
			_, err := other.sql.ExecContext(ctx, `UPDATE accounts SET max_subs = 7 WHERE name = 'APP'`)
			return err
		}, []string{"alice", "carol"}},
		{"move account", func() error {
			return db.UpdateUser(ctx, "alice", func(u *accounts.User) error {
				u.Account = "OTHER"
				return nil
			})
		}, []string{"alice"}},
		{"remove a held role", func() error { _, err := db.RemoveRole(ctx, "reader", true); return err }, []string{"alice"}},
		{"failed logins and a lockout", func() error {
			for range 3 {
				if err := l.Failed(ctx, "alice", "192.0.2.1", time.Now(), accounts.FailedPassword); err != nil {
					return err
				}
			}
			return nil
		}, nil},
		{"unlock", func() error { _, err := db.Unlock(ctx, "alice", ""); return err }, nil},
		{"audit", func() error { return db.AuditAdmin(ctx, "root", "user add", "alice") }, nil},
		{"authenticate", func() error { _, err := db.Authenticate(ctx, "alice", "pw-alice-2"); return err }, nil},
	}
	for _, c := range changes {
		before := versions()
		if err := c.do(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		after := versions()
		for _, u := range users {
			moved := after[u] != before[u]
			if want := slices.Contains(c.changed, u); moved != want {
				t.Errorf("%s: %s's version %d → %d, want changed %v", c.name, u, before[u], after[u], want)
			}
			if moved {
				if slices.Contains(seen[u], after[u]) {
					t.Errorf("%s: %s's version went back to %d", c.name, u, after[u])
				}
				seen[u] = append(seen[u], after[u])
			}
		}
	}

	// Removed and added again under the same name, with the same password:
	// a version the old user had must not come back, or a cached
	// verification of the old user would answer for the new one.
	if err := db.RemoveUser(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	if v := versions()["carol"]; v != 0 {
		t.Errorf("removed user's version = %d, want 0", v)
	}
	if err := db.AddUser(ctx, accounts.User{Name: "carol", Account: "APP"}, "pw-carol"); err != nil {
		t.Fatal(err)
	}
	if v := versions()["carol"]; v == 0 || slices.Contains(seen["carol"], v) {
		t.Errorf("carol added again: version %d, had %v before", v, seen["carol"])
	}
	if v, err := other.UserVersion(ctx, "nobody"); err != nil || v != 0 {
		t.Errorf("UserVersion(nobody) = %d, %v; want 0", v, err)
	}
}

// TestUserVersionRehash checks that a rehash at login, which keeps the
// password, leaves the user's version alone while a password change moves
// it.
func TestUserVersionRehash(t *testing.T) {
	ctx := t.Context()
	db, _, log, _ := policyDB(t, policyA)
	if err := db.AddUser(ctx, accounts.User{Name: "bob", Account: "APP"}, "pw-bob"); err != nil {
		t.Fatal(err)
	}
	if err := db.SetHashPolicy(ctx, policyB); err != nil {
		t.Fatal(err)
	}
	version := func() int64 {
		t.Helper()
		v, err := db.UserVersion(ctx, "bob")
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	before := version()
	db.Rehash(ctx, "bob", "pw-bob")
	if errs := log.take(); len(errs) != 1 || errs[0] != nil {
		t.Fatalf("OnRehash got %v, want one nil error: the test needs a rehash", errs)
	}
	if after := version(); after != before {
		t.Errorf("rehash: version %d → %d, want it unchanged", before, after)
	}
	rawExec(t, db, `UPDATE users SET password_hash = password_hash WHERE name = 'bob'`)
	if after := version(); after == before {
		t.Errorf("hand-written update: version %d unchanged, want it moved", before)
	}
}

// TestMigrateUserVersions checks that the users of a database from before
// migration 0010 get a version, so the relay caches them and their changes
// move it.
func TestMigrateUserVersions(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "authrelay.db")
	raw := openAtVersion(t, path, 9)
	hash, err := HashPassword("pw-alice", testParams)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO accounts (name, created) VALUES ('APP', '2026-01-01T00:00:00.000000000Z')`,
		`INSERT INTO users (name, account, password_hash, permissions, created, updated)
		 VALUES ('alice', 'APP', '` + hash + `', '{}', '2026-01-01T00:00:00.000000000Z', '2026-01-01T00:00:00.000000000Z')`,
	} {
		if _, err := raw.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}
	db := openTest(t, path)
	before, err := db.UserVersion(ctx, "alice")
	if err != nil || before <= 0 {
		t.Fatalf("alice's version after the upgrade: %d, %v; want positive", before, err)
	}
	if err := db.SetDisabled(ctx, "alice", true); err != nil {
		t.Fatal(err)
	}
	if after, err := db.UserVersion(ctx, "alice"); err != nil || after == before {
		t.Errorf("version after a change: %d, %v; want it moved from %d", after, err, before)
	}
}
