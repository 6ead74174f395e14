package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// schemaTestDB creates a store at the latest schema with one account, sets
// its user_version to v, and returns its path.
func schemaTestDB(t *testing.T, v int) string {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "authrelay.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.AddAccount(ctx, "APP"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.sql.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v)); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLatestSchemaVersion(t *testing.T) {
	ctx := context.Background()
	latest, err := LatestSchemaVersion()
	if err != nil {
		t.Fatal(err)
	}
	files, err := os.ReadDir("migrations")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f.Name(), ".sql") {
			n++
		}
	}
	if latest != n || latest == 0 {
		t.Errorf("LatestSchemaVersion = %d, want %d (the migrations)", latest, n)
	}
	db, err := Open(ctx, filepath.Join(t.TempDir(), "authrelay.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if v, err := db.SchemaVersion(ctx); err != nil || v != latest {
		t.Errorf("SchemaVersion of a new store = %d, %v; want %d", v, err, latest)
	}
}

func TestOpenReadOnly(t *testing.T) {
	ctx := context.Background()
	latest, err := LatestSchemaVersion()
	if err != nil {
		t.Fatal(err)
	}

	t.Run("current", func(t *testing.T) {
		path := schemaTestDB(t, latest)
		db, err := OpenReadOnly(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if v, err := db.SchemaVersion(ctx); err != nil || v != latest {
			t.Errorf("SchemaVersion = %d, %v; want %d", v, err, latest)
		}
		counts, err := db.AccountUserCounts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := counts["APP"]; !ok {
			t.Errorf("AccountUserCounts = %v, want APP", counts)
		}
		if err := db.AddAccount(ctx, "OTHER"); err == nil {
			t.Error("AddAccount through a read-only store succeeded")
		}
	})

	for _, tc := range []struct {
		name    string
		v       int
		tooNew  bool
		wantMsg string
	}{
		{"older", latest - 1, false, fmt.Sprintf("schema version %d, this authrelay's is %d", latest-1, latest)},
		{"newer", latest + 1, true, fmt.Sprintf("schema version %d, this authrelay knows up to %d", latest+1, latest)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := schemaTestDB(t, tc.v)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			db, err := OpenReadOnly(ctx, path)
			if err == nil {
				db.Close()
				t.Fatal("OpenReadOnly succeeded")
			}
			var sv *SchemaVersionError
			if !errors.As(err, &sv) || sv.Have != tc.v || sv.Want != latest {
				t.Errorf("error = %#v (%v), want a SchemaVersionError{Have: %d, Want: %d}", err, err, tc.v, latest)
			}
			if errors.Is(err, ErrSchemaTooNew) != tc.tooNew {
				t.Errorf("errors.Is(%v, ErrSchemaTooNew) = %v, want %v", err, !tc.tooNew, tc.tooNew)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q does not say %q", err, tc.wantMsg)
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, after) {
				t.Error("OpenReadOnly changed the database file")
			}
		})
	}

	t.Run("missing", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "authrelay.db")
		if _, err := OpenReadOnly(ctx, path); !errors.Is(err, ErrNoDatabase) {
			t.Errorf("error = %v, want ErrNoDatabase", err)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("OpenReadOnly left %s behind: %v", path, err)
		}
	})
}
