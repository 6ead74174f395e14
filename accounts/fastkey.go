package accounts

import (
	"bytes"
	"crypto/ed25519"
	"errors"

	"github.com/nats-io/nkeys"
)

// signer is an nkeys.KeyPair for an Ed25519 seed that holds the private key
// in expanded form. nkeys' own pair keeps only the encoded seed and, on every
// Sign and every PublicKey, decodes it and derives the key again (a base-point
// multiplication each); jwt's Encode calls both once per token. signer derives
// once, answers PublicKey from a string and signs with ed25519.Sign, whose
// output is the same deterministic signature. Every other method is the
// wrapped pair's.
type signer struct {
	nkeys.KeyPair
	pub    string
	rawPub ed25519.PublicKey
	priv   ed25519.PrivateKey
}

var _ nkeys.KeyPair = (*signer)(nil)

// newSigner wraps kp, a seed-backed Ed25519 pair (not a curve pair).
func newSigner(kp nkeys.KeyPair) (*signer, error) {
	seed, err := kp.Seed()
	if err != nil {
		return nil, err
	}
	prefix, raw, err := nkeys.DecodeSeed(seed)
	if err != nil {
		return nil, err
	}
	defer clear(raw)
	if prefix == nkeys.PrefixByteCurve || len(raw) != ed25519.SeedSize {
		return nil, errors.New("not an ed25519 seed")
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, err
	}
	rawPub, err := nkeys.Decode(prefix, []byte(pub))
	if err != nil {
		return nil, err
	}
	priv := ed25519.NewKeyFromSeed(raw)
	if !bytes.Equal(priv.Public().(ed25519.PublicKey), rawPub) {
		// Cannot happen with nkeys as it is; refuse rather than sign with a
		// key other than the one the public key names.
		return nil, errors.New("expanded key does not match the public key")
	}
	return &signer{KeyPair: kp, pub: pub, rawPub: rawPub, priv: priv}, nil
}

// PublicKey returns the encoded public key.
func (s *signer) PublicKey() (string, error) { return s.pub, nil }

// Sign signs input with the expanded private key.
func (s *signer) Sign(input []byte) ([]byte, error) {
	if s.priv == nil {
		return nil, nkeys.ErrCannotSign
	}
	return ed25519.Sign(s.priv, input), nil
}

// Verify checks sig over input against the public key.
func (s *signer) Verify(input, sig []byte) error {
	if !ed25519.Verify(s.rawPub, input, sig) {
		return nkeys.ErrInvalidSignature
	}
	return nil
}

// Wipe clears the expanded key and wipes the wrapped pair's seed.
func (s *signer) Wipe() {
	clear(s.priv)
	s.priv = nil
	s.KeyPair.Wipe()
}
