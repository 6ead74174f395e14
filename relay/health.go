package relay

import (
	"fmt"
	"time"

	"github.com/authrelay/authrelay/accounts"
	"github.com/nats-io/nats.go"
)

// Health is what the relay knows about faults that fail logins without
// failing its connection: a server's clock beyond the skew tolerance, and
// keys the server does not accept.
type Health struct {
	// Skew is the measurement of the server whose clock is furthest from
	// the relay's, among those a request came from in the last minute;
	// SkewKnown is false when there is none.
	Skew      ClockSkew
	SkewKnown bool
	// MaxClockSkew is the tolerance (Config.MaxClockSkew).
	MaxClockSkew time.Duration
	// SkewRejected counts requests dropped because their issue time was
	// beyond the tolerance.
	SkewRejected uint64
	// KeyFault, when not empty, says why the server does not accept the
	// relay's keys; the relay is then out of the queue group.
	KeyFault string
	// InQueueGroup is true while the relay takes its share of the logins.
	InQueueGroup bool
	// KeyFailures counts requests not opened with the relay's keys;
	// AnswersRejected the relay's answers the server reported rejecting.
	KeyFailures, AnswersRejected uint64
}

// ClockFault returns why the skew fails logins, or "" when it does not (or
// nothing is known yet).
func (h Health) ClockFault() string {
	if !h.SkewKnown || !h.Skew.beyond(h.MaxClockSkew) {
		return ""
	}
	return fmt.Sprintf("%s; the relay drops its requests", h.Skew.describe(h.MaxClockSkew))
}

// describe says how far the relay's clock is from the server's.
func (c ClockSkew) describe(tolerance time.Duration) string {
	dir := "ahead of"
	if c.Skew < 0 {
		dir = "behind"
	}
	name := c.ServerName
	if name == "" || name == c.ServerID {
		name = c.ServerID
	} else {
		name = fmt.Sprintf("%q (%s)", name, c.ServerID)
	}
	return fmt.Sprintf("this relay's clock is %v (±%v) %s server %s's, tolerance %v",
		c.Skew.Abs().Round(10*time.Millisecond), c.Resolution.Round(10*time.Millisecond), dir, name, tolerance)
}

// Health returns the relay's view of the faults it can detect. It is safe
// to call at any time.
func (r *Relay) Health() Health {
	now := r.cfg.Now()
	h := Health{
		MaxClockSkew:    r.cfg.MaxClockSkew,
		SkewRejected:    r.skewRejected.Load(),
		KeyFault:        r.keys.fault(now),
		KeyFailures:     r.keys.keyFailures.Load(),
		AnswersRejected: r.keys.rejections.Load(),
	}
	h.Skew, h.SkewKnown = r.skew.worst(now)
	if m := r.member.Load(); m != nil {
		h.InQueueGroup = m.inGroup()
	}
	return h
}

// authErrorEvent handles the server's report of a refused login: when it
// is a rejection of this relay's answer, the keys have a fault.
func (r *Relay) authErrorEvent(msg *nats.Msg) {
	now := r.cfg.Now()
	ev, rejected := r.keys.authErrorEvent(msg.Data, now)
	if !rejected {
		return
	}
	// The relay counted and audited its answer when it sent it; the
	// server's verdict overrides it: the login failed.
	if o := r.cfg.Observer; o != nil {
		o.Decision(Observation{Reason: ReasonRejectedByServer})
	}
	if a := r.cfg.Audit; a != nil {
		a.Record(accounts.LoginEvent{
			Time: now, User: clip(ev.Client.User), Host: clip(ev.Client.Host),
			ServerID: clip(ev.Server.ID), ClientID: ev.Client.ID, Reason: ReasonRejectedByServer,
		})
	}
	if r.rejWarn.allow() {
		r.log.Error("the server rejected this relay's answer: its auth_callout.issuer is not this relay's issuer key",
			"server", clip(ev.Server.Name), "server_id", clip(ev.Server.ID), "client_id", ev.Client.ID,
			"reason", clip(ev.Reason), "issuer", r.cfg.Issuer.PublicKey(),
			"answers_rejected_total", r.keys.rejections.Load())
	}
}

// logSkew logs a skew above SkewWarnThreshold when it appears, once a
// minute while it lasts, and when it is gone.
func (r *Relay) logSkew(lastLog *time.Time) {
	c, ok := r.skew.worst(r.cfg.Now())
	high := ok && c.Skew.Abs()-c.Resolution > SkewWarnThreshold
	switch {
	case high && (!r.skewLogged.Load() || time.Since(*lastLog) >= time.Minute):
		r.skewLogged.Store(true)
		*lastLog = time.Now()
		level := "warn"
		msg := "clock skew: logins still work within the tolerance; sync the clocks (NTP)"
		if c.beyond(r.cfg.MaxClockSkew) {
			level = "error"
			msg = "clock skew beyond tolerance: requests from the server are dropped and its logins fail; sync the clocks (NTP)"
		}
		attrs := []any{"skew", c.Skew.Round(time.Millisecond), "resolution", c.Resolution.Round(time.Millisecond),
			"server", c.ServerName, "server_id", c.ServerID, "max_clock_skew", r.cfg.MaxClockSkew,
			"detail", c.describe(r.cfg.MaxClockSkew)}
		if level == "error" {
			r.log.Error(msg, attrs...)
		} else {
			r.log.Warn(msg, attrs...)
		}
	case !high && ok && r.skewLogged.Load():
		r.skewLogged.Store(false)
		r.log.Info("clock skew back within the warning threshold", "skew", c.Skew.Round(time.Millisecond),
			"resolution", c.Resolution.Round(time.Millisecond), "server_id", c.ServerID)
	}
}
