package store

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/authrelay/authrelay/accounts"
)

// changedSince reads every user change after id through db and returns the
// distinct users in order of first appearance and the last id.
func changedSince(t *testing.T, db *DB, after int64) ([]string, int64) {
	t.Helper()
	var users []string
	for {
		changes, err := db.UserChangesSince(t.Context(), after)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range changes {
			if c.ID <= after {
				t.Fatalf("id %d after %d: want increasing ids", c.ID, after)
			}
			after = c.ID
			if !slices.Contains(users, c.User) {
				users = append(users, c.User)
			}
		}
		if len(changes) < userChangesBatch {
			return users, after
		}
	}
}

// TestUserChanges checks that each change a live connection must not
// outlast names exactly the users it affects, read through another handle
// as another process would, and that what grants nothing new (a rehash at
// login, a failed login that does not lock) names nobody.
func TestUserChanges(t *testing.T) {
	ctx := t.Context()
	db, path := newTestDB(t)
	other := openTest(t, path)
	if err := db.AddAccount(ctx, "APP"); err != nil {
		t.Fatal(err)
	}
	if err := db.AddAccount(ctx, "OTHER"); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"reader", "unheld"} {
		if err := db.AddRole(ctx, accounts.Role{Name: r}); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []accounts.User{
		{Name: "alice", Account: "APP", Roles: []string{"reader"}},
		{Name: "bob", Account: "APP", Roles: []string{"reader"}},
		{Name: "carol", Account: "APP"},
	} {
		if err := db.AddUser(ctx, u, "pw-"+u.Name); err != nil {
			t.Fatal(err)
		}
	}
	last, err := other.LastUserChange(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if users, end := changedSince(t, other, 0); end != last || !slices.Equal(users, []string{"alice", "bob", "carol"}) {
		t.Fatalf("from the start: %v up to %d, want alice, bob, carol up to %d", users, end, last)
	}
	l := db.Lockouts(accounts.LockoutPolicy{Threshold: 2, AddrThreshold: 100, UserThreshold: 6, KnownFor: time.Hour, Window: time.Minute, Duration: time.Minute, MaxDuration: time.Hour})

	for _, c := range []struct {
		name string
		do   func() error
		want []string
	}{
		{"add user", func() error { return db.AddUser(ctx, accounts.User{Name: "dave", Account: "APP"}, "pw-dave") }, []string{"dave"}},
		{"set password", func() error { return db.SetPassword(ctx, "alice", "pw-alice-2") }, []string{"alice"}},
		{"disable", func() error { return db.SetDisabled(ctx, "alice", true) }, []string{"alice"}},
		{"permissions", func() error {
			return db.UpdateUser(ctx, "carol", func(u *accounts.User) error {
				u.Permissions.Pub.Allow = []string{"orders.>"}
				return nil
			})
		}, []string{"carol"}},
		{"move account", func() error {
			return db.UpdateUser(ctx, "carol", func(u *accounts.User) error { u.Account = "OTHER"; return nil })
		}, []string{"carol"}},
		{"user roles", func() error {
			return db.UpdateUser(ctx, "dave", func(u *accounts.User) error { u.Roles = []string{"unheld"}; return nil })
		}, []string{"dave"}},
		{"role held by two", func() error {
			return db.UpdateRole(ctx, "reader", func(r *accounts.Role) error {
				r.Permissions.Sub.Allow = []string{"metrics.>"}
				return nil
			})
		}, []string{"alice", "bob"}},
		{"account limits", func() error {
			return db.SetAccountLimits(ctx, "APP", accounts.AccountLimits{MaxConnections: 5})
		}, nil},
		{"one failure", func() error { return l.Failed(ctx, "bob", "192.0.2.1", time.Now(), accounts.FailedPassword) }, nil},
		// A lockout refuses new logins and closes no live connection, so
		// that an attacker's wrong passwords cannot disconnect the user.
		{"lockout", func() error { return l.Failed(ctx, "bob", "192.0.2.1", time.Now(), accounts.FailedPassword) }, nil},
		{"failure while locked", func() error { return l.Failed(ctx, "bob", "192.0.2.1", time.Now(), accounts.FailedLocked) }, nil},
		{"lockout of a username everywhere", func() error {
			for i := range 4 {
				if err := l.Failed(ctx, "bob", fmt.Sprintf("192.0.2.%d", 10+i), time.Now(), accounts.FailedPassword); err != nil {
					return err
				}
			}
			if locked, err := l.Locked(ctx, "bob", "192.0.2.99", time.Now()); err != nil || !locked {
				return fmt.Errorf("bob from a new address after 6 wrong passwords: locked %v, %v; want true", locked, err)
			}
			return nil
		}, nil},
		{"successful login", func() error { return l.Succeeded(ctx, "alice", "192.0.2.1", time.Now()) }, nil},
		{"lockout of an unknown name", func() error {
			if err := l.Failed(ctx, "nobody", "192.0.2.1", time.Now(), accounts.FailedPassword); err != nil {
				return err
			}
			return l.Failed(ctx, "nobody", "192.0.2.1", time.Now(), accounts.FailedPassword)
		}, nil},
		{"authenticate", func() error { _, err := db.Authenticate(ctx, "dave", "pw-dave"); return err }, nil},
		{"remove role", func() error { _, err := db.RemoveRole(ctx, "reader", true); return err }, []string{"alice", "bob"}},
		{"remove user", func() error { return db.RemoveUser(ctx, "dave") }, []string{"dave"}},
	} {
		if err := c.do(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got, end := changedSince(t, other, last)
		slices.Sort(got)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: changed users %v, want %v", c.name, got, c.want)
		}
		if l, err := other.LastUserChange(ctx); err != nil || l != end {
			t.Errorf("%s: LastUserChange = %d, %v; want %d", c.name, l, err, end)
		}
		last = end
	}
}

// TestUserChangesRehash checks that a rehash at login names nobody, while
// a password change after it does.
func TestUserChangesRehash(t *testing.T) {
	ctx := t.Context()
	db, _, log, _ := policyDB(t, policyA)
	if err := db.AddUser(ctx, accounts.User{Name: "bob", Account: "APP"}, "pw-bob"); err != nil {
		t.Fatal(err)
	}
	if err := db.SetHashPolicy(ctx, policyB); err != nil {
		t.Fatal(err)
	}
	last, err := db.LastUserChange(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Authenticate(ctx, "bob", "pw-bob"); err != nil {
		t.Fatal(err)
	}
	db.Rehash(ctx, "bob", "pw-bob")
	if errs := log.take(); len(errs) != 1 || errs[0] != nil {
		t.Fatalf("OnRehash got %v, want one nil error: the test needs a rehash", errs)
	}
	if got, _ := changedSince(t, db, last); len(got) != 0 {
		t.Errorf("rehash: changed users %v, want none", got)
	}
	if err := db.SetPassword(ctx, "bob", "pw-bob-2"); err != nil {
		t.Fatal(err)
	}
	if got, _ := changedSince(t, db, last); !slices.Equal(got, []string{"bob"}) {
		t.Errorf("password change: changed users %v, want bob", got)
	}
}

// TestPruneUserChanges checks that pruning deletes old rows only and that
// LastUserChange still reports the end of the feed.
func TestPruneUserChanges(t *testing.T) {
	ctx := t.Context()
	db, _ := newTestDB(t)
	if err := db.AddAccount(ctx, "APP"); err != nil {
		t.Fatal(err)
	}
	if err := db.AddUser(ctx, accounts.User{Name: "alice", Account: "APP"}, "pw"); err != nil {
		t.Fatal(err)
	}
	last, err := db.LastUserChange(ctx)
	if err != nil || last == 0 {
		t.Fatalf("LastUserChange = %d, %v; want a row", last, err)
	}
	if n, err := db.PruneUserChanges(ctx, time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("prune an hour back: %d, %v; want 0 rows", n, err)
	}
	if n, err := db.PruneUserChanges(ctx, time.Now().Add(time.Hour)); err != nil || n == 0 {
		t.Fatalf("prune all: %d, %v; want the rows", n, err)
	}
	if got, err := db.LastUserChange(ctx); err != nil || got != last {
		t.Errorf("after pruning LastUserChange = %d, %v; want %d", got, err, last)
	}
	if err := db.SetDisabled(ctx, "alice", true); err != nil {
		t.Fatal(err)
	}
	if got, end := changedSince(t, db, last); !slices.Equal(got, []string{"alice"}) || end <= last {
		t.Errorf("after pruning: %v up to %d, want alice after %d", got, end, last)
	}
}

// TestRecentUserChanges checks that the feed's recent past comes in id
// order with each change's time, newest kept when limited, and nothing
// older than asked.
func TestRecentUserChanges(t *testing.T) {
	ctx := t.Context()
	db, _ := newTestDB(t)
	if err := db.AddAccount(ctx, "APP"); err != nil {
		t.Fatal(err)
	}
	before := time.Now().Truncate(time.Second)
	for _, name := range []string{"alice", "bob", "carol"} {
		if err := db.AddUser(ctx, accounts.User{Name: name, Account: "APP"}, "pw"); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.SetDisabled(ctx, "alice", true); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	changes, err := db.RecentUserChanges(ctx, before, 3)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	var users []string
	var times []time.Time
	for _, c := range changes {
		ids, users, times = append(ids, c.ID), append(users, c.User), append(times, c.Time)
	}
	if !slices.Equal(users, []string{"bob", "carol", "alice"}) || !slices.IsSorted(ids) || len(times) != 3 {
		t.Fatalf("recent changes: ids %v users %v times %v; want bob, carol, alice in id order", ids, users, times)
	}
	for _, at := range times {
		if at.Before(before) || at.After(after) {
			t.Errorf("change time %v not within [%v, %v]", at, before, after)
		}
	}
	if changes, err := db.RecentUserChanges(ctx, after.Add(2*time.Second), 10); err != nil || len(changes) != 0 {
		t.Errorf("changes from the future: %v, %v; want none", changes, err)
	}
}
