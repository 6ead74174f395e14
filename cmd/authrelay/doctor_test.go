package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/authrelay/authrelay/deploy"
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
		mustRun(t, "", "account", "add", "ORDERS", "--dir", s.dir, "--no-reload")
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
