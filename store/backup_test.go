package store

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authrelay/authrelay/accounts"
)

func TestPasswordHashes(t *testing.T) {
	ctx := t.Context()
	empty, _ := newTestDB(t)
	got, err := empty.PasswordHashes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got == nil || len(got) != 0 {
		t.Errorf("PasswordHashes of an empty store = %#v, want an empty map", got)
	}

	db, _ := setup(t)
	const bc = "$2a$04$Q.CgCP2Sl9pkcTXEZHazaeMwPaAkSHk7AI51HkyMt5iJQQyUA4qxq"
	if err := db.AddUserWithHash(ctx, accounts.User{Name: "bob", Account: "APP"}, bc); err != nil {
		t.Fatal(err)
	}
	got, err = db.PasswordHashes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["bob"] != bc {
		t.Errorf("PasswordHashes = %q, want alice's and bob's %q", got, bc)
	}
	if ok, err := VerifyPassword(got["alice"], "pw-alice"); !ok || err != nil {
		t.Errorf("alice's hash does not verify her password: %v, %v", ok, err)
	}
	if scheme, _ := hashScheme(got["alice"]); scheme != SchemeArgon2id {
		t.Errorf("alice's hash scheme = %q, want %q", scheme, SchemeArgon2id)
	}
}

func TestBackup(t *testing.T) {
	ctx := t.Context()
	db, path := newTestDB(t)
	if err := db.AddAccountWithLimits(ctx, accounts.Account{Name: "APP", Limits: accounts.AccountLimits{MaxSubs: 7}}); err != nil {
		t.Fatal(err)
	}
	for _, r := range testRoles() {
		if err := db.AddRole(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	roles := []string{"writer", "reader"}
	migs, err := loadMigrations(migrationFS)
	if err != nil {
		t.Fatal(err)
	}

	// Another handle, as the CLI and the relay are two processes, adds
	// users one by one, each with its roles in the same transaction.
	writer := openTest(t, path)
	var (
		written atomic.Int64
		stop    = make(chan struct{})
		wg      sync.WaitGroup
	)
	userName := func(i int) string { return fmt.Sprintf("u%05d", i) }
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			name := userName(i)
			if err := writer.AddUser(ctx, accounts.User{Name: name, Account: "APP", Roles: roles}, "pw-"+name); err != nil {
				t.Errorf("add %s: %v", name, err)
				return
			}
			written.Store(int64(i + 1))
		}
	})
	defer func() {
		close(stop)
		wg.Wait()
	}()
	// Let the writer get going.
	for written.Load() < 3 && !t.Failed() {
		time.Sleep(time.Millisecond)
	}

	dir := t.TempDir()
	var firstStart, lastEnd int64
	for n := 0; n < 3 || (lastEnd == firstStart && n < 100); n++ {
		if t.Failed() {
			return
		}
		copyPath := filepath.Join(dir, fmt.Sprintf("backup %d?.db", n))
		before := written.Load()
		if n == 0 {
			firstStart = before
		}
		if err := db.Backup(ctx, copyPath); err != nil {
			t.Fatalf("Backup while another handle writes: %v", err)
		}
		after := written.Load()
		lastEnd = after

		fi, err := os.Stat(copyPath)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := fi.Mode().Perm(), os.FileMode(0o600); got != want {
			t.Errorf("backup file mode = %v, want %v", got, want)
		}
		cp := openTest(t, copyPath)
		if got, want := userVersion(t, cp), len(migs); got != want {
			t.Errorf("backup user_version = %d, want %d", got, want)
		}
		users, err := cp.Users(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// A committed state: the first k users, each with its roles.
		if k := int64(len(users)); k < before || k > after+1 {
			t.Errorf("backup %d has %d users, want between %d and %d", n, k, before, after+1)
		}
		for i, u := range users {
			if u.Name != userName(i) || !slices.Equal(u.Roles, roles) {
				t.Errorf("backup %d: user %d is %s with roles %q, want %s with %q", n, i, u.Name, u.Roles, userName(i), roles)
				break
			}
		}
		if _, err := cp.Authenticate(ctx, userName(0), "pw-"+userName(0)); err != nil {
			t.Errorf("backup %d: Authenticate: %v", n, err)
		}
		if a, err := cp.Account(ctx, "APP"); err != nil || a.Limits.MaxSubs != 7 {
			t.Errorf("backup %d: Account(APP) = %+v, %v; want its limits", n, a, err)
		}
		gotRoles, err := cp.Roles(ctx)
		if err != nil {
			t.Fatal(err)
		}
		wantRoles, err := db.Roles(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(gotRoles, wantRoles) {
			t.Errorf("backup %d: roles = %+v, want %+v", n, gotRoles, wantRoles)
		}
		cpHashes, err := cp.PasswordHashes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		hashes, err := db.PasswordHashes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for name, h := range cpHashes {
			if hashes[name] != h {
				t.Errorf("backup %d: hash of %s differs from the original", n, name)
				break
			}
		}
	}
	if lastEnd == firstStart {
		t.Errorf("no write committed while the backups ran (%d users throughout)", lastEnd)
	}
	t.Logf("users written during the backups: %d to %d", firstStart, lastEnd)
}

func TestBackupRefused(t *testing.T) {
	db, _ := setup(t)
	ctx := t.Context()
	dir := t.TempDir()

	t.Run("existing file", func(t *testing.T) {
		for name, content := range map[string]string{"full": "precious data", "empty": ""} {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			err := db.Backup(ctx, p)
			if err == nil || !strings.Contains(err.Error(), "already exists") || !strings.Contains(err.Error(), p) {
				t.Errorf("Backup to an existing %s file = %v, want an error naming it and saying it exists", name, err)
			}
			if got, err := os.ReadFile(p); err != nil || string(got) != content {
				t.Errorf("existing %s file after refused Backup: %q, %v; want it unchanged", name, got, err)
			}
		}
	})

	t.Run("existing directory", func(t *testing.T) {
		if err := db.Backup(ctx, dir); err == nil || !strings.Contains(err.Error(), "already exists") {
			t.Errorf("Backup onto a directory = %v, want already exists", err)
		}
	})

	t.Run("empty path", func(t *testing.T) {
		if err := db.Backup(ctx, ""); err == nil {
			t.Error("Backup to an empty path: no error")
		}
	})

	t.Run("missing directory", func(t *testing.T) {
		p := filepath.Join(dir, "nope", "backup.db")
		if err := db.Backup(ctx, p); err == nil {
			t.Error("Backup into a missing directory: no error")
		}
	})

	t.Run("failed backup leaves no file", func(t *testing.T) {
		closed, _ := newTestDB(t)
		closed.Close()
		p := filepath.Join(dir, "partial.db")
		if err := closed.Backup(ctx, p); err == nil {
			t.Fatal("Backup of a closed store: no error")
		}
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("file after failed Backup: %v, want none", err)
		}
	})
}
