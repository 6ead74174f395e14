package idp

import (
	"context"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// BenchmarkVerify measures Verify at login rate for a key already cached:
// a real ID token and a real client-credentials access token of the
// in-process provider (RS256, 2048-bit key), through a Verifier and
// through a Set, and the refusal of a token whose signature is not the
// provider's (a known kid: no fetch).
func BenchmarkVerify(b *testing.B) {
	o := newTestOP(b, false)
	o.setClaim("groups", []string{"nats-admins", "staff"})
	p := o.provider("zitadel")
	p.UsernameClaim = "email"
	p.RolesClaim, p.RoleMap = "groups", map[string]string{"nats-admins": "admin", "staff": "reader"}
	v := newVerifier(b, p, Options{})
	s, err := NewSet(Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Close)
	if err := s.Update([]Provider{p}); err != nil {
		b.Fatal(err)
	}
	id := o.idToken()
	pa := p
	pa.UsernameClaim = ""
	va := newVerifier(b, pa, Options{})
	at := o.accessToken()
	other := newTestOP(b, false)
	forged := signRS256(b, other.signer(), unverifiedClaims(b, at), nil)
	ctx := context.Background()
	for _, w := range []struct {
		name string
		v    interface {
			Verify(context.Context, string) (Identity, error)
		}
	}{{"verifier", v}, {"set", s}} {
		if _, err := w.v.Verify(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := va.Verify(ctx, at); err != nil {
		b.Fatal(err)
	}
	b.Run("id_token", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(ctx, id); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("id_token_set", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Verify(ctx, id); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("access_token", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := va.Verify(ctx, at); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("bad_signature", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := va.Verify(ctx, forged); ReasonOf(err) != ReasonSignature {
				b.Fatal(err)
			}
		}
	})
	// The floor: go-jose's check of the same token's RS256 signature alone.
	jws, err := jose.ParseSignedCompact(id, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		b.Fatal(err)
	}
	pub := &o.signer().key.PublicKey
	b.Run("signature_alone", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := jws.Verify(pub); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel_id_token", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := v.Verify(ctx, id); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
