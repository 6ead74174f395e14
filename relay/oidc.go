package relay

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/idp"
)

// IdentityConfig is what the relay needs for identity providers' tokens
// (accounts.CredOIDC): the verifier of every provider the store has, kept
// up to date by its owner (node), and the store's users of providers.
type IdentityConfig struct {
	// Verifier verifies tokens: an *idp.Set.
	Verifier IdentityVerifier
	// Users finds the provider a user is bound to and creates users of
	// providers that allow it: store.DB.
	Users IdentityUsers
	// Actor names the relay in the audit rows of the users it creates;
	// "" is "authrelay serve".
	Actor string
	// CreateRate and CreateBurst bound the users created on first login,
	// across every provider: at most CreateBurst at once and CreateRate a
	// second after that (defaults 5 and 20). A login past the bound is
	// refused with ReasonOverloaded, and is created at a later attempt.
	CreateRate  float64
	CreateBurst int
}

// IdentityVerifier verifies a provider's token: idp.Set.
type IdentityVerifier interface {
	// Verify verifies raw with the provider its iss and aud name.
	Verify(ctx context.Context, raw string) (idp.Identity, error)
	// Verifier returns the verifier of the provider called name, or nil.
	Verifier(name string) *idp.Verifier
}

// IdentityUsers is the store's part: store.DB.
type IdentityUsers interface {
	// UserProvider returns the provider the user called name is bound to,
	// "" for none or no such user.
	UserProvider(ctx context.Context, name string) (string, error)
	// CreateIdentityUser creates u bound to provider, with its audit row
	// by actor; an error wrapping store.ErrNameTaken when a user of that
	// name exists and is not bound to provider (it is never taken over).
	CreateIdentityUser(ctx context.Context, actor string, u accounts.User, provider string) error
}

// oidcWait is how long a login waits for a slot among the verifications
// under way before it is refused with ReasonOverloaded.
const oidcWait = 250 * time.Millisecond

// oidcLimits bounds what identity provider logins may take of the relay.
// A verification can wait on the provider (a key set fetched for a new
// key id, at most idp.Options.MaxWait): at most half the fast lane's
// workers wait so, and at most a quarter on one issuer (read, unverified,
// from the token), so that a provider that hangs holds up neither the
// logins of other kinds nor those of other providers.
type oidcLimits struct {
	slots     chan struct{}
	perIssuer int

	mu       sync.Mutex
	inFlight map[string]int // verifications under way by issuer
	rate     float64
	burst    float64
	tokens   float64
	last     time.Time
}

func newOIDCLimits(workers int, c *IdentityConfig) *oidcLimits {
	l := &oidcLimits{
		slots:     make(chan struct{}, max(1, workers/2)),
		perIssuer: max(1, workers/4),
		inFlight:  map[string]int{},
		rate:      c.CreateRate,
		burst:     float64(c.CreateBurst),
	}
	if l.rate <= 0 {
		l.rate = 5
	}
	if l.burst <= 0 {
		l.burst = 20
	}
	l.tokens = l.burst
	return l
}

// acquire takes a verification slot for a token of issuer iss: none when
// that issuer's are all taken, else waiting at most oidcWait for one of
// all.
func (l *oidcLimits) acquire(ctx context.Context, iss string) bool {
	l.mu.Lock()
	if l.inFlight[iss] >= l.perIssuer {
		l.mu.Unlock()
		return false
	}
	l.inFlight[iss]++
	l.mu.Unlock()
	select {
	case l.slots <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(oidcWait)
	defer t.Stop()
	select {
	case l.slots <- struct{}{}:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	l.done(iss)
	return false
}

func (l *oidcLimits) release(iss string) {
	<-l.slots
	l.done(iss)
}

func (l *oidcLimits) done(iss string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inFlight[iss]--; l.inFlight[iss] <= 0 {
		delete(l.inFlight, iss)
	}
}

// maxIssuerKey bounds the issuer a slot is counted under.
const maxIssuerKey = 512

// tokenIssuer returns the iss claim of a JWT, unverified: only for
// counting verifications by provider. A token without one reads "".
func tokenIssuer(raw string) string {
	_, rest, _ := strings.Cut(raw, ".")
	body, _, _ := strings.Cut(rest, ".")
	b, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return ""
	}
	var c struct {
		Iss string `json:"iss"`
	}
	if json.Unmarshal(b, &c) != nil {
		return ""
	}
	if len(c.Iss) > maxIssuerKey {
		return c.Iss[:maxIssuerKey]
	}
	return c.Iss
}

// allowCreate takes one creation from the bucket at now.
func (l *oidcLimits) allowCreate(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.After(l.last) {
		l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	}
	if l.last.IsZero() || now.After(l.last) {
		l.last = now
	}
	if l.tokens < 1 {
		return false
	}
	l.tokens--
	return true
}

// passwordOrOIDC decides what a username with a JWT as its password is
// (accounts.Presented): the token of the provider the user is bound to,
// or, for a user bound to none, a password. It returns a decision with a
// reason only when the store cannot say.
func (r *Relay) passwordOrOIDC(ctx context.Context, cred accounts.Credential) (accounts.Credential, decision, bool) {
	if r.cfg.Identity == nil {
		return cred.AsPassword(), decision{}, true
	}
	provider, err := r.cfg.Identity.Users.UserProvider(ctx, cred.Name)
	if err != nil {
		return cred, decision{reason: ReasonInternalError, err: err, store: true}, true
	}
	if provider == "" {
		return cred.AsPassword(), decision{}, true
	}
	cred.Provider = provider
	return cred, decision{}, true
}

// verifyOIDC verifies an identity provider's token: with the provider of
// the user it came with (cred.Name, cred.Provider), whose username claim
// must be that name, or with the provider its iss and aud name. A
// provider whose keys cannot be had is ReasonIdpUnavailable, not counted
// against anyone (the client is not at fault); any other refusal is
// ReasonBadCredentials, counted against the address only.
func (r *Relay) verifyOIDC(ctx context.Context, host string, cred accounts.Credential) (idp.Identity, decision, bool) {
	if r.oidc == nil {
		r.failed(ctx, "", host, accounts.FailedPassword)
		return idp.Identity{}, decision{reason: ReasonBadCredentials, err: errors.New("an identity provider's token, and no provider is configured")}, false
	}
	iss := tokenIssuer(cred.Token)
	if !r.oidc.acquire(ctx, iss) {
		return idp.Identity{}, decision{reason: ReasonOverloaded, err: fmt.Errorf("too many verifications of identity provider tokens waiting (issuer %s)", accounts.ClientText(iss))}, false
	}
	defer r.oidc.release(iss)
	var id idp.Identity
	var err error
	if cred.Name != "" {
		v := r.cfg.Identity.Verifier.Verifier(cred.Provider)
		if v == nil {
			// The provider was removed: the store says so too.
			r.failed(ctx, "", host, accounts.FailedPassword)
			return id, decision{reason: ReasonBadCredentials, err: fmt.Errorf("user %s is bound to identity provider %s, which is not configured", accounts.ClientText(cred.Name), accounts.ClientText(cred.Provider))}, false
		}
		id, err = v.Verify(ctx, cred.Token)
		if err == nil && (id.Username != cred.Name || id.Provider != cred.Provider) {
			err = fmt.Errorf("the token's username claim is %s, not the username %s: %w", accounts.ClientText(id.Username), accounts.ClientText(cred.Name), idp.ErrInvalidToken)
		}
	} else {
		id, err = r.cfg.Identity.Verifier.Verify(ctx, cred.Token)
	}
	switch {
	case errors.Is(err, idp.ErrUnavailable):
		return id, decision{reason: accounts.ReasonIdpUnavailable, err: err}, false
	case err != nil:
		r.failed(ctx, "", host, accounts.FailedPassword)
		return id, decision{reason: ReasonBadCredentials, err: err}, false
	}
	return id, decision{}, true
}

// createOIDCUser creates the user of a verified token of a provider that
// allows it (--create-users) and finds no user of that name bound to it:
// in the provider's account, with the roles its claims map to, recorded
// in the audit trail. A name another user has (a password user, another
// provider's) is never taken over: bad_credentials.
func (r *Relay) createOIDCUser(ctx context.Context, host string, id idp.Identity) (decision, bool) {
	v := r.cfg.Identity.Verifier.Verifier(id.Provider)
	if v == nil || !v.Provider().CreateUsers {
		r.failed(ctx, "", host, accounts.FailedPassword)
		return decision{reason: ReasonBadCredentials}, false
	}
	p := v.Provider()
	if !r.oidc.allowCreate(r.cfg.Now()) {
		return decision{reason: ReasonOverloaded, err: fmt.Errorf("identity provider %s: users are created at most %g a second", accounts.ClientText(p.Name), r.oidc.rate)}, false
	}
	u := accounts.User{Name: id.Username, Account: p.Account, Roles: id.Roles}
	actor := r.cfg.Identity.Actor
	if actor == "" {
		actor = "authrelay serve"
	}
	err := r.cfg.Identity.Users.CreateIdentityUser(ctx, actor+" (idp "+p.Name+")", u, p.Name)
	switch {
	case errors.Is(err, accounts.ErrNameTaken):
		r.failed(ctx, "", host, accounts.FailedPassword)
		return decision{reason: ReasonBadCredentials, err: err}, false
	case err != nil:
		return decision{reason: ReasonInternalError, err: err, store: true}, false
	}
	r.log.Info("user created on first login", "user", accounts.ClientText(u.Name), "idp", accounts.ClientText(p.Name), "account", p.Account)
	return decision{}, true
}

// capGrant ends a grant no later than notAfter (an identity provider
// token's expiry), when it is set.
func capGrant(v *verified, notAfter time.Time) {
	if !notAfter.IsZero() && (v.grant.Expires.IsZero() || notAfter.Before(v.grant.Expires)) {
		v.grant.Expires = notAfter
	}
}
