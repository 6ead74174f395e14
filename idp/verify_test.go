package idp

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func newVerifier(t testing.TB, p Provider, opts Options) *Verifier {
	t.Helper()
	v, err := NewVerifier(p, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// mustVerify verifies raw and fails the test on an error.
func mustVerify(t *testing.T, v interface {
	Verify(context.Context, string) (Identity, error)
}, raw string) Identity {
	t.Helper()
	id, err := v.Verify(ctxTimeout(t, 5*time.Second), raw)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return id
}

// wantRefused checks that err is an *Error with reason, wrapping
// ErrUnavailable for ReasonUnavailable and ErrInvalidToken otherwise, and
// that its message holds no part of the token raw.
func wantRefused(t *testing.T, err error, reason Reason, raw string) {
	t.Helper()
	if err == nil {
		t.Fatalf("verify accepted the token; want reason %s", reason)
	}
	if got := ReasonOf(err); got != reason {
		t.Fatalf("reason %q (%v); want %q", got, err, reason)
	}
	want := ErrInvalidToken
	if reason == ReasonUnavailable {
		want = ErrUnavailable
	}
	if !errors.Is(err, want) {
		t.Errorf("error %v does not wrap %v", err, want)
	}
	for i, part := range strings.Split(raw, ".") {
		if len(part) >= 8 && strings.Contains(err.Error(), part) {
			t.Errorf("error %q holds part %d of the token", err, i)
		}
	}
}

func TestDiscoveryAndCheck(t *testing.T) {
	o := newTestOP(t, false)
	v := newVerifier(t, o.provider("zitadel"), Options{})
	if err := v.Check(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatalf("check: %v", err)
	}
	s := v.Status()
	if !s.Discovered || s.JWKSURI != o.issuer+"/keys" || !slices.Equal(s.KeyIDs, []string{"key-1"}) || s.LastError != "" || s.KeysFetched.IsZero() {
		t.Errorf("status %+v; want discovered, jwks_uri %s/keys, key-1, no error", s, o.issuer)
	}
	if d, k := o.discoveryRequests.Load(), o.jwksRequests.Load(); d != 1 || k != 1 {
		t.Errorf("%d discovery and %d key set requests at start; want 1 and 1", d, k)
	}
}

func TestVerifyIDToken(t *testing.T) {
	o := newTestOP(t, false)
	raw := o.idToken()
	for _, tc := range []struct {
		claim, want string
	}{
		{"", userID},
		{"sub", userID},
		{"email", userEmail},
		{"preferred_username", "test-user@127.0.0.1"},
	} {
		t.Run("claim="+tc.claim, func(t *testing.T) {
			p := o.provider("zitadel")
			p.UsernameClaim = tc.claim
			id := mustVerify(t, newVerifier(t, p, Options{}), raw)
			exp := int64(unverifiedClaims(t, raw)["exp"].(float64))
			if id.Provider != "zitadel" || id.Subject != userID || id.Username != tc.want || id.Expiry.Unix() != exp || id.Roles != nil {
				t.Errorf("identity %+v; want provider zitadel, subject %s, username %s, expiry %d, no roles", id, userID, tc.want, exp)
			}
		})
	}
}

func TestVerifyAccessTokens(t *testing.T) {
	o := newTestOP(t, false)
	v := newVerifier(t, o.provider("zitadel"), Options{})
	t.Run("client credentials JWT", func(t *testing.T) {
		id := mustVerify(t, v, o.accessToken())
		if id.Subject != serviceClient || id.Username != serviceClient {
			t.Errorf("identity %+v; want subject and username %s", id, serviceClient)
		}
	})
	t.Run("at+jwt", func(t *testing.T) {
		raw := o.atJWT()
		head, _, _ := strings.Cut(raw, ".")
		b, err := base64.RawURLEncoding.DecodeString(head)
		if err != nil || !strings.Contains(string(b), `"typ":"at+jwt"`) {
			t.Fatalf("header %s (%v); want typ at+jwt", b, err)
		}
		if id := mustVerify(t, v, raw); id.Subject != serviceClient {
			t.Errorf("identity %+v; want subject %s", id, serviceClient)
		}
		if id := mustVerify(t, v, o.resign(o.accessToken(), jose.HeaderType, "application/at+jwt")); id.Subject != serviceClient {
			t.Errorf("identity %+v; want subject %s", id, serviceClient)
		}
	})
	t.Run("other token types refused", func(t *testing.T) {
		for _, typ := range []string{"logout+jwt", "dpop+jwt", "secevent+jwt"} {
			raw := o.resign(o.accessToken(), jose.HeaderType, typ)
			_, err := v.Verify(ctxTimeout(t, 5*time.Second), raw)
			wantRefused(t, err, ReasonTokenType, raw)
		}
	})
}

func TestKeyRotation(t *testing.T) {
	o := newTestOP(t, false)
	v := newVerifier(t, o.provider("zitadel"), Options{MinRefreshInterval: 100 * time.Millisecond})
	old := o.accessToken()
	mustVerify(t, v, old)
	before := o.jwksRequests.Load()

	o.rotate("key-2")
	fresh := o.accessToken()
	if kid := headerKID(t, fresh); kid != "key-2" {
		t.Fatalf("the provider signs with %q after rotating; want key-2", kid)
	}
	mustVerify(t, v, fresh)
	if got := o.jwksRequests.Load() - before; got != 1 {
		t.Errorf("%d key set fetches for the new kid; want 1", got)
	}
	for range 20 {
		mustVerify(t, v, o.accessToken())
		mustVerify(t, v, old)
	}
	if got := o.jwksRequests.Load() - before; got != 1 {
		t.Errorf("%d key set fetches after 40 more tokens of known keys; want still 1", got)
	}
	if s := v.Status(); !slices.Equal(s.KeyIDs, []string{"key-1", "key-2"}) {
		t.Errorf("keys %v after rotation; want key-1, key-2", s.KeyIDs)
	}
}

func headerKID(t testing.TB, raw string) string {
	t.Helper()
	head, _, _ := strings.Cut(raw, ".")
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	return h.Kid
}

func TestTimeChecks(t *testing.T) {
	o := newTestOP(t, false)
	raw := o.accessToken()
	c := unverifiedClaims(t, raw)
	exp := time.Unix(int64(c["exp"].(float64)), 0)
	iat := time.Unix(int64(c["iat"].(float64)), 0)
	for _, tc := range []struct {
		name   string
		now    time.Time
		reason Reason // "" for accepted
	}{
		{"valid", iat.Add(time.Minute), ""},
		{"within leeway before nbf", iat.Add(-20 * time.Second), ""},
		{"not yet valid", iat.Add(-10 * time.Minute), ReasonNotYetValid},
		{"a second before exp", exp.Add(-time.Second), ""},
		{"at exp", exp, ReasonExpired},
		{"expired", exp.Add(10 * time.Second), ReasonExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := tc.now
			v := newVerifier(t, o.provider("zitadel"), Options{Now: func() time.Time { return now }, Leeway: 30 * time.Second})
			_, err := v.Verify(ctxTimeout(t, 5*time.Second), raw)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("verify at %v: %v", tc.now, err)
				}
				return
			}
			wantRefused(t, err, tc.reason, raw)
		})
	}
	t.Run("no exp", func(t *testing.T) {
		c := unverifiedClaims(t, raw)
		delete(c, "exp")
		forged := signRS256(t, o.signer(), c, nil)
		_, err := newVerifier(t, o.provider("zitadel"), Options{}).Verify(ctxTimeout(t, 5*time.Second), forged)
		wantRefused(t, err, ReasonExpired, forged)
	})
}

func TestAudienceAndIssuer(t *testing.T) {
	o := newTestOP(t, false)
	other := newTestOP(t, false)
	raw := o.idToken()

	p := o.provider("zitadel")
	p.Audience = "some-other-client"
	_, err := newVerifier(t, p, Options{}).Verify(ctxTimeout(t, 5*time.Second), raw)
	wantRefused(t, err, ReasonAudience, raw)

	v := newVerifier(t, other.provider("other"), Options{})
	if err := v.Check(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	before := other.jwksRequests.Load()
	_, err = v.Verify(ctxTimeout(t, 5*time.Second), raw)
	wantRefused(t, err, ReasonIssuer, raw)
	if got := other.jwksRequests.Load() - before; got != 0 {
		t.Errorf("a token of another issuer made %d key set fetches; want 0", got)
	}
}

// TestForgedTokens presents tokens whose claims are a real token's and
// whose signature is not the provider's: none of them verifies, and none
// makes the verifier fetch keys, except the unknown kid (once).
func TestForgedTokens(t *testing.T) {
	o := newTestOP(t, false)
	other := newTestOP(t, false)
	v := newVerifier(t, o.provider("zitadel"), Options{MinRefreshInterval: 50 * time.Millisecond})
	real := o.accessToken()
	mustVerify(t, v, real)
	claims := unverifiedClaims(t, real)
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	pub := &o.signer().key.PublicKey

	compact := func(header map[string]any, sign func(input string) []byte) string {
		h, err := json.Marshal(header)
		if err != nil {
			t.Fatal(err)
		}
		input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(payload)
		return input + "." + base64.RawURLEncoding.EncodeToString(sign(input))
	}
	hs256 := func(secret []byte) func(string) []byte {
		return func(input string) []byte {
			m := hmac.New(sha256.New, secret)
			m.Write([]byte(input))
			return m.Sum(nil)
		}
	}
	pkix, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	jwk, err := json.Marshal(jose.JSONWebKey{Key: pub, KeyID: "key-1", Algorithm: "RS256", Use: "sig"})
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string][]byte{
		"PKIX PEM":  pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix}),
		"PKCS1 PEM": pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(pub)}),
		"DER":       pkix,
		"JWK":       jwk,
	}

	before := o.jwksRequests.Load()
	for _, tc := range []struct {
		name   string
		raw    string
		reason Reason
	}{
		{"alg none", compact(map[string]any{"alg": "none", "typ": "JWT", "kid": "key-1"}, func(string) []byte { return nil }), ReasonAlgorithm},
		{"alg None", compact(map[string]any{"alg": "None", "kid": "key-1"}, func(string) []byte { return nil }), ReasonAlgorithm},
		{"HS256 with the public key as PKIX PEM", compact(map[string]any{"alg": "HS256", "typ": "JWT", "kid": "key-1"}, hs256(secrets["PKIX PEM"])), ReasonAlgorithm},
		{"HS256 with the public key as PKCS1 PEM", compact(map[string]any{"alg": "HS256", "kid": "key-1"}, hs256(secrets["PKCS1 PEM"])), ReasonAlgorithm},
		{"HS256 with the public key as DER", compact(map[string]any{"alg": "HS256", "kid": "key-1"}, hs256(secrets["DER"])), ReasonAlgorithm},
		{"HS256 with the public key as JWK", compact(map[string]any{"alg": "HS256", "kid": "key-1"}, hs256(secrets["JWK"])), ReasonAlgorithm},
		{"HS256 without kid", compact(map[string]any{"alg": "HS256"}, hs256(secrets["PKIX PEM"])), ReasonAlgorithm},
		{"another provider's key under this provider's kid", signRS256(t, other.signer(), claims, nil), ReasonSignature},
		{"real header and claims, another signature", real[:strings.LastIndex(real, ".")+1] + strings.Split(signRS256(t, other.signer(), claims, nil), ".")[2], ReasonSignature},
		{"no kid, another provider's key", signNoKID(t, other.signer(), claims), ReasonSignature},
		{"not a JWT", "not-a-token", ReasonMalformed},
		{"too long", strings.Repeat("a", MaxTokenSize) + ".b.c", ReasonMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(ctxTimeout(t, 5*time.Second), tc.raw)
			wantRefused(t, err, tc.reason, tc.raw)
			for name, secret := range secrets {
				if strings.Contains(err.Error(), string(secret)) || strings.Contains(err.Error(), base64.RawURLEncoding.EncodeToString(secret)) {
					t.Errorf("error holds the public key as %s", name)
				}
			}
		})
	}
	if got := o.jwksRequests.Load() - before; got != 0 {
		t.Errorf("forged tokens of known kids made %d key set fetches; want 0", got)
	}

	t.Run("another provider's key and kid", func(t *testing.T) {
		other.rotate("other-key")
		raw := signRS256(t, other.signer(), claims, nil)
		_, err := v.Verify(ctxTimeout(t, 5*time.Second), raw)
		wantRefused(t, err, ReasonUnknownKey, raw)
		if got := o.jwksRequests.Load() - before; got != 1 {
			t.Errorf("an unknown kid made %d key set fetches; want 1", got)
		}
	})
}

func signNoKID(t testing.TB, k *opKey, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: k.key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s.Sign(mustJSON(t, claims))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestUnknownKidFlood sends tokens with ever new key ids from several
// goroutines: the provider sees at most one key set fetch per
// MinRefreshInterval, and tokens of known keys keep verifying meanwhile.
func TestUnknownKidFlood(t *testing.T) {
	o := newTestOP(t, false)
	attacker := newTestOP(t, false)
	const interval = 250 * time.Millisecond
	v := newVerifier(t, o.provider("zitadel"), Options{MinRefreshInterval: interval})
	good := o.accessToken()
	mustVerify(t, v, good)
	claims := unverifiedClaims(t, good)
	before := o.jwksRequests.Load()

	const flood = 1500 * time.Millisecond
	start := time.Now()
	var sent, refused atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 64) // one per goroutine at most
	for g := range 48 {
		wg.Go(func() {
			for i := 0; time.Since(start) < flood; i++ {
				k := &opKey{id: fmt.Sprintf("flood-%d-%d", g, i), key: attacker.signer().key}
				raw, err := trySignRS256(k, claims, nil)
				if err != nil {
					errs <- err
					return
				}
				_, err = v.Verify(context.Background(), raw)
				sent.Add(1)
				if r := ReasonOf(err); r != ReasonUnknownKey {
					errs <- fmt.Errorf("flood token: reason %q (%v); want unknown_key", r, err)
					return
				}
				refused.Add(1)
			}
		})
	}
	var slowest time.Duration
	wg.Go(func() {
		for time.Since(start) < flood {
			t0 := time.Now()
			if _, err := v.Verify(context.Background(), good); err != nil {
				errs <- fmt.Errorf("good token during the flood: %v", err)
				return
			}
			slowest = max(slowest, time.Since(t0))
			time.Sleep(5 * time.Millisecond)
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	elapsed := time.Since(start)
	fetches := o.jwksRequests.Load() - before
	limit := int64(elapsed/interval) + 2
	t.Logf("%d flood tokens in %v, %d key set fetches (limit %d), slowest good verify %v", sent.Load(), elapsed.Round(time.Millisecond), fetches, limit, slowest)
	if sent.Load() < 20 {
		t.Fatalf("only %d flood tokens were sent", sent.Load())
	}
	if fetches > limit || fetches < 1 {
		t.Errorf("%d key set fetches for %d unknown kids in %v; want 1 to %d", fetches, sent.Load(), elapsed, limit)
	}
	if slowest > time.Second {
		t.Errorf("a token of a known key took %v during the flood", slowest)
	}
}

// TestRateLimitedRotation: a new kid seen right after a fetch is refused
// at once (the next fetch is beyond the caller's wait), and the fetch it
// asked for runs in the background when the interval is over, so the next
// login with that kid succeeds without a fetch of its own.
func TestRateLimitedRotation(t *testing.T) {
	o := newTestOP(t, false)
	const interval = time.Second
	v := newVerifier(t, o.provider("zitadel"), Options{MinRefreshInterval: interval, MaxWait: 100 * time.Millisecond})
	if err := v.Check(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	before := o.jwksRequests.Load()
	o.rotate("key-2")
	raw := o.accessToken()
	_, err := v.Verify(ctxTimeout(t, 5*time.Second), raw)
	wantRefused(t, err, ReasonUnknownKey, raw)
	waitFor(t, 3*interval, "the deferred key set fetch", func() bool { return o.jwksRequests.Load() > before })
	waitFor(t, time.Second, "key-2 in the key set", func() bool { return slices.Contains(v.Status().KeyIDs, "key-2") })
	mustVerify(t, v, raw)
	if got := o.jwksRequests.Load() - before; got != 1 {
		t.Errorf("%d key set fetches; want 1", got)
	}
}

func TestProviderDown(t *testing.T) {
	t.Run("failing at start, then up", func(t *testing.T) {
		o := newTestOP(t, false)
		raw := o.accessToken() // before it goes down
		o.mode.Store(opFail)
		v := newVerifier(t, o.provider("zitadel"), Options{MinRefreshInterval: 100 * time.Millisecond})
		err := v.Check(ctxTimeout(t, 5*time.Second))
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "503") {
			t.Fatalf("check: %v; want unavailable with the 503", err)
		}
		t0 := time.Now()
		_, err = v.Verify(ctxTimeout(t, time.Second), raw)
		wantRefused(t, err, ReasonUnavailable, raw)
		if d := time.Since(t0); d > 200*time.Millisecond {
			t.Errorf("verify with the provider known down took %v; want a fast refusal", d)
		}
		o.mode.Store(opServe)
		waitFor(t, 5*time.Second, "the background retry", func() bool { return v.Check(context.Background()) == nil })
		mustVerify(t, v, raw)
	})

	t.Run("hanging, others unaffected", func(t *testing.T) {
		up := newTestOP(t, false)
		slow := newTestOP(t, false)
		upRaw := up.accessToken()
		slowRaw := slow.accessToken()
		slow.mode.Store(opHang)
		opts := Options{FetchTimeout: 3 * time.Second, MinRefreshInterval: 100 * time.Millisecond}
		vu := newVerifier(t, up.provider("up"), opts)
		vs := newVerifier(t, slow.provider("slow"), opts)
		mustVerify(t, vu, upRaw)

		var wg sync.WaitGroup
		var slowErr error
		var slowTook time.Duration
		wg.Go(func() {
			t0 := time.Now()
			_, slowErr = vs.Verify(ctxTimeout(t, 500*time.Millisecond), slowRaw)
			slowTook = time.Since(t0)
		})
		var upTook time.Duration
		wg.Go(func() {
			for range 50 {
				t0 := time.Now()
				if _, err := vu.Verify(ctxTimeout(t, time.Second), upRaw); err != nil {
					t.Errorf("the provider that is up: %v", err)
					return
				}
				upTook = max(upTook, time.Since(t0))
			}
		})
		wg.Wait()
		wantRefused(t, slowErr, ReasonUnavailable, slowRaw)
		if slowTook > time.Second {
			t.Errorf("verify against the hanging provider took %v with a 500ms deadline", slowTook)
		}
		if upTook > 250*time.Millisecond {
			t.Errorf("the provider that is up took up to %v per verify while the other hung", upTook)
		}
		err := vs.Check(ctxTimeout(t, 200*time.Millisecond))
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("check of the hanging provider: %v; want unavailable", err)
		}
	})

	t.Run("hanging after keys loaded", func(t *testing.T) {
		o := newTestOP(t, false)
		v := newVerifier(t, o.provider("zitadel"), Options{MinRefreshInterval: 50 * time.Millisecond, FetchTimeout: 3 * time.Second})
		known := o.accessToken()
		mustVerify(t, v, known)
		o.rotate("key-2")
		fresh := o.accessToken()
		o.mode.Store(opHang)
		done := make(chan error, 1)
		t0 := time.Now()
		go func() {
			_, err := v.Verify(ctxTimeout(t, 400*time.Millisecond), fresh)
			done <- err
		}()
		// The fetch for key-2 hangs; known keys do not wait for it.
		time.Sleep(50 * time.Millisecond)
		for range 20 {
			k0 := time.Now()
			mustVerify(t, v, known)
			if d := time.Since(k0); d > 100*time.Millisecond {
				t.Errorf("a known key took %v while a fetch hung", d)
			}
		}
		err := <-done
		wantRefused(t, err, ReasonUnavailable, fresh)
		if d := time.Since(t0); d > time.Second {
			t.Errorf("the new kid's verify took %v with a 400ms deadline", d)
		}
	})

	t.Run("connection refused", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		issuer := srv.URL
		srv.Close()
		v := newVerifier(t, Provider{Name: "gone", Issuer: issuer, Audience: "a"}, Options{})
		err := v.Check(ctxTimeout(t, 5*time.Second))
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("check: %v; want unavailable", err)
		}
		o := newTestOP(t, false)
		raw := o.accessToken()
		_, err = v.Verify(ctxTimeout(t, time.Second), raw)
		wantRefused(t, err, ReasonIssuer, raw) // another issuer: refused before any fetch
	})
}

func TestClaimsMapping(t *testing.T) {
	o := newTestOP(t, false)
	o.setClaim("groups", []string{"nats-admins", "staff", "unmapped"})
	o.setClaim("role", "staff")
	o.setClaim("realm_access", map[string]any{"roles": []string{"nats-admins"}})
	o.setClaim("https://acme.example/roles", []any{"staff", 7, "nats-admins"})
	o.setClaim("display", "Test User")
	o.setClaim("tricky", "bad\x1b[31mname")
	roleMap := map[string]string{"nats-admins": "admin", "staff": "reader"}
	for _, tc := range []struct {
		name      string
		raw       func() string
		roles     string
		username  string
		wantRoles []string
		reason    Reason
	}{
		{"array claim, ID token", o.idToken, "groups", "", []string{"admin", "reader"}, ""},
		{"array claim, access token", o.accessToken, "groups", "", []string{"admin", "reader"}, ""},
		{"string claim", o.accessToken, "role", "", []string{"reader"}, ""},
		{"nested path", o.accessToken, "realm_access.roles", "", []string{"admin"}, ""},
		{"namespaced claim, non-strings ignored", o.accessToken, "https://acme.example/roles", "", []string{"admin", "reader"}, ""},
		{"absent roles claim", o.accessToken, "nope", "", nil, ""},
		{"missing username claim", o.accessToken, "", "email", nil, ReasonClaims},
		{"username with a space", o.accessToken, "", "display", nil, ReasonClaims},
		{"username with an escape", o.accessToken, "", "tricky", nil, ReasonClaims},
		{"username claim not a string", o.accessToken, "", "groups", nil, ReasonClaims},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := o.provider("zitadel")
			p.UsernameClaim = tc.username
			if tc.roles != "" {
				p.RolesClaim, p.RoleMap = tc.roles, roleMap
			}
			raw := tc.raw()
			id, err := newVerifier(t, p, Options{}).Verify(ctxTimeout(t, 5*time.Second), raw)
			if tc.reason != "" {
				wantRefused(t, err, tc.reason, raw)
				if strings.Contains(err.Error(), "\x1b") {
					t.Errorf("error %q holds an escape character from the token", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(id.Roles, tc.wantRoles) {
				t.Errorf("roles %v; want %v", id.Roles, tc.wantRoles)
			}
		})
	}
}

// TestUnverifiedEmail: with usernames read from email, a token whose
// provider says the address is not verified is refused.
func TestUnverifiedEmail(t *testing.T) {
	o := newTestOP(t, false)
	p := o.provider("zitadel")
	p.UsernameClaim = "email"
	v := newVerifier(t, p, Options{})
	o.setClaim("email", "svc@acme.example")
	for _, tc := range []struct {
		verified any // nil: no email_verified claim
		ok       bool
	}{{nil, true}, {true, true}, {"true", true}, {false, false}, {"false", false}, {"yes", false}} {
		if tc.verified == nil {
			o.setClaim("email_verified", nil)
		} else {
			o.setClaim("email_verified", tc.verified)
		}
		c := unverifiedClaims(t, o.accessToken())
		if tc.verified == nil {
			delete(c, "email_verified")
		}
		raw := signRS256(t, o.signer(), c, nil)
		id, err := v.Verify(ctxTimeout(t, 5*time.Second), raw)
		if tc.ok {
			if err != nil || id.Username != "svc@acme.example" {
				t.Errorf("email_verified %v: %+v, %v; want svc@acme.example", tc.verified, id, err)
			}
			continue
		}
		wantRefused(t, err, ReasonClaims, raw)
	}
}

func TestSet(t *testing.T) {
	a := newTestOP(t, false)
	b := newTestOP(t, false)
	s, err := NewSet(Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	pa, pb := a.provider("a"), b.provider("b")
	if err := s.Update([]Provider{pa, pb}); err != nil {
		t.Fatal(err)
	}
	if got := s.Names(); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("names %v", got)
	}
	if id := mustVerify(t, s, a.accessToken()); id.Provider != "a" {
		t.Errorf("a's token verified as %s's", id.Provider)
	}
	if id := mustVerify(t, s, b.idToken()); id.Provider != "b" {
		t.Errorf("b's token verified as %s's", id.Provider)
	}
	c := newTestOP(t, false)
	raw := c.accessToken()
	_, err = s.Verify(ctxTimeout(t, 5*time.Second), raw)
	wantRefused(t, err, ReasonUnknownIssuer, raw)

	va := s.Verifier("a")
	pa.UsernameClaim = "client_id"
	if err := s.Update([]Provider{pa}); err != nil {
		t.Fatal(err)
	}
	if s.Verifier("a") != va {
		t.Error("a changed claim mapping replaced the verifier and its keys")
	}
	if id := mustVerify(t, s, a.accessToken()); id.Username != serviceClient {
		t.Errorf("username %q after the mapping changed; want %s from client_id", id.Username, serviceClient)
	}
	if s.Verifier("b") != nil {
		t.Error("b is still in the set after it was removed")
	}
	raw = b.accessToken()
	_, err = s.Verify(ctxTimeout(t, 5*time.Second), raw)
	wantRefused(t, err, ReasonUnknownIssuer, raw)

	dup := pa
	dup.Name = "a2"
	if err := s.Update([]Provider{pa, dup}); err == nil || !strings.Contains(err.Error(), "same issuer and audience") {
		t.Errorf("update with two providers of one issuer and audience: %v", err)
	}
	if s.Verifier("a") != va {
		t.Error("a refused update changed the set")
	}
}

func TestTLS(t *testing.T) {
	o := newTestOP(t, true)
	raw := o.accessToken()
	v := newVerifier(t, o.provider("tls"), Options{Transport: o.transport()})
	mustVerify(t, v, raw)

	untrusting := newVerifier(t, o.provider("tls"), Options{})
	err := untrusting.Check(ctxTimeout(t, 5*time.Second))
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("check without the provider's CA: %v; want unavailable, naming the certificate", err)
	}
}

// TestBoundedDocuments: a key set larger than MaxDocumentSize, and a
// redirect, are refused without being followed or read to the end.
func TestBoundedDocuments(t *testing.T) {
	var keysHits, elsewhere atomic.Int64
	mux := http.NewServeMux()
	var srv *httptest.Server
	mux.HandleFunc("/big/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"issuer":%q,"jwks_uri":%q}`, srv.URL+"/big", srv.URL+"/big/keys")
	})
	mux.HandleFunc("/big/keys", func(w http.ResponseWriter, r *http.Request) {
		keysHits.Add(1)
		fmt.Fprintf(w, `{"keys":[],"pad":%q}`, strings.Repeat("x", MaxDocumentSize))
	})
	mux.HandleFunc("/moved/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	})
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) })
	mux.HandleFunc("/plain/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"issuer":%q,"jwks_uri":"http://keys.example.com/keys"}`, srv.URL+"/plain")
	})
	mux.HandleFunc("/mismatch/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"issuer":"https://evil.example.com","jwks_uri":%q}`, srv.URL+"/big/keys")
	})
	srv = httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	for _, tc := range []struct{ path, want string }{
		{"/big", "longer than"},
		{"/moved", "redirect"},
		{"/plain", "jwks_uri"},
		{"/mismatch", "names issuer"},
	} {
		v := newVerifier(t, Provider{Name: "p", Issuer: srv.URL + tc.path, Audience: "a"}, Options{})
		err := v.Check(ctxTimeout(t, 5*time.Second))
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: check: %v; want unavailable naming %q", tc.path, err, tc.want)
		}
	}
	if elsewhere.Load() != 0 {
		t.Error("the redirect was followed")
	}
}
