package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/authrelay/authrelay/accounts"
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
)

// Denial reasons: see accounts.Reason*, where they are defined for
// accounts.Decide, the decision the relay and 'user explain' share.
const (
	ReasonBadCredentials     = accounts.ReasonBadCredentials
	ReasonUserDisabled       = accounts.ReasonUserDisabled
	ReasonUserExpired        = accounts.ReasonUserExpired
	ReasonNoCredentials      = accounts.ReasonNoCredentials
	ReasonAccountReserved    = accounts.ReasonAccountReserved
	ReasonAccountNotAllowed  = accounts.ReasonAccountNotAllowed
	ReasonInternalError      = accounts.ReasonInternalError
	ReasonTemplateUnsafe     = accounts.ReasonTemplateUnsafe
	ReasonSourceNotAllowed   = accounts.ReasonSourceNotAllowed
	ReasonConnTypeNotAllowed = accounts.ReasonConnTypeNotAllowed
	ReasonLockedOut          = accounts.ReasonLockedOut
	ReasonOverloaded         = accounts.ReasonOverloaded
	// ReasonRejectedByServer is not an answer the relay sends: it is how
	// the relay counts (Observer) and audits a login whose answer the
	// server rejected, for a signing key it does not know. The answer was
	// counted when sent; this records that the login failed all the same.
	ReasonRejectedByServer = accounts.ReasonRejectedByServer
)

// recordTimeout bounds the write of a failed login, which outlives the
// decision's own deadline.
const recordTimeout = 5 * time.Second

// Results logged for each decision.
const (
	resultAllow = "allow"
	resultDeny  = "deny"
)

// What the credential cache said about a decision, for the log.
const (
	cacheHit  = "hit"
	cacheMiss = "miss"
)

// decision is the outcome for one request.
type decision struct {
	user    accounts.User // the user found, when one was
	userJWT string        // the signed user JWT when allowed
	reason  string        // the denial reason when denied
	err     error         // the cause of an internal error, for the log
	store   bool          // err came from Users or Guard
	cache   string        // cacheHit, cacheMiss, or "" when not looked up
	rehash  bool          // a grant from a verification: Users.Rehash after the answer
	// kind is the credential of a login without a password, "" for one
	// with a password or none.
	kind accounts.CredentialKind
}

// request is one decoded auth request on its way through the relay.
type request struct {
	msg        *nats.Msg
	nc         *nats.Conn // answers go out on it; nil: msg.Respond
	rc         *jwt.AuthorizationRequestClaims
	sealed     bool
	serverXKey string
	received   time.Time
	deadline   time.Time // the latest useful answer
	// What the fast lane found, for the hash pool.
	ver    int64  // the user's version, read before the cache lookup
	verOK  bool   // ver was read: a verification may be cached under it
	cache  string // what the cache said, for the log
	queued bool   // it waited behind other verifications
	// changePos is the revocation feed position when the request arrived.
	changePos int64
}

// handle is the fast lane for one request: decode and validate it, and
// decide it unless that needs a password verification, which it hands to
// the hash pool (or, when the pool is overloaded, denies).
func (r *Relay) handle(ctx context.Context, j job) {
	// req stays on the stack unless it goes to the hash pool.
	req, ok := r.open(j, false)
	if !ok {
		return
	}
	if !r.cfg.Now().Before(req.deadline) {
		r.logRequest(ctx, slog.LevelWarn, "auth request abandoned: waited past the server's deadline in the queue", &req,
			slog.Duration("latency", r.cfg.Now().Sub(req.received)))
		return
	}
	dctx, cancel := r.withDeadline(ctx, req.deadline)
	d, slow := r.decideFast(dctx, &req)
	cancel()
	if slow {
		queued := new(request)
		*queued = req
		err := r.admit(queued)
		if err == nil {
			return
		}
		d = r.shed(&req, err)
	}
	r.finish(ctx, &req, d)
}

// shed returns the denial for a request the hash pool cannot take in time.
func (r *Relay) shed(req *request, err error) decision {
	n := r.stats.shed.Add(1)
	if r.shedWarn.allow() {
		r.log.Warn("shedding logins: password verification overloaded", "err", err,
			"hash_workers", r.cfg.HashWorkers, "hash_time", r.hashTime.load(),
			"waiting", len(r.hashQ.jobs), "shed_total", n)
	}
	return decision{reason: ReasonOverloaded, cache: req.cache}
}

// open decodes and validates the request in j, or logs why it drops it and
// returns false. Every request it decodes measures the server's clock and
// the relay's keys; with inspect, that is all it does (the probe's
// requests, which another relay answers), and it returns false.
func (r *Relay) open(j job, inspect bool) (request, bool) {
	m := j.msg
	req := request{msg: m, nc: j.nc, received: j.received}
	if v, ok := m.Header[XKeyHeader]; ok {
		req.sealed = true
		if len(v) > 0 {
			req.serverXKey = v[0]
		}
	}
	rc, err := decodeRequest(r.cfg.XKey, m.Data, req.sealed, req.serverXKey, j.received, r.cfg.MaxClockSkew)
	if rc != nil {
		// Opened and signed by the server it names: the keys match, and
		// its issue time measures the server's clock even when it is
		// refused for the skew.
		r.skew.sample(rc.Server.ID, rc.Server.Name, rc.IssuedAt, j.received)
		r.keys.opened(rc.Server.ID, j.received)
	}
	var km keyMismatch
	switch {
	case err == nil:
	case errors.As(err, &km):
		r.keys.openFailed(err, j.received)
		level := slog.LevelDebug
		if r.keyWarn.allow() {
			level = slog.LevelWarn
		}
		r.log.Log(context.Background(), level, "dropping auth request: not opened with this relay's keys", "err", err,
			"sealed", req.sealed, "key_failures_total", r.keys.keyFailures.Load())
		return request{}, false
	case errors.Is(err, errClockSkew):
		n := r.skewRejected.Add(1)
		level := slog.LevelDebug
		if r.skewWarn.allow() {
			level = slog.LevelWarn
		}
		r.log.Log(context.Background(), level, "dropping auth request: clock skew beyond tolerance", "err", err,
			"server", clip(rc.Server.Name), "max_clock_skew", r.cfg.MaxClockSkew, "skew_rejected_total", n)
		return request{}, false
	default:
		if !inspect {
			r.log.Warn("dropping auth request", "err", err, "sealed", req.sealed)
		}
		return request{}, false
	}
	if inspect {
		return request{}, false
	}
	if r.keys.faulty.Load() {
		// Leaving the queue group: an answer the server would reject
		// (another issuer) must not be sent and counted as a grant.
		r.log.Debug("dropping auth request: the server does not accept this relay's keys", "server", clip(rc.Server.Name))
		return request{}, false
	}
	if m.Reply == "" {
		r.log.Warn("dropping auth request: no reply subject", "server", rc.Server.ID)
		return request{}, false
	}
	req.rc = rc
	if r.revoke != nil {
		// With the cache on too, one read gives the user's version the
		// cache needs as well; reading it here, earlier than decideFast
		// would, is as safe: it only has to come before the user is read.
		if r.positions != nil {
			ver, last, err := r.positions.UserPositions(context.Background(), rc.ConnectOptions.Username)
			req.changePos = r.revoke.positionAt(last, err)
			req.ver, req.verOK = ver, err == nil
		} else {
			req.changePos = r.revoke.position()
		}
	}
	req.deadline = j.received.Add(r.answerBudget(rc))
	return req, true
}

// answerMargin is kept from the server's timeout for the answer's way back.
const answerMargin = 100 * time.Millisecond

// answerBudget returns how long after its arrival the relay may answer rc.
// The server waits its authorization timeout from sending the request; the
// request says what that is as exp-iat, whole seconds of the server's
// clock, so the budget needs no clock but the relay's: its receive time
// plus the smaller of the decision timeout and that timeout (less a margin
// for the answer's transit). Comparing exp with the relay's clock instead
// would take a relay clock ahead of the server's for a deadline already
// passed. exp-iat is the timeout exactly when it is whole seconds (the
// default 2 s, 3 s with TLS); a fractional one can read up to a second
// long, which matters only with a decision timeout at or above the
// server's timeout, which serve and doctor warn about.
func (r *Relay) answerBudget(rc *jwt.AuthorizationRequestClaims) time.Duration {
	budget := r.cfg.DecisionTimeout
	if t := time.Duration(rc.Expires-rc.IssuedAt)*time.Second - answerMargin; t > 0 && t < budget {
		budget = t
	}
	return budget
}

// verify is the hash pool's part of a request: verify the password, decide
// and answer.
func (r *Relay) verify(ctx context.Context, req *request) {
	r.hashBusy.Add(1)
	defer r.hashBusy.Add(-1)
	start := time.Now()
	now := r.cfg.Now()
	if !now.Before(req.deadline) {
		r.logRequest(ctx, slog.LevelWarn, "auth request abandoned: waited past the server's deadline for a password verification", req,
			slog.Duration("latency", now.Sub(req.received)))
		return
	}
	// Admission let it wait on an estimate; if the wait was longer, an
	// answer now beats one the server no longer takes. A request that
	// found a worker idle always runs, so the average stays measured.
	if req.queued && now.Add(r.hashTime.load()).After(req.deadline) {
		r.finish(ctx, req, r.shed(req, errOverloaded))
		return
	}
	dctx, cancel := r.withDeadline(ctx, req.deadline)
	d := r.decideSlow(dctx, req)
	cancel()
	sent := r.finish(ctx, req, d)
	r.hashTime.observe(time.Since(start))
	if sent && d.rehash {
		// After the answer: the client does not wait for it, and a
		// refusal never runs it, so no refusal takes longer for it.
		r.cfg.Users.Rehash(ctx, req.rc.ConnectOptions.Username, req.rc.ConnectOptions.Password)
	}
}

// decide decides a request in the calling goroutine: the fast lane's part
// and, when that needs it, the password verification.
func (r *Relay) decide(ctx context.Context, rc *jwt.AuthorizationRequestClaims) decision {
	req := request{rc: rc}
	if d, slow := r.decideFast(ctx, &req); !slow {
		return d
	}
	d := r.decideSlow(ctx, &req)
	if d.rehash {
		r.cfg.Users.Rehash(ctx, rc.ConnectOptions.Username, rc.ConnectOptions.Password)
	}
	return d
}

// decideFast decides what can be decided without verifying a password:
// no credentials, or a grant from a verification cached under the user's
// current version. Otherwise it reports slow, with what it found in req.
func (r *Relay) decideFast(ctx context.Context, req *request) (d decision, slow bool) {
	rc := req.rc
	cred, ok := accounts.Presented(rc.ConnectOptions, rc.ClientInformation.Nonce, rc.TLS)
	if ok && cred.Kind == accounts.CredOIDC && cred.Name != "" {
		// A JWT as a username's password: the user's provider, or a password.
		var d decision
		if cred, d, ok = r.passwordOrOIDC(ctx, cred); d.reason != "" {
			return d, false
		}
	}
	switch {
	case !ok:
		return decision{reason: ReasonNoCredentials}, false
	case cred.Kind != accounts.CredPassword:
		d := r.decideCredential(ctx, req, cred)
		d.kind = cred.Kind
		return d, false
	}
	name, password := cred.Name, cred.Password
	if r.cache == nil {
		return decision{}, true
	}
	if g := r.cfg.Guard; g != nil {
		locked, err := g.Locked(ctx, name, rc.ClientInformation.Host, r.cfg.Now())
		if err != nil {
			return decision{reason: ReasonInternalError, err: fmt.Errorf("check lockout: %w", err), store: true}, false
		}
		if locked {
			// Never from the cache: the hash pool refuses it (see
			// decideSlow), at the cost of a wrong password.
			return decision{}, true
		}
	}
	if !req.verOK {
		ver, err := r.changes.UserVersion(ctx, name)
		if err != nil {
			// Verify without the cache; the store's trouble shows there.
			r.log.Warn("read user version: credential cache bypassed", "err", err)
			return decision{}, true
		}
		req.ver, req.verOK = ver, true
	}
	if v, ok := r.cache.get(name, password, req.ver, r.cfg.Now()); ok {
		// Only grants are answered from the cache. A user whose password
		// matched but who is refused (disabled, expired, from the wrong
		// network…) is verified again, so that the refusal costs what a
		// wrong password costs: a fast one would tell that the password is
		// right.
		if d, ok := r.conclude(ctx, rc, &v); ok && d.reason == "" {
			r.stats.hits.Add(1)
			d.cache = cacheHit
			return d, false
		}
	}
	r.stats.misses.Add(1)
	req.cache = cacheMiss
	return decision{}, true
}

// decideSlow reserves an attempt with the guard, verifies the password,
// caches a success under the user's version read before, decides, and records
// a refusal with the guard.
//
// A refused login costs the same whatever the reason: two password
// verifications (the user's hash and its previous one or the dummy, two
// dummies for an unknown user or a locked-out attempt, the user's hash and
// a dummy for a right password refused all the same), one lockout read and
// one lockout write, and no rehash (that runs only after a grant is
// answered). A stale password (the previous one, past its grace) is not
// recorded with the guard.
func (r *Relay) decideSlow(ctx context.Context, req *request) decision {
	rc := req.rc
	name, password := rc.ConnectOptions.Username, rc.ConnectOptions.Password
	host := rc.ClientInformation.Host
	if g := r.cfg.Guard; g != nil {
		// Reserved here, in the hash worker, just before the verification,
		// not when the request arrived: a burst of concurrent attempts
		// then sees the failures of those verified before it.
		ok, err := g.Reserve(ctx, name, host, r.cfg.Now())
		if err != nil {
			return decision{reason: ReasonInternalError, err: fmt.Errorf("reserve login attempt: %w", err), store: true, cache: req.cache}
		}
		if !ok {
			// The user's real hash is not tried, so a locked-out attempt
			// guesses nothing; the dummy one, twice, makes it cost what a
			// wrong password costs (Authenticate verifies twice).
			for range 2 {
				if err := r.cfg.Users.VerifyDummy(ctx, password); err != nil {
					r.log.Error("dummy password verification", "err", err)
				}
			}
			r.failed(ctx, name, host, accounts.FailedLocked)
			return decision{reason: ReasonLockedOut, cache: req.cache}
		}
		defer g.Release(name, host)
	}
	u, err := r.cfg.Users.Authenticate(ctx, name, password)
	if err == nil || errors.Is(err, accounts.ErrInvalidCredentials) {
		// Another error (the store failing, the deadline passing) came
		// before the password was verified.
		r.stats.verifications.Add(1)
	}
	switch {
	case errors.Is(err, accounts.ErrStaleCredentials):
		// The user's previous password, past its grace: a client not yet
		// updated, not a guess. Refused alike, never counted.
		return decision{reason: ReasonBadCredentials, cache: req.cache}
	case errors.Is(err, accounts.ErrInvalidCredentials):
		r.failed(ctx, name, host, accounts.FailedPassword)
		return decision{reason: ReasonBadCredentials, cache: req.cache}
	case err != nil:
		return decision{reason: ReasonInternalError, err: err, store: true, cache: req.cache}
	}
	v := verified{user: u}
	if r.admissible(u) == "" {
		var roles []accounts.Role
		if len(u.Roles) > 0 {
			if roles, err = r.cfg.Users.RolesNamed(ctx, u.Roles); err != nil {
				return decision{user: u, reason: ReasonInternalError, err: err, store: true, cache: req.cache}
			}
		}
		v.grant, v.grantErr = accounts.Resolve(u, roles)
		v.resolved = true
	}
	// Only what can lead to a grant is cached: refusals are never answered
	// from the cache (see decideFast).
	// A login of a password in its grace is not cached: it ends with the
	// grace, and a cached one would outlive it as a refusal.
	if r.cache != nil && req.verOK && v.resolved && v.grantErr == nil && u.Grace.IsZero() {
		r.cache.put(name, password, req.ver, v, r.cfg.Now())
	}
	d, ok := r.conclude(ctx, rc, &v)
	if !ok {
		// Not reached: admissible and conclude agree at one instant.
		d = decision{user: u, reason: ReasonInternalError, err: errors.New("grant not resolved")}
	}
	switch d.reason {
	case "":
		d.rehash = true
	case ReasonInternalError:
		// The relay's or the store's trouble, not the client's.
	default:
		// The password matched, and the login is refused all the same:
		// one more verification makes it cost what a wrong password
		// costs (two).
		if err := r.cfg.Users.VerifyDummy(ctx, password); err != nil {
			r.log.Error("dummy password verification", "err", err)
		}
		r.failed(ctx, name, host, accounts.FailedRefused)
	}
	d.cache = req.cache
	return d
}

// failed records a refused login of name ("" when the credential is not a
// password: only the address counts) from host with the guard, if there is one. It is
// recorded even when the decision's deadline has passed meanwhile (the
// answer is then abandoned): the password was tried all the same, and a
// failure not recorded would let a burst past the lockout.
func (r *Relay) failed(ctx context.Context, name, host string, f accounts.Failure) {
	g := r.cfg.Guard
	if g == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if err := g.Failed(ctx, name, host, r.cfg.Now(), f); err != nil {
		// At most a line a second: a guessing attack on a full disk must
		// not fill the log's disk too.
		if n := r.failErrs.Add(1); r.failWarn.allow() {
			r.log.Error("record failed login", "err", err, "not_recorded_total", n)
		}
	}
}

// admissible returns the reason u, whose password matched, may not log in
// whatever its grant, or "" if none (accounts.Admissible).
func (r *Relay) admissible(u accounts.User) string {
	reason, _ := accounts.Admissible(u, r.cfg.ReservedAccounts, r.cfg.Now())
	return reason
}

// conclude decides a request whose password verification v holds
// (accounts.Decide), and issues the user JWT when it is granted. It
// reports false, deciding nothing, when v has no resolved grant but the
// user may now log in (a cached entry from before): the caller must verify
// again. The size of the response is checked when it is made (finish).
func (r *Relay) conclude(ctx context.Context, rc *jwt.AuthorizationRequestClaims, v *verified) (decision, bool) {
	u := v.user
	now := r.cfg.Now()
	if !v.resolved && r.admissible(u) == "" {
		return decision{}, false
	}
	l := accounts.Login{
		User:       u,
		Resolution: accounts.Resolution{Grant: v.grant, Err: v.grantErr},
		Resolved:   v.resolved,
		Reserved:   r.cfg.ReservedAccounts,
		Client: accounts.Client{
			Host:     rc.ClientInformation.Host,
			ConnType: accounts.ClientConnType(rc.ClientInformation.Kind, rc.ClientInformation.Type),
		},
		CheckClient: true,
		Now:         now,
		Issuer:      r.cfg.Issuer,
	}
	verdict := accounts.Decide(&l)
	switch verdict.Reason {
	case "":
	case ReasonInternalError, ReasonAccountReserved, ReasonAccountNotAllowed:
		// The user data is wrong: the log says what.
		return decision{user: u, reason: verdict.Reason, err: verdict.Err}, true
	default:
		return decision{user: u, reason: verdict.Reason}, true
	}

	uc, err := r.cfg.Issuer.UserClaims(verdict.Grant, rc.UserNkey, now, r.cfg.SessionTTL)
	if errors.Is(err, accounts.ErrAccountNotAllowed) {
		// Operator mode: the server would reject the JWT; say why.
		return decision{user: u, reason: ReasonAccountNotAllowed, err: err}, true
	}
	if err != nil {
		return decision{user: u, reason: ReasonInternalError, err: err}, true
	}
	token, err := r.cfg.Issuer.IssueUserJWT(uc)
	if err != nil {
		return decision{user: u, reason: ReasonInternalError, err: err}, true
	}
	if g := r.cfg.Guard; g != nil {
		if err := g.Succeeded(ctx, u.Name, rc.ClientInformation.Host, r.cfg.Now()); err != nil {
			r.log.Error("record successful login", "err", err)
		}
	}
	return decision{user: u, userJWT: token}, true
}

// finish answers req with d unless the server has stopped waiting, and
// audits and logs the decision. It reports whether it sent d as decided: a
// grant it had to turn into a refusal (a response too large for the
// server) is reported false, so that no rehash follows it.
func (r *Relay) finish(ctx context.Context, req *request, d decision) bool {
	rc := req.rc
	if now := r.cfg.Now(); now.After(req.deadline) {
		attrs := []slog.Attr{slog.Duration("latency", now.Sub(req.received)), slog.String("reason", d.reason)}
		if d.err != nil {
			attrs = append(attrs, slog.Any("err", d.err))
		}
		r.logRequest(ctx, slog.LevelWarn, "auth decision abandoned: past the server's deadline", req, attrs...)
		return false
	}

	out, err := r.answer(req, d)
	if err != nil {
		r.logRequest(ctx, slog.LevelError, "auth response not sent", req, slog.Any("err", err))
		return false
	}
	asDecided := true
	if limit := r.maxPayload(req); limit > 0 && len(out) > limit && d.reason == "" {
		// The server's connection would refuse it ("maximum payload
		// exceeded") and the client would wait out the auth timeout:
		// refuse the login at once instead, and say why. The admin
		// commands refuse such grants (accounts.Issuer.ResponseSize); this
		// catches one made otherwise or a server with a lower max_payload.
		tooLarge := &accounts.ResponseTooLargeError{User: d.user.Name, Size: len(out), Limit: limit}
		d = decision{user: d.user, reason: ReasonInternalError, err: tooLarge, cache: d.cache}
		asDecided = false
		if out, err = r.answer(req, d); err != nil {
			r.logRequest(ctx, slog.LevelError, "auth response not sent", req, slog.Any("err", err))
			return false
		}
	}
	// Remembered before it is sent, so that the server's rejection of it,
	// if any, finds it.
	r.keys.answeredLogin(rc.Server.ID, rc.ClientInformation.ID)
	if req.nc != nil {
		err = req.nc.Publish(req.msg.Reply, out)
	} else {
		err = req.msg.Respond(out)
	}
	if err != nil {
		r.logRequest(ctx, slog.LevelError, "auth response not sent", req, slog.Any("err", err))
		return false
	}

	if r.revoke != nil && d.reason == "" {
		r.revoke.granted(rc.Server.ID, rc.ClientInformation.ID, d.user.Name, req.changePos)
	}
	latency := r.cfg.Now().Sub(req.received)
	if o := r.cfg.Observer; o != nil {
		o.Decision(Observation{Allowed: d.reason == "", Reason: d.reason, Latency: latency,
			CacheHit: d.cache == cacheHit, StoreError: d.store})
	}
	if a := r.cfg.Audit; a != nil {
		user := rc.ConnectOptions.Username
		if d.kind != "" {
			// The user the credential named, if any.
			user = d.user.Name
		}
		a.Record(accounts.LoginEvent{
			Time:     req.received,
			User:     clip(user),
			Account:  d.user.Account,
			Host:     clip(rc.ClientInformation.Host),
			ServerID: rc.Server.ID,
			ClientID: rc.ClientInformation.ID,
			ConnType: accounts.ClientConnType(rc.ClientInformation.Kind, rc.ClientInformation.Type),
			Allowed:  d.reason == "",
			Reason:   d.reason,
			Latency:  latency,
			// Cheap denials are counted, not kept one row each.
			Malformed: malformed(rc, d.reason),
		})
	}

	// Allows are routine (debug); denials are what an operator looks for
	// (info), except overload, which is warned about in bulk (shed);
	// internal errors need action (error).
	level, result := slog.LevelInfo, resultDeny
	switch {
	case d.reason == "":
		level, result = slog.LevelDebug, resultAllow
	case d.err != nil:
		level = slog.LevelError
	case d.reason == ReasonOverloaded:
		level = slog.LevelDebug
	}
	if !r.log.Enabled(ctx, level) {
		return true
	}
	attrs := []slog.Attr{
		slog.String("account", d.user.Account), slog.Duration("latency", latency),
		slog.String("result", result),
	}
	if d.reason != "" {
		attrs = append(attrs, slog.String("reason", d.reason))
	}
	if d.err != nil {
		attrs = append(attrs, slog.Any("err", d.err))
	}
	if d.cache != "" {
		attrs = append(attrs, slog.String("cache", d.cache))
	}
	if d.kind != "" {
		attrs = append(attrs, slog.String("credential", string(d.kind)))
		if d.user.Name != "" {
			attrs = append(attrs, slog.String("as", d.user.Name))
		}
	}
	r.logRequest(ctx, level, "auth decision", req, attrs...)
	return asDecided
}

// maxPayload returns the largest message the connection that answers req
// may publish (the server's max_payload), or 0 when it is not known.
func (r *Relay) maxPayload(req *request) int {
	nc := req.nc
	if nc == nil {
		nc = r.conn.Load()
	}
	if nc == nil {
		return 0
	}
	return int(nc.MaxPayload())
}

// answer returns the signed response carrying d, sealed when req was.
func (r *Relay) answer(req *request, d decision) ([]byte, error) {
	resp, err := r.cfg.Issuer.Respond(req.rc.Server.ID, req.rc.UserNkey, d.userJWT, d.reason)
	if err != nil {
		return nil, err
	}
	if !req.sealed {
		return []byte(resp), nil
	}
	return r.cfg.XKey.Seal([]byte(resp), req.serverXKey)
}

// logRequest logs msg at level with the attributes that identify req's
// client, then attrs; it builds nothing unless the level is enabled.
func (r *Relay) logRequest(ctx context.Context, level slog.Level, msg string, req *request, attrs ...slog.Attr) {
	if !r.log.Enabled(ctx, level) {
		return
	}
	rc := req.rc
	all := make([]slog.Attr, 0, 5+len(attrs))
	all = append(all,
		slog.String("user", clip(rc.ConnectOptions.Username)),
		slog.String("client_host", clip(rc.ClientInformation.Host)),
		slog.Uint64("client_id", rc.ClientInformation.ID),
		slog.String("client_type", clip(rc.ClientInformation.Type)),
		slog.String("server", clip(rc.Server.Name)),
	)
	r.log.LogAttrs(ctx, level, msg, append(all, attrs...)...)
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
