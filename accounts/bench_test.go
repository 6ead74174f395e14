package accounts

import (
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// The benchmarks below measure the per-decision crypto of a callout: open the
// sealed request, encode and sign the user JWT and the response, seal the
// response. Each has an "nkeys" sub-benchmark (the library used directly, as
// before the fast paths) next to the one authrelay uses, so one run shows
// both.

// benchKeys is the fixture shared by the benchmarks: the relay's issuer and
// xkey, the raw nkeys pairs behind them, and a server curve key.
type benchKeys struct {
	iss       *Issuer
	issKP     nkeys.KeyPair
	relayX    *XKey
	relayXKP  nkeys.KeyPair
	server    nkeys.KeyPair
	serverPub string
}

func newBenchKeys(b *testing.B) benchKeys {
	b.Helper()
	keys, err := GenerateKeys()
	if err != nil {
		b.Fatal(err)
	}
	iss, err := NewIssuer(keys.IssuerSeed, nil)
	if err != nil {
		b.Fatal(err)
	}
	issKP, err := nkeys.FromSeed([]byte(keys.IssuerSeed))
	if err != nil {
		b.Fatal(err)
	}
	relayX, err := NewXKey(keys.XKeySeed)
	if err != nil {
		b.Fatal(err)
	}
	relayXKP, err := nkeys.FromCurveSeed([]byte(keys.XKeySeed))
	if err != nil {
		b.Fatal(err)
	}
	server, err := nkeys.CreateCurveKeys()
	if err != nil {
		b.Fatal(err)
	}
	serverPub, err := server.PublicKey()
	if err != nil {
		b.Fatal(err)
	}
	return benchKeys{iss: iss, issKP: issKP, relayX: relayX, relayXKP: relayXKP, server: server, serverPub: serverPub}
}

// benchRequest is about the size of a sealed authorization request JWT.
var benchRequest = make([]byte, 1500)

// benchResponse is about the size of a signed authorization response.
var benchResponse = make([]byte, 900)

func BenchmarkXKeyOpen(b *testing.B) {
	k := newBenchKeys(b)
	sealed, err := k.server.Seal(benchRequest, k.relayX.PublicKey())
	if err != nil {
		b.Fatal(err)
	}
	b.Run("nkeys", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := k.relayXKP.Open(sealed, k.serverPub); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("XKey", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := k.relayX.Open(sealed, k.serverPub); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkXKeySeal(b *testing.B) {
	k := newBenchKeys(b)
	b.Run("nkeys", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := k.relayXKP.Seal(benchResponse, k.serverPub); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("XKey", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := k.relayX.Seal(benchResponse, k.serverPub); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchUserClaims returns claims shaped like a typical grant.
func benchUserClaims(b *testing.B, iss *Issuer) *jwt.UserClaims {
	b.Helper()
	ukp, err := nkeys.CreateUser()
	if err != nil {
		b.Fatal(err)
	}
	unkey, err := ukp.PublicKey()
	if err != nil {
		b.Fatal(err)
	}
	g, err := Resolve(User{
		Name:    "alice",
		Account: "APP",
		Permissions: Permissions{
			Pub: Rule{Allow: []string{"orders.>"}, Deny: []string{"orders.secret"}},
			Sub: Rule{Allow: []string{"orders.>", "_INBOX.>"}},
		},
	}, nil)
	if err != nil {
		b.Fatal(err)
	}
	uc, err := iss.UserClaims(g, unkey, time.Now(), time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	return uc
}

func BenchmarkIssueUserJWT(b *testing.B) {
	k := newBenchKeys(b)
	uc := benchUserClaims(b, k.iss)
	b.Run("nkeys", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := uc.Encode(k.issKP); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Issuer", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := k.iss.IssueUserJWT(uc); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkRespond(b *testing.B) {
	k := newBenchKeys(b)
	uc := benchUserClaims(b, k.iss)
	userJWT, err := k.iss.IssueUserJWT(uc)
	if err != nil {
		b.Fatal(err)
	}
	skp, err := nkeys.CreateServer()
	if err != nil {
		b.Fatal(err)
	}
	sid, err := skp.PublicKey()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("nkeys", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			rc := jwt.NewAuthorizationResponseClaims(uc.Subject)
			rc.Audience = sid
			rc.Jwt = userJWT
			if _, err := rc.Encode(k.issKP); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Issuer", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := k.iss.Respond(sid, uc.Subject, userJWT, ""); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchSigningInput is about the size of a user JWT's header.payload.
var benchSigningInput = make([]byte, 600)

func BenchmarkSignNkeys(b *testing.B) {
	k := newBenchKeys(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.issKP.Sign(benchSigningInput); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSignExpanded(b *testing.B) {
	k := newBenchKeys(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.iss.kp.Sign(benchSigningInput); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecide is the relay's warm path through Decide: a resolution
// from the credential cache, a client checked.
func BenchmarkDecide(b *testing.B) {
	u := User{Name: "alice", Account: "APP", Src: []string{"10.0.0.0/8"},
		Permissions: Permissions{Pub: Rule{Allow: []string{"app.>"}}, Sub: Rule{Allow: []string{"app.>", "_INBOX.>"}}}}
	g, err := Resolve(u, nil)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		l := Login{User: u, Resolution: Resolution{Grant: g}, Resolved: true, Reserved: []string{"AUTH", "SYS"},
			Client: Client{Host: "10.1.2.3", ConnType: ConnStandard}, CheckClient: true, Now: now}
		if v := Decide(&l); v.Reason != "" {
			b.Fatal(v.Reason)
		}
	}
}
