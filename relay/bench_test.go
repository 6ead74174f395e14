package relay

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/authrelay/authrelay/accounts"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"golang.org/x/crypto/argon2"
)

// argonUsers is a Users that verifies passwords with argon2id at the
// store's default (OWASP) parameters, so that a benchmark's cold decision
// pays what a real one does. It never changes.
type argonUsers struct {
	mu    sync.Mutex
	users map[string]argonUser
	dummy argonUser
}

type argonUser struct {
	salt, key []byte
	user      accounts.User
}

// The store's DefaultArgon2Params.
const (
	argonMemory  = 19456
	argonTime    = 2
	argonThreads = 1
	argonKeyLen  = 32
)

func newArgonUsers() *argonUsers {
	a := &argonUsers{users: map[string]argonUser{}}
	a.dummy = hashArgon(rand.Text(), accounts.User{})
	return a
}

func hashArgon(password string, u accounts.User) argonUser {
	salt := make([]byte, 16)
	rand.Read(salt)
	return argonUser{salt: salt, key: argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen), user: u}
}

func (a *argonUsers) put(password string, u accounts.User) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.users[u.Name] = hashArgon(password, u)
}

func (a *argonUsers) Authenticate(_ context.Context, name, password string) (accounts.User, error) {
	a.mu.Lock()
	e, ok := a.users[name]
	a.mu.Unlock()
	if !ok {
		e = a.dummy
	}
	key := argon2.IDKey([]byte(password), e.salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	if !ok || subtle.ConstantTimeCompare(key, e.key) != 1 {
		return accounts.User{}, accounts.ErrInvalidCredentials
	}
	return e.user, nil
}

func (a *argonUsers) VerifyDummy(_ context.Context, password string) error {
	argon2.IDKey([]byte(password), a.dummy.salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return nil
}

func (a *argonUsers) Rehash(context.Context, string, string) {}

func (a *argonUsers) RolesNamed(context.Context, []string) ([]accounts.Role, error) {
	return []accounts.Role{}, nil
}

func (a *argonUsers) UserVersion(context.Context, string) (int64, error) { return 1, nil }

// BenchmarkDecision measures one decision through the relay's pipeline,
// without the network: open (unseal, decode, validate) → lockout check →
// user version and cache lookup → (cold: argon2id verify) → sign the user JWT
// and the response → seal. Warm is a cache hit, cold a miss with the
// store's default argon2id cost.
func BenchmarkDecision(b *testing.B) {
	for _, bc := range []struct {
		name   string
		sealed bool
		ttl    time.Duration
	}{
		{"warm", true, time.Minute},
		{"warm-unsealed", false, time.Minute},
		{"cold", true, 0},
	} {
		b.Run(bc.name, func(b *testing.B) {
			keys, err := accounts.GenerateKeys()
			if err != nil {
				b.Fatal(err)
			}
			issuer, err := accounts.NewIssuer(keys.IssuerSeed, nil)
			if err != nil {
				b.Fatal(err)
			}
			users := newArgonUsers()
			users.put("alice-pw-7f3a", accounts.User{Name: "alice", Account: "APP",
				Permissions: accounts.Permissions{
					Pub: accounts.Rule{Allow: []string{"app.>"}, Deny: []string{"app.secret.>"}},
					Sub: accounts.Rule{Allow: []string{"app.>", "_INBOX.>"}},
				}})
			cfg := Config{Issuer: issuer, Users: users, Guard: &memGuard{}, CacheTTL: bc.ttl, SessionTTL: time.Hour}
			fs := newFakeServer(b)
			rc := fs.claims(b, "alice", "alice-pw-7f3a", time.Now(), time.Hour)
			msg := &nats.Msg{Subject: Subject, Reply: "_INBOX.bench", Data: fs.encode(b, rc, nil)}
			if bc.sealed {
				cfg.XKey = mustXKey(b, keys.XKeySeed)
				rc.Server.XKey = fs.xk
				msg.Data = fs.seal(b, fs.encode(b, rc, nil), cfg.XKey.PublicKey())
				msg.Header = nats.Header{XKeyHeader: []string{fs.xk}}
			}
			r, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			decideOnce := func() {
				req, ok := r.open(job{msg: msg, received: time.Now()}, false)
				if !ok {
					b.Fatal("request dropped")
				}
				d, slow := r.decideFast(ctx, &req)
				if slow {
					d = r.decideSlow(ctx, &req)
				}
				if d.reason != "" {
					b.Fatalf("denied: %s %v", d.reason, d.err)
				}
				if _, err := r.answer(&req, d); err != nil {
					b.Fatal(err)
				}
			}
			decideOnce() // warms the cache (and the xkey's shared key)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				decideOnce()
			}
			s := r.Stats()
			b.ReportMetric(float64(s.CacheHits)/float64(s.CacheHits+s.Verifications), "hits/op")
		})
	}
}

// BenchmarkHandle measures a warm decision as a fast-lane worker runs it:
// BenchmarkDecision/warm plus the decision's deadline, publishing the
// response to a real (in-process) server, the audit hook and the log call
// (at info, where allows are not logged).
func BenchmarkHandle(b *testing.B) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		b.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(5 * time.Second) {
		b.Fatal("nats-server not ready")
	}
	defer ns.Shutdown()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()

	keys, err := accounts.GenerateKeys()
	if err != nil {
		b.Fatal(err)
	}
	issuer, err := accounts.NewIssuer(keys.IssuerSeed, nil)
	if err != nil {
		b.Fatal(err)
	}
	users := newArgonUsers()
	users.put("alice-pw-7f3a", accounts.User{Name: "alice", Account: "APP",
		Permissions: accounts.Permissions{Pub: accounts.Rule{Allow: []string{"app.>"}}}})
	xk := mustXKey(b, keys.XKeySeed)
	r, err := New(Config{Issuer: issuer, XKey: xk, Users: users, Guard: &memGuard{}, Audit: nopAuditor{},
		CacheTTL: time.Minute, SessionTTL: time.Hour,
		Logger: slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		b.Fatal(err)
	}
	// A message bound to a subscription, as the relay's callback gets it.
	fs := newFakeServer(b)
	rc := fs.claims(b, "alice", "alice-pw-7f3a", time.Now(), time.Hour)
	rc.Server.XKey = fs.xk
	sub, err := nc.SubscribeSync("bench.auth")
	if err != nil {
		b.Fatal(err)
	}
	req := &nats.Msg{Subject: "bench.auth", Reply: "bench.reply", Header: nats.Header{XKeyHeader: []string{fs.xk}},
		Data: fs.seal(b, fs.encode(b, rc, nil), xk.PublicKey())}
	if err := nc.PublishMsg(req); err != nil {
		b.Fatal(err)
	}
	msg, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if d := r.decide(ctx, rc); d.reason != "" { // fills the cache
		b.Fatalf("denied: %s %v", d.reason, d.err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r.handle(ctx, job{msg: msg, received: time.Now()})
	}
	b.StopTimer()
	if s := r.Stats(); s.Verifications != 1 {
		b.Fatalf("stats %+v: want every decision but the first a hit", s)
	}
}

// nopAuditor drops every event.
type nopAuditor struct{}

func (nopAuditor) Record(accounts.LoginEvent) {}

// BenchmarkCacheLookup measures the cache's part of a warm decision: the
// keyed digest and the lookup.
func BenchmarkCacheLookup(b *testing.B) {
	c := newCredCache(time.Minute, DefaultCacheSize)
	c.put("alice", "alice-pw-7f3a", 1, verified{user: accounts.User{Name: "alice"}}, t0)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := c.get("alice", "alice-pw-7f3a", 1, t0); !ok {
			b.Fatal("miss")
		}
	}
}
