package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
)

// connectLoad is one measured scenario: clients goroutines that each connect
// and close a client, in a loop, for duration.
type connectLoad struct {
	url      string
	clients  int
	duration time.Duration
	// creds returns the username and password of the next connect (empty
	// for none); ok false ends the goroutine early (cold logins have used
	// every user).
	creds func() (name, password string, ok bool)
	// options, when set, replaces creds: the options of the next connect
	// (an nkey's or a token's login).
	options func() []nats.Option
	// collect keeps the names that logged in.
	collect bool
}

// loadStats is what the clients of a connectLoad saw.
type loadStats struct {
	lat        []time.Duration // of the successful connects
	ok, failed int64
	errs       map[string]int64
	names      []string
	exhausted  bool
}

// runConnectLoad runs l and returns what the clients saw and how long it took.
func runConnectLoad(ctx context.Context, l connectLoad) (loadStats, time.Duration) {
	start := time.Now()
	deadline := start.Add(l.duration)
	per := make([]loadStats, l.clients)
	var wg sync.WaitGroup
	for i := range per {
		wg.Go(func() {
			s := &per[i]
			s.errs = map[string]int64{}
			base := []nats.Option{nats.Name("authrelay-bench"), nats.Timeout(connectTimeout), nats.NoReconnect()}
			for ctx.Err() == nil && time.Now().Before(deadline) {
				var name, password string
				ok := true
				if l.options == nil {
					name, password, ok = l.creds()
				}
				if !ok {
					s.exhausted = true
					return
				}
				opts := base
				switch {
				case l.options != nil:
					opts = append(slices.Clip(base), l.options()...)
				case name != "":
					opts = append(slices.Clip(base), nats.UserInfo(name, password))
				}
				t0 := time.Now()
				nc, err := nats.Connect(l.url, opts...)
				d := time.Since(t0)
				if err != nil {
					s.failed++
					s.errs[connectErrClass(err)]++
					if !errors.Is(err, nats.ErrAuthorization) {
						// A refused or reset connection returns at once:
						// do not spin on it.
						sleepCtx(ctx, 20*time.Millisecond)
					}
					continue
				}
				nc.Close()
				s.ok++
				s.lat = append(s.lat, d)
				if l.collect {
					s.names = append(s.names, name)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all loadStats
	all.errs = map[string]int64{}
	for _, s := range per {
		all.lat = append(all.lat, s.lat...)
		all.ok += s.ok
		all.failed += s.failed
		for k, v := range s.errs {
			all.errs[k] += v
		}
		all.names = append(all.names, s.names...)
		all.exhausted = all.exhausted || s.exhausted
	}
	return all, elapsed
}

// benchSample is a reading of the CPU time used so far.
type benchSample struct {
	self     time.Duration // this process: server and load generator
	relayCPU time.Duration
	relayOK  bool
	relayLog childLogCounts
}

func (b *bench) sample(child *relayProc) benchSample {
	s := benchSample{self: selfCPU()}
	if child != nil {
		if cpu, err := procCPU(child.pid()); err == nil {
			s.relayCPU, s.relayOK = cpu, true
		}
		s.relayLog = child.log.counts()
	}
	return s
}

// relayUsage computes the relay child's CPU time per login and peak RSS
// between two samples.
func relayUsage(child *relayProc, before, after benchSample, logins int64) *RelayStats {
	if child == nil {
		return nil
	}
	r := &RelayStats{Logins: logins, LogWarnings: after.relayLog.warnings - before.relayLog.warnings}
	if before.relayOK && after.relayOK {
		r.CPUMs = ms(after.relayCPU - before.relayCPU)
		if logins > 0 {
			r.CPUMsPerLogin = r.CPUMs / float64(logins)
		}
	}
	if rss, err := procPeakRSS(child.pid()); err == nil {
		r.PeakRSSMiB = float64(rss) / (1 << 20)
	}
	return r
}

// loadResult is a measured scenario with what later phases need.
type loadResult struct {
	Scenario
	authorised []string
	exhausted  bool
}

// measure runs l, reading CPU time before and after.
func (b *bench) measure(ctx context.Context, child *relayProc, l connectLoad) loadResult {
	before := b.sample(child)
	st, elapsed := runConnectLoad(ctx, l)
	after := b.sample(child)
	r := Scenario{
		Seconds:   elapsed.Seconds(),
		Connects:  st.ok,
		Failures:  st.failed,
		LatencyMs: latencyStats(st.lat),
		Relay:     relayUsage(child, before, after, st.ok),
	}
	if len(st.errs) > 0 {
		r.Errors = st.errs
	}
	if elapsed > 0 {
		r.ConnectsPerSec = float64(st.ok) / elapsed.Seconds()
	}
	if st.ok > 0 {
		r.ProcessCPUMsPerConnect = ms(after.self-before.self) / float64(st.ok)
	}
	return loadResult{Scenario: r, authorised: st.names, exhausted: st.exhausted}
}

// stormClient is one client of the reconnect storm.
type stormClient struct {
	nc *nats.Conn
	// back is when the client was first connected and authorised again,
	// in nanoseconds after the restart began; 0 until then.
	back atomic.Int64
	// gaveUp is set when nats.go closed the connection for good after
	// the restart (it does after the same authorization error twice).
	gaveUp atomic.Bool
}

// stormState is shared by the storm clients' callbacks.
type stormState struct {
	restartAt  atomic.Int64 // UnixNano when the restart began; 0 before
	closing    atomic.Bool  // the bench is closing the clients itself
	authErrors atomic.Int64
}

func (s *stormState) options(c *stormClient, name, password string) []nats.Option {
	return []nats.Option{
		nats.Name("authrelay-bench-storm"),
		nats.UserInfo(name, password),
		nats.Timeout(connectTimeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(stormReconnectWait),
		nats.ReconnectJitter(stormReconnectJitter, stormReconnectJitter),
		nats.NoCallbacksAfterClientClose(),
		nats.DisconnectErrHandler(func(*nats.Conn, error) {}),
		nats.ReconnectHandler(func(*nats.Conn) {
			if t := s.restartAt.Load(); t != 0 {
				c.back.CompareAndSwap(0, max(1, time.Now().UnixNano()-t))
			}
		}),
		nats.ClosedHandler(func(*nats.Conn) {
			if s.restartAt.Load() != 0 && !s.closing.Load() {
				c.gaveUp.Store(true)
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrAuthorization) {
				s.authErrors.Add(1)
			}
		}),
	}
}

// storm connects the storm clients (as users, round-robin), restarts the
// server on the same port and waits until every client is back and
// authorised or has given up, for at most the storm timeout.
func (b *bench) storm(ctx context.Context, srv *benchServer, child *relayProc, users []string, password string) (*StormResult, error) {
	n := b.cfg.StormClients
	res := &StormResult{Clients: n}
	var st stormState
	clients := make([]*stormClient, n)
	b.progress("(d) storm: connecting %d clients, %d at a time", n, b.cfg.Clients)
	setupStart := time.Now()
	sctx, cancel := context.WithTimeout(ctx, b.cfg.StormTimeout)
	var next atomic.Int64
	var mu sync.Mutex
	setupErrs := map[string]int64{}
	var connected atomic.Int64
	var wg sync.WaitGroup
	for range b.cfg.Clients {
		wg.Go(func() {
			for sctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				c := &stormClient{}
				nc, err := nats.Connect(srv.url(), st.options(c, users[i%len(users)], password)...)
				if err != nil {
					mu.Lock()
					setupErrs[connectErrClass(err)]++
					mu.Unlock()
					continue
				}
				c.nc = nc
				clients[i] = c
				connected.Add(1)
			}
		})
	}
	setupDone := make(chan struct{})
	go func() { wg.Wait(); close(setupDone) }()
	tick := time.NewTicker(10 * time.Second)
	for waiting := true; waiting; {
		select {
		case <-tick.C:
			b.progress("(d) storm: %d of %d clients connected after %.0fs", connected.Load(), n, time.Since(setupStart).Seconds())
		case <-setupDone:
			waiting = false
		}
	}
	tick.Stop()
	cancel()
	res.SetupSeconds = time.Since(setupStart).Seconds()
	var live []*stormClient
	for _, c := range clients {
		if c != nil {
			live = append(live, c)
		}
	}
	defer closeStormClients(&st, live)
	res.Connected = len(live)
	for _, v := range setupErrs {
		res.SetupFailed += v
	}
	if len(setupErrs) > 0 {
		res.SetupErrors = setupErrs
	}
	if ctx.Err() != nil {
		return res, fmt.Errorf("bench: %w", ctx.Err())
	}
	if len(live) == 0 {
		b.rep.Notes = append(b.rep.Notes, "(d) storm: no client could connect before the restart")
		return res, nil
	}

	b.progress("(d) storm: %d clients connected in %.1fs; restarting the server", len(live), res.SetupSeconds)
	before := b.sample(child)
	t0 := time.Now()
	st.restartAt.Store(t0.UnixNano())
	if err := srv.restart(); err != nil {
		return res, err
	}
	res.ServerRestartMs = ms(time.Since(t0))
	deadline := t0.Add(b.cfg.StormTimeout)
	nextReport := t0.Add(10 * time.Second)
	var back, gaveUp int
	for {
		back, gaveUp = 0, 0
		for _, c := range live {
			if c.back.Load() != 0 {
				back++
			} else if c.gaveUp.Load() {
				gaveUp++
			}
		}
		now := time.Now()
		if back+gaveUp == len(live) || now.After(deadline) || ctx.Err() != nil {
			break
		}
		if now.After(nextReport) {
			b.progress("(d) storm: after %.0fs %d back, %d gave up, %d waiting", now.Sub(t0).Seconds(), back, gaveUp, len(live)-back-gaveUp)
			nextReport = now.Add(10 * time.Second)
		}
		sleepCtx(ctx, 20*time.Millisecond)
	}
	waited := time.Since(t0)
	after := b.sample(child)
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("bench: %w", err)
	}
	res.Back, res.GaveUp = back, gaveUp
	res.NotBack = len(live) - back - gaveUp
	var lat []time.Duration
	for _, c := range live {
		if d := c.back.Load(); d != 0 {
			lat = append(lat, time.Duration(d))
		}
	}
	res.TimeToBackMs = latencyStats(lat)
	res.AllBack = res.Back == len(live)
	res.WaitedSeconds = waited.Seconds()
	if res.AllBack {
		res.AllBackSeconds = res.TimeToBackMs.Max / 1000
	}
	res.AuthErrors = st.authErrors.Load()
	res.RelayDropped = after.relayLog.dropped - before.relayLog.dropped
	if rc := after.relayLog.reconnected; rc.After(t0) {
		res.RelayReconnectMs = ms(rc.Sub(t0))
	}
	res.RelayShed = after.relayLog.shed - before.relayLog.shed
	res.RelayAbandoned = after.relayLog.abandoned - before.relayLog.abandoned
	res.Relay = relayUsage(child, before, after, int64(back))
	return res, nil
}

// closeStormClients closes the clients, a few at a time.
func closeStormClients(st *stormState, clients []*stormClient) {
	st.closing.Store(true)
	work := make(chan *stormClient)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for c := range work {
				c.nc.Close()
			}
		})
	}
	for _, c := range clients {
		work <- c
	}
	close(work)
	wg.Wait()
}

// latencyStats returns the median, 99th percentile and maximum of lat, in
// milliseconds (nearest rank). It sorts lat.
func latencyStats(lat []time.Duration) Latency {
	if len(lat) == 0 {
		return Latency{}
	}
	slices.Sort(lat)
	rank := func(q float64) time.Duration {
		i := int(math.Ceil(q*float64(len(lat)))) - 1
		return lat[max(0, min(i, len(lat)-1))]
	}
	return Latency{P50: ms(rank(0.50)), P99: ms(rank(0.99)), Max: ms(lat[len(lat)-1])}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// hostPort matches an address with a port, which differs on every connect.
var hostPort = regexp.MustCompile(`(\d+\.\d+\.\d+\.\d+):\d+`)

// connectErrClass names a connect error for counting: the same failure on
// two connects gives the same name.
func connectErrClass(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, nats.ErrAuthorization):
		return "authorization violation"
	case errors.Is(err, nats.ErrTimeout), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, io.EOF):
		return "connection closed by the server"
	}
	return hostPort.ReplaceAllString(err.Error(), "$1")
}

// sleepCtx sleeps for d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
