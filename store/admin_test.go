package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/authrelay/authrelay/accounts"
)

// closeAdminRows makes every insert of an admin audit row fail, as a full
// disk or a broken audit table would.
func closeAdminRows(t *testing.T, db *DB) {
	t.Helper()
	if _, err := db.sql.ExecContext(t.Context(), `CREATE TRIGGER audit_closed BEFORE INSERT ON audit
		WHEN NEW.kind = 'admin' BEGIN SELECT RAISE(ABORT, 'audit closed'); END`); err != nil {
		t.Fatal(err)
	}
}

func adminRows(t *testing.T, db *DB) []AuditEntry {
	t.Helper()
	rows, err := db.Audit(t.Context(), AuditFilter{Kind: AuditAdmin})
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestAdminChangeAndRowAreOneTransaction(t *testing.T) {
	ctx := context.Background()
	alice := accounts.User{Name: "alice", Account: "APP"}

	t.Run("a change whose row cannot be written is not made", func(t *testing.T) {
		db, _ := newTestDB(t)
		if err := db.AddAccount(ctx, "APP"); err != nil {
			t.Fatal(err)
		}
		closeAdminRows(t, db)
		gen0, err := db.Generation(ctx)
		if err != nil {
			t.Fatal(err)
		}
		err = db.Admin(ctx, "root", "user add", func(ctx context.Context) (string, error) {
			return `{"user":"alice"}`, db.AddUser(ctx, alice, "alice-pw-123")
		})
		if err == nil {
			t.Fatal("Admin succeeded with the audit table closed")
		}
		if _, err := db.User(ctx, "alice"); !errors.Is(err, ErrNotFound) {
			t.Errorf("alice after the failed change: %v, want ErrNotFound", err)
		}
		gen, err := db.Generation(ctx)
		if err != nil || gen != gen0 {
			t.Errorf("generation after the failed change = %d, %v; want %d: the change counter moved", gen, err, gen0)
		}
	})

	t.Run("a change that fails writes no row", func(t *testing.T) {
		db, _ := newTestDB(t)
		if err := db.AddAccount(ctx, "APP"); err != nil {
			t.Fatal(err)
		}
		// AddUser writes the user, then fails on the unknown role.
		withRole := alice
		withRole.Roles = []string{"missing"}
		err := db.Admin(ctx, "root", "user add", func(ctx context.Context) (string, error) {
			return `{"user":"alice"}`, db.AddUser(ctx, withRole, "alice-pw-123")
		})
		if !errors.Is(err, ErrUnknownRole) {
			t.Fatalf("Admin = %v, want ErrUnknownRole", err)
		}
		if _, err := db.User(ctx, "alice"); !errors.Is(err, ErrNotFound) {
			t.Errorf("alice after the failed change: %v, want ErrNotFound", err)
		}
		if rows := adminRows(t, db); len(rows) != 0 {
			t.Errorf("admin rows after a failed change: %+v", rows)
		}
	})

	t.Run("a method that fails inside a change undoes only its own writes", func(t *testing.T) {
		db, _ := newTestDB(t)
		if err := db.AddAccount(ctx, "APP"); err != nil {
			t.Fatal(err)
		}
		withRole := accounts.User{Name: "bob", Account: "APP", Roles: []string{"missing"}}
		err := db.Admin(ctx, "root", "import", func(ctx context.Context) (string, error) {
			if err := db.AddUser(ctx, alice, "alice-pw-123"); err != nil {
				return "", err
			}
			if err := db.AddUser(ctx, withRole, "bob-pw-123"); !errors.Is(err, ErrUnknownRole) {
				return "", errors.New("bob was added")
			}
			return `{"users_imported":1}`, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.User(ctx, "alice"); err != nil {
			t.Errorf("alice: %v", err)
		}
		if _, err := db.User(ctx, "bob"); !errors.Is(err, ErrNotFound) {
			t.Errorf("bob, whose add failed: %v, want ErrNotFound", err)
		}
		if rows := adminRows(t, db); len(rows) != 1 || rows[0].Action != "import" {
			t.Errorf("admin rows = %+v, want the import's", rows)
		}
	})

	t.Run("no lock is held before the change's first write", func(t *testing.T) {
		db, _ := newTestDB(t)
		if err := db.AddAccount(ctx, "APP"); err != nil {
			t.Fatal(err)
		}
		err := db.Admin(ctx, "root", "user add", func(ctx context.Context) (string, error) {
			// Another writer, as a relay recording a login would be,
			// gets the lock at once while the change hashes its password.
			done := make(chan error, 1)
			go func() { done <- db.insertLogins(context.Background(), []accounts.LoginEvent{{User: "x"}}) }()
			select {
			case err := <-done:
				if err != nil {
					return "", err
				}
			case <-time.After(2 * time.Second):
				return "", errors.New("another writer waited for the admin change before its first write")
			}
			return `{"user":"alice"}`, db.AddUser(ctx, alice, "alice-pw-123")
		})
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("the change and its row commit together", func(t *testing.T) {
		db, _ := newTestDB(t)
		if err := db.AddAccount(ctx, "APP"); err != nil {
			t.Fatal(err)
		}
		err := db.Admin(ctx, "root", "user add", func(ctx context.Context) (string, error) {
			return `{"user":"alice"}`, db.AddUser(ctx, alice, "alice-pw-123")
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.User(ctx, "alice"); err != nil {
			t.Error(err)
		}
		if rows := adminRows(t, db); len(rows) != 1 || rows[0].User != "alice" || rows[0].Actor != "root" {
			t.Errorf("admin rows = %+v, want alice's add by root", rows)
		}
	})
}
