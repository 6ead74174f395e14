package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/store"
	"github.com/nats-io/nats.go"
)

// from makes a connection come from ip, another loopback address such as
// 127.0.0.2 (Linux routes all of 127.0.0.0/8 to the loopback interface), so
// that the server reports it as the client's host.
func from(ip string) nats.Option {
	return nats.SetCustomDialer(&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second})
}

// authErr is one $SYS.ACCOUNT.CLIENT.AUTH.ERR event: a connect the server
// refused, with the reason the relay gave.
type authErr struct {
	User, Host, Reason string
}

// authErrors subscribes, as the relay's user of secrets.json (in the
// callout account), to the server's events for refused connects.
func (s *servedDir) authErrors(t *testing.T) <-chan authErr {
	t.Helper()
	sec, err := deploy.Layout{Dir: s.dir}.LoadSecrets()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(s.url, nats.UserInfo(sec.RelayUser, sec.RelayPassword))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ch := make(chan authErr, 256)
	_, err = nc.Subscribe("$SYS.ACCOUNT.CLIENT.AUTH.ERR", func(m *nats.Msg) {
		var ev struct {
			Client struct {
				User string `json:"user"`
				Host string `json:"host"`
			} `json:"client"`
			Reason string `json:"reason"`
		}
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			ev.Reason = "decode event: " + err.Error()
		}
		ch <- authErr{User: ev.Client.User, Host: ev.Client.Host, Reason: ev.Reason}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return ch
}

// refused connects as user from ip and checks that the server refuses it
// with Authorization Violation and that the relay's reason is want.
func (s *servedDir) refused(t *testing.T, events <-chan authErr, ip, user, password, want string) {
	t.Helper()
	nc, err := s.connect(user, password, from(ip))
	if err == nil {
		nc.Close()
		t.Fatalf("%s from %s: connected, want refused with %s", user, ip, want)
	}
	if !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("%s from %s: %v, want Authorization Violation", user, ip, err)
	}
	select {
	case ev := <-events:
		if ev.User != user || ev.Host != ip || !strings.HasSuffix(ev.Reason, ": "+want) {
			t.Fatalf("%s from %s: refused as %+v, want reason %s", user, ip, ev, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%s from %s: no auth error event", user, ip)
	}
}

// allowed connects as user from ip, which must succeed.
func (s *servedDir) allowed(t *testing.T, ip, user, password string) {
	t.Helper()
	nc, err := s.connect(user, password, from(ip))
	if err != nil {
		t.Fatalf("%s from %s: %v, want connected", user, ip, err)
	}
	nc.Close()
}

// TestLockoutSparesTheUsersConnections is the attack of an attacker who
// knows a username but not its password: many wrong passwords from an
// address the user does not use. The user's live connection stays, and
// the user's own clients still connect and reconnect; the attacker's
// address is locked out, even with the right password.
func TestLockoutSparesTheUsersConnections(t *testing.T) {
	for _, e := range envs {
		t.Run(e.name, func(t *testing.T) {
			s := serveEmbedded(t, e.xkey, "--revoke-poll", "50ms")
			s.addUser(t, "svc", "svc-pass", "--sub", "_INBOX.>")
			events := s.authErrors(t)
			const user, attacker = "127.0.0.1", "127.0.0.2"
			live := s.live(t, "svc", "svc-pass")

			threshold := accounts.DefaultLockoutPolicy.Threshold
			for range threshold {
				s.refused(t, events, attacker, "svc", "guess", "bad_credentials")
			}
			for range 3 {
				s.refused(t, events, attacker, "svc", "guess", "locked_out")
			}
			s.refused(t, events, attacker, "svc", "svc-pass", "locked_out")

			// Many revocation polls later, the live connection is there.
			time.Sleep(500 * time.Millisecond)
			select {
			case <-live.disconnected:
				t.Fatal("the user's live connection was closed by the attacker's wrong passwords")
			default:
			}
			if !live.nc.IsConnected() {
				t.Fatal("the user's live connection is not connected")
			}
			// The user's clients connect, and the live one reconnects.
			s.allowed(t, user, "svc", "svc-pass")
			if err := live.nc.ForceReconnect(); err != nil {
				t.Fatal(err)
			}
			live.wantReconnected(t, "reconnect after the attack")

			l := lockouts(t, s.dir)
			if len(l) != 1 || l[0]["kind"] != "user+addr" || l[0]["user"] != "svc" || l[0]["addr"] != attacker ||
				l[0]["failures"] != float64(threshold) || !strings.Contains(l[0]["why"].(string), fmt.Sprintf("%d failed logins within 15m0s", threshold)) {
				t.Errorf("lockouts = %v, want svc from %s, 5 failures within 15m", l, attacker)
			}
			out := mustRun(t, "", "user", "lockouts", "--dir", s.dir).stdout
			if !strings.Contains(out, "user+addr") || !strings.Contains(out, attacker) {
				t.Errorf("user lockouts:\n%s", out)
			}

			// Unlocking the pair lets the attacker's address in again.
			mustRun(t, "", "user", "unlock", "svc", "--addr", attacker, "--dir", s.dir)
			s.allowed(t, attacker, "svc", "svc-pass")
		})
	}
}

// TestUsernameLockSparesKnownAddresses spreads guesses over many addresses,
// below the per-address limits: the username locks for every address but
// the one the user logged in from.
func TestUsernameLockSparesKnownAddresses(t *testing.T) {
	s := serveEmbedded(t, true, "--lockout-threshold", "2", "--lockout-user-threshold", "6", "--lockout-duration", "1h")
	s.addUser(t, "svc", "svc-pass")
	events := s.authErrors(t)
	s.allowed(t, "127.0.0.1", "svc", "svc-pass")
	for i := range 3 {
		ip := fmt.Sprintf("127.0.0.%d", 10+i)
		s.refused(t, events, ip, "svc", "guess", "bad_credentials")
		s.refused(t, events, ip, "svc", "guess", "bad_credentials")
	}
	s.refused(t, events, "127.0.0.20", "svc", "svc-pass", "locked_out")
	s.allowed(t, "127.0.0.1", "svc", "svc-pass")
	l := lockouts(t, s.dir)
	var kinds []string
	for _, v := range l {
		kinds = append(kinds, fmt.Sprint(v["kind"], " ", v["key"]))
	}
	slices.Sort(kinds)
	want := []string{"user svc", "user+addr svc@127.0.0.10", "user+addr svc@127.0.0.11", "user+addr svc@127.0.0.12"}
	if !slices.Equal(kinds, want) {
		t.Errorf("lockouts %q, want %q", kinds, want)
	}
	// A username from a client is printed escaped.
	out := mustRun(t, "", "user", "lockouts", "--dir", s.dir).stdout
	if !strings.Contains(out, "6 failed logins within 15m0s of this username from all addresses") {
		t.Errorf("user lockouts does not say why the name is locked:\n%s", out)
	}
	mustRun(t, "", "user", "unlock", "svc", "--dir", s.dir)
	s.allowed(t, "127.0.0.20", "svc", "svc-pass")
}

// TestBurstOfGuessesIsBounded sends many wrong passwords for one user from
// one address at once, then the right one: no more of them are verified
// than the lockout threshold allows, and the right password is refused
// as locked out.
func TestBurstOfGuessesIsBounded(t *testing.T) {
	const burst, workers = 80, 2
	s := serveEmbedded(t, true, "--hash-workers", fmt.Sprint(workers), "--lockout-duration", "1h", "--http", "127.0.0.1:0")
	s.addUser(t, "alice", "alice-pass")
	events := s.authErrors(t)
	threshold := accounts.DefaultLockoutPolicy.Threshold
	verifications := func() float64 {
		t.Helper()
		_, body := get(t, "http://"+s.httpAddr(t)+"/metrics")
		return samples(t, body)["authrelay_verifications_total"]
	}
	before := verifications()

	var wg sync.WaitGroup
	var mu sync.Mutex
	other := map[string]int{} // connects that failed otherwise than refused
	for range burst {
		wg.Go(func() {
			nc, err := s.connect("alice", "guess", from("127.0.0.2"))
			if err == nil {
				nc.Close()
				t.Error("connected with a wrong password")
				return
			}
			if !errors.Is(err, nats.ErrAuthorization) {
				// A client that waited long enough for the server's
				// first PING fails the handshake otherwise; it was
				// not let in either.
				mu.Lock()
				other[err.Error()]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	reasons := map[string]int{}
	for quiet := false; !quiet; {
		select {
		case ev := <-events:
			r := strings.TrimSpace(ev.Reason[strings.LastIndex(ev.Reason, ":")+1:])
			if r == "" {
				r = ev.Reason
			}
			reasons[r]++
		case <-time.After(time.Second):
			quiet = true
		}
	}
	if len(other) > 0 {
		t.Logf("connects that failed otherwise: %v", other)
	}
	verified := int(verifications() - before)
	t.Logf("%d concurrent wrong passwords: %d verified against alice's hash; reasons %v (%d hash workers, threshold %d)",
		burst, verified, reasons, workers, threshold)
	if verified > threshold || reasons["bad_credentials"] > threshold {
		t.Errorf("%d of %d concurrent wrong passwords were verified (%d refused as bad credentials), want at most the threshold %d",
			verified, burst, reasons["bad_credentials"], threshold)
	}
	// A machine too busy to verify even the threshold's worth in time
	// (the rest shed as overloaded or timed out) leaves attempts for a
	// sequence: the burst and these together are bounded like a sequence.
	for range threshold - verified {
		s.refused(t, events, "127.0.0.2", "alice", "guess", "bad_credentials")
	}
	s.refused(t, events, "127.0.0.2", "alice", "guess", "locked_out")
	s.refused(t, events, "127.0.0.2", "alice", "alice-pass", "locked_out")
	if got := int(verifications() - before); got > threshold {
		t.Errorf("%d wrong passwords verified in all, want at most the threshold %d", got, threshold)
	}
}

// TestEveryRefusalCounts checks that attempts refused after the password
// step — disabled, expired, locked out — count against the client's
// address like wrong passwords, and that none of them rehashes the
// user's password.
func TestEveryRefusalCounts(t *testing.T) {
	s := serveEmbedded(t, true, "--lockout-threshold", "2", "--lockout-addr-threshold", "5", "--lockout-duration", "1h")
	s.addUser(t, "bob", "bob-pass")
	events := s.authErrors(t)
	db := openDir(t, s.dir)
	stale := staleHash(t, db, "pw")
	addWithHash(t, db, accounts.User{Name: "dis", Account: "APP", Disabled: true}, stale)
	addWithHash(t, db, accounts.User{Name: "old", Account: "APP", Expires: time.Now().Add(-time.Hour)}, stale)
	addWithHash(t, db, accounts.User{Name: "carol", Account: "APP"}, stale)

	t.Run("disabled and expired", func(t *testing.T) {
		const ip = "127.0.0.3"
		s.refused(t, events, ip, "dis", "pw", "user_disabled")
		s.refused(t, events, ip, "dis", "pw", "user_disabled")
		s.refused(t, events, ip, "old", "pw", "user_expired")
		s.refused(t, events, ip, "old", "pw", "user_expired")
		s.refused(t, events, ip, "dis", "pw", "locked_out") // the pair: 2 refusals
		// Five refusals from the address: it is locked for every name.
		s.refused(t, events, ip, "bob", "bob-pass", "locked_out")
		s.allowed(t, "127.0.0.1", "bob", "bob-pass")
	})

	t.Run("locked out", func(t *testing.T) {
		const ip = "127.0.0.4"
		s.refused(t, events, ip, "carol", "guess", "bad_credentials")
		s.refused(t, events, ip, "carol", "guess", "bad_credentials")
		for range 3 {
			s.refused(t, events, ip, "carol", "pw", "locked_out")
		}
		s.refused(t, events, ip, "bob", "bob-pass", "locked_out")
	})

	// No refusal rehashed a password, not even with the right one.
	for _, name := range []string{"dis", "old", "carol"} {
		if _, current, err := db.HashInfo(t.Context(), name); err != nil || current {
			t.Errorf("%s's hash: current %v, %v; want the stale hash kept after refusals", name, current, err)
		}
	}
	// A granted login does rehash, after its answer.
	addWithHash(t, db, accounts.User{Name: "erin", Account: "APP"}, stale)
	s.allowed(t, "127.0.0.1", "erin", "pw")
	waitUntil(t, "erin's hash is rehashed after her login", func() bool {
		_, current, err := db.HashInfo(t.Context(), "erin")
		return err == nil && current
	})
}

// openDir opens the store of an authrelay directory, as another process
// would, for the test's own writes.
func openDir(t *testing.T, dir string) *store.DB {
	t.Helper()
	db, err := store.Open(t.Context(), deploy.Layout{Dir: dir}.Path(deploy.DatabaseFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// staleHash hashes password at the costs of db's policy but a longer salt:
// it verifies in the same time as a hash at the policy, and needs a rehash.
func staleHash(t *testing.T, db *store.DB, password string) string {
	t.Helper()
	p := db.Params
	p.SaltLen++
	h, err := store.HashPassword(password, p)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func addWithHash(t *testing.T, db *store.DB, u accounts.User, hash string) {
	t.Helper()
	if err := db.AddUserWithHash(t.Context(), u, hash); err != nil {
		t.Fatal(err)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDenialTiming measures, through serve and a real server, how long the
// relay takes to refuse a login for each reason — wrong password, unknown
// user, disabled, expired, locked out — interleaved, each attempt with a
// user of its own whose hash needs a rehash (so that a refusal that
// rehashed would show), and checks that they agree. It logs the figures;
// run it with -v to see them. The bound is generous (a shared machine under
// -race is noisy); a refusal that did a second hash, as a rehash before the
// answer does, takes about twice as long.
func TestDenialTiming(t *testing.T) {
	if testing.Short() {
		t.Skip("timing measurement")
	}
	const n = 15
	s := serveEmbedded(t, true, "--lockout-threshold", "1", "--lockout-addr-threshold", "100000")
	db := openDir(t, s.dir)
	stale := staleHash(t, db, "pw")
	name := func(kind string, i int) string { return fmt.Sprintf("%s%02d", kind, i) }
	for i := range n {
		addWithHash(t, db, accounts.User{Name: name("wrong", i), Account: "APP"}, stale)
		addWithHash(t, db, accounts.User{Name: name("disabled", i), Account: "APP", Disabled: true}, stale)
		addWithHash(t, db, accounts.User{Name: name("expired", i), Account: "APP", Expires: time.Now().Add(-time.Hour)}, stale)
		addWithHash(t, db, accounts.User{Name: name("locked", i), Account: "APP"}, stale)
		addWithHash(t, db, accounts.User{Name: name("rotated", i), Account: "APP"}, stale)
		// A password replaced lately: a wrong one is tried against the
		// previous hash too, which must cost what the dummy costs.
		if err := db.SetPassword(t.Context(), name("rotated", i), "pw-new-123"); err != nil {
			t.Fatal(err)
		}
	}
	refuse := func(user, password, reason string) time.Duration {
		t.Helper()
		_, err, line := s.login(t, user, password)
		wantAuthViolation(t, err)
		if !strings.Contains(line, "reason="+reason) {
			t.Fatalf("%s: want reason %s, relay logged:\n%s", user, reason, line)
		}
		return latency(t, line)
	}
	refuse("warmup", "pw", "bad_credentials") // computes the dummy hash
	for i := range n {
		refuse(name("locked", i), "guess", "bad_credentials") // threshold 1: locked
	}
	kinds := []struct {
		name, user, password, reason string
	}{
		{"wrong password", "wrong", "guess", "bad_credentials"},
		{"unknown user", "unknown", "pw", "bad_credentials"},
		{"disabled", "disabled", "pw", "user_disabled"},
		{"expired", "expired", "pw", "user_expired"},
		{"locked out", "locked", "pw", "locked_out"},
		{"rotated lately", "rotated", "guess", "bad_credentials"},
	}
	got := make([][]time.Duration, len(kinds))
	for i := range n {
		// Rotate the order, so that no kind always runs first.
		for j := range kinds {
			k := (i + j) % len(kinds)
			got[k] = append(got[k], refuse(name(kinds[k].user, i), kinds[k].password, kinds[k].reason))
		}
	}
	// The assertion compares lower quartiles: noise from other work on
	// the machine only adds time, so they stay near the true cost, where
	// a second hash before the answer doubles it. The medians are logged.
	base := quantile(got[0], 0.25)
	for k, ds := range got {
		q := quantile(ds, 0.25)
		ratio := float64(q) / float64(base)
		t.Logf("%-15s median %8v  p25 %8v  min %8v  max %8v  p25 ratio %.2f (n=%d)", kinds[k].name,
			median(ds).Round(time.Microsecond), q.Round(time.Microsecond),
			slices.Min(ds).Round(time.Microsecond), slices.Max(ds).Round(time.Microsecond), ratio, n)
		if ratio > 1.4 || ratio < 1/1.4 {
			t.Errorf("%s: lower quartile %v is %.2f times the wrong password's %v: the refusal costs other work", kinds[k].name, q, ratio, base)
		}
	}
}

// quantile returns the q-quantile of ds (nearest rank).
func quantile(ds []time.Duration, q float64) time.Duration {
	s := slices.Sorted(slices.Values(ds))
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func median(ds []time.Duration) time.Duration {
	s := slices.Sorted(slices.Values(ds))
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

// TestUserLockoutsEscapes locks keys whose name and address came from a
// client with characters a terminal would act on, and checks that 'user
// lockouts' prints them escaped, never raw.
func TestUserLockoutsEscapes(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "", "init", "--dir", dir)
	db := openDir(t, dir)
	l := db.Lockouts(accounts.DefaultLockoutPolicy)
	const evilAddr, evilName = "\x1b[2J\x1b]0;pwned\a\nfake", "bidi\u202eexe"
	for i := range accounts.DefaultLockoutPolicy.AddrThreshold {
		if err := l.Failed(t.Context(), fmt.Sprintf("u%d", i), evilAddr, time.Now(), accounts.FailedPassword); err != nil {
			t.Fatal(err)
		}
	}
	for range accounts.DefaultLockoutPolicy.Threshold {
		if err := l.Failed(t.Context(), evilName, "192.0.2.1", time.Now(), accounts.FailedPassword); err != nil {
			t.Fatal(err)
		}
	}
	out := mustRun(t, "", "user", "lockouts", "--dir", dir).stdout
	for _, raw := range []string{"\x1b", "\a", "\u202e", "\nfake"} {
		if strings.Contains(out, raw) {
			t.Errorf("user lockouts printed %q raw:\n%s", raw, out)
		}
	}
	for _, quoted := range []string{`"\x1b[2J\x1b]0;pwned\a\nfake"`, `"bidi\u202eexe"`} {
		if !strings.Contains(out, quoted) {
			t.Errorf("user lockouts does not show %s:\n%s", quoted, out)
		}
	}
	if lines := strings.Count(out, "\n"); lines != 3 {
		t.Errorf("user lockouts printed %d lines, want a header and 2 rows:\n%s", lines, out)
	}
	// A lock on an address has no user: the empty column shows "-".
	if f := strings.Fields(strings.Split(out, "\n")[1]); len(f) < 2 || f[0] != "addr" || f[1] != "-" {
		t.Errorf("user lockouts does not show the address lock's missing user as -:\n%s", out)
	}
	// The JSON keeps the strings as they are, encoded.
	var v []map[string]any
	if err := json.Unmarshal([]byte(mustRun(t, "", "user", "lockouts", "--dir", dir, "--json").stdout), &v); err != nil {
		t.Fatal(err)
	}
	var addrs []any
	for _, e := range v {
		addrs = append(addrs, e["addr"])
	}
	if !slices.Contains(addrs, any(evilAddr)) {
		t.Errorf("JSON addresses %q, want %q among them", addrs, evilAddr)
	}
}

// TestLockoutFlags checks the usage errors of 'user unlock' and of serve's
// lockout flags.
func TestLockoutFlags(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "", "init", "--dir", dir)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"user", "unlock", "--addr", "not-an-ip"}, "want an IP address"},
		{[]string{"user", "unlock"}, "NAME"},
		{[]string{"serve", "--lockout-ipv6-prefix", "129"}, "prefix length from 1 to 128"},
		{[]string{"serve", "--lockout-user-threshold", "-1"}, "must not be negative"},
		{[]string{"serve", "--lockout-known-for", "-1h"}, "must not be negative"},
	} {
		r := run(t, "", append(tc.args, "--dir", dir)...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want a usage error saying %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
	// The new flags come from authrelay.conf like every serve flag.
	if err := os.WriteFile(deploy.Layout{Dir: dir}.Path(serveConfigFile), []byte("lockout-ipv6-prefix = 200\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := run(t, "", "serve", "--dir", dir); r.code != 2 || !strings.Contains(r.stderr, "/200") {
		t.Errorf("serve with lockout-ipv6-prefix = 200 in authrelay.conf: exit %d, stderr %q; want a usage error", r.code, r.stderr)
	}
	r := mustRun(t, "", "user", "unlock", "alice", "--addr", "2001:db8::1", "--dir", dir)
	if !strings.Contains(r.stdout, "was not locked") {
		t.Errorf("unlock of a pair never locked: %q", r.stdout)
	}
}
