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

// LockoutPolicy says when repeated failed logins lock a key out, and for
// how long. It follows the "smart lockout" of large identity providers, so
// that an attacker who knows a username but not its password cannot lock
// the user's own clients out:
//
//   - Threshold failures of one username from one client address (a pair)
//     lock that pair: the attacker's address is refused for that name,
//     even with the right password, while the user's own addresses are not.
//   - AddrThreshold failures from one client address, over any usernames,
//     lock the address for every name (password spraying).
//   - UserThreshold failures of one username from all addresses together,
//     set much higher, lock the username (guessing spread over many
//     addresses), except from the addresses where the user logged in
//     successfully within KnownFor.
//
// A lockout only refuses new logins; it never closes live connections.
// IPv6 addresses count per IPv6Prefix (a /64 by default), so that rotating
// through the addresses of one prefix counts as one address.
type LockoutPolicy struct {
	// Threshold failures of one username from one client address within
	// Window lock that pair.
	Threshold int
	// AddrThreshold failures from one client address, over any usernames,
	// within Window lock that address.
	AddrThreshold int
	// UserThreshold failures of one username, from any addresses, within
	// Window lock that username for the addresses it is not known at.
	UserThreshold int
	// KnownFor is how long an address where the user logged in successfully
	// stays exempt from the username's lock; 0 exempts no address.
	KnownFor time.Duration
	// IPv6Prefix is the prefix length IPv6 client addresses are counted
	// under (1 to 128); 0 means DefaultIPv6Prefix.
	IPv6Prefix int
	// Window is how far back failures count.
	Window time.Duration
	// Duration is the first lockout's length; each further lockout of the
	// same key doubles it, up to MaxDuration.
	Duration    time.Duration
	MaxDuration time.Duration
}

// DefaultIPv6Prefix is the prefix length IPv6 client addresses are counted
// under unless the policy says otherwise: a /64 is what one site or one
// host usually gets.
const DefaultIPv6Prefix = 64

// DefaultLockoutPolicy is the policy serve uses unless told otherwise: 5
// failed logins of a name from one address, 50 from one address over any
// names, or 100 of a name from anywhere (except the addresses it logged in
// from within 30 days), within 15 minutes, lock that key for 1 minute,
// then 2, 4, … up to an hour.
var DefaultLockoutPolicy = LockoutPolicy{
	Threshold:     5,
	AddrThreshold: 50,
	UserThreshold: 100,
	KnownFor:      30 * 24 * time.Hour,
	IPv6Prefix:    DefaultIPv6Prefix,
	Window:        15 * time.Minute,
	Duration:      time.Minute,
	MaxDuration:   time.Hour,
}

// Validate reports a policy that cannot work.
func (p LockoutPolicy) Validate() error {
	on := p.Threshold > 0 || p.AddrThreshold > 0 || p.UserThreshold > 0
	switch {
	case p.Threshold < 0 || p.AddrThreshold < 0 || p.UserThreshold < 0:
		return fmt.Errorf("lockout thresholds must not be negative (0 turns that lockout off)")
	case p.Window <= 0 && on:
		return fmt.Errorf("lockout window %v: give a positive duration such as 15m", p.Window)
	case p.Duration <= 0 && on:
		return fmt.Errorf("lockout duration %v: give a positive duration such as 1m", p.Duration)
	case p.MaxDuration < p.Duration:
		return fmt.Errorf("maximum lockout %v is shorter than the first lockout %v", p.MaxDuration, p.Duration)
	case p.KnownFor < 0:
		return fmt.Errorf("lockout known-address period %v must not be negative (0 exempts no address)", p.KnownFor)
	case p.IPv6Prefix < 0 || p.IPv6Prefix > 128:
		return fmt.Errorf("lockout IPv6 prefix /%d: give a prefix length from 1 to 128, such as 64", p.IPv6Prefix)
	}
	return nil
}

// V6Prefix returns the prefix length IPv6 addresses are counted under.
func (p LockoutPolicy) V6Prefix() int {
	if p.IPv6Prefix == 0 {
		return DefaultIPv6Prefix
	}
	return p.IPv6Prefix
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

// Failure is what a refused login was, for the lockout counts.
type Failure int

const (
	// FailedPassword is an unknown user or a wrong password: a guess.
	FailedPassword Failure = iota
	// FailedLocked is an attempt refused because it was locked out; its
	// password was not verified.
	FailedLocked
	// FailedRefused is a login refused after its password matched:
	// disabled, expired, from a network or connection type not allowed.
	FailedRefused
)

// CountsForUser reports whether a failure of kind f counts against the
// username across all addresses. Only guesses do: a client retrying while
// locked, or a disabled user's client, must not be able to lock the user
// out everywhere; they count against their own address and pair.
func (f Failure) CountsForUser() bool {
	return f == FailedPassword
}
