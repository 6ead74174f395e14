package relay

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestOIDCLimitsUnderConcurrency: the bound on users created on first
// login holds when many logins ask at once (exactly the burst, then the
// rate), and a token's verifications wait for at most a quarter of the
// workers per issuer, half for all, so another issuer's still get a slot.
func TestOIDCLimitsUnderConcurrency(t *testing.T) {
	l := newOIDCLimits(8, &IdentityConfig{CreateRate: 2, CreateBurst: 5})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			if l.allowCreate(now) {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	if n := allowed.Load(); n != 5 {
		t.Errorf("%d of 100 concurrent creations allowed, want the burst, 5", n)
	}
	allowed.Store(0)
	later := now.Add(time.Second)
	for range 100 {
		wg.Go(func() {
			if l.allowCreate(later) {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	if n := allowed.Load(); n != 2 {
		t.Errorf("%d creations allowed a second later, want the rate, 2", n)
	}

	ctx := context.Background()
	for i := range 2 { // perIssuer = 8/4
		if !l.acquire(ctx, "https://hung.example") {
			t.Fatalf("slot %d of the hung issuer refused", i+1)
		}
	}
	start := time.Now()
	if l.acquire(ctx, "https://hung.example") {
		t.Fatal("a third slot for one issuer, past a quarter of the workers")
	}
	if took := time.Since(start); took > 50*time.Millisecond {
		t.Errorf("the refusal of a full issuer took %v: it must not wait", took)
	}
	if !l.acquire(ctx, "https://up.example") {
		t.Fatal("another issuer found no slot while one issuer's were taken")
	}
	l.release("https://up.example")
	l.release("https://hung.example")
	l.release("https://hung.example")
	if len(l.inFlight) != 0 || len(l.slots) != 0 {
		t.Errorf("after every release: %d issuers, %d slots held", len(l.inFlight), len(l.slots))
	}
}
