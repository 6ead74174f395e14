package store

import (
	"testing"
	"time"

	"github.com/authrelay/authrelay/accounts"
)

// sentEvents collects what a Lockouts sends (OnEvent).
type sentEvents struct{ evs []LockoutEvent }

func (s *sentEvents) send(e LockoutEvent) { s.evs = append(s.evs, e) }

func (s *sentEvents) kinds() []string {
	var out []string
	for _, e := range s.evs {
		out = append(out, e.Kind)
	}
	return out
}

// TestLockoutEventsReplayElsewhere: what one node's guard sends, applied
// by another's (ApplyRemote) with the same rules, leaves it in the same
// state: the failures counted once each however often their message is
// delivered, the lock, the pair cleared by a success and the address
// known; an unlock lifts it.
func TestLockoutEventsReplayElsewhere(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	a, dbA := newGuard(t, testLockoutPolicy)
	b, dbB := newGuard(t, testLockoutPolicy)
	dbA.Now, dbB.Now = func() time.Time { return now }, func() time.Time { return now }
	addUsers(t, dbA, "alice")
	addUsers(t, dbB, "alice")
	var sent sentEvents
	a.l.OnEvent(sent.send)
	seq := uint64(0)
	// deliver applies what a sent since the last call, one message per
	// event, to b's copy; twice, as a redelivery would.
	delivered := 0
	deliver := func() {
		t.Helper()
		var msgs []RemoteLockout
		for _, e := range sent.evs[delivered:] {
			seq++
			msgs = append(msgs, RemoteLockout{Seq: seq, Event: e})
		}
		delivered = len(sent.evs)
		for range 2 {
			if err := b.l.ApplyRemote(t.Context(), "LOCKOUTS", seq, msgs); err != nil {
				t.Fatal(err)
			}
		}
	}

	a.fail("alice", "192.0.2.7", now, 2)
	deliver()
	if got := pairFailures(t, dbB, "alice", "192.0.2.7"); got != 2 {
		t.Errorf("b counts %d failures of the pair, want 2 (each once)", got)
	}
	if err := a.l.Succeeded(t.Context(), "alice", "192.0.2.7", now); err != nil {
		t.Fatal(err)
	}
	deliver()
	if got := pairFailures(t, dbB, "alice", "192.0.2.7"); got != 0 {
		t.Errorf("b counts %d failures after a's success cleared them, want 0", got)
	}
	a.fail("alice", "192.0.2.7", now.Add(time.Second), 3)
	// The fifth failure from the address locks it too.
	if got := sent.kinds(); len(got) != 8 || got[6] != LockoutEventLock || got[7] != LockoutEventLock || got[2] != LockoutEventSuccess {
		t.Errorf("a sent %v, want fail, fail, success, fail, fail, fail, lock (the pair), lock (the address)", got)
	}
	deliver()
	if !b.locked("alice", "192.0.2.7", now.Add(2*time.Second)) {
		t.Error("b does not have alice locked from 192.0.2.7 after a locked it")
	}
	if b.locked("alice", "198.51.100.1", now.Add(2*time.Second)) {
		t.Error("b has alice locked from another address: only the pair was locked")
	}
	rowsA, rowsB := lockoutRows(t, dbA), lockoutRows(t, dbB)
	if len(rowsA) != len(rowsB) {
		t.Fatalf("a has %d lockout rows, b %d:\n%+v\n%+v", len(rowsA), len(rowsB), rowsA, rowsB)
	}
	for i := range rowsA {
		ra, rb := rowsA[i], rowsB[i]
		if ra.Key() != rb.Key() || ra.Failures != rb.Failures || ra.Locks != rb.Locks || !ra.LockedUntil.Equal(rb.LockedUntil) {
			t.Errorf("row %d: a %+v, b %+v", i, ra.Lockout, rb.Lockout)
		}
	}
	// The success made 192.0.2.7 known for alice on b too: a lock of the
	// username does not apply from it.
	var known bool
	if err := dbB.sql.QueryRow(`SELECT EXISTS (SELECT 1 FROM known_addrs WHERE user = 'alice' AND addr = '192.0.2.7')`).Scan(&known); err != nil {
		t.Fatal(err)
	}
	if !known {
		t.Error("b does not know 192.0.2.7 for alice after a's success from it")
	}

	// Unlocks (whoever sent them) of the user and of the address lift
	// both locks on b.
	seq += 2
	unlock := []RemoteLockout{{Seq: seq - 1, Event: LockoutEvent{Kind: LockoutEventUnlock, Time: now, User: "alice"}},
		{Seq: seq, Event: LockoutEvent{Kind: LockoutEventUnlock, Time: now, Addr: "192.0.2.7"}}}
	if err := b.l.ApplyRemote(t.Context(), "LOCKOUTS", seq, unlock); err != nil {
		t.Fatal(err)
	}
	if b.locked("alice", "192.0.2.7", now.Add(2*time.Second)) {
		t.Error("b still has alice locked after the unlock")
	}
	pos, err := dbB.EventPosition(t.Context(), "LOCKOUTS")
	if err != nil || pos != seq {
		t.Errorf("b's position %d, %v; want %d", pos, err, seq)
	}
}

// TestApplyRemoteLockClamped: a lock from another node ends no later than
// this node's longest lockout, and an event from a clock ahead counts at
// this node's now.
func TestApplyRemoteLockClamped(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	g, db := newGuard(t, testLockoutPolicy)
	db.Now = func() time.Time { return now }
	ev := LockoutEvent{Kind: LockoutEventLock, Time: now.Add(24 * time.Hour), Key: LockoutAddr, Addr: "192.0.2.9",
		LockedUntil: now.Add(1000 * time.Hour), Locks: 3}
	if err := g.l.ApplyRemote(t.Context(), "LOCKOUTS", 1, []RemoteLockout{{Seq: 1, Event: ev}}); err != nil {
		t.Fatal(err)
	}
	rows := lockoutRows(t, db)
	if len(rows) != 1 {
		t.Fatalf("rows %+v, want the one lock", rows)
	}
	if want := now.Add(testLockoutPolicy.MaxDuration); !rows[0].LockedUntil.Equal(want) {
		t.Errorf("locked until %v, want %v (now plus the longest lockout)", rows[0].LockedUntil, want)
	}
	if !g.locked("", "192.0.2.9", now) || g.locked("", "192.0.2.9", now.Add(testLockoutPolicy.MaxDuration+time.Second)) {
		t.Error("the clamped lock does not hold for exactly the longest lockout")
	}
	// A key no node counts is skipped, not an error that stops the stream.
	bad := LockoutEvent{Kind: LockoutEventLock, Time: now, Key: LockoutPair, User: "alice", LockedUntil: now.Add(time.Minute), Locks: 1}
	odd := LockoutEvent{Kind: "from-a-newer-node", Time: now}
	if err := g.l.ApplyRemote(t.Context(), "LOCKOUTS", 3, []RemoteLockout{{Seq: 2, Event: bad}, {Seq: 3, Event: odd}}); err != nil {
		t.Fatalf("apply a pair lock without an address and an unknown kind: %v, want them skipped", err)
	}
}

// TestApplyRemoteAuditOnce: login rows of another node are inserted once
// however often their message is delivered, marked with the node; a row
// no relay writes is skipped.
func TestApplyRemoteAuditOnce(t *testing.T) {
	db, _ := newTestDB(t)
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	rows := []RemoteAudit{
		{Seq: 1, Node: "n1", Record: AuditRecord{Time: at, User: "alice", Host: "192.0.2.7", Result: AuditAllowed, Account: "APP", Count: 1}},
		{Seq: 1, Node: "n1", Record: AuditRecord{Time: at, User: "bob", Host: "192.0.2.7", Result: AuditDenied, Reason: accounts.ReasonBadCredentials}},
		{Seq: 2, Node: "n2", Record: AuditRecord{Time: at, User: "eve", Result: "maybe"}},
	}
	for range 3 {
		if err := db.ApplyRemoteAudit(t.Context(), "AUDIT", 2, rows); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.Audit(t.Context(), AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("audit holds %d rows, want alice's and bob's once: %+v", len(got), got)
	}
	for _, r := range got {
		if r.Node != "n1" || r.Kind != AuditLogin || r.Count != 1 {
			t.Errorf("row %+v: want a login row of node n1, count 1", r)
		}
	}
}

// pairFailures returns the failures db counts for name from addr.
func pairFailures(t *testing.T, db *DB, name, addr string) int {
	t.Helper()
	for _, r := range lockoutRows(t, db) {
		if r.Kind == LockoutPair && r.User == name && r.Addr == addr {
			return r.Failures
		}
	}
	return 0
}
