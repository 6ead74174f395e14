package deploy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/authrelay/authrelay/store"
)

// TestLoadSecretsMode: secrets.json holds the signing seeds, so a file
// the group or others can read is refused with the chmod that fixes it;
// the owner's own read and write bits are accepted.
func TestLoadSecretsMode(t *testing.T) {
	l := initDir(t)
	path := l.Path(SecretsFile)
	for _, c := range []struct {
		mode os.FileMode
		ok   bool
	}{
		{0o600, true},
		{0o400, true},
		{0o640, false},
		{0o604, false},
		{0o644, false},
		{0o660, false},
		{0o602, false},
	} {
		if err := os.Chmod(path, c.mode); err != nil {
			t.Fatal(err)
		}
		s, err := l.LoadSecrets()
		if c.ok {
			if err != nil || s.IssuerSeed == "" {
				t.Errorf("mode %#o: %v, want the secrets", c.mode, err)
			}
			continue
		}
		want := fmt.Sprintf("%s has mode %#o: it holds signing seeds and must be readable by its owner only; run 'chmod 600 %s'", path, c.mode, path)
		if err == nil || err.Error() != want {
			t.Errorf("mode %#o: err = %v, want %q", c.mode, err, want)
		}
		if s != (Secrets{}) {
			t.Errorf("mode %#o: secrets returned with the refusal", c.mode)
		}
	}
}

// TestLoadSecretsContent: a missing file says to run init, a file that is
// not JSON or lacks a seed is refused, and an older file without
// relay_user gets the fixed relay user.
func TestLoadSecretsContent(t *testing.T) {
	l := initDir(t)
	path := l.Path(SecretsFile)
	good, err := l.LoadSecrets()
	if err != nil {
		t.Fatal(err)
	}
	if good.RelayUser != RelayUser || good.AdminUser != AdminUser || good.RelayPassword == "" || good.AdminPassword == "" || good.XKeySeed == "" {
		t.Errorf("secrets of a new directory are incomplete: relay user %q, admin user %q", good.RelayUser, good.AdminUser)
	}
	write := func(v any) {
		t.Helper()
		var b []byte
		if s, ok := v.(string); ok {
			b = []byte(s)
		} else if b, err = json.Marshal(v); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	noRelayUser := good
	noRelayUser.RelayUser = ""
	write(noRelayUser)
	if s, err := l.LoadSecrets(); err != nil || s.RelayUser != RelayUser {
		t.Errorf("no relay_user: %q, %v; want %q", s.RelayUser, err, RelayUser)
	}

	for _, c := range []struct {
		name string
		file any
		want string
	}{
		{"not JSON", "{", "is not valid JSON"},
		{"no issuer seed", func() Secrets { s := good; s.IssuerSeed = ""; return s }(), "lacks issuer_seed, xkey_seed or relay_password"},
		{"no xkey seed", func() Secrets { s := good; s.XKeySeed = ""; return s }(), "lacks issuer_seed, xkey_seed or relay_password"},
		{"no relay password", func() Secrets { s := good; s.RelayPassword = ""; return s }(), "lacks issuer_seed, xkey_seed or relay_password"},
	} {
		write(c.file)
		_, err := l.LoadSecrets()
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: err = %v, want %q naming %s", c.name, err, c.want, path)
		}
	}

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	_, err = l.LoadSecrets()
	if want := "run 'authrelay init --dir " + l.Dir + "' first"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("no secrets.json: err = %v, want %q", err, want)
	}
	if l.Initialised() {
		t.Error("Initialised without secrets.json")
	}
}

// TestNewSecretsFresh: every directory gets its own keys and passwords.
func TestNewSecretsFresh(t *testing.T) {
	a, err := NewSecrets()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewSecrets()
	if err != nil {
		t.Fatal(err)
	}
	if a.IssuerSeed == b.IssuerSeed || a.XKeySeed == b.XKeySeed || a.RelayPassword == b.RelayPassword || a.AdminPassword == b.AdminPassword || a.RelayPassword == a.AdminPassword {
		t.Error("two NewSecrets share a key or a password")
	}
	for _, p := range []string{a.RelayPassword, a.AdminPassword, RandomPassword()} {
		if len(p) != 64 || strings.Trim(p, "0123456789abcdef") != "" {
			t.Errorf("password %d bytes, not 64 hex digits", len(p))
		}
	}
}

// TestWriteFileAtomic: the file gets the data and the mode asked, an
// existing file is replaced whole, and no temporary file is left behind.
func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.conf")
	for i, c := range []struct {
		data string
		perm os.FileMode
	}{
		{"first version, longer than the second\n", 0o644},
		{"second\n", 0o600},
	} {
		if err := WriteFileAtomic(path, []byte(c.data), c.perm); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != c.data {
			t.Errorf("write %d: file holds %q, want %q", i, b, c.data)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != c.perm {
			t.Errorf("write %d: mode %#o, want %#o", i, fi.Mode().Perm(), c.perm)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %q, want only f.conf", names)
	}
	if err := WriteFileAtomic(filepath.Join(dir, "missing", "f"), []byte("x"), 0o644); err == nil {
		t.Error("write into a missing directory succeeded")
	}
}

// TestOpenDatabase: an initialised directory's database opens and refuses
// the reserved accounts of nats.conf; a directory without keys is not an
// authrelay directory; one with keys but no database is refused with what
// to do, and no empty database is created in its place.
func TestOpenDatabase(t *testing.T) {
	ctx := t.Context()
	l := initDir(t)
	db, err := l.OpenDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Account(ctx, "APP"); err != nil {
		t.Errorf("account APP of init: %v", err)
	}
	for _, acct := range []string{AuthAccount, SystemAccount} {
		if err := db.AddAccount(ctx, acct); !errors.Is(err, store.ErrReservedAccount) {
			t.Errorf("add account %s: err = %v, want store.ErrReservedAccount", acct, err)
		}
	}
	if err := db.AddAccount(ctx, "ORDERS"); err != nil {
		t.Errorf("add account ORDERS: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// Reads need no readable nats.conf; writes do.
	editConf(t, l, ServerConf, func(s string) string { return s + "\nlisten: {{{\n" })
	db, err = l.OpenDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.AccountList(ctx); err != nil {
		t.Errorf("list accounts with a broken nats.conf: %v", err)
	}
	if err := db.AddAccount(ctx, "BILLING"); err == nil || !strings.Contains(err.Error(), "read the callout and system accounts") {
		t.Errorf("add account with a broken nats.conf: err = %v, want the config error", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	empty := Layout{Dir: t.TempDir()}
	_, err = empty.OpenDatabase(ctx)
	if want := fmt.Sprintf("%s is not an authrelay directory: run 'authrelay init --dir %s' first, or pass the right --dir", empty.Dir, empty.Dir); err == nil || err.Error() != want {
		t.Errorf("uninitialised: err = %v, want %q", err, want)
	}

	if err := os.Remove(l.Path(DatabaseFile)); err != nil {
		t.Fatal(err)
	}
	_, err = l.OpenDatabase(ctx)
	if !errors.Is(err, store.ErrNoDatabase) {
		t.Errorf("missing database: err = %v, want store.ErrNoDatabase", err)
	}
	for _, want := range []string{
		l.Dir + " has authrelay's keys (secrets.json) but no user database: ",
		"Nothing was created. Restore the latest backup with 'authrelay restore FILE --dir " + l.Dir + "' ",
		"or, to start over with new keys and no users, move " + l.Dir + " aside and run 'authrelay init --dir " + l.Dir + "'",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing database: err = %v, want it to contain %q", err, want)
		}
	}
	if _, err := os.Stat(l.Path(DatabaseFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a database was created in place of the missing one: %v", err)
	}
}
