package accounts

import (
	"sync"

	"github.com/nats-io/nkeys"
	"golang.org/x/crypto/nacl/box"
)

// maxPeerKeys bounds the shared keys an XKey keeps. A server's xkey is fixed
// for its lifetime and a cluster has a handful of servers, so the bound only
// comes into play when keys churn (servers restarting many times over, or
// someone opening with keys of their own); it caps memory, not the hit rate
// of a real deployment.
const maxPeerKeys = 64

// sharedKeys caches the X25519 shared key (nacl/box Precompute) between the
// relay's curve key and each peer's public curve key, keyed by the peer's
// encoded key. It is safe for concurrent use. When full it evicts an
// arbitrary entry: with a working set far below the bound there is no access
// pattern worth tracking, and an evicted key costs one recomputation.
type sharedKeys struct {
	mu  sync.RWMutex
	max int
	m   map[string]*[32]byte
}

func newSharedKeys(max int) *sharedKeys {
	return &sharedKeys{max: max, m: make(map[string]*[32]byte)}
}

// get returns the cached shared key with peer. The key is never modified
// once stored, so callers may use it without the lock.
func (c *sharedKeys) get(peer string) (*[32]byte, bool) {
	c.mu.RLock()
	k, ok := c.m[peer]
	c.mu.RUnlock()
	return k, ok
}

// put stores the shared key with peer, evicting another entry when full.
func (c *sharedKeys) put(peer string, k *[32]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[peer]; ok {
		return
	}
	for old := range c.m {
		if len(c.m) < c.max {
			break
		}
		delete(c.m, old)
	}
	c.m[peer] = k
}

// len returns the number of cached keys.
func (c *sharedKeys) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}

// sharedKey returns the shared key between x and the public curve key peer
// and whether it came from the cache; a key computed here is not cached, so
// the caller decides when a peer has earned a place (see Open and Seal). It
// fails when peer is not a valid public curve key.
func (x *XKey) sharedKey(peer string) (*[32]byte, bool, error) {
	if k, ok := x.peers.get(peer); ok {
		return k, true, nil
	}
	raw, err := decodeCurveKey(peer)
	if err != nil {
		return nil, false, err
	}
	k := new([32]byte)
	box.Precompute(k, raw, &x.priv)
	return k, false, nil
}

// decodeCurveKey decodes an encoded public curve key (X…) and accepts what
// nkeys' Seal and Open accept: a valid checksum, exactly the curve prefix
// byte and 32 bytes of key. (nkeys.Decode alone ignores the prefix byte's low
// three bits; IsValidPublicKey then insists on an exact public prefix.)
// Unlike nkeys' own decoder it does not panic on an overlong string.
func decodeCurveKey(s string) (*[32]byte, error) {
	raw, err := nkeys.Decode(nkeys.PrefixByteCurve, []byte(s))
	if err != nil || len(raw) != 32 || !nkeys.IsValidPublicKey(s) {
		return nil, nkeys.ErrInvalidCurveKey
	}
	return (*[32]byte)(raw), nil
}
