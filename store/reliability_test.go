package store

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/authrelay/authrelay/accounts"
)

// smallDisk mounts a tmpfs of size bytes on a new directory, unmounted when
// the test ends. Filling it is a real full disk: SQLite's writes fail with
// SQLITE_FULL. It needs the right to mount (root in a container that
// allows it); without it the test is skipped, saying so, and the
// max_page_count variants below still run.
func smallDisk(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Skipf("cannot mount a tmpfs to fill (needs CAP_SYS_ADMIN): %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fillDisk empties the WAL of db (so that its next write must grow the
// file), then writes a file in dir until the disk is full. It returns a
// function that removes the file: the disk has room again.
func fillDisk(t *testing.T, db *DB, dir string) (free func()) {
	t.Helper()
	rawExec(t, db, `PRAGMA wal_checkpoint(TRUNCATE)`)
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill the disk: %v", err)
			}
			break
		}
	}
	for len(chunk) > 1 { // the last few bytes
		chunk = chunk[:len(chunk)/2]
		for {
			if _, err := f.Write(chunk); err != nil {
				break
			}
		}
	}
	if err := f.Close(); err != nil && !errors.Is(err, syscall.ENOSPC) {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	}
}

// fullPages makes db full the other way SQLite can be: every connection
// of its pool (limited to four) gets max_page_count at the pages the file
// has now, so a write that needs a new page fails with SQLITE_FULL. It
// runs without privileges. The returned function lifts the limit.
func fullPages(t *testing.T, db *DB) (free func()) {
	t.Helper()
	const conns = 4
	db.sql.SetMaxOpenConns(conns)
	set := func(pages string) {
		t.Helper()
		ctx := t.Context()
		var held []interface{ Close() error }
		for range conns {
			c, err := db.sql.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			held = append(held, c)
			q := pages
			if q == "" {
				var n int
				if err := c.QueryRowContext(ctx, `PRAGMA page_count`).Scan(&n); err != nil {
					t.Fatal(err)
				}
				q = fmt.Sprint(n)
			}
			if _, err := c.ExecContext(ctx, `PRAGMA max_page_count = `+q); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range held {
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	set("")
	return func() { set("1073741823") }
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAuditKeptWhileDatabaseFull records 2,000 logins while the database
// cannot be written (a full tmpfs, and a database at max_page_count): none
// is dropped, Health says the trail is failing and why, and once the disk
// has room again every event is written and Health holds again by itself.
// With a backlog too small for them, the rest are counted as dropped and
// logged, and rows plus dropped still account for every event.
func TestAuditKeptWhileDatabaseFull(t *testing.T) {
	faults := []struct {
		name string
		full func(t *testing.T) (*DB, func() func())
	}{
		{"full tmpfs", func(t *testing.T) (*DB, func() func()) {
			dir := smallDisk(t, 4<<20)
			db := openTest(t, filepath.Join(dir, "authrelay.db"))
			return db, func() func() { return fillDisk(t, db, dir) }
		}},
		{"max_page_count", func(t *testing.T) (*DB, func() func()) {
			db, _ := newTestDB(t)
			return db, func() func() { return fullPages(t, db) }
		}},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			t.Run("kept and written when there is room", func(t *testing.T) {
				db, full := f.full(t)
				logs := make(logCapture, 1000)
				w := db.NewAuditWriter(AuditOptions{
					FlushEvery: 5 * time.Millisecond, Logger: slog.New(logs),
					retry: []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond},
				})
				free := full()
				const n = 2000
				for i := range n {
					w.Record(loginEvent(i))
				}
				waitFor(t, "Health to report the failing writes", func() bool { return w.Health() != nil })
				err := w.Health()
				if !errors.Is(err, ErrAuditFailing) || !strings.Contains(err.Error(), "full") || !strings.Contains(err.Error(), "waiting") {
					t.Errorf("Health = %v, want ErrAuditFailing saying the database is full and how many wait", err)
				}
				// Several retries later, nothing is dropped.
				time.Sleep(300 * time.Millisecond)
				if got := w.Dropped(); got != 0 {
					t.Errorf("Dropped = %d while the database was full, want 0: the events wait", got)
				}
				if got := sumCounts(auditAll(t, db)); got >= n {
					t.Fatalf("%d events written while the database was full: the fault did not happen", got)
				}
				free()
				waitFor(t, "every event written", func() bool { return sumCounts(auditAll(t, db)) == n })
				waitFor(t, "Health to hold again", func() bool { return w.Health() == nil })
				if err := w.Close(t.Context()); err != nil {
					t.Fatal(err)
				}
				if got := w.Dropped(); got != 0 {
					t.Errorf("Dropped = %d, want 0", got)
				}
				close(logs)
				var warned, recovered bool
				for r := range logs {
					warned = warned || r.Level == slog.LevelWarn && strings.Contains(r.Message, "not written")
					recovered = recovered || strings.Contains(r.Message, "written again")
				}
				if !warned || !recovered {
					t.Errorf("logged the failure %v and the recovery %v, want both", warned, recovered)
				}
			})

			t.Run("past the backlog, dropped, counted and logged", func(t *testing.T) {
				db, full := f.full(t)
				logs := make(logCapture, 1000)
				w := db.NewAuditWriter(AuditOptions{
					Buffer: 50, Backlog: 100, BatchSize: 10, FlushEvery: 5 * time.Millisecond, Logger: slog.New(logs),
					retry: []time.Duration{10 * time.Millisecond},
				})
				free := full()
				const n = 2000
				for i := range n {
					w.Record(loginEvent(i))
					if i%100 == 0 {
						time.Sleep(time.Millisecond) // let the writer take some
					}
				}
				waitFor(t, "drops", func() bool { return w.Dropped() > 0 })
				if err := w.Health(); !errors.Is(err, ErrAuditFailing) {
					t.Errorf("Health = %v, want ErrAuditFailing", err)
				}
				time.Sleep(50 * time.Millisecond)
				free()
				if err := w.Close(t.Context()); err != nil {
					t.Fatal(err)
				}
				rows := uint64(sumCounts(auditAll(t, db)))
				if rows+w.Dropped() != n || rows < 100 {
					t.Errorf("%d written + %d dropped, want %d in all with the backlog's 100 or more written", rows, w.Dropped(), n)
				}
				close(logs)
				var dropLogs int
				for r := range logs {
					if r.Level == slog.LevelError && r.Message == "audit events dropped" {
						dropLogs++
					}
				}
				// Rate-limited: the first drop, and the rest as Close ends.
				if dropLogs < 1 || dropLogs > 3 {
					t.Errorf("%d drop log lines for %d drops, want one to three", dropLogs, w.Dropped())
				}
			})
		})
	}
}

// TestLockoutHeldWhileDiskFull fails bob's password from one address as
// often as the policy allows while the disk is full: the failures cannot
// be written, yet the pair is locked (Locked, Reserve) as it is with a
// writable disk, Health says why, and Memory counts them. Once the disk has
// room, the held lockout is written back within a second: the database
// then has it, for every relay, and Health holds again.
func TestLockoutHeldWhileDiskFull(t *testing.T) {
	ctx := t.Context()
	dir := smallDisk(t, 4<<20)
	db := openTest(t, filepath.Join(dir, "authrelay.db"))
	p := accounts.DefaultLockoutPolicy
	g := db.Lockouts(p)
	now := time.Now()
	free := fillDisk(t, db, dir)
	for i := range p.Threshold {
		if ok, err := g.Reserve(ctx, "bob", "192.0.2.7", now); err != nil || !ok {
			t.Fatalf("attempt %d: Reserve = %v, %v; want a reservation", i+1, ok, err)
		}
		err := g.Failed(ctx, "bob", "192.0.2.7", now, accounts.FailedPassword)
		g.Release("bob", "192.0.2.7")
		if err == nil {
			t.Fatal("Failed wrote to a full disk: the fault did not happen")
		}
		if !strings.Contains(err.Error(), "full") || !strings.Contains(err.Error(), "memory") {
			t.Errorf("Failed = %v, want the full disk and that it is held in memory", err)
		}
	}
	if locked, err := g.Locked(ctx, "bob", "192.0.2.7", now); err != nil || !locked {
		t.Errorf("Locked after %d failures on a full disk = %v, %v; want locked", p.Threshold, locked, err)
	}
	if ok, err := g.Reserve(ctx, "bob", "192.0.2.7", now); err != nil || ok {
		t.Errorf("Reserve after %d failures on a full disk = %v, %v; want refused", p.Threshold, ok, err)
	}
	// The pair only: bob from elsewhere is not locked.
	if locked, err := g.Locked(ctx, "bob", "198.51.100.1", now); err != nil || locked {
		t.Errorf("Locked from another address = %v, %v; want not locked", locked, err)
	}
	if m := g.Memory(); m.Unrecorded != uint64(p.Threshold) || m.Keys == 0 || m.Full {
		t.Errorf("Memory = %+v, want %d unrecorded and keys held", m, p.Threshold)
	}
	if err := g.Health(ctx); err == nil || !strings.Contains(err.Error(), "full") {
		t.Errorf("Health = %v, want the full disk", err)
	}

	free()
	if err := g.Failed(ctx, "carol", "203.0.113.9", now, accounts.FailedPassword); err != nil {
		t.Fatalf("Failed with room on the disk: %v", err)
	}
	// Written back within a second (Health tries too, as /readyz calls it).
	waitFor(t, "the held keys written back", func() bool { return g.Health(ctx) == nil && g.Memory().Keys == 0 })
	// A new guard on the same database (another relay) sees the lockout.
	if locked, err := db.Lockouts(p).Locked(ctx, "bob", "192.0.2.7", now); err != nil || !locked {
		t.Errorf("another relay's Locked = %v, %v; want the written-back lockout", locked, err)
	}
	active, err := db.ActiveLockouts(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	var pair bool
	for _, l := range active {
		pair = pair || l.Kind == LockoutPair && l.User == "bob" && l.Addr == "192.0.2.7"
	}
	if !pair {
		t.Errorf("active lockouts %+v, want bob@192.0.2.7", active)
	}
}

// TestLockoutMemoryLimitFailsClosed fills the memory that holds failures
// the full disk cannot record: past its limit, Reserve refuses every
// attempt with ErrLockoutFull rather than let unrecorded guesses through,
// and admits attempts again once the disk has room.
func TestLockoutMemoryLimitFailsClosed(t *testing.T) {
	ctx := t.Context()
	dir := smallDisk(t, 4<<20)
	db := openTest(t, filepath.Join(dir, "authrelay.db"))
	g := db.Lockouts(accounts.DefaultLockoutPolicy)
	g.maxMem = 6 // three keys per attempt: two attempts fill it
	now := time.Now()
	free := fillDisk(t, db, dir)
	for i := range 3 {
		addr := fmt.Sprintf("192.0.2.%d", i+1)
		if ok, err := g.Reserve(ctx, "bob", addr, now); err != nil || !ok {
			t.Fatalf("attempt %d: Reserve = %v, %v; want a reservation", i+1, ok, err)
		}
		err := g.Failed(ctx, "bob", addr, now, accounts.FailedPassword)
		g.Release("bob", addr)
		if err == nil {
			t.Fatal("Failed wrote to a full disk: the fault did not happen")
		}
	}
	if !g.Memory().Full {
		t.Fatalf("Memory = %+v, want full", g.Memory())
	}
	if ok, err := g.Reserve(ctx, "alice", "198.51.100.1", now); ok || !errors.Is(err, ErrLockoutFull) {
		t.Errorf("Reserve with the memory full = %v, %v; want refused with ErrLockoutFull", ok, err)
	}
	if err := g.Health(ctx); !errors.Is(err, ErrLockoutFull) {
		t.Errorf("Health = %v, want ErrLockoutFull", err)
	}
	free()
	g.lastWriteBack = time.Time{} // skip the pause between write-backs
	if ok, err := g.Reserve(ctx, "alice", "198.51.100.1", now); !ok || err != nil {
		t.Errorf("Reserve with room on the disk = %v, %v; want a reservation", ok, err)
	} else {
		g.Release("alice", "198.51.100.1")
	}
	if err := g.Health(ctx); err != nil {
		t.Errorf("Health with room on the disk = %v, want nil", err)
	}
}
