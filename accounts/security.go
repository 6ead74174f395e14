package accounts

import (
	"fmt"
	"time"
)

// MaxPasswordLen is the longest password, in bytes, that authrelay stores or
// verifies; a login with a longer one is refused without a lookup.
const MaxPasswordLen = 1024

// LoginEvent is one authorization decision, as the audit trail keeps it.
// It never holds a password.
type LoginEvent struct {
	Time     time.Time     `json:"time"`
	User     string        `json:"user"`
	Account  string        `json:"account,omitempty"`
	Host     string        `json:"client_host"`
	ServerID string        `json:"server_id"`
	ClientID uint64        `json:"client_id"`
	ConnType string        `json:"conn_type"`
	Allowed  bool          `json:"allowed"`
	Reason   string        `json:"reason,omitempty"`
	Latency  time.Duration `json:"latency_ns"`
	// Malformed means the credentials were refused without looking a
	// user up: no username or password, a name that is not a valid
	// username, or a password over the length limit. The audit trail
	// counts repeats of such denials into one row.
	Malformed bool `json:"malformed,omitempty"`
}

// LockoutPolicy says when repeated failed logins lock a username or a
// client address, and for how long.
type LockoutPolicy struct {
	// Threshold failures of one username within Window lock that username.
	Threshold int
	// AddrThreshold failures from one client address within Window, over
	// any usernames, lock that address (password spraying).
	AddrThreshold int
	// Window is how far back failures count.
	Window time.Duration
	// Duration is the first lockout's length; each further lockout of the
	// same key doubles it, up to MaxDuration.
	Duration    time.Duration
	MaxDuration time.Duration
}

// DefaultLockoutPolicy is the policy serve uses unless told otherwise: 5
// wrong passwords for a name, or 50 from one address, within 15 minutes
// lock it for 1 minute, then 2, 4, … up to an hour.
var DefaultLockoutPolicy = LockoutPolicy{
	Threshold:     5,
	AddrThreshold: 50,
	Window:        15 * time.Minute,
	Duration:      time.Minute,
	MaxDuration:   time.Hour,
}

// Validate reports a policy that cannot work.
func (p LockoutPolicy) Validate() error {
	switch {
	case p.Threshold < 0 || p.AddrThreshold < 0:
		return fmt.Errorf("lockout thresholds must not be negative (0 turns that lockout off)")
	case p.Window <= 0 && (p.Threshold > 0 || p.AddrThreshold > 0):
		return fmt.Errorf("lockout window %v: give a positive duration such as 15m", p.Window)
	case p.Duration <= 0 && (p.Threshold > 0 || p.AddrThreshold > 0):
		return fmt.Errorf("lockout duration %v: give a positive duration such as 1m", p.Duration)
	case p.MaxDuration < p.Duration:
		return fmt.Errorf("maximum lockout %v is shorter than the first lockout %v", p.MaxDuration, p.Duration)
	}
	return nil
}

// LockFor returns how long the locks-th lockout (1 for the first) of a key
// lasts: Duration doubled for each earlier lockout, capped at MaxDuration.
func (p LockoutPolicy) LockFor(locks int) time.Duration {
	d := p.Duration
	for i := 1; i < locks && d < p.MaxDuration; i++ {
		d *= 2
	}
	return min(d, p.MaxDuration)
}
