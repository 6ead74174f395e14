package store

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authrelay/authrelay/accounts"
)

// The writer satisfies the relay's Auditor interface (relay.Auditor; store
// does not import relay).
var _ interface{ Record(accounts.LoginEvent) } = (*AuditWriter)(nil)

// auditBase is the time of the first event in these tests.
var auditBase = time.Date(2026, 3, 4, 5, 6, 7, 800000009, time.UTC)

// loginEvent returns a login event whose fields all derive from i.
func loginEvent(i int) accounts.LoginEvent {
	e := accounts.LoginEvent{
		Time:     auditBase.Add(time.Duration(i) * time.Millisecond),
		User:     fmt.Sprintf("user%d", i%7),
		Account:  "APP",
		Host:     fmt.Sprintf("10.0.%d.%d", i/256%256, i%256),
		ServerID: "NSERVER" + fmt.Sprint(i%3),
		ClientID: uint64(i),
		ConnType: "STANDARD",
		Allowed:  i%2 == 0,
		Latency:  time.Duration(i) * time.Microsecond,
	}
	if !e.Allowed {
		e.Account, e.Reason = "", "bad_credentials"
	}
	return e
}

// loginEntry is the entry that e should be read back as, without its ID.
func loginEntry(e accounts.LoginEvent) AuditEntry {
	result := AuditDenied
	if e.Allowed {
		result = AuditAllowed
	}
	return AuditEntry{
		Time: e.Time.UTC(), Kind: AuditLogin, User: e.User, Account: e.Account, Host: e.Host,
		ServerID: e.ServerID, ClientID: e.ClientID, ConnType: e.ConnType, Result: result,
		Reason: e.Reason, Latency: e.Latency, Count: 1,
	}
}

// sameEntry compares entries, times with Equal, ignoring the ID.
func sameEntry(got, want AuditEntry) bool {
	got.ID, want.ID = 0, 0
	if !got.Time.Equal(want.Time) {
		return false
	}
	got.Time, want.Time = time.Time{}, time.Time{}
	return got == want
}

func auditAll(t *testing.T, db *DB) []AuditEntry {
	t.Helper()
	entries, err := db.Audit(t.Context(), AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

// closeWriter closes w within a generous deadline.
func closeWriter(t *testing.T, w *AuditWriter) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := w.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// holdWriteLock opens a second handle on path, as another process would, and
// holds the database's write lock (BEGIN IMMEDIATE, not committed) until the
// returned function is called.
func holdWriteLock(t *testing.T, path string) (release func()) {
	t.Helper()
	other := openTest(t, path)
	tx, err := other.sql.BeginTx(t.Context(), nil) // BEGIN IMMEDIATE: _txlock=immediate
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			if err := tx.Rollback(); err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(release)
	return release
}

func TestAuditWriterConcurrentRecord(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts AuditOptions
	}{
		{"defaults", AuditOptions{}},
		{"small batches", AuditOptions{BatchSize: 7, FlushEvery: time.Millisecond}},
		// A flush interval longer than the test: Close writes everything.
		{"only Close flushes", AuditOptions{BatchSize: 100000, FlushEvery: time.Hour}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, _ := newTestDB(t)
			const goroutines, each = 16, 500
			tc.opts.Buffer = goroutines * each // nothing may be dropped here
			w := db.NewAuditWriter(tc.opts)
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Go(func() {
					for i := range each {
						w.Record(loginEvent(g*each + i))
					}
				})
			}
			wg.Wait()
			closeWriter(t, w)
			if got := w.Dropped(); got != 0 {
				t.Errorf("Dropped = %d, want 0", got)
			}

			entries := auditAll(t, db)
			if got, want := len(entries), goroutines*each; got != want {
				t.Fatalf("%d rows, want %d", got, want)
			}
			seen := make([]bool, goroutines*each)
			for _, got := range entries {
				i := int(got.ClientID)
				if i >= len(seen) || seen[i] {
					t.Fatalf("row %+v: unexpected or repeated client id", got)
				}
				seen[i] = true
				if want := loginEntry(loginEvent(i)); !sameEntry(got, want) {
					t.Errorf("row %d:\n got %+v\nwant %+v", got.ID, got, want)
				}
			}
			// Each goroutine's events are written in the order it recorded them.
			last := map[int]int{}
			byID := slices.SortedFunc(slices.Values(entries), func(a, b AuditEntry) int { return cmp.Compare(a.ID, b.ID) })
			for _, e := range byID {
				g, i := int(e.ClientID)/each, int(e.ClientID)%each
				if prev, ok := last[g]; ok && i < prev {
					t.Errorf("goroutine %d: event %d written after event %d", g, i, prev)
				}
				last[g] = i
			}
		})
	}
}

func TestAuditWriterFields(t *testing.T) {
	db, _ := newTestDB(t)
	now := time.Date(2027, 5, 6, 7, 8, 9, 10, time.FixedZone("X", 3600))
	db.Now = func() time.Time { return now }
	w := db.NewAuditWriter(AuditOptions{})
	events := []accounts.LoginEvent{
		{User: "no time", ClientID: math.MaxUint64, Allowed: true}, // largest client id, time from the clock
		{Time: now.Add(-time.Hour), User: "zone", Host: "::1", ConnType: "WEBSOCKET", Reason: "account_reserved", Latency: time.Hour},
	}
	for _, e := range events {
		w.Record(e)
	}
	closeWriter(t, w)

	got := auditAll(t, db)
	// Oldest first, by time, whatever order they were recorded in.
	want := []AuditEntry{
		{Time: now.Add(-time.Hour).UTC(), Kind: AuditLogin, User: "zone", Host: "::1", ConnType: "WEBSOCKET",
			Result: AuditDenied, Reason: "account_reserved", Latency: time.Hour, Count: 1},
		{Time: now.UTC(), Kind: AuditLogin, User: "no time", ClientID: math.MaxUint64, Result: AuditAllowed, Count: 1},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if !sameEntry(got[i], want[i]) {
			t.Errorf("entry %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
		if got[i].Time.Location() != time.UTC {
			t.Errorf("entry %d: time %v is not UTC", i, got[i].Time)
		}
	}
}

// TestAuditRecordNeverBlocks holds the write lock from another handle, as an
// admin command or a slow disk would, and checks that Record keeps returning
// at once, drops and counts what the buffer cannot hold, and that what it
// buffered lands once the lock is released.
func TestAuditRecordNeverBlocks(t *testing.T) {
	db, path := newTestDB(t)
	const buffer, batch, n = 100, 10, 10000
	var reported atomic.Int64
	w := db.NewAuditWriter(AuditOptions{
		Buffer: buffer, BatchSize: batch, FlushEvery: time.Millisecond,
		OnDrop: func(k int) { reported.Add(int64(k)) },
	})
	release := holdWriteLock(t, path)

	// Let the writer take a batch and block on the lock.
	for i := range batch {
		w.Record(loginEvent(i))
	}
	time.Sleep(50 * time.Millisecond)

	done := make(chan time.Duration)
	go func() {
		start := time.Now()
		for i := batch; i < n; i++ {
			w.Record(loginEvent(i))
		}
		done <- time.Since(start)
	}()
	// The lock is held until after this select: the busy timeout is 5s,
	// so a Record that waited for the database could not return in time.
	select {
	case d := <-done:
		t.Logf("%d Records in %v while the write lock was held", n-batch, d)
	case <-time.After(3 * time.Second):
		t.Fatal("Record blocked while another handle held the write lock")
	}
	if got := len(auditAll(t, db)); got != 0 {
		t.Fatalf("%d rows written while the lock was held", got)
	}
	dropped := w.Dropped()
	// At most one batch in the writer's hands plus a full buffer are kept.
	if least := uint64(n - buffer - batch); dropped < least {
		t.Errorf("Dropped = %d, want at least %d", dropped, least)
	}

	release()
	closeWriter(t, w)
	if got := w.Dropped(); got != dropped {
		t.Errorf("Dropped after the lock was released = %d, want still %d", got, dropped)
	}
	if got, want := reported.Load(), int64(dropped); got != want {
		t.Errorf("OnDrop reported %d, want %d", got, want)
	}
	entries := auditAll(t, db)
	if got, want := uint64(len(entries)), n-dropped; got != want {
		t.Errorf("%d rows after the lock was released, want %d (recorded %d, dropped %d)", got, want, n, dropped)
	}
	// The first batch, taken before the buffer filled, is there.
	for i := range batch {
		if i >= len(entries) || entries[i].ClientID != uint64(i) {
			t.Fatalf("first rows %+v: want client ids 0…%d first", entries[:min(len(entries), batch)], batch-1)
		}
	}

	t.Run("Record after Close drops", func(t *testing.T) {
		before := w.Dropped()
		w.Record(loginEvent(0))
		if got, want := w.Dropped(), before+1; got != want {
			t.Errorf("Dropped = %d, want %d", got, want)
		}
		if got, want := uint64(len(auditAll(t, db))), n-dropped; got != want {
			t.Errorf("%d rows, want still %d", got, want)
		}
	})
}

// TestAuditRecordDuringClose records from many goroutines while Close runs:
// every event is written or counted as dropped, never lost.
func TestAuditRecordDuringClose(t *testing.T) {
	db, _ := newTestDB(t)
	w := db.NewAuditWriter(AuditOptions{Buffer: 64, BatchSize: 16, FlushEvery: time.Millisecond})
	var recorded atomic.Uint64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				w.Record(loginEvent(g*2000 + i))
				recorded.Add(1)
			}
		})
	}
	time.Sleep(5 * time.Millisecond)
	closeWriter(t, w)
	wg.Wait()
	rows := uint64(len(auditAll(t, db)))
	if got, want := rows+w.Dropped(), recorded.Load(); got != want {
		t.Errorf("%d rows + %d dropped = %d, want %d recorded", rows, w.Dropped(), got, want)
	}
	t.Logf("%d recorded: %d written, %d dropped", recorded.Load(), rows, w.Dropped())
}

// logCapture is a slog handler that passes records to a channel.
type logCapture chan slog.Record

func (c logCapture) Enabled(context.Context, slog.Level) bool      { return true }
func (c logCapture) Handle(_ context.Context, r slog.Record) error { c <- r; return nil }
func (c logCapture) WithAttrs([]slog.Attr) slog.Handler            { return c }
func (c logCapture) WithGroup(string) slog.Handler                 { return c }

func TestAuditWriteFailure(t *testing.T) {
	t.Run("retried until it succeeds", func(t *testing.T) {
		db, path := newTestDB(t)
		other := openTest(t, path)
		rawExec(t, other, `ALTER TABLE audit RENAME TO audit_away`)
		logs := make(logCapture, 100)
		w := db.NewAuditWriter(AuditOptions{
			FlushEvery: time.Millisecond, Logger: slog.New(logs),
			retry: slices.Repeat([]time.Duration{50 * time.Millisecond}, 100),
		})
		for i := range 5 {
			w.Record(loginEvent(i))
		}
		// The first attempts fail: the table is gone.
		for r := range logs {
			if r.Level == slog.LevelWarn {
				break
			}
			t.Fatalf("unexpected log %q", r.Message)
		}
		rawExec(t, other, `ALTER TABLE audit_away RENAME TO audit`)
		closeWriter(t, w)
		if got := w.Dropped(); got != 0 {
			t.Errorf("Dropped = %d, want 0", got)
		}
		if got := len(auditAll(t, db)); got != 5 {
			t.Errorf("%d rows, want 5", got)
		}
	})

	t.Run("dropped and counted after the retries", func(t *testing.T) {
		db, path := newTestDB(t)
		rawExec(t, openTest(t, path), `DROP TABLE audit`)
		var reported atomic.Int64
		logs := make(logCapture, 100)
		w := db.NewAuditWriter(AuditOptions{
			FlushEvery: time.Hour, Logger: slog.New(logs),
			OnDrop: func(n int) { reported.Add(int64(n)) },
			retry:  []time.Duration{time.Millisecond, time.Millisecond},
		})
		for i := range 5 {
			w.Record(loginEvent(i))
		}
		err := w.Close(t.Context())
		if err == nil || !strings.Contains(err.Error(), "5 events could not be written") {
			t.Errorf("Close = %v, want an error saying 5 events could not be written", err)
		}
		if got := w.Dropped(); got != 5 {
			t.Errorf("Dropped = %d, want 5", got)
		}
		if got := reported.Load(); got != 5 {
			t.Errorf("OnDrop reported %d, want 5", got)
		}
		close(logs)
		var levels []slog.Level
		for r := range logs {
			levels = append(levels, r.Level)
		}
		// The retries are not logged again within DefaultAuditLogEvery.
		if want := []slog.Level{slog.LevelWarn, slog.LevelError}; !slices.Equal(levels, want) {
			t.Errorf("log levels %v, want %v (the failure, then the drop)", levels, want)
		}
	})

	t.Run("Close deadline", func(t *testing.T) {
		db, path := newTestDB(t)
		release := holdWriteLock(t, path)
		w := db.NewAuditWriter(AuditOptions{FlushEvery: time.Hour})
		for i := range 5 {
			w.Record(loginEvent(i))
		}
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		if err := w.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Close = %v, want DeadlineExceeded", err)
		}
		release()
		<-w.done
		rows := uint64(len(auditAll(t, db)))
		if got := rows + w.Dropped(); got != 5 {
			t.Errorf("%d rows + %d dropped, want 5 in all", rows, w.Dropped())
		}
		// A second Close waits for the writer's end and reports the loss.
		if err := w.Close(t.Context()); err == nil || !strings.Contains(err.Error(), "5 events could not be written") {
			t.Errorf("second Close = %v, want an error saying 5 events could not be written", err)
		}
	})
}

func rawExec(t *testing.T, db *DB, query string, args ...any) {
	t.Helper()
	if _, err := db.sql.ExecContext(t.Context(), query, args...); err != nil {
		t.Fatal(err)
	}
}

func TestAuditFilter(t *testing.T) {
	ctx := t.Context()
	db, _ := newTestDB(t)
	var c clock
	db.Now = c.Now
	at := func(m int) time.Time { return auditBase.Add(time.Duration(m) * time.Minute) }
	login := func(m int, user string, allowed bool) {
		t.Helper()
		if err := db.insertLogins(ctx, []accounts.LoginEvent{{Time: at(m), User: user, Allowed: allowed}}); err != nil {
			t.Fatal(err)
		}
	}
	admin := func(m int, action, detail string) {
		t.Helper()
		c.Set(at(m))
		if err := db.AuditAdmin(ctx, "root", action, detail); err != nil {
			t.Fatal(err)
		}
	}
	// Entry k (1-based) is at minute k-1, written in that order.
	login(0, "alice", true)
	login(1, "bob", false)
	login(2, "alice", false)
	admin(3, "user add", `{"user":"carol","fields":["account","pub"]}`)
	login(4, "carol", true)
	login(5, "alice", true)
	admin(6, "account add", "APP2")

	all := auditAll(t, db)
	if len(all) != 7 {
		t.Fatalf("%d entries, want 7", len(all))
	}
	id := func(k int) int64 { return all[k-1].ID }
	for k := 2; k <= 7; k++ {
		if id(k) <= id(k-1) {
			t.Fatalf("IDs %d, %d are not increasing", id(k-1), id(k))
		}
	}

	for _, tc := range []struct {
		name string
		f    AuditFilter
		want []int // entries, 1-based
	}{
		{"all", AuditFilter{}, []int{1, 2, 3, 4, 5, 6, 7}},
		{"user", AuditFilter{User: "alice"}, []int{1, 3, 6}},
		{"user named by an admin change", AuditFilter{User: "carol"}, []int{4, 5}},
		{"unknown user", AuditFilter{User: "nobody"}, []int{}},
		{"since", AuditFilter{Since: at(2)}, []int{3, 4, 5, 6, 7}},
		{"since between entries", AuditFilter{Since: at(2).Add(time.Nanosecond)}, []int{4, 5, 6, 7}},
		{"denied", AuditFilter{Result: AuditDenied}, []int{2, 3}},
		{"allowed", AuditFilter{Result: AuditAllowed}, []int{1, 5, 6}},
		{"admin", AuditFilter{Kind: AuditAdmin}, []int{4, 7}},
		{"login", AuditFilter{Kind: AuditLogin}, []int{1, 2, 3, 5, 6}},
		{"after id", AuditFilter{AfterID: id(3)}, []int{4, 5, 6, 7}},
		{"after the last id", AuditFilter{AfterID: id(7)}, []int{}},
		{"limit keeps the newest", AuditFilter{Limit: 2}, []int{6, 7}},
		{"limit after id keeps the first", AuditFilter{AfterID: id(2), Limit: 2}, []int{3, 4}},
		{"limit above the count", AuditFilter{Limit: 100}, []int{1, 2, 3, 4, 5, 6, 7}},
		{"combined", AuditFilter{User: "alice", Result: AuditAllowed, Since: at(1)}, []int{6}},
		{"user and kind", AuditFilter{User: "carol", Kind: AuditLogin, Limit: 5}, []int{5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := db.Audit(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if got == nil {
				t.Error("Audit returned nil, want an empty slice")
			}
			want := make([]AuditEntry, len(tc.want))
			for i, k := range tc.want {
				want[i] = all[k-1]
			}
			if !slices.Equal(got, want) {
				t.Errorf("got IDs %v, want %v", entryIDs(got), entryIDs(want))
			}
		})
	}

	t.Run("entries", func(t *testing.T) {
		want := []AuditEntry{
			{Time: at(0), Kind: AuditLogin, User: "alice", Result: AuditAllowed, Count: 1},
			{Time: at(3), Kind: AuditAdmin, User: "carol", Actor: "root", Action: "user add", Detail: `{"user":"carol","fields":["account","pub"]}`, Count: 1},
			{Time: at(6), Kind: AuditAdmin, Actor: "root", Action: "account add", Detail: "APP2", Count: 1},
		}
		for i, k := range []int{1, 4, 7} {
			if !sameEntry(all[k-1], want[i]) {
				t.Errorf("entry %d:\n got %+v\nwant %+v", k, all[k-1], want[i])
			}
		}
	})

	for _, tc := range []struct {
		name string
		f    AuditFilter
	}{
		{"bad result", AuditFilter{Result: "ok"}},
		{"bad kind", AuditFilter{Kind: "logins"}},
		{"negative limit", AuditFilter{Limit: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := db.Audit(ctx, tc.f); err == nil {
				t.Errorf("Audit(%+v) = %d entries, want an error", tc.f, len(got))
			}
		})
	}
}

// TestAuditOrder writes entries out of time order, as a batch of logins lands
// after admin changes made while it waited: Audit returns them by time, and a
// follower paging with AfterID and Limit sees every entry once.
func TestAuditOrder(t *testing.T) {
	ctx := t.Context()
	db, _ := newTestDB(t)
	var c clock
	db.Now = c.Now
	at := func(m int) time.Time { return auditBase.Add(time.Duration(m) * time.Minute) }
	// Entries 1 to 5 by ID, at minutes 0, 1, 3, -1 and 2.
	for _, m := range []int{0, 1, 3} {
		c.Set(at(m))
		if err := db.AuditAdmin(ctx, "root", "user set", fmt.Sprintf(`{"user":"u%d"}`, m)); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.insertLogins(ctx, []accounts.LoginEvent{{Time: at(-1), User: "late"}, {Time: at(2), User: "late"}}); err != nil {
		t.Fatal(err)
	}
	byID, err := db.Audit(ctx, AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(byID) != 5 {
		t.Fatalf("%d entries, want 5", len(byID))
	}
	id := map[int]int64{} // minute → ID
	for _, e := range byID {
		id[int(e.Time.Sub(auditBase)/time.Minute)] = e.ID
	}
	if !(id[0] < id[1] && id[1] < id[3] && id[3] < id[-1] && id[-1] < id[2]) {
		t.Fatalf("IDs by minute %v: want the logins written last", id)
	}

	for _, tc := range []struct {
		name string
		f    AuditFilter
		want []int // minutes
	}{
		{"all by time", AuditFilter{}, []int{-1, 0, 1, 2, 3}},
		{"newest by time", AuditFilter{Limit: 2}, []int{2, 3}},
		{"after an ID, by time", AuditFilter{AfterID: id[1]}, []int{-1, 2, 3}},
		{"lowest IDs after an ID, by time", AuditFilter{AfterID: id[1], Limit: 2}, []int{-1, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := db.Audit(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			var minutes []int
			for _, e := range got {
				minutes = append(minutes, int(e.Time.Sub(auditBase)/time.Minute))
			}
			if !slices.Equal(minutes, tc.want) {
				t.Errorf("got the entries at minutes %v, want %v", minutes, tc.want)
			}
		})
	}

	t.Run("paging", func(t *testing.T) {
		seen := map[int64]int{}
		f := AuditFilter{AfterID: id[0], Limit: 2}
		for range 10 {
			page, err := db.Audit(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			for _, e := range page {
				seen[e.ID]++
				f.AfterID = max(f.AfterID, e.ID)
			}
		}
		for _, m := range []int{-1, 1, 2, 3} {
			if seen[id[m]] != 1 {
				t.Errorf("entry at minute %d seen %d times, want once (seen %v)", m, seen[id[m]], seen)
			}
		}
	})
}

func entryIDs(entries []AuditEntry) []int64 {
	out := []int64{}
	for _, e := range entries {
		out = append(out, e.ID)
	}
	return out
}

func TestPruneAudit(t *testing.T) {
	ctx := t.Context()
	db, _ := newTestDB(t)
	cut := auditBase.Add(24 * time.Hour)
	// More old rows than one chunk, then rows at and after the cut.
	const old = 2*pruneChunk + 500
	events := make([]accounts.LoginEvent, old)
	for i := range events {
		events[i] = accounts.LoginEvent{Time: auditBase.Add(time.Duration(i) * time.Second), User: "old"}
	}
	events = append(events,
		accounts.LoginEvent{Time: cut.Add(-time.Nanosecond), User: "old"},
		accounts.LoginEvent{Time: cut, User: "kept"},
		accounts.LoginEvent{Time: cut.Add(time.Hour), User: "kept"},
	)
	if err := db.insertLogins(ctx, events); err != nil {
		t.Fatal(err)
	}
	if err := db.AuditAdmin(ctx, "root", "user add", `{"user":"kept"}`); err != nil { // now: after the cut
		t.Fatal(err)
	}

	t.Run("zero time deletes nothing", func(t *testing.T) {
		n, err := db.PruneAudit(ctx, time.Time{})
		if err != nil || n != 0 {
			t.Errorf("PruneAudit(zero) = %d, %v, want 0, nil", n, err)
		}
	})
	t.Run("older rows only", func(t *testing.T) {
		n, err := db.PruneAudit(ctx, cut)
		if err != nil {
			t.Fatal(err)
		}
		if n != old+1 {
			t.Errorf("PruneAudit deleted %d, want %d", n, old+1)
		}
		left := auditAll(t, db)
		if len(left) != 3 {
			t.Fatalf("%d rows left, want 3", len(left))
		}
		for _, e := range left {
			if e.User != "kept" || e.Time.Before(cut) {
				t.Errorf("kept %+v, want only rows at or after %v", e, cut)
			}
		}
		n, err = db.PruneAudit(ctx, cut)
		if err != nil || n != 0 {
			t.Errorf("PruneAudit again = %d, %v, want 0, nil", n, err)
		}
	})
	t.Run("IDs are not reused", func(t *testing.T) {
		last := auditAll(t, db)
		maxID := last[len(last)-1].ID
		if _, err := db.PruneAudit(ctx, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if got := len(auditAll(t, db)); got != 0 {
			t.Fatalf("%d rows left, want none", got)
		}
		if err := db.AuditAdmin(ctx, "root", "user remove", `{"user":"kept"}`); err != nil {
			t.Fatal(err)
		}
		got, err := db.Audit(ctx, AuditFilter{AfterID: maxID})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 {
			t.Errorf("a follower after ID %d sees %d entries, want the new one", maxID, len(got))
		}
	})
}

func TestAuditAdmin(t *testing.T) {
	ctx := t.Context()
	db, path := newTestDB(t)
	var c clock
	c.Set(t0)
	db.Now = c.Now
	const password = "Tr0ub4dor&3-audit-secret"

	if err := db.AddAccount(ctx, "APP"); err != nil {
		t.Fatal(err)
	}
	if err := db.AuditAdmin(ctx, "alice-admin", "account add", `{"account":"APP"}`); err != nil {
		t.Fatal(err)
	}
	if err := db.AddUser(ctx, accounts.User{Name: "alice", Account: "APP"}, password); err != nil {
		t.Fatal(err)
	}
	if err := db.AuditAdmin(ctx, "alice-admin", "user add", `{"user":"alice","fields":["account","password"]}`); err != nil {
		t.Fatal(err)
	}
	c.Set(t1)
	if err := db.SetPassword(ctx, "alice", password+"2"); err != nil {
		t.Fatal(err)
	}
	if err := db.AuditAdmin(ctx, "bob-admin", "user passwd", `{"user":"alice"}`); err != nil {
		t.Fatal(err)
	}
	w := db.NewAuditWriter(AuditOptions{})
	for _, pw := range []string{password + "2", password} {
		_, err := db.Authenticate(ctx, "alice", pw)
		w.Record(accounts.LoginEvent{Time: c.Now(), User: "alice", Account: "APP", Allowed: err == nil, Reason: fmt.Sprint(err)})
	}
	closeWriter(t, w)

	t.Run("rows", func(t *testing.T) {
		got, err := db.Audit(ctx, AuditFilter{Kind: AuditAdmin})
		if err != nil {
			t.Fatal(err)
		}
		want := []AuditEntry{
			{Time: t0, Kind: AuditAdmin, Actor: "alice-admin", Action: "account add", Detail: `{"account":"APP"}`, Count: 1},
			{Time: t0, Kind: AuditAdmin, User: "alice", Actor: "alice-admin", Action: "user add", Detail: `{"user":"alice","fields":["account","password"]}`, Count: 1},
			{Time: t1, Kind: AuditAdmin, User: "alice", Actor: "bob-admin", Action: "user passwd", Detail: `{"user":"alice"}`, Count: 1},
		}
		if len(got) != len(want) {
			t.Fatalf("got %+v, want %+v", got, want)
		}
		for i := range want {
			if !sameEntry(got[i], want[i]) {
				t.Errorf("entry %d:\n got %+v\nwant %+v", i, got[i], want[i])
			}
		}
	})

	t.Run("refused", func(t *testing.T) {
		hashes, err := db.PasswordHashes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct{ name, action, detail string }{
			{"no action", "", `{"user":"alice"}`},
			{"argon2id hash", "user set", fmt.Sprintf(`{"user":"alice","hash":%q}`, hashes["alice"])},
			{"bcrypt hash", "user import", "alice $2b$11$abcdefghijklmnopqrstuu"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before := len(auditAll(t, db))
				if err := db.AuditAdmin(ctx, "root", tc.action, tc.detail); err == nil {
					t.Error("AuditAdmin succeeded, want an error")
				}
				if got := len(auditAll(t, db)); got != before {
					t.Errorf("%d rows, want still %d", got, before)
				}
			})
		}
	})

	t.Run("no password or hash in the trail", func(t *testing.T) {
		hashes, err := db.PasswordHashes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		secrets := []string{password, password + "2", hashes["alice"]}
		rows, err := db.sql.QueryContext(ctx, `SELECT * FROM audit`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		cols, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for i, v := range vals {
				for _, s := range secrets {
					if strings.Contains(fmt.Sprint(v), s) {
						t.Errorf("row %v column %s holds a password or hash", vals[0], cols[i])
					}
				}
			}
			n++
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if n != 5 {
			t.Errorf("checked %d rows, want 5 (3 admin, 2 login)", n)
		}
		// The plain password never reaches the database files at all.
		for _, suffix := range []string{"", "-wal"} {
			b, err := os.ReadFile(path + suffix)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, []byte(password)) {
				t.Errorf("%s holds the password", filepath.Base(path+suffix))
			}
		}
	})
}
