package store

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/authrelay/authrelay/accounts"
)

// testParams make argon2id cheap for tests that are not about its cost.
var testParams = Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// clock is a settable clock for DB.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// openTest opens the store at path with cheap hashing and closes it when the
// test ends.
func openTest(t *testing.T, path string) *DB {
	t.Helper()
	db, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	db.Params = testParams
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	return db
}

// newTestDB opens a fresh store in a temporary directory.
func newTestDB(t *testing.T) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "authrelay.db")
	return openTest(t, path), path
}

func userVersion(t *testing.T, db *DB) int {
	t.Helper()
	var v int
	if err := db.sql.QueryRowContext(t.Context(), "PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestOpen(t *testing.T) {
	migs, err := loadMigrations(migrationFS)
	if err != nil {
		t.Fatal(err)
	}
	if len(migs) == 0 {
		t.Fatal("no migrations embedded")
	}

	t.Run("fresh", func(t *testing.T) {
		db, path := newTestDB(t)
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("database file not created: %v", err)
		}
		if got, want := userVersion(t, db), len(migs); got != want {
			t.Errorf("user_version = %d, want %d", got, want)
		}
		var mode string
		if err := db.sql.QueryRowContext(t.Context(), "PRAGMA journal_mode").Scan(&mode); err != nil {
			t.Fatal(err)
		}
		if got, want := mode, "wal"; got != want {
			t.Errorf("journal_mode = %q, want %q", got, want)
		}
		var fk int
		if err := db.sql.QueryRowContext(t.Context(), "PRAGMA foreign_keys").Scan(&fk); err != nil {
			t.Fatal(err)
		}
		if got, want := fk, 1; got != want {
			t.Errorf("foreign_keys = %d, want %d", got, want)
		}
	})

	t.Run("reopen", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "authrelay.db")
		db, err := Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.AddAccount(t.Context(), "APP"); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			db, err := Open(t.Context(), path)
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			if got, want := userVersion(t, db), len(migs); got != want {
				t.Errorf("user_version after reopen = %d, want %d", got, want)
			}
			got, err := db.Accounts(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"APP"}; !reflect.DeepEqual(got, want) {
				t.Errorf("Accounts after reopen = %q, want %q", got, want)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("newer schema refused", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "authrelay.db")
		db, err := Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.sql.ExecContext(t.Context(), "PRAGMA user_version = 99"); err != nil {
			t.Fatal(err)
		}
		db.Close()
		db, err = Open(t.Context(), path)
		if err == nil {
			db.Close()
			t.Fatal("Open of a database with a newer schema: no error")
		}
		if !errors.Is(err, ErrSchemaTooNew) {
			t.Errorf("Open error = %v, want ErrSchemaTooNew", err)
		}
		if msg := err.Error(); !strings.Contains(msg, "99") || !strings.Contains(msg, path) {
			t.Errorf("Open error %q does not name the version and the file", msg)
		}
	})

	t.Run("concurrent first open", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "authrelay.db")
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				db, err := Open(t.Context(), path)
				if err != nil {
					t.Error(err)
					return
				}
				db.Close()
			})
		}
		wg.Wait()
		db := openTest(t, path)
		if got, want := userVersion(t, db), len(migs); got != want {
			t.Errorf("user_version = %d, want %d", got, want)
		}
	})

	t.Run("odd path", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "a dir #1%20?")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "store?x=1#frag.db")
		openTest(t, path)
		if _, err := os.Stat(path); err != nil {
			t.Errorf("database not created at the given path: %v", err)
		}
	})

	t.Run("missing directory", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "nope", "authrelay.db")
		if db, err := Open(t.Context(), path); err == nil {
			db.Close()
			t.Fatal("Open in a missing directory: no error")
		} else if !strings.Contains(err.Error(), "nope") {
			t.Errorf("Open error %q does not name the directory", err)
		}
	})

	t.Run("not a database", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "garbage.db")
		if err := os.WriteFile(path, []byte(strings.Repeat("not sqlite ", 200)), 0o600); err != nil {
			t.Fatal(err)
		}
		if db, err := Open(t.Context(), path); err == nil {
			db.Close()
			t.Fatal("Open of a non-database: no error")
		}
	})
}

func TestLoadMigrations(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	good := fstest.MapFS{
		"migrations/0002_more.sql": file("two"),
		"migrations/0001_init.sql": file("one"),
		"migrations/README":        file("ignored"),
	}
	migs, err := loadMigrations(good)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]string, len(migs))
	for i, m := range migs {
		got[i] = m.name + ":" + m.sql
	}
	if want := []string{"0001_init.sql:one", "0002_more.sql:two"}; !reflect.DeepEqual(got, want) {
		t.Errorf("loadMigrations = %q, want %q", got, want)
	}
	for name, fsys := range map[string]fstest.MapFS{
		"gap":      {"migrations/0001_a.sql": file(""), "migrations/0003_c.sql": file("")},
		"no start": {"migrations/0002_b.sql": file("")},
		"bad name": {"migrations/0001_a.sql": file(""), "migrations/second.sql": file("")},
	} {
		if _, err := loadMigrations(fsys); err == nil {
			t.Errorf("loadMigrations(%s): no error", name)
		}
	}
}

func TestMigrationsMatchAcrossHandles(t *testing.T) {
	// Migrating an already-migrated database from a second handle, as a
	// second process would, changes nothing.
	db, path := newTestDB(t)
	migs, err := loadMigrations(migrationFS)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.migrate(t.Context(), migs); err != nil {
		t.Fatal(err)
	}
	for _, m := range migs {
		if err := db.runMigration(t.Context(), m, len(migs)); err != nil {
			t.Errorf("rerun %s: %v", m.name, err)
		}
	}
	other := openTest(t, path)
	if got, want := userVersion(t, other), len(migs); got != want {
		t.Errorf("user_version = %d, want %d", got, want)
	}
}

func TestTimeRoundTrip(t *testing.T) {
	zone := time.FixedZone("X", -7*3600)
	for _, in := range []time.Time{
		time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC),
		time.Date(2026, 3, 4, 5, 6, 7, 123456789, zone),
		time.Date(1970, 1, 1, 0, 0, 0, 1, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
	} {
		got, err := parseTime(formatTime(in))
		if err != nil {
			t.Fatal(err)
		}
		if !got.Equal(in) || got.Location() != time.UTC {
			t.Errorf("round trip of %v = %v, want the same instant in UTC", in, got)
		}
	}
	if a, b := formatTime(time.Date(2026, 1, 1, 0, 0, 0, 5, time.UTC)), formatTime(time.Date(2026, 1, 1, 0, 0, 0, 40, time.UTC)); !(a < b) {
		t.Errorf("stored times do not sort: %q >= %q", a, b)
	}
}

func TestReadsTakeNoWriteLock(t *testing.T) {
	db, path := newTestDB(t)
	ctx := t.Context()
	if err := db.AddAccount(ctx, "APP"); err != nil {
		t.Fatal(err)
	}
	if err := db.AddRole(ctx, accounts.Role{Name: "reader"}); err != nil {
		t.Fatal(err)
	}
	if err := db.AddUser(ctx, accounts.User{Name: "alice", Account: "APP", Roles: []string{"reader"}}, "pw-alice"); err != nil {
		t.Fatal(err)
	}

	// Another handle, as another process would, holds the write lock.
	other := openTest(t, path)
	tx, err := other.sql.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE users SET disabled = 1 WHERE name = 'alice'`); err != nil {
		t.Fatal(err)
	}

	// Reads neither wait for it (the busy timeout is 5 s) nor see it.
	start := time.Now()
	u, err := db.Authenticate(ctx, "alice", "pw-alice")
	if err != nil {
		t.Fatalf("Authenticate while another handle holds the write lock: %v", err)
	}
	if u.Disabled {
		t.Error("Authenticate saw an uncommitted write")
	}
	if _, err := db.Authenticate(ctx, "nobody", "pw"); !errors.Is(err, accounts.ErrInvalidCredentials) {
		t.Errorf("Authenticate(unknown) = %v, want ErrInvalidCredentials", err)
	}
	if _, err := db.User(ctx, "alice"); err != nil {
		t.Error(err)
	}
	if _, err := db.Users(ctx); err != nil {
		t.Error(err)
	}
	if _, err := db.Accounts(ctx); err != nil {
		t.Error(err)
	}
	if _, err := db.HashScheme(ctx, "alice"); err != nil {
		t.Error(err)
	}
	if roles, err := db.RolesNamed(ctx, u.Roles); err != nil || len(roles) != 1 {
		t.Errorf("RolesNamed(%q) = %+v, %v; want the role", u.Roles, roles, err)
	}
	if _, err := db.Role(ctx, "reader"); err != nil {
		t.Error(err)
	}
	if _, err := db.Roles(ctx); err != nil {
		t.Error(err)
	}
	if _, err := db.RoleHolders(ctx, "reader"); err != nil {
		t.Error(err)
	}
	if _, err := db.AccountList(ctx); err != nil {
		t.Error(err)
	}
	if _, err := db.Account(ctx, "APP"); err != nil {
		t.Error(err)
	}
	if _, err := db.AccountUsers(ctx, "APP"); err != nil {
		t.Error(err)
	}
	if _, err := db.PasswordHashes(ctx); err != nil {
		t.Error(err)
	}
	if err := db.Backup(ctx, filepath.Join(t.TempDir(), "backup.db")); err != nil {
		t.Error(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("reads took %v while the write lock was held: they waited for it", d)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	u, err = db.Authenticate(ctx, "alice", "pw-alice")
	if err != nil || !u.Disabled {
		t.Errorf("after commit: Authenticate = %+v, %v; want the disabled user", u, err)
	}
}
