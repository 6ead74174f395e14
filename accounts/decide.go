package accounts

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Denial reasons: the codes a refused login is given. The relay puts one
// into the error field of a denying response; nats-server writes it to its
// log and to the $SYS.ACCOUNT.CLIENT.AUTH.ERR event in the callout account.
// The client only ever sees "Authorization Violation". Decide gives those
// that follow from the user data, the client and the clock; the relay adds
// those of its own steps (credentials, lockouts, load).
const (
	// ReasonBadCredentials means the user is unknown or the password is
	// wrong; the two are deliberately not told apart.
	ReasonBadCredentials = "bad_credentials"
	// ReasonUserDisabled means the credentials matched a disabled user.
	ReasonUserDisabled = "user_disabled"
	// ReasonUserExpired means the credentials matched a user whose own
	// expiry has passed.
	ReasonUserExpired = "user_expired"
	// ReasonNoCredentials means the CONNECT carried no username or no
	// password, for example only a token or an nkey.
	ReasonNoCredentials = "no_credentials"
	// ReasonAccountReserved means the user's account is one of the
	// reserved accounts (the callout or system account): the user data is
	// wrong, not the client.
	ReasonAccountReserved = "account_reserved"
	// ReasonAccountNotAllowed means, in operator mode, that the user's
	// account is not one the relay may place users in: the callout
	// account's JWT does not list it in allowed_accounts, or authrelay
	// holds none of its signing keys (accounts.ErrAccountNotAllowed). The
	// user data or the deployment is wrong, not the client.
	ReasonAccountNotAllowed = "account_not_allowed"
	// ReasonInternalError means no grant could be made: the user has no
	// account, holds a role that does not exist, its login response would
	// be too large for the server, or the relay or its store failed.
	ReasonInternalError = "internal_error"
	// ReasonTemplateUnsafe means a subject template would have expanded the
	// user's name (or account) into more than one subject token, such as a
	// name containing '.', '*' or '>'.
	ReasonTemplateUnsafe = "template_unsafe"
	// ReasonSourceNotAllowed means the client connected from outside the
	// user's source networks (--src).
	ReasonSourceNotAllowed = "source_not_allowed"
	// ReasonConnTypeNotAllowed means the client's connection type is not
	// among the user's (--conn-type).
	ReasonConnTypeNotAllowed = "conn_type_not_allowed"
	// ReasonLockedOut means the login is locked out after repeated failed
	// logins: of the username from the client's address, from the address
	// over any names, or of the username from everywhere (not applied at
	// the addresses the user logged in from recently). The user's real hash
	// is not tried; a dummy verification makes it cost what a wrong
	// password costs, and the client sees the same Authorization Violation.
	ReasonLockedOut = "locked_out"
	// ReasonOverloaded means the relay could not verify the password
	// before the server's deadline, as too many verifications were waiting;
	// it says nothing about the credentials. The client library retries.
	ReasonOverloaded = "overloaded"
	// ReasonRejectedByServer is not an answer the relay sends: it is how
	// the relay counts and audits a login whose answer the server
	// rejected, for a signing key it does not know.
	ReasonRejectedByServer = "rejected_by_server"
)

// errNoAccount is Admissible's cause for a user without an account.
var errNoAccount = errors.New("user has no account")

// Admissible returns the reason u, whose password matched, may not log in
// at now whatever its grant, and its cause, or "" and nil: disabled
// (ReasonUserDisabled), expired (ReasonUserExpired), without an account
// (ReasonInternalError) or in one of reserved (ReasonAccountReserved). It
// is Decide's first step, for a caller that reads the user's roles only
// when they can matter.
func Admissible(u User, reserved []string, now time.Time) (string, error) {
	switch err := u.Check(now); {
	case errors.Is(err, ErrUserDisabled):
		return ReasonUserDisabled, err
	case errors.Is(err, ErrUserExpired):
		return ReasonUserExpired, err
	case err != nil:
		return ReasonInternalError, err
	case u.Account == "":
		return ReasonInternalError, errNoAccount
	case slices.Contains(reserved, u.Account):
		return ReasonAccountReserved, fmt.Errorf("user's account %q is reserved", u.Account)
	}
	return "", nil
}

// Resolution is the outcome of Resolve for a user and its roles.
type Resolution struct {
	Grant Grant
	Err   error
}

// Login is one login, whose password matched, for Decide to decide.
type Login struct {
	User User
	// Roles are the roles User holds, as the store has them. Decide
	// resolves the grant from them unless Resolved is set.
	Roles []Role
	// Resolution, when Resolved, is Resolve(User, Roles) made before (the
	// relay's credential cache keeps it); Roles is then not read.
	Resolution Resolution
	Resolved   bool
	// Reserved are the accounts no user may be placed in.
	Reserved []string
	// Client is the connecting client, checked against the user's source
	// networks and connection types when CheckClient is set.
	Client      Client
	CheckClient bool
	// Now is the time of the login.
	Now time.Time
	// Issuer, when set, places the user: an account it cannot place users
	// in (operator mode: not in the callout account's allowed_accounts, or
	// no signing key held) is ReasonAccountNotAllowed. With MaxPayload set
	// too, it checks the size of the login response against the server's
	// limit (Issuer.CheckResponseSize).
	Issuer     *Issuer
	MaxPayload int
}

// Verdict is Decide's answer.
type Verdict struct {
	// Reason is the denial reason, "" when the login is allowed.
	Reason string
	// Err says why in words when Reason is not "".
	Err error
	// Resolved tells whether Grant was resolved: it is not when the login
	// is refused before the grant matters (Admissible).
	Resolved bool
	// Grant is the merged grant and GrantErr Resolve's error, when
	// Resolved; a GrantErr gives ReasonTemplateUnsafe or
	// ReasonInternalError.
	Grant    Grant
	GrantErr error
	// ResponseBytes is the size of the login response when it was checked
	// (Issuer and MaxPayload set, and the grant admitted), else 0.
	ResponseBytes int
}

// Decide decides a login whose password matched, as the relay does: the
// user's own state and account (Admissible), its grant (an unsafe template
// or an unknown role), the client (source networks and connection types,
// when l.CheckClient is set), the account's placement (when l.Issuer is
// set) and the size of the login response (when l.Issuer and l.MaxPayload
// are set), in that order; the first that fails gives the
// reason. The relay and 'user explain' both decide with it.
func Decide(l *Login) Verdict {
	if reason, err := Admissible(l.User, l.Reserved, l.Now); reason != "" {
		return Verdict{Reason: reason, Err: err}
	}
	res := l.Resolution
	if !l.Resolved {
		res.Grant, res.Err = Resolve(l.User, l.Roles)
	}
	switch {
	case errors.Is(res.Err, ErrUnsafeTemplate):
		return Verdict{Reason: ReasonTemplateUnsafe, Err: res.Err, Resolved: true, GrantErr: res.Err}
	case res.Err != nil:
		return Verdict{Reason: ReasonInternalError, Err: res.Err, Resolved: true, GrantErr: res.Err}
	}
	v := Verdict{Resolved: true, Grant: res.Grant}
	if l.CheckClient {
		switch err := res.Grant.Admit(l.Client); {
		case errors.Is(err, ErrSourceNotAllowed):
			v.Reason, v.Err = ReasonSourceNotAllowed, err
			return v
		case errors.Is(err, ErrConnTypeNotAllowed):
			v.Reason, v.Err = ReasonConnTypeNotAllowed, err
			return v
		case err != nil:
			v.Reason, v.Err = ReasonInternalError, err
			return v
		}
	}
	if l.Issuer != nil {
		if err := l.Issuer.Placeable(l.User.Account); err != nil {
			v.Reason, v.Err = ReasonAccountNotAllowed, err
			return v
		}
	}
	if l.Issuer != nil && l.MaxPayload > 0 {
		n, err := l.Issuer.CheckResponseSize(l.User.Name, res.Grant, l.Now, l.MaxPayload)
		v.ResponseBytes = n
		if err != nil {
			// The relay refuses it rather than send what the server
			// would drop.
			v.Reason, v.Err = ReasonInternalError, err
		}
	}
	return v
}
