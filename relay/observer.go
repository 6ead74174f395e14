package relay

import "time"

// Observer is told of every decision the relay sends, for metrics. Decision
// is called on the decision path, after the answer is published: it must
// not block. It is also told, with Reason ReasonRejectedByServer and no
// latency, of each answer the server reported rejecting.
type Observer interface {
	Decision(o Observation)
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
