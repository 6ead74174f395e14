package relay

import (
	"context"
	"log/slog"
	"time"
)

// Observer is told of what the relay does, for metrics: every decision it
// sends and every connection its revocation closes. Its methods are called
// on the relay's own goroutines and must not block.
type Observer interface {
	// Decision is called on the decision path, after the answer is
	// published. It is also called, with Reason ReasonRejectedByServer
	// and no latency, for each answer the server reported rejecting.
	Decision(o Observation)
	// Kick is called, with revocation on (Config.Revoke), once for each
	// connection a kick closed (k.Err is nil), before RevokeConfig.OnKick.
	// Failed kicks are retried and counted in RevokeStats, not reported.
	Kick(k Kick)
}

// Observation describes one decision sent.
type Observation struct {
	// Allowed is true when the login was granted; Reason is the denial
	// reason otherwise (one of the Reason constants).
	Allowed bool
	Reason  string
	// Latency runs from the request's arrival at the relay to its answer.
	Latency time.Duration
	// CacheHit is true when the credential cache answered it.
	CacheHit bool
	// StoreError is true when the decision is ReasonInternalError because
	// Users or Guard failed (a lockout check, a password check or a role
	// lookup returned an unexpected error), as opposed to a user record
	// the relay could not issue a JWT for.
	StoreError bool
}

// LogStats logs the relay's decision counts every interval in which it made
// decisions, until ctx is done, so that an operator sees the cache at work
// and any shedding.
func (r *Relay) LogStats(ctx context.Context, interval time.Duration, logger *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var last Stats
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s := r.Stats()
		hits, misses := s.CacheHits-last.CacheHits, s.CacheMisses-last.CacheMisses
		verifications := s.Verifications - last.Verifications
		shed, dropped := s.Shed-last.Shed, s.Dropped-last.Dropped
		last = s
		if hits+misses+verifications+shed+dropped == 0 {
			continue
		}
		logger.Info("relay stats", "interval", interval, "cache_hits", hits, "cache_misses", misses,
			"cache_entries", s.CacheEntries, "verifications", verifications, "hash_time", s.HashTime,
			"shed", shed, "dropped", dropped)
	}
}
