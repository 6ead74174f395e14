package idp

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestProviderValidate(t *testing.T) {
	good := Provider{Name: "okta", Issuer: "https://acme.okta.com/oauth2/default", Audience: "api://nats"}
	if err := good.Validate(); err != nil {
		t.Fatalf("valid provider: %v", err)
	}
	for _, ok := range []string{"http://127.0.0.1:8080", "http://[::1]:9000/realms/x", "http://localhost:5556/dex", "https://login.example.com/"} {
		p := good
		p.Issuer = ok
		if err := p.Validate(); err != nil {
			t.Errorf("issuer %s: %v", ok, err)
		}
	}
	for _, tc := range []struct {
		name string
		edit func(*Provider)
		want string
	}{
		{"no name", func(p *Provider) { p.Name = "" }, "provider name is empty"},
		{"name with a space", func(p *Provider) { p.Name = "my idp" }, "may contain only"},
		{"long name", func(p *Provider) { p.Name = "a" + strings.Repeat("b", MaxNameLen) }, "the limit is 64"},
		{"no issuer", func(p *Provider) { p.Issuer = "" }, "issuer is empty"},
		{"http issuer", func(p *Provider) { p.Issuer = "http://login.example.com" }, "use https"},
		{"http to a private address", func(p *Provider) { p.Issuer = "http://10.0.0.1" }, "use https"},
		{"other scheme", func(p *Provider) { p.Issuer = "ftp://login.example.com" }, "must be an https URL"},
		{"relative issuer", func(p *Provider) { p.Issuer = "login.example.com" }, "no host"},
		{"issuer with a query", func(p *Provider) { p.Issuer = "https://login.example.com/?tenant=x" }, "query or fragment"},
		{"issuer with a user", func(p *Provider) { p.Issuer = "https://u:p@login.example.com" }, "user name"},
		{"issuer with a newline", func(p *Provider) { p.Issuer = "https://login.example.com/\nx" }, "control character"},
		{"long issuer", func(p *Provider) { p.Issuer = "https://e.com/" + strings.Repeat("a", MaxIssuerLen) }, "the limit is 512"},
		{"no audience", func(p *Provider) { p.Audience = "" }, "audience is empty"},
		{"long audience", func(p *Provider) { p.Audience = strings.Repeat("a", MaxAudienceLen+1) }, "the limit is 256"},
		{"username claim with a space", func(p *Provider) { p.UsernameClaim = "user name" }, "username claim"},
		{"role map without claim", func(p *Provider) { p.RoleMap = map[string]string{"g": "reader"} }, "needs a roles claim"},
		{"roles claim without map", func(p *Provider) { p.RolesClaim = "groups" }, "has no role map"},
		{"bad role name", func(p *Provider) { p.RolesClaim, p.RoleMap = "groups", map[string]string{"g": "9lives"} }, "must start with a letter"},
		{"empty claim value", func(p *Provider) { p.RolesClaim, p.RoleMap = "groups", map[string]string{"": "reader"} }, "empty claim value"},
		{"bad account", func(p *Provider) { p.Account = "$SYS" }, "account name"},
		{"create users without account", func(p *Provider) { p.CreateUsers = true }, "needs an account"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := good
			tc.edit(&p)
			err := p.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("validate: %v; want an error with %q", err, tc.want)
			}
			if err != nil && strings.ContainsAny(err.Error(), "\n\x1b") {
				t.Errorf("error %q holds a control character", err)
			}
		})
	}
}

// TestKeySetSkipsUnusableKeys: a symmetric key, an encryption key, an RSA
// key under MinRSABits and a key for an HMAC algorithm are never loaded,
// so nothing in the key set can verify an HMAC or a weak signature.
func TestKeySetSkipsUnusableKeys(t *testing.T) {
	good := newRSAKey(t, "good")
	small := smallRSAKey(t)
	keys := []map[string]any{
		{"kty": "oct", "kid": "sym", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"},
		{"kty": "oct", "kid": "sym-hs", "alg": "HS256", "k": "c2VjcmV0"},
		rsaJWK(t, &good.key.PublicKey, "enc", "enc", ""),
		rsaJWK(t, small, "small", "sig", ""),
		rsaJWK(t, &good.key.PublicKey, "hs", "sig", "HS256"),
		{"kty": "OKP", "crv": "X25519", "kid": "x", "x": "hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo"},
		rsaJWK(t, &good.key.PublicKey, "good", "sig", "RS256"),
	}
	body, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	ks, skipped, err := parseKeySet(body)
	if err != nil {
		t.Fatal(err)
	}
	if len(ks.all) != 1 || ks.all[0].KeyID != "good" || skipped != 6 {
		t.Errorf("kept %v, skipped %d; want only good, 6 skipped", ks.ids, skipped)
	}
	if _, _, err := parseKeySet([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`)); err == nil || !strings.Contains(err.Error(), "no usable signing key") {
		t.Errorf("a set of only a symmetric key: %v; want no usable key", err)
	}
}
