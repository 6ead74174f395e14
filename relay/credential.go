package relay

import (
	"context"
	"errors"
	"fmt"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/idp"
)

// decideCredential decides a login with a credential other than a password
// (an nkey, an API token, a client certificate, an identity provider's
// token: see oidc.go), in the fast lane: none
// needs a password hash. The credential is verified before the store is
// asked (the nonce's signature against the key the client named; a
// token's shape), the user it names is decided as a password's is
// (accounts.Decide, through conclude), and a grant is cached under the
// user's version and the credential, as a password's verification is.
//
// None of these can be guessed, so a failure counts only against the
// client's address (never the name, accounts.Credential.Guessable) and
// only the address's lockout refuses them: a client that knows a username
// cannot lock a service out of its nkey or token.
func (r *Relay) decideCredential(ctx context.Context, req *request, cred accounts.Credential) decision {
	rc := req.rc
	host := rc.ClientInformation.Host
	if r.cfg.Credentials == nil {
		return decision{reason: ReasonNoCredentials}
	}
	if g := r.cfg.Guard; g != nil {
		locked, err := g.Locked(ctx, "", host, r.cfg.Now())
		if err != nil {
			return decision{reason: ReasonInternalError, err: fmt.Errorf("check lockout: %w", err), store: true}
		}
		if locked {
			r.failed(ctx, "", host, accounts.FailedLocked)
			return decision{reason: ReasonLockedOut}
		}
	}
	switch cred.Kind {
	case accounts.CredNkey:
		if err := cred.VerifyNonce(); err != nil {
			if accounts.IsNonceMissing(err) {
				// The deployment's fault, not the client's: not counted.
				return decision{reason: accounts.ReasonNonceMissing,
					err: errors.New("the server sends no nonce: give its config an nkey user (authrelay doctor says how)")}
			}
			r.failed(ctx, "", host, accounts.FailedPassword)
			return decision{reason: ReasonBadCredentials}
		}
	case accounts.CredToken:
		if !accounts.WellFormedToken(cred.Token) {
			r.failed(ctx, "", host, accounts.FailedPassword)
			return decision{reason: ReasonBadCredentials}
		}
	}
	var id idp.Identity // an identity provider's token's, verified
	if cred.Kind == accounts.CredOIDC {
		var d decision
		var ok bool
		if id, d, ok = r.verifyOIDC(ctx, host, cred); !ok {
			return d
		}
		cred.Provider, cred.Username = id.Provider, id.Username
	}
	notAfter := id.Expiry // zero but for an identity provider's token
	kind, value := cred.Lookup()
	// The credential's user and version, for the cache; for a certificate
	// also what tells a subject binding from a fingerprint one.
	var name string
	var cver int64
	var cerr error
	if cred.Kind == accounts.CredTLSSubject || r.cache != nil && cred.Kind != accounts.CredOIDC {
		name, cver, cerr = r.cfg.Credentials.CredentialVersion(ctx, kind, value)
	}
	if cred.Kind == accounts.CredTLSSubject && errors.Is(cerr, accounts.ErrInvalidCredentials) {
		// Bound by the key's fingerprint, if not by the subject.
		kind, value = cred.LookupFingerprint()
		if r.cache != nil {
			name, cver, cerr = r.cfg.Credentials.CredentialVersion(ctx, kind, value)
		}
	}
	now := r.cfg.Now()
	// One cache entry per user and kind: a user's password and its nkey
	// do not evict each other. A name never holds a NUL.
	if r.cache != nil && cred.Kind != accounts.CredOIDC {
		// The cached grant is checked against the credential's user and
		// version, read above without reading the user.
		if cerr == nil {
			if v, ok := r.cache.get(name+"\x00"+string(kind), value, cver, now); ok {
				if d, ok := r.conclude(ctx, rc, &v); ok && d.reason == "" {
					r.stats.hits.Add(1)
					d.cache = cacheHit
					return d
				}
			}
		}
		r.stats.misses.Add(1)
	}
	u, ver, err := r.cfg.Credentials.CredentialUser(ctx, kind, value)
	if cred.Kind == accounts.CredOIDC && errors.Is(err, accounts.ErrInvalidCredentials) && cred.Name == "" {
		if d, ok := r.createOIDCUser(ctx, host, id); !ok {
			return d
		}
		if r.revoke != nil {
			// The creation is a change of the user's (the change feed):
			// this grant, read after it, is not one it revokes.
			req.changePos = r.revoke.position()
		}
		u, ver, err = r.cfg.Credentials.CredentialUser(ctx, kind, value)
	}
	switch {
	case errors.Is(err, accounts.ErrInvalidCredentials):
		r.failed(ctx, "", host, accounts.FailedPassword)
		return decision{reason: ReasonBadCredentials}
	case err != nil:
		return decision{reason: ReasonInternalError, err: err, store: true}
	}
	slot := u.Name + "\x00" + string(kind)
	if r.cache != nil && cred.Kind == accounts.CredOIDC {
		// An identity provider's binding is checked with the user read:
		// the grant is capped at this token's expiry.
		if v, ok := r.cache.get(slot, value, ver, now); ok {
			v.user = u
			capGrant(&v, notAfter)
			if d, ok := r.conclude(ctx, rc, &v); ok && d.reason == "" {
				r.stats.hits.Add(1)
				d.cache = cacheHit
				return d
			}
		}
		r.stats.misses.Add(1)
	}
	v := verified{user: u}
	if r.admissible(u) == "" {
		var roles []accounts.Role
		if len(u.Roles) > 0 {
			if roles, err = r.cfg.Users.RolesNamed(ctx, u.Roles); err != nil {
				return decision{user: u, reason: ReasonInternalError, err: err, store: true}
			}
		}
		v.grant, v.grantErr = accounts.Resolve(u, roles)
		v.resolved = true
	}
	if r.cache != nil && v.resolved && v.grantErr == nil {
		r.cache.put(slot, value, ver, v, now)
	}
	capGrant(&v, notAfter)
	d, ok := r.conclude(ctx, rc, &v)
	if !ok {
		d = decision{user: u, reason: ReasonInternalError, err: errors.New("grant not resolved")}
	}
	switch d.reason {
	case "", ReasonInternalError:
	default:
		r.failed(ctx, "", host, accounts.FailedRefused)
	}
	if r.cache != nil {
		d.cache = cacheMiss
	}
	return d
}
