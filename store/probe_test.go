package store

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/authrelay/authrelay/accounts"
)

// probeSeen is everything a probe must leave alone: the generation, the
// user versions and their sequence, the change feed and the audit trail.
func probeSeen(t *testing.T, db *DB) string {
	t.Helper()
	var s string
	err := db.sql.QueryRowContext(t.Context(), `SELECT
		(SELECT n FROM generation) || '/' ||
		(SELECT count(*) || ':' || coalesce(sum(v), 0) FROM user_versions) || '/' ||
		(SELECT n FROM user_version_seq) || '/' ||
		(SELECT count(*) || ':' || coalesce(max(id), 0) FROM user_changes) || '/' ||
		(SELECT count(*) FROM audit)`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestWriteCheckFullDisk fills the disk under a database nobody writes
// to: the write check, probing again once its interval has passed, fails
// with SQLite's "database or disk is full", and passes again by itself
// once the disk has room. Within the interval it answers from the last
// probe without writing. The probes bump no generation or user version,
// record no change and leave no audit row.
func TestWriteCheckFullDisk(t *testing.T) {
	ctx := t.Context()
	dir := smallDisk(t, 4<<20)
	db := openTest(t, filepath.Join(dir, "authrelay.db"))
	if err := db.AddAccount(ctx, "APP"); err != nil {
		t.Fatal(err)
	}
	if err := db.AddUser(ctx, accounts.User{Name: "bob", Account: "APP"}, "pw-bob"); err != nil {
		t.Fatal(err)
	}
	before := probeSeen(t, db)

	c := NewWriteCheck(db, time.Minute)
	now := time.Now()
	c.now = func() time.Time { return now }
	if err := c.Health(ctx); err != nil {
		t.Fatalf("Health before the fault = %v, want nil", err)
	}
	free := fillDisk(t, db, dir)
	if err := c.Health(ctx); err != nil {
		t.Errorf("Health within the interval = %v, want the last probe's nil", err)
	}
	now = now.Add(time.Minute)
	err := c.Health(ctx)
	if err == nil || !strings.Contains(err.Error(), "database or disk is full") {
		t.Fatalf("Health on a full disk = %v, want SQLite's full disk error", err)
	}
	free()
	if got := c.Health(ctx); got == nil || got.Error() != err.Error() {
		t.Errorf("Health within the interval after the fault = %v, want the last probe's %v", got, err)
	}
	now = now.Add(time.Minute)
	if err := c.Health(ctx); err != nil {
		t.Errorf("Health once the disk has room = %v, want nil", err)
	}
	if after := probeSeen(t, db); after != before {
		t.Errorf("generation/user versions/sequence/changes/audit = %s after the probes, want %s as before", after, before)
	}
	var at string
	if err := db.sql.QueryRowContext(ctx, `SELECT at FROM write_probe`).Scan(&at); err != nil || at == "" {
		t.Errorf("write_probe.at = %q, %v; want the last probe's time", at, err)
	}
}

// TestWriteCheckReadOnly probes a database SQLite refuses to write
// (query_only on every connection of the pool, as for a read-only file):
// the check fails with "attempt to write a readonly database" and passes
// again once writes are allowed.
func TestWriteCheckReadOnly(t *testing.T) {
	ctx := t.Context()
	db, _ := newTestDB(t)
	const conns = 4
	db.sql.SetMaxOpenConns(conns)
	set := func(on string) {
		t.Helper()
		var held []interface{ Close() error }
		for range conns {
			conn, err := db.sql.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			held = append(held, conn)
			if _, err := conn.ExecContext(ctx, `PRAGMA query_only = `+on); err != nil {
				t.Fatal(err)
			}
		}
		for _, conn := range held {
			if err := conn.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	c := NewWriteCheck(db, time.Second)
	now := time.Now()
	c.now = func() time.Time { return now }
	set("1")
	err := c.Health(ctx)
	if err == nil || !strings.Contains(err.Error(), "readonly") {
		t.Fatalf("Health on a read-only database = %v, want SQLite's read-only error", err)
	}
	set("0")
	now = now.Add(time.Second)
	if err := c.Health(ctx); err != nil {
		t.Errorf("Health once writable again = %v, want nil", err)
	}
}
