package main

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/deploy"
)

func TestInitLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	r := mustRun(t, "", "init", "--dir", dir, "--account", "ORDERS", "--account", "BILLING", "--listen", "127.0.0.1:4333")
	if !strings.Contains(r.stdout, "nats-server -c") {
		t.Errorf("init output does not say how to start the server:\n%s", r.stdout)
	}
	l := deploy.Layout{Dir: dir}

	fi, err := os.Stat(l.Path(deploy.SecretsFile))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fi.Mode().Perm(), os.FileMode(0o600); got != want {
		t.Errorf("secrets.json mode = %#o, want %#o", got, want)
	}
	sec, err := l.LoadSecrets()
	if err != nil {
		t.Fatal(err)
	}

	conf, err := os.ReadFile(l.Path(deploy.ServerConf))
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{sec.IssuerSeed, sec.XKeySeed, sec.RelayPassword, sec.AdminPassword} {
		if strings.Contains(string(conf), secret) {
			t.Errorf("nats.conf contains a secret from secrets.json")
		}
	}

	opts, err := server.ProcessConfigFile(l.Path(deploy.ServerConf))
	if err != nil {
		t.Fatalf("nats-server rejects the generated config: %v", err)
	}
	iss, err := accounts.NewIssuer(sec.IssuerSeed, nil)
	if err != nil {
		t.Fatal(err)
	}
	xk, err := accounts.NewXKey(sec.XKeySeed)
	if err != nil {
		t.Fatal(err)
	}
	issuer, xkey := iss.PublicKey(), xk.PublicKey()
	ac := opts.AuthCallout
	if ac == nil {
		t.Fatal("no auth_callout in the generated config")
	}
	if ac.Issuer != issuer || ac.XKey != xkey || ac.Account != deploy.AuthAccount {
		t.Errorf("auth_callout = %+v, want issuer %s, xkey %s, account %s", ac, issuer, xkey, deploy.AuthAccount)
	}
	if got, want := strings.Join(ac.AuthUsers, ","), deploy.RelayUser; got != want {
		t.Errorf("auth_users = %s, want %s", got, want)
	}
	if got, want := strings.Join(ac.AllowedAccounts, ","), deploy.AuthAccount; got != want {
		t.Errorf("allowed_accounts = %s, want %s", got, want)
	}
	if got, want := opts.SystemAccount, deploy.SystemAccount; got != want {
		t.Errorf("system_account = %s, want %s", got, want)
	}
	if opts.Host != "127.0.0.1" || opts.Port != 4333 {
		t.Errorf("listen = %s:%d, want 127.0.0.1:4333", opts.Host, opts.Port)
	}
	accts := map[string]bool{}
	for _, a := range opts.Accounts {
		accts[a.Name] = true
	}
	for _, want := range []string{"AUTH", "SYS", "ORDERS", "BILLING"} {
		if !accts[want] {
			t.Errorf("account %s missing from the generated config (have %v)", want, accts)
		}
	}
	for _, u := range opts.Users {
		if !strings.HasPrefix(u.Password, "$2a$") {
			t.Errorf("user %s has a password that is not a bcrypt hash", u.Username)
		}
		if u.Account.Name == "ORDERS" || u.Account.Name == "BILLING" {
			t.Errorf("static user %s in application account %s", u.Username, u.Account.Name)
		}
		if u.Account.Name == deploy.AuthAccount && u.Username != deploy.RelayUser {
			t.Errorf("user %s in the callout account", u.Username)
		}
	}

	t.Run("refuses to overwrite", func(t *testing.T) {
		before, _ := os.ReadFile(l.Path(deploy.SecretsFile))
		r := run(t, "", "init", "--dir", dir)
		if r.code != 1 || !strings.Contains(r.stderr, "never overwrites") {
			t.Errorf("second init: exit %d, stderr %q; want exit 1 and a refusal", r.code, r.stderr)
		}
		after, _ := os.ReadFile(l.Path(deploy.SecretsFile))
		if string(before) != string(after) {
			t.Error("second init changed secrets.json")
		}
	})
	t.Run("dir from the environment", func(t *testing.T) {
		envDir := filepath.Join(t.TempDir(), "env")
		m := &Main{Stdin: strings.NewReader(""), Stdout: &syncBuffer{}, Stderr: &syncBuffer{},
			Getenv: func(k string) string {
				if k == "AUTHRELAY_DIR" {
					return envDir
				}
				return ""
			}}
		if err := m.Run(t.Context(), []string{"init"}); err != nil {
			t.Fatal(err)
		}
		if !(deploy.Layout{Dir: envDir}).Initialised() {
			t.Error("init did not use $AUTHRELAY_DIR")
		}
	})
	t.Run("bad input writes nothing", func(t *testing.T) {
		for _, args := range [][]string{
			{"--account", "bad name"},
			{"--account", "AUTH"},
			{"--listen", "nowhere"},
		} {
			d := filepath.Join(t.TempDir(), "x")
			r := run(t, "", append([]string{"init", "--dir", d}, args...)...)
			if r.code != 2 {
				t.Errorf("init %v: exit %d, want 2 (stderr %q)", args, r.code, r.stderr)
			}
			if _, err := os.Stat(d); err == nil {
				entries, _ := os.ReadDir(d)
				if len(entries) > 0 {
					t.Errorf("init %v left files behind: %v", args, entries)
				}
			}
		}
	})
}

func TestUserCommands(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "", "init", "--dir", dir, "--account", "APP", "--account", "OPS")

	// Flags and the name in either order.
	mustRun(t, "pw-alice\n", "user", "add", "alice", "--dir", dir, "--account", "APP", "--password-stdin", "--pub", "orders.>")
	mustRun(t, "pw-bob-123\n", "user", "add", "--dir", dir, "--account", "OPS", "--password-stdin", "bob", "--sub", "ops.>")

	list := func() []userView {
		t.Helper()
		r := mustRun(t, "", "user", "list", "--dir", dir, "--json")
		var v []userView
		if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
			t.Fatalf("user list --json: %v\n%s", err, r.stdout)
		}
		return v
	}
	users := list()
	if len(users) != 2 || users[0].Name != "alice" || users[1].Name != "bob" || users[1].Account != "OPS" {
		t.Fatalf("user list = %+v", users)
	}
	if got := users[0].Pub.Allow; len(got) != 1 || got[0] != "orders.>" {
		t.Errorf("alice pub allow = %v", got)
	}

	r := mustRun(t, "", "user", "show", "alice", "--dir", dir, "--json")
	if strings.Contains(r.stdout, "$argon2id$") || strings.Contains(r.stdout, "$2a$") {
		t.Errorf("user show prints a hash:\n%s", r.stdout)
	}
	var shown map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &shown); err != nil {
		t.Fatal(err)
	}
	if shown["hash_scheme"] != "argon2id" {
		t.Errorf("hash_scheme = %v, want argon2id", shown["hash_scheme"])
	}
	r = mustRun(t, "", "user", "list", "--dir", dir)
	if !strings.Contains(r.stdout, "NAME") || !strings.Contains(r.stdout, "alice") {
		t.Errorf("user list table:\n%s", r.stdout)
	}

	r = mustRun(t, "", "user", "add", "gen", "--dir", dir, "--account", "APP", "--generate-password")
	if !strings.Contains(r.stdout, "password: ") {
		t.Errorf("--generate-password did not print the password:\n%s", r.stdout)
	}

	for _, tc := range []struct {
		name     string
		stdin    string
		args     []string
		code     int
		contains string
	}{
		{"duplicate user", "a-valid-pass-1\n", []string{"user", "add", "alice", "--account", "APP", "--password-stdin"}, 1, "already exists"},
		{"unknown account", "a-valid-pass-1\n", []string{"user", "add", "dave", "--account", "NOPE", "--password-stdin"}, 1, "APP, OPS"},
		{"no account with two", "x\n", []string{"user", "add", "dave", "--password-stdin"}, 2, "--account"},
		{"missing user", "", []string{"user", "disable", "zed"}, 1, "not found"},
		{"missing user passwd", "x\n", []string{"user", "passwd", "zed", "--password-stdin"}, 1, "not found"},
		{"bad name", "x\n", []string{"user", "add", "bad name", "--account", "APP", "--password-stdin"}, 2, "whitespace"},
		{"bad subject", "x\n", []string{"user", "add", "dave", "--account", "APP", "--password-stdin", "--pub", "a..b"}, 2, "empty token"},
		{"no password source", "", []string{"user", "add", "dave", "--account", "APP"}, 2, "--password-stdin"},
		{"empty stdin", "", []string{"user", "add", "dave", "--account", "APP", "--password-stdin"}, 1, "no password"},
		{"two names", "", []string{"user", "rm", "a", "b"}, 2, "one NAME"},
		{"unknown flag", "", []string{"user", "list", "--nope"}, 2, "nope"},
		{"unknown subcommand", "", []string{"user", "frob"}, 2, "frob"},
		{"not initialised", "", []string{"user", "list", "--dir", filepath.Join(dir, "missing")}, 1, "authrelay init"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if !strings.Contains(strings.Join(args, " "), "--dir") {
				args = append(args, "--dir", dir)
			}
			r := run(t, tc.stdin, args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.contains) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", r.code, r.stderr, tc.code, tc.contains)
			}
			if got := list(); len(got) != 3 {
				t.Errorf("after a failed command there are %d users, want 3", len(got))
			}
		})
	}
}

func TestServeRefusesReadableSecrets(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "", "init", "--dir", dir)
	path := deploy.Layout{Dir: dir}.Path(deploy.SecretsFile)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	r := run(t, "", "serve", "--embedded", "--dir", dir, "--listen", "127.0.0.1:0")
	if r.code != 1 || !strings.Contains(r.stderr, "chmod 600") {
		t.Errorf("serve with secrets.json 0644: exit %d, stderr %q; want exit 1 and the chmod to run", r.code, r.stderr)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var sec deploy.Secrets
	if err := json.Unmarshal(b, &sec); err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{sec.IssuerSeed, sec.XKeySeed, sec.RelayPassword, sec.AdminPassword} {
		if strings.Contains(r.stderr+r.stdout, secret) {
			t.Errorf("serve's refusal prints a secret: %q", r.stderr)
		}
	}
}

// TestFlagOnlyCommandsRefuseArguments checks that every command taking flags
// only names itself and the stray argument, exits 2 and writes nothing.
func TestFlagOnlyCommandsRefuseArguments(t *testing.T) {
	for _, cmd := range [][]string{
		{"init"}, {"serve"}, {"bench"}, {"audit"}, {"export"},
		{"user", "list"}, {"user", "lockouts"}, {"role", "list"}, {"account", "list"},
		{"hash", "show"}, {"hash", "set"}, {"hash", "calibrate"},
	} {
		name := strings.Join(cmd, " ")
		t.Run(name, func(t *testing.T) {
			d := filepath.Join(t.TempDir(), "x")
			args := append(cmd, "stray")
			if name != "bench" && name != "hash calibrate" { // the two without --dir
				args = append(args, "--dir", d)
			}
			r := run(t, "", args...)
			want := name + ` takes no arguments, got ["stray"]`
			if r.code != 2 || !strings.Contains(r.stderr, want) {
				t.Errorf("exit %d, stderr %q; want exit 2 and %q", r.code, r.stderr, want)
			}
			if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s with a stray argument left %s behind (stat: %v)", name, d, err)
			}
		})
	}
}
