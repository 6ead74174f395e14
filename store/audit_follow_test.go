package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/authrelay/authrelay/accounts"
)

// follower runs FollowAudit in the background and hands over each batch.
type follower struct {
	batches chan []AuditEntry
	done    chan error
	cancel  context.CancelFunc
}

func follow(t *testing.T, db *DB, f AuditFilter, fn func([]AuditEntry) error) *follower {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	fl := &follower{batches: make(chan []AuditEntry, 100), done: make(chan error, 1), cancel: cancel}
	go func() {
		fl.done <- db.FollowAudit(ctx, f, 5*time.Millisecond, func(rows []AuditEntry) error {
			fl.batches <- rows
			if fn != nil {
				return fn(rows)
			}
			return nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-fl.done
	})
	return fl
}

// next returns the next batch, failing after a while without one.
func (fl *follower) next(t *testing.T) []AuditEntry {
	t.Helper()
	select {
	case rows := <-fl.batches:
		return rows
	case err := <-fl.done:
		fl.done <- err // for the cleanup, which waits for it
		t.Fatalf("FollowAudit returned %v before the next batch", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no batch within 10s")
	}
	return nil
}

// collect gathers the actions of the batches until n have come.
func (fl *follower) collect(t *testing.T, n int) []string {
	t.Helper()
	var got []string
	for len(got) < n {
		for _, r := range fl.next(t) {
			got = append(got, r.Action+r.User)
		}
	}
	return got
}

func auditAdmin(t *testing.T, db *DB, action string) {
	t.Helper()
	if err := db.AuditAdmin(t.Context(), "ops", action, ""); err != nil {
		t.Fatal(err)
	}
}

// TestFollowAuditFromNow: started from LastAuditID, the first call has
// nothing; every entry written afterwards comes once, in order, and one
// written later with an earlier time (a login flushed late) is not
// skipped. Cancelling ends it without an error.
func TestFollowAuditFromNow(t *testing.T) {
	db, _ := newTestDB(t)
	auditAdmin(t, db, "old")
	last, err := db.LastAuditID(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	fl := follow(t, db, AuditFilter{AfterID: last}, nil)
	if rows := fl.next(t); len(rows) != 0 {
		t.Errorf("first call from now: %d entries, want none", len(rows))
	}
	auditAdmin(t, db, "a")
	auditAdmin(t, db, "b")
	got := fl.collect(t, 2)
	// A login stamped an hour ago, written after them: its time sorts it
	// before both, its ID after.
	late := accounts.LoginEvent{Time: time.Now().Add(-time.Hour), User: "late", Host: "10.0.0.1", Reason: "bad_credentials"}
	if err := db.insertLogins(t.Context(), []accounts.LoginEvent{late}); err != nil {
		t.Fatal(err)
	}
	auditAdmin(t, db, "c")
	got = append(got, fl.collect(t, 2)...)
	// late and c come in one batch, in time order, or late first.
	if fmt.Sprint(got) != "[a b late c]" {
		t.Errorf("followed %v, want [a b late c], each once", got)
	}
	select {
	case rows := <-fl.batches:
		t.Errorf("an extra batch %+v", rows)
	case <-time.After(50 * time.Millisecond):
	}
	fl.cancel()
	if err := <-fl.done; err != nil {
		t.Errorf("FollowAudit after cancel: %v, want nil", err)
	}
	fl.done <- nil // for the cleanup
}

// TestFollowAuditHistory: without AfterID, the first call has the newest
// f.Limit entries f selects; the filter holds for what follows, the limit
// does not.
func TestFollowAuditHistory(t *testing.T) {
	db, _ := newTestDB(t)
	for i := range 5 {
		auditAdmin(t, db, fmt.Sprint("h", i))
	}
	fl := follow(t, db, AuditFilter{Kind: AuditAdmin, Limit: 2}, nil)
	if got := fl.collect(t, 2); fmt.Sprint(got) != "[h3 h4]" {
		t.Errorf("history %v, want the newest two, h3 h4", got)
	}
	// A login does not pass the filter; three admin rows, committed
	// together, pass in one batch, past the limit of the first call.
	if err := db.insertLogins(t.Context(), []accounts.LoginEvent{{Time: time.Now(), User: "x", Allowed: true}}); err != nil {
		t.Fatal(err)
	}
	err := db.Admin(t.Context(), "ops", "n3", func(ctx context.Context) (string, error) {
		for _, a := range []string{"n1", "n2"} {
			if err := db.AuditAdmin(ctx, "ops", a, ""); err != nil {
				return "", err
			}
		}
		return "", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range fl.next(t) {
		got = append(got, r.Action)
	}
	if fmt.Sprint(got) != "[n1 n2 n3]" {
		t.Errorf("followed %v in one batch, want n1 n2 n3", got)
	}
}

// TestFollowAuditStops: an error of fn ends the follow with it, and a
// poll interval that is not positive is refused.
func TestFollowAuditStops(t *testing.T) {
	db, _ := newTestDB(t)
	if err := db.FollowAudit(t.Context(), AuditFilter{}, 0, func([]AuditEntry) error { return nil }); err == nil {
		t.Error("a poll interval of 0 was accepted")
	}
	broken := errors.New("stdout closed")
	calls := 0
	fl := follow(t, db, AuditFilter{}, func([]AuditEntry) error {
		if calls++; calls == 2 {
			return broken
		}
		return nil
	})
	fl.next(t)
	auditAdmin(t, db, "a")
	// fn fails on the second batch: FollowAudit returns its error (the
	// batch and the return are both ready then; wait for the return).
	select {
	case err := <-fl.done:
		if !errors.Is(err, broken) {
			t.Errorf("FollowAudit = %v, want fn's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("FollowAudit did not return fn's error within 10s")
	}
	fl.done <- nil
}
