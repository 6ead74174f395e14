package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// lockouts returns what 'user lockouts --json' lists.
func lockouts(t *testing.T, dir string) []map[string]any {
	t.Helper()
	r := mustRun(t, "", "user", "lockouts", "--dir", dir, "--json")
	var v []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	return v
}

// timeLogins logs in n times as user and returns the mean time per login.
func timeLogins(t *testing.T, s *servedDir, user, password string, n int) time.Duration {
	t.Helper()
	start := time.Now()
	for range n {
		nc, err := s.connect(user, password)
		if err != nil {
			t.Fatalf("login as %s: %v", user, err)
		}
		nc.Close()
	}
	return time.Since(start) / time.Duration(n)
}

func TestLockoutOfAUsername(t *testing.T) {
	s := serveEmbedded(t, true, "--lockout-threshold", "3", "--lockout-addr-threshold", "1000", "--lockout-duration", "1h")
	s.addUser(t, "alice", "alice-pass")
	s.addUser(t, "bob", "bob-pass")
	before := timeLogins(t, s, "bob", "bob-pass", 5)

	for range 3 {
		_, err := s.connect("alice", "wrong")
		wantAuthViolation(t, err)
	}
	// The right password is now refused, exactly like a wrong one.
	_, err := s.connect("alice", "alice-pass")
	wantAuthViolation(t, err)
	l := lockouts(t, s.dir)
	if len(l) != 1 || l[0]["kind"] != "user+addr" || l[0]["user"] != "alice" || l[0]["addr"] != "127.0.0.1" {
		t.Fatalf("lockouts = %v, want alice from 127.0.0.1", l)
	}
	// Other users are not slowed while alice is attacked.
	during := timeLogins(t, s, "bob", "bob-pass", 5)
	t.Logf("bob's login: %v before, %v while alice is locked", before, during)

	// The lockout survives a restart of the relay.
	s.stop()
	s = serveOn(t, s.dir)
	_, err = s.connect("alice", "alice-pass")
	wantAuthViolation(t, err)

	r := mustRun(t, "", "user", "unlock", "alice", "--dir", s.dir)
	if !strings.Contains(r.stdout, "unlocked") {
		t.Errorf("unlock output %q", r.stdout)
	}
	nc, err := s.connect("alice", "alice-pass")
	if err != nil {
		t.Fatalf("alice after unlock: %v", err)
	}
	nc.Close()
	if l := lockouts(t, s.dir); len(l) != 0 {
		t.Errorf("lockouts after unlock = %v", l)
	}
}

func TestSprayingAddressIsThrottled(t *testing.T) {
	s := serveEmbedded(t, true, "--lockout-threshold", "100", "--lockout-addr-threshold", "5", "--lockout-duration", "1h")
	s.addUser(t, "carol", "carol-pass")
	for _, name := range []string{"root", "admin2", "test", "guest", "oracle"} {
		_, err := s.connect(name, "Winter2026!")
		wantAuthViolation(t, err)
	}
	_, err := s.connect("carol", "carol-pass")
	wantAuthViolation(t, err)
	l := lockouts(t, s.dir)
	if len(l) != 1 || l[0]["kind"] != "addr" || l[0]["key"] != "127.0.0.1" {
		t.Fatalf("lockouts = %v, want address 127.0.0.1", l)
	}
	mustRun(t, "", "user", "unlock", "--addr", "127.0.0.1", "--dir", s.dir)
	nc, err := s.connect("carol", "carol-pass")
	if err != nil {
		t.Fatalf("carol after the address is unlocked: %v", err)
	}
	nc.Close()
}

func TestBcryptUserIsRehashed(t *testing.T) {
	s := serveEmbedded(t, true)
	hash, err := bcrypt.GenerateFromPassword([]byte("dave-pass"), 4)
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(t.TempDir(), "old.conf")
	os.WriteFile(conf, []byte(`authorization { users: [ { user: dave, password: "`+string(hash)+`", permissions: { publish: "dave.>" } } ] }`+"\n"), 0o600)
	mustRun(t, "", "import", conf, "--dir", s.dir)

	show := func() map[string]any {
		t.Helper()
		var v map[string]any
		r := mustRun(t, "", "user", "show", "dave", "--dir", s.dir, "--json")
		json.Unmarshal([]byte(r.stdout), &v)
		return v
	}
	if v := show(); v["hash_scheme"] != "bcrypt" || v["hash_current"] != false {
		t.Fatalf("before login: scheme %v current %v, want bcrypt, false", v["hash_scheme"], v["hash_current"])
	}
	_, err = s.connect("dave", "wrong")
	wantAuthViolation(t, err)
	if v := show(); v["hash_scheme"] != "bcrypt" {
		t.Fatalf("a wrong password rehashed dave: %v", v["hash_scheme"])
	}
	nc, err := s.connect("dave", "dave-pass")
	if err != nil {
		t.Fatalf("dave with his nats.conf password: %v", err)
	}
	nc.Close()
	// The rehash runs after the answer: the login does not wait for it.
	deadline := time.Now().Add(5 * time.Second)
	for v := show(); v["hash_scheme"] != "argon2id" || v["hash_current"] != true; v = show() {
		if time.Now().After(deadline) {
			t.Fatalf("after login: scheme %v current %v, want argon2id, true", v["hash_scheme"], v["hash_current"])
		}
		time.Sleep(20 * time.Millisecond)
	}
	nc, err = s.connect("dave", "dave-pass")
	if err != nil {
		t.Fatalf("dave after the rehash: %v", err)
	}
	nc.Close()
	if !strings.Contains(s.log.String(), "rehashed password") {
		t.Error("serve did not log the rehash")
	}
}

func TestAuditTrail(t *testing.T) {
	s := serveEmbedded(t, true, "--lockout-threshold", "2", "--lockout-addr-threshold", "1000")
	s.addUser(t, "alice", "alice-pass", "--pub", "a.>")
	nc, err := s.connect("alice", "alice-pass")
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	for range 2 {
		_, err := s.connect("alice", "wrong-guess")
		wantAuthViolation(t, err)
	}
	_, err = s.connect("alice", "alice-pass") // locked now
	wantAuthViolation(t, err)
	mustRun(t, "", "user", "disable", "alice", "--dir", s.dir)
	s.stop() // a clean shutdown flushes every decision

	r := mustRun(t, "", "audit", "--dir", s.dir, "--json")
	for _, secret := range []string{"alice-pass", "wrong-guess", "$argon2id$"} {
		if strings.Contains(r.stdout, secret) {
			t.Errorf("the audit trail contains %q", secret)
		}
	}
	var rows []auditView
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	var got []string
	for _, row := range rows {
		switch row.Kind {
		case "login":
			if row.User != "alice" || row.Host != "127.0.0.1" || row.ServerID == "" || row.ClientID == 0 || row.ConnType != "STANDARD" || row.LatencyMS <= 0 {
				t.Errorf("login row lacks fields: %+v", row)
			}
			got = append(got, row.Result+":"+row.Reason)
		case "admin":
			if row.Actor == "" {
				t.Errorf("admin row without the OS user: %+v", row)
			}
			got = append(got, row.Action)
		}
	}
	// (The harness stores its cheap hash policy without a command: no row.)
	want := []string{"user add", "allowed:", "denied:bad_credentials", "denied:bad_credentials", "denied:locked_out", "user disable"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("audit rows = %v, want %v", got, want)
	}

	r = mustRun(t, "", "audit", "--dir", s.dir, "--result", "denied", "--json")
	json.Unmarshal([]byte(r.stdout), &rows)
	if len(rows) != 3 {
		t.Errorf("--result denied: %d rows, want 3", len(rows))
	}
	r = mustRun(t, "", "audit", "--dir", s.dir, "--user", "nobody")
	if strings.Contains(r.stdout, "alice") {
		t.Errorf("--user nobody shows alice's rows:\n%s", r.stdout)
	}
	if r := run(t, "", "audit", "--dir", s.dir, "--result", "maybe"); r.code != 2 {
		t.Errorf("--result maybe: exit %d, want 2", r.code)
	}
}

func TestHashPolicyCommands(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "", "init", "--dir", dir)
	r := mustRun(t, "", "hash", "show", "--dir", dir)
	if !strings.Contains(r.stdout, "m=19456") || !strings.Contains(r.stdout, "t=2") {
		t.Errorf("default policy: %q", r.stdout)
	}
	r = mustRun(t, "", "hash", "calibrate", "--target", "5ms", "--memory", "8192")
	if !strings.Contains(r.stdout, "suggested: argon2id m=8192") || !strings.Contains(r.stdout, "authrelay hash set --memory 8192") {
		t.Errorf("calibrate output: %q", r.stdout)
	}
	mustRun(t, "", "hash", "set", "--dir", dir, "--memory", "65536", "--time", "3")
	r = mustRun(t, "", "hash", "show", "--dir", dir, "--json")
	var p map[string]any
	json.Unmarshal([]byte(r.stdout), &p)
	if p["memory_kib"] != float64(65536) || p["time"] != float64(3) || p["threads"] != float64(1) {
		t.Errorf("policy after set = %v", p)
	}
	for _, args := range [][]string{
		{"hash", "set", "--dir", dir, "--memory", "1024"},
		{"hash", "set", "--dir", dir, "--time", "0"},
		{"hash", "set", "--dir", dir},
		{"hash", "calibrate", "--target", "-1s"},
		{"hash", "frob"},
	} {
		if r := run(t, "", args...); r.code != 2 {
			t.Errorf("%v: exit %d (%s), want 2", args, r.code, r.stderr)
		}
	}
	r = mustRun(t, "", "hash", "show", "--dir", dir, "--json")
	json.Unmarshal([]byte(r.stdout), &p)
	if p["memory_kib"] != float64(65536) {
		t.Errorf("a refused hash set changed the policy: %v", p)
	}
	// New passwords follow the policy, and the audit trail has the change.
	mustRun(t, "pw-eve-123\n", "user", "add", "eve", "--dir", dir, "--password-stdin")
	r = mustRun(t, "", "user", "show", "eve", "--dir", dir, "--json")
	if !strings.Contains(r.stdout, `"hash_current": true`) {
		t.Errorf("eve's hash is not at the current policy:\n%s", r.stdout)
	}
	r = mustRun(t, "", "audit", "--dir", dir, "--kind", "admin")
	if !strings.Contains(r.stdout, "hash set") || !strings.Contains(r.stdout, "user add") {
		t.Errorf("admin audit rows:\n%s", r.stdout)
	}
}

func TestAuditFollow(t *testing.T) {
	s := serveEmbedded(t, true)
	s.addUser(t, "alice", "alice-pass")
	out := &syncBuffer{}
	m := &Main{Stdin: strings.NewReader(""), Stdout: out, Stderr: out,
		Getenv: func(string) string { return "" }, Now: time.Now}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, []string{"audit", "--follow", "--json", "--dir", s.dir}) }()

	// A login made while following shows up as a new line. Logins repeat
	// until one does: the follower starts at the end of the trail, and
	// the first may be written before it has found that end.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), `"result":"allowed"`) {
		if time.Now().After(deadline) {
			t.Fatalf("audit --follow did not print alice's login:\n%s", out.String())
		}
		nc, err := s.connect("alice", "alice-pass")
		if err != nil {
			t.Fatal(err)
		}
		nc.Close()
		time.Sleep(200 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("audit --follow ended with %v, want nil on interrupt", err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	for _, l := range lines {
		var v auditView
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Errorf("--follow --json line %q: %v", l, err)
		}
	}
	// alice was added before the follow started: like tail -f, it is not
	// printed; with --since it is, once, followed by the logins.
	if strings.Contains(out.String(), `"action":"user add"`) {
		t.Errorf("audit --follow printed a row written before it started:\n%s", out.String())
	}
	out2 := &syncBuffer{}
	m2 := &Main{Stdin: strings.NewReader(""), Stdout: out2, Stderr: out2,
		Getenv: func(string) string { return "" }, Now: time.Now}
	ctx2, cancel2 := context.WithCancel(t.Context())
	done2 := make(chan error, 1)
	go func() {
		done2 <- m2.Run(ctx2, []string{"audit", "--follow", "--since", "1h", "--json", "--dir", s.dir})
	}()
	for !strings.Contains(out2.String(), `"result":"allowed"`) {
		if time.Now().After(deadline) {
			t.Fatalf("audit --follow --since 1h did not print the history:\n%s", out2.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel2()
	if err := <-done2; err != nil {
		t.Errorf("audit --follow --since ended with %v, want nil on interrupt", err)
	}
	if n := strings.Count(out2.String(), `"action":"user add"`); n != 1 {
		t.Errorf("with --since the admin row was printed %d times, want once:\n%s", n, out2.String())
	}
}
