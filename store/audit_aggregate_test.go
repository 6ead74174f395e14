package store

import (
	"context"
	"fmt"
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
