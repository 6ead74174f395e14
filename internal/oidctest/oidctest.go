// Package oidctest runs a real OpenID provider in-process for tests
// outside the idp package: zitadel/oidc's OpenID-certified op package over
// the in-memory storage of its example server, on an httptest server at
// 127.0.0.1, as idp's own tests do (idp/op_test.go). It hands out ID
// tokens (the authorization code flow through its endpoints) and JWT
// access tokens (the client-credentials grant), signs tokens of the
// test's own claims with its key, and can be made to fail or hang.
package oidctest

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

// The example storage's users and clients.
const (
	// Audience is the web client's id: the aud of its ID tokens, and of
	// the access tokens the client-credentials grant gives.
	Audience = "authrelay"
	// UserSubject is the sub of the example user's ID tokens.
	UserSubject = "id1"
	// ServiceSubject is the sub of the service client's access tokens.
	ServiceSubject = "sid1"

	webSecret     = "websecret"
	webRedirect   = "http://127.0.0.1:1/callback"
	serviceSecret = "verysecret"
	userPassword  = "verysecure"
)

// Modes of the provider's discovery and key set endpoints.
const (
	Serve int32 = iota // answer
	Fail               // answer 503
	Hang               // hold the request until the client gives up
)

// OP is a running provider.
type OP struct {
	*storage.Storage
	t      testing.TB
	server *httptest.Server
	// Issuer is the provider's issuer URL (http://127.0.0.1:PORT).
	Issuer string
	op     *op.Provider
	key    *rsa.PrivateKey
	mode   atomic.Int32
	hang   chan struct{}

	mu     sync.Mutex
	claims map[string]any
}

// Start starts a provider, stopped when the test ends.
func Start(t testing.TB) *OP {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	o := &OP{t: t, key: k, hang: make(chan struct{}), claims: map[string]any{}}
	handler := http.HandlerFunc(http.NotFound)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	o.server, o.Issuer = srv, srv.URL
	o.Storage = storage.NewStorageWithClients(storage.NewUserStore(o.Issuer), map[string]*storage.Client{
		Audience: storage.WebClient(Audience, webSecret, webRedirect),
	})
	key := sha256.Sum256([]byte("oidctest token encryption key"))
	config := &op.Config{CryptoKey: key, CryptoKeyId: "enc1", AuthMethodPost: true, CodeMethodS256: true}
	provider, err := op.NewProvider(config, o, op.StaticIssuer(o.Issuer), op.WithAllowInsecure())
	if err != nil {
		t.Fatal(err)
	}
	o.op = provider
	handler = func(w http.ResponseWriter, r *http.Request) {
		own := r.Header.Get(clientHeader) != ""
		if !own && (r.URL.Path == "/.well-known/openid-configuration" || r.URL.Path == "/keys") {
			switch o.mode.Load() {
			case Fail:
				http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
				return
			case Hang:
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

// SetMode makes the discovery and key set endpoints Serve, Fail or Hang.
func (o *OP) SetMode(m int32) { o.mode.Store(m) }

// SetClaim adds a claim to the tokens o issues from now on.
func (o *OP) SetClaim(name string, v any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.claims[name] = v
}

func (o *OP) extraClaims() map[string]any {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := make(map[string]any, len(o.claims))
	for k, v := range o.claims {
		c[k] = v
	}
	return c
}

type signingKey struct{ k *rsa.PrivateKey }

func (s signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (s signingKey) Key() any                                    { return s.k }
func (s signingKey) ID() string                                  { return "key-1" }

type publicKey struct{ k *rsa.PrivateKey }

func (p publicKey) ID() string                         { return "key-1" }
func (p publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (p publicKey) Use() string                        { return "sig" }
func (p publicKey) Key() any                           { return &p.k.PublicKey }

// SigningKey, SignatureAlgorithms and KeySet serve o's key.
func (o *OP) SigningKey(context.Context) (op.SigningKey, error) { return signingKey{o.key}, nil }

func (o *OP) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (o *OP) KeySet(context.Context) ([]op.Key, error) { return []op.Key{publicKey{o.key}}, nil }

type jwtClient struct{ op.Client }

func (jwtClient) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeJWT }

// ClientCredentials hands the service client out as one whose access
// tokens are JWTs, for the audience Audience.
func (o *OP) ClientCredentials(ctx context.Context, id, secret string) (op.Client, error) {
	c, err := o.Storage.ClientCredentials(ctx, id, secret)
	if err != nil {
		return nil, err
	}
	return jwtClient{c}, nil
}

func (o *OP) ClientCredentialsTokenRequest(_ context.Context, clientID string, scopes []string) (op.TokenRequest, error) {
	return &oidc.JWTTokenRequest{Subject: clientID, Audience: []string{Audience}, Scopes: scopes}, nil
}

type assertingClient struct{ op.Client }

func (assertingClient) IDTokenUserinfoClaimsAssertion() bool { return true }

func (o *OP) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := o.Storage.GetClientByClientID(ctx, id)
	if err != nil {
		return nil, err
	}
	return assertingClient{c}, nil
}

func (o *OP) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return o.extraClaims(), nil
}

func (o *OP) SetUserinfoFromRequest(ctx context.Context, info *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := o.Storage.SetUserinfoFromRequest(ctx, info, req, scopes); err != nil {
		return err
	}
	for k, v := range o.extraClaims() {
		info.AppendClaims(k, v)
	}
	return nil
}

const clientHeader = "X-Oidctest-Client"

type markTransport struct{ base http.RoundTripper }

func (m markTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(clientHeader, "1")
	return m.base.RoundTrip(r)
}

func (o *OP) httpClient() *http.Client {
	c := *o.server.Client()
	c.Transport = markTransport{c.Transport}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.Timeout = 10 * time.Second
	return &c
}

func (o *OP) endpoints() (authorize, token string) {
	o.t.Helper()
	resp, err := o.httpClient().Get(o.Issuer + "/.well-known/openid-configuration")
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

// IDToken runs the authorization code flow through o's endpoints, as the
// example user, and returns the ID token (sub UserSubject, aud Audience).
func (o *OP) IDToken() string {
	o.t.Helper()
	authorize, tokenURL := o.endpoints()
	c := o.httpClient()
	q := url.Values{
		"client_id":     {Audience},
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
	back := o.redirect(c, o.Issuer+op.AuthCallbackURL(o.op)(context.Background(), id))
	code := back.Query().Get("code")
	if code == "" {
		o.t.Fatalf("callback redirected to %s, without the code", back)
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {webRedirect}}
	tokens := o.postToken(c, tokenURL, Audience, webSecret, form)
	if tokens.IDToken == "" {
		o.t.Fatal("the token endpoint gave no id_token")
	}
	return tokens.IDToken
}

// AccessToken runs the client-credentials grant and returns the JWT
// access token (sub ServiceSubject, aud Audience).
func (o *OP) AccessToken() string {
	o.t.Helper()
	_, tokenURL := o.endpoints()
	tokens := o.postToken(o.httpClient(), tokenURL, ServiceSubject, serviceSecret, url.Values{"grant_type": {"client_credentials"}, "scope": {"openid"}})
	if strings.Count(tokens.AccessToken, ".") != 2 {
		o.t.Fatalf("the client-credentials grant gave an access token that is no JWT: %d bytes", len(tokens.AccessToken))
	}
	return tokens.AccessToken
}

// Sign returns claims signed with o's key (RS256, kid key-1, typ JWT):
// tokens o never issued but whose signature verifies, for the checks on
// the claims.
func (o *OP) Sign(claims map[string]any) string {
	o.t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: o.key, KeyID: "key-1"}}, opts)
	if err != nil {
		o.t.Fatal(err)
	}
	raw, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		o.t.Fatal(err)
	}
	return raw
}

// Claims returns o's usual claims for subject sub, valid for d.
func (o *OP) Claims(sub string, d time.Duration) map[string]any {
	now := time.Now()
	return map[string]any{"iss": o.Issuer, "aud": Audience, "sub": sub, "iat": now.Unix(), "exp": now.Add(d).Unix()}
}

type tokenResponse struct {
	AccessToken string `json:"access_token"`
	IDToken     string `json:"id_token"`
}

func (o *OP) postToken(c *http.Client, tokenURL, id, secret string, form url.Values) tokenResponse {
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

func (o *OP) redirect(c *http.Client, u string) *url.URL {
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
