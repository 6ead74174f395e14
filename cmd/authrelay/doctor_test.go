package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/store"
)

// doctorRunAt runs 'authrelay doctor args…' in-process with the clock now.
func doctorRunAt(t *testing.T, now func() time.Time, args ...string) result {
	t.Helper()
	var out, errOut syncBuffer
	m := &Main{
		Stdin:  strings.NewReader(""),
		Stdout: &out,
		Stderr: &errOut,
		Getenv: func(string) string { return "" },
		Now:    now,
	}
	code := m.Exit(m.Run(context.Background(), append([]string{"doctor"}, args...)))
	return result{code: code, stdout: out.String(), stderr: errOut.String()}
}

// doctorJSON runs doctor with --json and decodes its report.
func doctorJSON(t *testing.T, args ...string) (int, []doctorResult) {
	t.Helper()
	r := doctorRunAt(t, time.Now, append(args, "--json")...)
	var got []doctorResult
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("doctor --json printed no JSON array (%v):\nstdout: %s\nstderr: %s", err, r.stdout, r.stderr)
	}
	return r.code, got
}

// doctorFind returns the results of one check.
func doctorFind(results []doctorResult, check string) []doctorResult {
	var out []doctorResult
	for _, r := range results {
		if r.Check == check {
			out = append(out, r)
		}
	}
	return out
}

// doctorWant fails the test unless the check has a result with status
// ("ok", "warn" or "fail") whose message contains substr.
func doctorWant(t *testing.T, results []doctorResult, status, check, substr string) {
	t.Helper()
	for _, r := range doctorFind(results, check) {
		if r.Status == status && strings.Contains(r.Message, substr) {
			return
		}
	}
	t.Errorf("no %s %q result containing %q; got:\n%s", status, check, substr, doctorDump(results))
}

func doctorDump(results []doctorResult) string {
	var b strings.Builder
	for _, r := range results {
		b.WriteString(r.Status + "  " + r.Check + "  " + r.Message + "\n")
	}
	return b.String()
}

// doctorInit initialises a directory whose nats.conf listens on listen.
func doctorInit(t *testing.T, listen string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	mustRun(t, "", "init", "--dir", dir, "--listen", listen)
	return dir
}

// doctorEdit rewrites a file of dir with edit, failing the test if edit
// changes nothing.
func doctorEdit(t *testing.T, dir, name string, edit func(string) string) {
	t.Helper()
	path := deploy.Layout{Dir: dir}.Path(name)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := edit(string(b))
	if out == string(b) {
		t.Fatalf("the edit changed nothing in %s:\n%s", name, b)
	}
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
}

// doctorReplaceLine replaces the line of s whose trimmed text starts with
// prefix.
func doctorReplaceLine(s, prefix, with string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), prefix) {
			lines[i] = with
		}
	}
	return strings.Join(lines, "\n")
}

// doctorStartServer runs nats-server in-process from dir's nats.conf, on a
// free loopback port, with no relay, and returns its URL.
func doctorStartServer(t *testing.T, dir string) string {
	t.Helper()
	opts, err := server.ProcessConfigFile(deploy.Layout{Dir: dir}.Path(deploy.ServerConf))
	if err != nil {
		t.Fatal(err)
	}
	opts.Host, opts.Port = "127.0.0.1", server.RANDOM_PORT
	opts.NoSigs, opts.NoLog = true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		t.Fatal("nats-server not ready within 10s")
	}
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return ns.ClientURL()
}

// doctorClosedPort returns a loopback port nothing listens on.
func doctorClosedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

var doctorLine = regexp.MustCompile(`^(ok  |warn|FAIL)  .{16}  \S`)

func TestDoctorHealthy(t *testing.T) {
	s := serveEmbedded(t, true)
	// t.TempDir's directories are 0755, which doctor warns about.
	if err := os.Chmod(s.dir, 0o700); err != nil {
		t.Fatal(err)
	}

	r := doctorRunAt(t, time.Now, "--dir", s.dir, "--nats", s.url)
	if r.code != exitOK || strings.Contains(r.stdout, "FAIL") {
		t.Fatalf("doctor on a healthy deployment: exit %d, want 0 and no FAIL\nstdout:\n%s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if !doctorLine.MatchString(line) {
			t.Errorf("line %q is not 'ok|warn|FAIL  <check>  <message>'", line)
		}
	}
	for _, check := range []string{"directory", "secrets.json", "database", "server config", "issuer", "xkey",
		"callout account", "auth_users", "allowed_accounts", "system account", "auth timeout",
		"server", "relay login", "admin login", "config in use", "server accounts", "clock", "relay answering"} {
		if !regexp.MustCompile(`(?m)^ok    ` + regexp.QuoteMeta(check) + ` `).MatchString(r.stdout) {
			t.Errorf("no ok line for %q:\n%s", check, r.stdout)
		}
	}
	if !strings.Contains(r.stdout, "nats-server 2.") {
		t.Errorf("doctor does not report the server's version:\n%s", r.stdout)
	}
	// The probe is one denied login of a random user, as the help says.
	if !strings.Contains(s.log.String(), "user=authrelay-doctor-") {
		t.Errorf("the relay's log shows no denied login of the doctor's probe user:\n%s", s.log.String())
	}

	t.Run("json", func(t *testing.T) {
		code, got := doctorJSON(t, "--dir", s.dir, "--nats", s.url)
		if code != exitOK {
			t.Fatalf("exit %d, want 0:\n%s", code, doctorDump(got))
		}
		for _, r := range got {
			if r.Status != "ok" && r.Status != "warn" {
				t.Errorf("status %q for %q, want ok or warn", r.Status, r.Check)
			}
		}
		doctorWant(t, got, "ok", "relay answering", "a relay denied a test login")
	})

	t.Run("clock skew", func(t *testing.T) {
		for _, c := range []struct {
			skew   time.Duration
			code   int
			status string
		}{
			{2 * time.Second, exitOK, "warn"},
			{10 * time.Second, exitFailure, "fail"},
			{-45 * time.Second, exitFailure, "fail"},
		} {
			now := func() time.Time { return time.Now().Add(c.skew) }
			r := doctorRunAt(t, now, "--dir", s.dir, "--nats", s.url, "--json")
			var got []doctorResult
			if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
				t.Fatal(err)
			}
			if r.code != c.code {
				t.Errorf("local clock off by %v: exit %d, want %d", c.skew, r.code, c.code)
			}
			want := "behind"
			if c.skew < 0 {
				want = "ahead of"
			}
			doctorWant(t, got, c.status, "clock", want+" this host's")
		}
	})

	t.Run("account not reloaded", func(t *testing.T) {
		// An account added to the database and accounts.conf but not yet
		// loaded by the server: its users cannot log in until a reload.
		mustRun(t, "", "account", "add", "ORDERS", "--dir", s.dir)
		s.addUser(t, "billing", "b1lling-pass", "--account", "ORDERS", "--pub", "orders.>")
		code, got := doctorJSON(t, "--dir", s.dir, "--nats", s.url)
		if code != exitFailure {
			t.Errorf("exit %d, want 1", code)
		}
		doctorWant(t, got, "fail", "server accounts", "ORDERS")
		doctorWant(t, got, "warn", "config in use", "reload")

		s.reload(t)
		code, got = doctorJSON(t, "--dir", s.dir, "--nats", s.url)
		if code != exitOK {
			t.Errorf("after reload: exit %d, want 0:\n%s", code, doctorDump(got))
		}
		doctorWant(t, got, "ok", "server accounts", "knows every account")
	})
}

func TestDoctorConfigProblems(t *testing.T) {
	otherIssuer := func(t *testing.T) string {
		kp, err := nkeys.CreateAccount()
		if err != nil {
			t.Fatal(err)
		}
		pub, err := kp.PublicKey()
		if err != nil {
			t.Fatal(err)
		}
		return pub
	}
	conf := func(edit func(string) string) func(*testing.T, string) {
		return func(t *testing.T, dir string) { doctorEdit(t, dir, deploy.ServerConf, edit) }
	}
	cases := []struct {
		name   string
		change func(t *testing.T, dir string)
		code   int
		status string
		check  string
		want   string
	}{{
		name: "wrong issuer",
		change: func(t *testing.T, dir string) {
			pub := otherIssuer(t)
			doctorEdit(t, dir, deploy.ServerConf, func(s string) string { return doctorReplaceLine(s, "issuer:", "    issuer: "+pub) })
		},
		code: exitFailure, status: "fail", check: "issuer", want: "does not match the relay's issuer key",
	}, {
		name:   "missing xkey",
		change: conf(func(s string) string { return doctorReplaceLine(s, "xkey:", "") }),
		code:   exitFailure, status: "fail", check: "xkey", want: "passwords travel in clear",
	}, {
		name: "xkey of another relay",
		change: func(t *testing.T, dir string) {
			kp, err := nkeys.CreateCurveKeys()
			if err != nil {
				t.Fatal(err)
			}
			pub, err := kp.PublicKey()
			if err != nil {
				t.Fatal(err)
			}
			doctorEdit(t, dir, deploy.ServerConf, func(s string) string { return doctorReplaceLine(s, "xkey:", "    xkey: "+pub) })
		},
		code: exitFailure, status: "fail", check: "xkey", want: "the relay cannot open the sealed requests",
	}, {
		name: "secrets readable by others",
		change: func(t *testing.T, dir string) {
			if err := os.Chmod(deploy.Layout{Dir: dir}.Path(deploy.SecretsFile), 0o644); err != nil {
				t.Fatal(err)
			}
		},
		code: exitFailure, status: "fail", check: "secrets.json", want: "chmod 600",
	}, {
		name: "directory writable by anyone",
		change: func(t *testing.T, dir string) {
			if err := os.Chmod(dir, 0o777); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Chmod(dir, 0o700) })
		},
		code: exitFailure, status: "fail", check: "directory", want: "chmod 700",
	}, {
		name: "extra static user in the callout account",
		change: conf(func(s string) string {
			return strings.Replace(s, `{ user: "authrelay",`, `{ user: "eve", password: "eve-pass" }, { user: "authrelay",`, 1)
		}),
		code: exitFailure, status: "fail", check: "callout account", want: `user "eve" in the callout account AUTH could read other users' passwords`,
	}, {
		name:   "relay user not in auth_users",
		change: conf(func(s string) string { return doctorReplaceLine(s, "auth_users:", `    auth_users: [ "someone" ]`) }),
		code:   exitFailure, status: "fail", check: "auth_users", want: `lacks the relay's user "authrelay"`,
	}, {
		name:   "callout account not set",
		change: conf(func(s string) string { return doctorReplaceLine(s, "account: AUTH", "") }),
		code:   exitFailure, status: "fail", check: "callout account", want: "auth_callout.account is not set",
	}, {
		name:   "no system account",
		change: conf(func(s string) string { return doctorReplaceLine(s, "system_account:", "") }),
		code:   exitFailure, status: "fail", check: "system account", want: "system_account is not set",
	}, {
		name:   "auth_callout misspelt",
		change: conf(func(s string) string { return strings.Replace(s, "auth_callout {", "auth_callout_disabled {", 1) }),
		code:   exitFailure, status: "fail", check: "server config", want: "nats-server would refuse",
	}, {
		name: "auth_callout removed",
		change: conf(func(s string) string {
			i, j := strings.Index(s, "authorization {"), strings.LastIndex(s, "}")
			return s[:i] + s[j+1:]
		}),
		code: exitFailure, status: "fail", check: "auth_callout", want: "never asks the relay",
	}, {
		name:   "allowed_accounts empty",
		change: conf(func(s string) string { return doctorReplaceLine(s, "allowed_accounts:", "") }),
		code:   exitOK, status: "warn", check: "allowed_accounts", want: "the admin cannot log in",
	}, {
		name:   "short authorization timeout",
		change: conf(func(s string) string { return doctorReplaceLine(s, "timeout:", "  timeout: 1") }),
		code:   exitOK, status: "warn", check: "auth timeout", want: "decision timeout",
	}, {
		name: "static user in an application account",
		change: func(t *testing.T, dir string) {
			doctorEdit(t, dir, deploy.AccountsConf, func(s string) string {
				return strings.Replace(s, "APP: {}", `APP: { users: [ { user: "bob", password: "bob-pass" } ] }`, 1)
			})
		},
		code: exitOK, status: "warn", check: "app accounts", want: `static users "bob" that log in with the server's own password check`,
	}, {
		name: "database account missing from the config",
		change: func(t *testing.T, dir string) {
			doctorEdit(t, dir, deploy.AccountsConf, func(s string) string { return strings.Replace(s, "APP: {}", "", 1) })
		},
		code: exitOK, status: "warn", check: "app accounts", want: "account APP of authrelay's database is not defined",
	}, {
		name: "no database",
		change: func(t *testing.T, dir string) {
			if err := os.Remove(deploy.Layout{Dir: dir}.Path(deploy.DatabaseFile)); err != nil {
				t.Fatal(err)
			}
		},
		code: exitFailure, status: "fail", check: "database", want: "does not exist",
	}, {
		name: "database from a newer authrelay",
		change: func(t *testing.T, dir string) {
			doctorSetSchemaVersion(t, deploy.Layout{Dir: dir}.Path(deploy.DatabaseFile), 999)
		},
		code: exitFailure, status: "fail", check: "database", want: "written by a newer authrelay",
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := doctorInit(t, "127.0.0.1:4222")
			if code, got := doctorJSON(t, "--dir", dir, "--offline"); code != exitOK {
				t.Fatalf("doctor on a fresh directory: exit %d, want 0:\n%s", code, doctorDump(got))
			}
			c.change(t, dir)
			code, got := doctorJSON(t, "--dir", dir, "--offline")
			if code != c.code {
				t.Errorf("exit %d, want %d", code, c.code)
			}
			doctorWant(t, got, c.status, c.check, c.want)
			for _, r := range got {
				if r.Status == "fail" && r.Check != c.check && c.code == exitOK {
					t.Errorf("unexpected failure: %s  %s", r.Check, r.Message)
				}
			}
		})
	}

	t.Run("text output", func(t *testing.T) {
		dir := doctorInit(t, "127.0.0.1:4222")
		pub := otherIssuer(t)
		doctorEdit(t, dir, deploy.ServerConf, func(s string) string { return doctorReplaceLine(s, "issuer:", "    issuer: "+pub) })
		r := doctorRunAt(t, time.Now, "--dir", dir, "--offline")
		if r.code != exitFailure {
			t.Errorf("exit %d, want 1", r.code)
		}
		if !regexp.MustCompile(`(?m)^FAIL  issuer  .*` + pub + `.*the server would reject every answer`).MatchString(r.stdout) {
			t.Errorf("no FAIL issuer line naming %s:\n%s", pub, r.stdout)
		}
		if !strings.Contains(r.stderr, "1 check failed: issuer") {
			t.Errorf("stderr does not sum up the failure: %q", r.stderr)
		}
	})

	t.Run("config kept elsewhere", func(t *testing.T) {
		dir := doctorInit(t, "127.0.0.1:4222")
		other := t.TempDir()
		for _, name := range []string{deploy.ServerConf, deploy.AccountsConf} {
			b, err := os.ReadFile(deploy.Layout{Dir: dir}.Path(name))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(other, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		doctorEdit(t, dir, deploy.ServerConf, func(s string) string { return doctorReplaceLine(s, "xkey:", "") })
		// DIR's own nats.conf lost its xkey; the server's config did not.
		code, got := doctorJSON(t, "--dir", dir, "--offline", "--config", filepath.Join(other, deploy.ServerConf))
		if code != exitOK {
			t.Errorf("exit %d, want 0:\n%s", code, doctorDump(got))
		}
		doctorWant(t, got, "ok", "server config", filepath.Join(other, deploy.ServerConf))
		doctorWant(t, got, "ok", "xkey", "is the relay's")
	})

	t.Run("older schema is not migrated", func(t *testing.T) {
		dir := doctorInit(t, "127.0.0.1:4222")
		path := deploy.Layout{Dir: dir}.Path(deploy.DatabaseFile)
		want, err := store.LatestSchemaVersion()
		if err != nil {
			t.Fatal(err)
		}
		if v := doctorUserVersion(t, path); v != want {
			t.Fatalf("schema version after init = %d, want %d", v, want)
		}
		doctorSetSchemaVersion(t, path, want-1)
		before, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		code, got := doctorJSON(t, "--dir", dir, "--offline")
		if code != exitOK {
			t.Errorf("exit %d, want 0 (an older schema is a warning)", code)
		}
		doctorWant(t, got, "warn", "database", fmt.Sprintf("has schema version %d, this authrelay's is %d: the next 'authrelay serve' or admin command migrates it", want-1, want))
		if v := doctorUserVersion(t, path); v != want-1 {
			t.Errorf("schema version after doctor = %d, want %d: doctor must not migrate", v, want-1)
		}
		after, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(before, after) {
			t.Errorf("doctor changed %s", path)
		}
	})

}

// doctorUserVersion reads the database's PRAGMA user_version.
func doctorUserVersion(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// doctorSetSchemaVersion sets the database's PRAGMA user_version.
func doctorSetSchemaVersion(t *testing.T, path string, v int) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("PRAGMA user_version = " + strconv.Itoa(v)); err != nil {
		t.Fatal(err)
	}
}

func TestDoctorNoRelay(t *testing.T) {
	dir := doctorInit(t, "127.0.0.1:4222")
	url := doctorStartServer(t, dir)

	start := time.Now()
	code, got := doctorJSON(t, "--dir", dir, "--nats", url)
	if code != exitFailure {
		t.Errorf("exit %d, want 1", code)
	}
	doctorWant(t, got, "fail", "relay answering", "no relay is answering logins")
	doctorWant(t, got, "fail", "relay answering", "authrelay serve --dir "+dir)
	// Everything else about the server is fine.
	doctorWant(t, got, "ok", "relay login", "callout account AUTH")
	doctorWant(t, got, "ok", "admin login", "nats-server")
	for _, r := range got {
		if r.Status == "fail" && r.Check != "relay answering" {
			t.Errorf("unexpected failure: %s  %s", r.Check, r.Message)
		}
	}
	if d := time.Since(start); d < 2*time.Second {
		t.Errorf("doctor took %v: it cannot know no relay answers before the 2s authorization timeout", d)
	}

	t.Run("relay password does not match", func(t *testing.T) {
		doctorEdit(t, dir, deploy.SecretsFile, func(s string) string {
			return regexp.MustCompile(`"relay_password": "[^"]*"`).ReplaceAllString(s, `"relay_password": "not-the-password"`)
		})
		if err := os.Chmod(deploy.Layout{Dir: dir}.Path(deploy.SecretsFile), 0o600); err != nil {
			t.Fatal(err)
		}
		code, got := doctorJSON(t, "--dir", dir, "--nats", url)
		if code != exitFailure {
			t.Errorf("exit %d, want 1", code)
		}
		doctorWant(t, got, "fail", "relay login", "refused the relay's user")
	})
}

func TestDoctorServerUnreachable(t *testing.T) {
	port := doctorClosedPort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	dir := doctorInit(t, addr)
	conf := deploy.Layout{Dir: dir}.Path(deploy.ServerConf)

	for _, args := range [][]string{
		{"--dir", dir, "--nats", "nats://" + addr},
		{"--dir", dir}, // the URL comes from nats.conf's listen
	} {
		code, got := doctorJSON(t, args...)
		if code != exitFailure {
			t.Errorf("doctor %v: exit %d, want 1", args, code)
		}
		doctorWant(t, got, "fail", "server", "nothing answers at nats://"+addr)
		doctorWant(t, got, "fail", "server", "start the server: nats-server -c "+conf)
		if n := len(doctorFind(got, "relay answering")); n != 0 {
			t.Errorf("doctor %v probed logins on an unreachable server", args)
		}
	}
}

func TestDoctorUsage(t *testing.T) {
	r := run(t, "", "doctor", "-h")
	if r.code != exitOK || !strings.Contains(r.stderr, "Examples:") || !strings.Contains(r.stderr, "-offline") {
		t.Errorf("doctor -h: exit %d, want 0 with examples and flags:\n%s", r.code, r.stderr)
	}
	for _, args := range [][]string{
		{"doctor", "extra"},
		{"doctor", "--offline", "--nats", "nats://127.0.0.1:4222"},
		{"doctor", "--no-such-flag"},
	} {
		if r := run(t, "", args...); r.code != exitUsage {
			t.Errorf("authrelay %v: exit %d, want 2", args, r.code)
		}
	}
	if r := run(t, "", "help"); !strings.Contains(r.stdout, "doctor") {
		t.Errorf("the command list does not name doctor:\n%s", r.stdout)
	}
}
