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
)

// decodeRequest opens (when sealed) and decodes an auth callout request and
// checks that it is one a nats-server could have sent at now: signed by the
// server key it names as its id, meant for auth callout, not expired, about
// a valid user nkey, and, when sealed, sealed with the xkey the server
// names. sealed tells whether the Nats-Server-Xkey header was present and
// serverXKey is its value. A request that fails is dropped unanswered.
func decodeRequest(xk *accounts.XKey, data []byte, sealed bool, serverXKey string, now time.Time) (*jwt.AuthorizationRequestClaims, error) {
	if len(data) > MaxRequestSize {
		return nil, fmt.Errorf("request is %d bytes, over the %d byte limit", len(data), MaxRequestSize)
	}
	switch {
	case sealed && xk == nil:
		return nil, errSealedNoXKey
	case !sealed && xk != nil:
		return nil, errUnsealed
	case sealed:
		if !nkeys.IsValidPublicCurveKey(serverXKey) {
			return nil, fmt.Errorf("request header xkey %q is not a public curve key", clip(serverXKey))
		}
		var err error
		if data, err = xk.Open(data, serverXKey); err != nil {
			return nil, err
		}
	}

	rc, err := jwt.DecodeAuthorizationRequestClaims(string(data))
	if err != nil {
		return nil, fmt.Errorf("decode request: %w", err)
	}
	if err := validateRequest(rc, sealed, serverXKey, now); err != nil {
		return nil, fmt.Errorf("validate request: %w", err)
	}
	return rc, nil
}

// validateRequest checks decoded request claims; see decodeRequest. The
// signature was verified by the decoder against rc.Issuer.
func validateRequest(rc *jwt.AuthorizationRequestClaims, sealed bool, serverXKey string, now time.Time) error {
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
	// The server always sets exp (now + auth timeout); without one the
	// relay would have no deadline.
	if rc.Expires == 0 {
		return errors.New("request has no expiry")
	}
	if now.Unix() > rc.Expires {
		return fmt.Errorf("request expired at %s", time.Unix(rc.Expires, 0).UTC().Format(time.RFC3339))
	}
	if rc.NotBefore > 0 && rc.NotBefore > now.Unix() {
		return errors.New("request is not yet valid")
	}
	if sealed && rc.Server.XKey != serverXKey {
		return fmt.Errorf("header xkey %q is not the server's xkey %q", serverXKey, clip(rc.Server.XKey))
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
