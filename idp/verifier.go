package idp

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/authrelay/authrelay/accounts"
)

// Fixed limits of the package.
const (
	// MaxTokenSize is the longest raw token Verify reads, in bytes.
	MaxTokenSize = 16 << 10
	// MaxDocumentSize is the most of a discovery document or key set read.
	MaxDocumentSize = 256 << 10
	// MaxKeys is the most keys of one key set kept; the rest are ignored.
	MaxKeys = 64
	// MaxLeeway is the largest Options.Leeway allowed.
	MaxLeeway = 5 * time.Minute
	// MinRSABits is the smallest RSA modulus a key set's key may have.
	MinRSABits = 2048
)

// Defaults of Options.
const (
	DefaultLeeway             = 30 * time.Second
	DefaultMinRefreshInterval = 5 * time.Second
	DefaultRefreshInterval    = 15 * time.Minute
	DefaultFetchTimeout       = 5 * time.Second
	DefaultMaxWait            = 2 * time.Second
	DefaultMaxKeyAge          = 24 * time.Hour
)

// algorithms are the signature algorithms a token may use: the asymmetric
// ones. alg none and the HMAC algorithms are never accepted, so a token
// "signed" with a provider's public key as an HMAC secret cannot verify.
var algorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512,
	jose.EdDSA,
}

// Options tune a Verifier or a Set. The zero value is the defaults.
type Options struct {
	// Transport makes the HTTP requests for discovery and the key set; nil
	// means a transport with dial, TLS handshake and response header
	// timeouts. Tests give one that trusts their CA.
	Transport http.RoundTripper
	// Now is the clock tokens' exp, nbf and iat are checked against; nil
	// means time.Now. The fetch schedule runs on the real clock.
	Now func() time.Time
	// Leeway is the clock skew allowed for nbf and iat (a token just minted
	// by a provider whose clock is ahead); at most MaxLeeway. exp gets none:
	// a NATS session cannot be given an expiry in the past.
	Leeway time.Duration
	// MinRefreshInterval is the least time between two fetches of the
	// provider's documents, whatever asks for them: a flood of tokens with
	// unknown key ids causes at most one fetch per interval.
	MinRefreshInterval time.Duration
	// RefreshInterval is how often the key set is fetched again in the
	// background, so keys the provider dropped stop being accepted.
	RefreshInterval time.Duration
	// FetchTimeout bounds one HTTP request to the provider.
	FetchTimeout time.Duration
	// MaxWait bounds how long Verify waits for a fetch it asked for (an
	// unknown key id), within its context's deadline.
	MaxWait time.Duration
	// MaxKeyAge is how long keys are still used while refreshes fail;
	// after that verification fails with ErrUnavailable.
	MaxKeyAge time.Duration
	// Logger gets fetch failures and key set changes; nil means none.
	Logger *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Leeway == 0 {
		o.Leeway = DefaultLeeway
	}
	if o.Leeway < 0 || o.Leeway > MaxLeeway {
		return o, fmt.Errorf("leeway %v: give a duration from 0 to %v", o.Leeway, MaxLeeway)
	}
	set := func(d *time.Duration, def time.Duration, what string) error {
		if *d == 0 {
			*d = def
		}
		if *d < 0 {
			return fmt.Errorf("%s %v must not be negative", what, *d)
		}
		return nil
	}
	for _, f := range []struct {
		d    *time.Duration
		def  time.Duration
		what string
	}{
		{&o.MinRefreshInterval, DefaultMinRefreshInterval, "minimum refresh interval"},
		{&o.RefreshInterval, DefaultRefreshInterval, "refresh interval"},
		{&o.FetchTimeout, DefaultFetchTimeout, "fetch timeout"},
		{&o.MaxWait, DefaultMaxWait, "maximum wait"},
		{&o.MaxKeyAge, DefaultMaxKeyAge, "maximum key age"},
	} {
		if err := set(f.d, f.def, f.what); err != nil {
			return o, err
		}
	}
	if o.RefreshInterval < o.MinRefreshInterval {
		o.RefreshInterval = o.MinRefreshInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Transport == nil {
		o.Transport = DefaultTransport()
	}
	return o, nil
}

// Identity is what a verified token says about its holder.
type Identity struct {
	Provider string    // the provider's name
	Subject  string    // the token's sub claim
	Username string    // the value of the provider's username claim, a valid authrelay username
	Roles    []string  // the roles claim's values mapped through RoleMap, sorted, each once
	Expiry   time.Time // the token's exp: the NATS session must end by then
}

// Verifier verifies the bearer tokens of one provider. It fetches the
// provider's discovery document and key set in a goroutine of its own,
// started by NewVerifier and ended by Close. Its methods are safe for
// concurrent use.
type Verifier struct {
	cfg    atomic.Pointer[Provider]
	opts   Options
	client *http.Client
	log    *slog.Logger
	keys   atomic.Pointer[keySet]

	ctx     context.Context // ends at Close
	cancel  context.CancelFunc
	wake    chan struct{}
	stopped chan struct{}
	first   chan struct{} // closed when the first fetch cycle ends

	mu        sync.Mutex
	jwksURI   string    // from discovery; "" until discovered
	next      *cycle    // the cycle asked for or running; nil when none is
	lastStart time.Time // when the last cycle began (monotonic)
	lastEnd   time.Time
	lastErr   error // the last cycle's error; nil after a success
	failures  int   // cycles failed in a row
	cycles    int   // cycles ended
}

// cycle is one fetch of the provider's documents that callers can wait
// for: it begins no earlier than start, and done is closed when it ends.
type cycle struct {
	start time.Time
	done  chan struct{}
	err   error
}

// keySet is an immutable snapshot of a provider's usable keys.
type keySet struct {
	byKID   map[string][]jose.JSONWebKey
	all     []jose.JSONWebKey
	ids     []string
	fetched time.Time // monotonic
	wall    time.Time
}

// NewVerifier checks p and opts and returns a Verifier for p whose first
// discovery has begun in the background: it never waits for the provider.
// Until the keys are loaded, Verify waits for them within its bounds and
// then fails with ErrUnavailable.
func NewVerifier(p Provider, opts Options) (*Verifier, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("identity provider options: %w", err)
	}
	p.RoleMap = maps.Clone(p.RoleMap)
	ctx, cancel := context.WithCancel(context.Background())
	v := &Verifier{
		opts:    o,
		client:  newClient(o.Transport, o.FetchTimeout),
		log:     o.Logger.With("component", "idp", "provider", p.Name),
		ctx:     ctx,
		cancel:  cancel,
		wake:    make(chan struct{}, 1),
		stopped: make(chan struct{}),
		first:   make(chan struct{}),
	}
	v.cfg.Store(&p)
	v.next = &cycle{start: time.Now(), done: make(chan struct{})}
	go v.run()
	return v, nil
}

// Provider returns the provider v verifies tokens of.
func (v *Verifier) Provider() Provider {
	p := *v.cfg.Load()
	p.RoleMap = maps.Clone(p.RoleMap)
	return p
}

// setProvider changes the claim mapping of v to that of p, which has v's
// name and issuer, keeping v's keys.
func (v *Verifier) setProvider(p Provider) {
	p.RoleMap = maps.Clone(p.RoleMap)
	v.cfg.Store(&p)
}

// Close ends v's background fetches and waits for them to stop. Verify
// fails with ErrClosed afterwards.
func (v *Verifier) Close() {
	v.cancel()
	<-v.stopped
}

// parsedToken is a token parsed and its claims decoded, not yet verified.
type parsedToken struct {
	jws    *jose.JSONWebSignature
	alg    jose.SignatureAlgorithm
	kid    string
	claims jwt.Claims
	extra  map[string]json.RawMessage
}

// parse reads a raw token: its size, its algorithm and type, and its
// claims as JSON. It checks no signature and no claim value.
func parse(raw string) (*parsedToken, *Error) {
	if len(raw) > MaxTokenSize {
		return nil, refuse("", ReasonMalformed, "token is %d bytes long: the limit is %d", len(raw), MaxTokenSize)
	}
	if strings.Count(raw, ".") != 2 {
		return nil, refuse("", ReasonMalformed, "token is not a JWT in compact form (three base64url parts joined by dots)")
	}
	jws, err := jose.ParseSignedCompact(raw, algorithms)
	if err != nil {
		if alg, ok := headerAlg(raw); ok && !slices.Contains(algorithms, jose.SignatureAlgorithm(alg)) {
			return nil, refuse("", ReasonAlgorithm, "token is signed with alg %s, which is refused: only RS, PS, ES and EdDSA signatures are accepted", tokenText(alg))
		}
		return nil, refuse("", ReasonMalformed, "token is not a signed JWT: %s", remoteText(err))
	}
	if len(jws.Signatures) != 1 {
		return nil, refuse("", ReasonMalformed, "token has %d signatures: exactly one is accepted", len(jws.Signatures))
	}
	h := jws.Signatures[0].Header
	if typ, ok := h.ExtraHeaders[jose.HeaderType]; ok {
		s, _ := typ.(string)
		switch strings.TrimPrefix(strings.ToLower(s), "application/") {
		case "jwt", "at+jwt":
		default:
			return nil, refuse("", ReasonTokenType, "token has typ %s: only ID tokens and access tokens (JWT, at+jwt) are accepted", tokenText(s))
		}
	}
	pt := &parsedToken{jws: jws, alg: jose.SignatureAlgorithm(h.Algorithm), kid: h.KeyID}
	// One pass over the payload (the signed bytes, verified later) into
	// its claims, then the registered ones with go-jose's types, which
	// bound their values (a NumericDate too large to be a time is refused).
	if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &pt.extra); err != nil || pt.extra == nil {
		return nil, refuse("", ReasonMalformed, "token's payload is not a JSON object")
	}
	c := &pt.claims
	for name, dst := range map[string]any{
		"iss": &c.Issuer, "sub": &c.Subject, "aud": &c.Audience, "jti": &c.ID,
		"exp": &c.Expiry, "nbf": &c.NotBefore, "iat": &c.IssuedAt,
	} {
		if raw, ok := pt.extra[name]; ok {
			if err := json.Unmarshal(raw, dst); err != nil {
				return nil, refuse("", ReasonMalformed, "token's %s claim is not of its registered type", name)
			}
		}
	}
	return pt, nil
}

// headerAlg returns the alg of a compact JWS's header, for telling an
// algorithm refusal from a malformed token once go-jose has refused it.
func headerAlg(raw string) (string, bool) {
	head, _, _ := strings.Cut(raw, ".")
	b, err := base64URLDecode(head)
	if err != nil {
		return "", false
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(b, &h) != nil {
		return "", false
	}
	return h.Alg, true
}

// Verify checks a raw token (an ID token or a JWT access token) against
// v's provider: algorithm, type, issuer, audience, exp, nbf and iat, then
// the signature with the provider's key of the token's kid, then the
// claims authrelay maps. A key id not in the cached key set makes v fetch
// the key set again (at most once per MinRefreshInterval) and wait for it
// within ctx and MaxWait. The error is an *Error.
func (v *Verifier) Verify(ctx context.Context, raw string) (Identity, error) {
	pt, perr := parse(raw)
	if perr != nil {
		perr.Provider = v.cfg.Load().Name
		return Identity{}, perr
	}
	return v.verify(ctx, pt)
}

func (v *Verifier) verify(ctx context.Context, pt *parsedToken) (Identity, error) {
	p := v.cfg.Load()
	// The claims are checked before the signature: a token they refuse is
	// refused either way, and it neither costs a signature check nor makes
	// the verifier fetch keys for a kid it does not know.
	if err := v.checkClaims(p, &pt.claims); err != nil {
		return Identity{}, err
	}
	if err := v.checkSignature(ctx, p, pt); err != nil {
		return Identity{}, err
	}
	return identity(p, pt)
}

func (v *Verifier) checkClaims(p *Provider, c *jwt.Claims) error {
	if c.Issuer != p.Issuer {
		return refuse(p.Name, ReasonIssuer, "token is issued by %s, not by %s", tokenText(c.Issuer), p.Issuer)
	}
	if c.Expiry == nil {
		return refuse(p.Name, ReasonExpired, "token has no exp claim: a token without an expiry is refused")
	}
	now := v.opts.Now()
	err := c.ValidateWithLeeway(jwt.Expected{AnyAudience: jwt.Audience{p.Audience}, Time: now}, v.opts.Leeway)
	switch {
	case errors.Is(err, jwt.ErrInvalidAudience):
		return refuse(p.Name, ReasonAudience, "token's audience does not include %s", accounts.Quote(p.Audience))
	case errors.Is(err, jwt.ErrNotValidYet):
		return refuse(p.Name, ReasonNotYetValid, "token is not valid before %s (now %s, leeway %v)", c.NotBefore.Time().UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), v.opts.Leeway)
	case errors.Is(err, jwt.ErrIssuedInTheFuture):
		return refuse(p.Name, ReasonNotYetValid, "token is issued at %s, in the future (now %s, leeway %v)", c.IssuedAt.Time().UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), v.opts.Leeway)
	case errors.Is(err, jwt.ErrExpired):
		return refuse(p.Name, ReasonExpired, "token expired at %s", c.Expiry.Time().UTC().Format(time.RFC3339))
	case err != nil:
		return refuse(p.Name, ReasonClaims, "token's claims are refused: %s", remoteText(err))
	}
	// No leeway for exp: the session the relay grants ends at exp.
	if !now.Before(c.Expiry.Time()) {
		return refuse(p.Name, ReasonExpired, "token expired at %s", c.Expiry.Time().UTC().Format(time.RFC3339))
	}
	return nil
}

// checkSignature verifies pt's signature with the provider's key of its
// kid (or, without a kid, with each key that fits its alg), fetching the
// key set again when no key fits.
func (v *Verifier) checkSignature(ctx context.Context, p *Provider, pt *parsedToken) error {
	if v.ctx.Err() != nil {
		return refuse(p.Name, ReasonUnavailable, "%v", ErrClosed)
	}
	keys := v.candidates(pt)
	if len(keys) == 0 {
		var err error
		if keys, err = v.refreshFor(ctx, p, pt); err != nil {
			return err
		}
	}
	for i := range keys {
		if _, err := pt.jws.Verify(keys[i].Key); err == nil {
			return nil
		}
	}
	if pt.kid == "" {
		return refuse(p.Name, ReasonSignature, "token's signature (no kid) verifies with none of the provider's keys")
	}
	return refuse(p.Name, ReasonSignature, "token's signature does not verify with the provider's key %s", tokenText(pt.kid))
}

// candidates returns the cached keys that may have signed pt: those of its
// kid (all of them if it has none) whose type and alg fit its alg. Keys
// older than MaxKeyAge count as none.
func (v *Verifier) candidates(pt *parsedToken) []jose.JSONWebKey {
	ks := v.keys.Load()
	if ks == nil || time.Since(ks.fetched) > v.opts.MaxKeyAge {
		return nil
	}
	pool := ks.all
	if pt.kid != "" {
		pool = ks.byKID[pt.kid]
	}
	var out []jose.JSONWebKey
	for _, k := range pool {
		if fits(k, pt.alg) {
			out = append(out, k)
		}
	}
	return out
}

// fits reports whether key k may verify a signature made with alg: its own
// alg, when it names one, is alg, and its type is alg's.
func fits(k jose.JSONWebKey, alg jose.SignatureAlgorithm) bool {
	if k.Algorithm != "" && k.Algorithm != string(alg) {
		return false
	}
	switch k.Key.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(string(alg), "RS") || strings.HasPrefix(string(alg), "PS")
	case *ecdsa.PublicKey:
		return strings.HasPrefix(string(alg), "ES")
	case ed25519.PublicKey:
		return alg == jose.EdDSA
	}
	return false
}

// refreshFor asks for a fetch of the key set for a token whose key is not
// cached, and returns the keys that fit it once the fetch is done. It does
// not wait when the last fetch failed (the provider is down: fail fast) or
// when the rate limit puts the fetch beyond its deadline.
func (v *Verifier) refreshFor(ctx context.Context, p *Provider, pt *parsedToken) ([]jose.JSONWebKey, error) {
	c, lastErr := v.ask()
	if lastErr != nil {
		return nil, refuse(p.Name, ReasonUnavailable, "the provider's keys cannot be fetched: %s", remoteText(lastErr))
	}
	deadline := time.Now().Add(v.opts.MaxWait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if c.start.After(deadline) {
		return nil, v.unknownKey(p, pt, "the key set was fetched less than %v ago", v.opts.MinRefreshInterval)
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-c.done:
	case <-timer.C:
		return nil, refuse(p.Name, ReasonUnavailable, "timed out waiting for the provider's keys")
	case <-ctx.Done():
		return nil, refuse(p.Name, ReasonUnavailable, "timed out waiting for the provider's keys: %v", ctx.Err())
	}
	if c.err != nil {
		return nil, refuse(p.Name, ReasonUnavailable, "the provider's keys cannot be fetched: %s", remoteText(c.err))
	}
	keys := v.candidates(pt)
	if len(keys) == 0 {
		return nil, v.unknownKey(p, pt, "the key set was just fetched")
	}
	return keys, nil
}

func (v *Verifier) unknownKey(p *Provider, pt *parsedToken, why string, args ...any) *Error {
	if pt.kid == "" {
		return refuse(p.Name, ReasonUnknownKey, "token has no kid and no key of the provider fits alg %s ("+why+")", append([]any{tokenText(string(pt.alg))}, args...)...)
	}
	return refuse(p.Name, ReasonUnknownKey, "token's key %s is not in the provider's key set ("+why+")", append([]any{tokenText(pt.kid)}, args...)...)
}

// identity maps pt's verified claims to an Identity by p's claims.
func identity(p *Provider, pt *parsedToken) (Identity, error) {
	sub := pt.claims.Subject
	switch {
	case sub == "":
		return Identity{}, refuse(p.Name, ReasonClaims, "token has no sub claim")
	case len(sub) > 255 || !printable(sub):
		return Identity{}, refuse(p.Name, ReasonClaims, "token's sub claim %s is longer than 255 bytes or holds whitespace or control characters", tokenText(sub))
	}
	id := Identity{Provider: p.Name, Subject: sub, Expiry: pt.claims.Expiry.Time()}
	claim := p.usernameClaim()
	if claim == DefaultClaim {
		id.Username = sub
	} else {
		raw, ok := lookupClaim(pt.extra, claim)
		if !ok {
			return Identity{}, refuse(p.Name, ReasonClaims, "token has no %s claim, which the provider's usernames are read from", claim)
		}
		if err := json.Unmarshal(raw, &id.Username); err != nil {
			return Identity{}, refuse(p.Name, ReasonClaims, "token's %s claim is not a string", claim)
		}
	}
	if claim == "email" {
		// An address the provider has not verified may be anyone's: some
		// providers let a user set any email. A token that says so is
		// refused; one without email_verified is the provider's word.
		if raw, ok := pt.extra["email_verified"]; ok && !truthy(raw) {
			return Identity{}, refuse(p.Name, ReasonClaims, "token's email is not verified by the provider (email_verified is not true)")
		}
	}
	if err := accounts.ValidateName(id.Username); err != nil {
		return Identity{}, refuse(p.Name, ReasonClaims, "token's %s claim is no valid username: %s", claim, accounts.EscapeControl(err.Error()))
	}
	if p.RolesClaim != "" {
		if raw, ok := lookupClaim(pt.extra, p.RolesClaim); ok {
			id.Roles = mapRoles(raw, p.RoleMap)
		}
	}
	return id, nil
}

// truthy reports whether a claim is true: the JSON true, or the string
// "true" some providers send.
func truthy(raw json.RawMessage) bool {
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		return b
	}
	var s string
	return json.Unmarshal(raw, &s) == nil && strings.EqualFold(s, "true")
}

// lookupClaim finds claim name among a token's claims: a top-level claim of
// that name, or else, for a name with dots, the path through nested
// objects (realm_access.roles). Namespaced claims such as
// https://example.com/roles are top-level names with dots and match first.
func lookupClaim(claims map[string]json.RawMessage, name string) (json.RawMessage, bool) {
	if raw, ok := claims[name]; ok {
		return raw, true
	}
	if !strings.Contains(name, ".") {
		return nil, false
	}
	parts := strings.Split(name, ".")
	cur := claims
	for i, part := range parts {
		raw, ok := cur[part]
		if !ok {
			return nil, false
		}
		if i == len(parts)-1 {
			return raw, true
		}
		var next map[string]json.RawMessage
		if json.Unmarshal(raw, &next) != nil {
			return nil, false
		}
		cur = next
	}
	return nil, false
}

// mapRoles maps a roles claim, a string or an array (whose elements that
// are not strings are ignored), through m: the roles of the values m
// names, sorted, each once.
func mapRoles(raw json.RawMessage, m map[string]string) []string {
	var values []string
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		values = []string{one}
	} else {
		var many []json.RawMessage
		if json.Unmarshal(raw, &many) != nil {
			return nil
		}
		for _, r := range many {
			if json.Unmarshal(r, &one) == nil {
				values = append(values, one)
			}
		}
	}
	var roles []string
	for _, val := range values {
		if role, ok := m[val]; ok && !slices.Contains(roles, role) {
			roles = append(roles, role)
		}
	}
	slices.Sort(roles)
	return roles
}
