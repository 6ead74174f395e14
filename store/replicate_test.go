package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authrelay/authrelay/accounts"
)

// Every table of the schema is in tables, replicated or local with a
// reason, and a replicated table's key is its primary key: a migration that
// adds a table or changes a key must decide how cluster mode treats it.
func TestReplicationCoversEveryTable(t *testing.T) {
	db, _ := newTestDB(t)
	ctx := t.Context()
	rows, err := db.sql.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	var schema []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		schema = append(schema, n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	listed := map[string]tableSpec{}
	for _, spec := range tables {
		if _, dup := listed[spec.name]; dup {
			t.Errorf("table %s is listed twice", spec.name)
		}
		listed[spec.name] = spec
		if !spec.replicated && spec.why == "" {
			t.Errorf("local table %s says not why it is local", spec.name)
		}
	}
	for _, name := range schema {
		spec, ok := listed[name]
		if !ok {
			t.Errorf("table %s of the schema is not in store.tables: decide whether cluster mode replicates it", name)
			continue
		}
		if !spec.replicated {
			continue
		}
		var pk []string
		info, err := db.sql.QueryContext(ctx, `SELECT name FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk`, name)
		if err != nil {
			t.Fatal(err)
		}
		for info.Next() {
			var c string
			if err := info.Scan(&c); err != nil {
				t.Fatal(err)
			}
			pk = append(pk, c)
		}
		info.Close()
		want := spec.key
		if len(want) == 0 {
			want = []string{"id"} // an append-only table: its rowid
		}
		if !slices.Equal(pk, want) {
			t.Errorf("table %s: primary key %v, store.tables says %v", name, pk, want)
		}
	}
	for name := range listed {
		if !slices.Contains(schema, name) {
			t.Errorf("store.tables lists %s, which the schema does not have", name)
		}
	}
}

// sliceLog is a cluster log in memory for the store's own tests; the
// cluster package tests the store against JetStream.
type sliceLog struct {
	mu      sync.Mutex
	entries [][]byte
	fail    error
}

func (l *sliceLog) Append(_ context.Context, after uint64, parts ...[]byte) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail != nil {
		return 0, l.fail
	}
	if after != uint64(len(l.entries)) {
		return 0, fmt.Errorf("append after %d, the log ends at %d: %w", after, len(l.entries), ErrBehind)
	}
	l.entries = append(l.entries, parts...)
	return uint64(len(l.entries)), nil
}

// catchUp applies every entry of l to db.
func (l *sliceLog) catchUp(db *DB) func(context.Context) error {
	return func(ctx context.Context) error {
		l.mu.Lock()
		entries := slices.Clone(l.entries)
		l.mu.Unlock()
		for i, e := range entries {
			if err := db.Apply(ctx, uint64(i+1), e); err != nil {
				return err
			}
		}
		return nil
	}
}

func clusterNode(t *testing.T, l *sliceLog) *DB {
	t.Helper()
	db, _ := newTestDB(t)
	db.Replicate(l, l.catchUp(db))
	return db
}

func digest(t *testing.T, db *DB) string {
	t.Helper()
	d, err := db.StateDigest(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func admin(t *testing.T, db *DB, action string, fn func(ctx context.Context) error) {
	t.Helper()
	if err := db.Admin(t.Context(), "root", action, func(ctx context.Context) (string, error) {
		return `{"what":"` + action + `"}`, fn(ctx)
	}); err != nil {
		t.Fatalf("%s: %v", action, err)
	}
}

// The changes admin commands make reach another copy row for row, with the
// derived tables (change feed, user versions) filled there by its triggers.
func TestReplicationAppliesAdminChanges(t *testing.T) {
	ctx := t.Context()
	log := &sliceLog{}
	a, b := clusterNode(t, log), clusterNode(t, log)
	sync := func() {
		t.Helper()
		if err := log.catchUp(b)(ctx); err != nil {
			t.Fatal(err)
		}
		if err := log.catchUp(a)(ctx); err != nil {
			t.Fatal(err)
		}
		if da, db := digest(t, a), digest(t, b); da != db {
			t.Fatalf("digests differ after catching up: %s, %s", da, db)
		}
	}
	admin(t, a, "account add", func(ctx context.Context) error { return a.AddAccount(ctx, "APP") })
	admin(t, a, "role add", func(ctx context.Context) error {
		if err := a.AddRole(ctx, accounts.Role{Name: "r1"}); err != nil {
			return err
		}
		return a.AddRole(ctx, accounts.Role{Name: "r2"})
	})
	admin(t, a, "user add", func(ctx context.Context) error {
		return a.AddUser(ctx, accounts.User{Name: "alice", Account: "APP", Roles: []string{"r1", "r2"}}, "alice-pw-123")
	})
	feed0, err := b.LastUserChange(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sync()
	if _, err := b.Authenticate(ctx, "alice", "alice-pw-123"); err != nil {
		t.Fatalf("alice on the other copy: %v", err)
	}
	feed1, err := b.LastUserChange(ctx)
	if err != nil || feed1 <= feed0 {
		t.Errorf("change feed of the other copy: %d, %v; want past %d", feed1, err, feed0)
	}
	v1, err := b.UserVersion(ctx, "alice")
	if err != nil || v1 == 0 {
		t.Fatalf("alice's version on the other copy: %d, %v", v1, err)
	}

	// The roles reordered: user_roles' UNIQUE (user, position) holds
	// only if the rows are replaced, not upserted one by one.
	admin(t, b, "user set", func(ctx context.Context) error {
		return b.UpdateUser(ctx, "alice", func(u *accounts.User) error { u.Roles = []string{"r2", "r1"}; return nil })
	})
	sync()
	got, err := a.User(ctx, "alice")
	if err != nil || !slices.Equal(got.Roles, []string{"r2", "r1"}) {
		t.Errorf("alice's roles on the first copy: %v, %v; want [r2 r1]", got.Roles, err)
	}

	// A password replaced with a grace: both passwords log in on the
	// other copy, and the change-feed row it wrote there is quiet.
	admin(t, a, "user passwd", func(ctx context.Context) error {
		return a.SetPasswordGrace(ctx, "alice", "alice-pw-456", time.Hour)
	})
	sync()
	for _, pw := range []string{"alice-pw-123", "alice-pw-456"} {
		if _, err := b.Authenticate(ctx, "alice", pw); err != nil {
			t.Errorf("alice with %s on the other copy: %v", pw, err)
		}
	}
	changes, err := b.UserChangesSince(ctx, feed1)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(changes); n == 0 || !changes[n-1].Quiet {
		t.Errorf("the other copy's change feed after a grace: %+v; want a quiet last row", changes)
	}
	v2, err := b.UserVersion(ctx, "alice")
	if err != nil || v2 == v1 {
		t.Errorf("alice's version on the other copy after the password change: %d, %v; want other than %d", v2, err, v1)
	}
	// Each copy ends the grace itself, at its end, closing what it
	// granted before the replacement (its own change-feed row).
	quietRow := changes[len(changes)-1].ID
	b.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if n, err := b.EndGraces(ctx); err != nil || n != 1 {
		t.Fatalf("EndGraces on the other copy: %d, %v; want 1", n, err)
	}
	b.Now = time.Now
	ends, err := b.UserChangesSince(ctx, quietRow)
	if err != nil || len(ends) != 1 || ends[0].BeforeID != quietRow {
		t.Errorf("the other copy's change feed after the grace: %+v, %v; want one row closing what was granted before row %d", ends, err, quietRow)
	}

	admin(t, b, "hash set", func(ctx context.Context) error { return b.SetMinPasswordLen(ctx, 12) })
	admin(t, b, "user rm", func(ctx context.Context) error { return b.RemoveUser(ctx, "alice") })
	sync()
	if _, err := a.User(ctx, "alice"); !errors.Is(err, ErrNotFound) {
		t.Errorf("alice on the first copy after rm: %v, want ErrNotFound", err)
	}
	if n, err := a.MinPasswordLen(ctx); err != nil || n != 12 {
		t.Errorf("minimum password length on the first copy: %d, %v; want 12", n, err)
	}
	if ra, rb := adminRows(t, a), adminRows(t, b); len(ra) != 7 || len(rb) != 7 {
		t.Errorf("admin audit rows: %d and %d, want 7 on each", len(ra), len(rb))
	}
}

// In cluster mode a write outside an admin change is refused (it would
// change this copy alone), and a failed append keeps nothing.
func TestReplicationRefusesLocalWrites(t *testing.T) {
	ctx := t.Context()
	log := &sliceLog{}
	a := clusterNode(t, log)
	if err := a.AddAccount(ctx, "APP"); !errors.Is(err, ErrClusterWrite) {
		t.Errorf("AddAccount outside Admin: %v, want ErrClusterWrite", err)
	}
	log.fail = errors.New("no quorum")
	err := a.Admin(ctx, "root", "account add", func(ctx context.Context) (string, error) {
		return "{}", a.AddAccount(ctx, "APP")
	})
	if err == nil || !strings.Contains(err.Error(), "no quorum") {
		t.Errorf("Admin with the log failing: %v, want its error", err)
	}
	if _, err := a.Account(ctx, "APP"); !errors.Is(err, ErrNotFound) {
		t.Errorf("APP after the failed append: %v, want ErrNotFound", err)
	}
	if rows := adminRows(t, a); len(rows) != 0 {
		t.Errorf("admin rows after the failed append: %v", rows)
	}
	if seq, err := a.AppliedSeq(ctx); err != nil || seq != 0 {
		t.Errorf("AppliedSeq = %d, %v; want 0", seq, err)
	}
}

// Bootstrap carries an existing database into an empty log, and a fresh
// copy that applies it gets the same rows.
func TestReplicationBootstrap(t *testing.T) {
	ctx := t.Context()
	single, _ := newTestDB(t)
	if err := single.AddAccount(ctx, "APP"); err != nil {
		t.Fatal(err)
	}
	// Enough users for several entries.
	hash, err := HashPassword("password-of-all", testParams)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2000 {
		u := accounts.User{Name: fmt.Sprintf("user%04d", i), Account: "APP"}
		if err := single.AddUserWithHash(ctx, u, hash); err != nil {
			t.Fatal(err)
		}
	}
	if err := single.AddUser(ctx, accounts.User{Name: "alice", Account: "APP"}, "alice-pw-123"); err != nil {
		t.Fatal(err)
	}
	if err := single.AuditAdmin(ctx, "root", "user import", `{"users":2001}`); err != nil {
		t.Fatal(err)
	}
	log := &sliceLog{}
	last, err := single.Bootstrap(ctx, log)
	if err != nil {
		t.Fatal(err)
	}
	if last < 2 {
		t.Errorf("Bootstrap wrote %d entries, want several below MaxEntrySize", last)
	}
	for i, e := range log.entries {
		if len(e) > MaxEntrySize {
			t.Errorf("entry %d is %d bytes, more than %d", i+1, len(e), MaxEntrySize)
		}
	}
	fresh := clusterNode(t, log)
	if err := log.catchUp(fresh)(ctx); err != nil {
		t.Fatal(err)
	}
	if d1, d2 := digest(t, single), digest(t, fresh); d1 != d2 {
		t.Errorf("digests differ: %s, %s", d1, d2)
	}
	for name, pw := range map[string]string{"alice": "alice-pw-123", "user1234": "password-of-all"} {
		if _, err := fresh.Authenticate(ctx, name, pw); err != nil {
			t.Errorf("%s on the fresh copy: %v", name, err)
		}
	}
	if _, err := single.Bootstrap(ctx, &sliceLog{}); err == nil {
		t.Error("a second Bootstrap succeeded")
	}
	// A database with rows of its own cannot join: it would keep them.
	other := clusterNode(t, &sliceLog{})
	other.repl = nil
	if err := other.AddAccount(ctx, "MINE"); err != nil {
		t.Fatal(err)
	}
	if err := log.catchUp(other)(ctx); err == nil || !strings.Contains(err.Error(), "rows of its own") {
		t.Errorf("a database with rows of its own applying the log: %v, want a refusal", err)
	}
	if _, err := other.Account(ctx, "APP"); !errors.Is(err, ErrNotFound) {
		t.Errorf("APP on the refused database: %v, want ErrNotFound", err)
	}

	// Each copy keeps its own count of login rehashes (the users triggers
	// tell a rehash by it): counts that differ between copies must not
	// hide a change from the triggers of the copy that applies it.
	for db, n := range map[*DB]int{single: 3, fresh: 5} {
		if _, err := db.sql.ExecContext(ctx, `UPDATE users SET rehashes = ? WHERE name = 'alice'`, n); err != nil {
			t.Fatal(err)
		}
	}
	single.Replicate(log, log.catchUp(single))
	v0, err := fresh.UserVersion(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	feed0, err := fresh.LastUserChange(ctx)
	if err != nil {
		t.Fatal(err)
	}
	admin(t, single, "user disable", func(ctx context.Context) error { return single.SetDisabled(ctx, "alice", true) })
	if err := log.catchUp(fresh)(ctx); err != nil {
		t.Fatal(err)
	}
	if v, err := fresh.UserVersion(ctx, "alice"); err != nil || v == v0 {
		t.Errorf("alice's version on the fresh copy after the disable: %d, %v; want other than %d", v, err, v0)
	}
	if changes, err := fresh.UserChangesSince(ctx, feed0); err != nil || len(changes) == 0 {
		t.Errorf("the fresh copy's change feed after the disable: %v, %v; want a row for alice", changes, err)
	}
}
