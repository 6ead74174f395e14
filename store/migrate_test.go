package store

import (
	"database/sql"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/authrelay/authrelay/accounts"
)

// openAtVersion creates a database at path with only the first version
// migrations applied, as an older authrelay would have left it, and returns
// its raw handle.
func openAtVersion(t *testing.T, path string, version int) *sql.DB {
	t.Helper()
	migs, err := loadMigrations(migrationFS)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite3", "file:"+escapeURIPath(path)+"?"+dsnParams)
	if err != nil {
		t.Fatal(err)
	}
	old := &DB{sql: raw}
	if err := old.migrate(t.Context(), migs[:version]); err != nil {
		raw.Close()
		t.Fatal(err)
	}
	return raw
}

func TestMigrateFromVersion1(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "authrelay.db")
	raw := openAtVersion(t, path, 1)

	// Rows as version 1 wrote them, with its columns only.
	hash, err := HashPassword("pw-alice", testParams)
	if err != nil {
		t.Fatal(err)
	}
	perms := `{"pub":{"allow":["orders.>"],"deny":null},"sub":{"allow":null,"deny":null}}`
	for _, stmt := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO accounts (name, created) VALUES ('APP', ?), ('EMPTY', ?)`, []any{formatTime(t0), formatTime(t0)}},
		{`INSERT INTO users (name, account, password_hash, permissions, disabled, expires, created, updated)
		  VALUES ('alice', 'APP', ?, ?, 0, ?, ?, ?)`, []any{hash, perms, formatTime(t1.Add(time.Hour)), formatTime(t0), formatTime(t1)}},
	} {
		if _, err := raw.ExecContext(ctx, stmt.sql, stmt.args...); err != nil {
			t.Fatal(err)
		}
	}
	var v int
	if err := raw.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != 1 {
		t.Fatalf("user_version of the old database = %d, want 1", v)
	}
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}

	db := openTest(t, path)
	migs, err := loadMigrations(migrationFS)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := userVersion(t, db), len(migs); got != want {
		t.Errorf("user_version after Open = %d, want %d", got, want)
	}

	// Version 1 left subscribe open by leaving it empty; 0007 makes that
	// explicit.
	want := accounts.User{
		Name:        "alice",
		Account:     "APP",
		Permissions: accounts.Permissions{Pub: accounts.Rule{Allow: []string{"orders.>"}}, Sub: accounts.Rule{Allow: []string{">"}}},
		Expires:     t1.Add(time.Hour),
		Created:     t0,
		Updated:     t1,
	}
	t.Run("existing user keeps working", func(t *testing.T) {
		got, err := db.Authenticate(ctx, "alice", "pw-alice")
		if err != nil {
			t.Fatal(err)
		}
		assertUser(t, got, want)
		assertNames(t, "Roles", got.Roles, nil)
		assertNames(t, "Src", got.Src, nil)
		assertNames(t, "ConnTypes", got.ConnTypes, nil)
		if _, err := db.Authenticate(ctx, "alice", "wrong"); !errors.Is(err, accounts.ErrInvalidCredentials) {
			t.Errorf("wrong password after migration = %v, want ErrInvalidCredentials", err)
		}
	})

	t.Run("accounts have no limits", func(t *testing.T) {
		got, err := db.AccountList(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := []accounts.Account{{Name: "APP"}, {Name: "EMPTY"}}; len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
			t.Errorf("AccountList = %+v, want %+v", got, want)
		}
	})

	t.Run("new features work on the old rows", func(t *testing.T) {
		if err := db.AddRole(ctx, accounts.Role{Name: "reader"}); err != nil {
			t.Fatal(err)
		}
		err := db.UpdateUser(ctx, "alice", func(u *accounts.User) error {
			u.Roles, u.Src, u.ConnTypes = []string{"reader"}, []string{"10.0.0.0/8"}, []string{"STANDARD"}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.SetAccountLimits(ctx, "APP", accounts.AccountLimits{MaxSubs: 9}); err != nil {
			t.Fatal(err)
		}
		got, err := db.Authenticate(ctx, "alice", "pw-alice")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Roles, []string{"reader"}) || !slices.Equal(got.Src, []string{"10.0.0.0/8"}) || !slices.Equal(got.ConnTypes, []string{"STANDARD"}) {
			t.Errorf("after update: roles %q, src %q, conn types %q", got.Roles, got.Src, got.ConnTypes)
		}
		if err := db.RemoveUser(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.RemoveRole(ctx, "reader", false); err != nil {
			t.Errorf("RemoveRole after its holder was removed: %v", err)
		}
	})
}

// TestMigrateSmartLockout upgrades a database with lockouts as version 6 kept
// them: address rows are kept, username rows (counted from every address at
// the old per-name threshold) are dropped, and a lockout no longer enters
// the revocation feed.
func TestMigrateSmartLockout(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "authrelay.db")
	raw := openAtVersion(t, path, 6)
	until := formatTime(time.Now().Add(time.Hour))
	for _, stmt := range []string{
		`INSERT INTO lockouts (kind, key, failures, window_start, locked_until, locks, updated)
		 VALUES ('addr', '192.0.2.7', 0, '` + formatTime(t0) + `', '` + until + `', 2, '` + formatTime(t0) + `'),
		        ('user', 'alice', 0, '` + formatTime(t0) + `', '` + until + `', 1, '` + formatTime(t0) + `')`,
	} {
		if _, err := raw.ExecContext(ctx, stmt); err != nil {
			raw.Close()
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	raw.Close()

	db := openTest(t, path)
	got, err := db.ActiveLockouts(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Kind != LockoutAddr || got[0].Addr != "192.0.2.7" || got[0].Locks != 2 {
		t.Errorf("lockouts after the migration = %+v, want the address only", got)
	}
	if err := db.AddAccount(ctx, "APP"); err != nil {
		t.Fatal(err)
	}
	if err := db.AddUser(ctx, accounts.User{Name: "alice", Account: "APP"}, "pw-alice"); err != nil {
		t.Fatal(err)
	}
	last, err := db.LastUserChange(ctx)
	if err != nil {
		t.Fatal(err)
	}
	l := db.Lockouts(accounts.DefaultLockoutPolicy)
	for range accounts.DefaultLockoutPolicy.Threshold {
		if err := l.Failed(ctx, "alice", "198.51.100.1", time.Now(), accounts.FailedPassword); err != nil {
			t.Fatal(err)
		}
	}
	if locked, err := l.Locked(ctx, "alice", "198.51.100.1", time.Now()); err != nil || !locked {
		t.Fatalf("alice from 198.51.100.1 after %d failures: locked %v, %v", accounts.DefaultLockoutPolicy.Threshold, locked, err)
	}
	if after, err := db.LastUserChange(ctx); err != nil || after != last {
		t.Errorf("a lockout entered the revocation feed: %d → %d (%v)", last, after, err)
	}
}
