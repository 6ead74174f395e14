package main

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// decisionLine matches the relay's log line for one decision about a user.
var decisionLine = regexp.MustCompile(`msg="auth decision" component=relay user=(\S+) .*`)

// decisionsAbout returns the relay's logged decisions about user, oldest
// first.
func (s *servedDir) decisionsAbout(user string) []string {
	var out []string
	for _, line := range strings.Split(s.log.String(), "\n") {
		if m := decisionLine.FindStringSubmatch(line); m != nil && m[1] == user {
			out = append(out, line)
		}
	}
	return out
}

// login connects as user and returns the connection (nil when refused),
// the connect error and the relay's log line for the decision.
func (s *servedDir) login(t *testing.T, user, password string, opts ...nats.Option) (*nats.Conn, error, string) {
	t.Helper()
	before := len(s.decisionsAbout(user))
	// permitted reads violations from LastError: keep them off stderr.
	quiet := nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {})
	nc, err := s.connect(user, password, append([]nats.Option{quiet}, opts...)...)
	if nc != nil {
		t.Cleanup(nc.Close)
	}
	// The relay logs a decision after sending it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if d := s.decisionsAbout(user); len(d) > before {
			return nc, err, d[len(d)-1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no decision about %s logged after connecting", user)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// wantLogin connects as user, which must be allowed, and checks whether the
// relay answered from its cache ("hit") or verified the password ("miss").
func (s *servedDir) wantLogin(t *testing.T, user, password, cache string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err, line := s.login(t, user, password, opts...)
	if err != nil {
		t.Fatalf("login as %s: %v\n%s", user, err, line)
	}
	if !strings.Contains(line, "result=allow") || !strings.Contains(line, "cache="+cache) {
		t.Fatalf("login as %s: want an allow with cache=%s, relay logged:\n%s", user, cache, line)
	}
	return nc
}

// wantRefused connects as user, which must be refused with reason, and
// checks what the cache said ("hit", "miss", or "" for no lookup).
func (s *servedDir) wantRefused(t *testing.T, user, password, reason, cache string) {
	t.Helper()
	_, err, line := s.login(t, user, password)
	wantAuthViolation(t, err)
	if !strings.Contains(line, "reason="+reason) {
		t.Fatalf("login as %s: want reason %s, relay logged:\n%s", user, reason, line)
	}
	if got := regexp.MustCompile(`cache=(\w+)`).FindStringSubmatch(line); (got == nil) != (cache == "") || (got != nil && got[1] != cache) {
		t.Fatalf("login as %s: want cache %q, relay logged:\n%s", user, cache, line)
	}
}

// latency returns the latency a decision line reports.
func latency(t *testing.T, line string) time.Duration {
	t.Helper()
	m := regexp.MustCompile(`latency=(\S+)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no latency in %q", line)
	}
	d, err := time.ParseDuration(m[1])
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// permitted reports whether nc may subscribe to (pub false) or publish to
// (pub true) subject: the server's -ERR for a violation arrives before the
// PONG that ends Flush.
func permitted(t *testing.T, nc *nats.Conn, pub bool, subject string) bool {
	t.Helper()
	var err error
	if pub {
		err = nc.Publish(subject, []byte("x"))
	} else {
		_, err = nc.SubscribeSync(subject)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	last := nc.LastError()
	return !(errors.Is(last, nats.ErrPermissionViolation) && strings.Contains(last.Error(), `"`+subject+`"`))
}

// TestCacheHonoursEveryChange warms the relay's credential cache and then
// makes every kind of change through the CLI, a separate process's view of
// the database, while serve runs: each applies on the very next connect,
// and the connect after that is a cache hit again.
func TestCacheHonoursEveryChange(t *testing.T) {
	// Every refusal counts against the name from its address, disabled
	// ones too: a threshold of 4 lets the disabled subtest's refusals pass.
	s := serveEmbedded(t, true, "--lockout-threshold", "4", "--lockout-addr-threshold", "1000", "--lockout-duration", "1h")
	dir := s.dir
	s.addUser(t, "alice", "alice-pass-1", "--pub", "orders.>", "--sub", "orders.>", "--sub", "_INBOX.>")

	cold := s.wantLogin(t, "alice", "alice-pass-1", "miss")
	cold.Close()
	_, _, coldLine := s.login(t, "alice", "alice-pass-1")
	if !strings.Contains(coldLine, "cache=hit") {
		t.Fatalf("reconnect not served from the cache:\n%s", coldLine)
	}
	var warm []time.Duration
	for range 5 {
		nc := s.wantLogin(t, "alice", "alice-pass-1", "hit")
		nc.Close()
		warm = append(warm, latency(t, s.decisionsAbout("alice")[len(s.decisionsAbout("alice"))-1]))
	}
	t.Logf("alice's decision latency: %v verifying the password, %v from the cache", latency(t, s.decisionsAbout("alice")[0]), warm)

	t.Run("passwd", func(t *testing.T) {
		mustRun(t, "alice-pass-2\n", "user", "passwd", "alice", "--dir", dir, "--password-stdin")
		s.wantRefused(t, "alice", "alice-pass-1", "bad_credentials", "miss")
		s.wantLogin(t, "alice", "alice-pass-2", "miss").Close()
		s.wantLogin(t, "alice", "alice-pass-2", "hit").Close()
		s.wantRefused(t, "alice", "alice-pass-1", "bad_credentials", "miss")
	})

	t.Run("disable and enable", func(t *testing.T) {
		mustRun(t, "", "user", "disable", "alice", "--dir", dir)
		s.wantRefused(t, "alice", "alice-pass-2", "user_disabled", "miss")
		// Refusals are never answered from the cache: they cost what a
		// wrong password costs.
		s.wantRefused(t, "alice", "alice-pass-2", "user_disabled", "miss")
		mustRun(t, "", "user", "enable", "alice", "--dir", dir)
		s.wantLogin(t, "alice", "alice-pass-2", "miss").Close()
		s.wantLogin(t, "alice", "alice-pass-2", "hit").Close()
	})

	t.Run("user set --pub", func(t *testing.T) {
		nc := s.wantLogin(t, "alice", "alice-pass-2", "hit")
		if !permitted(t, nc, true, "orders.new") || permitted(t, nc, true, "billing.new") {
			t.Fatal("before: want orders.new and not billing.new")
		}
		mustRun(t, "", "user", "set", "alice", "--dir", dir, "--pub", "billing.>")
		nc = s.wantLogin(t, "alice", "alice-pass-2", "miss")
		if permitted(t, nc, true, "orders.new") || !permitted(t, nc, true, "billing.new") {
			t.Error("after user set --pub: want billing.new and not orders.new")
		}
		s.wantLogin(t, "alice", "alice-pass-2", "hit").Close()
	})

	t.Run("role change", func(t *testing.T) {
		mustRun(t, "", "role", "add", "reader", "--dir", dir, "--sub", "metrics.>")
		// A role alice does not hold is not a change to alice.
		s.wantLogin(t, "alice", "alice-pass-2", "hit").Close()
		mustRun(t, "", "user", "set", "alice", "--dir", dir, "--role", "reader")
		nc := s.wantLogin(t, "alice", "alice-pass-2", "miss")
		if !permitted(t, nc, false, "metrics.cpu") || permitted(t, nc, false, "logs.app") {
			t.Fatal("with role reader: want metrics.cpu and not logs.app")
		}
		s.wantLogin(t, "alice", "alice-pass-2", "hit").Close()
		mustRun(t, "", "role", "set", "reader", "--dir", dir, "--sub", "logs.>")
		nc = s.wantLogin(t, "alice", "alice-pass-2", "miss")
		if permitted(t, nc, false, "metrics.cpu") || !permitted(t, nc, false, "logs.app") {
			t.Error("after role set: want logs.app and not metrics.cpu")
		}
		s.wantLogin(t, "alice", "alice-pass-2", "hit").Close()
	})

	t.Run("user set --account", func(t *testing.T) {
		mustRun(t, "", "account", "add", "ORDERS", "--dir", dir)
		s.reload(t)
		s.addUser(t, "olga", "olga-pass", "--account", "ORDERS", "--pub", ">")
		olga := s.wantLogin(t, "olga", "olga-pass", "miss")
		// Neither the account nor olga is alice's: alice stays cached.
		s.wantLogin(t, "alice", "alice-pass-2", "hit").Close()
		mustRun(t, "", "user", "set", "alice", "--dir", dir, "--account", "ORDERS", "--sub", "moved.>")
		alice := s.wantLogin(t, "alice", "alice-pass-2", "miss")
		sub, err := alice.SubscribeSync("moved.x")
		if err != nil {
			t.Fatal(err)
		}
		alice.Flush()
		olga.Publish("moved.x", []byte("hi"))
		olga.Flush()
		if _, err := sub.NextMsg(5 * time.Second); err != nil {
			t.Errorf("alice does not get olga's message in ORDERS: %v", err)
		}
		s.wantLogin(t, "alice", "alice-pass-2", "hit").Close()
	})

	t.Run("rm and add again", func(t *testing.T) {
		mustRun(t, "", "user", "rm", "alice", "--dir", dir)
		s.wantRefused(t, "alice", "alice-pass-2", "bad_credentials", "miss")
		s.addUser(t, "alice", "alice-pass-2", "--account", "APP")
		s.wantLogin(t, "alice", "alice-pass-2", "miss").Close()
		s.wantLogin(t, "alice", "alice-pass-2", "hit").Close()
	})

	t.Run("lockout", func(t *testing.T) {
		for range 4 {
			s.wantRefused(t, "alice", "wrong-pass", "bad_credentials", "miss")
		}
		// The right password, cached, is refused like a wrong one: the
		// lockout comes before the cache, and costs a verification.
		s.wantRefused(t, "alice", "alice-pass-2", "locked_out", "")
		mustRun(t, "", "user", "unlock", "alice", "--dir", dir)
		// Lockouts do not touch the cache: alice is still cached.
		s.wantLogin(t, "alice", "alice-pass-2", "hit").Close()
	})
}

// TestCacheFlags checks serve's cache flags: --cache-ttl 0 turns the cache
// off, and nonsense is a usage error.
func TestCacheFlags(t *testing.T) {
	s := serveEmbedded(t, true, "--cache-ttl", "0")
	s.addUser(t, "bob", "bob-pass")
	for range 2 {
		_, err, line := s.login(t, "bob", "bob-pass")
		if err != nil || strings.Contains(line, "cache=") {
			t.Errorf("with --cache-ttl 0: %v\n%s", err, line)
		}
	}
	if !strings.Contains(s.log.String(), "cache_ttl=0s") {
		t.Error("serve does not log that the cache is off")
	}
	for _, args := range [][]string{
		{"--cache-ttl", "-1m"}, {"--cache-size", "0"}, {"--hash-workers", "-1"},
	} {
		r := run(t, "", append([]string{"serve", "--dir", s.dir}, args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, args[0]) {
			t.Errorf("serve %s: exit %d, %q; want a usage error", args, r.code, r.stderr)
		}
	}
}

// TestCacheDropsOnlyWhatChanged warms the cache for alice and bob and then
// changes, through the CLI while serve runs, users, roles and accounts that
// are not theirs: both stay cached (no password verified again). A change
// to alice's role drops alice and not bob; a change to bob's account drops
// bob and not alice; each applies on the next connect.
func TestCacheDropsOnlyWhatChanged(t *testing.T) {
	for _, env := range envs {
		t.Run(env.name, func(t *testing.T) {
			s := serveEmbedded(t, env.xkey)
			dir := s.dir
			mustRun(t, "", "account", "add", "ORDERS", "--dir", dir)
			mustRun(t, "", "account", "add", "SPARE", "--dir", dir)
			s.reload(t)
			mustRun(t, "", "role", "add", "reader", "--dir", dir, "--sub", "metrics.>")
			mustRun(t, "", "role", "add", "spare", "--dir", dir, "--sub", "spare.>")
			s.addUser(t, "alice", "alice-pass", "--account", "APP", "--role", "reader", "--pub", "alice.>", "--sub", "_INBOX.>")
			s.addUser(t, "bob", "bob-pass", "--account", "ORDERS", "--pub", "bob.>")
			s.addUser(t, "carol", "carol-pass", "--role", "spare", "--account", "SPARE", "--pub", "carol.>")
			for _, u := range []string{"alice", "bob"} {
				s.wantLogin(t, u, u+"-pass", "miss").Close()
				s.wantLogin(t, u, u+"-pass", "hit").Close()
			}

			for _, c := range []struct {
				name  string
				stdin string
				args  []string
			}{
				{"another user's password", "carol-pass-2\n", []string{"user", "passwd", "carol", "--password-stdin"}},
				{"another user's permissions", "", []string{"user", "set", "carol", "--pub", "carol.x.>"}},
				{"another user disabled", "", []string{"user", "disable", "carol"}},
				{"a user added", "dave-pass\n", []string{"user", "add", "dave", "--account", "APP", "--password-stdin"}},
				{"a user removed", "", []string{"user", "rm", "dave"}},
				{"a role not theirs changed", "", []string{"role", "set", "spare", "--sub", "spare.x.>"}},
				{"a role added", "", []string{"role", "add", "other", "--sub", "other.>"}},
				{"a role removed", "", []string{"role", "rm", "other"}},
				{"an account not theirs changed", "", []string{"account", "set", "SPARE", "--max-connections", "50"}},
			} {
				mustRun(t, c.stdin, append(c.args, "--dir", dir)...)
				for _, u := range []string{"alice", "bob"} {
					_, err, line := s.login(t, u, u+"-pass")
					if err != nil || !strings.Contains(line, "cache=hit") {
						t.Errorf("after %s: %s's login (%v) was not a cache hit:\n%s", c.name, u, err, line)
					}
				}
			}

			// alice's role: alice verified again, with the new grant; bob
			// still cached.
			mustRun(t, "", "role", "set", "reader", "--dir", dir, "--sub", "logs.>")
			nc := s.wantLogin(t, "alice", "alice-pass", "miss")
			if permitted(t, nc, false, "metrics.cpu") || !permitted(t, nc, false, "logs.app") {
				t.Error("after role set: want logs.app and not metrics.cpu")
			}
			nc.Close()
			s.wantLogin(t, "bob", "bob-pass", "hit").Close()
			s.wantLogin(t, "alice", "alice-pass", "hit").Close()

			// bob's account: bob verified again; alice still cached.
			mustRun(t, "", "account", "set", "ORDERS", "--dir", dir, "--max-connections", "100")
			s.wantLogin(t, "bob", "bob-pass", "miss").Close()
			s.wantLogin(t, "alice", "alice-pass", "hit").Close()
			s.wantLogin(t, "bob", "bob-pass", "hit").Close()

			// alice herself.
			mustRun(t, "", "user", "set", "alice", "--dir", dir, "--pub", "alice.y.>")
			s.wantLogin(t, "alice", "alice-pass", "miss").Close()
			s.wantLogin(t, "bob", "bob-pass", "hit").Close()
		})
	}
}
