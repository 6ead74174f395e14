package relay

import (
	"github.com/authrelay/authrelay/accounts"
	"github.com/nats-io/jwt/v2"
)

// malformed reports whether a denial with reason refused rc's credentials
// without looking a user up: no username or password, a name that is not a
// valid username, or a password over the length limit. The store refuses
// the last two as bad credentials before reading anything or hashing, also
// while the name or address is locked out, so they cost the relay nothing
// and tell an admin nothing one row each; the audit trail counts their
// repeats (accounts.LoginEvent.Malformed).
func malformed(rc *jwt.AuthorizationRequestClaims, reason string) bool {
	switch reason {
	case ReasonNoCredentials:
		return true
	case ReasonBadCredentials, ReasonLockedOut:
		// Locked out or not, the store refuses these before any hash.
		co := rc.ConnectOptions
		return accounts.ValidateName(co.Username) != nil || len(co.Password) > accounts.MaxPasswordLen
	}
	return false
}
