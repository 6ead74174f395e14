package accounts

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// TestGenerateNkey: the seed GenerateNkey returns is the key pair's, and
// survives the key pair's wipe.
func TestGenerateNkey(t *testing.T) {
	pub, seed, err := GenerateNkey()
	if err != nil {
		t.Fatal(err)
	}
	kp, err := nkeys.FromSeed(seed)
	if err != nil {
		t.Fatalf("the generated seed does not parse: %v", err)
	}
	if p, err := kp.PublicKey(); err != nil || p != pub {
		t.Fatalf("the seed's public key is %q (%v), want %q", p, err, pub)
	}
}

// TestPresented: which credential a CONNECT presents, in the documented
// order, and what is none.
func TestPresented(t *testing.T) {
	token, err := NewAPIToken()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		co   jwt.ConnectOptions
		tls  *jwt.ClientTLS
		want CredentialKind
	}{
		{"password", jwt.ConnectOptions{Username: "a", Password: "p", Nkey: "U", SignedNonce: "s", Token: token}, nil, CredPassword},
		{"nkey", jwt.ConnectOptions{Nkey: "U", SignedNonce: "s", Token: token}, nil, CredNkey},
		{"nkey without a signature", jwt.ConnectOptions{Nkey: "U"}, nil, ""},
		{"token", jwt.ConnectOptions{Token: token}, nil, CredToken},
		{"someone else's token", jwt.ConnectOptions{Token: "s3cret"}, nil, ""},
		{"username alone", jwt.ConnectOptions{Username: "a"}, nil, ""},
		{"unverified certificate", jwt.ConnectOptions{}, &jwt.ClientTLS{Certs: jwt.StringList{"x"}}, ""},
		{"verified chain, not PEM", jwt.ConnectOptions{}, &jwt.ClientTLS{VerifiedChains: []jwt.StringList{{"x"}}}, ""},
		{"nothing", jwt.ConnectOptions{}, nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := Presented(c.co, "nonce", c.tls)
			if ok != (c.want != "") || got.Kind != c.want {
				t.Errorf("Presented = %q, %v; want %q", got.Kind, ok, c.want)
			}
		})
	}
}

// TestVerifyNonce: the signature of the nonce the server sent, by the key
// the client named, and nothing else.
func TestVerifyNonce(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	other, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	sign := func(k nkeys.KeyPair, nonce string, enc *base64.Encoding) string {
		sig, err := k.Sign([]byte(nonce))
		if err != nil {
			t.Fatal(err)
		}
		return enc.EncodeToString(sig)
	}
	const nonce = "bm9uY2Utb2YtdGVzdA"
	ok := func(c Credential) bool { return c.VerifyNonce() == nil }
	if !ok(Credential{Nkey: pub, Nonce: nonce, Sig: sign(kp, nonce, base64.RawURLEncoding)}) {
		t.Error("a base64url signature of the nonce was refused")
	}
	if !ok(Credential{Nkey: pub, Nonce: nonce, Sig: sign(kp, nonce, base64.StdEncoding)}) {
		t.Error("a standard base64 signature of the nonce was refused")
	}
	for name, c := range map[string]Credential{
		"another key's signature": {Nkey: pub, Nonce: nonce, Sig: sign(other, nonce, base64.RawURLEncoding)},
		"another nonce's":         {Nkey: pub, Nonce: nonce, Sig: sign(kp, nonce+"x", base64.RawURLEncoding)},
		"not base64":              {Nkey: pub, Nonce: nonce, Sig: "!!"},
		"not a user key":          {Nkey: "SU" + pub[2:], Nonce: nonce, Sig: sign(kp, nonce, base64.RawURLEncoding)},
		"a short nonce":           {Nkey: pub, Nonce: "abc", Sig: sign(kp, "abc", base64.RawURLEncoding)},
	} {
		if ok(c) {
			t.Errorf("%s was accepted", name)
		}
	}
	if err := (Credential{Nkey: pub, Sig: sign(kp, "", base64.RawURLEncoding)}).VerifyNonce(); !IsNonceMissing(err) {
		t.Errorf("a signature of no nonce: %v, want the missing-nonce error", err)
	}
}

// TestTokens: the shape of an API token, and what the store keeps of it.
func TestTokens(t *testing.T) {
	a, err := NewAPIToken()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewAPIToken()
	if err != nil {
		t.Fatal(err)
	}
	if a == b || !WellFormedToken(a) || len(a) != len(TokenPrefix)+43 {
		t.Fatalf("tokens %q and %q", a, b)
	}
	for _, bad := range []string{a[:len(a)-1], a + "A", "x" + a[1:], TokenPrefix + "!!!" + a[len(TokenPrefix)+3:]} {
		if WellFormedToken(bad) {
			t.Errorf("WellFormedToken(%q) = true", bad)
		}
	}
	d := TokenDigest(a)
	if len(d) != 64 || strings.Contains(d, a) || TokenID(d) != d[:12] {
		t.Errorf("digest %q, ID %q", d, TokenID(d))
	}
}

// TestParseCredential: what an admin may give for each kind, in the form
// the store keeps and the relay looks up.
func TestParseCredential(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	seed, err := kp.Seed()
	if err != nil {
		t.Fatal(err)
	}
	fp := strings.Repeat("ab", 32)
	cases := []struct {
		kind      CredentialKind
		in, want  string
		wantError string
	}{
		{CredNkey, pub, pub, ""},
		{CredNkey, string(seed), "", "nkey seed, a secret"},
		{CredNkey, "UABC", "", "not a public user nkey"},
		{CredTLSSubject, "CN=svc,O=acme", "CN=svc,O=acme", ""},
		{CredTLSSubject, "cn=svc, o = acme", "CN=svc,O=acme", ""},
		{CredTLSSubject, `CN=a\,b,O=acme`, `CN=a\,b,O=acme`, ""},
		{CredTLSSubject, "CN=svc+OU=x,O=acme", "CN=svc+OU=x,O=acme", ""},
		{CredTLSSubject, "svc", "", "TYPE=value"},
		{CredTLSSubject, "CN=svc\n,O=x", "", "control characters"},
		{CredTLSFingerprint, strings.ToUpper(fp), fp, ""},
		{CredTLSFingerprint, "AB:" + strings.Repeat("ab", 31), fp, ""},
		{CredTLSFingerprint, "abcd", "", "64 hex digits"},
	}
	for _, c := range cases {
		got, err := ParseCredential(c.kind, c.in)
		switch {
		case c.wantError != "":
			if err == nil || !strings.Contains(err.Error(), c.wantError) {
				t.Errorf("ParseCredential(%s, %q) = %q, %v; want an error with %q", c.kind, c.in, got, err, c.wantError)
			}
		case err != nil || got != c.want:
			t.Errorf("ParseCredential(%s, %q) = %q, %v; want %q", c.kind, c.in, got, err, c.want)
		}
	}
}
