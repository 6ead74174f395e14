package idp

import (
	"errors"
	"fmt"

	"github.com/authrelay/authrelay/accounts"
)

// ErrInvalidToken is what every refusal of a token wraps: the token is not
// one the provider issued for this audience, or not now, or its claims do
// not name a user. The relay answers it with bad_credentials.
var ErrInvalidToken = errors.New("invalid token")

// ErrUnavailable is what a refusal wraps when the provider's keys could not
// be had in time: discovery or the key set fetch failed or timed out, or the
// keys are older than Options.MaxKeyAge. The token may be good; the relay
// answers it with idp_unavailable.
var ErrUnavailable = errors.New("identity provider unavailable")

// ErrClosed is returned by a Verifier that has been closed.
var ErrClosed = errors.New("verifier closed")

// Reason says which check refused a token, for the relay's log line and
// audit row; it is a short fixed word, never a value from the token.
type Reason string

// The reasons Verify gives. Each but ReasonUnavailable wraps ErrInvalidToken.
const (
	ReasonMalformed     Reason = "malformed"      // not a compact JWS, too long, bad JSON
	ReasonAlgorithm     Reason = "algorithm"      // alg none, HMAC, or another alg authrelay does not accept
	ReasonTokenType     Reason = "token_type"     // a typ header other than JWT or at+jwt
	ReasonUnknownIssuer Reason = "unknown_issuer" // no provider of the Set has the token's issuer and audience
	ReasonIssuer        Reason = "issuer"         // iss is not the provider's issuer
	ReasonAudience      Reason = "audience"       // aud does not hold the provider's audience
	ReasonExpired       Reason = "expired"        // exp is missing or not in the future
	ReasonNotYetValid   Reason = "not_yet_valid"  // nbf or iat later than now plus the leeway
	ReasonUnknownKey    Reason = "unknown_key"    // no key of the provider's key set has the token's kid
	ReasonSignature     Reason = "signature"      // the signature does not verify with the provider's key
	ReasonClaims        Reason = "claims"         // sub or the username claim missing or not a valid name
	ReasonUnavailable   Reason = "unavailable"    // the provider's keys could not be had; wraps ErrUnavailable
)

// Error is the error Verify returns. Its message names the provider and
// what was wrong; it never holds the token, a signature or key material,
// and any value taken from the token (an issuer, a key id) is clipped and
// quoted first.
type Error struct {
	Provider string // the provider's name; empty when a Set found none
	Reason   Reason
	msg      string
}

func (e *Error) Error() string {
	if e.Provider == "" {
		return "verify token: " + e.msg
	}
	return "verify token from " + e.Provider + ": " + e.msg
}

// Unwrap returns ErrUnavailable for ReasonUnavailable and ErrInvalidToken
// for every other reason.
func (e *Error) Unwrap() error {
	if e.Reason == ReasonUnavailable {
		return ErrUnavailable
	}
	return ErrInvalidToken
}

// ReasonOf returns the Reason of err if it is or wraps an *Error, and ""
// otherwise.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

func refuse(provider string, reason Reason, format string, args ...any) *Error {
	return &Error{Provider: provider, Reason: reason, msg: fmt.Sprintf(format, args...)}
}

// tokenText is how a value read from a token appears in an error: clipped
// and quoted, so it can neither be long nor forge a log line.
func tokenText(s string) string {
	return accounts.Quote(accounts.Clip(s, 64))
}

// remoteText is how an error from fetching the provider's documents appears
// in an error or log line: one line, clipped, control characters escaped
// (go-oidc puts a failed response's body into its errors).
func remoteText(err error) string {
	return accounts.EscapeControl(accounts.Clip(err.Error(), 200))
}
