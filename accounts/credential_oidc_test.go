package accounts

import (
	"encoding/base64"
	"testing"

	"github.com/nats-io/jwt/v2"
)

// TestPresentedOIDC: which credential a CONNECT with a JWT carries. A JWT
// as the NATS token is CredOIDC; a username with a JWT as its password is
// CredOIDC with the name (the relay asks the store whether the user is
// bound to a provider, else decides a password); an API token, a password
// that is not JWT-shaped and a token of another shape are what they were.
func TestPresentedOIDC(t *testing.T) {
	head := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`))
	body := base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"alice"}`))
	tok := head + "." + body + ".c2ln"
	none := head + "." + body + "."
	for _, c := range []struct {
		name     string
		co       jwt.ConnectOptions
		kind     CredentialKind
		ok       bool
		withName string
	}{
		{"a JWT as the token", jwt.ConnectOptions{Token: tok}, CredOIDC, true, ""},
		{"an unsigned JWT as the token (refused as a bad token, not as none)", jwt.ConnectOptions{Token: none}, CredOIDC, true, ""},
		{"a JWT as the password", jwt.ConnectOptions{Username: "alice", Password: tok}, CredOIDC, true, "alice"},
		{"a password", jwt.ConnectOptions{Username: "alice", Password: "a.b.c"}, CredPassword, true, "alice"},
		{"a password of three base64url parts whose first is no JSON object", jwt.ConnectOptions{Username: "alice", Password: "YWJj.ZGVm.Z2hp"}, CredPassword, true, "alice"},
		{"an API token", jwt.ConnectOptions{Token: TokenPrefix + "x.y.z"}, CredToken, true, ""},
		{"a token of no known shape", jwt.ConnectOptions{Token: "plain-token"}, "", false, ""},
		{"a token with a JSON header but four parts", jwt.ConnectOptions{Token: tok + ".x"}, "", false, ""},
	} {
		got, ok := Presented(c.co, "", nil)
		if ok != c.ok || got.Kind != c.kind || got.Name != c.withName {
			t.Errorf("%s: Presented = %q, %q, %v; want %q, %q, %v", c.name, got.Kind, got.Name, ok, c.kind, c.withName, c.ok)
		}
		if got.Kind == CredOIDC && got.Token == "" {
			t.Errorf("%s: an OIDC credential without its token", c.name)
		}
	}
	// The password form falls back to the password it also is.
	got, _ := Presented(jwt.ConnectOptions{Username: "alice", Password: tok}, "", nil)
	if p := got.AsPassword(); p.Kind != CredPassword || p.Name != "alice" || p.Password != tok {
		t.Errorf("AsPassword = %+v", p)
	}
	if kind, value := (Credential{Kind: CredOIDC, Provider: "corp", Username: "alice"}).Lookup(); kind != CredOIDC || value != "corp\x00alice" {
		t.Errorf("Lookup = %q, %q", kind, value)
	}
}
