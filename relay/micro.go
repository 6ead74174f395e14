package relay

import (
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// ServiceName is the name under which every relay registers as a NATS micro
// service, so that 'nats micro ls|info|stats authrelay', run as a user of
// the callout account, lists each relay instance and its endpoint.
const ServiceName = "authrelay"

// serviceEndpoint is the name of the micro endpoint that receives the auth
// callout requests on Subject.
const serviceEndpoint = "auth"

// addService registers the relay as a micro service whose one endpoint
// takes the auth callout requests on Subject, in the relay's queue group,
// and hands them to q. The endpoint's statistics count requests handed
// over: its processing time is the hand-off, not the decision, whose
// counts and latency the STATS data (serviceStats) and the Observer carry.
//
// The handler returns at once and a worker answers later: it publishes to
// the request's reply subject itself rather than through micro's Respond,
// which is meant to be called from within the handler.
func (r *Relay) addService(nc *nats.Conn, q *queue[job]) (micro.Service, error) {
	version := r.cfg.ServiceVersion
	if version == "" {
		version = "0.0.0"
	}
	svc, err := micro.AddService(nc, micro.Config{
		Name:        ServiceName,
		Version:     version,
		Description: "authrelay: answers nats-server auth callout login requests",
		Metadata:    map[string]string{"sealed": boolString(r.cfg.XKey != nil)},
		StatsHandler: func(*micro.Endpoint) any {
			return newServiceStats(r.Stats())
		},
	})
	if err != nil {
		return nil, err
	}
	handler := micro.HandlerFunc(func(req micro.Request) {
		m := &nats.Msg{Subject: req.Subject(), Reply: req.Reply(), Header: nats.Header(req.Headers()), Data: req.Data()}
		r.enqueue(q, job{msg: m, nc: nc, received: r.cfg.Now()})
	})
	if err := svc.AddEndpoint(serviceEndpoint, handler,
		micro.WithEndpointSubject(Subject), micro.WithEndpointQueueGroup(r.cfg.Queue)); err != nil {
		r.stopService(nc, svc, 0)
		return nil, err
	}
	return svc, nil
}

// stopService stops svc, draining its subscriptions so that every request
// already delivered to the relay reaches the queue, and waits (bounded) for
// the drain to finish. The relay's connection carries the service's
// subscriptions and keep others (the auth error events, the probe), so the
// drain is over when only those are left.
func (r *Relay) stopService(nc *nats.Conn, svc micro.Service, keep int) {
	if err := svc.Stop(); err != nil {
		r.log.Warn("drain subscription", "err", err)
		return
	}
	deadline := time.Now().Add(subDrainTimeout)
	for nc.NumSubscriptions() > keep && !nc.IsClosed() {
		if time.Now().After(deadline) {
			r.log.Warn("drain subscription: timed out", "timeout", subDrainTimeout)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// serviceStats is the data a relay adds to its endpoint in a micro STATS
// response: Stats, with durations in nanoseconds.
type serviceStats struct {
	CacheHits     uint64 `json:"cache_hits"`
	CacheMisses   uint64 `json:"cache_misses"`
	CacheEntries  int    `json:"cache_entries"`
	Verifications uint64 `json:"verifications"`
	Shed          uint64 `json:"shed"`
	Dropped       uint64 `json:"dropped"`
	HashTimeNanos int64  `json:"hash_time_ns"`
	Queued        int    `json:"queued"`
	HashQueued    int    `json:"hash_queued"`
	HashBusy      int    `json:"hash_busy"`
}

func newServiceStats(s Stats) serviceStats {
	return serviceStats{
		CacheHits: s.CacheHits, CacheMisses: s.CacheMisses, CacheEntries: s.CacheEntries,
		Verifications: s.Verifications, Shed: s.Shed, Dropped: s.Dropped,
		HashTimeNanos: int64(s.HashTime), Queued: s.Queued, HashQueued: s.HashQueued, HashBusy: s.HashBusy,
	}
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}
