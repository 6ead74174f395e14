package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/authrelay/authrelay/accounts"
)

// cheapDenial is a denial refused without a lookup, from host as name.
func cheapDenial(i int, reason, host, name string) accounts.LoginEvent {
	return accounts.LoginEvent{
		Time: auditBase.Add(time.Duration(i) * time.Millisecond), User: name, Host: host,
		ServerID: "NSERVER", ClientID: uint64(i + 1), ConnType: "STANDARD", Reason: reason, Malformed: true,
	}
}

// sumCounts returns the events the rows stand for.
func sumCounts(rows []AuditEntry) int64 {
	var n int64
	for _, r := range rows {
		n += r.Count
	}
	return n
}

func TestAuditAggregatesCheapDenials(t *testing.T) {
	t.Run("identical denials become two rows", func(t *testing.T) {
		db, _ := newTestDB(t)
		w := db.NewAuditWriter(AuditOptions{FlushEvery: 10 * time.Millisecond, AggregateEvery: time.Hour})
		for i := range 1000 {
			w.Record(cheapDenial(i, "no_credentials", "10.0.0.1", ""))
		}
		// A verified wrong password is not aggregated, however often it
		// repeats; allowed logins are (TestAuditAggregatesAllowedLogins).
		for i := range 3 {
			w.Record(accounts.LoginEvent{Time: auditBase.Add(time.Duration(2000+i) * time.Millisecond), User: "alice", Host: "10.0.0.1", Allowed: true, Account: "APP"})
			w.Record(accounts.LoginEvent{Time: auditBase.Add(time.Duration(3000+i) * time.Millisecond), User: "alice", Host: "10.0.0.1", Reason: "bad_credentials"})
		}
		if err := w.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		rows := auditAll(t, db)
		if got, want := len(rows), 2+2+3; got != want {
			t.Fatalf("%d rows, want %d: %+v", got, want, rows)
		}
		first, repeats := rows[0], rows[1]
		if first.Count != 1 || first.ClientID != 1 || first.Reason != "no_credentials" || first.Host != "10.0.0.1" {
			t.Errorf("first row %+v, want the first denial with count 1", first)
		}
		if repeats.Count != 999 || repeats.ClientID != 2 || !repeats.Time.Equal(auditBase.Add(time.Millisecond)) || repeats.Host != "10.0.0.1" {
			t.Errorf("repeats row %+v, want the second denial's fields with count 999", repeats)
		}
		for _, r := range rows[2:] {
			if r.Result == AuditDenied && r.Count != 1 {
				t.Errorf("row %+v aggregated, want count 1", r)
			}
		}
		if got := sumCounts(rows); got != 1006 || w.Dropped() != 0 {
			t.Errorf("rows stand for %d events, dropped %d; want 1006 and 0", got, w.Dropped())
		}
	})

	t.Run("names, addresses and reasons are kept apart", func(t *testing.T) {
		db, _ := newTestDB(t)
		w := db.NewAuditWriter(AuditOptions{AggregateEvery: time.Hour})
		keys := []struct{ reason, host, name string }{
			{"no_credentials", "10.0.0.1", ""}, {"no_credentials", "10.0.0.2", ""},
			{"bad_credentials", "10.0.0.1", "bad name"}, {"bad_credentials", "10.0.0.1", "other name"},
		}
		for i := range 40 {
			k := keys[i%len(keys)]
			w.Record(cheapDenial(i, k.reason, k.host, k.name))
		}
		if err := w.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		rows := auditAll(t, db)
		if len(rows) != 8 || sumCounts(rows) != 40 {
			t.Fatalf("%d rows for %d events, want 8 for 40: %+v", len(rows), sumCounts(rows), rows)
		}
	})

	t.Run("distinct names past the key limit collapse per reason", func(t *testing.T) {
		db, _ := newTestDB(t)
		w := db.NewAuditWriter(AuditOptions{AggregateEvery: time.Hour, AggregateKeys: 10})
		for i := range 5000 {
			w.Record(cheapDenial(i, "bad_credentials", fmt.Sprintf("10.0.%d.%d", i/256, i%256), fmt.Sprintf("name %d", i)))
		}
		if err := w.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		rows := auditAll(t, db)
		if got, want := len(rows), 10+1; got != want {
			t.Fatalf("%d rows, want %d (10 keys and one overflow row)", got, want)
		}
		last := rows[len(rows)-1]
		if last.Count != 4990 || last.User != "" || last.Host != "" || last.Reason != "bad_credentials" {
			t.Errorf("overflow row %+v, want count 4990 with user and client address empty", last)
		}
		if got := sumCounts(rows); got != 5000 {
			t.Errorf("rows stand for %d events, want 5000", got)
		}
	})

	t.Run("the repeats are written when the interval ends", func(t *testing.T) {
		db, _ := newTestDB(t)
		w := db.NewAuditWriter(AuditOptions{FlushEvery: 10 * time.Millisecond, AggregateEvery: 50 * time.Millisecond})
		t.Cleanup(func() {
			if err := w.Close(context.Background()); err != nil {
				t.Error(err)
			}
		})
		for i := range 5 {
			w.Record(cheapDenial(i, "no_credentials", "10.0.0.1", ""))
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			rows := auditAll(t, db)
			if sumCounts(rows) == 5 {
				if len(rows) != 2 {
					t.Errorf("%d rows, want 2", len(rows))
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("repeats not written while the writer runs: %+v", rows)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// allowedLogin is an allowed login of name from host at millisecond i.
func allowedLogin(i int, name, host string) accounts.LoginEvent {
	return accounts.LoginEvent{
		Time: auditBase.Add(time.Duration(i) * time.Millisecond), User: name, Account: "APP", Host: host,
		ServerID: "NSERVER", ClientID: uint64(i + 1), ConnType: "STANDARD", Allowed: true,
	}
}

// TestAuditAggregatesAllowedLogins: repeated identical allowed logins (one
// user, address, account and connection type) in an interval are two rows,
// the first login and its repeats with their count; other users and
// addresses are kept apart; past AllowedKeys every allowed login is a row
// of its own, user and address kept; denials are never folded into them.
func TestAuditAggregatesAllowedLogins(t *testing.T) {
	t.Run("repeats of one login become two rows", func(t *testing.T) {
		db, _ := newTestDB(t)
		w := db.NewAuditWriter(AuditOptions{AggregateEvery: time.Hour})
		for i := range 1000 {
			w.Record(allowedLogin(i, "svc", "10.0.0.1"))
		}
		for i := range 3 {
			w.Record(allowedLogin(2000+i, "svc", "10.0.0.2"))
			w.Record(allowedLogin(3000+i, "other", "10.0.0.1"))
			denied := allowedLogin(4000+i, "svc", "10.0.0.1")
			denied.Allowed, denied.Account, denied.Reason = false, "", "bad_credentials"
			w.Record(denied)
		}
		if err := w.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		rows := auditAll(t, db)
		if got, want := len(rows), 2+2+2+3; got != want {
			t.Fatalf("%d rows, want %d: %+v", got, want, rows)
		}
		first, repeats := rows[0], rows[1]
		if first.Count != 1 || first.ClientID != 1 || first.User != "svc" || first.Result != AuditAllowed {
			t.Errorf("first row %+v, want svc's first login with count 1", first)
		}
		if repeats.Count != 999 || repeats.ClientID != 2 || repeats.User != "svc" || repeats.Host != "10.0.0.1" || repeats.Account != "APP" {
			t.Errorf("repeats row %+v, want the second login's fields with count 999", repeats)
		}
		for _, r := range rows {
			if r.Result == AuditDenied && r.Count != 1 {
				t.Errorf("denial %+v aggregated, want count 1", r)
			}
		}
		if got := sumCounts(rows); got != 1009 || w.Dropped() != 0 {
			t.Errorf("rows stand for %d events, dropped %d; want 1009 and 0", got, w.Dropped())
		}
	})

	t.Run("past the key limit each login is its own row", func(t *testing.T) {
		db, _ := newTestDB(t)
		w := db.NewAuditWriter(AuditOptions{AggregateEvery: time.Hour, AllowedKeys: 10})
		for i := range 100 {
			w.Record(allowedLogin(i, fmt.Sprintf("user%d", i%20), "10.0.0.1"))
		}
		if err := w.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		rows := auditAll(t, db)
		// 10 users aggregated (first + repeats), 10 as rows of their own.
		if got, want := len(rows), 10*2+10*5; got != want {
			t.Fatalf("%d rows, want %d", got, want)
		}
		for _, r := range rows {
			if r.User == "" || r.Host == "" {
				t.Errorf("row %+v lost its user or address", r)
			}
		}
		if got := sumCounts(rows); got != 100 {
			t.Errorf("rows stand for %d events, want 100", got)
		}
	})

	t.Run("AllowedKeys below zero turns it off", func(t *testing.T) {
		db, _ := newTestDB(t)
		w := db.NewAuditWriter(AuditOptions{AggregateEvery: time.Hour, AllowedKeys: -1})
		for i := range 50 {
			w.Record(allowedLogin(i, "svc", "10.0.0.1"))
		}
		if err := w.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		if rows := auditAll(t, db); len(rows) != 50 {
			t.Errorf("%d rows, want 50", len(rows))
		}
	})
}

// TestAuditAllowedSteadyKey: a client that logs in all the time has its
// first login as a row of its own once, then one row per interval with the
// count; after an interval without logins its next login is a first again.
func TestAuditAllowedSteadyKey(t *testing.T) {
	a := newAggregator(DefaultAuditAggregateKeys, DefaultAuditAllowedKeys)
	interval := func(logins int) (own, counted int) {
		for i := range logins {
			if !a.take(allowedLogin(i, "svc", "10.0.0.1")) {
				own++
			}
		}
		return own, len(a.flush())
	}
	for i, c := range []struct{ logins, own, counted int }{
		{100, 1, 1}, // the first login, then its repeats
		{100, 0, 1}, // still active: one row
		{1, 0, 1},
		{0, 0, 0},   // quiet
		{100, 1, 1}, // a first login again
	} {
		if own, counted := interval(c.logins); own != c.own || counted != c.counted {
			t.Errorf("interval %d: %d rows at once and %d at its end, want %d and %d", i, own, counted, c.own, c.counted)
		}
	}
}

// BenchmarkAuditDay measures what a day of 300 logins/s, all allowed, from
// pairs distinct (user, address) pairs each logging in every minute, leaves
// in the audit trail at steady state (the third simulated minute), with the
// bytes a row takes in the database, indexes included:
//
//	go test -run '^$' -bench BenchmarkAuditDay -benchtime 1x ./store/
func BenchmarkAuditDay(b *testing.B) {
	const perMinute = 300 * 60
	event := func(i, pairs int) accounts.LoginEvent {
		k := i % pairs
		return accounts.LoginEvent{
			Time: auditBase.Add(time.Duration(i) * time.Second / 300), User: fmt.Sprintf("service-%04d", k),
			Account: "APP", Host: fmt.Sprintf("10.1.%d.%d", k/256%256, k%256),
			ServerID: "NDZ6DNHMLQ2V3CC4Q5ZM6X4KKQ2XZTS7G4JQHHZLX3DNFRZO4LQG5X5A",
			ClientID: uint64(i), ConnType: "STANDARD", Allowed: true, Latency: 300 * time.Microsecond,
		}
	}
	// The bytes of a row: 20,000 rows written, the growth of the file.
	db, err := Open(b.Context(), filepath.Join(b.TempDir(), "authrelay.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	size := func() int64 {
		var pages, free, pageSize int64
		for q, dst := range map[string]*int64{"page_count": &pages, "freelist_count": &free, "page_size": &pageSize} {
			if err := db.sql.QueryRowContext(b.Context(), "PRAGMA "+q).Scan(dst); err != nil {
				b.Fatal(err)
			}
		}
		return (pages - free) * pageSize
	}
	before := size()
	const sample = 20000
	rows := make([]loginRow, 0, DefaultAuditBatchSize)
	for i := range sample {
		rows = append(rows, loginRow{LoginEvent: event(i, sample), count: int64(1 + i%3)})
		if len(rows) == cap(rows) || i == sample-1 {
			if err := db.insertLoginRows(b.Context(), rows); err != nil {
				b.Fatal(err)
			}
			rows = rows[:0]
		}
	}
	perRow := float64(size()-before) / sample

	for _, pairs := range []int{100, 1000, 4096, 18000} {
		b.Run(fmt.Sprintf("pairs=%d", pairs), func(b *testing.B) {
			for range b.N {
				a := newAggregator(DefaultAuditAggregateKeys, DefaultAuditAllowedKeys)
				var minute int
				for range 3 {
					minute = 0
					for i := range perMinute {
						if !a.take(event(i, pairs)) {
							minute++
						}
					}
					minute += len(a.flush())
				}
				day := float64(minute) * 1440
				b.ReportMetric(perRow, "bytes/row")
				b.ReportMetric(day, "rows/day")
				b.ReportMetric(day*perRow/1e9, "GB/day")
				b.ReportMetric(day*perRow*30/1e9, "GB/30d")
			}
		})
	}
}
