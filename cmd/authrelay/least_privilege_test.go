package main

import (
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/store"
)

// publishRefused publishes to subject as nc and reports whether the server
// refused it with a Permissions Violation.
func publishRefused(t *testing.T, nc *nats.Conn, errs <-chan error, subject string) bool {
	t.Helper()
	if err := nc.Publish(subject, []byte("forged")); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs:
		return strings.Contains(err.Error(), `Permissions Violation for Publish to "`+subject+`"`)
	case <-time.After(500 * time.Millisecond):
		// The server sends the violation before the flush's PONG; this wait
		// only covers the error handler's goroutine.
		return false
	}
}

// receives subscribes to subject as sub, publishes to it as pub and reports
// whether the message arrived.
func receives(t *testing.T, sub, pub *nats.Conn, subject string) bool {
	t.Helper()
	s, err := sub.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Unsubscribe()
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(subject, []byte("real")); err != nil {
		t.Fatal(err)
	}
	if err := pub.Flush(); err != nil {
		t.Fatal(err)
	}
	m, err := s.NextMsg(3 * time.Second)
	return err == nil && string(m.Data) == "real"
}

// TestReaderCannotPublish is the reproduction through the real
// program and server: a user (or the README's reader role) with only
// subscribe rules gets a JWT that permits no publish at all.
func TestReaderCannotPublish(t *testing.T) {
	for _, e := range envs {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			s := serveEmbedded(t, e.xkey)
			s.addUser(t, "reader", "reader-pw", "--account", "APP", "--sub", "metrics.>")
			mustRun(t, "", "role", "add", "reader", "--dir", s.dir, "--sub", "metrics.>", "--deny-sub", "metrics.secret.>")
			s.addUser(t, "dashboard", "dash-pw-123", "--account", "APP", "--role", "reader")
			s.addUser(t, "feeder", "feeder-pw", "--account", "APP", "--pub", "metrics.>")
			s.addUser(t, "admin2", "admin2-pw", "--account", "APP", "--pub", ">", "--sub", ">")

			admin, _ := s.connectWithErrs(t, "admin2", "admin2-pw")
			feeder, feederErrs := s.connectWithErrs(t, "feeder", "feeder-pw")
			for _, name := range []struct{ user, password string }{{"reader", "reader-pw"}, {"dashboard", "dash-pw-123"}} {
				t.Run(name.user, func(t *testing.T) {
					nc, errs := s.connectWithErrs(t, name.user, name.password)
					for _, subj := range []string{"svc.billing.cancel", "metrics.cpu", "$JS.API.STREAM.CREATE.X"} {
						if !publishRefused(t, nc, errs, subj) {
							t.Errorf("%s published to %s: a user with only subscribe rules may publish nothing", name.user, subj)
						}
					}
					if !receives(t, nc, feeder, "metrics.cpu") {
						t.Errorf("%s did not receive metrics.cpu: its subscribe grant must work", name.user)
					}
				})
			}
			t.Run("controls", func(t *testing.T) {
				if !receives(t, admin, admin, "svc.billing.cancel") {
					t.Error("a user granted --pub '>' --sub '>' could not publish and receive svc.billing.cancel")
				}
				if !subscribeRefused(t, feeder, feederErrs, "metrics.cpu") {
					t.Error("feeder, with only publish rules, subscribed to metrics.cpu")
				}
			})

			t.Run("explain says it in words", func(t *testing.T) {
				r := mustRun(t, "", "user", "explain", "dashboard", "--dir", s.dir)
				for _, want := range []string{"publish:", "nothing (no role or rule allows a subject)", "only metrics.>, except metrics.secret.>"} {
					if !strings.Contains(r.stdout, want) {
						t.Errorf("explain dashboard lacks %q:\n%s", want, r.stdout)
					}
				}
				r = mustRun(t, "", "user", "explain", "admin2", "--dir", s.dir, "--json")
				var v explainView
				if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
					t.Fatal(err)
				}
				if v.PubScope != "anything" || v.SubScope != "anything" {
					t.Errorf("admin2 pub_scope %q sub_scope %q, want anything and anything", v.PubScope, v.SubScope)
				}
				r = mustRun(t, "", "user", "explain", "feeder", "--dir", s.dir, "--json")
				if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
					t.Fatal(err)
				}
				if v.PubScope != "limited" || v.SubScope != "nothing" {
					t.Errorf("feeder pub_scope %q sub_scope %q, want limited and nothing", v.PubScope, v.SubScope)
				}
			})
		})
	}
}

// oldSchemaDB replaces dir's database with one at schema version 6, the
// last before least privilege, built from the migration files themselves,
// holding account APP and the users given as name → permissions JSON, each
// with password name+"-pw".
func oldSchemaDB(t *testing.T, dir string, users map[string]string) {
	t.Helper()
	path := deploy.Layout{Dir: dir}.Path(deploy.DatabaseFile)
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(path + suffix); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	files, err := filepath.Glob(filepath.Join("..", "..", "store", "migrations", "*.sql"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	db, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=WAL&_foreign_keys=on")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for _, f := range files[:6] {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		exec(string(b))
	}
	exec("PRAGMA user_version = 6")
	ts := time.Now().UTC().Format("2006-01-02T15:04:05.000000000Z")
	exec(`INSERT INTO accounts (name, created) VALUES ('APP', ?)`, ts)
	for name, perms := range users {
		hash, err := store.HashPassword(name+"-pw", store.Argon2Params{Memory: 8192, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32})
		if err != nil {
			t.Fatal(err)
		}
		exec(`INSERT INTO users (name, account, password_hash, permissions, created, updated) VALUES (?, 'APP', ?, ?, ?, ?)`, name, hash, perms, ts, ts)
	}
}

// TestUpgradeKeepsWorkingUsersWorking: a database from before least
// privilege is migrated so that a user whose direction was open (empty)
// keeps it, now as an explicit '>' that explain and doctor show; a
// service whose publish was already closed by its response permission
// stays closed.
func TestUpgradeKeepsWorkingUsersWorking(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "", "init", "--dir", dir)
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	oldSchemaDB(t, dir, map[string]string{
		"legacy": `{"pub":{"allow":null,"deny":null},"sub":{"allow":["metrics.>"],"deny":null}}`,
		"svc":    `{"pub":{"allow":null,"deny":null},"sub":{"allow":["svc.>"],"deny":null},"resp":{"max":0,"ttl":0}}`,
	})
	code, got := doctorJSON(t, "--dir", dir, "--offline")
	if code != exitOK {
		t.Errorf("doctor on the old database: exit %d, want 0:\n%s", code, doctorDump(got))
	}
	doctorWant(t, got, "warn", "database", "migrates it")

	s := serveOn(t, dir)
	nc, errs := s.connectWithErrs(t, "legacy", "legacy-pw")
	if !receives(t, nc, nc, "metrics.cpu") {
		t.Error("legacy could not publish and receive metrics.cpu after the upgrade")
	}
	if publishRefused(t, nc, errs, "anything.else") {
		t.Error("legacy, who could publish anywhere before the upgrade, was refused after it")
	}
	svc, svcErrs := s.connectWithErrs(t, "svc", "svc-pw")
	if !publishRefused(t, svc, svcErrs, "svc.x") {
		t.Error("svc, whose publish its response permission closed before the upgrade, may publish after it")
	}

	r := mustRun(t, "", "user", "explain", "legacy", "--dir", dir)
	if !strings.Contains(r.stdout, "anything") {
		t.Errorf("explain legacy after the upgrade does not say publish: anything:\n%s", r.stdout)
	}
	code, got = doctorJSON(t, "--dir", dir, "--offline")
	if code != exitOK {
		t.Errorf("doctor after the upgrade: exit %d, want 0 (an unrestricted direction is a warning):\n%s", code, doctorDump(got))
	}
	doctorWant(t, got, "warn", "unrestricted", "legacy (publish)")
	for _, res := range doctorFind(got, "unrestricted") {
		if strings.Contains(res.Message, "svc (") {
			t.Errorf("doctor lists svc, which has no unrestricted direction: %s", res.Message)
		}
	}
}

func TestDoctorUnrestricted(t *testing.T) {
	dir := doctorInit(t, "127.0.0.1:4222")
	code, got := doctorJSON(t, "--dir", dir, "--offline")
	if code != exitOK {
		t.Fatalf("doctor on a fresh directory: exit %d:\n%s", code, doctorDump(got))
	}
	doctorWant(t, got, "ok", "unrestricted", "no user or role")

	mustRun(t, "pw-1-abcdef\n", "user", "add", "reader", "--dir", dir, "--password-stdin", "--sub", "metrics.>")
	mustRun(t, "", "role", "add", "ops", "--dir", dir, "--pub", ">", "--deny-pub", "$SYS.>")
	mustRun(t, "pw-2-abcdef\n", "user", "add", "opsuser", "--dir", dir, "--password-stdin", "--role", "ops", "--sub", ">")
	code, got = doctorJSON(t, "--dir", dir, "--offline")
	if code != exitOK {
		t.Errorf("exit %d, want 0: an unrestricted direction is a warning:\n%s", code, doctorDump(got))
	}
	doctorWant(t, got, "warn", "unrestricted", "1 user: opsuser (publish except $SYS.>, subscribe)")
	doctorWant(t, got, "warn", "unrestricted", "1 role: ops (publish except $SYS.>)")
	for _, r := range doctorFind(got, "unrestricted") {
		if strings.Contains(r.Message, "reader") {
			t.Errorf("doctor lists reader, who may only subscribe to metrics.>: %s", r.Message)
		}
	}
}

// importLeastConf is the fixture of users whose nats.conf permissions leave
// a direction unrestricted.
var importLeastConf = filepath.Join("testdata", "import", "least.conf")

// probeSubjects are what the import differential test tries to publish and
// subscribe to.
var probeSubjects = []string{"metrics.cpu", "secret.plans", "svc.echo", "other.x"}

// probe logs in to url and returns, for each of probeSubjects, whether
// the server let the user publish and subscribe to it.
func probe(t *testing.T, url, user, password string) (pub, sub map[string]bool) {
	t.Helper()
	errs := make(chan error, 64)
	nc, err := nats.Connect(url, nats.UserInfo(user, password), nats.NoReconnect(), nats.Timeout(5*time.Second),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	if err != nil {
		t.Fatalf("connect as %s to %s: %v", user, url, err)
	}
	defer nc.Close()
	for _, s := range probeSubjects {
		if err := nc.Publish(s, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := nc.SubscribeSync(s); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	pub, sub = map[string]bool{}, map[string]bool{}
	for _, s := range probeSubjects {
		pub[s], sub[s] = true, true
	}
	// The server reports each violation before the flush's PONG; the wait
	// covers only the error handler's goroutine.
	timeout := time.After(500 * time.Millisecond)
	for {
		select {
		case err := <-errs:
			msg := err.Error()
			for _, s := range probeSubjects {
				if strings.Contains(msg, `Permissions Violation for Publish to "`+s+`"`) {
					pub[s] = false
				}
				if strings.Contains(msg, `Permissions Violation for Subscription to "`+s+`"`) {
					sub[s] = false
				}
			}
		case <-timeout:
			return pub, sub
		}
	}
}

// TestImportKeepsWhatNatsServerGranted: for each user of the fixture, the
// subjects it may publish and subscribe to after import, through authrelay,
// are those a stock nats-server running the fixture itself lets it use.
func TestImportKeepsWhatNatsServerGranted(t *testing.T) {
	opts, err := server.ProcessConfigFile(importLeastConf)
	if err != nil {
		t.Fatalf("nats-server rejects %s: %v", importLeastConf, err)
	}
	opts.Host, opts.Port, opts.NoLog, opts.NoSigs = "127.0.0.1", server.RANDOM_PORT, true, true
	stock, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go stock.Start()
	if !stock.ReadyForConnections(10 * time.Second) {
		t.Fatal("stock nats-server not ready")
	}
	t.Cleanup(func() {
		stock.Shutdown()
		stock.WaitForShutdown()
	})

	s := serveEmbedded(t, true)
	rep := decodeImport(t, mustImport(t, 0, "import", importLeastConf, "--dir", s.dir, "--json"))
	checkUserRows(t, rep.Users, []wantRow{
		{"nobody", "APP", "add", "full access ('>' for publish and subscribe)"},
		{"subonly", "APP", "add", "every publish subject ('>' for publish)"},
		{"pubonly", "APP", "add", "every subscribe subject ('>' for subscribe)"},
		{"denyonly", "APP", "add", "full access"},
		{"emptylists", "APP", "add", "full access"},
		{"responder", "APP", "add", "plain-text password"},
		{"narrow", "APP", "add", "plain-text password"},
	})
	if d := showImported(t, s.dir, "denyonly"); !slices.Equal(d.Pub.Allow, []string{">"}) || !slices.Equal(d.Pub.Deny, []string{"secret.>"}) {
		t.Errorf("denyonly publish = %+v, want allow > deny secret.>", d.Pub)
	}
	if r := showImported(t, s.dir, "responder"); len(r.Pub.Allow) != 0 || r.Resp == nil {
		t.Errorf("responder = %+v, want no publish allow and a response permission", r)
	}
	for _, r := range rep.Users {
		t.Run(r.Name, func(t *testing.T) {
			password := r.Name + "-pass"
			wantPub, wantSub := probe(t, stock.ClientURL(), r.Name, password)
			gotPub, gotSub := probe(t, s.url, r.Name, password)
			for _, subj := range probeSubjects {
				if gotPub[subj] != wantPub[subj] {
					t.Errorf("publish to %s: allowed %v through authrelay, %v by nats-server with the original file", subj, gotPub[subj], wantPub[subj])
				}
				if gotSub[subj] != wantSub[subj] {
					t.Errorf("subscribe to %s: allowed %v through authrelay, %v by nats-server with the original file", subj, gotSub[subj], wantSub[subj])
				}
			}
		})
	}
}

func TestUserAddNotesNothingGranted(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "", "init", "--dir", dir)
	const note = "may neither publish nor subscribe"
	r := mustRun(t, "pw-1-abcdef\n", "user", "add", "bare", "--dir", dir, "--password-stdin")
	if !strings.Contains(r.stderr, "bare "+note) || !strings.Contains(r.stderr, "--pub '>' --sub '>'") {
		t.Errorf("user add with no rules: stderr %q, want a note that bare may do nothing and how to grant everything", r.stderr)
	}
	for _, args := range [][]string{{"--sub", "metrics.>"}, {"--pub", "x"}, {"--allow-responses"}} {
		name := "u" + strings.Trim(args[len(args)-1], "-.>")
		r := mustRun(t, "pw-2-abcdef\n", append([]string{"user", "add", name, "--dir", dir, "--password-stdin"}, args...)...)
		if strings.Contains(r.stderr, note) {
			t.Errorf("user add %v: stderr %q, want no note", args, r.stderr)
		}
	}
	r = mustRun(t, "", "user", "set", "bare", "--dir", dir, "--pub", ">", "--sub", ">")
	if strings.Contains(r.stderr, note) {
		t.Errorf("user set granting everything: stderr %q, want no note", r.stderr)
	}
	r = mustRun(t, "", "user", "set", "bare", "--dir", dir, "--clear-pub", "--clear-sub")
	if !strings.Contains(r.stderr, "bare "+note) {
		t.Errorf("user set clearing both directions: stderr %q, want the note", r.stderr)
	}
}

// TestUserSetAllowResponsesFalseRemovesIt: --allow-responses=false takes
// the response permission away, as --no-responses does, rather than keeping
// the one the user has.
func TestUserSetAllowResponsesFalseRemovesIt(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "", "init", "--dir", dir)
	mustRun(t, "pw-3-abcdef\n", "user", "add", "svc", "--dir", dir, "--password-stdin", "--sub", "svc.req", "--allow-responses", "--resp-max", "3")
	resp := func() any {
		var u struct {
			Resp any `json:"resp"`
		}
		if err := json.Unmarshal([]byte(mustRun(t, "", "user", "show", "svc", "--dir", dir, "--json").stdout), &u); err != nil {
			t.Fatal(err)
		}
		return u.Resp
	}
	if resp() == nil {
		t.Fatal("user add --allow-responses stored no response permission")
	}
	if r := run(t, "", "user", "set", "svc", "--dir", dir, "--allow-responses=false", "--resp-ttl", "1s"); r.code != 2 || !strings.Contains(r.stderr, "--allow-responses=false contradicts") {
		t.Errorf("--allow-responses=false with --resp-ttl: exit %d, stderr %q; want 2 and the contradiction", r.code, r.stderr)
	}
	if resp() == nil {
		t.Fatal("a refused user set removed the response permission")
	}
	mustRun(t, "", "user", "set", "svc", "--dir", dir, "--allow-responses=false")
	if got := resp(); got != nil {
		t.Errorf("after user set --allow-responses=false: resp %v, want none", got)
	}
}
