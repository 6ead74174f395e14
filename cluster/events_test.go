package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"
)

// eventCopy is what a follower applied: the events in order and the
// position, as a node's database keeps them (in one transaction).
type eventCopy struct {
	mu   sync.Mutex
	pos  uint64
	data []string
	seqs []uint64
	node []string
}

func (c *eventCopy) from(context.Context) (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pos, nil
}

func (c *eventCopy) apply(_ context.Context, last uint64, evs []Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range evs {
		if e.Seq <= c.pos {
			continue
		}
		var s string
		if err := json.Unmarshal(e.Data, &s); err != nil {
			return err
		}
		c.data, c.seqs, c.node = append(c.data, s), append(c.seqs, e.Seq), append(c.node, e.Node)
	}
	c.pos = last
	return nil
}

// got returns the events applied, but the one that a Send without quorum
// may have left with a stream leader that commits it later.
func (c *eventCopy) got() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, d := range c.data {
		if d != "sync" {
			out = append(out, d)
		}
	}
	return out
}

// followEvents runs ev.Follow into c until the returned stop is called.
func followEvents(t *testing.T, ev *Events, c *eventCopy) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ev.Follow(ctx, c.from, c.apply) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("Follow: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func publishN(ev *Events, from, n int) {
	for i := from; i < from+n; i++ {
		b, _ := json.Marshal(fmt.Sprintf("e%d", i))
		ev.Publish(b)
	}
}

func want(from, n int) []string {
	var out []string
	for i := from; i < from+n; i++ {
		out = append(out, fmt.Sprintf("e%d", i))
	}
	return out
}

// TestEventsHeldWithoutQuorum: events published through one server reach
// a follower on another in order, marked with the sender; with two of
// three servers down Publish still returns at once, holds what fits in
// its buffer and counts the rest lost (Health says so), a Send fails
// with ErrNoQuorum; once the servers are back every held event arrives,
// once, and a follower started again from its position gets only what
// came after.
func TestEventsHeldWithoutQuorum(t *testing.T) {
	c := newNATSCluster(t)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	cfg := EventsConfig{Stream: "EVENTS", Subject: "test.events", Buffer: 4, Timeout: 500 * time.Millisecond,
		RetryWait: 100 * time.Millisecond, Logger: logger}
	pub, err := NewEvents(c.connect(0), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := pub.Node(); got != "n1" {
		t.Errorf("Node() = %q, want the server's name n1", got)
	}
	// JetStream elects the stream's leader: wait for the first send.
	waitFor(t, 30*time.Second, "a first event sent", func() bool {
		b, _ := json.Marshal("e0")
		return pub.Send(t.Context(), b) == nil
	})
	pub.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := pub.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	sub, err := NewEvents(c.connect(2), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var cp eventCopy
	stop := followEvents(t, sub, &cp)

	publishN(pub, 1, 3)
	waitFor(t, 5*time.Second, "the follower has e0…e3", func() bool { return len(cp.got()) == 4 })
	if got := cp.got(); fmt.Sprint(got) != fmt.Sprint(want(0, 4)) {
		t.Errorf("followed %v, want %v", got, want(0, 4))
	}
	for i, n := range cp.node {
		if n != "n1" {
			t.Errorf("event %d says node %q, want n1", i, n)
		}
	}

	c.stop(1)
	c.stop(2)
	// The first is taken to be sent and held there (alone: the sender is
	// waiting for it when it comes), four more wait in the buffer, and the
	// last two do not fit.
	began := time.Now()
	publishN(pub, 4, 1)
	waitFor(t, 5*time.Second, "e4 taken to be sent", func() bool { return pub.inFlight.Load() == 1 && len(pub.ch) == 0 })
	publishN(pub, 5, 6)
	if took := time.Since(began); took > 500*time.Millisecond {
		t.Errorf("Publish without quorum took %v", took)
	}
	st := pub.Stats()
	if st.Waiting != 5 || st.Lost != 2 {
		t.Errorf("stats without quorum: %+v, want 5 waiting and 2 lost", st)
	}
	if err := pub.Health(); !errors.Is(err, ErrEventsLost) {
		t.Errorf("Health after losing events: %v, want ErrEventsLost", err)
	}
	b, _ := json.Marshal("sync")
	if err := pub.Send(t.Context(), b); !errors.Is(err, ErrNoQuorum) {
		t.Errorf("Send without quorum: %v, want ErrNoQuorum", err)
	}

	c.start(1)
	c.start(2)
	waitFor(t, 60*time.Second, "the held events arrive", func() bool { return len(cp.got()) == 9 })
	if got, w := cp.got(), want(0, 9); fmt.Sprint(got) != fmt.Sprint(w) {
		t.Errorf("followed %v, want %v (e9, e10 lost)", got, w)
	}
	// The follower can read an event before its ack has reached the
	// sender (or while a send that timed out is retried, which the stream's
	// dedupe drops): the counts settle after the events arrive.
	waitFor(t, 30*time.Second, "the sender's counts to settle", func() bool { return pub.Stats().Waiting == 0 })
	if st := pub.Stats(); st.Sent != 8 || st.Waiting != 0 || st.Lost != 2 {
		t.Errorf("stats after recovery: %+v, want 8 sent (e1…e8; e0 went by Send), none waiting, 2 lost", st)
	}
	time.Sleep(200 * time.Millisecond)
	if got, w := cp.got(), want(0, 9); fmt.Sprint(got) != fmt.Sprint(w) {
		t.Errorf("after the sender settled the follower has %v, want %v (a retried send stored twice?)", got, w)
	}

	stop()
	publishN(pub, 20, 1)
	var again eventCopy
	again.pos = cp.pos
	followEvents(t, sub, &again)
	waitFor(t, 10*time.Second, "the event after the position", func() bool { return len(again.got()) == 1 })
	time.Sleep(200 * time.Millisecond)
	if got := again.got(); fmt.Sprint(got) != "[e20]" {
		t.Errorf("a follower resumed from position %d got %v, want [e20]", cp.pos, got)
	}
}
