package idp

import (
	"context"
	"crypto/rsa"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/authrelay/authrelay/accounts"
)

func base64URLDecode(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(s)
}

// DefaultTransport returns the transport a Verifier uses when Options
// gives none: proxies from the environment, and timeouts on dialing, the
// TLS handshake and the response headers, so a provider that accepts a
// connection and then says nothing cannot hold a fetch open.
func DefaultTransport() *http.Transport {
	return &http.Transport{
		Proxy:                  http.ProxyFromEnvironment,
		DialContext:            (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    5 * time.Second,
		ResponseHeaderTimeout:  5 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
		MaxIdleConnsPerHost:    2,
		IdleConnTimeout:        90 * time.Second,
		ForceAttemptHTTP2:      true,
	}
}

var errRedirect = errors.New("the provider answered with a redirect, which is not followed: give the issuer URL the provider's tokens name")

var errTooLarge = fmt.Errorf("the provider's answer is longer than %d bytes", MaxDocumentSize)

// newClient returns the HTTP client of a Verifier: no redirects, a time
// limit on each request, and bodies cut at MaxDocumentSize.
func newClient(rt http.RoundTripper, timeout time.Duration) *http.Client {
	return &http.Client{
		Transport:     limitTransport{rt},
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return errRedirect },
	}
}

// limitTransport cuts every response body at MaxDocumentSize: go-oidc's
// discovery reads the whole body.
type limitTransport struct{ base http.RoundTripper }

func (t limitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &limitedBody{rc: resp.Body, left: MaxDocumentSize}
	return resp, nil
}

type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			return 0, errTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// ask returns the fetch cycle a caller missing a key waits for, asking
// for one if none is pending, and the error of the last cycle that ended.
func (v *Verifier) ask() (*cycle, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.next == nil {
		start := time.Now()
		if earliest := v.lastStart.Add(v.opts.MinRefreshInterval); earliest.After(start) {
			start = earliest
		}
		v.next = &cycle{start: start, done: make(chan struct{})}
	}
	select {
	case v.wake <- struct{}{}:
	default:
	}
	if v.cycles == 0 {
		return v.next, nil // the first cycle: wait for it
	}
	return v.next, v.lastErr
}

// run is the fetch loop: a cycle at start, again when a caller asks (no
// sooner than MinRefreshInterval after the last), after a failure with a
// growing delay, and every RefreshInterval.
func (v *Verifier) run() {
	defer close(v.stopped)
	delay := time.Duration(0)
	for {
		timer := time.NewTimer(delay)
		select {
		case <-v.ctx.Done():
			timer.Stop()
			v.end(ErrClosed)
			return
		case <-timer.C:
		case <-v.wake:
			timer.Stop()
		}
		v.mu.Lock()
		wait := time.Until(v.lastStart.Add(v.opts.MinRefreshInterval))
		v.mu.Unlock()
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-v.ctx.Done():
				t.Stop()
				v.end(ErrClosed)
				return
			case <-t.C:
			}
		}
		err := v.fetchCycle()
		switch {
		case err == nil:
			delay = v.opts.RefreshInterval
		default:
			delay = v.opts.MinRefreshInterval << min(v.failuresNow()-1, 4)
			if delay > time.Minute {
				delay = max(time.Minute, v.opts.MinRefreshInterval)
			}
		}
	}
}

func (v *Verifier) failuresNow() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.failures
}

// fetchCycle fetches the discovery document (when not yet had, or after a
// failure) and the key set, and publishes the keys.
func (v *Verifier) fetchCycle() error {
	v.mu.Lock()
	if v.next == nil {
		v.next = &cycle{done: make(chan struct{})}
	}
	v.lastStart = time.Now()
	jwksURI := v.jwksURI
	rediscover := jwksURI == "" || v.lastErr != nil
	v.mu.Unlock()

	p := v.cfg.Load()
	err := func() error {
		if rediscover {
			uri, err := v.discover(p)
			if err != nil {
				return err
			}
			jwksURI = uri
			v.mu.Lock()
			v.jwksURI = uri
			v.mu.Unlock()
		}
		ks, err := v.fetchKeys(jwksURI)
		if err != nil {
			return err
		}
		old := v.keys.Load()
		v.keys.Store(ks)
		if old == nil || !slices.Equal(old.ids, ks.ids) {
			v.log.Info("identity provider keys loaded", "keys", len(ks.all), "kids", strings.Join(ks.ids, ","))
		}
		return nil
	}()
	if err != nil && v.ctx.Err() == nil {
		v.log.Warn("identity provider fetch failed", "error", remoteText(err))
	}
	v.end(err)
	return err
}

// end ends the pending cycle with err.
func (v *Verifier) end(err error) {
	v.mu.Lock()
	c := v.next
	v.next = nil
	// A wake from a caller that asked while this cycle was pending was
	// answered by it (ask hands out v.next under the same lock): left in
	// the channel, it would start another fetch nobody waits for.
	select {
	case <-v.wake:
	default:
	}
	v.lastEnd = time.Now()
	v.lastErr = err
	if err != nil {
		v.failures++
	} else {
		v.failures = 0
	}
	v.cycles++
	if v.cycles == 1 {
		close(v.first)
	}
	v.mu.Unlock()
	if c != nil {
		c.err = err
		close(c.done)
	}
}

// discover fetches the provider's discovery document through go-oidc,
// which checks that it names the configured issuer, and returns its
// jwks_uri once that is an allowed URL.
func (v *Verifier) discover(p *Provider) (string, error) {
	ctx, cancel := context.WithTimeout(v.ctx, v.opts.FetchTimeout)
	defer cancel()
	op, err := oidc.NewProvider(oidc.ClientContext(ctx, v.client), p.Issuer)
	if err != nil {
		var mismatch *oidc.IssuerMismatchError
		if errors.As(err, &mismatch) {
			return "", fmt.Errorf("discovery: the provider's document names issuer %s, not %s: give the issuer exactly as the provider writes it", tokenText(mismatch.Discovered), p.Issuer)
		}
		return "", fmt.Errorf("discovery at %s: %s", strings.TrimSuffix(p.Issuer, "/")+"/.well-known/openid-configuration", remoteText(err))
	}
	var meta struct {
		JWKSURI string `json:"jwks_uri"`
	}
	if err := op.Claims(&meta); err != nil {
		return "", fmt.Errorf("discovery: %s", remoteText(err))
	}
	if meta.JWKSURI == "" {
		return "", errors.New("discovery: the provider's document has no jwks_uri")
	}
	u, err := url.Parse(meta.JWKSURI)
	if err != nil || u.Host == "" || u.User != nil {
		return "", fmt.Errorf("discovery: the provider's jwks_uri %s is not an absolute URL without a user", tokenText(meta.JWKSURI))
	}
	if err := checkScheme("jwks_uri", u); err != nil {
		return "", fmt.Errorf("discovery: %w", err)
	}
	return meta.JWKSURI, nil
}

// fetchKeys fetches and parses the key set at uri.
func (v *Verifier) fetchKeys(uri string) (*keySet, error) {
	ctx, cancel := context.WithTimeout(v.ctx, v.opts.FetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, fmt.Errorf("key set: %s", remoteText(err))
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("key set at %s: %s", uri, remoteText(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("key set at %s: the provider answered %s", uri, resp.Status)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("key set at %s: %s", uri, remoteText(err))
	}
	ks, skipped, err := parseKeySet(body)
	if err != nil {
		return nil, fmt.Errorf("key set at %s: %w", uri, err)
	}
	if skipped > 0 {
		v.log.Info("identity provider keys skipped", "skipped", skipped, "reason", "not a public signing key of a supported type, RSA under 2048 bits, or past the limit of keys")
	}
	return ks, nil
}

// parseKeySet reads a JWK set, keeping the public signing keys of the
// types tokens may be signed with (RSA of at least MinRSABits, ECDSA,
// Ed25519), at most MaxKeys, and counting the rest as skipped. A set with
// no usable key is an error.
func parseKeySet(body []byte) (*keySet, int, error) {
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, 0, errors.New("not a JSON web key set")
	}
	ks := &keySet{byKID: map[string][]jose.JSONWebKey{}, fetched: time.Now()}
	ks.wall = ks.fetched
	skipped := 0
	for _, r := range raw.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(r); err != nil || !usable(k) || len(ks.all) == MaxKeys {
			skipped++
			continue
		}
		ks.all = append(ks.all, k)
		ks.byKID[k.KeyID] = append(ks.byKID[k.KeyID], k)
		// ids are for Status and logs: clipped and quoted like any string
		// from the network.
		if id := accounts.ClientText(k.KeyID); !slices.Contains(ks.ids, id) {
			ks.ids = append(ks.ids, id)
		}
	}
	if len(ks.all) == 0 {
		return nil, skipped, fmt.Errorf("the set holds no usable signing key (%d skipped)", skipped)
	}
	slices.Sort(ks.ids)
	return ks, skipped, nil
}

// usable reports whether k may verify tokens: a valid public key (never a
// symmetric one: an "oct" key would let HMAC in), for signatures, of a
// supported type and size.
func usable(k jose.JSONWebKey) bool {
	if !k.Valid() || !k.IsPublic() || (k.Use != "" && k.Use != "sig") {
		return false
	}
	if k.Algorithm != "" && !slices.Contains(algorithms, jose.SignatureAlgorithm(k.Algorithm)) {
		return false
	}
	if rk, ok := k.Key.(*rsa.PublicKey); ok && rk.N.BitLen() < MinRSABits {
		return false
	}
	for _, alg := range algorithms {
		if fits(k, alg) {
			return true
		}
	}
	return false
}

// Status is what a Verifier knows of its provider, for 'idp show' and
// doctor.
type Status struct {
	Provider    string
	Discovered  bool      // the discovery document was fetched
	JWKSURI     string    // the key set's URL from discovery
	KeyIDs      []string  // the kids of the usable keys held, clipped and quoted for display
	KeysFetched time.Time // when the keys held were fetched; zero if none
	LastAttempt time.Time // when the last fetch ended; zero if none has
	LastError   string    // the last fetch's error; "" after a success
}

// Status returns what v knows of its provider now, without fetching.
func (v *Verifier) Status() Status {
	v.mu.Lock()
	defer v.mu.Unlock()
	s := Status{Provider: v.cfg.Load().Name, Discovered: v.jwksURI != "", JWKSURI: v.jwksURI}
	if v.cycles > 0 {
		s.LastAttempt = v.lastEnd
	}
	if v.lastErr != nil {
		s.LastError = remoteText(v.lastErr)
	}
	if ks := v.keys.Load(); ks != nil {
		s.KeyIDs = slices.Clone(ks.ids)
		s.KeysFetched = ks.wall
	}
	return s
}

// Check reports whether v can verify tokens: the provider was reachable at
// the last fetch, its discovery document and key set were fetched, and
// the keys are not older than MaxKeyAge. It waits for the first fetch
// within ctx; it fetches nothing itself. The error wraps ErrUnavailable.
func (v *Verifier) Check(ctx context.Context) error {
	name := v.cfg.Load().Name
	select {
	case <-v.first:
	case <-ctx.Done():
		return refuse(name, ReasonUnavailable, "the provider's keys were not fetched in time: %v", ctx.Err())
	}
	v.mu.Lock()
	lastErr := v.lastErr
	v.mu.Unlock()
	if lastErr != nil {
		return refuse(name, ReasonUnavailable, "%s", remoteText(lastErr))
	}
	ks := v.keys.Load()
	if ks == nil || time.Since(ks.fetched) > v.opts.MaxKeyAge {
		return refuse(name, ReasonUnavailable, "the provider's keys are older than %v", v.opts.MaxKeyAge)
	}
	return nil
}
