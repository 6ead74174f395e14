package store

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authrelay/authrelay/accounts"
)

// testLockoutPolicy locks a name from one address after 3 failures, an
// address after 5, and a name from everywhere after 8, within 10 minutes,
// for 1, 2, 4, then 8 minutes; addresses where the user logged in within
// an hour are exempt from the name's lock.
var testLockoutPolicy = accounts.LockoutPolicy{
	Threshold:     3,
	AddrThreshold: 5,
	UserThreshold: 8,
	KnownFor:      time.Hour,
	Window:        10 * time.Minute,
	Duration:      time.Minute,
	MaxDuration:   8 * time.Minute,
}

// guardHelper wraps a Lockouts with test failures on error.
type guardHelper struct {
	t *testing.T
	l *Lockouts
}

func (g guardHelper) locked(name, addr string, now time.Time) bool {
	g.t.Helper()
	locked, err := g.l.Locked(g.t.Context(), name, addr, now)
	if err != nil {
		g.t.Fatal(err)
	}
	return locked
}

// fail records times failures of kind FailedPassword.
func (g guardHelper) fail(name, addr string, now time.Time, times int) {
	g.t.Helper()
	g.failAs(name, addr, now, times, accounts.FailedPassword)
}

func (g guardHelper) failAs(name, addr string, now time.Time, times int, f accounts.Failure) {
	g.t.Helper()
	for range times {
		if err := g.l.Failed(g.t.Context(), name, addr, now, f); err != nil {
			g.t.Fatal(err)
		}
	}
}

func (g guardHelper) succeed(name, addr string, now time.Time) {
	g.t.Helper()
	if err := g.l.Succeeded(g.t.Context(), name, addr, now); err != nil {
		g.t.Fatal(err)
	}
}

// wantLocked checks Locked for name and addr at each of the times.
func (g guardHelper) wantLocked(name, addr string, want bool, at ...time.Time) {
	g.t.Helper()
	for _, now := range at {
		if got := g.locked(name, addr, now); got != want {
			g.t.Errorf("Locked(%q, %q) at t0%+v = %v, want %v", name, addr, now.Sub(t0), got, want)
		}
	}
}

func newGuard(t *testing.T, p accounts.LockoutPolicy) (guardHelper, *DB) {
	t.Helper()
	db, _ := newTestDB(t)
	return guardHelper{t, db.Lockouts(p)}, db
}

// addUsers adds users of the given names to db, in account APP.
func addUsers(t *testing.T, db *DB, names ...string) {
	t.Helper()
	if _, err := db.Account(t.Context(), "APP"); err != nil {
		if err := db.AddAccount(t.Context(), "APP"); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range names {
		if err := db.AddUser(t.Context(), accounts.User{Name: n, Account: "APP"}, "pw-"+n); err != nil {
			t.Fatal(err)
		}
	}
}

// lockoutRows returns every row of the lockouts table.
func lockoutRows(t *testing.T, db *DB) []lockoutRow {
	t.Helper()
	rows, err := db.sql.QueryContext(t.Context(), `SELECT `+lockoutColumns+` FROM lockouts ORDER BY kind, user, addr`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var list []lockoutRow
	for rows.Next() {
		r, err := scanLockout(rows)
		if err != nil {
			t.Fatal(err)
		}
		list = append(list, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return list
}

func TestLockoutAddrKey(t *testing.T) {
	for _, tc := range []struct {
		addr string
		v6   int
		want string
		ok   bool
	}{
		{"192.0.2.1", 64, "192.0.2.1", true},
		{"::ffff:192.0.2.1", 64, "192.0.2.1", true}, // IPv4-mapped is IPv4
		{"2001:db8:1:2:3:4:5:6", 64, "2001:db8:1:2::/64", true},
		{"2001:DB8:1:2::ffff", 64, "2001:db8:1:2::/64", true}, // same /64, other spelling
		{"2001:db8:1:3::1", 64, "2001:db8:1:3::/64", true},
		{"2001:db8:1:2:3:4:5:6", 48, "2001:db8:1::/48", true},
		{"2001:db8:1:2:3:4:5:6", 128, "2001:db8:1:2:3:4:5:6", true},
		{"fe80::1%eth0", 64, "fe80::/64", true}, // the zone is not part of the key
		{"::1", 64, "::/64", true},
		{"pipe", 64, "pipe", true}, // not an IP: counted as it is
		{"", 64, "", false},
		{strings.Repeat("a", maxAddrLen+1), 64, "", false},
		{"bad\xff", 64, "", false},
	} {
		got, ok := addrKey(tc.addr, tc.v6)
		if got != tc.want || ok != tc.ok {
			t.Errorf("addrKey(%q, /%d) = %q, %v; want %q, %v", tc.addr, tc.v6, got, ok, tc.want, tc.ok)
		}
	}
}

func TestLockoutPairThresholdAndEscalation(t *testing.T) {
	g, db := newGuard(t, testLockoutPolicy)
	const addr, other = "192.0.2.1", "198.51.100.7"
	now := t0
	// Each round is 3 failures of alice from addr, then the lockout of
	// that pair, doubling up to the maximum.
	for i, want := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 8 * time.Minute} {
		t.Run(fmt.Sprintf("lockout %d", i+1), func(t *testing.T) {
			g.t = t
			g.fail("alice", addr, now, 2)
			g.wantLocked("alice", addr, false, now)
			g.fail("alice", addr, now, 1)
			until := now.Add(want)
			g.wantLocked("alice", addr, true, now, until.Add(-time.Nanosecond))
			g.wantLocked("alice", addr, false, until, until.Add(time.Hour))
			// Only that pair: alice from elsewhere, and others from addr,
			// log in.
			g.wantLocked("alice", other, false, now)
			g.wantLocked("bob", addr, false, now)

			// Failures while locked are not counted against the pair:
			// they neither extend the lockout nor escalate the next one.
			g.failAs("alice", addr, now.Add(time.Second), 1, accounts.FailedLocked)
			g.wantLocked("alice", addr, false, until)
			got, err := db.ActiveLockouts(t.Context(), now)
			if err != nil {
				t.Fatal(err)
			}
			want := []Lockout{{Kind: LockoutPair, User: "alice", Addr: addr, Locks: i + 1, LockedUntil: until,
				LockFailures: 3, LockWindow: testLockoutPolicy.Window}}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("ActiveLockouts = %+v, want %+v", got, want)
			}
			// Unlock the address's count, which the failures above grow.
			if _, err := db.Unlock(t.Context(), "", addr); err != nil {
				t.Fatal(err)
			}
			// Restore the pair's escalation, which that unlock forgot.
			if _, err := db.sql.ExecContext(t.Context(), `INSERT INTO lockouts (kind, user, addr, failures, window_start, locked_until, locks, updated) VALUES ('user+addr', 'alice', ?, 0, ?, ?, ?, ?)`,
				addr, formatTime(now), formatTime(until), i+1, formatTime(now)); err != nil {
				t.Fatal(err)
			}
			// And the username's count, which is not under test here.
			if _, err := db.sql.ExecContext(t.Context(), `DELETE FROM lockouts WHERE kind = 'user'`); err != nil {
				t.Fatal(err)
			}
			now = until
		})
	}
}

func TestLockoutWindow(t *testing.T) {
	g, _ := newGuard(t, testLockoutPolicy)
	w := testLockoutPolicy.Window
	const addr = "192.0.2.1"

	// Two failures, then the window passes: the count starts again.
	g.fail("alice", addr, t0, 2)
	g.fail("alice", addr, t0.Add(w+time.Second), 1)
	g.wantLocked("alice", addr, false, t0.Add(w+time.Second))
	g.fail("alice", addr, t0.Add(w+2*time.Second), 1)
	g.wantLocked("alice", addr, false, t0.Add(w+2*time.Second))
	// A window counts from its first failure: exactly Window later still
	// counts.
	g.fail("alice", addr, t0.Add(2*w+time.Second), 1)
	g.wantLocked("alice", addr, true, t0.Add(2*w+time.Second))
}

func TestLockoutAddress(t *testing.T) {
	g, db := newGuard(t, testLockoutPolicy)
	const addr, other = "203.0.113.9", "203.0.113.10"

	// Password spraying: one attempt per name, all from one address.
	for i := range testLockoutPolicy.AddrThreshold {
		g.wantLocked("anyone", addr, false, t0)
		g.fail(fmt.Sprintf("user%d", i), addr, t0, 1)
	}
	g.wantLocked("anyone", addr, true, t0, t0.Add(time.Minute-1))
	g.wantLocked("", addr, true, t0)
	g.wantLocked("anyone", addr, false, t0.Add(time.Minute))
	g.wantLocked("user0", other, false, t0)
	g.wantLocked("anyone", "", false, t0)

	// The mapped IPv6 form of an address is the same address.
	g.wantLocked("anyone", "::ffff:"+addr, true, t0)

	// A success from the address does not reset its count.
	db2, _ := newTestDB(t)
	addUsers(t, db2, "valid")
	g2 := guardHelper{t, db2.Lockouts(testLockoutPolicy)}
	g2.fail("user0", other, t0, testLockoutPolicy.AddrThreshold-1)
	g2.succeed("valid", other, t0)
	g2.fail("user1", other, t0, 1)
	g2.wantLocked("valid", other, true, t0)

	got, err := db.ActiveLockouts(t.Context(), t0)
	if err != nil {
		t.Fatal(err)
	}
	want := []Lockout{{Kind: LockoutAddr, Addr: addr, Locks: 1, LockedUntil: t0.Add(time.Minute), LockFailures: 5, LockWindow: testLockoutPolicy.Window}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ActiveLockouts = %+v, want %+v", got, want)
	}
}

// TestLockoutIPv6Prefix checks that addresses of one IPv6 prefix count as
// one address, so that rotating through a /64 does not evade the address
// limit, and that the prefix length is the policy's.
func TestLockoutIPv6Prefix(t *testing.T) {
	g, _ := newGuard(t, testLockoutPolicy)
	for i := range testLockoutPolicy.AddrThreshold {
		g.fail(fmt.Sprintf("user%d", i), fmt.Sprintf("2001:db8:1:2::%x", i+1), t0, 1)
	}
	g.wantLocked("anyone", "2001:db8:1:2:ffff::1", true, t0)
	g.wantLocked("anyone", "2001:db8:1:3::1", false, t0)

	p := testLockoutPolicy
	p.IPv6Prefix = 128
	g128, _ := newGuard(t, p)
	for i := range p.AddrThreshold {
		g128.fail(fmt.Sprintf("user%d", i), fmt.Sprintf("2001:db8:1:2::%x", i+1), t0, 1)
	}
	g128.wantLocked("anyone", "2001:db8:1:2::1", false, t0)
}

// TestLockoutUserAcrossAddresses checks the username's lock: guesses spread
// over many addresses lock the name from every address but those where the
// user logged in within KnownFor.
func TestLockoutUserAcrossAddresses(t *testing.T) {
	long := testLockoutPolicy
	long.Duration, long.MaxDuration = 2*time.Hour, 8*time.Hour
	g, db := newGuard(t, long)
	addUsers(t, db, "alice")
	const home = "192.0.2.10"
	g.succeed("alice", home, t0)

	// Two guesses from each of four addresses: below the pair's and the
	// address's thresholds, 8 in all for the name.
	for i := range 4 {
		addr := fmt.Sprintf("198.51.100.%d", i+1)
		g.fail("alice", addr, t0, 2)
		g.wantLocked("alice", addr, i == 3, t0)
	}
	g.wantLocked("alice", "203.0.113.1", true, t0)                   // a new address
	g.wantLocked("alice", home, false, t0)                           // known: exempt
	g.wantLocked("bob", "203.0.113.1", false, t0)                    // another name
	g.wantLocked("alice", home, true, t0.Add(time.Hour+time.Second)) // no longer known
	got, err := db.ActiveLockouts(t.Context(), t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Kind != LockoutUser || got[0].User != "alice" || got[0].LockFailures != 8 {
		t.Errorf("ActiveLockouts = %+v, want alice's username", got)
	}

	t.Run("only guesses count", func(t *testing.T) {
		g, db := newGuard(t, testLockoutPolicy)
		addUsers(t, db, "bob")
		for i := range 8 {
			addr := fmt.Sprintf("198.51.100.%d", i+1)
			g.failAs("bob", addr, t0, 2, accounts.FailedRefused)
			g.failAs("bob", addr, t0, 1, accounts.FailedLocked)
		}
		g.wantLocked("bob", "203.0.113.1", false, t0)
	})

	t.Run("known addresses are bounded", func(t *testing.T) {
		g, db := newGuard(t, testLockoutPolicy)
		addUsers(t, db, "carol")
		for i := range maxKnownAddrs + 5 {
			g.succeed("carol", fmt.Sprintf("10.0.%d.%d", i/250, i%250), t0.Add(time.Duration(i)*time.Second))
		}
		var n int
		if err := db.sql.QueryRowContext(t.Context(), `SELECT count(*) FROM known_addrs WHERE user = 'carol'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != maxKnownAddrs {
			t.Errorf("%d known addresses kept, want %d", n, maxKnownAddrs)
		}
		// The newest are kept.
		g.fail("carol", "198.51.100.1", t0, 2)
		g.fail("carol", "198.51.100.2", t0, 2)
		g.fail("carol", "198.51.100.3", t0, 2)
		g.fail("carol", "198.51.100.4", t0, 2)
		at := t0.Add(time.Minute - time.Second)
		g.wantLocked("carol", fmt.Sprintf("10.0.0.%d", maxKnownAddrs+4), false, at)
		g.wantLocked("carol", "10.0.0.0", true, at)
		// Removing the user removes them.
		if err := db.RemoveUser(t.Context(), "carol"); err != nil {
			t.Fatal(err)
		}
		if err := db.sql.QueryRowContext(t.Context(), `SELECT count(*) FROM known_addrs`).Scan(&n); err != nil || n != 0 {
			t.Errorf("%d known addresses (%v) after the user is removed, want 0", n, err)
		}
	})
}

func TestLockoutNames(t *testing.T) {
	g, db := newGuard(t, testLockoutPolicy)
	addUsers(t, db, "alice")
	const addr = "192.0.2.1"

	t.Run("unknown name counts like a known one", func(t *testing.T) {
		g.t = t
		for i, name := range []string{"alice", "mallory"} {
			from := fmt.Sprintf("192.0.2.%d", 100+i)
			g.fail(name, from, t0, testLockoutPolicy.Threshold)
			g.wantLocked(name, from, true, t0)
		}
		got, err := db.ActiveLockouts(t.Context(), t0)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].LockedUntil != got[1].LockedUntil || got[0].Locks != got[1].Locks {
			t.Errorf("ActiveLockouts = %+v: want alice and mallory locked alike", got)
		}
	})

	t.Run("invalid name counts only against the address", func(t *testing.T) {
		g.t = t
		before := len(lockoutRows(t, db))
		long := strings.Repeat("x", accounts.MaxNameLen+1)
		for _, name := range []string{long, "has space", "", "ctl\x00"} {
			g.fail(name, "192.0.2.50", t0, 1)
		}
		g.fail(long, "", t0, 10)
		rows := lockoutRows(t, db)
		if got, want := len(rows), before+1; got != want {
			t.Fatalf("%d rows, want %d (only the address)", got, want)
		}
		var found bool
		for _, r := range rows {
			if r.Kind == LockoutAddr && r.Addr == "192.0.2.50" {
				found = r.Failures == 4
			}
		}
		if !found {
			t.Errorf("rows %+v: want 4 failures of address 192.0.2.50", rows)
		}
		g.wantLocked(long, "", false, t0)
	})

	t.Run("over-long address is not counted", func(t *testing.T) {
		g.t = t
		before := len(lockoutRows(t, db))
		g.fail("", strings.Repeat("a", maxAddrLen+1), t0, 10)
		if got := len(lockoutRows(t, db)); got != before {
			t.Errorf("%d rows after failures from an over-long address, want %d", got, before)
		}
	})
}

func TestLockoutSucceeded(t *testing.T) {
	g, db := newGuard(t, testLockoutPolicy)
	addUsers(t, db, "alice", "bob", "carol")
	const addr = "192.0.2.1"

	t.Run("clears the pair's failures", func(t *testing.T) {
		g.t = t
		g.fail("alice", addr, t0, 2)
		g.succeed("alice", addr, t0)
		g.fail("alice", addr, t0, 2)
		g.wantLocked("alice", addr, false, t0)
		g.fail("alice", addr, t0, 1)
		g.wantLocked("alice", addr, true, t0)
	})

	t.Run("does not lift a lockout", func(t *testing.T) {
		g.t = t
		g.succeed("alice", addr, t0)
		g.wantLocked("alice", addr, true, t0)
	})

	t.Run("keeps the escalation", func(t *testing.T) {
		g.t = t
		now := t0.Add(time.Minute)
		g.succeed("alice", addr, now)
		g.fail("alice", addr, now, 3)
		g.wantLocked("alice", addr, true, now.Add(2*time.Minute-1))
		g.wantLocked("alice", addr, false, now.Add(2*time.Minute))
	})

	t.Run("leaves no pair row without locks", func(t *testing.T) {
		g.t = t
		g.fail("bob", "192.0.2.2", t0, 2)
		g.succeed("bob", "192.0.2.2", t0)
		for _, r := range lockoutRows(t, db) {
			if r.Kind == LockoutPair && r.User == "bob" {
				t.Errorf("row %+v left after success", r)
			}
		}
	})

	t.Run("only reads when there is nothing to write", func(t *testing.T) {
		g.t = t
		_, path := newTestDB(t)
		a, b := openTest(t, path), openTest(t, path)
		addUsers(t, a, "carol", "dave")
		ga := guardHelper{t, a.Lockouts(testLockoutPolicy)}
		ga.succeed("carol", addr, t0)                           // known
		ga.fail("carol", addr, t0, testLockoutPolicy.Threshold) // locked: a row, no failures
		ga.succeed("dave", addr, t0)                            // known
		// Another handle holds the write lock; the busy timeout is 5 s.
		tx, err := b.sql.BeginTx(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(t.Context(), `DELETE FROM lockouts WHERE kind = 'nothing'`); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		ga.succeed("carol", addr, t0.Add(time.Minute)) // locked
		for _, now := range []time.Time{t0, t0.Add(time.Minute)} {
			ga.succeed("dave", addr, now) // known within the hour
			ga.succeed(strings.Repeat("x", 1000), addr, now)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Succeeded with nothing to write took %v while another handle wrote: it waited for the write lock", d)
		}
	})
}

func TestUnlock(t *testing.T) {
	g, db := newGuard(t, testLockoutPolicy)
	ctx := t.Context()
	c := &clock{t: t0}
	db.Now = c.Now
	const a4 = "192.0.2.1"

	lockAll := func() {
		t.Helper()
		g.fail("alice", a4, t0, 3)
		g.fail("alice", "2001:db8::1", t0, 3)
		g.fail("alice", "198.51.100.1", t0, 2) // the name: 8 in all
		for i := range 5 {
			g.fail(fmt.Sprintf("spray%d", i), "2001:db8::2", t0, 1)
		}
	}
	lockAll()
	kinds := func() []string {
		var out []string
		for _, r := range lockoutRows(t, db) {
			if r.LockedUntil.After(t0) {
				out = append(out, r.Kind+" "+r.Key())
			}
		}
		return out
	}
	want := []string{"addr 2001:db8::/64", "user alice", "user+addr alice@192.0.2.1", "user+addr alice@2001:db8::/64"}
	if got := kinds(); !reflect.DeepEqual(got, want) {
		t.Fatalf("locked %q, want %q", got, want)
	}
	unlock := func(name, addr string, want bool) {
		t.Helper()
		got, err := db.Unlock(ctx, name, addr)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("Unlock(%q, %q) = %v, want %v", name, addr, got, want)
		}
	}
	// The pair, by another spelling of the address.
	unlock("alice", "2001:DB8:0::1", true)
	if got, want := kinds(), []string{"addr 2001:db8::/64", "user alice", "user+addr alice@192.0.2.1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("after unlocking the pair: locked %q, want %q", got, want)
	}
	// The address, by an address in its prefix.
	unlock("", "2001:db8::ffff", true)
	unlock("", "2001:db8::ffff", false)
	// The name: the username and its pairs.
	unlock("alice", "", true)
	if got := kinds(); len(got) != 0 {
		t.Errorf("after unlocking: locked %q", got)
	}
	unlock("bob", "", false)
	unlock("nobody", "192.0.2.9", false)
	// Unlocking forgets the escalation: the next lockout is the first.
	g.fail("alice", a4, t0.Add(time.Minute), 3)
	g.wantLocked("alice", a4, false, t0.Add(2*time.Minute))

	// An address with its pairs.
	lockAll()
	unlock("", a4, true)
	g.wantLocked("alice", a4, true, t0) // the name is still locked
	unlock("alice", "", true)
	g.wantLocked("alice", a4, false, t0)

	if _, err := db.Unlock(ctx, "", ""); err == nil {
		t.Error("Unlock of nothing: no error")
	}
	// A lockout that has ended is reported as not locked.
	g.fail("carol", a4, t0, 3)
	c.Set(t0.Add(time.Hour))
	unlock("carol", "", false)
}

func TestActiveAndPruneLockouts(t *testing.T) {
	g, db := newGuard(t, testLockoutPolicy)
	ctx := t.Context()

	empty, err := db.ActiveLockouts(ctx, t0)
	if err != nil {
		t.Fatal(err)
	}
	if empty == nil || len(empty) != 0 {
		t.Errorf("ActiveLockouts of an empty table = %#v, want an empty list", empty)
	}
	const addr = "192.0.2.1"
	// Each name from its own address, so that no address locks.
	g.fail("zed", "192.0.2.2", t0, 3)                     // until t0+1m
	g.fail("amy", "192.0.2.3", t0.Add(30*time.Second), 3) // until t0+1m30s
	for i := range 5 {                                    // until t0+59s
		g.fail(fmt.Sprintf("s%d", i), "192.0.2.7", t0.Add(-time.Second), 1)
	}
	g.fail("bob", addr, t0, 1)                        // never locked
	g.fail("old", "192.0.2.4", t0.Add(-time.Hour), 3) // locked and expired
	got, err := db.ActiveLockouts(ctx, t0.Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, l := range got {
		keys = append(keys, l.Kind+" "+l.Key())
	}
	if want := []string{"addr 192.0.2.7", "user+addr zed@192.0.2.2", "user+addr amy@192.0.2.3"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("ActiveLockouts = %q, want %q", keys, want)
	}

	prune := func(now time.Time, keep time.Duration) int {
		t.Helper()
		n, err := db.PruneLockouts(ctx, now, keep)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := prune(t0.Add(30*time.Second), 24*time.Hour); n != 0 {
		t.Errorf("PruneLockouts of recent rows deleted %d", n)
	}
	// Keeping 75 minutes: only the rows of "old" (its pair, its address,
	// its name), last failed at t0-1h, have been quiet that long at t0+16m.
	if n := prune(t0.Add(16*time.Minute), 75*time.Minute); n != 3 {
		t.Errorf("PruneLockouts deleted %d, want 3 (old's)", n)
	}
	// A day later all are quiet and unlocked.
	if n := prune(t0.Add(24*time.Hour), time.Hour); n == 0 {
		t.Errorf("PruneLockouts a day later deleted nothing")
	}
	if rows := lockoutRows(t, db); len(rows) != 0 {
		t.Errorf("rows left: %+v", rows)
	}
	// A row locked for longer than keep is not pruned while locked.
	g.fail("long", addr, t0, 3)
	if n := prune(t0.Add(30*time.Second), 0); n != 2 { // the address's and the name's counts
		t.Errorf("PruneLockouts deleted %d rows, want 2: not the locked one", n)
	}
	g.wantLocked("long", addr, true, t0.Add(30*time.Second))
	if _, err := db.PruneLockouts(ctx, t0, -time.Second); err == nil {
		t.Error("PruneLockouts with a negative keep: no error")
	}
}

func TestLockoutSweep(t *testing.T) {
	p := testLockoutPolicy
	p.AddrThreshold, p.UserThreshold = 0, 0
	g, db := newGuard(t, p)
	// Many unknown names, one failure each: rows that never lock.
	for i := range 3 * sweepBatch {
		g.fail(fmt.Sprintf("guess%d", i), "192.0.2.1", t0, 1)
	}
	g.fail("locked", "192.0.2.1", t0, 3)
	if got, want := len(lockoutRows(t, db)), 3*sweepBatch+1; got != want {
		t.Fatalf("%d rows, want %d", got, want)
	}
	// Once their window has passed, each failure sweeps a batch of them,
	// never a row with locks.
	later := t0.Add(p.Window + time.Second)
	for range 3 {
		g.fail("new", "192.0.2.1", later, 1)
	}
	var keys []string
	for _, r := range lockoutRows(t, db) {
		keys = append(keys, r.User)
	}
	if want := []string{"locked", "new"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("rows after the sweep: %q, want %q", keys, want)
	}
}

func TestLockoutDisabled(t *testing.T) {
	t.Run("all thresholds 0", func(t *testing.T) {
		p := testLockoutPolicy
		p.Threshold, p.AddrThreshold, p.UserThreshold = 0, 0, 0
		g, db := newGuard(t, p)
		g.fail("alice", "192.0.2.1", t0, 100)
		g.succeed("alice", "192.0.2.1", t0)
		g.wantLocked("alice", "192.0.2.1", false, t0)
		if rows := lockoutRows(t, db); len(rows) != 0 {
			t.Errorf("rows with lockouts off: %+v", rows)
		}
	})

	t.Run("pairs off", func(t *testing.T) {
		g, db := newGuard(t, testLockoutPolicy)
		g.fail("alice", "192.0.2.1", t0, 3) // locked while the policy counted pairs
		p := testLockoutPolicy
		p.Threshold = 0
		off := guardHelper{t, db.Lockouts(p)}
		off.wantLocked("alice", "192.0.2.1", false, t0)
		off.fail("bob", "192.0.2.9", t0, 5)
		off.wantLocked("bob", "192.0.2.10", false, t0)
		off.wantLocked("bob", "192.0.2.9", true, t0) // the address
	})

	t.Run("invalid policy", func(t *testing.T) {
		db, _ := newTestDB(t)
		l := db.Lockouts(accounts.LockoutPolicy{Threshold: 3})
		ctx := t.Context()
		if _, err := l.Locked(ctx, "alice", "", t0); err == nil || !strings.Contains(err.Error(), "lockout policy") {
			t.Errorf("Locked with an invalid policy = %v, want a policy error", err)
		}
		if _, err := l.Reserve(ctx, "alice", "", t0); err == nil {
			t.Error("Reserve with an invalid policy: no error")
		}
		if err := l.Failed(ctx, "alice", "", t0, accounts.FailedPassword); err == nil {
			t.Error("Failed with an invalid policy: no error")
		}
		if err := l.Succeeded(ctx, "alice", "", t0); err == nil {
			t.Error("Succeeded with an invalid policy: no error")
		}
	})
}

// TestLockoutsShared checks that relays on two handles of one file share
// lockouts, that lockouts survive closing and reopening the database, and
// that concurrent failures from both handles are all counted.
func TestLockoutsShared(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "authrelay.db")
	a, b := openTest(t, path), openTest(t, path)
	ga, gb := guardHelper{t, a.Lockouts(testLockoutPolicy)}, guardHelper{t, b.Lockouts(testLockoutPolicy)}
	const addr = "192.0.2.1"

	ga.fail("alice", addr, t0, 2)
	gb.fail("alice", addr, t0, 1)
	ga.wantLocked("alice", addr, true, t0)
	gb.wantLocked("alice", addr, true, t0)
	gb.succeed("bob", addr, t0)

	// Concurrent failures of one pair from both handles: none is lost.
	p := testLockoutPolicy
	p.Threshold, p.AddrThreshold, p.UserThreshold = 1000, 1000, 1000
	la, lb := a.Lockouts(p), b.Lockouts(p)
	const workers, each = 4, 25
	var wg sync.WaitGroup
	for w := range workers {
		l := []*Lockouts{la, lb}[w%2]
		wg.Go(func() {
			for range each {
				if err := l.Failed(ctx, "carol", addr, t0, accounts.FailedPassword); err != nil {
					t.Errorf("Failed: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, r := range lockoutRows(t, a) {
		if r.User == "carol" && r.Failures != workers*each {
			t.Errorf("carol's %s has %d failures after %d concurrent ones", r.Kind, r.Failures, workers*each)
		}
	}

	// A restart: a new handle after every other one has closed.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	c, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	gc := guardHelper{t, c.Lockouts(testLockoutPolicy)}
	gc.wantLocked("alice", addr, true, t0)
	gc.wantLocked("alice", addr, false, t0.Add(time.Minute))
}

func TestLockedIsOneRead(t *testing.T) {
	// Locked, Reserve and a Succeeded with nothing to write must not wait
	// for a writer: they run on every login.
	db, path := newTestDB(t)
	g := guardHelper{t, db.Lockouts(testLockoutPolicy)}
	g.fail("alice", "192.0.2.1", t0, 3)
	other := openTest(t, path)
	tx, err := other.sql.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(t.Context(), `UPDATE lockouts SET failures = failures`); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	locked, err := g.l.Locked(ctx, "alice", "192.0.2.1", t0)
	if err != nil || !locked {
		t.Errorf("Locked while another handle writes = %v, %v; want true", locked, err)
	}
	ok, err := g.l.Reserve(ctx, "bob", "192.0.2.1", t0)
	if err != nil || !ok {
		t.Errorf("Reserve while another handle writes = %v, %v; want true", ok, err)
	}
	g.l.Release("bob", "192.0.2.1")
}

// TestReserveBoundsABurst runs many concurrent attempts of one name from one
// address, each reserving, failing and releasing as the relay does, and
// checks that no more than the threshold were let through to verify.
func TestReserveBoundsABurst(t *testing.T) {
	g, _ := newGuard(t, testLockoutPolicy)
	ctx := t.Context()
	const addr, attempts, workers = "192.0.2.1", 80, 8

	// One failure recorded first: the count is in force.
	g.fail("alice", addr, t0, 1)
	var verified atomic.Int64
	var wg sync.WaitGroup
	next := make(chan struct{}, attempts)
	for range attempts {
		next <- struct{}{}
	}
	close(next)
	for range workers {
		wg.Go(func() {
			for range next {
				ok, err := g.l.Reserve(ctx, "alice", addr, t0)
				if err != nil {
					t.Error(err)
					return
				}
				f := accounts.FailedLocked
				if ok {
					verified.Add(1)
					time.Sleep(time.Millisecond) // the verification
					f = accounts.FailedPassword
				}
				if err := g.l.Failed(ctx, "alice", addr, t0, f); err != nil {
					t.Error(err)
				}
				if ok {
					g.l.Release("alice", addr)
				}
			}
		})
	}
	wg.Wait()
	if got, want := verified.Load(), int64(testLockoutPolicy.Threshold-1); got > want {
		t.Errorf("%d of %d concurrent attempts verified after 1 failure, want at most %d", got, attempts, want)
	}
	g.wantLocked("alice", addr, true, t0)
	if n := len(g.l.inflight); n != 0 {
		t.Errorf("%d keys with reservations left", n)
	}

	// A key with no failures admits what arrives: bounded by the relay's
	// hash workers, not refused.
	for range testLockoutPolicy.Threshold + 2 {
		if ok, err := g.l.Reserve(ctx, "bob", "192.0.2.2", t0); err != nil || !ok {
			t.Fatalf("Reserve of a key with no failures = %v, %v; want true", ok, err)
		}
	}
}
