package relay

import (
	"math"
	"sync"
	"time"
)

// DefaultMaxClockSkew is the clock skew between the relay and a server that
// the relay tolerates when Config.MaxClockSkew is zero: well above what
// machines kept by NTP see, and above nats-server's default authorization
// timeouts (2 s, 3 s with TLS).
const DefaultMaxClockSkew = 5 * time.Second

// SkewWarnThreshold is the estimated skew beyond which the relay logs a
// warning: within it the relay's measurement cannot tell skew from the
// whole-second resolution of the request's issue time.
const SkewWarnThreshold = time.Second

// skewWindow is how far back, in the server's seconds, the samples of one
// server count; skewServers bounds the servers tracked; skewStale is how
// long a server no request came from still counts.
const (
	skewWindow  = 16
	skewServers = 32
	skewStale   = time.Minute
)

// skewBucket holds the offsets of the requests one server issued in one
// second: received (relay clock) minus iat (server clock).
type skewBucket struct {
	iat      int64
	min, max time.Duration
}

// serverSkew is what the relay measured of one server's clock.
type serverSkew struct {
	name    string
	buckets [skewWindow]skewBucket
	latest  int64     // the newest iat seen
	seen    time.Time // relay clock, the last sample
	// est and res are the estimate and its half-width, from the buckets.
	est, res time.Duration
}

// skewMeter estimates, per server, the offset of the relay's clock from the
// server's (relay minus server: positive when the relay is ahead), from the
// requests themselves.
//
// A request issued at iat (whole seconds: the floor of the server's send
// time) and received at r on the relay's clock gives o = r - iat =
// skew + f + transit, f in [0, 1s) being the fraction of the second the
// server sent it in. So skew <= min(o) (no assumption), and, when transit is
// negligible next to a second (a LAN), skew >= max(o) - 1s. The estimate is
// the middle of [max(o)-1s, min(o)] over the last skewWindow seconds of a
// server's requests, and its resolution half that interval: ±0.5 s from a
// single request, narrowing as requests arrive across the second (to a few
// milliseconds plus the spread of transit times on a busy relay). When the
// offset jumps (a clock stepped), the interval turns empty and the
// estimate starts again from the request that showed it.
type skewMeter struct {
	mu      sync.Mutex
	servers map[string]*serverSkew
}

func newSkewMeter() *skewMeter {
	return &skewMeter{servers: make(map[string]*serverSkew)}
}

// sample records a request from server id (named name) issued at iat and
// received at received.
func (m *skewMeter) sample(id, name string, iat int64, received time.Time) {
	o := received.Sub(time.Unix(iat, 0))
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.servers[id]
	if s == nil {
		if len(m.servers) >= skewServers {
			m.evictLocked()
		}
		s = &serverSkew{}
		m.servers[id] = s
	}
	s.name, s.seen = clip(name), received
	if iat > s.latest {
		s.latest = iat
	}
	b := &s.buckets[uint64(iat)%skewWindow]
	if b.iat != iat {
		if b.iat > iat {
			return // older than the window
		}
		*b = skewBucket{iat: iat, min: o, max: o}
	} else {
		b.min, b.max = min(b.min, o), max(b.max, o)
	}
	s.estimate()
	if s.inconsistent() {
		// The clock jumped: start again from this request.
		s.buckets = [skewWindow]skewBucket{}
		s.buckets[uint64(iat)%skewWindow] = skewBucket{iat: iat, min: o, max: o}
		s.estimate()
	}
}

// inconsistent reports whether the buckets admit no single skew: a
// request's offset exceeds another's by more than the second of iat
// resolution and a margin for transit.
func (s *serverSkew) inconsistent() bool {
	lo, hi := s.bounds()
	return lo-hi > 250*time.Millisecond
}

// bounds returns max(o)-1s and min(o) over the buckets in the window.
func (s *serverSkew) bounds() (lo, hi time.Duration) {
	lo, hi = time.Duration(math.MinInt64), time.Duration(math.MaxInt64)
	for _, b := range s.buckets {
		if b.iat == 0 || b.iat <= s.latest-skewWindow {
			continue
		}
		lo, hi = max(lo, b.max-time.Second), min(hi, b.min)
	}
	return lo, hi
}

func (s *serverSkew) estimate() {
	lo, hi := s.bounds()
	s.est = lo + (hi-lo)/2
	s.res = (hi - lo) / 2
	if s.res < 0 {
		s.res = -s.res
	}
}

// evictLocked drops the server heard from least recently.
func (m *skewMeter) evictLocked() {
	var oldest string
	var at time.Time
	for id, s := range m.servers {
		if oldest == "" || s.seen.Before(at) {
			oldest, at = id, s.seen
		}
	}
	delete(m.servers, oldest)
}

// ClockSkew is the relay's measurement of one server's clock.
type ClockSkew struct {
	// ServerID and ServerName name the server.
	ServerID, ServerName string
	// Skew is the relay's clock minus the server's: positive when the
	// relay's clock is ahead. Resolution is the half-width of the interval
	// the true value lies in (transit times aside).
	Skew, Resolution time.Duration
}

// worst returns the measurement of largest magnitude among the servers
// heard from within skewStale of now, and false when there is none.
func (m *skewMeter) worst(now time.Time) (ClockSkew, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var w ClockSkew
	found := false
	for id, s := range m.servers {
		if now.Sub(s.seen) > skewStale {
			continue
		}
		if !found || s.est.Abs() > w.Skew.Abs() {
			w = ClockSkew{ServerID: id, ServerName: s.name, Skew: s.est, Resolution: s.res}
			found = true
		}
	}
	return w, found
}

// beyond reports whether c puts the skew beyond tolerance for certain: the
// whole interval [Skew-Resolution, Skew+Resolution] lies outside it.
func (c ClockSkew) beyond(tolerance time.Duration) bool {
	return c.Skew.Abs()-c.Resolution > tolerance
}
