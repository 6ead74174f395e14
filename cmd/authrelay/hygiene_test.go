package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/store"
	"golang.org/x/crypto/bcrypt"
)

// forgedName is a CONNECT username that, printed raw, would end the line,
// forge an allowed login by admin, and turn the terminal red.
const forgedName = "mallory\n2026-12-01T00:00:00Z  login  admin  APP  allowed\x1b[31m"

// TestAuditOutputEscapesClientNames logs in through the real embedded
// server with a forged username, then reads it back with 'authrelay audit':
// the text output keeps one line per row, with the name quoted and no raw
// ESC; --json is valid JSON that gives the name back byte for byte; the
// serve log keeps one record per line.
func TestAuditOutputEscapesClientNames(t *testing.T) {
	for _, e := range envs {
		t.Run(e.name, func(t *testing.T) {
			s := serveEmbedded(t, e.xkey)
			_, err := s.connect(forgedName, "wrong-pw")
			wantAuthViolation(t, err)
			s.stop() // flushes the audit writer

			r := mustRun(t, "", "audit", "--dir", s.dir, "--kind", "login")
			if strings.Contains(r.stdout, "\x1b") {
				t.Errorf("audit text holds a raw ESC:\n%s", r.stdout)
			}
			lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
			if len(lines) != 2 {
				t.Fatalf("audit text has %d lines, want a header and one row:\n%s", len(lines), r.stdout)
			}
			if !strings.Contains(lines[1], `"mallory\n2026-12-01T00:00:00Z  login  admin  APP  allowed\x1b[31m"`) {
				t.Errorf("audit row does not show the name quoted:\n%s", lines[1])
			}

			r = mustRun(t, "", "audit", "--dir", s.dir, "--kind", "login", "--json")
			var rows []auditView
			if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
				t.Fatalf("audit --json is not JSON: %v\n%s", err, r.stdout)
			}
			if len(rows) != 1 || rows[0].User != forgedName || rows[0].Reason != "bad_credentials" {
				t.Errorf("audit --json rows = %+v, want one bad_credentials row for %q", rows, forgedName)
			}

			// The log also holds serve's banner, lines of prose; the
			// forged text must only ever appear inside a record.
			for _, line := range strings.Split(s.log.String(), "\n") {
				if strings.Contains(line, "2026-12-01T00:00:00Z") && !strings.HasPrefix(line, "time=") {
					t.Errorf("serve log line %q does not start a record: a name forged a line", line)
				}
			}
			if strings.Contains(s.log.String(), "\x1b") {
				t.Errorf("serve log holds a raw ESC")
			}
		})
	}
}

// runFor is run with a deadline, for a command that would otherwise run
// until interrupted (serve): it fails the test if the command is still
// running after d.
func runFor(t *testing.T, d time.Duration, args ...string) result {
	t.Helper()
	var out, errOut syncBuffer
	m := &Main{
		Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut,
		Getenv: func(string) string { return "" }, Now: time.Now, BcryptCost: 4,
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	code := m.Exit(m.Run(ctx, args))
	if ctx.Err() != nil {
		t.Fatalf("authrelay %s still ran after %v, want it to refuse at once\n%s%s", strings.Join(args, " "), d, out.String(), errOut.String())
	}
	return result{code: code, stdout: out.String(), stderr: errOut.String()}
}

func TestHashPolicyBounds(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "", "init", "--dir", dir)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--memory", "4194304"}, "above the limit of 1048576 KiB"},
		{[]string{"--memory", "1048577"}, "above the limit of 1048576 KiB"},
		{[]string{"--time", "11"}, "above the limit of 10"},
		{[]string{"--memory", "8192", "--time", "1"}, "below OWASP's minimum"},
		{[]string{"--memory", "19456", "--time", "1"}, "use --time 2"},
		{[]string{"--threads", "17"}, "above the limit of 16 lanes"},
		{[]string{"--memory", "1048576", "--time", "3"}, "memory × time cost"},
	} {
		r := run(t, "", append([]string{"hash", "set", "--dir", dir}, tc.args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) || !strings.Contains(r.stderr, "use at most") && !strings.Contains(r.stderr, "lower --memory or --time") && !strings.Contains(r.stderr, "at this memory") {
			t.Errorf("hash set %v: exit %d, stderr %q; want 2 and %q with what to give instead", tc.args, r.code, r.stderr, tc.want)
		}
	}
	// Nothing was stored: the policy is still the default.
	if r := mustRun(t, "", "hash", "show", "--dir", dir); !strings.Contains(r.stdout, "m=19456 KiB") {
		t.Errorf("hash show after refused sets: %s", r.stdout)
	}
	// The largest allowed memory is accepted.
	mustRun(t, "", "hash", "set", "--dir", dir, "--memory", "1048576", "--time", "2")

	if r := run(t, "", "hash", "calibrate", "--memory", "2097152"); r.code != 2 || !strings.Contains(r.stderr, "1048576") {
		t.Errorf("hash calibrate --memory 2 GiB: exit %d, stderr %q; want 2 and the limit", r.code, r.stderr)
	}

	// At 1 GiB per hash, 8 hash workers would hold 8 GiB.
	r := runFor(t, 20*time.Second, "serve", "--embedded", "--dir", dir, "--listen", "127.0.0.1:0", "--hash-workers", "8")
	if r.code == 0 || !strings.Contains(r.stderr, "give --hash-workers 4 or less") {
		t.Errorf("serve with 8 hash workers at 1 GiB: exit %d, stderr %q; want a refusal that says --hash-workers 4", r.code, r.stderr)
	}

	// A policy beyond the bounds written into the database by hand is
	// refused when serve starts.
	db, err := sql.Open("sqlite3", "file:"+deploy.Layout{Dir: dir}.Path(deploy.DatabaseFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE settings SET value = '{"memory_kib":2097152,"time":1,"threads":1,"salt_len":16,"key_len":32}' WHERE key = 'argon2id'`); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	r = runFor(t, 20*time.Second, "serve", "--embedded", "--dir", dir, "--listen", "127.0.0.1:0", "--hash-workers", "1")
	if r.code == 0 || !strings.Contains(r.stderr, "the stored hash policy (argon2id m=2097152 KiB") || !strings.Contains(r.stderr, "authrelay hash set") {
		t.Errorf("serve with a 2 GiB stored policy: exit %d, stderr %q; want a refusal that names the policy and 'authrelay hash set'", r.code, r.stderr)
	}
	// hash set can still bring it back within the bounds.
	mustRun(t, "", "hash", "set", "--dir", dir, "--memory", "19456", "--time", "2")
}

// renameConfAccounts rewrites dir's nats.conf so that the callout account
// is CALLOUT and the system account OPS, and drops the xkey line unless
// xkey.
func renameConfAccounts(t *testing.T, dir string, xkey bool) {
	t.Helper()
	path := deploy.Layout{Dir: dir}.Path(deploy.ServerConf)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.NewReplacer(
		"system_account: SYS", "system_account: OPS", "  SYS: {", "  OPS: {",
		"  AUTH: {", "  CALLOUT: {", "account: AUTH", "account: CALLOUT", `allowed_accounts: [ "AUTH" ]`, `allowed_accounts: [ "CALLOUT" ]`,
	).Replace(string(b))
	if !strings.Contains(conf, "account: CALLOUT") || !strings.Contains(conf, "system_account: OPS") {
		t.Fatalf("nats.conf not renamed:\n%s", conf)
	}
	if !xkey {
		var kept []string
		for _, line := range strings.Split(conf, "\n") {
			if !strings.HasPrefix(strings.TrimSpace(line), "xkey:") {
				kept = append(kept, line)
			}
		}
		conf = strings.Join(kept, "\n")
	}
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestReservedAccountsComeFromNatsConf runs a directory whose nats.conf
// names its callout account CALLOUT and its system account OPS: the admin
// commands refuse those names, and a user that the database places in one
// anyway (written around the CLI) is refused by the relay with
// account_reserved, while a user of APP logs in.
func TestReservedAccountsComeFromNatsConf(t *testing.T) {
	for _, e := range envs {
		t.Run(e.name, func(t *testing.T) {
			dir := t.TempDir()
			mustRun(t, "", "init", "--dir", dir)
			cheapHashPolicy(t, dir)
			renameConfAccounts(t, dir, e.xkey)

			for _, acct := range []string{"CALLOUT", "OPS"} {
				if r := run(t, "", "account", "add", acct, "--dir", dir); r.code != 2 || !strings.Contains(r.stderr, "reserved") {
					t.Errorf("account add %s: exit %d, stderr %q; want 2 and reserved", acct, r.code, r.stderr)
				}
				if r := run(t, "pw-123456\n", "user", "add", "eve", "--account", acct, "--password-stdin", "--dir", dir); r.code != 2 || !strings.Contains(r.stderr, "reserved") {
					t.Errorf("user add --account %s: exit %d, stderr %q; want 2 and reserved", acct, r.code, r.stderr)
				}
			}
			mustRun(t, "pw-123456\n", "user", "add", "bob", "--account", "APP", "--password-stdin", "--dir", dir)
			if r := run(t, "", "user", "set", "bob", "--account", "CALLOUT", "--dir", dir); r.code != 2 || !strings.Contains(r.stderr, "reserved") {
				t.Errorf("user set --account CALLOUT: exit %d, stderr %q; want 2 and reserved", r.code, r.stderr)
			}

			// Around the CLI: the database puts eve in CALLOUT.
			db, err := store.Open(context.Background(), deploy.Layout{Dir: dir}.Path(deploy.DatabaseFile))
			if err != nil {
				t.Fatal(err)
			}
			db.Params = store.Argon2Params{Memory: 8192, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
			if err := db.AddAccount(context.Background(), "CALLOUT"); err != nil {
				t.Fatal(err)
			}
			if err := db.AddUser(context.Background(), accounts.User{Name: "eve", Account: "CALLOUT"}, "eve-pw-123"); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}

			s := serveOn(t, dir)
			nc, err := s.connect("bob", "pw-123456")
			if err != nil {
				t.Fatalf("bob of APP: %v", err)
			}
			nc.Close()
			_, err = s.connect("eve", "eve-pw-123")
			wantAuthViolation(t, err)
			s.stop()

			r := mustRun(t, "", "audit", "--dir", dir, "--user", "eve", "--kind", "login", "--json")
			var rows []auditView
			if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
				t.Fatal(err)
			}
			if len(rows) != 1 || rows[0].Reason != "account_reserved" {
				t.Errorf("eve's login rows = %+v, want one denied with account_reserved", rows)
			}
		})
	}
}

// TestAdminChangeNeedsItsAuditRow closes the audit table to admin rows (a
// trigger, standing in for a full disk or a broken table): user add,
// account add and hash set then fail and change nothing, accounts.conf
// included, instead of making the change without its row. A change that
// fails writes no row.
func TestAdminChangeNeedsItsAuditRow(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "", "init", "--dir", dir)
	mustRun(t, "pw-123456\n", "user", "add", "bob", "--password-stdin", "--dir", dir)
	// A failed change writes no row.
	if r := run(t, "pw-123456\n", "user", "add", "bob", "--password-stdin", "--dir", dir); r.code == 0 {
		t.Fatal("adding bob twice succeeded")
	}
	var adds []auditView
	if err := json.Unmarshal([]byte(mustRun(t, "", "audit", "--dir", dir, "--kind", "admin", "--json").stdout), &adds); err != nil {
		t.Fatal(err)
	}
	if len(adds) != 1 || adds[0].Action != "user add" {
		t.Errorf("admin rows = %+v, want only bob's first add", adds)
	}

	db, err := sql.Open("sqlite3", "file:"+deploy.Layout{Dir: dir}.Path(deploy.DatabaseFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TRIGGER audit_closed BEFORE INSERT ON audit
		WHEN NEW.kind = 'admin' BEGIN SELECT RAISE(ABORT, 'audit closed'); END`); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	conf0, err := os.ReadFile(deploy.Layout{Dir: dir}.Path(deploy.AccountsConf))
	if err != nil {
		t.Fatal(err)
	}

	if r := run(t, "pw-123456\n", "user", "add", "alice", "--password-stdin", "--dir", dir); r.code == 0 || !strings.Contains(r.stderr, "audit closed") {
		t.Errorf("user add with the audit closed: exit %d, stderr %q; want a failure that says why", r.code, r.stderr)
	}
	if r := run(t, "", "user", "show", "alice", "--dir", dir); r.code == 0 {
		t.Errorf("alice exists after her add failed to be audited:\n%s", r.stdout)
	}
	if r := run(t, "", "account", "add", "ORDERS", "--dir", dir); r.code == 0 {
		t.Error("account add with the audit closed succeeded")
	}
	if r := mustRun(t, "", "account", "list", "--dir", dir); strings.Contains(r.stdout, "ORDERS") {
		t.Errorf("ORDERS exists after its add failed to be audited:\n%s", r.stdout)
	}
	if conf, err := os.ReadFile(deploy.Layout{Dir: dir}.Path(deploy.AccountsConf)); err != nil || string(conf) != string(conf0) {
		t.Errorf("accounts.conf changed by a failed account add (%v):\n%s", err, conf)
	}
	if r := run(t, "", "user", "disable", "bob", "--dir", dir); r.code == 0 {
		t.Error("user disable with the audit closed succeeded")
	}
	if r := mustRun(t, "", "user", "show", "bob", "--dir", dir, "--json"); strings.Contains(r.stdout, `"disabled": true`) {
		t.Errorf("bob disabled although the change was not audited:\n%s", r.stdout)
	}
}

// TestImportWarnsOfBcryptTruncation imports a bcrypt user whose password is
// 80 bytes long, as nats-server accepted it (bcrypt hashed only its first
// 72 bytes), and one with a short password. import names both in one
// warning that says to reset the password; through the real server the
// short one logs in, the long one is refused as bad credentials, and after
// 'user passwd' the long one logs in with its new password.
func TestImportWarnsOfBcryptTruncation(t *testing.T) {
	long := strings.Repeat("correct horse battery staple ", 3)[:80]
	longHash, err := bcrypt.GenerateFromPassword([]byte(long[:72]), 4)
	if err != nil {
		t.Fatal(err)
	}
	shortHash, err := bcrypt.GenerateFromPassword([]byte("short-pass-1"), 4)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "old.conf")
	conf := fmt.Sprintf(`accounts { APP: { users: [ {user: longpw, password: %q}, {user: shortpw, password: %q} ] } }`, longHash, shortHash)
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	s := serveEmbedded(t, true)
	r := mustRun(t, "", "import", file, "--dir", s.dir)
	if got := strings.Count(r.stderr, "warning:"); got != 1 {
		t.Errorf("import printed %d warnings, want one:\n%s", got, r.stderr)
	}
	for _, want := range []string{"longpw, shortpw", "72 bytes", "authrelay user passwd NAME"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("import warning lacks %q:\n%s", want, r.stderr)
		}
	}
	if r := mustRun(t, "", "import", file, "--dir", s.dir); strings.Contains(r.stderr, "warning:") {
		t.Errorf("a second import, which adds nobody, warns:\n%s", r.stderr)
	}

	nc, err := s.connect("shortpw", "short-pass-1")
	if err != nil {
		t.Fatalf("shortpw: %v", err)
	}
	nc.Close()
	_, err = s.connect("longpw", long)
	wantAuthViolation(t, err)
	mustRun(t, "new-long-password-9\n", "user", "passwd", "longpw", "--password-stdin", "--dir", s.dir)
	nc, err = s.connect("longpw", "new-long-password-9")
	if err != nil {
		t.Fatalf("longpw after passwd: %v", err)
	}
	nc.Close()
	s.stop()

	r = mustRun(t, "", "audit", "--dir", s.dir, "--user", "longpw", "--kind", "login", "--json")
	var rows []auditView
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, row := range rows {
		got = append(got, row.Result+":"+row.Reason)
	}
	if strings.Join(got, ",") != "denied:bad_credentials,allowed:" {
		t.Errorf("longpw's logins = %v, want denied:bad_credentials then allowed", got)
	}
}
