package accounts

import (
	"fmt"
	"time"

	"github.com/nats-io/nkeys"
	"golang.org/x/crypto/nacl/box"
)

// SealOverhead is what sealing an authorization response to the server's
// xkey adds to it: the version prefix, the nonce and the box's tag.
const SealOverhead = xkeyHeaderLen + box.Overhead

// DefaultMaxPayload is nats-server's max_payload when its config sets none
// (1 MiB). The server's client connections, the relay's included, refuse a
// message larger than it: a login response over it is never delivered.
const DefaultMaxPayload = 1 << 20

// sizingTTL is the session lifetime ResponseSize assumes: any positive one
// puts an expiry in the JWT, and every expiry until the year 2286 has the
// same number of digits.
const sizingTTL = time.Hour

// ResponseSize returns the size in bytes of the largest authorization
// response the relay sends for a login granted g at now: the user JWT that
// UserClaims and IssueUserJWT make, with an expiry (as under any session
// TTL), carried in the signed response Respond makes, sealed to the
// server's xkey (SealOverhead; an unsealed response is smaller). The keys
// of the connection and the server are freshly made ones of the length
// every such key has, so only the grant and the issuer's placement change
// the result. The admin commands compare it with the server's max_payload
// before they store a grant (CheckResponseSize); a grant whose response is
// larger could never log in.
func (i *Issuer) ResponseSize(g Grant, now time.Time) (int, error) {
	user, err := nkeys.CreateUser()
	if err != nil {
		return 0, fmt.Errorf("size login response: %w", err)
	}
	userKey, err := user.PublicKey()
	if err != nil {
		return 0, fmt.Errorf("size login response: %w", err)
	}
	srv, err := nkeys.CreateServer()
	if err != nil {
		return 0, fmt.Errorf("size login response: %w", err)
	}
	serverID, err := srv.PublicKey()
	if err != nil {
		return 0, fmt.Errorf("size login response: %w", err)
	}
	uc, err := i.UserClaims(g, userKey, now, sizingTTL)
	if err != nil {
		return 0, fmt.Errorf("size login response: %w", err)
	}
	token, err := i.IssueUserJWT(uc)
	if err != nil {
		return 0, fmt.Errorf("size login response: %w", err)
	}
	resp, err := i.Respond(serverID, userKey, token, "")
	if err != nil {
		return 0, fmt.Errorf("size login response: %w", err)
	}
	return len(resp) + SealOverhead, nil
}

// ResponseTooLargeError is a login response larger than the server
// accepts: Size bytes, over the server's max_payload Limit. User names
// whose grant it is, when known.
type ResponseTooLargeError struct {
	User        string
	Size, Limit int
}

func (e *ResponseTooLargeError) Error() string {
	who := "the login response"
	if e.User != "" {
		who = fmt.Sprintf("the login response for %s", e.User)
	}
	return fmt.Sprintf("%s would be %d bytes, over the server's max_payload of %d bytes: nats-server would refuse it and every login would time out; grant fewer or shorter subjects (or raise max_payload in nats.conf)", who, e.Size, e.Limit)
}

// CheckResponseSize returns the size of the response a login granted g at
// now gets (ResponseSize) and, when it is over limit bytes, a
// *ResponseTooLargeError naming user.
func (i *Issuer) CheckResponseSize(user string, g Grant, now time.Time, limit int) (int, error) {
	n, err := i.ResponseSize(g, now)
	if err != nil {
		return 0, err
	}
	if n > limit {
		return n, &ResponseTooLargeError{User: user, Size: n, Limit: limit}
	}
	return n, nil
}
