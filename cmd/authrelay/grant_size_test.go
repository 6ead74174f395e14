package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/store"
)

// serveWithMaxPayload is serveEmbedded on a directory whose nats.conf sets
// max_payload to limit.
func serveWithMaxPayload(t *testing.T, xkey bool, limit int) *servedDir {
	t.Helper()
	dir := t.TempDir()
	mustRun(t, "", "init", "--dir", dir)
	cheapHashPolicy(t, dir)
	path := deploy.Layout{Dir: dir}.Path(deploy.ServerConf)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if !xkey && strings.HasPrefix(strings.TrimSpace(line), "xkey:") {
			continue
		}
		out = append(out, line)
		if strings.HasPrefix(line, "system_account:") {
			out = append(out, fmt.Sprintf("max_payload: %d", limit))
		}
	}
	if err := os.WriteFile(path, []byte(strings.Join(out, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	return serveOn(t, dir)
}

// longSubjects returns n long subjects under prefix.
func longSubjects(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s.region-%05d.%s.>", prefix, i, strings.Repeat("s", 70))
	}
	return out
}

// pubArgs returns --pub flags for subjects.
func pubArgs(subjects []string) []string {
	var args []string
	for _, s := range subjects {
		args = append(args, "--pub", s)
	}
	return args
}

// TestGrantTooLargeForServer runs a real server with a small max_payload.
// A grant just under it is added and logs in; one subject more is refused
// at 'user add' with the size and the limit, and so is a 'user set' or a
// 'role set' that would push a user over (naming the holder); explain
// shows the size; and a grant written past the commands is refused by the
// relay at once, with the reason logged, instead of a login that times
// out.
func TestGrantTooLargeForServer(t *testing.T) {
	const limit = 64 << 10
	for _, env := range envs {
		t.Run(env.name, func(t *testing.T) {
			s := serveWithMaxPayload(t, env.xkey, limit)
			dir := s.dir
			sizer, err := deploy.NewGrantSizer(deploy.Layout{Dir: dir}, time.Now)
			if err != nil {
				t.Fatal(err)
			}
			if sizer.Limit != limit {
				t.Fatalf("max_payload read from nats.conf = %d, want %d", sizer.Limit, limit)
			}
			// The most subjects that fit, for a user named like big and bog.
			all := longSubjects("telemetry", 1000)
			size := func(n int) int {
				g, err := accounts.Resolve(accounts.User{Name: "big", Account: "APP",
					Permissions: accounts.Permissions{Pub: accounts.Rule{Allow: all[:n]}, Sub: accounts.Rule{Allow: []string{"_INBOX.>"}}}}, nil)
				if err != nil {
					t.Fatal(err)
				}
				got, err := sizer.Issuer.ResponseSize(g, time.Now())
				if err != nil {
					t.Fatal(err)
				}
				return got
			}
			lo, hi := 1, len(all) // size(lo) <= limit < size(hi)
			for hi-lo > 1 {
				if mid := (lo + hi) / 2; size(mid) <= limit {
					lo = mid
				} else {
					hi = mid
				}
			}
			n := lo
			under, over := size(n), size(n+1)
			t.Logf("%d subjects: %d bytes; %d: %d bytes; limit %d", n, under, n+1, over, limit)
			if limit-under > 400 || over <= limit {
				t.Fatalf("%d subjects leave %d bytes: not just under the limit", n, limit-under)
			}

			s.addUser(t, "big", "big-pass", append([]string{"--account", "APP", "--sub", "_INBOX.>"}, pubArgs(all[:n])...)...)
			nc := s.wantLogin(t, "big", "big-pass", "miss")
			if !permitted(t, nc, true, "telemetry.region-00000."+strings.Repeat("s", 70)+".x") {
				t.Error("big may not publish to its first subject")
			}
			nc.Close()
			explain := mustRun(t, "", "user", "explain", "big", "--dir", dir)
			if want := fmt.Sprintf("login response:    %d bytes of the server's max_payload %d", under, limit); !strings.Contains(explain.stdout, want) {
				t.Errorf("explain does not say %q:\n%s", want, explain.stdout)
			}

			// One subject more: refused, nothing written.
			r := run(t, "bog-pass\n", append([]string{"user", "add", "bog", "--dir", dir, "--password-stdin", "--account", "APP", "--sub", "_INBOX.>"}, pubArgs(all[:n+1])...)...)
			want := fmt.Sprintf("would be %d bytes, over the server's max_payload of %d bytes", over, limit)
			if r.code == 0 || !strings.Contains(r.stderr, want) {
				t.Errorf("user add over the limit: exit %d, stderr %q; want a refusal saying %q", r.code, r.stderr, want)
			}
			if r := run(t, "", "user", "show", "bog", "--dir", dir); r.code == 0 {
				t.Error("the refused user was added")
			}

			// user set pushing big over: refused, big unchanged.
			r = run(t, "", append([]string{"user", "set", "big", "--dir", dir}, pubArgs(all[:n+1])...)...)
			if r.code == 0 || !strings.Contains(r.stderr, "over the server's max_payload of") {
				t.Errorf("user set over the limit: exit %d, stderr %q", r.code, r.stderr)
			}
			s.wantLogin(t, "big", "big-pass", "hit").Close()

			// A role that would push its holder over: refused, naming it.
			mustRun(t, "", "role", "add", "wide", "--dir", dir, "--sub", "wide.>")
			mustRun(t, "", "user", "set", "big", "--dir", dir, "--role", "wide")
			r = run(t, "", append([]string{"role", "set", "wide", "--dir", dir}, pubArgs(longSubjects("wide", 40))...)...)
			if r.code == 0 || !strings.Contains(r.stderr, "holder big: the login response for big would be") {
				t.Errorf("role set over the limit: exit %d, stderr %q; want a refusal naming big", r.code, r.stderr)
			}
			s.wantLogin(t, "big", "big-pass", "miss").Close()
			// A role too large for any holder is refused at role add.
			r = run(t, "", append([]string{"role", "add", "huge", "--dir", dir}, pubArgs(longSubjects("huge", n+30))...)...)
			if r.code == 0 || !strings.Contains(r.stderr, "over the server's max_payload of") {
				t.Errorf("role add over the limit: exit %d, stderr %q", r.code, r.stderr)
			}

			// Written past the commands (a script on the store): the relay
			// refuses at once and says why.
			db, err := store.Open(t.Context(), deploy.Layout{Dir: dir}.Path(deploy.DatabaseFile))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			// Two subjects more: over the limit sealed or not.
			if err := db.UpdateUser(t.Context(), "big", func(u *accounts.User) error {
				u.Permissions.Pub.Allow = all[:n+2]
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			s.wantRefused(t, "big", "big-pass", "internal_error", "miss")
			if d := time.Since(start); d > time.Second {
				t.Errorf("refusal took %v: the client waited for the auth timeout", d)
			}
			if !strings.Contains(s.log.String(), fmt.Sprintf("over the server's max_payload of %d bytes", limit)) {
				t.Error("the relay's log does not say the response was too large")
			}
		})
	}
}

// TestImportSkipsOversizeGrant imports a nats.conf whose user has more
// subjects than the directory's server could send in a login response: it
// is skipped with the size and the limit, and a small one is imported.
func TestImportSkipsOversizeGrant(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "", "init", "--dir", dir)
	// max_payload is the server's default: 1 MiB.
	var quoted []string
	for _, s := range longSubjects("telemetry", 6000) {
		quoted = append(quoted, fmt.Sprintf("%q", s))
	}
	conf := fmt.Sprintf(`authorization {
  users: [
    { user: "wide", password: "wide-pass-1", permissions: { publish: [%s] } }
    { user: "narrow", password: "narrow-pass-1", permissions: { publish: ["a.>"] } }
  ]
}
`, strings.Join(quoted, ", "))
	path := t.TempDir() + "/old.conf"
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	rep := decodeImport(t, mustImport(t, 0, "import", path, "--dir", dir, "--json"))
	checkUserRows(t, rep.Users, []wantRow{
		{"wide", "APP", "skip", "over the server's max_payload of 1048576 bytes"},
		{"narrow", "APP", "add", ""},
	})
}
