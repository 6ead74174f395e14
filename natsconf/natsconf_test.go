package natsconf

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/conf"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/store"
)

// plan reads path and plans it into a directory with the accounts accts.
func plan(t *testing.T, path string, s Snapshot) *Report {
	t.Helper()
	c, err := Read(path)
	if err != nil {
		t.Fatalf("Read %s: %v", path, err)
	}
	rep, err := Plan(c, s, "")
	if err != nil {
		t.Fatalf("Plan %s: %v", path, err)
	}
	return rep
}

func row(t *testing.T, rep *Report, name string) *UserRow {
	t.Helper()
	for _, r := range rep.Users {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no row for user %s", name)
	return nil
}

func all(deny ...string) accounts.Rule {
	return accounts.Rule{Allow: []string{accounts.AllSubjects}, Deny: deny}
}

func only(allow ...string) accounts.Rule { return accounts.Rule{Allow: allow} }

// TestReadAliases: every alias nats-server knows for permissions imports to
// the permissions the server gives the user, with a direction the server
// leaves unrestricted opened explicitly.
func TestReadAliases(t *testing.T) {
	const path = "testdata/aliases.conf"
	rep := plan(t, path, Snapshot{Accounts: []string{"APP"}})
	for _, c := range []struct {
		name   string
		perms  accounts.Permissions
		conns  []string
		detail string
	}{
		{"maps", accounts.Permissions{Pub: all("secret.*"), Sub: only("svc.*")}, nil, "plain-text password, stored hashed"},
		{"strings", accounts.Permissions{Pub: only("svc.echo"), Sub: only("metrics.>", "other.x")}, nil, "plain-text password, stored hashed"},
		{"routes", accounts.Permissions{Pub: only("other.x", "svc.>"), Sub: all("secret.>", "other.x")}, nil, "every subscribe subject ('>' for subscribe)"},
		{"upper", accounts.Permissions{Sub: all("metrics.cpu"), Resp: &accounts.ResponsePermission{MaxMsgs: 2, TTL: 30 * time.Second}}, nil, "plain-text password, stored hashed"},
		{"denies", accounts.Permissions{Pub: all("svc.*"), Sub: all("other.*")}, nil, "full access ('>' for publish and subscribe)"},
		// Explicit values equal to nats-server's defaults are its defaults.
		{"defaults", accounts.Permissions{Pub: only("svc.>"), Sub: only("svc.>"), Resp: &accounts.ResponsePermission{}}, nil, "plain-text password, stored hashed"},
		{"clients", accounts.Permissions{Pub: all(), Sub: all()}, []string{"STANDARD", "WEBSOCKET"}, "connection types MQTT_WS left out"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := row(t, rep, c.name)
			if r.Action != ActionAdd || r.Account != "APP" || !strings.Contains(r.Detail, c.detail) {
				t.Errorf("row = %+v, want add in APP with …%q…", r, c.detail)
			}
			if !reflect.DeepEqual(r.user.Permissions, c.perms) {
				t.Errorf("permissions = %+v, want %+v", r.user.Permissions, c.perms)
			}
			if !slices.Equal(r.user.ConnTypes, c.conns) {
				t.Errorf("connection types = %q, want %q", r.user.ConnTypes, c.conns)
			}
			if r.secret != c.name+"-pass" {
				t.Errorf("password not the file's")
			}
		})
	}

	// The same file through nats-server as a whole: each user's rules are
	// those import planned, but for the directions import opened.
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("nats-server refuses %s: %v", path, err)
	}
	if len(opts.Users) != len(rep.Users) {
		t.Fatalf("nats-server reads %d users, import %d", len(opts.Users), len(rep.Users))
	}
	for _, su := range opts.Users {
		got := row(t, rep, su.Username).user.Permissions
		p := su.Permissions
		if p == nil {
			p = &server.Permissions{}
		}
		for _, d := range []struct {
			what string
			rule accounts.Rule
			sp   *server.SubjectPermission
		}{{"publish", got.Pub, p.Publish}, {"subscribe", got.Sub, p.Subscribe}} {
			want := accounts.Rule{Allow: []string{accounts.AllSubjects}}
			if d.sp != nil {
				if d.sp.Allow != nil {
					want.Allow = d.sp.Allow
				}
				want.Deny = d.sp.Deny
			}
			if !slices.Equal(d.rule.Allow, want.Allow) || !slices.Equal(d.rule.Deny, want.Deny) {
				t.Errorf("%s %s = %+v, nats-server has %+v", su.Username, d.what, d.rule, d.sp)
			}
		}
		if (p.Response == nil) != (got.Resp == nil) {
			t.Errorf("%s: response permission %+v, nats-server has %+v", su.Username, got.Resp, p.Response)
		}
	}
}

// TestReadWhatServerRefusesWhole: a file nats-server refuses as a whole,
// for settings import has no business with, still imports its users one by
// one, with the server's values, include files and all.
func TestReadWhatServerRefusesWhole(t *testing.T) {
	const path = "testdata/refused.conf"
	if _, err := server.ProcessConfigFile(path); err == nil {
		t.Fatalf("nats-server accepts %s, which this test needs it to refuse", path)
	}
	rep := plan(t, path, Snapshot{Accounts: []string{"APP"}})
	want := []struct{ name, account, action, detail string }{
		{"kept", "APP", ActionAdd, "plain-text password"},
		{"odd-pass", "APP", ActionAdd, "full access"},
		{"included", "APP2", ActionAdd, "every publish subject"},
		{"callout-svc", "CALLOUT", ActionSkip, "auth_callout account of the file"},
	}
	slices.SortFunc(rep.Users, func(a, b *UserRow) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(want, func(a, b struct{ name, account, action, detail string }) int { return strings.Compare(a.name, b.name) })
	if len(rep.Users) != len(want) {
		t.Fatalf("rows %+v, want %d", rep.Users, len(want))
	}
	for i, w := range want {
		r := rep.Users[i]
		if r.Name != w.name || r.Account != w.account || r.Action != w.action || !strings.Contains(r.Detail, w.detail) {
			t.Errorf("row %+v, want %+v", r, w)
		}
	}
	if got := row(t, rep, "kept").user.Permissions; !reflect.DeepEqual(got, accounts.Permissions{Pub: only("app.>"), Sub: accounts.Rule{Allow: []string{"app.>"}, Deny: []string{"app.secret"}}}) {
		t.Errorf("kept = %+v", got)
	}
	if got, want := row(t, rep, "odd-pass").secret, "q\"uo\\te$d\tpass\x01é"; got != want {
		t.Errorf("password with quotes, backslash, dollar and control bytes = %q, want %q", got, want)
	}
	if got := row(t, rep, "included").user.Permissions.Sub; !reflect.DeepEqual(got, only("in.>")) {
		t.Errorf("included subscribe = %+v", got)
	}
	if len(rep.Accounts) != 2 || rep.Accounts[0].Name != "APP2" || rep.Accounts[0].Action != ActionCreate || rep.Accounts[1].Action != ActionSkip {
		t.Errorf("accounts = %+v", rep.Accounts)
	}
}

// TestFromServerReason: an entry nats-server's parser refuses is not
// imported, with the server's reason, without the position in the rendered
// entry (which is not the file's). Import's own checks catch every such
// entry this test could write in a file first, so the test gives
// fromServer the entry directly: the server's reason is the last line of
// defence against a form import's checks do not know.
func TestFromServerReason(t *testing.T) {
	u := confUser{name: "bad", entry: map[string]any{
		"user": "bad", "password": "bad-pass",
		"allowed_connection_types": map[string]any{"x": int64(1)},
		"permissions":              map[string]any{"publish": "a b"},
	}}
	u.fromServer()
	if len(u.problems) != 1 || !strings.HasPrefix(u.problems[0], "nats-server refuses it: ") {
		t.Fatalf("problems = %q, want the server's refusal", u.problems)
	}
	t.Logf("reason: %s", u.problems[0])
	for _, want := range []string{"allowed connection types", "a b"} {
		if !strings.Contains(u.problems[0], want) {
			t.Errorf("reason %q does not mention %q", u.problems[0], want)
		}
	}
	if strings.Contains(u.problems[0], ":1:") || strings.Contains(u.problems[0], ":2:") {
		t.Errorf("reason %q has a position in the rendered entry", u.problems[0])
	}
	if u.password != "" {
		t.Error("a refused entry has a password")
	}

	// A reason that would quote the password does not.
	secret := confUser{name: "s", entry: map[string]any{"user": "s", "password": "hunter2-secret", "permissions": map[string]any{"publish": "hunter2-secret x"}}}
	secret.fromServer()
	if len(secret.problems) != 1 || strings.Contains(secret.problems[0], "hunter2") || !strings.Contains(secret.problems[0], "(password)") {
		t.Errorf("problems = %q, want the server's reason with the password left out", secret.problems)
	}

	good := confUser{name: "good", entry: map[string]any{"user": "good", "password": "good-pass"}}
	good.fromServer()
	if len(good.problems) != 0 || good.password != "good-pass" {
		t.Errorf("good entry: problems %q, password read %v", good.problems, good.password == "good-pass")
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestPlanSnapshot: the directory's accounts, users, reserved accounts and
// grant size decide each row; nothing is changed.
func TestPlanSnapshot(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nats.conf")
	writeFile(t, path, `authorization { users: [
  { user: old, password: "old-pass" }
  { user: moved, password: "moved-pass" }
  { user: big, password: "big-pass" }
  { user: admin, password: "admin-pass" }
  { user: fresh, password: "fresh-pass" }
] }
accounts {
  RES: { users: [ { user: res-user, password: "res-pass" } ] }
  AUTH: { users: [ { user: auth-user, password: "auth-pass" } ] }
  NEW: { users: [ { user: new-user, password: "new-pass" } ], limits: { max_conn: 5 } }
}`)
	c, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	s := Snapshot{
		Accounts:       []string{"APP"},
		Users:          map[string]string{"old": "APP", "moved": "OTHER"},
		Reserved:       []string{"RES", "SYS"},
		CalloutAccount: "AUTH", SystemAccount: "SYS", StaticUsers: []string{"authrelay", "admin"},
		Size: func(u accounts.User) error {
			if u.Name == "big" {
				return errors.New("too large for the test")
			}
			return nil
		},
	}
	rep, err := Plan(c, s, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct{ name, account, action, detail string }{
		{"old", "APP", ActionExists, "already in authrelay: left unchanged"},
		{"moved", "APP", ActionExists, "already in authrelay in account OTHER"},
		{"big", "APP", ActionSkip, "too large for the test"},
		{"admin", "APP", ActionSkip, "authrelay's own static user"},
		{"fresh", "APP", ActionAdd, "full access"},
		{"res-user", "RES", ActionSkip, "account RES is reserved in this directory's nats.conf"},
		{"auth-user", "AUTH", ActionSkip, "authrelay's callout account"},
		{"new-user", "NEW", ActionAdd, ""},
	} {
		if r := row(t, rep, w.name); r.Account != w.account || r.Action != w.action || !strings.Contains(r.Detail, w.detail) {
			t.Errorf("%s = %+v, want %s in %s with …%q…", w.name, r, w.action, w.account, w.detail)
		}
	}
	wantAccts := []AccountRow{
		{Name: "AUTH", Action: ActionSkip, Detail: "authrelay's callout account: its users stay static in nats.conf"},
		{Name: "NEW", Action: ActionCreate, Detail: "limits max_connections=5"},
		{Name: "RES", Action: ActionSkip, Detail: "account reserved in this directory's nats.conf (its callout or system account)"},
	}
	for i, w := range wantAccts {
		if g := rep.Accounts[i]; g.Name != w.Name || g.Action != w.Action || g.Detail != w.Detail {
			t.Errorf("account %d = %+v, want %+v", i, g, w)
		}
	}
	if got, want := rep.Summary, (Summary{UsersImported: 2, UsersExisting: 2, UsersSkipped: 4, AccountsCreated: 1, AccountsSkipped: 2}); got != want {
		t.Errorf("summary = %+v, want %+v", got, want)
	}

	t.Run("account choice", func(t *testing.T) {
		var ae *AccountError
		if _, err := Plan(c, Snapshot{Accounts: []string{"APP", "OPS", "NEW"}}, ""); !errors.As(err, &ae) || !slices.Equal(ae.Candidates, []string{"APP", "OPS"}) {
			t.Errorf("two candidates: %v", err)
		}
		if _, err := Plan(c, Snapshot{Accounts: []string{"NEW"}}, ""); !errors.As(err, &ae) || len(ae.Candidates) != 0 {
			t.Errorf("no candidate: %v", err)
		}
		if _, err := Plan(c, Snapshot{Accounts: []string{"APP"}}, "NOPE"); !errors.As(err, &ae) || ae.Account != "NOPE" {
			t.Errorf("unknown account: %v", err)
		}
		rep, err := Plan(c, Snapshot{Accounts: []string{"APP", "OPS"}}, "NEW")
		if err != nil {
			t.Fatalf("an account the file creates: %v", err)
		}
		if r := row(t, rep, "fresh"); r.Account != "NEW" {
			t.Errorf("fresh with account NEW = %+v", r)
		}
	})
}

// TestApply applies a plan to a real store, then plans the same file
// again: every user is reported as existing and nothing changes.
func TestApply(t *testing.T) {
	ctx := t.Context()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "authrelay.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	db.Params = store.Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
	if err := db.AddAccount(ctx, "APP"); err != nil {
		t.Fatal(err)
	}
	const path = "testdata/refused.conf"
	c, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	snapshot := func() Snapshot {
		s, err := Load(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	t.Run("accounts file fails", func(t *testing.T) {
		rep, err := Plan(c, snapshot(), "")
		if err != nil {
			t.Fatal(err)
		}
		_, err = Apply(ctx, db, rep, func(context.Context) error { return errors.New("disk full") })
		if err == nil || !strings.Contains(err.Error(), "disk full; no user was imported") {
			t.Fatalf("Apply = %v, want the write error and that nothing was imported", err)
		}
		if s := snapshot(); !slices.Equal(s.Accounts, []string{"APP"}) || len(s.Users) != 0 {
			t.Errorf("after a failed Apply the store has %v and %v", s.Accounts, s.Users)
		}
	})

	rep, err := Plan(c, snapshot(), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.HashPasswords(func(pw string) (string, error) { return store.HashPassword(pw, db.Params) }); err != nil {
		t.Fatal(err)
	}
	written := 0
	userErr, err := Apply(ctx, db, rep, func(context.Context) error { written++; return nil })
	if err != nil || userErr != nil {
		t.Fatalf("Apply = %v, %v", userErr, err)
	}
	if written != 1 || rep.Summary.UsersImported != 3 || rep.Summary.AccountsCreated != 1 {
		t.Errorf("written %d times, summary %+v", written, rep.Summary)
	}
	u, err := db.Authenticate(ctx, "odd-pass", "q\"uo\\te$d\tpass\x01é")
	if err != nil || u.Account != "APP" {
		t.Errorf("log in as odd-pass with the file's password: %+v, %v", u, err)
	}
	if u, err := db.User(ctx, "included"); err != nil || u.Account != "APP2" || !reflect.DeepEqual(u.Permissions.Sub, only("in.>")) {
		t.Errorf("included = %+v, %v", u, err)
	}

	again, err := Plan(c, snapshot(), "")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := again.Summary, (Summary{UsersExisting: 3, UsersSkipped: 1, AccountsExisting: 1, AccountsSkipped: 1}); got != want {
		t.Errorf("second plan summary = %+v, want %+v", got, want)
	}
}

// TestRenderString: a string rendered for nats-server's parser reads back
// as the same string, whatever it holds.
func TestRenderString(t *testing.T) {
	for _, s := range []string{
		"", "plain", `q"uote`, `back\slash`, "$VAR", "${VAR}", "tab\tnl\nlf\rend",
		"\x00\x01\x1f\x7f", "é ünïcode ✓", "{{name}}", "# not a comment", "// nor this",
		"a, b; c", "] } )", "'single'", "\\x41", "$2a$04$U8UeCwEU5AGUvqVF5B9iO.cbskHoiMHPhmV4KMRJ38ulVrvQYkUs2",
	} {
		if got := readBack(t, s); got != s {
			t.Errorf("render %q reads back as %q", s, got)
		}
	}
}

func readBack(t *testing.T, s string) string {
	t.Helper()
	var b strings.Builder
	renderString(&b, s)
	m, err := conf.Parse("k: " + b.String() + "\n")
	if err != nil {
		t.Fatalf("parse rendered %q: %v", s, err)
	}
	got, _ := m["k"].(string)
	return got
}

// FuzzRenderString checks the round trip on any valid UTF-8 string, the
// only passwords authrelay stores.
func FuzzRenderString(f *testing.F) {
	for _, s := range []string{"plain", `q"\x`, "$V\t\n", "\x01é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if store.ValidatePassword(s) != nil {
			return // never a stored password
		}
		if got := readBack(t, s); got != s {
			t.Errorf("render %q reads back as %q", s, got)
		}
	})
}

// TestBcryptWarningBounded: the warning of an import that keeps thousands
// of bcrypt hashes counts them all but names only the first, sorted.
func TestBcryptWarningBounded(t *testing.T) {
	const hash = "$2a$04$abcdefghijklmnopqrstuuWlDwzSMVbyGLQPsWv5UgTXJUbbHeIbm"
	if !IsBcrypt(hash) {
		t.Fatal("the test's hash is not bcrypt-like")
	}
	var rep Report
	for i := range maxBcryptNames + 5 {
		rep.Users = append(rep.Users, &UserRow{Name: fmt.Sprintf("u%03d", i), Action: ActionAdd, secret: hash})
	}
	var b strings.Builder
	rep.WriteBcryptWarning(&b, false)
	out := b.String()
	if !strings.Contains(out, fmt.Sprintf("warning: %d imported user(s) keep their bcrypt hash: u000, ", maxBcryptNames+5)) {
		t.Errorf("warning does not count every user and start with the first name:\n%s", out)
	}
	last := fmt.Sprintf("u%03d", maxBcryptNames-1)
	if !strings.Contains(out, last+", and 5 more") || strings.Contains(out, fmt.Sprintf("u%03d", maxBcryptNames)) {
		t.Errorf("warning does not stop after %s with the number of the others:\n%s", last, out)
	}
}
