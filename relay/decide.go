package relay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/authrelay/authrelay/accounts"
	"github.com/nats-io/jwt/v2"
)

// Denial reasons. The relay puts one into the error field of a denying
// response; nats-server writes it to its log and to the
// $SYS.ACCOUNT.CLIENT.AUTH.ERR event in the callout account. The client only
// ever sees "Authorization Violation".
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
	// ReasonAccountReserved means the user's account is one of
	// Config.ReservedAccounts: the user data is wrong, not the client.
	ReasonAccountReserved = "account_reserved"
	// ReasonInternalError means the relay could not decide, for example
	// because the user store failed.
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
	// ReasonLockedOut means the username or the client address is locked
	// out after repeated failed logins. The attempt costs the same as a
	// wrong password and the client sees the same Authorization Violation.
	ReasonLockedOut = "locked_out"
)

// Results logged for each decision.
const (
	resultAllow = "allow"
	resultDeny  = "deny"
)

// decision is the outcome for one request.
type decision struct {
	user    accounts.User // the user found, when one was
	userJWT string        // the signed user JWT when allowed
	reason  string        // the denial reason when denied
	err     error         // the cause of an internal error, for the log
}

// handle serves one request: decode and validate it, decide, and answer
// unless the server has stopped waiting.
func (r *Relay) handle(ctx context.Context, j job) {
	m := j.msg
	serverXKey, sealed := "", false
	if v, ok := m.Header[XKeyHeader]; ok {
		sealed = true
		if len(v) > 0 {
			serverXKey = v[0]
		}
	}
	rc, err := decodeRequest(r.cfg.XKey, m.Data, sealed, serverXKey, r.cfg.Now())
	if err != nil {
		r.log.Warn("dropping auth request", "err", err, "sealed", sealed)
		return
	}
	if m.Reply == "" {
		r.log.Warn("dropping auth request: no reply subject", "server", rc.Server.ID)
		return
	}

	log := r.log.With(
		"user", clip(rc.ConnectOptions.Username),
		"client_host", clip(rc.ClientInformation.Host),
		"client_id", rc.ClientInformation.ID,
		"client_type", clip(rc.ClientInformation.Type),
		"server", clip(rc.Server.Name),
	)

	// The server waits auth timeout from sending; its exp is that instant
	// truncated to whole seconds, so it is the latest safe answer time.
	deadline := j.received.Add(r.cfg.DecisionTimeout)
	if exp := time.Unix(rc.Expires, 0); exp.Before(deadline) {
		deadline = exp
	}
	if !r.cfg.Now().Before(deadline) {
		log.Warn("auth request abandoned: waited past the server's deadline in the queue",
			"latency", r.cfg.Now().Sub(j.received))
		return
	}
	dctx, cancel := r.withDeadline(ctx, deadline)
	defer cancel()

	d := r.decide(dctx, rc)

	if now := r.cfg.Now(); now.After(deadline) {
		log.Warn("auth decision abandoned: past the server's deadline",
			"latency", now.Sub(j.received), "reason", d.reason, "err", d.err)
		return
	}

	resp, err := r.cfg.Issuer.Respond(rc.Server.ID, rc.UserNkey, d.userJWT, d.reason)
	if err != nil {
		log.Error("auth response not sent", "err", err)
		return
	}
	out := []byte(resp)
	if sealed {
		if out, err = r.cfg.XKey.Seal(out, serverXKey); err != nil {
			log.Error("auth response not sent", "err", err)
			return
		}
	}
	if err := m.Respond(out); err != nil {
		log.Error("auth response not sent", "err", err)
		return
	}

	latency := r.cfg.Now().Sub(j.received)
	if a := r.cfg.Audit; a != nil {
		a.Record(accounts.LoginEvent{
			Time:     j.received,
			User:     clip(rc.ConnectOptions.Username),
			Account:  d.user.Account,
			Host:     clip(rc.ClientInformation.Host),
			ServerID: rc.Server.ID,
			ClientID: rc.ClientInformation.ID,
			ConnType: accounts.ClientConnType(rc.ClientInformation.Kind, rc.ClientInformation.Type),
			Allowed:  d.reason == "",
			Reason:   d.reason,
			Latency:  latency,
		})
	}

	// Allows are routine (debug); denials are what an operator looks for
	// (info); internal errors need action (error).
	log = log.With("account", d.user.Account, "latency", latency)
	switch {
	case d.reason == "":
		log.Debug("auth decision", "result", resultAllow)
	case d.err != nil:
		log.Error("auth decision", "result", resultDeny, "reason", d.reason, "err", d.err)
	default:
		log.Info("auth decision", "result", resultDeny, "reason", d.reason)
	}
}

// decide checks the request's username and password and, when they match
// an enabled, unexpired user, issues the user JWT.
func (r *Relay) decide(ctx context.Context, rc *jwt.AuthorizationRequestClaims) decision {
	name, password := rc.ConnectOptions.Username, rc.ConnectOptions.Password
	if name == "" || password == "" {
		return decision{reason: ReasonNoCredentials}
	}
	host := rc.ClientInformation.Host
	locked := false
	if g := r.cfg.Guard; g != nil {
		var err error
		if locked, err = g.Locked(ctx, name, host, r.cfg.Now()); err != nil {
			return decision{reason: ReasonInternalError, err: fmt.Errorf("check lockout: %w", err)}
		}
	}
	// A locked attempt still verifies the password, so it costs what a
	// wrong password costs and its timing reveals nothing.
	u, err := r.cfg.Users.Authenticate(ctx, name, password)
	if locked {
		return decision{reason: ReasonLockedOut}
	}
	if err == nil {
		err = u.Check(r.cfg.Now())
	}
	switch {
	case errors.Is(err, accounts.ErrInvalidCredentials):
		if g := r.cfg.Guard; g != nil {
			if gerr := g.Failed(ctx, name, host, r.cfg.Now()); gerr != nil {
				r.log.Error("record failed login", "err", gerr)
			}
		}
		return decision{reason: ReasonBadCredentials}
	case errors.Is(err, accounts.ErrUserDisabled):
		return decision{user: u, reason: ReasonUserDisabled}
	case errors.Is(err, accounts.ErrUserExpired):
		return decision{user: u, reason: ReasonUserExpired}
	case err != nil:
		return decision{reason: ReasonInternalError, err: err}
	}
	if u.Account == "" {
		return decision{user: u, reason: ReasonInternalError, err: errors.New("user has no account")}
	}
	if slices.Contains(r.cfg.ReservedAccounts, u.Account) {
		return decision{user: u, reason: ReasonAccountReserved, err: fmt.Errorf("user's account %q is reserved", u.Account)}
	}

	var roles []accounts.Role
	if len(u.Roles) > 0 {
		if roles, err = r.cfg.Users.RolesNamed(ctx, u.Roles); err != nil {
			return decision{user: u, reason: ReasonInternalError, err: err}
		}
	}
	g, err := accounts.Resolve(u, roles)
	switch {
	case errors.Is(err, accounts.ErrUnsafeTemplate):
		return decision{user: u, reason: ReasonTemplateUnsafe}
	case err != nil:
		return decision{user: u, reason: ReasonInternalError, err: err}
	}
	client := accounts.Client{
		Host:     rc.ClientInformation.Host,
		ConnType: accounts.ClientConnType(rc.ClientInformation.Kind, rc.ClientInformation.Type),
	}
	switch err := g.Admit(client); {
	case errors.Is(err, accounts.ErrSourceNotAllowed):
		return decision{user: u, reason: ReasonSourceNotAllowed}
	case errors.Is(err, accounts.ErrConnTypeNotAllowed):
		return decision{user: u, reason: ReasonConnTypeNotAllowed}
	case err != nil:
		return decision{user: u, reason: ReasonInternalError, err: err}
	}

	uc, err := r.cfg.Issuer.UserClaims(g, rc.UserNkey, r.cfg.Now(), r.cfg.SessionTTL)
	if err != nil {
		return decision{user: u, reason: ReasonInternalError, err: err}
	}
	token, err := r.cfg.Issuer.IssueUserJWT(uc)
	if err != nil {
		return decision{user: u, reason: ReasonInternalError, err: err}
	}
	if g := r.cfg.Guard; g != nil {
		if err := g.Succeeded(ctx, name, host, r.cfg.Now()); err != nil {
			r.log.Error("record successful login", "err", err)
		}
	}
	return decision{user: u, userJWT: token}
}

// withDeadline returns a context that ends at deadline on the relay's
// clock. With an injected clock the deadline is translated to the wall
// clock that contexts run on.
func (r *Relay) withDeadline(ctx context.Context, deadline time.Time) (context.Context, context.CancelFunc) {
	if r.realClock {
		return context.WithDeadline(ctx, deadline)
	}
	return context.WithTimeout(ctx, deadline.Sub(r.cfg.Now()))
}
