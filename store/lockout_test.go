package store

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authrelay/authrelay/accounts"
)

// testLockoutPolicy locks a name after 3 failures and an address after 5,
// within 10 minutes, for 1, 2, 4, then 8 minutes.
var testLockoutPolicy = accounts.LockoutPolicy{
	Threshold:     3,
	AddrThreshold: 5,
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

func (g guardHelper) fail(name, addr string, now time.Time, times int) {
	g.t.Helper()
	for range times {
		if err := g.l.Failed(g.t.Context(), name, addr, now); err != nil {
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

// lockoutRows returns every row of the lockouts table.
func lockoutRows(t *testing.T, db *DB) []lockoutRow {
	t.Helper()
	rows, err := db.sql.QueryContext(t.Context(), `SELECT `+lockoutColumns+` FROM lockouts ORDER BY kind, key`)
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

func TestLockoutThresholdAndEscalation(t *testing.T) {
	g, db := newGuard(t, testLockoutPolicy)
	const addr = "192.0.2.1"
	now := t0
	// Each round is 3 failures without an address (so that only the name
	// locks), then the lockout, doubling up to the maximum.
	for i, want := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 8 * time.Minute} {
		t.Run(fmt.Sprintf("lockout %d", i+1), func(t *testing.T) {
			g.t = t
			const from = ""
			g.fail("alice", from, now, 2)
			g.wantLocked("alice", addr, false, now)
			g.fail("alice", from, now, 1)
			until := now.Add(want)
			g.wantLocked("alice", addr, true, now, until.Add(-time.Nanosecond))
			g.wantLocked("alice", addr, false, until, until.Add(time.Hour))
			g.wantLocked("bob", addr, false, now)

			// Failures while locked are not counted: they neither extend
			// the lockout nor escalate the next one.
			g.fail("alice", from, now.Add(time.Second), 10)
			g.wantLocked("alice", addr, false, until)
			got, err := db.ActiveLockouts(t.Context(), now)
			if err != nil {
				t.Fatal(err)
			}
			if want := []Lockout{{Kind: LockoutUser, Key: "alice", Locks: i + 1, LockedUntil: until}}; !reflect.DeepEqual(got, want) {
				t.Errorf("ActiveLockouts = %+v, want %+v", got, want)
			}
			now = until
		})
	}
}

func TestLockoutWindow(t *testing.T) {
	g, _ := newGuard(t, testLockoutPolicy)
	w := testLockoutPolicy.Window

	// Two failures, then the window passes: the count starts again.
	g.fail("alice", "", t0, 2)
	g.fail("alice", "", t0.Add(w+time.Second), 1)
	g.wantLocked("alice", "", false, t0.Add(w+time.Second))
	g.fail("alice", "", t0.Add(w+2*time.Second), 1)
	g.wantLocked("alice", "", false, t0.Add(w+2*time.Second))
	// A window counts from its first failure: exactly Window later still
	// counts.
	g.fail("alice", "", t0.Add(2*w+time.Second), 1)
	g.wantLocked("alice", "", true, t0.Add(2*w+time.Second))
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
	g2 := guardHelper{t, db2.Lockouts(testLockoutPolicy)}
	g2.fail("user0", other, t0, testLockoutPolicy.AddrThreshold-1)
	g2.succeed("valid", other, t0)
	g2.fail("user1", other, t0, 1)
	g2.wantLocked("valid", other, true, t0)

	got, err := db.ActiveLockouts(t.Context(), t0)
	if err != nil {
		t.Fatal(err)
	}
	if want := []Lockout{{Kind: LockoutAddr, Key: addr, Locks: 1, LockedUntil: t0.Add(time.Minute)}}; !reflect.DeepEqual(got, want) {
		t.Errorf("ActiveLockouts = %+v, want %+v", got, want)
	}
}

func TestLockoutNames(t *testing.T) {
	g, db := newGuard(t, testLockoutPolicy)
	ctx := t.Context()
	if err := db.AddAccount(ctx, "APP"); err != nil {
		t.Fatal(err)
	}
	if err := db.AddUser(ctx, accounts.User{Name: "alice", Account: "APP"}, "pw"); err != nil {
		t.Fatal(err)
	}

	t.Run("unknown name counts like a known one", func(t *testing.T) {
		g.t = t
		for _, name := range []string{"alice", "mallory"} {
			g.fail(name, "", t0, testLockoutPolicy.Threshold)
			g.wantLocked(name, "", true, t0)
		}
		got, err := db.ActiveLockouts(ctx, t0)
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
		if got := rows[0].Lockout; got.Kind != LockoutAddr || got.Key != "192.0.2.50" || got.Failures != 4 {
			t.Errorf("address row = %+v, want 4 failures of 192.0.2.50", got)
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
	const addr = "192.0.2.1"

	t.Run("clears failures", func(t *testing.T) {
		g.t = t
		g.fail("alice", addr, t0, 2)
		g.succeed("alice", addr, t0)
		g.fail("alice", addr, t0, 2)
		g.wantLocked("alice", "", false, t0)
		g.fail("alice", addr, t0, 1)
		g.wantLocked("alice", "", true, t0)
	})

	t.Run("does not lift a lockout", func(t *testing.T) {
		g.t = t
		g.succeed("alice", addr, t0)
		g.wantLocked("alice", "", true, t0)
	})

	t.Run("keeps the escalation", func(t *testing.T) {
		g.t = t
		now := t0.Add(time.Minute)
		g.succeed("alice", addr, now)
		g.fail("alice", "", now, 3)
		g.wantLocked("alice", "", true, now.Add(2*time.Minute-1))
		g.wantLocked("alice", "", false, now.Add(2*time.Minute))
	})

	t.Run("leaves no row without locks", func(t *testing.T) {
		g.t = t
		g.fail("bob", "", t0, 2)
		g.succeed("bob", "", t0)
		for _, r := range lockoutRows(t, db) {
			if r.Key == "bob" {
				t.Errorf("row %+v left after success", r)
			}
		}
	})

	t.Run("only reads when there is nothing to clear", func(t *testing.T) {
		g.t = t
		_, path := newTestDB(t)
		a, b := openTest(t, path), openTest(t, path)
		ga := guardHelper{t, a.Lockouts(testLockoutPolicy)}
		ga.fail("carol", "", t0, testLockoutPolicy.Threshold) // locked: a row, no failures
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
		for _, name := range []string{"carol", "dave", strings.Repeat("x", 1000)} {
			for _, now := range []time.Time{t0, t0.Add(time.Hour)} {
				ga.succeed(name, addr, now)
			}
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Succeeded with nothing to clear took %v while another handle wrote: it waited for the write lock", d)
		}
	})
}

func TestUnlock(t *testing.T) {
	g, db := newGuard(t, testLockoutPolicy)
	ctx := t.Context()
	c := &clock{t: t0}
	db.Now = c.Now

	g.fail("alice", "", t0, 3)
	g.fail("alice", "", t0.Add(time.Minute), 3) // second lockout: 2 minutes
	g.fail("bob", "", t0, 1)
	g.fail("", "2001:db8::1", t0, 5)

	for _, tc := range []struct {
		kind, key string
		want      bool
	}{
		{LockoutUser, "alice", true},
		{LockoutUser, "alice", false}, // gone
		{LockoutUser, "bob", false},   // failures, never locked
		{LockoutUser, "nobody", false},
		{LockoutAddr, "2001:DB8:0::1", true}, // another spelling of the address
	} {
		got, err := db.Unlock(ctx, tc.kind, tc.key)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("Unlock(%s, %s) = %v, want %v", tc.kind, tc.key, got, tc.want)
		}
	}
	g.wantLocked("alice", "2001:db8::1", false, t0.Add(time.Minute))
	if rows := lockoutRows(t, db); len(rows) != 0 {
		t.Errorf("rows left after unlocking: %+v", rows)
	}
	// Unlocking forgets the escalation: the next lockout is the first.
	g.fail("alice", "", t0.Add(time.Minute), 3)
	g.wantLocked("alice", "", false, t0.Add(2*time.Minute))

	if _, err := db.Unlock(ctx, "name", "alice"); err == nil || !strings.Contains(err.Error(), `"user"`) {
		t.Errorf("Unlock of an unknown kind = %v, want an error naming the kinds", err)
	}
	// A lockout that has ended is reported as not locked.
	g.fail("carol", "", t0, 3)
	c.Set(t0.Add(time.Hour))
	if got, err := db.Unlock(ctx, LockoutUser, "carol"); err != nil || got {
		t.Errorf("Unlock of an ended lockout = %v, %v; want false", got, err)
	}
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

	g.fail("zed", "", t0, 3)                         // until t0+1m
	g.fail("amy", "", t0.Add(30*time.Second), 3)     // until t0+1m30s
	g.fail("", "192.0.2.7", t0.Add(-time.Second), 5) // until t0+59s
	g.fail("bob", "", t0, 1)                         // never locked
	g.fail("old", "", t0.Add(-time.Hour), 3)         // locked and expired
	got, err := db.ActiveLockouts(ctx, t0.Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	want := []Lockout{
		{Kind: LockoutAddr, Key: "192.0.2.7", Locks: 1, LockedUntil: t0.Add(59 * time.Second)},
		{Kind: LockoutUser, Key: "zed", Locks: 1, LockedUntil: t0.Add(time.Minute)},
		{Kind: LockoutUser, Key: "amy", Locks: 1, LockedUntil: t0.Add(90 * time.Second)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ActiveLockouts =\n\t%+v\nwant\n\t%+v", got, want)
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
	// Keeping 75 minutes: only "old", last failed at t0-1h, has been quiet
	// that long at t0+16m.
	if n := prune(t0.Add(16*time.Minute), 75*time.Minute); n != 1 {
		t.Errorf("PruneLockouts deleted %d, want 1 (old)", n)
	}
	// A day later all are quiet and unlocked.
	if n := prune(t0.Add(24*time.Hour), time.Hour); n != 4 {
		t.Errorf("PruneLockouts a day later deleted %d, want 4", n)
	}
	if rows := lockoutRows(t, db); len(rows) != 0 {
		t.Errorf("rows left: %+v", rows)
	}
	// A row locked for longer than keep is not pruned while locked.
	g.fail("long", "", t0, 3)
	if n := prune(t0.Add(30*time.Second), 0); n != 0 {
		t.Errorf("PruneLockouts deleted %d locked rows", n)
	}
	if _, err := db.PruneLockouts(ctx, t0, -time.Second); err == nil {
		t.Error("PruneLockouts with a negative keep: no error")
	}
}

func TestLockoutSweep(t *testing.T) {
	g, db := newGuard(t, testLockoutPolicy)
	// Many unknown names, one failure each: rows that never lock.
	for i := range 3 * sweepBatch {
		g.fail(fmt.Sprintf("guess%d", i), "", t0, 1)
	}
	g.fail("locked", "", t0, 3)
	if got, want := len(lockoutRows(t, db)), 3*sweepBatch+1; got != want {
		t.Fatalf("%d rows, want %d", got, want)
	}
	// Once their window has passed, each failure sweeps a batch of them,
	// never a row with locks.
	later := t0.Add(testLockoutPolicy.Window + time.Second)
	for range 3 {
		g.fail("new", "", later, 1)
	}
	rows := lockoutRows(t, db)
	var keys []string
	for _, r := range rows {
		keys = append(keys, r.Key)
	}
	if want := []string{"locked", "new"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("rows after the sweep: %q, want %q", keys, want)
	}
}

func TestLockoutDisabled(t *testing.T) {
	t.Run("both thresholds 0", func(t *testing.T) {
		p := testLockoutPolicy
		p.Threshold, p.AddrThreshold = 0, 0
		g, db := newGuard(t, p)
		g.fail("alice", "192.0.2.1", t0, 100)
		g.succeed("alice", "192.0.2.1", t0)
		g.wantLocked("alice", "192.0.2.1", false, t0)
		if rows := lockoutRows(t, db); len(rows) != 0 {
			t.Errorf("rows with lockouts off: %+v", rows)
		}
	})

	t.Run("names only off", func(t *testing.T) {
		g, db := newGuard(t, testLockoutPolicy)
		g.fail("alice", "", t0, 3) // locked while the policy counted names
		p := testLockoutPolicy
		p.Threshold = 0
		off := guardHelper{t, db.Lockouts(p)}
		off.wantLocked("alice", "", false, t0)
		off.fail("bob", "192.0.2.1", t0, 5)
		off.wantLocked("bob", "", false, t0)
		off.wantLocked("bob", "192.0.2.1", true, t0)
	})

	t.Run("invalid policy", func(t *testing.T) {
		db, _ := newTestDB(t)
		l := db.Lockouts(accounts.LockoutPolicy{Threshold: 3})
		ctx := t.Context()
		if _, err := l.Locked(ctx, "alice", "", t0); err == nil || !strings.Contains(err.Error(), "lockout policy") {
			t.Errorf("Locked with an invalid policy = %v, want a policy error", err)
		}
		if err := l.Failed(ctx, "alice", "", t0); err == nil {
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

	ga.fail("alice", "", t0, 2)
	gb.fail("alice", "", t0, 1)
	ga.wantLocked("alice", "", true, t0)
	gb.wantLocked("alice", "", true, t0)
	gb.succeed("bob", "", t0)

	// Concurrent failures of one name from both handles: none is lost.
	p := testLockoutPolicy
	p.Threshold = 1000
	la, lb := a.Lockouts(p), b.Lockouts(p)
	const workers, each = 4, 25
	var wg sync.WaitGroup
	for w := range workers {
		l := []*Lockouts{la, lb}[w%2]
		wg.Go(func() {
			for range each {
				if err := l.Failed(ctx, "carol", "", t0); err != nil {
					t.Errorf("Failed: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, r := range lockoutRows(t, a) {
		if r.Key == "carol" && r.Failures != workers*each {
			t.Errorf("carol has %d failures after %d concurrent ones", r.Failures, workers*each)
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
	gc.wantLocked("alice", "", true, t0)
	gc.wantLocked("alice", "", false, t0.Add(time.Minute))
}

func TestLockedIsOneRead(t *testing.T) {
	// Locked and a Succeeded with nothing to clear must not wait for a
	// writer: they run on every login.
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
}
