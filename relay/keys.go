package relay

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// AuthErrorSubject is where nats-server reports, in the callout account,
// every login it refused: the relay's own denials and the answers it
// rejected (an unknown signing key, a user JWT from the wrong issuer).
const AuthErrorSubject = "$SYS.ACCOUNT.CLIENT.AUTH.ERR"

// Thresholds of the key checks.
const (
	// keyFailStreak is how many requests in a row the relay must fail to
	// open, with none opened for keyFailQuiet, before it decides that its
	// keys are not the server's: one garbled request proves nothing.
	keyFailStreak = 3
	keyFailQuiet  = 10 * time.Second
	// probeEvery paces the requests the relay inspects while out of the
	// queue group.
	probeEvery = 200 * time.Millisecond
	// answerRing bounds the answers remembered to recognise the server's
	// rejections of them.
	answerRing = 4096
)

// answerKey names one login: the server and its client id.
type answerKey struct {
	server string
	cid    uint64
}

// keyHealth tracks whether the server accepts the relay's keys: requests
// it cannot open (another xkey, or sealing on at one end only) and answers
// the server rejects (another issuer). While it has a fault the relay
// leaves the queue group (see membership) so that relays with the right
// keys take the logins.
type keyHealth struct {
	issuer string // the relay's public issuer key

	mu sync.Mutex
	// Requests not opened since the last one opened, and when that was.
	failStreak int
	lastFail   string
	lastOK     time.Time
	// Answers rejected: the servers that rejected one, the last reason,
	// and when. A request opened from another server after that clears it.
	rejectedBy   map[string]bool
	lastReject   string
	rejectedAt   time.Time
	otherOpened  time.Time
	answered     map[answerKey]struct{}
	answeredRing [answerRing]answerKey
	answeredNext int

	keyFailures, rejections atomic.Uint64
	changed                 chan struct{} // signalled when the fault may have changed
	// faulty is true while there is a fault: the relay answers nothing
	// then, also in the moment before it has left the queue group.
	faulty atomic.Bool
}

func newKeyHealth(issuer string) *keyHealth {
	return &keyHealth{
		issuer:     issuer,
		rejectedBy: make(map[string]bool),
		answered:   make(map[answerKey]struct{}, answerRing),
		changed:    make(chan struct{}, 1),
	}
}

func (k *keyHealth) signal() {
	select {
	case k.changed <- struct{}{}:
	default:
	}
}

// opened records a request from server id that the relay opened.
func (k *keyHealth) opened(id string, now time.Time) {
	k.mu.Lock()
	was := k.faultLocked(now)
	k.failStreak, k.lastOK = 0, now
	if !k.rejectedBy[id] {
		k.otherOpened = now
	}
	is := k.faultLocked(now)
	k.mu.Unlock()
	if was != is {
		k.faulty.Store(is != "")
		k.signal()
	}
}

// openFailed records a request the relay could not open with its keys.
func (k *keyHealth) openFailed(err error, now time.Time) {
	k.keyFailures.Add(1)
	k.mu.Lock()
	was := k.faultLocked(now)
	k.failStreak++
	k.lastFail = err.Error()
	is := k.faultLocked(now)
	k.mu.Unlock()
	if was != is {
		k.faulty.Store(is != "")
		k.signal()
	}
}

// answeredLogin remembers that the relay answered the login of client cid
// on server id.
func (k *keyHealth) answeredLogin(id string, cid uint64) {
	key := answerKey{id, cid}
	k.mu.Lock()
	defer k.mu.Unlock()
	old := k.answeredRing[k.answeredNext]
	delete(k.answered, old)
	k.answeredRing[k.answeredNext] = key
	k.answeredNext = (k.answeredNext + 1) % answerRing
	k.answered[key] = struct{}{}
}

// authError is the part of a $SYS.ACCOUNT.CLIENT.AUTH.ERR event the relay
// reads.
type authError struct {
	Server struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"server"`
	Client struct {
		ID   uint64 `json:"id"`
		User string `json:"user"`
		Host string `json:"host"`
	} `json:"client"`
	Reason string `json:"reason"`
}

// rejectedByServer reports whether reason, from a server's auth error
// event about a login the relay answered (mine), says that the server
// rejected the relay's answer for its signing key. nats-server 2.15 says
// "Auth callout signing key is unknown" of an unsealed response signed by
// another key, and "Wrong issuer for auth callout response on account …,
// expected "A…" got "A…"" of a user JWT from another issuer (the only check
// of the issuer when the response is sealed); the second names the
// relay's key, so it needs no correlation.
func (k *keyHealth) rejectedByServer(reason string, mine bool) bool {
	lower := strings.ToLower(reason)
	switch {
	case strings.HasPrefix(lower, "wrong issuer for auth callout response"):
		return strings.Contains(reason, fmt.Sprintf("got %q", k.issuer))
	case strings.Contains(lower, "auth callout signing key is unknown"):
		return mine
	}
	return false
}

// authErrorEvent handles one auth error event; it reports whether the
// event was a rejection of the relay's answer.
func (k *keyHealth) authErrorEvent(data []byte, now time.Time) (authError, bool) {
	var ev authError
	if len(data) > MaxRequestSize || json.Unmarshal(data, &ev) != nil {
		return ev, false
	}
	k.mu.Lock()
	_, mine := k.answered[answerKey{ev.Server.ID, ev.Client.ID}]
	k.mu.Unlock()
	if ev.Server.ID == "" || !k.rejectedByServer(ev.Reason, mine) {
		return ev, false
	}
	k.rejections.Add(1)
	k.mu.Lock()
	was := k.faultLocked(now)
	if !k.rejectedBy[ev.Server.ID] && len(k.rejectedBy) >= skewServers {
		clear(k.rejectedBy) // bounded; a live rejection sets it again
	}
	k.rejectedBy[ev.Server.ID] = true
	k.lastReject, k.rejectedAt = clip(ev.Reason), now
	is := k.faultLocked(now)
	k.mu.Unlock()
	if was != is {
		k.faulty.Store(is != "")
		k.signal()
	}
	return ev, true
}

// fault returns why the server does not accept the relay's keys, or "".
func (k *keyHealth) fault(now time.Time) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.faultLocked(now)
}

func (k *keyHealth) faultLocked(now time.Time) string {
	if k.failStreak >= keyFailStreak && (k.lastOK.IsZero() || now.Sub(k.lastOK) >= keyFailQuiet) {
		return fmt.Sprintf("the last %d login requests could not be opened with this relay's keys (%s): the server's auth_callout.xkey is not this relay's xkey, or sealing is on at one end only; run the relay with the secrets.json of the server's directory", k.failStreak, clip(k.lastFail))
	}
	if !k.rejectedAt.IsZero() && !k.otherOpened.After(k.rejectedAt) {
		return fmt.Sprintf("the server rejected this relay's answer (%s): its auth_callout.issuer is not this relay's issuer key %s; run the relay with the secrets.json of the server's directory", k.lastReject, k.issuer)
	}
	return ""
}

// membership puts the relay in the queue group and takes it out: out while
// its keys have a fault, with a probe subscription (no queue group) through
// which it inspects a few requests a second, unanswered, to see the fault
// end; a request opened from a server that has not rejected it brings it
// back.
type membership struct {
	r  *Relay
	nc *nats.Conn
	q  *queue[job]

	mu     sync.Mutex
	svc    micro.Service // nil while out of the queue group
	probe  *nats.Subscription
	events *nats.Subscription
	last   atomic.Int64 // unix nanos of the last request inspected by the probe
}

// inGroup reports whether the relay is in the queue group now.
func (m *membership) inGroup() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.svc != nil
}

// watch applies the fault's changes until done is closed.
func (m *membership) watch(done <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var skewLogged time.Time
	for {
		select {
		case <-done:
			return
		case <-m.r.keys.changed:
		case <-t.C:
			m.r.logSkew(&skewLogged)
		}
		m.apply()
	}
}

// apply leaves or rejoins the queue group as the fault says.
func (m *membership) apply() {
	fault := m.r.keys.fault(m.r.cfg.Now())
	// A fault can also begin with time passing (no request opened for
	// keyFailQuiet), with no request to notice it.
	m.r.keys.faulty.Store(fault != "")
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case fault != "" && m.svc != nil:
		m.r.log.Error("leaving the queue group: the server does not accept this relay's keys; healthy relays take the logins", "fault", fault)
		m.r.stopService(m.nc, m.svc, m.sideSubsLocked())
		m.svc = nil
		sub, err := m.nc.Subscribe(Subject, m.inspect)
		if err != nil {
			m.r.log.Error("probe subscription: the relay cannot see the fault end; restart it once its keys are fixed", "err", err)
			return
		}
		m.probe = sub
	case fault == "" && m.svc == nil:
		svc, err := m.r.addService(m.nc, m.q)
		if err != nil {
			m.r.log.Error("rejoin the queue group", "err", err)
			return
		}
		m.svc = svc
		if m.probe != nil {
			if err := m.probe.Unsubscribe(); err != nil {
				m.r.log.Warn("probe unsubscribe", "err", err)
			}
			m.probe = nil
		}
		m.r.log.Info("rejoined the queue group: the server accepts this relay's keys again")
	}
}

// sideSubsLocked counts the subscriptions other than the service's.
func (m *membership) sideSubsLocked() int {
	n := 0
	if m.probe != nil {
		n++
	}
	if m.events != nil {
		n++
	}
	return n
}

// inspect is the probe's handler: it opens at most one request every
// probeEvery, to measure the keys and the clock, and never answers.
func (m *membership) inspect(msg *nats.Msg) {
	now := time.Now().UnixNano()
	last := m.last.Load()
	if now-last < int64(probeEvery) || !m.last.CompareAndSwap(last, now) {
		return
	}
	m.r.open(job{msg: msg, received: m.r.cfg.Now()}, true)
}

// stop leaves the queue group for good at shutdown, draining the service's
// subscription, and drops the side subscriptions.
func (m *membership) stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range []**nats.Subscription{&m.probe, &m.events} {
		if *s != nil {
			if err := (*s).Unsubscribe(); err != nil && m.nc.IsConnected() {
				m.r.log.Warn("unsubscribe", "subject", (*s).Subject, "err", err)
			}
			*s = nil
		}
	}
	if m.svc != nil {
		m.r.stopService(m.nc, m.svc, 0)
		m.svc = nil
	}
}
