package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// TestAccountAddRefusesCaseTwin: with SHOP present, 'account add shop'
// exits non-zero naming SHOP and leaves accounts.conf as it was; 'user add
// --account shop' says which account was meant.
func TestAccountAddRefusesCaseTwin(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "", "init", "--dir", dir, "--account", "APP")
	mustRun(t, "", "account", "add", "SHOP", "--dir", dir)
	conf := filepath.Join(dir, "accounts.conf")
	before, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	r := run(t, "", "account", "add", "shop", "--dir", dir)
	if r.code == 0 || !strings.Contains(r.stderr, `"SHOP"`) {
		t.Errorf("account add shop: exit %d, stderr %q; want a refusal naming SHOP", r.code, r.stderr)
	}
	after, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	if string(after) != string(before) {
		t.Errorf("accounts.conf changed by the refused add:\n%s", after)
	}
	r = run(t, "pw-123456\n", "user", "add", "bob", "--dir", dir, "--account", "shop", "--password-stdin", "--sub", "x")
	if r.code == 0 || !strings.Contains(r.stderr, `did you mean "SHOP"`) {
		t.Errorf("user add --account shop: exit %d, stderr %q; want a did-you-mean for SHOP", r.code, r.stderr)
	}
	list := mustRun(t, "", "account", "list", "--dir", dir)
	if strings.Contains(list.stdout, "shop") {
		t.Errorf("account list after the refusal:\n%s", list.stdout)
	}
}

// TestTyposGetOneLineAndASuggestion: a mistyped command, subcommand or flag
// is one usage error (exit 2) with the nearest name and where to look, not
// the usage printed around it; --password is refused without echoing the
// value.
func TestTyposGetOneLineAndASuggestion(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "", "init", "--dir", dir, "--account", "APP")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"usr"}, `unknown command "usr"; did you mean "user"? (run 'authrelay -h' for the list)`},
		{[]string{"user", "lst"}, `user: unknown subcommand "lst"; did you mean "list"? (run 'authrelay user -h' for the list)`},
		{[]string{"role", "shwo"}, `did you mean "show"?`},
		{[]string{"user", "add", "bob", "--dir", dir, "--acount", "APP"}, `user add: unknown flag "--acount"; did you mean --account? (run 'authrelay user add -h' for its flags)`},
		{[]string{"user", "list", "--dir", dir, "--jsno"}, `did you mean --json?`},
		{[]string{"user", "add", "bob", "--dir", dir, "--password=hunter2-secret"}, "passwords never come from flags"},
		{[]string{"user", "passwd", "bob", "--dir", dir, "--password", "hunter2-secret"}, "use --password-stdin"},
		{[]string{"frobnicate"}, `unknown command "frobnicate" (run 'authrelay -h' for the list)`},
	}
	for _, c := range cases {
		r := run(t, "", c.args...)
		if r.code != exitUsage {
			t.Errorf("authrelay %s: exit %d, want %d", strings.Join(c.args, " "), r.code, exitUsage)
		}
		if strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("authrelay %s: stderr %q, want one line containing %q", strings.Join(c.args, " "), r.stderr, c.want)
		}
		if strings.Contains(r.stderr, "hunter2") || strings.Contains(r.stdout, "hunter2") {
			t.Errorf("authrelay %s: the password value was echoed: %q", strings.Join(c.args, " "), r.stderr)
		}
	}
	// -h still prints the whole usage, and exits 0.
	r := run(t, "", "user", "add", "-h")
	if r.code != exitOK || !strings.Contains(r.stderr, "Usage: authrelay user add") || !strings.Contains(r.stderr, "-password-stdin") {
		t.Errorf("user add -h: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestGlobalFlagsBeforeTheCommand: --dir before the command is the
// command's --dir (one after the command still wins), and --version is
// 'version'.
func TestGlobalFlagsBeforeTheCommand(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	mustRun(t, "", "--dir", dir, "init", "--account", "APP")
	mustRun(t, "", "init", "--dir", other, "--account", "OPS")
	mustRun(t, "pw-123456\n", "--dir="+dir, "user", "add", "alice", "--password-stdin", "--sub", "x")
	r := mustRun(t, "", "--dir", dir, "user", "list")
	if !strings.Contains(r.stdout, "alice") {
		t.Errorf("--dir DIR user list: %q, want alice", r.stdout)
	}
	r = mustRun(t, "", "--dir", dir, "user", "list", "--dir", other)
	if strings.Contains(r.stdout, "alice") {
		t.Errorf("user list --dir OTHER after a global --dir listed DIR's users: %q", r.stdout)
	}
	if r := run(t, "", "--dir"); r.code != exitUsage || !strings.Contains(r.stderr, "--dir needs a directory") {
		t.Errorf("--dir alone: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := run(t, "", "--json", "user", "list"); r.code != exitUsage || !strings.Contains(r.stderr, "a command's own flags follow it") {
		t.Errorf("--json before the command: exit %d, stderr %q", r.code, r.stderr)
	}

	a, b := mustRun(t, "", "version"), mustRun(t, "", "--version")
	if a.stdout != b.stdout || !strings.HasPrefix(a.stdout, "authrelay ") || !strings.Contains(a.stdout, runtime.Version()) {
		t.Errorf("version %q, --version %q: want the same line naming authrelay and %s", a.stdout, b.stdout, runtime.Version())
	}
	var v buildVersion
	j := mustRun(t, "", "version", "--json")
	if err := json.Unmarshal([]byte(j.stdout), &v); err != nil {
		t.Fatalf("version --json: %v\n%s", err, j.stdout)
	}
	if v.Version == "" || v.Go != runtime.Version() {
		t.Errorf("version --json = %+v", v)
	}
}

// TestHelpTellsThatConnectionsAreClosed: the help of every change that
// revokes says the user's connections are closed, as they are
// (TestRevocation… prove it), not that they stay open.
func TestHelpTellsThatConnectionsAreClosed(t *testing.T) {
	for _, args := range [][]string{{"user", "passwd", "-h"}, {"user", "rm", "-h"}, {"user", "disable", "-h"}} {
		r := run(t, "", args...)
		help := strings.Join(strings.Fields(r.stderr), " ")
		if r.code != exitOK || strings.Contains(help, "stay open") || !strings.Contains(help, "closes") {
			t.Errorf("authrelay %s: exit %d, help %q: want it to say the connections are closed", strings.Join(args, " "), r.code, help)
		}
	}
}

// TestJSONIsNotHTMLEscaped: subjects keep their '>' in every --json
// output, as jq users expect, instead of \u003e.
func TestJSONIsNotHTMLEscaped(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "", "init", "--dir", dir, "--account", "APP")
	mustRun(t, "pw-123456\n", "user", "add", "alice", "--dir", dir, "--password-stdin", "--pub", "orders.>", "--sub", "_INBOX.>")
	mustRun(t, "", "role", "add", "reader", "--dir", dir, "--sub", "metrics.>")
	for _, args := range [][]string{
		{"user", "show", "alice", "--json"}, {"user", "list", "--json"}, {"user", "explain", "alice", "--json"},
		{"role", "list", "--json"}, {"role", "show", "reader", "--json"}, {"export", "--json"},
	} {
		r := mustRun(t, "", append(args, "--dir", dir)...)
		if strings.Contains(r.stdout, `\u003e`) || !strings.Contains(r.stdout, `.>"`) {
			t.Errorf("authrelay %s: want '>' unescaped:\n%s", strings.Join(args, " "), r.stdout)
		}
	}
}

// TestChangesThatLockAUserOutWarn: a change after which the user cannot log
// in even with the right password succeeds (the admin may mean it) but
// says so at once, with the relay's reason; a change that leaves the user
// able to log in says nothing of the kind.
func TestChangesThatLockAUserOutWarn(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "", "init", "--dir", dir, "--account", "APP")
	mustRun(t, "pw-123456\n", "user", "add", "alice", "--dir", dir, "--password-stdin", "--sub", "x")
	mustRun(t, "pw-123456\n", "user", "add", "svc.orders", "--dir", dir, "--password-stdin", "--sub", "x")

	const warning = "cannot log in"
	r := mustRun(t, "", "user", "set", "alice", "--dir", dir, "--pub", "y")
	if strings.Contains(r.stderr, warning) {
		t.Errorf("a harmless user set warned: %q", r.stderr)
	}
	r = mustRun(t, "", "user", "set", "alice", "--dir", dir, "--expires", "2020-01-01")
	if !strings.Contains(r.stderr, "warning: alice "+warning) || !strings.Contains(r.stderr, "user_expired") {
		t.Errorf("user set --expires 2020-01-01: stderr %q, want a warning with user_expired", r.stderr)
	}
	// explain says the same, and exits 1 for scripts.
	r = run(t, "", "user", "explain", "alice", "--dir", dir)
	if r.code != exitFailure || !strings.Contains(r.stdout, "denied (user_expired)") || !strings.Contains(r.stderr, "would be refused") {
		t.Errorf("explain after the warning: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	mustRun(t, "", "user", "set", "alice", "--dir", dir, "--expires", "never")
	mustRun(t, "", "user", "explain", "alice", "--dir", dir)

	// A role whose template a holder's name cannot fill: the role change
	// names the holder it locks out.
	mustRun(t, "", "role", "add", "svc", "--dir", dir, "--pub", "svc.in")
	mustRun(t, "", "user", "set", "svc.orders", "--dir", dir, "--role", "svc")
	r = mustRun(t, "", "role", "set", "svc", "--dir", dir, "--pub", "svc.{{name}}.>")
	if !strings.Contains(r.stderr, "warning: svc.orders "+warning) || !strings.Contains(r.stderr, "template_unsafe") {
		t.Errorf("role set with {{name}} held by svc.orders: stderr %q, want a template_unsafe warning", r.stderr)
	}
	if strings.Contains(r.stderr, "alice") {
		t.Errorf("the role change warned about alice, who does not hold it: %q", r.stderr)
	}
	// Disabling is meant: no warning.
	mustRun(t, "", "user", "disable", "alice", "--dir", dir)
	r = mustRun(t, "", "user", "set", "alice", "--dir", dir, "--pub", "z")
	if strings.Contains(r.stderr, warning) {
		t.Errorf("user set of a disabled user warned: %q", r.stderr)
	}
}

// TestPasswordPolicy: user add and user passwd refuse a password shorter
// than the database's minimum (8 unless hash set says otherwise), one of
// the most used, and the user's own name, with exit status 2, nothing
// written and the password not echoed; generated passwords pass.
func TestPasswordPolicy(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "", "init", "--dir", dir, "--account", "APP")
	refused := func(stdin string, args ...string) {
		t.Helper()
		r := run(t, stdin, append(args, "--dir", dir, "--password-stdin")...)
		pw := strings.TrimSuffix(stdin, "\n")
		if r.code != exitUsage || !strings.Contains(r.stderr, "password policy") || strings.Contains(r.stderr, pw) {
			t.Errorf("authrelay %s with %q: exit %d, stderr %q; want exit 2 naming the policy, without the password", strings.Join(args, " "), pw, r.code, r.stderr)
		}
	}
	refused("short1\n", "user", "add", "alice", "--sub", "x")
	refused("Password2026!\n", "user", "add", "alice", "--sub", "x")
	refused("Alice.Smith\n", "user", "add", "alice.smith", "--sub", "x")
	if r := run(t, "", "user", "show", "alice", "--dir", dir); r.code == 0 {
		t.Errorf("a refused user add stored alice:\n%s", r.stdout)
	}
	mustRun(t, "tr0mb0ne-sofa\n", "user", "add", "alice", "--dir", dir, "--password-stdin", "--sub", "x")
	refused("qwertyuiop\n", "user", "passwd", "alice")

	r := mustRun(t, "", "hash", "set", "--dir", dir, "--min-password-length", "16")
	if !strings.Contains(r.stdout, "at least 16 characters") {
		t.Errorf("hash set --min-password-length 16: %q", r.stdout)
	}
	if r := mustRun(t, "", "hash", "show", "--dir", dir); !strings.Contains(r.stdout, "at least 16 characters") {
		t.Errorf("hash show: %q", r.stdout)
	}
	refused("tr0mb0ne-sofa-2\n", "user", "passwd", "alice")
	mustRun(t, "tr0mb0ne-sofa-22\n", "user", "passwd", "alice", "--dir", dir, "--password-stdin")
	mustRun(t, "", "user", "add", "bob", "--dir", dir, "--generate-password", "--sub", "x")
	if r := run(t, "", "hash", "set", "--dir", dir, "--min-password-length", "0"); r.code != exitUsage {
		t.Errorf("hash set --min-password-length 0: exit %d, stderr %q", r.code, r.stderr)
	}
	r = mustRun(t, "", "audit", "--dir", dir, "--kind", "admin")
	if !strings.Contains(r.stdout, "min_password_length") {
		t.Errorf("the audit trail lacks the policy change:\n%s", r.stdout)
	}
}

// TestUserListShowsEffectivePermissions: a user whose permissions come
// from a role shows them in user list, merged and expanded; --json keeps
// the user's own rules as pub/sub and adds effective.
func TestUserListShowsEffectivePermissions(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "", "init", "--dir", dir, "--account", "APP")
	mustRun(t, "", "role", "add", "svc", "--dir", dir, "--pub", "svc.{{name}}.>", "--sub", "_INBOX.>")
	mustRun(t, "pw-123456\n", "user", "add", "billing", "--dir", dir, "--password-stdin", "--role", "svc", "--sub", "metrics.>")
	r := mustRun(t, "", "user", "list", "--dir", dir)
	if !strings.Contains(r.stdout, "svc.billing.>") || !strings.Contains(r.stdout, "_INBOX.>") || !strings.Contains(r.stdout, "metrics.>") {
		t.Errorf("user list does not show billing's merged permissions:\n%s", r.stdout)
	}
	r = mustRun(t, "", "user", "list", "--dir", dir, "--json")
	var views []userView
	if err := json.Unmarshal([]byte(r.stdout), &views); err != nil {
		t.Fatalf("user list --json: %v\n%s", err, r.stdout)
	}
	if len(views) != 1 || views[0].Effective == nil {
		t.Fatalf("user list --json = %s", r.stdout)
	}
	v := views[0]
	if len(v.Pub.Allow) != 0 || !slices.Equal(v.Sub.Allow, []string{"metrics.>"}) {
		t.Errorf("own rules: pub %v sub %v, want [] and [metrics.>]", v.Pub.Allow, v.Sub.Allow)
	}
	if !slices.Equal(v.Effective.Pub.Allow, []string{"svc.billing.>"}) || !slices.Contains(v.Effective.Sub.Allow, "_INBOX.>") || !slices.Contains(v.Effective.Sub.Allow, "metrics.>") {
		t.Errorf("effective: pub %v sub %v", v.Effective.Pub.Allow, v.Effective.Sub.Allow)
	}
}

// TestAccountsConfHandEditsAreRefusedNotErased: a line added to
// accounts.conf by hand makes the next account change fail, naming the
// line, with accounts.conf and the database as they were; --jetstream puts
// what the hand edit was for into the database and the file, where it
// survives later rewrites.
func TestAccountsConfHandEditsAreRefusedNotErased(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "", "init", "--dir", dir, "--account", "APP")
	conf := filepath.Join(dir, "accounts.conf")
	orig, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(orig), "# Owned by authrelay") {
		t.Errorf("accounts.conf does not say whose it is:\n%s", orig)
	}
	edited := strings.Replace(string(orig), "APP: {}", "APP: { jetstream: enabled }", 1)
	if err := os.WriteFile(conf, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"account", "add", "ORDERS", "--no-reload"},
		{"account", "set", "APP", "--max-subs", "10", "--no-reload"},
	} {
		r := run(t, "", append(args, "--dir", dir)...)
		if r.code == exitOK || !strings.Contains(r.stderr, "changed by hand") || !strings.Contains(r.stderr, `"APP: { jetstream: enabled }"`) {
			t.Errorf("authrelay %s over a hand edit: exit %d, stderr %q; want a refusal naming the line", strings.Join(args, " "), r.code, r.stderr)
		}
		if b, _ := os.ReadFile(conf); string(b) != edited {
			t.Errorf("authrelay %s rewrote the hand-edited accounts.conf:\n%s", strings.Join(args, " "), b)
		}
	}
	if r := mustRun(t, "", "account", "list", "--dir", dir); strings.Contains(r.stdout, "ORDERS") || strings.Contains(r.stdout, "10") {
		t.Errorf("a refused change reached the database:\n%s", r.stdout)
	}

	// Undo the edit and say it with --jetstream: in the database, in the
	// file, and kept by the next rewrite.
	if err := os.WriteFile(conf, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "", "account", "set", "APP", "--jetstream", "--dir", dir, "--no-reload")
	mustRun(t, "", "account", "add", "ORDERS", "--dir", dir, "--no-reload", "--max-payload", "4096")
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "APP: { jetstream: enabled }\n") || !strings.Contains(string(b), "ORDERS: { limits: { max_payload: 4096 } }\n") {
		t.Errorf("accounts.conf after --jetstream and another add:\n%s", b)
	}
	opts, err := server.ProcessConfigFile(filepath.Join(dir, "nats.conf"))
	if err != nil {
		t.Fatalf("nats.conf with the JetStream account: %v", err)
	}
	if len(opts.Accounts) == 0 {
		t.Errorf("no accounts parsed from nats.conf")
	}
	r := mustRun(t, "", "account", "list", "--dir", dir)
	if !strings.Contains(r.stdout, "enabled") {
		t.Errorf("account list does not show JetStream:\n%s", r.stdout)
	}
	mustRun(t, "", "account", "set", "APP", "--jetstream=false", "--dir", dir, "--no-reload")
	if b, _ := os.ReadFile(conf); strings.Contains(string(b), "jetstream: enabled") {
		t.Errorf("--jetstream=false left it in accounts.conf:\n%s", b)
	}
}

// TestServeWarnsOfAWeakStoredPolicy: a policy below OWASP's minimum stored
// before the floor rose (here the test harness's cheap one) still runs, and
// serve says so; hash set refuses to store such a policy.
func TestServeWarnsOfAWeakStoredPolicy(t *testing.T) {
	s := serveEmbedded(t, true)
	if !strings.Contains(s.log.String(), "weaker than OWASP's minimum") {
		t.Errorf("serve with an 8 MiB × 1 policy does not warn:\n%s", s.log.String())
	}
	if r := run(t, "", "hash", "set", "--dir", s.dir, "--memory", "8192", "--time", "1"); r.code != exitUsage || !strings.Contains(r.stderr, "OWASP") {
		t.Errorf("hash set --memory 8192 --time 1: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestExplainKnowsWhetherTheServerHasTheAccount: a user placed in an
// account the running server has not loaded yet is granted by the relay
// and refused by the server; explain says so and exits 1, and after
// 'authrelay reload' says the server has it, exits 0, and the user logs in.
func TestExplainKnowsWhetherTheServerHasTheAccount(t *testing.T) {
	s := serveEmbedded(t, true)
	mustRun(t, "", "account", "add", "ORDERS", "--dir", s.dir, "--no-reload")
	s.addUser(t, "olga", "olga-pass-1", "--account", "ORDERS", "--sub", "x")
	if _, err := s.connect("olga", "olga-pass-1"); err == nil {
		t.Fatal("olga logged in to an account the server has not loaded")
	}
	r := run(t, "", "user", "explain", "olga", "--dir", s.dir)
	if r.code != exitFailure || !strings.Contains(r.stdout, "have not loaded account ORDERS") || !strings.Contains(r.stdout, "authrelay reload") {
		t.Errorf("explain before the reload: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r := mustRun(t, "", "user", "explain", "olga", "--dir", s.dir, "--offline"); strings.Contains(r.stdout, "server:") {
		t.Errorf("explain --offline asked the server:\n%s", r.stdout)
	}
	mustRun(t, "", "reload", "--dir", s.dir)
	r = mustRun(t, "", "user", "explain", "olga", "--dir", s.dir, "--json")
	var v explainView
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatal(err)
	}
	if v.ServerHasAccount == nil || !*v.ServerHasAccount || !strings.Contains(v.Server, "have loaded account ORDERS") {
		t.Errorf("explain after the reload: %+v", v)
	}
	nc, err := s.connect("olga", "olga-pass-1")
	if err != nil {
		t.Fatalf("olga after the reload: %v", err)
	}
	nc.Close()
}

// TestAccountJetStreamOnARealServer: with a jetstream block in nats.conf,
// an account given --jetstream answers its users' JetStream API requests
// and one without does not, on the real server the relay serves.
func TestAccountJetStreamOnARealServer(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "", "init", "--dir", dir, "--account", "APP", "--account", "OPS")
	cheapHashPolicy(t, dir)
	mustRun(t, "", "account", "set", "APP", "--jetstream", "--dir", dir, "--no-reload")
	s := serveOn(t, dir)
	for _, c := range []struct {
		user, account string
		enabled       bool
	}{{"js-user", "APP", true}, {"plain-user", "OPS", false}} {
		s.addUser(t, c.user, c.user+"-pass", "--account", c.account, "--pub", "$JS.API.>", "--sub", "_INBOX.>")
		nc, err := s.connect(c.user, c.user+"-pass")
		if err != nil {
			t.Fatal(err)
		}
		m, err := nc.Request("$JS.API.INFO", nil, 2*time.Second)
		nc.Close()
		answered := err == nil && strings.Contains(string(m.Data), `"type":"io.nats.jetstream.api.v1.account_info_response"`) && !strings.Contains(string(m.Data), `"error"`)
		if answered != c.enabled {
			var data string
			if m != nil {
				data = string(m.Data)
			}
			t.Errorf("%s in %s: JetStream answered %v (err %v, %s), want %v", c.user, c.account, answered, err, data, c.enabled)
		}
	}
}
