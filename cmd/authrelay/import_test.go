package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/authrelay/authrelay/deploy"
)

// Fixtures of the import tests.
var (
	importConf       = filepath.Join("testdata", "import", "nats.conf")
	importOddConf    = filepath.Join("testdata", "import", "odd.conf")
	importSingleConf = filepath.Join("testdata", "import", "single.conf")
	importBrokenConf = filepath.Join("testdata", "import", "broken.conf")
)

// importSecrets are every password and hash in the fixtures: no output of
// import may contain one, nor the salt-and-hash part of a bcrypt hash.
var importSecrets = []string{
	"alice-pass", "bob-pass", "admin-pass", "orders-plain-pass", "orders-bcrypt-pass",
	"orders-queue-pass", "orders-ws-pass", "orders-default-pass",
	"U8UeCwEU5AGUvqVF5B9iO.cbskHoiMHPhmV4KMRJ38ulVrvQYkUs2",
	"DpNzttjsjsGU7jLpEI4PEenSz74aMElxHxJXy/9GCSxy9NHtLJsCa",
	"5qG7.byZO3pNIX4X.dup6eHp/4UnKq7URP9jkUevwz1ugT6HPyUOK",
	"odd-token-value", "carol-pass", "dave-pass", "badname-pass", "erin-pass", "frank-pass",
	"heidi-pass", "ivan-pass", "judy-pass", "mallory-pass", "odd-admin-pass", "oscar-pass",
	"solo-pass", "broken-pass",
}

// runImportCmd runs authrelay and fails the test if its output holds a
// password or hash of the fixtures.
func runImportCmd(t *testing.T, args ...string) result {
	t.Helper()
	r := run(t, "", args...)
	for _, s := range importSecrets {
		if strings.Contains(r.stdout, s) || strings.Contains(r.stderr, s) {
			t.Errorf("authrelay %s prints a password or hash of the fixture (%.4s…)", strings.Join(args, " "), s)
		}
	}
	return r
}

// mustImport is runImportCmd that also fails the test unless the exit
// status is code.
func mustImport(t *testing.T, code int, args ...string) result {
	t.Helper()
	r := runImportCmd(t, args...)
	if r.code != code {
		t.Fatalf("authrelay %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, code, r.stdout, r.stderr)
	}
	return r
}

// decodeImport decodes the output of import --json.
func decodeImport(t *testing.T, r result) importReport {
	t.Helper()
	var rep importReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("import --json: %v\n%s", err, r.stdout)
	}
	return rep
}

// wantRow is what the test expects import to report for one user or
// account; detail is a substring of the row's detail.
type wantRow struct {
	name, account, action, detail string
}

func checkUserRows(t *testing.T, got []*importUserRow, want []wantRow) {
	t.Helper()
	if len(got) != len(want) {
		var names []string
		for _, g := range got {
			names = append(names, g.Name)
		}
		t.Fatalf("import reports %d users %q, want %d", len(got), names, len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Name != w.name || g.Account != w.account || g.Action != w.action || !strings.Contains(g.Detail, w.detail) {
			t.Errorf("user row %d = %s|%s|%s|%q, want %s|%s|%s|…%q…", i, g.Name, g.Account, g.Action, g.Detail, w.name, w.account, w.action, w.detail)
		}
	}
}

func checkAccountRows(t *testing.T, got []*importAccountRow, want []wantRow) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("import reports %d accounts %+v, want %d", len(got), got, len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Name != w.name || g.Action != w.action || !strings.Contains(g.Detail, w.detail) {
			t.Errorf("account row %d = %s|%s|%q, want %s|%s|…%q…", i, g.Name, g.Action, g.Detail, w.name, w.action, w.detail)
		}
	}
}

// importState is what import may change in a directory: the users, the
// accounts and accounts.conf.
func importState(t *testing.T, dir string) string {
	t.Helper()
	users := mustRun(t, "", "user", "list", "--dir", dir, "--json").stdout
	accts := mustRun(t, "", "account", "list", "--dir", dir, "--json").stdout
	conf, err := os.ReadFile(filepath.Join(dir, deploy.AccountsConf))
	if err != nil {
		t.Fatal(err)
	}
	return users + "\n" + accts + "\n" + string(conf)
}

// importedUser is the part of 'user show --json' the import tests check.
type importedUser struct {
	Account string `json:"account"`
	Pub     struct {
		Allow []string `json:"allow"`
		Deny  []string `json:"deny"`
	} `json:"pub"`
	Sub struct {
		Allow []string `json:"allow"`
		Deny  []string `json:"deny"`
	} `json:"sub"`
	Resp *struct {
		Max int           `json:"max"`
		TTL time.Duration `json:"ttl"`
	} `json:"resp"`
	ConnTypes  []string `json:"conn_types"`
	HashScheme string   `json:"hash_scheme"`
}

func showImported(t *testing.T, dir, name string) importedUser {
	t.Helper()
	r := mustImport(t, 0, "user", "show", name, "--dir", dir, "--json")
	var u importedUser
	if err := json.Unmarshal([]byte(r.stdout), &u); err != nil {
		t.Fatalf("user show %s: %v\n%s", name, err, r.stdout)
	}
	return u
}

// The users of testdata/import/nats.conf, as import reports them into a
// directory whose only account is APP.
var importConfRows = []wantRow{
	{"alice", "APP", "add", "bcrypt hash kept"},
	{"bob", "APP", "add", "plain-text password"},
	{"UDGUFLQM4UJODNQ5SGX7VH2EWUWFJRLPJNJ2ZBML3V6GLQ54DV7IWRQF", "", "skip", "nkey user"},
	{"orders-svc", "ORDERS", "add", "plain-text password"},
	{"orders-bcrypt", "ORDERS", "add", "bcrypt hash kept"},
	{"orders-queue", "ORDERS", "skip", "queue group"},
	{"orders-ws", "ORDERS", "add", "MQTT_WS left out"},
	{"UDDGFJ7PYED3GWAVD6V4FK3JJ53STV7QM6KEWGE6UUX7PUYDQAY2IT4Q", "ORDERS", "skip", "nkey user"},
	{"orders-nopass", "ORDERS", "skip", "no password"},
	{"orders-default", "ORDERS", "skip", "default_permissions"},
	{"sysadmin", "SYS", "skip", "system account"},
}

var importConfAccounts = []wantRow{
	{"ORDERS", "", "create", "limits max_connections=100 max_payload=65536; not carried over (authrelay accounts have no such settings): exports"},
	{"SYS", "", "skip", "system account"},
}

// TestImportFixtureIsValid checks that a stock nats-server accepts the main
// fixture, and that import reports every user the server sees in it.
func TestImportFixtureIsValid(t *testing.T) {
	opts, err := server.ProcessConfigFile(importConf)
	if err != nil {
		t.Fatalf("nats-server rejects %s: %v", importConf, err)
	}
	var serverSees []string
	for _, u := range opts.Users {
		serverSees = append(serverSees, u.Username)
	}
	for _, u := range opts.Nkeys {
		serverSees = append(serverSees, u.Nkey)
	}
	var reported []string
	for _, r := range importConfRows {
		reported = append(reported, r.name)
	}
	slices.Sort(serverSees)
	slices.Sort(reported)
	if !slices.Equal(serverSees, reported) {
		t.Errorf("nats-server sees users %q in the fixture, the test expects import to report %q", serverSees, reported)
	}
}

func TestImport(t *testing.T) {
	for _, env := range envs {
		t.Run(env.name, func(t *testing.T) {
			s := serveEmbedded(t, env.xkey)

			t.Run("dry run changes nothing", func(t *testing.T) {
				before := importState(t, s.dir)
				r := mustImport(t, 0, "import", importConf, "--dir", s.dir, "--dry-run")
				for _, want := range []string{
					"USER", "ACCOUNT", "ACTION", "DETAIL",
					"dry run, nothing changed: would import 5 users and create 1 account; 0 users already exist; 6 not imported (see above)",
				} {
					if !strings.Contains(r.stdout, want) {
						t.Errorf("dry-run output lacks %q:\n%s", want, r.stdout)
					}
				}
				if after := importState(t, s.dir); after != before {
					t.Errorf("--dry-run changed the directory:\nbefore:\n%s\nafter:\n%s", before, after)
				}
				rep := decodeImport(t, mustImport(t, 0, "import", importConf, "--dir", s.dir, "--dry-run", "--json"))
				checkUserRows(t, rep.Users, importConfRows)
				if !rep.Summary.DryRun {
					t.Error("summary.dry_run is false for --dry-run")
				}
			})

			r := mustImport(t, 0, "import", importConf, "--dir", s.dir, "--json", "--nats", s.url)
			rep := decodeImport(t, r)
			checkUserRows(t, rep.Users, importConfRows)
			checkAccountRows(t, rep.Accounts, importConfAccounts)
			if got, want := rep.Summary, (importSummary{UsersImported: 5, UsersSkipped: 6, AccountsCreated: 1, AccountsSkipped: 1}); got != want {
				t.Errorf("summary = %+v, want %+v", got, want)
			}
			if !strings.Contains(r.stderr, "reloaded nats-server") {
				t.Errorf("import that created an account did not reload the server; stderr:\n%s", r.stderr)
			}

			t.Run("stored as in the file", func(t *testing.T) {
				svc := showImported(t, s.dir, "orders-svc")
				if svc.Account != "ORDERS" || svc.HashScheme != "argon2id" ||
					!slices.Equal(svc.Pub.Allow, []string{"orders.>"}) || !slices.Equal(svc.Pub.Deny, []string{"orders.secret.>"}) ||
					!slices.Equal(svc.Sub.Allow, []string{"orders.>", "_INBOX.>"}) || !slices.Equal(svc.Sub.Deny, []string{"orders.audit.>"}) ||
					svc.Resp == nil || svc.Resp.Max != 3 || svc.Resp.TTL != time.Minute {
					t.Errorf("orders-svc = %+v (resp %+v)", svc, svc.Resp)
				}
				bc := showImported(t, s.dir, "orders-bcrypt")
				if bc.HashScheme != "bcrypt" || bc.Resp == nil || bc.Resp.Max != 0 || bc.Resp.TTL != 0 ||
					!slices.Equal(bc.Pub.Allow, []string{"orders.in.>"}) || !slices.Equal(bc.Sub.Allow, []string{"orders.out.>"}) {
					t.Errorf("orders-bcrypt = %+v (resp %+v)", bc, bc.Resp)
				}
				alice := showImported(t, s.dir, "alice")
				if alice.Account != "APP" || alice.HashScheme != "bcrypt" || !slices.Equal(alice.Sub.Allow, []string{"app.>", "_INBOX.>"}) {
					t.Errorf("alice = %+v", alice)
				}
				if ws := showImported(t, s.dir, "orders-ws"); !slices.Equal(ws.ConnTypes, []string{"STANDARD"}) {
					t.Errorf("orders-ws connection types = %q, want [STANDARD]", ws.ConnTypes)
				}
				users := mustRun(t, "", "user", "list", "--dir", s.dir, "--json").stdout
				for _, skipped := range []string{"orders-queue", "orders-nopass", "orders-default", "sysadmin"} {
					if strings.Contains(users, `"`+skipped+`"`) {
						t.Errorf("skipped user %s is in the database", skipped)
					}
				}
			})

			t.Run("new account in accounts.conf", func(t *testing.T) {
				conf, err := os.ReadFile(filepath.Join(s.dir, deploy.AccountsConf))
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(string(conf), "ORDERS: { limits: { max_connections: 100, max_payload: 65536 } }") {
					t.Errorf("accounts.conf:\n%s", conf)
				}
				opts, err := server.ProcessConfigFile(filepath.Join(s.dir, deploy.ServerConf))
				if err != nil {
					t.Fatalf("nats-server rejects the config after import: %v", err)
				}
				if !slices.ContainsFunc(opts.Accounts, func(a *server.Account) bool { return a.Name == "ORDERS" }) {
					t.Error("nats-server does not see account ORDERS after import")
				}
			})

			s.reload(t)

			t.Run("users log in with their old passwords", func(t *testing.T) {
				for _, c := range []struct{ user, pass string }{
					{"alice", "alice-pass"},                 // bcrypt $2a$
					{"bob", "bob-pass"},                     // plain text
					{"orders-svc", "orders-plain-pass"},     // plain text, new account
					{"orders-bcrypt", "orders-bcrypt-pass"}, // bcrypt $2b$, new account
				} {
					nc, err := s.connect(c.user, c.pass)
					if err != nil {
						t.Errorf("connect as %s with its password from the old nats.conf: %v", c.user, err)
						continue
					}
					nc.Close()
				}
				_, err := s.connect("alice", "bob-pass")
				wantAuthViolation(t, err)
				_, err = s.connect("sysadmin", "admin-pass")
				wantAuthViolation(t, err)
			})

			t.Run("permissions hold", func(t *testing.T) {
				alice, aliceErrs := importConnect(t, s, "alice", "alice-pass")
				importWantPublish(t, alice, aliceErrs, "app.x", true)
				importWantPublish(t, alice, aliceErrs, "other.x", false)

				svc, svcErrs := importConnect(t, s, "orders-svc", "orders-plain-pass")
				importWantPublish(t, svc, svcErrs, "orders.new", true)
				importWantPublish(t, svc, svcErrs, "orders.secret.x", false)
				if _, err := svc.SubscribeSync("orders.audit.x"); err != nil {
					t.Fatal(err)
				}
				svc.Flush()
				select {
				case err := <-svcErrs:
					if !strings.Contains(err.Error(), `Permissions Violation for Subscription to "orders.audit.x"`) {
						t.Errorf("subscribe to a denied subject: %v", err)
					}
				case <-time.After(5 * time.Second):
					t.Error("subscribe to orders.audit.x, denied in the file, was allowed")
				}
			})

			t.Run("responses and account placement", func(t *testing.T) {
				// orders-bcrypt may publish only to orders.in.>, but answer
				// requests (allow_responses); bob, in APP, sees nothing of
				// ORDERS.
				responder, _ := importConnect(t, s, "orders-bcrypt", "orders-bcrypt-pass")
				if _, err := responder.Subscribe("orders.out.>", func(m *nats.Msg) { m.Respond([]byte("done")) }); err != nil {
					t.Fatal(err)
				}
				responder.Flush()
				bob, _ := importConnect(t, s, "bob", "bob-pass")
				spy, _ := bob.SubscribeSync("orders.out.>")
				bob.Flush()

				svc, _ := importConnect(t, s, "orders-svc", "orders-plain-pass")
				reply, err := svc.Request("orders.out.ship", []byte("ship it"), 5*time.Second)
				if err != nil {
					t.Fatalf("request from orders-svc to orders-bcrypt: %v", err)
				}
				if string(reply.Data) != "done" {
					t.Errorf("reply = %q", reply.Data)
				}
				if m, err := spy.NextMsg(300 * time.Millisecond); err == nil {
					t.Errorf("bob in APP received %q from ORDERS", m.Data)
				}
			})

			t.Run("running again changes nothing", func(t *testing.T) {
				before := importState(t, s.dir)
				r := mustImport(t, 0, "import", importConf, "--dir", s.dir)
				if want := "imported 0 users, 0 accounts created; 5 users already existed; 6 not imported (see above)"; !strings.Contains(r.stdout, want) {
					t.Errorf("second import output lacks %q:\n%s", want, r.stdout)
				}
				rep := decodeImport(t, mustImport(t, 0, "import", importConf, "--dir", s.dir, "--json"))
				var want []wantRow
				for _, w := range importConfRows {
					if w.action == "add" {
						w.action, w.detail = "exists", "left unchanged"
					}
					want = append(want, w)
				}
				checkUserRows(t, rep.Users, want)
				checkAccountRows(t, rep.Accounts, []wantRow{{"ORDERS", "", "exists", "left unchanged"}, {"SYS", "", "skip", ""}})
				if after := importState(t, s.dir); after != before {
					t.Errorf("second import changed the directory:\nbefore:\n%s\nafter:\n%s", before, after)
				}
			})
		})
	}
}

// importConnect logs in and returns the connection with its async errors.
func importConnect(t *testing.T, s *servedDir, user, pass string) (*nats.Conn, <-chan error) {
	t.Helper()
	errs := make(chan error, 16)
	nc, err := s.connect(user, pass, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	return nc, errs
}

// importWantPublish publishes to subject and checks that the server allows
// or refuses it.
func importWantPublish(t *testing.T, nc *nats.Conn, errs <-chan error, subject string, allowed bool) {
	t.Helper()
	if err := nc.Publish(subject, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// A refused publish is reported before the flush's PONG; the wait
	// covers only the error handler's goroutine.
	select {
	case err := <-errs:
		want := `Permissions Violation for Publish to "` + subject + `"`
		if allowed || !strings.Contains(err.Error(), want) {
			t.Errorf("publish to %s: %v (allowed: %v)", subject, err, allowed)
		}
	case <-time.After(500 * time.Millisecond):
		if !allowed {
			t.Errorf("publish to %s was allowed, want a permissions violation", subject)
		}
	}
}

func TestImportSkips(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "", "init", "--dir", dir)
	rep := decodeImport(t, mustImport(t, 0, "import", importOddConf, "--dir", dir, "--json"))
	checkUserRows(t, rep.Users, []wantRow{
		{"carol", "APP", "skip", `permission "frobnicate" is not understood`},
		{"dave", "APP", "skip", `has "perms", which import does not understand`},
		{"bad name", "APP", "skip", "whitespace"},
		{"erin", "APP", "skip", "empty token"},
		{"frank", "APP", "skip", "allow_responses.expires is not a duration string"},
		{"grace", "APP", "skip", `scheme "2x" is not supported`},
		{"heidi", "APP", "skip", "template"},
		{"ivan", "APP", "skip", "proxy_required"},
		{"judy", "APP", "skip", `publish has "except"`},
		{"mallory", "APP", "skip", "defined 2 times"},
		{"mallory", "APP", "skip", "defined 2 times"},
		{"admin", "APP", "skip", "authrelay's own static user"},
		{"oscar", "APP", "add", "plain-text password"},
		{"(token)", "", "skip", "token authentication"},
	})
	if got, want := rep.Summary, (importSummary{UsersImported: 1, UsersSkipped: 13}); got != want {
		t.Errorf("summary = %+v, want %+v", got, want)
	}
	users := mustRun(t, "", "user", "list", "--dir", dir, "--json").stdout
	var list []struct{ Name string }
	if err := json.Unmarshal([]byte(users), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Name != "oscar" {
		t.Errorf("users after importing odd.conf = %+v, want only oscar", list)
	}

	t.Run("table", func(t *testing.T) {
		r := mustImport(t, 0, "import", importOddConf, "--dir", dir)
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if !strings.HasPrefix(lines[0], "USER") || !strings.Contains(lines[0], "ACCOUNT  ACTION  DETAIL") {
			t.Errorf("header = %q", lines[0])
		}
		if want := "imported 0 users, 0 accounts created; 1 user already existed; 13 not imported (see above)"; lines[len(lines)-1] != want {
			t.Errorf("summary line = %q, want %q", lines[len(lines)-1], want)
		}
		// The DETAIL column starts at the same offset on every row.
		col := strings.Index(lines[0], "DETAIL")
		for _, l := range lines[1 : len(lines)-1] {
			if len(l) < col || l[col-2:col] != "  " || l[col] == ' ' {
				t.Errorf("row not aligned with the header: %q", l)
			}
		}
	})
}

func TestImportAccountChoice(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "", "init", "--dir", dir, "--account", "APP", "--account", "OPS")
	before := importState(t, dir)
	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		contains string
	}{
		{"two candidates", nil, 2, "give --account, one of APP, OPS"},
		{"unknown account", []string{"--account", "NOPE"}, 2, "--account NOPE: no such account"},
		{"reserved account", []string{"--account", "SYS"}, 2, "reserved"},
		{"invalid account", []string{"--account", "bad name"}, 2, "--account"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustImport(t, tc.code, append([]string{"import", importConf, "--dir", dir}, tc.args...)...)
			if !strings.Contains(r.stderr, tc.contains) {
				t.Errorf("stderr = %q, want %q", r.stderr, tc.contains)
			}
		})
	}
	if after := importState(t, dir); after != before {
		t.Errorf("a refused import changed the directory:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	t.Run("an account the file creates", func(t *testing.T) {
		rep := decodeImport(t, mustImport(t, 0, "import", importConf, "--dir", dir, "--account", "ORDERS", "--dry-run", "--json"))
		if u := rep.Users[0]; u.Name != "alice" || u.Account != "ORDERS" || u.Action != "add" {
			t.Errorf("alice with --account ORDERS: %+v", u)
		}
	})
	t.Run("single authorization user", func(t *testing.T) {
		rep := decodeImport(t, mustImport(t, 0, "import", importSingleConf, "--dir", dir, "--account", "OPS", "--json"))
		checkUserRows(t, rep.Users, []wantRow{{"solo", "OPS", "add", "full access"}})
		if u := showImported(t, dir, "solo"); u.Account != "OPS" || !slices.Equal(u.Pub.Allow, []string{">"}) || !slices.Equal(u.Sub.Allow, []string{">"}) || len(u.Pub.Deny)+len(u.Sub.Deny) != 0 {
			t.Errorf("solo = %+v", u)
		}
	})
}

func TestImportBadInput(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "", "init", "--dir", dir)
	before := importState(t, dir)
	missing := filepath.Join(t.TempDir(), "missing.conf")
	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		contains []string
	}{
		{"missing file", []string{"import", missing}, 1, []string{missing, "no such file"}},
		{"unparseable file", []string{"import", importBrokenConf}, 1, []string{importBrokenConf, "Unexpected EOF"}},
		{"no file", []string{"import"}, 2, []string{"give one FILE"}},
		{"two files", []string{"import", importConf, importOddConf}, 2, []string{"give one FILE"}},
		{"unknown flag", []string{"import", importConf, "--frob"}, 2, []string{"frob"}},
		{"not initialised", []string{"import", importConf, "--dir", filepath.Join(dir, "nope")}, 1, []string{"authrelay init"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if !slices.Contains(args, "--dir") {
				args = append(args, "--dir", dir)
			}
			r := mustImport(t, tc.code, args...)
			for _, want := range tc.contains {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr = %q, want %q", r.stderr, want)
				}
			}
			if r.stdout != "" && tc.code == 1 {
				t.Errorf("failed import printed a report:\n%s", r.stdout)
			}
		})
	}
	if after := importState(t, dir); after != before {
		t.Errorf("a failed import changed the directory:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	t.Run("help", func(t *testing.T) {
		r := mustImport(t, 0, "import", "-h")
		for _, want := range []string{"Usage: authrelay import FILE", "Exit status: 0 when the import ran", "Examples:", "--dry-run"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("help lacks %q:\n%s", want, r.stderr)
			}
		}
	})
}
