package idp

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// The in-process OpenID provider of these tests: zitadel/oidc's
// OpenID-certified op package over the in-memory storage of its example
// server, on an httptest server at 127.0.0.1. testOP wraps that storage to
// rotate signing keys, to hand out JWT access tokens on the
// client-credentials grant, and to add claims (groups, nested roles) the
// example storage does not have.
type testOP struct {
	*storage.Storage
	t      testing.TB
	server *httptest.Server
	issuer string
	op     *op.Provider

	mu     sync.Mutex
	keys   []*opKey // all published; the last signs
	claims map[string]any

	jwksRequests      atomic.Int64
	discoveryRequests atomic.Int64
	mode              atomic.Int32 // opServe, opFail or opHang
	hang              chan struct{}
}

const (
	opServe int32 = iota
	opFail        // answer discovery and keys with 503
	opHang        // hold discovery and keys requests until the client gives up
)

// The example storage's users and clients the tests use.
const (
	webClient     = "authrelay" // the web client of the code flow; also the aud of access tokens
	webSecret     = "websecret"
	webRedirect   = "http://127.0.0.1:1/callback"
	serviceClient = "sid1" // the example storage's client-credentials client
	serviceSecret = "verysecret"
	userPassword  = "verysecure"
	userEmail     = "test-user@zitadel.ch"
	userID        = "id1"
)

type opKey struct {
	id  string
	key *rsa.PrivateKey
}

type opSigningKey struct{ *opKey }

func (k opSigningKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k opSigningKey) Key() any                                    { return k.key }
func (k opSigningKey) ID() string                                  { return k.id }

type opPublicKey struct{ *opKey }

func (k opPublicKey) ID() string                         { return k.id }
func (k opPublicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k opPublicKey) Use() string                        { return "sig" }
func (k opPublicKey) Key() any                           { return &k.key.PublicKey }

func newRSAKey(t testing.TB, kid string) *opKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &opKey{id: kid, key: k}
}

// newTestOP starts a provider on 127.0.0.1, over TLS with httptest's CA
// when tls is set.
func newTestOP(t testing.TB, tls bool) *testOP {
	t.Helper()
	o := &testOP{t: t, hang: make(chan struct{}), claims: map[string]any{}}
	o.keys = []*opKey{newRSAKey(t, "key-1")}
	var srv *httptest.Server
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	mux := http.NewServeMux()
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	srv = httptest.NewUnstartedServer(mux)
	// The TLS test's client without the CA makes the server log a failed
	// handshake; that is the point of that test, not news.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if tls {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	o.server = srv
	o.issuer = srv.URL
	o.Storage = storage.NewStorageWithClients(storage.NewUserStore(o.issuer), map[string]*storage.Client{
		webClient: storage.WebClient(webClient, webSecret, webRedirect),
	})
	key := sha256.Sum256([]byte("test op token encryption key"))
	config := &op.Config{CryptoKey: key, CryptoKeyId: "enc1", AuthMethodPost: true, CodeMethodS256: true}
	var opts []op.Option
	if !tls {
		opts = append(opts, op.WithAllowInsecure())
	}
	provider, err := op.NewProvider(config, o, op.StaticIssuer(o.issuer), opts...)
	if err != nil {
		t.Fatal(err)
	}
	o.op = provider
	handler = func(w http.ResponseWriter, r *http.Request) {
		// The test's own requests for tokens neither count nor hang.
		own := r.Header.Get(testClientHeader) != ""
		doc := !own && r.URL.Path == "/.well-known/openid-configuration"
		keys := !own && r.URL.Path == "/keys"
		if doc {
			o.discoveryRequests.Add(1)
		}
		if keys {
			o.jwksRequests.Add(1)
		}
		if doc || keys {
			switch o.mode.Load() {
			case opFail:
				http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
				return
			case opHang:
				select {
				case <-r.Context().Done():
				case <-o.hang:
				}
				return
			}
		}
		provider.ServeHTTP(w, r)
	}
	t.Cleanup(func() {
		close(o.hang)
		srv.Close()
	})
	return o
}

// transport is what a Verifier needs to reach o: httptest's CA for TLS.
func (o *testOP) transport() http.RoundTripper {
	if o.server.TLS != nil {
		return o.server.Client().Transport
	}
	return nil
}

// provider is an authrelay Provider for o with the given audience.
func (o *testOP) provider(name string) Provider {
	return Provider{Name: name, Issuer: o.issuer, Audience: webClient}
}

// rotate makes a new key with id kid the signing key, keeping the old ones
// published, as providers do when they roll keys.
func (o *testOP) rotate(kid string) {
	k := newRSAKey(o.t, kid)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.keys = append(o.keys, k)
}

// signer returns the key o signs with now.
func (o *testOP) signer() *opKey {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.keys[len(o.keys)-1]
}

func (o *testOP) setClaim(name string, v any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.claims[name] = v
}

func (o *testOP) extraClaims() map[string]any {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := make(map[string]any, len(o.claims))
	for k, v := range o.claims {
		c[k] = v
	}
	return c
}

// SigningKey, SignatureAlgorithms and KeySet serve o's rotating keys.
func (o *testOP) SigningKey(context.Context) (op.SigningKey, error) {
	return opSigningKey{o.signer()}, nil
}

func (o *testOP) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (o *testOP) KeySet(context.Context) ([]op.Key, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	keys := make([]op.Key, len(o.keys))
	for i, k := range o.keys {
		keys[i] = opPublicKey{k}
	}
	return keys, nil
}

// jwtClient is a client whose access tokens are JWTs.
type jwtClient struct{ op.Client }

func (jwtClient) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeJWT }

// ClientCredentials hands the example's service client out as one whose
// access tokens are JWTs, and ClientCredentialsTokenRequest makes them
// for the audience authrelay checks.
func (o *testOP) ClientCredentials(ctx context.Context, id, secret string) (op.Client, error) {
	c, err := o.Storage.ClientCredentials(ctx, id, secret)
	if err != nil {
		return nil, err
	}
	return jwtClient{c}, nil
}

func (o *testOP) ClientCredentialsTokenRequest(_ context.Context, clientID string, scopes []string) (op.TokenRequest, error) {
	return &oidc.JWTTokenRequest{Subject: clientID, Audience: []string{webClient}, Scopes: scopes}, nil
}

// assertingClient puts the userinfo claims (email, profile) into the ID
// token itself, as most providers do.
type assertingClient struct{ op.Client }

func (assertingClient) IDTokenUserinfoClaimsAssertion() bool { return true }

func (o *testOP) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := o.Storage.GetClientByClientID(ctx, id)
	if err != nil {
		return nil, err
	}
	return assertingClient{c}, nil
}

// GetPrivateClaimsFromScopes adds o's extra claims to JWT access tokens,
// SetUserinfoFromRequest to ID tokens.
func (o *testOP) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return o.extraClaims(), nil
}

func (o *testOP) SetUserinfoFromRequest(ctx context.Context, info *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := o.Storage.SetUserinfoFromRequest(ctx, info, req, scopes); err != nil {
		return err
	}
	for k, v := range o.extraClaims() {
		info.AppendClaims(k, v)
	}
	return nil
}

// testClientHeader marks the requests of the test's own client.
const testClientHeader = "X-Test-Client"

type markTransport struct{ base http.RoundTripper }

func (m markTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(testClientHeader, "1")
	return m.base.RoundTrip(r)
}

// httpClient talks to o as the test's client, without following
// redirects.
func (o *testOP) httpClient() *http.Client {
	c := *o.server.Client()
	c.Transport = markTransport{c.Transport}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.Timeout = 10 * time.Second
	return &c
}

// endpoints reads o's discovery document, as a client would.
func (o *testOP) endpoints() (authorize, token string) {
	o.t.Helper()
	resp, err := o.httpClient().Get(o.issuer + "/.well-known/openid-configuration")
	if err != nil {
		o.t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Authorize string `json:"authorization_endpoint"`
		Token     string `json:"token_endpoint"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		o.t.Fatal(err)
	}
	return doc.Authorize, doc.Token
}

// idToken runs the authorization code flow through o's endpoints and
// returns the ID token: /authorize redirects to the login page with an
// auth request id; the login (the example server's login page calls
// CheckUsernamePassword, as done here) marks it done; the callback
// redirects to the client with a code; the token endpoint exchanges the
// code for the tokens.
func (o *testOP) idToken() string {
	o.t.Helper()
	authorize, tokenURL := o.endpoints()
	c := o.httpClient()
	q := url.Values{
		"client_id":     {webClient},
		"redirect_uri":  {webRedirect},
		"response_type": {"code"},
		"scope":         {"openid email profile"},
		"state":         {"state-1"},
		"nonce":         {"nonce-1"},
	}
	loc := o.redirect(c, authorize+"?"+q.Encode())
	id := loc.Query().Get("authRequestID")
	if id == "" {
		o.t.Fatalf("authorize redirected to %s, without an auth request id", loc)
	}
	if err := o.CheckUsernamePassword("test-user@127.0.0.1", userPassword, id); err != nil {
		o.t.Fatalf("login: %v", err)
	}
	back := o.redirect(c, o.issuer+op.AuthCallbackURL(o.op)(context.Background(), id))
	code := back.Query().Get("code")
	if code == "" || back.Query().Get("state") != "state-1" {
		o.t.Fatalf("callback redirected to %s, without the code and state", back)
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {webRedirect}}
	tokens := o.postToken(c, tokenURL, webClient, webSecret, form)
	if tokens.IDToken == "" {
		o.t.Fatal("the token endpoint gave no id_token")
	}
	return tokens.IDToken
}

// accessToken runs the client-credentials grant through o's token
// endpoint and returns the JWT access token.
func (o *testOP) accessToken() string {
	o.t.Helper()
	_, tokenURL := o.endpoints()
	tokens := o.postToken(o.httpClient(), tokenURL, serviceClient, serviceSecret, url.Values{"grant_type": {"client_credentials"}, "scope": {"openid"}})
	if strings.Count(tokens.AccessToken, ".") != 2 {
		o.t.Fatalf("the client-credentials grant gave an access token that is no JWT: %d bytes", len(tokens.AccessToken))
	}
	return tokens.AccessToken
}

// atJWT returns an RFC 9068 access token: the claims of the access token
// o's client-credentials grant issued, signed by o's signing key under
// typ at+jwt. zitadel's op writes typ JWT on every token it signs, so the
// header is the one thing this test sets itself.
func (o *testOP) atJWT() string {
	o.t.Helper()
	return o.resign(o.accessToken(), jose.HeaderType, "at+jwt")
}

// resign returns raw's claims signed again with o's current key, with one
// header set.
func (o *testOP) resign(raw string, header jose.HeaderKey, value string) string {
	o.t.Helper()
	claims := unverifiedClaims(o.t, raw)
	return signRS256(o.t, o.signer(), claims, map[jose.HeaderKey]any{header: value})
}

type tokenResponse struct {
	AccessToken string `json:"access_token"`
	IDToken     string `json:"id_token"`
	TokenType   string `json:"token_type"`
}

func (o *testOP) postToken(c *http.Client, tokenURL, id, secret string, form url.Values) tokenResponse {
	o.t.Helper()
	req, err := http.NewRequest(http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		o.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := c.Do(req)
	if err != nil {
		o.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		o.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		o.t.Fatalf("token endpoint: %s: %s", resp.Status, body)
	}
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		o.t.Fatal(err)
	}
	return tr
}

func (o *testOP) redirect(c *http.Client, u string) *url.URL {
	o.t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		o.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 3 {
		body, _ := io.ReadAll(resp.Body)
		o.t.Fatalf("GET %s: %s, not a redirect: %s", u, resp.Status, body)
	}
	loc, err := resp.Location()
	if err != nil {
		o.t.Fatal(err)
	}
	return loc
}

// unverifiedClaims decodes a token's claims without checking anything.
func unverifiedClaims(t testing.TB, raw string) map[string]any {
	t.Helper()
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := tok.UnsafeClaimsWithoutVerification(&c); err != nil {
		t.Fatal(err)
	}
	return c
}

// signRS256 signs claims with k under its kid, with extra header values.
func signRS256(t testing.TB, k *opKey, claims map[string]any, headers map[jose.HeaderKey]any) string {
	t.Helper()
	raw, err := trySignRS256(k, claims, headers)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// trySignRS256 is signRS256 for goroutines other than the test's.
func trySignRS256(k *opKey, claims map[string]any, headers map[jose.HeaderKey]any) (string, error) {
	opts := &jose.SignerOptions{ExtraHeaders: map[jose.HeaderKey]any{}}
	opts.WithType("JWT")
	for h, v := range headers {
		opts.ExtraHeaders[h] = v
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: k.key, KeyID: k.id}}, opts)
	if err != nil {
		return "", err
	}
	return jwt.Signed(s).Claims(claims).Serialize()
}

// waitFor polls cond for up to d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// smallRSAKey returns a 1024-bit RSA public key, under MinRSABits.
func smallRSAKey(t testing.TB) *rsa.PublicKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	return &k.PublicKey
}

// rsaJWK is pub as a JWK with the given kid, use and alg.
func rsaJWK(t testing.TB, pub *rsa.PublicKey, kid, use, alg string) map[string]any {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKey{Key: pub, KeyID: kid, Use: use, Algorithm: alg})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
