package deploy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/store"
)

// TestRestore: a backup replaces the database, the users and accounts
// are the backup's, accounts.conf follows them, and the audit trail of
// the restored database records who restored what; restoring again
// leaves accounts.conf as it is.
func TestRestore(t *testing.T) {
	l := initDir(t)
	ctx := t.Context()
	db, err := l.OpenDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	db.Params = store.Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32} // cheap, for the test
	if err := db.AddUser(ctx, accounts.User{Name: "alice", Account: "APP"}, "alice-pass-1"); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(t.TempDir(), "backup.db")
	if err := db.Backup(ctx, backup); err != nil {
		t.Fatal(err)
	}
	// After the backup: an account (in accounts.conf) and a user.
	if err := db.AddAccount(ctx, "ORDERS"); err != nil {
		t.Fatal(err)
	}
	if changed, err := l.WriteAccountsConf(ctx, db); err != nil || !changed {
		t.Fatalf("WriteAccountsConf after adding ORDERS: changed %v, %v", changed, err)
	}
	if err := db.AddUser(ctx, accounts.User{Name: "bob", Account: "ORDERS"}, "bob-pass-22"); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	r, err := l.Restore(ctx, backup, now, "ops")
	if err != nil {
		t.Fatal(err)
	}
	if !r.Replaced || r.Users != 1 || r.Accounts != 1 || len(r.Aside) == 0 || !r.AccountsConfChanged || r.AuditErr != nil {
		t.Errorf("Restore = %+v; want replaced, 1 user, 1 account, the old database aside, accounts.conf rewritten, audited", r)
	}
	for _, p := range r.Aside {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("moved-aside file %s: %v", p, err)
		}
	}
	conf, err := os.ReadFile(l.Path(AccountsConf))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(conf), "ORDERS") || !strings.Contains(string(conf), "APP") {
		t.Errorf("accounts.conf after the restore:\n%s\nwant APP and not ORDERS", conf)
	}
	db, err = l.OpenDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Authenticate(ctx, "alice", "alice-pass-1"); err != nil {
		t.Errorf("alice after the restore: %v", err)
	}
	if _, err := db.User(ctx, "bob"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("bob, added after the backup: %v, want ErrNotFound", err)
	}
	rows, err := db.Audit(ctx, store.AuditFilter{Kind: store.AuditAdmin})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(rows); n == 0 || rows[n-1].Action != "database restore" || rows[n-1].Actor != "ops" || !strings.Contains(rows[n-1].Detail, backup) {
		t.Errorf("audit rows %+v; want the restore by ops, from %s, last", rows, backup)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	r, err = l.Restore(ctx, backup, now.Add(time.Second), "ops")
	if err != nil || r.AccountsConfChanged {
		t.Errorf("second restore: %+v, %v; want accounts.conf unchanged", r, err)
	}
}

// TestRestoreRefuses: without secrets.json, or from a file that is not a
// backup, nothing changes and the error says so.
func TestRestoreRefuses(t *testing.T) {
	ctx := t.Context()
	bare := Layout{Dir: t.TempDir()}
	junk := filepath.Join(t.TempDir(), "junk.db")
	if err := os.WriteFile(junk, []byte("not sqlite"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := bare.Restore(ctx, junk, time.Now(), "ops")
	if err == nil || r.Replaced || !strings.Contains(err.Error(), SecretsFile) {
		t.Errorf("restore into a directory without keys: %+v, %v", r, err)
	}
	if _, err := os.Stat(bare.Path(DatabaseFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused restore left %s: %v", DatabaseFile, err)
	}

	l := initDir(t)
	before, err := os.ReadFile(l.Path(DatabaseFile))
	if err != nil {
		t.Fatal(err)
	}
	r, err = l.Restore(ctx, junk, time.Now(), "ops")
	if err == nil || r.Replaced || !strings.Contains(err.Error(), "nothing was changed") {
		t.Errorf("restore from a file that is not a backup: %+v, %v", r, err)
	}
	after, err := os.ReadFile(l.Path(DatabaseFile))
	if err != nil || string(after) != string(before) {
		t.Errorf("the database changed after a refused restore (%v)", err)
	}
	if m, err := filepath.Glob(l.Path(DatabaseFile) + ".replaced-*"); err != nil || len(m) != 0 {
		t.Errorf("a refused restore moved files aside: %v %v", m, err)
	}
}
