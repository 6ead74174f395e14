package deploy

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/authrelay/authrelay/store"
)

// TestInit: a new directory holds the database with the accounts asked,
// secrets.json readable by its owner only, accounts.conf and a nats.conf
// the server runs, and the directory itself is private.
func TestInit(t *testing.T) {
	ctx := t.Context()
	l := Layout{Dir: filepath.Join(t.TempDir(), "a", "data")}
	if err := Init(ctx, l, InitOptions{Accounts: []string{"ORDERS", "BILLING"}, Listen: "127.0.0.1:4333", BcryptCost: testCost}); err != nil {
		t.Fatal(err)
	}
	if !l.Initialised() {
		t.Error("not Initialised after Init")
	}
	for name, want := range map[string]os.FileMode{SecretsFile: 0o600, ServerConf: 0o644, AccountsConf: 0o644} {
		fi, err := os.Stat(l.Path(name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s mode %#o, want %#o", name, got, want)
		}
	}
	fi, err := os.Stat(l.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o700 {
		t.Errorf("directory mode %#o, want 0700", got)
	}
	if _, err := l.LoadSecrets(); err != nil {
		t.Errorf("load the secrets init wrote: %v", err)
	}

	opts, err := server.ProcessConfigFile(l.Path(ServerConf))
	if err != nil {
		t.Fatalf("nats-server rejects the config init wrote: %v", err)
	}
	if opts.Port != 4333 {
		t.Errorf("listen port %d, want 4333", opts.Port)
	}
	var names []string
	for _, a := range opts.Accounts {
		names = append(names, a.Name)
	}
	slices.Sort(names)
	if want := []string{AuthAccount, "BILLING", "ORDERS", SystemAccount}; !slices.Equal(names, want) {
		t.Errorf("server accounts = %q, want %q", names, want)
	}

	db, err := l.OpenDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	list, err := db.AccountList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var stored []string
	for _, a := range list {
		stored = append(stored, a.Name)
	}
	slices.Sort(stored)
	if want := []string{"BILLING", "ORDERS"}; !slices.Equal(stored, want) {
		t.Errorf("database accounts = %q, want %q", stored, want)
	}
}

// snapshot returns the content and modification time of every file in
// dir, by name.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = fi.ModTime().Format(time.RFC3339Nano) + " " + fi.Mode().String() + "\n" + string(b)
	}
	return out
}

// TestInitRefusesExisting: init never touches a directory that holds any
// of its files, whole or a single leftover: it names the file, and every
// file stays as it was, with nothing added.
func TestInitRefusesExisting(t *testing.T) {
	ctx := t.Context()
	l := initDir(t)
	before := snapshot(t, l.Dir)
	err := Init(ctx, l, InitOptions{Accounts: []string{"OTHER"}, Listen: DefaultListen, BcryptCost: testCost})
	if err == nil || !strings.Contains(err.Error(), "init never overwrites an existing directory's keys or users") {
		t.Fatalf("init of an initialised directory: err = %v, want a refusal", err)
	}
	if errors.Is(err, ErrInvalid) {
		t.Errorf("refusal is ErrInvalid: the directory, not the arguments, is in the way")
	}
	after := snapshot(t, l.Dir)
	if len(after) != len(before) {
		t.Errorf("files before %d, after %d", len(before), len(after))
	}
	for name, b := range before {
		if after[name] != b {
			t.Errorf("%s changed by a refused init", name)
		}
	}

	for _, name := range []string{SecretsFile, ServerConf, AccountsConf, DatabaseFile} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, name), []byte("kept\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			err := Init(ctx, Layout{Dir: dir}, InitOptions{Listen: DefaultListen, BcryptCost: testCost})
			if want := dir + " already holds " + name; err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("err = %v, want %q", err, want)
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 {
				t.Errorf("refused init left %d files, want only %s", len(entries), name)
			}
			if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(b) != "kept\n" {
				t.Errorf("%s changed: %q, %v", name, b, err)
			}
		})
	}
}

// TestInitBadOptions: bad arguments are refused as ErrInvalid before any
// file or directory is made.
func TestInitBadOptions(t *testing.T) {
	for _, c := range []struct {
		name string
		o    InitOptions
		want string
	}{
		{"no listen", InitOptions{}, `--listen "": want HOST:PORT`},
		{"any port", InitOptions{Listen: "127.0.0.1:0"}, "port must be a number from 1 to 65535"},
		{"reserved account", InitOptions{Listen: DefaultListen, Accounts: []string{"APP", SystemAccount}}, `account "SYS" is reserved for authrelay's own use`},
		{"callout account", InitOptions{Listen: DefaultListen, Accounts: []string{AuthAccount}}, `account "AUTH" is reserved for authrelay's own use`},
		{"twice", InitOptions{Listen: DefaultListen, Accounts: []string{"APP", "APP"}}, `account "APP" given twice`},
		{"bad name", InitOptions{Listen: DefaultListen, Accounts: []string{"A B"}}, "account"},
	} {
		dir := filepath.Join(t.TempDir(), "data")
		err := Init(t.Context(), Layout{Dir: dir}, c.o)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want ErrInvalid with %q", c.name, err, c.want)
		}
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: the directory was created: %v", c.name, err)
		}
	}
}

// TestInitNoAccounts: a directory without application accounts is valid:
// the server runs its config and the database has none.
func TestInitNoAccounts(t *testing.T) {
	l := Layout{Dir: t.TempDir()}
	if err := Init(t.Context(), l, InitOptions{Listen: DefaultListen, BcryptCost: testCost}); err != nil {
		t.Fatal(err)
	}
	if _, err := server.ProcessConfigFile(l.Path(ServerConf)); err != nil {
		t.Errorf("nats-server rejects the config: %v", err)
	}
	db, err := store.OpenExisting(t.Context(), l.Path(DatabaseFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if list, err := db.AccountList(t.Context()); err != nil || len(list) != 0 {
		t.Errorf("accounts = %v, %v; want none", list, err)
	}
}

// TestValidateListen: HOST:PORT with a host and a port in range; port 0
// only where any free port is allowed.
func TestValidateListen(t *testing.T) {
	for _, c := range []struct {
		listen  string
		anyPort bool
		want    string // empty: accepted
	}{
		{"127.0.0.1:4222", false, ""},
		{"0.0.0.0:1", false, ""},
		{"[::1]:65535", false, ""},
		{"localhost:4222", false, ""},
		{"127.0.0.1:0", true, ""},
		{"127.0.0.1:0", false, `--listen "127.0.0.1:0": port must be a number from 1 to 65535`},
		{"127.0.0.1:65536", true, "port must be a number from 1 to 65535"},
		{"127.0.0.1:-1", true, "port must be a number from 1 to 65535"},
		{"127.0.0.1:nats", false, "port must be a number from 1 to 65535"},
		{":4222", false, `--listen ":4222": give a host, such as 127.0.0.1 or 0.0.0.0`},
		{"127.0.0.1", false, `--listen "127.0.0.1": want HOST:PORT, such as 127.0.0.1:4222`},
		{"", true, "want HOST:PORT"},
	} {
		err := ValidateListen(c.listen, c.anyPort)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%q (any port %v): %v, want accepted", c.listen, c.anyPort, err)
		case c.want != "" && (!errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%q (any port %v): err = %v, want ErrInvalid with %q", c.listen, c.anyPort, err, c.want)
		}
	}
}
