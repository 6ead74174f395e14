package relay

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Queue sizes, per worker. The fast lane's work (decode, cache lookup,
// sign, seal) takes a few hundred microseconds, so the fast queue holds
// about what the workers can answer before the server's deadline: in a
// reconnect storm a request dropped here fails the client's login, while
// one that waits too long is abandoned at no more cost. The hash pool's queue is
// bounded by hashQueueFactor per worker, but admission (Relay.admit)
// normally refuses long before: it sheds what could not be verified before
// its deadline.
const (
	fastQueueFactor = 512
	hashQueueFactor = 64
)

// errOverloaded is why admit refuses a request: the hash pool could not
// verify it before its deadline.
var errOverloaded = errors.New("password verification pool overloaded")

// queue hands requests from one stage to the workers of the next. It never
// blocks the sender: when full, offer refuses.
type queue[T any] struct {
	mu     sync.Mutex
	closed bool
	jobs   chan T
}

func newQueue[T any](size int) *queue[T] {
	return &queue[T]{jobs: make(chan T, size)}
}

// offer enqueues j, or says why it cannot.
func (q *queue[T]) offer(j T) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return errStopping
	}
	select {
	case q.jobs <- j:
		return nil
	default:
		return errQueueFull
	}
}

// close stops taking requests; workers finish what is queued.
func (q *queue[T]) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		close(q.jobs)
	}
}

// movingAverage is an exponentially weighted moving average of durations,
// safe for concurrent use. It is zero until the first observation.
type movingAverage struct {
	ns atomic.Int64
}

// observe adds d with weight 1/8.
func (a *movingAverage) observe(d time.Duration) {
	for {
		old := a.ns.Load()
		next := int64(d)
		if old != 0 {
			next = old + (int64(d)-old)/8
		}
		if a.ns.CompareAndSwap(old, max(next, 1)) {
			return
		}
	}
}

func (a *movingAverage) load() time.Duration { return time.Duration(a.ns.Load()) }

// admit hands req to the hash pool, or refuses with errOverloaded when the
// pool could not finish it before req's deadline: the estimate is the
// moving average of a job's time in the pool, times the jobs ahead of it
// spread over the pool's workers, plus its own. A request that finds a
// worker idle and nothing waiting is always taken, so that the average keeps
// being measured (and can fall again) after a slow spell.
func (r *Relay) admit(req *request) error {
	q := r.hashQ
	waiting, busy := len(q.jobs), int(r.hashBusy.Load())
	if waiting > 0 || busy >= r.cfg.HashWorkers {
		avg := r.hashTime.load()
		est := avg + avg*time.Duration(waiting+1)/time.Duration(r.cfg.HashWorkers)
		if r.cfg.Now().Add(est).After(req.deadline) {
			return errOverloaded
		}
		req.queued = true
	}
	if err := q.offer(req); err != nil {
		return errors.Join(errOverloaded, err)
	}
	return nil
}

// Stats are counts of the relay's work since it started, and its current
// state. Get them with Relay.Stats.
type Stats struct {
	// CacheHits counts decisions answered from the credential cache,
	// without verifying the password; CacheMisses counts decisions that
	// looked in the cache and had to verify.
	CacheHits, CacheMisses uint64
	// CacheEntries is the number of credentials cached now.
	CacheEntries int
	// Verifications counts the password verifications of a login's user
	// (or, for an unknown user, of the dummy hash) run by the hash pool:
	// cache misses, and every login without a cache. A locked-out attempt
	// is not one: it verifies only the dummy hash.
	Verifications uint64
	// Shed counts requests answered with ReasonOverloaded.
	Shed uint64
	// Dropped counts requests dropped unanswered because the queue in
	// front of the workers was full.
	Dropped uint64
	// HashTime is the moving average of a verification's time in the hash
	// pool, signing and sealing its answer included.
	HashTime time.Duration
	// Queued is the number of requests waiting now for a fast-lane worker;
	// HashQueued the number waiting for a password verification. Both are
	// zero before Run.
	Queued, HashQueued int
	// HashBusy is the number of password verifications running now.
	HashBusy int
}

// queues are Run's two queues, published for Stats.
type queues struct {
	fast *queue[job]
	hash *queue[*request]
}

// counters are the Stats counters.
type counters struct {
	hits, misses, verifications, shed, dropped atomic.Uint64
}

// Stats returns the relay's counts so far. It is safe to call at any time,
// concurrently with Run.
func (r *Relay) Stats() Stats {
	s := Stats{
		CacheHits:     r.stats.hits.Load(),
		CacheMisses:   r.stats.misses.Load(),
		Verifications: r.stats.verifications.Load(),
		Shed:          r.stats.shed.Load(),
		Dropped:       r.stats.dropped.Load(),
		HashTime:      r.hashTime.load(),
	}
	if r.cache != nil {
		s.CacheEntries = r.cache.len()
	}
	if q := r.queues.Load(); q != nil {
		s.Queued, s.HashQueued = len(q.fast.jobs), len(q.hash.jobs)
	}
	s.HashBusy = int(r.hashBusy.Load())
	return s
}

// everySecond lets one event a second through, so that a flood of
// identical warnings (dropped or shed requests in a reconnect storm) does
// not flood the log. It uses the wall clock: it paces the log, not
// decisions.
type everySecond struct {
	last atomic.Int64
}

func (e *everySecond) allow() bool {
	now := time.Now().UnixNano()
	last := e.last.Load()
	return now-last >= int64(time.Second) && e.last.CompareAndSwap(last, now)
}
