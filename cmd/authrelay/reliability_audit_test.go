package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/store"
)

// TestUserUnlockNeedsItsAuditRow locks bob out, then closes the audit table
// to admin rows (a trigger, standing in for a full disk): 'user unlock bob'
// fails saying why and lifts nothing, instead of lifting the lockout with
// no row. With the table open again it lifts it and writes its row.
func TestUserUnlockNeedsItsAuditRow(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	mustRun(t, "", "init", "--dir", dir)
	mustRun(t, "pw-123456\n", "user", "add", "bob", "--password-stdin", "--dir", dir)
	path := Layout{Dir: dir}.Path(databaseFile)

	db, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	p := accounts.DefaultLockoutPolicy
	g := db.Lockouts(p)
	now := time.Now()
	for range p.Threshold {
		if err := g.Failed(ctx, "bob", "192.0.2.7", now, accounts.FailedPassword); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	locked := func() bool {
		t.Helper()
		var list []map[string]any
		if err := json.Unmarshal([]byte(mustRun(t, "", "user", "lockouts", "--json", "--dir", dir).stdout), &list); err != nil {
			t.Fatal(err)
		}
		return len(list) > 0
	}
	if !locked() {
		t.Fatal("bob is not locked out after the threshold of failures")
	}

	raw, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`CREATE TRIGGER audit_closed BEFORE INSERT ON audit
		WHEN NEW.kind = 'admin' BEGIN SELECT RAISE(ABORT, 'audit closed'); END`); err != nil {
		t.Fatal(err)
	}
	if r := run(t, "", "user", "unlock", "bob", "--dir", dir); r.code == 0 || !strings.Contains(r.stderr, "audit closed") {
		t.Errorf("user unlock with the audit closed: exit %d, stderr %q; want a failure that says why", r.code, r.stderr)
	}
	if !locked() {
		t.Error("bob's lockout was lifted although the unlock was not audited")
	}

	if _, err := raw.Exec(`DROP TRIGGER audit_closed`); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "", "user", "unlock", "bob", "--dir", dir)
	if locked() {
		t.Error("bob is still locked out after user unlock")
	}
	var rows []auditView
	if err := json.Unmarshal([]byte(mustRun(t, "", "audit", "--dir", dir, "--kind", "admin", "--json").stdout), &rows); err != nil {
		t.Fatal(err)
	}
	var unlocks int
	for _, r := range rows {
		if r.Action == "user unlock" {
			unlocks++
		}
	}
	if unlocks != 1 {
		t.Errorf("user unlock rows = %d, want 1 (the one that lifted the lockout): %+v", unlocks, rows)
	}
}
