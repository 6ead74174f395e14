package accounts

import "testing"

// FuzzCredentialText: what a client or an admin sends for a credential
// never panics the parsers, and a subject NormalizeSubject accepts is in
// its normal form: normalising it again changes nothing (the store finds
// a binding by the exact string).
func FuzzCredentialText(f *testing.F) {
	for _, s := range []string{"CN=svc,O=acme", "cn=svc, o = acme", `CN=a\,b+OU=x`, `CN=\`, "=", "CN=", ",,", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", TokenPrefix + "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		LooksLikeJWT(s)
		WellFormedToken(s)
		if _, err := ParseCredential(CredTLSFingerprint, s); err == nil && len(s) < 64 {
			t.Fatalf("fingerprint %q accepted", s)
		}
		n, err := NormalizeSubject(s)
		if err != nil {
			return
		}
		if again, err := NormalizeSubject(n); err != nil || again != n {
			t.Fatalf("NormalizeSubject(%q) = %q, but that normalises to %q, %v", s, n, again, err)
		}
	})
}
