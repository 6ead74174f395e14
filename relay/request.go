package relay

import (
	"errors"
	"fmt"
	"time"

	"github.com/authrelay/authrelay/accounts"
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// requestAudience is the audience nats-server puts on every auth callout
// request.
const requestAudience = "nats-authorization-request"

// MaxRequestSize bounds the bytes of one request the relay will open and
// decode. A real request is a few kilobytes, more when it carries client
// certificate chains; anything larger is dropped before any work is spent.
const MaxRequestSize = 256 << 10

// Reasons a request is dropped without an answer. They name no secret and
// echo no request bytes, so they may be logged.
var (
	errSealedNoXKey = errors.New("request is sealed but the relay has no xkey: configure the relay with the xkey seed matching auth_callout.xkey")
	errUnsealed     = errors.New("request is not sealed: the server config lacks auth_callout.xkey")
	// errClockSkew marks a request whose issue time, by the relay's clock,
	// lies beyond the clock skew tolerance (Config.MaxClockSkew).
	errClockSkew = errors.New("clock skew beyond tolerance")
)

// keyMismatch marks a request the relay could not open with its keys: the
// server sealed it to another xkey, or sealing is on at one end only. It
// says nothing about the request's content, which was never read.
type keyMismatch struct{ err error }

func (e keyMismatch) Error() string { return e.err.Error() }
func (e keyMismatch) Unwrap() error { return e.err }

// decodeRequest opens (when sealed) and decodes an auth callout request and
// checks that it is one a nats-server could have sent at now: signed by the
// server key it names as its id, meant for auth callout, not expired, about
// a valid user nkey, and, when sealed, sealed with the xkey the server
// names. sealed tells whether the Nats-Server-Xkey header was present and
// serverXKey is its value. A request that fails is dropped unanswered.
//
// The request's times are the server's clock, the relay's now its own: the
// request is accepted while its issue time is within maxSkew of now (see
// checkTimes). A request refused for that alone (errClockSkew) is returned
// with the error, so that the relay can measure the skew from it.
func decodeRequest(xk *accounts.XKey, data []byte, sealed bool, serverXKey string, now time.Time, maxSkew time.Duration) (*jwt.AuthorizationRequestClaims, error) {
	if len(data) > MaxRequestSize {
		return nil, fmt.Errorf("request is %d bytes, over the %d byte limit", len(data), MaxRequestSize)
	}
	switch {
	case sealed && xk == nil:
		return nil, keyMismatch{errSealedNoXKey}
	case !sealed && xk != nil:
		return nil, keyMismatch{errUnsealed}
	case sealed:
		if !nkeys.IsValidPublicCurveKey(serverXKey) {
			return nil, fmt.Errorf("request header xkey %q is not a public curve key", clip(serverXKey))
		}
		var err error
		if data, err = xk.Open(data, serverXKey); err != nil {
			return nil, keyMismatch{err}
		}
	}

	rc, err := jwt.DecodeAuthorizationRequestClaims(string(data))
	if err != nil {
		return nil, fmt.Errorf("decode request: %w", err)
	}
	if err := validateRequest(rc, sealed, serverXKey); err != nil {
		return nil, fmt.Errorf("validate request: %w", err)
	}
	if err := checkTimes(rc, now, maxSkew); err != nil {
		if errors.Is(err, errClockSkew) {
			return rc, fmt.Errorf("validate request: %w", err)
		}
		return nil, fmt.Errorf("validate request: %w", err)
	}
	return rc, nil
}

// validateRequest checks decoded request claims, all but their times; see
// decodeRequest. The signature was verified by the decoder against
// rc.Issuer.
func validateRequest(rc *jwt.AuthorizationRequestClaims, sealed bool, serverXKey string) error {
	if !nkeys.IsValidPublicServerKey(rc.Issuer) {
		return fmt.Errorf("issuer %q is not a server key", clip(rc.Issuer))
	}
	if rc.Issuer != rc.Server.ID {
		return fmt.Errorf("issuer %q is not the server id %q", rc.Issuer, clip(rc.Server.ID))
	}
	if rc.Audience != requestAudience {
		return fmt.Errorf("audience %q is not %q", clip(rc.Audience), requestAudience)
	}
	// jwt's Validate checks times against the wall clock; the relay checks
	// them against its own (injectable) clock below, so only blocking
	// issues count here.
	vr := jwt.CreateValidationResults()
	rc.Validate(vr)
	if errs := vr.Errors(); len(errs) > 0 {
		return fmt.Errorf("invalid claims: %s", clip(errs[0].Error()))
	}
	if sealed && rc.Server.XKey != serverXKey {
		return fmt.Errorf("header xkey %q is not the server's xkey %q", serverXKey, clip(rc.Server.XKey))
	}
	return nil
}

// checkTimes checks the request's times, set by the server's clock,
// against now on the relay's. The server sets iat (whole seconds, floor of
// its send time) and exp (iat plus its authorization timeout) on every
// request. The relay does not compare exp with its own clock: a relay
// clock a few seconds ahead would find every request expired on arrival.
// It bounds the skew instead: the server sent the request within
// [iat, iat+1s) on its clock, so a request received at now implies a
// relay-minus-server offset (skew plus transit) in (now-iat-1s, now-iat].
// The request is refused only when that whole interval lies beyond
// maxSkew, ahead or behind. How long the relay may take to answer is the
// relay's own business (see open): it counts from its own receive time.
func checkTimes(rc *jwt.AuthorizationRequestClaims, now time.Time, maxSkew time.Duration) error {
	if rc.IssuedAt == 0 {
		return errors.New("request has no issue time")
	}
	// Without an expiry the relay would not know the server's timeout.
	if rc.Expires == 0 {
		return errors.New("request has no expiry")
	}
	if rc.Expires < rc.IssuedAt {
		return fmt.Errorf("request expired before it was issued (exp %d, iat %d)", rc.Expires, rc.IssuedAt)
	}
	offset := now.Sub(time.Unix(rc.IssuedAt, 0))
	switch {
	case offset-time.Second > maxSkew:
		return fmt.Errorf("%w: request issued at %s, %v ago by this relay's clock: the relay's clock is more than %v ahead of the server's, or the request waited that long; sync the clocks (NTP)",
			errClockSkew, time.Unix(rc.IssuedAt, 0).UTC().Format(time.RFC3339), (offset - time.Second).Round(time.Millisecond), maxSkew)
	case offset < -maxSkew:
		return fmt.Errorf("%w: request issued at %s, %v in the future by this relay's clock: the relay's clock is more than %v behind the server's; sync the clocks (NTP)",
			errClockSkew, time.Unix(rc.IssuedAt, 0).UTC().Format(time.RFC3339), (-offset).Round(time.Millisecond), maxSkew)
	}
	if rc.NotBefore > 0 && time.Unix(rc.NotBefore, 0).After(now.Add(maxSkew)) {
		return errors.New("request is not yet valid")
	}
	return nil
}

// maxLogField is the longest request-supplied string the relay puts into a
// log line, an audit row or an error.
const maxLogField = accounts.MaxClientText

// clip shortens a request-supplied string for a log line, audit row or
// error, so that a hostile request cannot flood the log; it never cuts a
// rune in half. It does not escape: slog's handlers quote values that hold
// control characters, errors quote with %q, and the audit's readers escape
// what they print (accounts.ClientText).
func clip(s string) string {
	return accounts.Clip(s, maxLogField)
}
