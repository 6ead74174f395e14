package idp

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"
	"unicode"
)

// FuzzParse feeds arbitrary tokens to the part of Verify that reads them
// before any key is needed (parse, the claim checks and the claim
// mapping): it never panics, and what it refuses it refuses with a known
// reason and a short message of one line without control characters.
func FuzzParse(f *testing.F) {
	b64 := base64.RawURLEncoding.EncodeToString
	payload := b64([]byte(`{"iss":"https://idp.example.com","sub":"alice","aud":["nats"],"exp":4102444800,"groups":["a","b"],"realm_access":{"roles":["a"]},"email":"a@example.com","email_verified":"true"}`))
	for _, h := range []string{
		`{"alg":"RS256","kid":"k1","typ":"JWT"}`,
		`{"alg":"RS256","typ":"at+jwt"}`,
		`{"alg":"none"}`,
		`{"alg":"HS256","kid":"k1"}`,
		`{"alg":"ES256","typ":"logout+jwt"}`,
		`{"alg":"RS256","crit":["exp"],"exp":1}`,
	} {
		f.Add(b64([]byte(h)) + "." + payload + "." + b64([]byte("sig")))
	}
	f.Add("a.b.c")
	f.Add("..")
	f.Add(b64([]byte(`{"alg":"RS256"}`)) + "." + b64([]byte(`{"exp":1e400,"aud":7}`)) + ".AA")
	known := map[Reason]bool{}
	for _, r := range []Reason{ReasonMalformed, ReasonAlgorithm, ReasonTokenType, ReasonIssuer, ReasonAudience, ReasonExpired, ReasonNotYetValid, ReasonClaims} {
		known[r] = true
	}
	v := &Verifier{opts: Options{Now: func() time.Time { return time.Unix(1767225600, 0) }, Leeway: DefaultLeeway}}
	p := &Provider{Name: "fuzz", Issuer: "https://idp.example.com", Audience: "nats", UsernameClaim: "email", RolesClaim: "realm_access.roles", RoleMap: map[string]string{"a": "reader"}}
	check := func(t *testing.T, err error) {
		e, ok := err.(*Error)
		if !ok {
			t.Fatalf("error %T %v; want *Error", err, err)
		}
		if !known[e.Reason] {
			t.Fatalf("reason %q", e.Reason)
		}
		msg := e.Error()
		if len(msg) > 600 || strings.ContainsFunc(msg, func(r rune) bool { return unicode.IsControl(r) }) {
			t.Fatalf("message %q: longer than 600 bytes or with a control character", msg)
		}
	}
	f.Fuzz(func(t *testing.T, raw string) {
		pt, perr := parse(raw)
		if perr != nil {
			check(t, perr)
			return
		}
		if err := v.checkClaims(p, &pt.claims); err != nil {
			check(t, err)
			return
		}
		if _, err := identity(p, pt); err != nil {
			check(t, err)
		}
	})
}
