package relay

import (
	"context"
	"crypto/sha256"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authrelay/authrelay/accounts"
	"github.com/nats-io/jwt/v2"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeClock is a settable clock for Config.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func TestCredCache(t *testing.T) {
	v := verified{user: accounts.User{Name: "alice", Account: "APP"}, resolved: true}
	t.Run("hit, wrong password, other generation", func(t *testing.T) {
		c := newCredCache(time.Minute, 10)
		if _, ok := c.get("alice", "pw", 1, t0); ok {
			t.Fatal("hit in an empty cache")
		}
		c.put("alice", "pw", 1, v, t0)
		if got, ok := c.get("alice", "pw", 1, t0); !ok || got.user.Name != "alice" {
			t.Fatalf("get after put = %+v, %v", got, ok)
		}
		for _, pw := range []string{"pw2", "p", "", "PW"} {
			if _, ok := c.get("alice", pw, 1, t0); ok {
				t.Errorf("hit with password %q", pw)
			}
		}
		if _, ok := c.get("alic", "epw", 1, t0); ok {
			t.Error("hit for another split of the same bytes")
		}
		// A wrong password leaves the entry alone.
		if _, ok := c.get("alice", "pw", 1, t0); !ok {
			t.Error("wrong passwords evicted the entry")
		}
		if _, ok := c.get("alice", "pw", 2, t0); ok {
			t.Error("hit under another generation")
		}
		if c.len() != 0 {
			t.Errorf("stale entry kept: %d entries", c.len())
		}
	})
	t.Run("ttl", func(t *testing.T) {
		c := newCredCache(time.Minute, 10)
		c.put("alice", "pw", 1, v, t0)
		if _, ok := c.get("alice", "pw", 1, t0.Add(time.Minute-1)); !ok {
			t.Error("miss just before the ttl")
		}
		// Hits do not extend it.
		if _, ok := c.get("alice", "pw", 1, t0.Add(time.Minute)); ok {
			t.Error("hit at the ttl")
		}
		if c.len() != 0 {
			t.Errorf("expired entry kept: %d entries", c.len())
		}
	})
	t.Run("size bound, least recently used goes", func(t *testing.T) {
		c := newCredCache(time.Minute, 3)
		for _, n := range []string{"a", "b", "c"} {
			c.put(n, "pw-"+n, 1, v, t0)
		}
		c.get("a", "pw-a", 1, t0)
		c.put("d", "pw-d", 1, v, t0)
		c.put("d", "pw-d", 1, v, t0) // replaces, evicts nothing
		if c.len() != 3 {
			t.Errorf("%d entries, want 3", c.len())
		}
		for n, want := range map[string]bool{"a": true, "b": false, "c": true, "d": true} {
			if _, ok := c.get(n, "pw-"+n, 1, t0); ok != want {
				t.Errorf("%s cached = %v, want %v", n, ok, want)
			}
		}
		for i := range 100 {
			c.put(string(rune('e'+i)), "pw", 1, v, t0)
		}
		if c.len() != 3 {
			t.Errorf("%d entries after 100 more, want 3", c.len())
		}
	})
	t.Run("a newer generation wins", func(t *testing.T) {
		c := newCredCache(time.Minute, 10)
		c.put("alice", "pw", 5, v, t0)
		c.put("alice", "pw", 4, v, t0) // a verification that began earlier
		if _, ok := c.get("alice", "pw", 5, t0); !ok {
			t.Error("an older verification replaced a newer one")
		}
	})
	t.Run("key per process, no password kept", func(t *testing.T) {
		const password = "s3cret-Passw0rd-7d1e"
		a, b := newCredCache(time.Minute, 10), newCredCache(time.Minute, 10)
		if a.digest("alice", password) == b.digest("alice", password) {
			t.Error("two caches share a key")
		}
		if a.digest("alice", password) != a.digest("alice", password) {
			t.Error("digest is not deterministic")
		}
		if a.digest("alice", password) == sha256.Sum256([]byte("alice"+password)) {
			t.Error("digest is an unkeyed hash")
		}
		a.put("alice", password, 1, verified{user: accounts.User{Name: "alice", Account: "APP",
			Permissions: accounts.Permissions{Pub: accounts.Rule{Allow: []string{"x"}}}}}, t0)
		a.mu.Lock()
		e := a.entries["alice"]
		a.mu.Unlock()
		for _, s := range reachableBytes(reflect.ValueOf(*e)) {
			if strings.Contains(s, password) || strings.Contains(s, password[:8]) {
				t.Errorf("cache entry holds password bytes: %q", s)
			}
		}
		for _, f := range fieldNames(reflect.TypeOf(cacheEntry{}), nil) {
			if strings.Contains(strings.ToLower(f), "pass") {
				t.Errorf("cache entry has a field %s", f)
			}
		}
	})
}

// reachableBytes returns every string and byte array or slice reachable
// from v, except through the entry's list links.
func reachableBytes(v reflect.Value) []string {
	var out []string
	var walk func(reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.String:
			out = append(out, v.String())
		case reflect.Array, reflect.Slice:
			if v.Type().Elem().Kind() == reflect.Uint8 {
				b := make([]byte, v.Len())
				for i := range b {
					b[i] = byte(v.Index(i).Uint())
				}
				out = append(out, string(b))
				return
			}
			for i := range v.Len() {
				walk(v.Index(i))
			}
		case reflect.Struct:
			for i := range v.NumField() {
				if f := v.Type().Field(i).Name; f == "prev" || f == "next" {
					continue
				}
				walk(v.Field(i))
			}
		case reflect.Pointer, reflect.Interface:
			if !v.IsNil() {
				walk(v.Elem())
			}
		case reflect.Map:
			for _, k := range v.MapKeys() {
				walk(k)
				walk(v.MapIndex(k))
			}
		}
	}
	walk(v)
	return out
}

// fieldNames returns the names of t's fields, and of the fields of struct
// fields, recursively.
func fieldNames(t reflect.Type, seen map[reflect.Type]bool) []string {
	if seen == nil {
		seen = map[reflect.Type]bool{}
	}
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || seen[t] {
		return nil
	}
	seen[t] = true
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		out = append(out, t.Name()+"."+f.Name)
		out = append(out, fieldNames(f.Type, seen)...)
	}
	return out
}

// memGuard is an in-memory Guard: names in locked are locked out.
type memGuard struct {
	mu        sync.Mutex
	locked    map[string]bool
	failed    []string
	kinds     []accounts.Failure
	succeeded int
	reserved  int // reservations not released
}

func (g *memGuard) Locked(_ context.Context, name, _ string, _ time.Time) (bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.locked[name], nil
}

func (g *memGuard) Reserve(_ context.Context, name, _ string, _ time.Time) (bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.locked[name] {
		return false, nil
	}
	g.reserved++
	return true, nil
}

func (g *memGuard) Release(string, string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.reserved--
}

func (g *memGuard) Failed(_ context.Context, name, _ string, _ time.Time, f accounts.Failure) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.failed = append(g.failed, name)
	g.kinds = append(g.kinds, f)
	return nil
}

func (g *memGuard) Succeeded(context.Context, string, string, time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.succeeded++
	return nil
}

func (g *memGuard) lock(name string, on bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.locked == nil {
		g.locked = map[string]bool{}
	}
	g.locked[name] = on
}

// decider is a relay without a connection, for calling decide.
type decider struct {
	t     *testing.T
	r     *Relay
	users *memUsers
	guard *memGuard
	clock *fakeClock
	fs    *fakeServer
}

func newDecider(t *testing.T, mod func(*Config)) *decider {
	t.Helper()
	keys, err := accounts.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := accounts.NewIssuer(keys.IssuerSeed, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := &decider{t: t, users: newMemUsers(), guard: &memGuard{}, clock: &fakeClock{t: t0}, fs: newFakeServer(t)}
	d.users.put("alice-pw", accounts.User{Name: "alice", Account: "APP",
		Permissions: accounts.Permissions{Pub: accounts.Rule{Allow: []string{"app.>"}}}})
	cfg := Config{Issuer: issuer, Users: d.users, Guard: d.guard, Now: d.clock.Now,
		CacheTTL: 10 * time.Minute, SessionTTL: time.Hour}
	if mod != nil {
		mod(&cfg)
	}
	if d.r, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	return d
}

// decide decides a connect of user with password and returns the decision
// and how many times it called Authenticate.
func (d *decider) decide(user, password string) (decision, int64) {
	d.t.Helper()
	before := d.users.calls.Load()
	rc := d.fs.claims(d.t, user, password, d.clock.Now(), 2*time.Second)
	dec := d.r.decide(context.Background(), rc)
	return dec, d.users.calls.Load() - before
}

// want checks a decision: reason "" means a grant; verifies is how many
// password verifications it must have cost.
func (d *decider) want(user, password, reason string, verifies int64) decision {
	d.t.Helper()
	dec, calls := d.decide(user, password)
	if dec.reason != reason {
		d.t.Errorf("%s/%s: reason %q (err %v), want %q", user, password, dec.reason, dec.err, reason)
	}
	if (dec.userJWT != "") != (reason == "") {
		d.t.Errorf("%s/%s: jwt %q with reason %q", user, password, dec.userJWT, dec.reason)
	}
	if calls != verifies {
		d.t.Errorf("%s/%s: %d verifications, want %d", user, password, calls, verifies)
	}
	return dec
}

func TestDecideWithCache(t *testing.T) {
	t.Run("a hit skips the verification and grants the same", func(t *testing.T) {
		d := newDecider(t, nil)
		first := d.want("alice", "alice-pw", "", 1)
		second := d.want("alice", "alice-pw", "", 0)
		if first.cache != cacheMiss || second.cache != cacheHit {
			t.Errorf("cache %q then %q, want miss then hit", first.cache, second.cache)
		}
		uc, err := jwt.DecodeUserClaims(second.userJWT)
		if err != nil {
			t.Fatal(err)
		}
		if uc.Name != "alice" || uc.Audience != "APP" || !slices.Equal(uc.Pub.Allow, jwt.StringList{"app.>"}) {
			t.Errorf("cached grant: name %q aud %q pub %q", uc.Name, uc.Audience, uc.Pub.Allow)
		}
		if s := d.r.Stats(); s.CacheHits != 1 || s.CacheMisses != 1 || s.Verifications != 1 || s.CacheEntries != 1 {
			t.Errorf("stats %+v", s)
		}
	})

	t.Run("a wrong password never fills or extends", func(t *testing.T) {
		d := newDecider(t, nil)
		d.want("alice", "wrong-pw", ReasonBadCredentials, 2)
		d.want("alice", "wrong-pw", ReasonBadCredentials, 2)
		d.want("alice", "alice-pw", "", 1) // not cached by the wrong ones
		d.clock.Set(t0.Add(9 * time.Minute))
		d.want("alice", "wrong-pw", ReasonBadCredentials, 2)
		d.want("alice", "alice-pw", "", 0) // still cached
		d.clock.Set(t0.Add(10 * time.Minute))
		d.want("alice", "alice-pw", "", 1) // expired: neither extended
		if got := len(d.guard.failed); got != 3 {
			t.Errorf("%d failed logins recorded, want 3", got)
		}
	})

	t.Run("a change to the store is a miss", func(t *testing.T) {
		d := newDecider(t, nil)
		d.want("alice", "alice-pw", "", 1)
		d.users.update("alice", func(_ *string, u *accounts.User) { u.Permissions.Pub.Allow = []string{"other.>"} })
		dec := d.want("alice", "alice-pw", "", 1)
		if uc, err := jwt.DecodeUserClaims(dec.userJWT); err != nil || !slices.Equal(uc.Pub.Allow, jwt.StringList{"other.>"}) {
			t.Errorf("after the change: %v, pub %q", err, uc.Pub.Allow)
		}
		d.want("alice", "alice-pw", "", 0)
		d.users.update("alice", func(pw *string, _ *accounts.User) { *pw = "alice-pw-2" })
		d.want("alice", "alice-pw", ReasonBadCredentials, 2)
		d.want("alice", "alice-pw-2", "", 1)
		d.users.update("alice", func(_ *string, u *accounts.User) { u.Disabled = true })
		d.want("alice", "alice-pw-2", ReasonUserDisabled, 2)
		// A refusal always costs two verifications, cached or not, as a
		// wrong password does: a fast one would tell that the password is
		// right.
		d.want("alice", "alice-pw-2", ReasonUserDisabled, 2)
		d.users.update("alice", func(_ *string, u *accounts.User) { u.Disabled = false })
		d.want("alice", "alice-pw-2", "", 1)
		d.users.putRole(accounts.Role{Name: "unrelated"})
		d.want("alice", "alice-pw-2", "", 1)
	})

	t.Run("expiry and connection checks apply to cached users, at a verification's cost", func(t *testing.T) {
		d := newDecider(t, nil)
		d.users.put("bob-pw", accounts.User{Name: "bob", Account: "APP", Expires: t0.Add(5 * time.Minute)})
		d.users.put("carl-pw", accounts.User{Name: "carl", Account: "APP", Src: []string{"10.0.0.0/8"}})
		d.want("bob", "bob-pw", "", 1)
		d.want("bob", "bob-pw", "", 0)
		d.clock.Set(t0.Add(5 * time.Minute))
		d.want("bob", "bob-pw", ReasonUserExpired, 2)
		d.want("carl", "carl-pw", ReasonSourceNotAllowed, 2) // fakeServer's client is 127.0.0.1
		d.want("carl", "carl-pw", ReasonSourceNotAllowed, 2)
		if s := d.r.Stats(); s.CacheHits != 1 {
			t.Errorf("stats %+v, want the one grant a hit", s)
		}
	})

	t.Run("a user that could not log in is not cached", func(t *testing.T) {
		// Verified when expired, with no grant resolved: a clock set back
		// must not find it in the cache.
		d := newDecider(t, nil)
		d.users.put("old-pw", accounts.User{Name: "old", Account: "APP", Expires: t0.Add(-time.Minute)})
		d.want("old", "old-pw", ReasonUserExpired, 2)
		d.clock.Set(t0.Add(-2 * time.Minute))
		d.want("old", "old-pw", "", 1)
	})

	t.Run("lockouts come before the cache and cost a dummy verification", func(t *testing.T) {
		d := newDecider(t, nil)
		d.want("alice", "alice-pw", "", 1)
		d.guard.lock("alice", true)
		dummies := d.users.dummies.Load()
		d.want("alice", "alice-pw", ReasonLockedOut, 2)
		d.want("alice", "wrong-pw", ReasonLockedOut, 2)
		if got := d.users.dummies.Load() - dummies; got != 4 {
			t.Errorf("locked attempts ran %d dummy verifications, want 4, two each (and no Authenticate)", got)
		}
		d.guard.lock("alice", false)
		d.want("alice", "alice-pw", "", 0)
		d.guard.mu.Lock()
		defer d.guard.mu.Unlock()
		if want := []accounts.Failure{accounts.FailedLocked, accounts.FailedLocked}; !slices.Equal(d.guard.kinds, want) {
			t.Errorf("failures recorded %v, want %v", d.guard.kinds, want)
		}
		if d.guard.reserved != 0 {
			t.Errorf("%d reservations not released", d.guard.reserved)
		}
	})

	t.Run("every refusal after the password step is recorded, and only a grant rehashes", func(t *testing.T) {
		d := newDecider(t, nil)
		d.users.put("dis-pw", accounts.User{Name: "dis", Account: "APP", Disabled: true})
		d.users.put("old-pw", accounts.User{Name: "old", Account: "APP", Expires: t0.Add(-time.Minute)})
		d.want("nobody", "x-pw", ReasonBadCredentials, 2)
		d.want("alice", "wrong-pw", ReasonBadCredentials, 2)
		d.want("dis", "dis-pw", ReasonUserDisabled, 2)
		d.want("old", "old-pw", ReasonUserExpired, 2)
		if got := d.users.rehashes.Load(); got != 0 {
			t.Errorf("%d rehashes after refusals, want 0", got)
		}
		d.want("alice", "alice-pw", "", 1)
		if got := d.users.rehashes.Load(); got != 1 {
			t.Errorf("%d rehashes after a verified grant, want 1", got)
		}
		d.want("alice", "alice-pw", "", 0) // a cache hit verified nothing
		if got := d.users.rehashes.Load(); got != 1 {
			t.Errorf("%d rehashes after a cached grant, want 1", got)
		}
		d.guard.mu.Lock()
		defer d.guard.mu.Unlock()
		want := []accounts.Failure{accounts.FailedPassword, accounts.FailedPassword, accounts.FailedRefused, accounts.FailedRefused}
		if !slices.Equal(d.guard.kinds, want) {
			t.Errorf("failures recorded %v, want %v", d.guard.kinds, want)
		}
		if d.guard.reserved != 0 {
			t.Errorf("%d reservations not released", d.guard.reserved)
		}
	})

	t.Run("unknown users cost a verification every time", func(t *testing.T) {
		d := newDecider(t, nil)
		d.want("mallory", "pw", ReasonBadCredentials, 2)
		d.want("mallory", "pw", ReasonBadCredentials, 2)
		d.want("", "pw", ReasonNoCredentials, 0)
	})

	t.Run("off without a ttl", func(t *testing.T) {
		d := newDecider(t, func(c *Config) { c.CacheTTL = 0 })
		d.want("alice", "alice-pw", "", 1)
		dec := d.want("alice", "alice-pw", "", 1)
		if dec.cache != "" {
			t.Errorf("cache %q with the cache off", dec.cache)
		}
	})

	t.Run("generation errors bypass the cache", func(t *testing.T) {
		var fail failingGen
		d := newDecider(t, nil)
		fail.memUsers = d.users
		d.r.changes = &fail
		d.want("alice", "alice-pw", "", 1)
		d.want("alice", "alice-pw", "", 0)
		fail.err = errors.New("disk on fire")
		d.want("alice", "alice-pw", "", 1)
		d.want("alice", "alice-pw", "", 1)
	})

	t.Run("size bound", func(t *testing.T) {
		d := newDecider(t, func(c *Config) { c.CacheSize = 1 })
		d.users.put("bob-pw", accounts.User{Name: "bob", Account: "APP"})
		d.want("alice", "alice-pw", "", 1)
		d.want("bob", "bob-pw", "", 1)
		d.want("alice", "alice-pw", "", 1)
		if n := d.r.Stats().CacheEntries; n != 1 {
			t.Errorf("%d entries, want 1", n)
		}
	})
}

// failingGen is a ChangeCounter that fails with err once set.
type failingGen struct {
	*memUsers
	err error
}

func (f *failingGen) UserVersion(ctx context.Context, name string) (int64, error) {
	if f.err != nil {
		return 0, f.err
	}
	return f.memUsers.UserVersion(ctx, name)
}

func TestNewCacheConfig(t *testing.T) {
	keys, err := accounts.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := accounts.NewIssuer(keys.IssuerSeed, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A Users without a change counter cannot be cached.
	type plainUsers struct{ Users }
	if _, err := New(Config{Issuer: issuer, Users: plainUsers{newMemUsers()}, CacheTTL: time.Minute}); err == nil || !strings.Contains(err.Error(), "ChangeCounter") {
		t.Errorf("cache without a change counter: %v", err)
	}
	if _, err := New(Config{Issuer: issuer, Users: plainUsers{newMemUsers()}}); err != nil {
		t.Errorf("no cache without a change counter: %v", err)
	}
	for _, cfg := range []Config{
		{Issuer: issuer, Users: newMemUsers(), CacheTTL: -1},
		{Issuer: issuer, Users: newMemUsers(), CacheSize: -1},
		{Issuer: issuer, Users: newMemUsers(), HashWorkers: -1},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted a negative value", cfg)
		}
	}
	r, err := New(Config{Issuer: issuer, Users: newMemUsers(), CacheTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if r.cfg.CacheSize != DefaultCacheSize || r.cfg.HashWorkers < 1 {
		t.Errorf("defaults: cache size %d, hash workers %d", r.cfg.CacheSize, r.cfg.HashWorkers)
	}
}

// TestCachedLoginsSeeChanges runs cached logins through a real server: the
// reconnect is a cache hit, and a change is honoured on the next connect.
func TestCachedLoginsSeeChanges(t *testing.T) {
	for _, e := range envs() {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, e)
			h.startRelay(func(c *Config) { c.CacheTTL = time.Minute })
			reasons := h.authErrors(t)
			h.mustConnect(t, "alice", "alice-pw-7f3a").nc.Close()
			calls := h.users.calls.Load()
			h.mustConnect(t, "alice", "alice-pw-7f3a").nc.Close()
			if got := h.users.calls.Load(); got != calls {
				t.Errorf("reconnect verified the password %d times, want a cache hit", got-calls)
			}
			waitFor(t, func() bool { return strings.Contains(h.logs.String(), "cache=hit") }, "a cache hit logged")

			h.users.update("alice", func(_ *string, u *accounts.User) { u.Disabled = true })
			h.requireDenied(t, reasons, ReasonUserDisabled, "alice", "alice-pw-7f3a")
			h.users.update("alice", func(pw *string, u *accounts.User) { u.Disabled, *pw = false, "alice-pw-new-5b5b" })
			h.requireDenied(t, reasons, ReasonBadCredentials, "alice", "alice-pw-7f3a")
			h.mustConnect(t, "alice", "alice-pw-new-5b5b").nc.Close()
			h.mustConnect(t, "alice", "alice-pw-new-5b5b").nc.Close()
		})
	}
}

// TestOverloadSheds fills the hash pool with verifications that do not end
// and checks that further cold logins are denied at once as overloaded,
// never granted, while cached logins go on, that the pool recovers, and that
// no goroutine is left. Not parallel: it counts the relay's goroutines.
func TestOverloadSheds(t *testing.T) {
	for _, e := range envs() {
		t.Run(e.name, func(t *testing.T) {
			h := newHarness(t, e)
			h.users.put("bob-pw-6a6a", accounts.User{Name: "bob", Account: "APP"})
			entered, release := make(chan string, 64), make(chan struct{})
			// Verifications of the cold users block, ignoring their
			// deadline, until released: a stuck hash pool.
			h.users.setHook(func(_ context.Context, name string) error {
				if strings.HasPrefix(name, "cold") {
					entered <- name
					<-release
				}
				return nil
			})
			released := false
			defer func() {
				if !released {
					close(release)
				}
			}()
			h.startRelay(func(c *Config) {
				c.CacheTTL = time.Minute
				c.HashWorkers = 1
				c.Workers = 2
			})
			h.mustConnect(t, "alice", "alice-pw-7f3a").nc.Close() // cached now

			p := newProbe(h)
			stuck := make(chan []byte, 1)
			go func() {
				resp, _ := p.request(p.encode(p.claims("cold-0", "pw", time.Now(), 2*time.Second)), 3*time.Second)
				stuck <- resp
			}()
			if got := recv(t, entered); got != "cold-0" {
				t.Fatalf("verifying %q, want cold-0", got)
			}
			// The pool has measured verifications that take seconds.
			for range 64 {
				h.relay.hashTime.observe(2 * time.Second)
			}

			var wg sync.WaitGroup
			for i := range 20 {
				wg.Go(func() {
					user := "cold-" + string(rune('a'+i))
					start := time.Now()
					resp, err := p.request(p.encode(p.claims(user, "pw", time.Now(), 2*time.Second)), 2*time.Second)
					if err != nil {
						t.Errorf("%s: %v, want an overloaded denial", user, err)
						return
					}
					if took := time.Since(start); took > time.Second {
						t.Errorf("%s: denied after %v, want at once", user, took)
					}
					if ar := p.decodeResponse(resp); ar.Error != ReasonOverloaded || ar.Jwt != "" {
						t.Errorf("%s: error %q jwt %q, want %q and no jwt", user, ar.Error, ar.Jwt, ReasonOverloaded)
					}
				})
			}
			// Cached logins do not wait for the pool.
			wg.Go(func() {
				start := time.Now()
				c, err := h.connect(t, "alice", "alice-pw-7f3a")
				if err != nil {
					t.Errorf("cached login while overloaded: %v", err)
					return
				}
				c.nc.Close()
				if took := time.Since(start); took > time.Second {
					t.Errorf("cached login took %v while overloaded", took)
				}
			})
			wg.Wait()
			select {
			case name := <-entered:
				t.Errorf("%s reached the stuck pool", name)
			default:
			}
			s := h.relay.Stats()
			if s.Shed < 20 || s.CacheHits < 1 {
				t.Errorf("stats %+v, want at least 20 shed and a cache hit", s)
			}
			if !strings.Contains(h.logs.String(), "shedding logins") {
				t.Error("no warning about shedding")
			}

			// Once the pool is free, verifications run again.
			close(release)
			released = true
			<-stuck
			// cold-0's worker is busy until just after its answer: a login
			// in that moment is rightly shed. Wait for the pool to be idle.
			waitFor(t, func() bool { return h.relay.hashBusy.Load() == 0 }, "the hash pool idle")
			h.mustConnect(t, "bob", "bob-pw-6a6a").nc.Close()

			if err := h.stop(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, func() bool { return relayGoroutines() == 0 }, "no relay goroutines left")
		})
	}
}

// TestQueuedPastEstimateIsShed checks that a request admitted to wait for
// the hash pool, which can no longer be verified before its deadline when
// its turn comes, is answered as overloaded rather than verified too late.
func TestQueuedPastEstimateIsShed(t *testing.T) {
	h := newHarness(t, env{name: "plain"})
	entered, release := make(chan string, 4), make(chan struct{})
	h.users.setHook(func(_ context.Context, name string) error {
		if name == "slow" {
			entered <- name
			<-release
		}
		return nil
	})
	h.startRelay(func(c *Config) { c.HashWorkers = 1 })
	p := newProbe(h)
	go p.request(p.encode(p.claims("slow", "pw", time.Now(), 2*time.Second)), 3*time.Second)
	recv(t, entered)
	// Admitted: no verification measured yet, so the estimate is 0.
	queued := make(chan *jwt.AuthorizationResponseClaims, 1)
	go func() {
		resp, err := p.request(p.encode(p.claims("mallory", "pw", time.Now(), 2*time.Second)), 3*time.Second)
		if err != nil {
			t.Errorf("queued request: %v", err)
			queued <- nil
			return
		}
		queued <- p.decodeResponse(resp)
	}()
	waitFor(t, func() bool { return len(h.relay.hashQ.jobs) == 1 }, "a request waiting for the pool")
	for range 64 {
		h.relay.hashTime.observe(5 * time.Second)
	}
	close(release)
	if ar := recv(t, queued); ar != nil && ar.Error != ReasonOverloaded {
		t.Errorf("queued request answered %q, want %q", ar.Error, ReasonOverloaded)
	}
}
