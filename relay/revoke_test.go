package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/authrelay/authrelay/accounts"
	"github.com/nats-io/nats.go"
)

// fakeFeed is a ChangeFeed in memory.
type fakeFeed struct {
	mu    sync.Mutex
	users []string // users[i] has id i+1
}

func (f *fakeFeed) LastUserChange(context.Context) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return int64(len(f.users)), nil
}

func (f *fakeFeed) UserChangesSince(_ context.Context, after int64) ([]accounts.UserChange, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []accounts.UserChange
	for i := after; i < int64(len(f.users)); i++ {
		out = append(out, accounts.UserChange{ID: i + 1, User: f.users[i]})
	}
	return out, nil
}

func (f *fakeFeed) change(user string) {
	f.mu.Lock()
	f.users = append(f.users, user)
	f.mu.Unlock()
}

// testRevoker returns a revoker on feed with a settable clock whose kicks
// are recorded instead of sent.
func testRevoker(t *testing.T, feed *fakeFeed, maxConns int, ttl time.Duration) (*revoker, *time.Time, func() []Kick) {
	t.Helper()
	now := time.Unix(1_700_000_000, 0)
	var mu sync.Mutex
	var kicks []Kick
	v, err := newRevoker(RevokeConfig{Changes: feed, MaxConns: maxConns, OnKick: func(_ context.Context, k Kick) {
		mu.Lock()
		kicks = append(kicks, k)
		mu.Unlock()
	}}, ttl, func() time.Time { return now }, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	v.send = func(Kick) error { return nil }
	return v, &now, func() []Kick {
		v.kicks.Wait()
		mu.Lock()
		defer mu.Unlock()
		out := kicks
		kicks = nil
		slices.SortFunc(out, func(a, b Kick) int { return int(a.ClientID) - int(b.ClientID) })
		return out
	}
}

func kickedCIDs(ks []Kick) []uint64 {
	var out []uint64
	for _, k := range ks {
		out = append(out, k.ClientID)
	}
	return out
}

// TestRevokerKicksTheChangedUser checks that a change kicks every
// remembered connection of its user on every server, and no other.
func TestRevokerKicksTheChangedUser(t *testing.T) {
	feed := &fakeFeed{}
	v, _, kicks := testRevoker(t, feed, 0, time.Hour)
	ctx := t.Context()
	v.granted("S1", 1, "alice", v.position())
	v.granted("S2", 2, "alice", v.position())
	v.granted("S1", 3, "bob", v.position())
	feed.change("alice")
	if err := v.poll(ctx); err != nil {
		t.Fatal(err)
	}
	got := kicks()
	if !slices.Equal(kickedCIDs(got), []uint64{1, 2}) || got[0].ServerID != "S1" || got[1].ServerID != "S2" {
		t.Fatalf("kicks %+v, want alice's cid 1 on S1 and cid 2 on S2", got)
	}
	if n := v.remembered(); n != 1 {
		t.Errorf("remembered %d, want bob's 1", n)
	}
	// A grant decided after the change committed is not kicked for it.
	v.granted("S1", 4, "alice", v.position())
	if err := v.poll(ctx); err != nil {
		t.Fatal(err)
	}
	if got := kicks(); len(got) != 0 {
		t.Errorf("grant after the change kicked: %+v", got)
	}
}

// TestRevokerLateGrant checks that a grant decided before a change but
// recorded after the relay read it is kicked at once.
func TestRevokerLateGrant(t *testing.T) {
	feed := &fakeFeed{}
	v, _, kicks := testRevoker(t, feed, 0, time.Hour)
	pos := v.position() // the decision starts
	feed.change("alice")
	if err := v.poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	v.granted("S1", 7, "alice", pos) // its answer goes out after
	if got := kickedCIDs(kicks()); !slices.Equal(got, []uint64{7}) {
		t.Errorf("kicked %v, want the late grant 7", got)
	}
	if n := v.remembered(); n != 0 {
		t.Errorf("remembered %d, want 0", n)
	}
}

// TestRevokerDisconnectPrunes checks that disconnect events forget
// connections, so that a later change kicks nothing, and that an unknown
// disconnect is harmless.
func TestRevokerDisconnectPrunes(t *testing.T) {
	feed := &fakeFeed{}
	v, _, kicks := testRevoker(t, feed, 0, time.Hour)
	v.granted("S1", 1, "alice", 0)
	v.granted("S1", 2, "alice", 0)
	v.disconnected("S1", 1)
	v.disconnected("S2", 2) // another server's cid 2: not alice's
	v.disconnected("S9", 99)
	if n := v.remembered(); n != 1 {
		t.Fatalf("remembered %d, want 1", n)
	}
	feed.change("alice")
	if err := v.poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := kickedCIDs(kicks()); !slices.Equal(got, []uint64{2}) {
		t.Errorf("kicked %v, want only the live cid 2", got)
	}
	if len(v.byUser) != 0 || len(v.conns) != 0 {
		t.Errorf("left behind: %v %v", v.byUser, v.conns)
	}
}

// TestRevokerBounds checks that the map never holds more than MaxConns
// (the oldest go first), that the order queue stays bounded under churn,
// and that grants older than the session TTL are forgotten.
func TestRevokerBounds(t *testing.T) {
	feed := &fakeFeed{}
	v, now, _ := testRevoker(t, feed, 3, time.Hour)
	for cid := range uint64(5) {
		v.granted("S1", cid, "alice", 0)
		*now = now.Add(time.Second)
	}
	if n := v.remembered(); n != 3 {
		t.Fatalf("remembered %d, want 3", n)
	}
	for _, cid := range []uint64{0, 1} {
		if _, ok := v.conns[connKey{"S1", cid}]; ok {
			t.Errorf("cid %d kept, want the oldest evicted", cid)
		}
	}
	for cid := uint64(100); cid < 10_000; cid++ {
		v.granted("S1", cid, "bob", 0)
		v.disconnected("S1", cid)
	}
	if len(v.order)-v.head > 2*v.cfg.MaxConns+64 {
		t.Errorf("order holds %d keys for %d grants", len(v.order)-v.head, v.remembered())
	}
	*now = now.Add(2 * time.Hour)
	v.granted("S1", 20_000, "carol", 0)
	v.expire()
	if n := v.remembered(); n != 1 {
		t.Errorf("after the TTL remembered %d, want only the fresh grant", n)
	}
}

// TestRevokerConfig checks newRevoker's validation.
func TestRevokerConfig(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, c := range []RevokeConfig{{}, {Changes: &fakeFeed{}, Poll: -1}, {Changes: &fakeFeed{}, MaxConns: -1}} {
		if _, err := newRevoker(c, 0, time.Now, log); err == nil {
			t.Errorf("newRevoker(%+v) = nil error", c)
		}
	}
	v, err := newRevoker(RevokeConfig{Changes: &fakeFeed{}}, 0, time.Now, log)
	if err != nil || v.cfg.Poll != DefaultRevokePoll || v.cfg.MaxConns != DefaultRevokeMaxConns {
		t.Errorf("defaults: %+v, %v", v.cfg, err)
	}
	for _, c := range []RevokeConfig{{Changes: &fakeFeed{}, MaxPending: -1}} {
		if _, err := newRevoker(c, 0, time.Now, log); err == nil {
			t.Errorf("newRevoker(%+v) = nil error", c)
		}
	}
}

// TestRevokerKickOutcomes checks how a kick's answer is taken: "no such
// client" (closed already, or kicked by another relay) is done, quietly;
// a transient error is counted and hands the user to the server query,
// which retries it.
func TestRevokerKickOutcomes(t *testing.T) {
	feed := &fakeFeed{}
	v, now, kicks := testRevoker(t, feed, 0, time.Hour)
	v.send = func(Kick) error { return errors.New("kick: server says no such client or leafnode id") }
	v.kick(t.Context(), Kick{User: "gone", ServerID: "S1", ClientID: 1, ChangeID: 3, seen: *now}, 1)
	if got := kicks(); len(got) != 0 {
		t.Errorf("a connection already gone was reported as kicked: %+v", got)
	}
	if f := v.stats.failed.Load(); f != 0 || len(v.jobs) != 0 {
		t.Errorf("no such client: %d failures and %d pending, want none", f, len(v.jobs))
	}
	v.send = func(Kick) error { return fmt.Errorf("kick request: %w", nats.ErrTimeout) }
	v.kick(t.Context(), Kick{User: "alice", ServerID: "S1", ClientID: 2, ChangeID: 4, seen: *now}, 1)
	if got := kicks(); len(got) != 0 {
		t.Errorf("a failed kick was reported: %+v", got)
	}
	if f := v.stats.failed.Load(); f != 1 {
		t.Errorf("%d failures counted, want 1", f)
	}
	j, ok := v.jobs["alice"]
	if !ok || j.change != 4 || !j.seen.Equal(*now) {
		t.Fatalf("after a failed kick the pending queries are %v, want alice's for change 4", v.jobs)
	}
	if len(v.inflight) != 0 {
		t.Errorf("in flight after the kick ended: %v", v.inflight)
	}
}

// TestRevokerTellsTheObserver checks that the relay's Observer hears of
// each kick that closed a connection, once, before OnKick, and of no kick
// that failed or found the connection gone.
func TestRevokerTellsTheObserver(t *testing.T) {
	keys, err := accounts.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := accounts.NewIssuer(keys.IssuerSeed, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	var observedFirst []bool
	r, err := New(Config{Issuer: issuer, Users: newMemUsers(), Observer: rec, Revoke: &RevokeConfig{
		Changes: &fakeFeed{},
		OnKick: func(_ context.Context, k Kick) {
			seen := rec.kicked()
			observedFirst = append(observedFirst, len(seen) > 0 && seen[len(seen)-1].ClientID == k.ClientID)
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	v := r.revoke
	ctx := t.Context()
	v.send = func(Kick) error { return nil }
	v.kick(ctx, Kick{User: "alice", ServerID: "S1", ClientID: 1, ChangeID: 2, Found: FoundGrant}, 1)
	v.kicks.Wait()
	v.send = func(Kick) error { return errors.New("kick: server says no such client or leafnode id") }
	v.kick(ctx, Kick{User: "alice", ServerID: "S1", ClientID: 2, ChangeID: 2}, 1)
	v.kicks.Wait()
	v.send = func(Kick) error { return fmt.Errorf("kick request: %w", nats.ErrTimeout) }
	v.kick(ctx, Kick{User: "alice", ServerID: "S1", ClientID: 3, ChangeID: 2}, 1)
	v.kicks.Wait()

	got := rec.kicked()
	if len(got) != 1 || got[0].ClientID != 1 || got[0].User != "alice" || got[0].Err != nil || got[0].Found != FoundGrant {
		t.Fatalf("observer told of %+v, want only the kick that closed cid 1", got)
	}
	if !slices.Equal(observedFirst, []bool{true}) {
		t.Errorf("OnKick calls %v, want one, after the observer heard of it", observedFirst)
	}
	if s := r.RevokeStats(); s.Kicks != 1 || s.KickFailures != 1 {
		t.Errorf("RevokeStats = %+v, want 1 kick and 1 failure", s)
	}
}

// TestRevokerQueryFindsOtherGrants runs a relay without revocation (standing
// in for another relay, or one that has since died) and a revoker that
// granted nothing, on a real server: its query for alice, two connections
// a page, kicks each of her connections that started before the change
// was read, on every page, and none started well after it, nor bob's, nor
// the server's own admin connections.
func TestRevokerQueryFindsOtherGrants(t *testing.T) {
	for _, e := range envs() {
		t.Run(e.name, func(t *testing.T) {
			h := newHarness(t, e)
			h.users.put("bob-pw-55aa", accounts.User{Name: "bob", Account: "APP"})
			h.startRelay(nil)
			v, err := newRevoker(RevokeConfig{AdminUser: "admin", AdminPassword: "admin-pw", Changes: &fakeFeed{}},
				0, time.Now, slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
			if err != nil {
				t.Fatal(err)
			}
			v.page, v.reserved = 2, []string{"AUTH", "SYS"}
			stop, err := v.start(t.Context(), h.srv.ClientURL(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer stop()
			// The server answers the revoker's id ping: a query then
			// waits for it alone, not for the full sweepWait.
			deadline := time.Now().Add(2 * time.Second)
			for !slices.Contains(v.knownServers(), h.srv.ID()) {
				if time.Now().After(deadline) {
					t.Fatalf("known servers %v after 2s, want the server %s", v.knownServers(), h.srv.ID())
				}
				time.Sleep(10 * time.Millisecond)
			}

			var old []*client
			for range 5 {
				old = append(old, h.mustConnect(t, "alice", "alice-pw-7f3a"))
			}
			bob := h.mustConnect(t, "bob", "bob-pw-55aa")
			seen := time.Now() // the change is read
			time.Sleep(sweepMargin + 150*time.Millisecond)
			fresh := h.mustConnect(t, "alice", "alice-pw-7f3a")

			began := time.Now()
			err = v.sweep(t.Context(), "alice", 1, seen)
			if err != nil && !errors.Is(err, errAgain) {
				t.Fatalf("first query: %v", err)
			}
			if took := time.Since(began); took >= sweepWait {
				t.Errorf("the query took %v: it waited out sweepWait for a server it knows answered", took)
			}
			for i, c := range old {
				select {
				case <-c.reconnected: // kicked, and let back in: alice did not really change
				case <-time.After(3 * time.Second):
					t.Errorf("alice's connection %d, older than the change, was not kicked", i)
				}
			}
			if n := v.stats.kicked.Load(); n != 5 {
				t.Errorf("%d kicks, want 5", n)
			}
			// Her reconnects started after the change: the query is done.
			if err := v.sweep(t.Context(), "alice", 1, seen); err != nil {
				t.Errorf("second query: %v", err)
			}
			if err := v.sweep(t.Context(), "admin", 1, seen); err != nil {
				t.Errorf("query for admin: %v", err)
			}
			for what, c := range map[string]*client{"alice's connection made after the change": fresh, "bob's connection": bob} {
				select {
				case <-c.reconnected:
					t.Errorf("%s was kicked", what)
				default:
				}
			}
			if n := v.stats.kicked.Load(); n != 5 || !v.nc.IsConnected() {
				t.Errorf("after the later queries: %d kicks (want 5), admin connected %v", n, v.nc.IsConnected())
			}
		})
	}
}

// TestRevokerQueriesAReturningServerAgain checks that a server the relay
// did not know (joined, restarted, or back from a partition long enough to
// be forgotten) makes the relay query again for every user changed lately,
// and that a known server, or a change older than changeKeep, does not.
func TestRevokerQueriesAReturningServerAgain(t *testing.T) {
	feed := &fakeFeed{}
	v, now, _ := testRevoker(t, feed, 0, time.Hour)
	v.started = now.Add(-time.Minute)
	v.sawServer("S1")
	feed.change("alice")
	if err := v.poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	seen := *now
	if _, ok := v.jobs["alice"]; !ok {
		t.Fatal("no query pending for alice after her change")
	}
	delete(v.jobs, "alice") // the query is done

	*now = now.Add(time.Second)
	v.sawServer("S1")
	if len(v.jobs) != 0 {
		t.Errorf("a known server made the relay query again: %v", v.jobs)
	}
	v.sawServer("S2")
	j, ok := v.jobs["alice"]
	if !ok || j.change != 1 || !j.seen.Equal(seen) {
		t.Fatalf("after a new server: pending %v, want alice's change 1 read at %v", v.jobs, seen)
	}
	delete(v.jobs, "alice")

	*now = now.Add(changeKeep + time.Second)
	v.expire()
	v.sawServer("S3")
	if len(v.jobs) != 0 {
		t.Errorf("a change older than changeKeep was queried again: %v", v.jobs)
	}
}
