package relay

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"sync"
	"time"

	"github.com/authrelay/authrelay/accounts"
)

// verified is what a successful password verification established: the
// user as the store returned it and, when the user could be granted a login
// at the time, the grant resolved from the user and its roles. It holds no
// password. The cache keeps only resolved ones without a grant error.
type verified struct {
	user accounts.User
	// resolved tells whether grant and grantErr are set. They are not when
	// the user could not log in when verified (disabled, expired, no
	// account or a reserved one), so no roles were read.
	resolved bool
	grant    accounts.Grant
	grantErr error // accounts.Resolve's error
}

// credCache remembers recently verified credentials so that a reconnecting
// client skips the password hash. It is keyed by username and holds, per
// user, a keyed digest of the name and password (HMAC-SHA256 under a key
// drawn at random when the cache is made, so never the password, and
// useless outside this process), what the verification established, the
// user's version (ChangeCounter.UserVersion) read before the verification,
// and an expiry. A version is per user, so a change to one user, role or
// account leaves the entries of the users it does not concern alone.
//
// Only verifications that can lead to a grant are cached, and the relay
// answers only grants from the cache: a refusal of a user whose password
// matched is verified again, so that it costs what a wrong password costs.
//
// An entry answers only a lookup with the same digest, the same version
// and before its expiry; a lookup that finds it stale (other version or
// expired) removes it, and one with another password leaves it alone, so a
// wrong password neither fills nor extends nor evicts anything. Hits do
// not extend an entry either: a credential is verified again at least every
// ttl. At most max entries are kept; the least recently used goes first.
type credCache struct {
	ttl time.Duration
	max int
	// macs are HMAC states under the cache's key, reused across lookups.
	macs sync.Pool

	mu      sync.Mutex
	entries map[string]*cacheEntry
	// lru is the sentinel of a ring of the entries, most recently used
	// first.
	lru cacheEntry
}

// cacheEntry is one cached credential. It holds no password.
type cacheEntry struct {
	name       string
	digest     [sha256.Size]byte
	v          verified
	ver        int64 // the user's version read before the verification
	expires    time.Time
	prev, next *cacheEntry
}

// macState is an HMAC under the cache's key with a scratch buffer for
// feeding it strings without allocating. scratch is cleared after use: it
// held password bytes.
type macState struct {
	h       hash.Hash
	scratch [256]byte
	sum     [sha256.Size]byte
}

// newCredCache returns an empty cache with a fresh random key.
func newCredCache(ttl time.Duration, max int) *credCache {
	key := make([]byte, sha256.Size)
	rand.Read(key) // never fails; crashes the program if it could
	c := &credCache{ttl: ttl, max: max, entries: make(map[string]*cacheEntry)}
	c.macs.New = func() any { return &macState{h: hmac.New(sha256.New, key)} }
	c.lru.prev, c.lru.next = &c.lru, &c.lru
	return c
}

// digest returns HMAC(key, len(name) || name || password).
func (c *credCache) digest(name, password string) [sha256.Size]byte {
	m := c.macs.Get().(*macState)
	m.h.Reset()
	binary.BigEndian.PutUint64(m.scratch[:8], uint64(len(name)))
	m.h.Write(m.scratch[:8])
	m.write(name)
	m.write(password)
	out := [sha256.Size]byte(m.h.Sum(m.sum[:0]))
	clear(m.scratch[:])
	c.macs.Put(m)
	return out
}

// write feeds s to the HMAC through the scratch buffer.
func (m *macState) write(s string) {
	for len(s) > 0 {
		n := copy(m.scratch[:], s)
		m.h.Write(m.scratch[:n])
		s = s[n:]
	}
}

// get returns what a verification of name and password established, if one
// is cached under the user's version ver and not expired at now.
func (c *credCache) get(name, password string, ver int64, now time.Time) (verified, bool) {
	d := c.digest(name, password)
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[name]
	switch {
	case !ok:
		return verified{}, false
	case e.ver != ver || !now.Before(e.expires):
		c.remove(e)
		return verified{}, false
	case !hmac.Equal(e.digest[:], d[:]):
		return verified{}, false
	}
	c.unlink(e)
	c.pushFront(e)
	return e.v, true
}

// put caches v for name and password, verified at now against the store as
// of the user's version ver (read before the verification began). An entry
// of a newer version is kept: versions of a user only grow.
func (c *credCache) put(name, password string, ver int64, v verified, now time.Time) {
	d := c.digest(name, password)
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[name]; ok {
		if e.ver > ver {
			return
		}
		e.digest, e.v, e.ver, e.expires = d, v, ver, now.Add(c.ttl)
		c.unlink(e)
		c.pushFront(e)
		return
	}
	if len(c.entries) >= c.max {
		c.remove(c.lru.prev)
	}
	e := &cacheEntry{name: name, digest: d, v: v, ver: ver, expires: now.Add(c.ttl)}
	c.entries[name] = e
	c.pushFront(e)
}

// len returns the number of entries.
func (c *credCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

func (c *credCache) remove(e *cacheEntry) {
	c.unlink(e)
	delete(c.entries, e.name)
}

func (c *credCache) unlink(e *cacheEntry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

func (c *credCache) pushFront(e *cacheEntry) {
	e.prev, e.next = &c.lru, c.lru.next
	c.lru.next.prev = e
	c.lru.next = e
}
