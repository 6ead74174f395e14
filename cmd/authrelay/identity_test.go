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
	"github.com/authrelay/authrelay/store"
)

// permissionViolation subscribes to subject as nc and reports whether the
// server refused it.
func subscribeRefused(t *testing.T, nc *nats.Conn, errs <-chan error, subject string) bool {
	t.Helper()
	if _, err := nc.SubscribeSync(subject); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs:
		return strings.Contains(err.Error(), `Permissions Violation for Subscription to "`+subject+`"`)
	case <-time.After(500 * time.Millisecond):
		// A refused subscription is reported before the flush's PONG;
		// this wait only covers the error handler's own goroutine.
		return false
	}
}

// connectWithErrs logs in and returns the connection and its async errors.
func (s *servedDir) connectWithErrs(t *testing.T, user, password string) (*nats.Conn, <-chan error) {
	t.Helper()
	errs := make(chan error, 16)
	nc, err := s.connect(user, password, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		errs <- err
	}))
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	return nc, errs
}

func TestRolesAndTemplates(t *testing.T) {
	s := serveEmbedded(t, true)
	mustRun(t, "", "role", "add", "svc", "--dir", s.dir, "--sub", "svc.{{name}}.>", "--pub", "svc.{{name}}.>", "--sub", "acct.{{account}}")
	mustRun(t, "", "role", "add", "reader", "--dir", s.dir, "--sub", "metrics.>", "--deny-sub", "metrics.secret")
	s.addUser(t, "bob", "bob-pass", "--role", "svc", "--role", "reader")
	s.addUser(t, "alice", "alice-pass", "--role", "svc", "--sub", "metrics.secret")

	t.Run("explain", func(t *testing.T) {
		r := mustRun(t, "", "user", "explain", "bob", "--dir", s.dir, "--json")
		var v explainView
		if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
			t.Fatalf("%v\n%s", err, r.stdout)
		}
		if want := []string{"svc.bob.>", "acct.APP", "metrics.>"}; !slices.Equal(v.Sub.Allow, want) {
			t.Errorf("bob sub allow = %v, want %v", v.Sub.Allow, want)
		}
		if want := []string{"metrics.secret"}; !slices.Equal(v.Sub.Deny, want) {
			t.Errorf("bob sub deny = %v, want %v", v.Sub.Deny, want)
		}
		if v.Login != "allowed" || v.Account != "APP" {
			t.Errorf("login %q account %q", v.Login, v.Account)
		}
		var raw map[string]any
		json.Unmarshal([]byte(r.stdout), &raw)
		for _, k := range []string{"name", "account", "pub", "sub"} {
			if _, ok := raw[k]; !ok {
				t.Errorf("explain --json lacks %q", k)
			}
		}
	})
	t.Run("bob gets svc.bob.> and not svc.alice.>", func(t *testing.T) {
		nc, errs := s.connectWithErrs(t, "bob", "bob-pass")
		if subscribeRefused(t, nc, errs, "svc.bob.x") {
			t.Error("bob refused svc.bob.x")
		}
		if !subscribeRefused(t, nc, errs, "svc.alice.x") {
			t.Error("bob allowed svc.alice.x")
		}
		if subscribeRefused(t, nc, errs, "acct.APP") {
			t.Error("bob refused acct.APP ({{account}})")
		}
		if !subscribeRefused(t, nc, errs, "metrics.secret") {
			t.Error("bob allowed metrics.secret, denied by his role")
		}
	})
	t.Run("alice's own allow of a subject another role denies", func(t *testing.T) {
		nc, errs := s.connectWithErrs(t, "alice", "alice-pass")
		if subscribeRefused(t, nc, errs, "svc.alice.x") {
			t.Error("alice refused svc.alice.x")
		}
		if !subscribeRefused(t, nc, errs, "svc.bob.x") {
			t.Error("alice allowed svc.bob.x")
		}
		if subscribeRefused(t, nc, errs, "metrics.secret") {
			t.Error("alice refused metrics.secret, which she holds herself and no role of hers denies")
		}
	})
	t.Run("a name that would inject a wildcard cannot log in", func(t *testing.T) {
		for _, name := range []string{"evil.alice", "x*", "y>"} {
			s.addUser(t, name, "evil-pass", "--role", "svc")
			_, err := s.connect(name, "evil-pass")
			wantAuthViolation(t, err)
			r := run(t, "", "user", "explain", name, "--dir", s.dir, "--json")
			if r.code != exitFailure || !strings.Contains(r.stdout, `"template_unsafe"`) {
				t.Errorf("explain %s does not say template_unsafe:\n%s", name, r.stdout)
			}
		}
		// A dotted name is fine where no template uses it.
		s.addUser(t, "svc.plain", "plain-pass", "--sub", "plain.>")
		nc, err := s.connect("svc.plain", "plain-pass")
		if err != nil {
			t.Fatalf("dotted name without templates: %v", err)
		}
		nc.Close()
	})
	t.Run("changing a role changes every holder's next connect", func(t *testing.T) {
		mustRun(t, "", "role", "set", "reader", "--dir", s.dir, "--sub", "logs.>")
		nc, errs := s.connectWithErrs(t, "bob", "bob-pass")
		if !subscribeRefused(t, nc, errs, "metrics.x") {
			t.Error("bob still allowed metrics.x after the role changed")
		}
		if subscribeRefused(t, nc, errs, "logs.x") {
			t.Error("bob refused logs.x after the role allowed it")
		}
	})
	t.Run("role rm refuses while held, --force removes it from holders", func(t *testing.T) {
		r := run(t, "", "role", "rm", "reader", "--dir", s.dir)
		if r.code != 1 || !strings.Contains(r.stderr, "bob") || !strings.Contains(r.stderr, "--force") {
			t.Errorf("role rm of a held role: exit %d, %q", r.code, r.stderr)
		}
		mustRun(t, "", "role", "show", "reader", "--dir", s.dir)
		r = mustRun(t, "", "role", "rm", "reader", "--dir", s.dir, "--force")
		if !strings.Contains(r.stdout, "bob") {
			t.Errorf("role rm --force does not say whom it changed: %q", r.stdout)
		}
		r = mustRun(t, "", "user", "show", "bob", "--dir", s.dir, "--json")
		if strings.Contains(r.stdout, "reader") {
			t.Errorf("bob still holds reader:\n%s", r.stdout)
		}
	})
}

func TestUserSet(t *testing.T) {
	s := serveEmbedded(t, true)
	mustRun(t, "", "role", "add", "svc", "--dir", s.dir, "--sub", "svc.>")
	s.addUser(t, "bob", "bob-pass", "--pub", "a.>", "--sub", "b.>", "--role", "svc")

	show := func() userView {
		t.Helper()
		var v userView
		r := mustRun(t, "", "user", "show", "bob", "--dir", s.dir, "--json")
		if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	mustRun(t, "", "user", "set", "bob", "--dir", s.dir, "--pub", "c.>", "--expires", "2099-01-01")
	v := show()
	if !slices.Equal(v.Pub.Allow, []string{"c.>"}) || !slices.Equal(v.Sub.Allow, []string{"b.>"}) || !slices.Equal(v.Roles, []string{"svc"}) {
		t.Errorf("after set --pub: pub %v sub %v roles %v; want only pub replaced", v.Pub.Allow, v.Sub.Allow, v.Roles)
	}
	if v.Expires == nil || v.Expires.Year() != 2099 {
		t.Errorf("expires = %v", v.Expires)
	}

	t.Run("src outside refuses, inside allows", func(t *testing.T) {
		mustRun(t, "", "user", "set", "bob", "--dir", s.dir, "--src", "10.0.0.0/8")
		_, err := s.connect("bob", "bob-pass")
		wantAuthViolation(t, err)
		mustRun(t, "", "user", "set", "bob", "--dir", s.dir, "--src", "10.0.0.0/8", "--src", "127.0.0.1")
		nc, err := s.connect("bob", "bob-pass")
		if err != nil {
			t.Fatalf("connect from an allowed source: %v", err)
		}
		nc.Close()
		mustRun(t, "", "user", "set", "bob", "--dir", s.dir, "--clear-src")
	})
	t.Run("conn-type WEBSOCKET refuses a TCP client", func(t *testing.T) {
		mustRun(t, "", "user", "set", "bob", "--dir", s.dir, "--conn-type", "websocket")
		_, err := s.connect("bob", "bob-pass")
		wantAuthViolation(t, err)
		mustRun(t, "", "user", "set", "bob", "--dir", s.dir, "--conn-type", "STANDARD")
		nc, err := s.connect("bob", "bob-pass")
		if err != nil {
			t.Fatalf("STANDARD client with --conn-type STANDARD: %v", err)
		}
		nc.Close()
	})
	t.Run("expired user is refused", func(t *testing.T) {
		mustRun(t, "", "user", "set", "bob", "--dir", s.dir, "--expires", "2001-01-01")
		_, err := s.connect("bob", "bob-pass")
		wantAuthViolation(t, err)
		mustRun(t, "", "user", "set", "bob", "--dir", s.dir, "--expires", "never")
	})
	t.Run("bad input changes nothing", func(t *testing.T) {
		before := show()
		for _, tc := range []struct {
			args     []string
			code     int
			contains string
		}{
			{[]string{"--role", "nope"}, 1, "role add"},
			{[]string{"--account", "NOPE"}, 1, "APP"},
			{[]string{"--src", "10.0.0.0/33"}, 2, "CIDR"},
			{[]string{"--conn-type", "CARRIER_PIGEON"}, 2, "STANDARD"},
			{[]string{"--max-subs", "10"}, 2, "account set"},
			{[]string{"--max-payload", "10"}, 2, "account"},
			{[]string{"--max-subs", "-1"}, 2, "account set"}, // any value given is refused, whatever the default
			{[]string{"--pub", "a..b"}, 2, "empty token"},
			{[]string{"--sub", "x.{{nmae}}"}, 2, "template"},
			{[]string{"--expires", "soon"}, 2, "never"},
			{[]string{"--src", "10.0.0.0/8", "--clear-src"}, 2, "contradict"},
			{[]string{}, 2, "at least one"},
		} {
			r := run(t, "", append([]string{"user", "set", "bob", "--dir", s.dir}, tc.args...)...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.contains) {
				t.Errorf("user set %v: exit %d, %q; want %d and %q", tc.args, r.code, r.stderr, tc.code, tc.contains)
			}
		}
		r := run(t, "", "user", "set", "nobody", "--dir", s.dir, "--pub", "x")
		if r.code != 1 || !strings.Contains(r.stderr, "not found") {
			t.Errorf("user set of a missing user: exit %d, %q", r.code, r.stderr)
		}
		after := show()
		after.Updated, before.Updated = time.Time{}, time.Time{}
		b1, _ := json.Marshal(before)
		b2, _ := json.Marshal(after)
		if string(b1) != string(b2) {
			t.Errorf("failed commands changed bob:\nbefore %s\nafter  %s", b1, b2)
		}
	})
}

func TestAccountsReloadWithoutRestart(t *testing.T) {
	s := serveEmbedded(t, true)
	// account add reloads the embedded server itself, through the system
	// account; no SIGHUP, no advice to signal every nats-server.
	r := mustRun(t, "", "account", "add", "ORDERS", "--dir", s.dir, "--max-payload", "1024", "--nats", s.url)
	if !strings.Contains(r.stdout, "reloaded nats-server") || strings.Contains(r.stdout+r.stderr, "--signal") {
		t.Errorf("account add does not say it reloaded the server:\nstdout %s\nstderr %s", r.stdout, r.stderr)
	}
	conf, _ := os.ReadFile(filepath.Join(s.dir, deploy.AccountsConf))
	if !strings.Contains(string(conf), "ORDERS: { limits: { max_payload: 1024 } }") {
		t.Errorf("accounts.conf:\n%s", conf)
	}
	if _, err := server.ProcessConfigFile(filepath.Join(s.dir, deploy.ServerConf)); err != nil {
		t.Fatalf("config after account add: %v", err)
	}
	s.addUser(t, "olga", "olga-pass", "--account", "ORDERS", "--pub", ">", "--sub", ">")
	s.addUser(t, "apu", "apu-pass", "--account", "APP", "--pub", ">", "--sub", ">")

	olga, err := s.connect("olga", "olga-pass")
	if err != nil {
		t.Fatalf("connect to the new account after reload: %v", err)
	}
	defer olga.Close()
	apu, err := s.connect("apu", "apu-pass")
	if err != nil {
		t.Fatal(err)
	}
	defer apu.Close()
	if got := olga.MaxPayload(); got != 1024 {
		t.Errorf("ORDERS max payload seen by the client = %d, want 1024", got)
	}
	sub, _ := olga.SubscribeSync("x")
	olga.Flush()
	apu.Publish("x", []byte("from APP"))
	apu.Flush()
	if msg, err := sub.NextMsg(300 * time.Millisecond); err == nil {
		t.Errorf("ORDERS received %q published in APP: not isolated", msg.Data)
	}
	own, _ := olga.SubscribeSync("y")
	olga.Flush()
	olga.Publish("y", []byte("own"))
	if _, err := own.NextMsg(5 * time.Second); err != nil {
		t.Errorf("olga does not receive her own message: %v", err)
	}

	t.Run("rm refuses while users remain", func(t *testing.T) {
		r := run(t, "", "account", "rm", "ORDERS", "--dir", s.dir)
		if r.code != 1 || !strings.Contains(r.stderr, "olga") {
			t.Errorf("account rm with users: exit %d, %q", r.code, r.stderr)
		}
		mustRun(t, "", "user", "rm", "olga", "--dir", s.dir)
		mustRun(t, "", "account", "rm", "ORDERS", "--dir", s.dir)
		conf, _ := os.ReadFile(filepath.Join(s.dir, deploy.AccountsConf))
		if strings.Contains(string(conf), "ORDERS") {
			t.Errorf("accounts.conf still has ORDERS:\n%s", conf)
		}
		s.reload(t)
	})
	t.Run("bad input", func(t *testing.T) {
		for _, tc := range []struct {
			args     []string
			code     int
			contains string
		}{
			{[]string{"account", "add", "APP"}, 1, "already exists"},
			{[]string{"account", "add", "SYS"}, 2, "reserved"},
			{[]string{"account", "add", "bad name"}, 2, "letters"},
			{[]string{"account", "add", "X", "--max-subs", "-5"}, 2, ""},
			{[]string{"account", "rm", "NOPE"}, 1, "not found"},
			{[]string{"account", "set", "APP"}, 2, "at least one"},
			{[]string{"user", "add", "u1", "--account", "NOPE", "--generate-password"}, 1, "known accounts"},
		} {
			r := run(t, "", append(tc.args, "--dir", s.dir)...)
			if r.code == 0 || (tc.code != 0 && r.code != tc.code) || !strings.Contains(r.stderr, tc.contains) {
				t.Errorf("%v: exit %d, %q; want %d and %q", tc.args, r.code, r.stderr, tc.code, tc.contains)
			}
		}
	})
}

func TestExportAndBackup(t *testing.T) {
	s := serveEmbedded(t, true)
	mustRun(t, "", "role", "add", "svc", "--dir", s.dir, "--sub", "svc.{{name}}.>")
	s.addUser(t, "bob", "bob-pass", "--role", "svc", "--src", "127.0.0.0/8")
	s.addUser(t, "alice", "alice-pass", "--pub", "orders.>")

	r := mustRun(t, "", "export", "--json", "--dir", s.dir)
	if strings.Contains(r.stdout, "$argon2id$") || strings.Contains(r.stdout, "password_hash") {
		t.Errorf("export without --with-hashes prints hashes")
	}
	var doc exportDoc
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Users) != 2 || len(doc.Roles) != 1 || len(doc.Accounts) != 1 {
		t.Errorf("export has %d users, %d roles, %d accounts; want 2, 1, 1", len(doc.Users), len(doc.Roles), len(doc.Accounts))
	}
	r = mustRun(t, "", "export", "--json", "--with-hashes", "--dir", s.dir)
	if strings.Count(r.stdout, "$argon2id$") != 2 {
		t.Errorf("export --with-hashes does not carry both hashes")
	}
	if strings.Contains(r.stdout, "bob-pass") || strings.Contains(r.stdout, "alice-pass") {
		t.Error("export prints a password")
	}
	mustRun(t, "", "export", "--dir", s.dir)

	// Backup while logins and admin writes go on.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if nc, err := s.connect("alice", "alice-pass"); err == nil {
				nc.Close()
			}
		}
	}()
	backup := filepath.Join(t.TempDir(), "copy.db")
	mustRun(t, "", "backup", backup, "--dir", s.dir)
	close(stop)
	<-done
	r = run(t, "", "backup", backup, "--dir", s.dir)
	if r.code != 1 || !strings.Contains(r.stderr, "exists") {
		t.Errorf("backup over an existing file: exit %d, %q", r.code, r.stderr)
	}

	db, err := store.Open(t.Context(), backup)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := exportAll(t.Context(), db, true)
	if err != nil {
		t.Fatal(err)
	}
	src, err := store.Open(t.Context(), filepath.Join(s.dir, deploy.DatabaseFile))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	want, err := exportAll(t.Context(), src, true)
	if err != nil {
		t.Fatal(err)
	}
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Errorf("backup differs from the database:\nbackup %s\nsource %s", g, w)
	}
	// The copy authenticates like the original.
	if _, err := db.Authenticate(t.Context(), "bob", "bob-pass"); err != nil {
		t.Errorf("bob does not authenticate against the backup: %v", err)
	}
}
