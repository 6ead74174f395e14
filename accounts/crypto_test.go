package accounts

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// curvePair returns a curve key pair and its public key; with a non-nil
// seed byte the pair is the same on every run.
func curvePair(t testing.TB, seed *byte) (nkeys.KeyPair, string) {
	t.Helper()
	var kp nkeys.KeyPair
	var err error
	if seed != nil {
		kp, err = nkeys.CreateCurveKeysWithRand(bytes.NewReader(bytes.Repeat([]byte{*seed}, 32)))
	} else {
		kp, err = nkeys.CreateCurveKeys()
	}
	if err != nil {
		t.Fatal(err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return kp, pub
}

// relayXKey returns an XKey and the nkeys pair made from the same seed.
func relayXKey(t testing.TB, seed *byte) (*XKey, nkeys.KeyPair) {
	t.Helper()
	kp, _ := curvePair(t, seed)
	s, err := kp.Seed()
	if err != nil {
		t.Fatal(err)
	}
	x, err := NewXKey(string(s))
	if err != nil {
		t.Fatal(err)
	}
	return x, kp
}

func TestXKeyCompatibleWithNkeys(t *testing.T) {
	relayX, relayKP := relayXKey(t, nil)
	if got, want := relayX.PublicKey(), func() string { p, _ := relayKP.PublicKey(); return p }(); got != want {
		t.Fatalf("PublicKey = %s, want %s", got, want)
	}
	server, serverPub := curvePair(t, nil)

	for _, n := range []int{0, 1, 16, 1500, 64 << 10} {
		msg := make([]byte, n)
		rand.Read(msg)
		t.Run(fmt.Sprintf("%d bytes", n), func(t *testing.T) {
			// server (nkeys) → relay (XKey), twice: computed, then cached.
			for range 2 {
				sealed, err := server.Seal(msg, relayX.PublicKey())
				if err != nil {
					t.Fatal(err)
				}
				got, err := relayX.Open(sealed, serverPub)
				if err != nil || !bytes.Equal(got, msg) {
					t.Fatalf("XKey.Open of an nkeys seal = %d bytes, %v; want the %d bytes sealed", len(got), err, n)
				}
			}
			// relay (XKey) → server (nkeys).
			sealed, err := relayX.Seal(msg, serverPub)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := len(sealed), xkeyHeaderLen+n+16; got != want {
				t.Errorf("sealed length = %d, want %d", got, want)
			}
			if !bytes.HasPrefix(sealed, []byte("xkv1")) {
				t.Errorf("sealed does not start with xkv1: %q", sealed[:4])
			}
			got, err := server.Open(sealed, relayX.PublicKey())
			if err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("nkeys Open of an XKey seal = %d bytes, %v; want the %d bytes sealed", len(got), err, n)
			}
			// Same nonce, same bytes as nkeys' SealWithRand with the relay key.
			nonce := make([]byte, 24)
			rand.Read(nonce)
			ours, err := relayX.sealWithRand(msg, serverPub, bytes.NewReader(nonce))
			if err != nil {
				t.Fatal(err)
			}
			theirs, err := relayKP.SealWithRand(msg, serverPub, bytes.NewReader(nonce))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(ours, theirs) {
				t.Error("XKey and nkeys seal the same message with the same nonce to different bytes")
			}
		})
	}

	t.Run("fresh nonce per seal", func(t *testing.T) {
		a, _ := relayX.Seal([]byte("same"), serverPub)
		b, _ := relayX.Seal([]byte("same"), serverPub)
		if bytes.Equal(a[4:xkeyHeaderLen], b[4:xkeyHeaderLen]) {
			t.Error("two seals used the same nonce")
		}
	})
}

func TestXKeyErrorsMatchNkeys(t *testing.T) {
	relayX, relayKP := relayXKey(t, nil)
	server, serverPub := curvePair(t, nil)
	_, otherPub := curvePair(t, nil)
	sealed, err := server.Seal([]byte("request"), relayX.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	wrongVersion := bytes.Clone(sealed)
	copy(wrongVersion, "xkv2")
	akp, _ := nkeys.CreateAccount()
	accountPub, _ := akp.PublicKey()
	// The curve key's bytes with the prefix byte's low bits set and a
	// valid checksum: nkeys.Decode alone would take it for a curve key.
	raw, _ := nkeys.Decode(nkeys.PrefixByteCurve, []byte(serverPub))
	offPrefix := encodeWithPrefixByte(t, byte(nkeys.PrefixByteCurve)|1, raw)

	for _, tc := range []struct {
		name   string
		sealed []byte
		sender string
		want   error
	}{
		{"empty", nil, serverPub, nkeys.ErrInvalidEncrypted},
		{"version only", []byte("xkv1"), serverPub, nkeys.ErrInvalidEncrypted},
		{"header only", sealed[:xkeyHeaderLen], serverPub, nkeys.ErrInvalidEncrypted},
		{"shorter than a box", sealed[:xkeyHeaderLen+1], serverPub, nkeys.ErrCouldNotDecrypt},
		{"wrong version", wrongVersion, serverPub, nkeys.ErrInvalidEncVersion},
		{"short and wrong version", []byte("xkv2"), serverPub, nkeys.ErrInvalidEncrypted},
		{"tampered", tampered, serverPub, nkeys.ErrCouldNotDecrypt},
		{"other sender", sealed, otherPub, nkeys.ErrCouldNotDecrypt},
		{"sender not a key", sealed, "nope", nkeys.ErrInvalidSender},
		{"sender an account key", sealed, accountPub, nkeys.ErrInvalidSender},
		{"sender with a bad checksum", sealed, flipChar(serverPub, 20), nkeys.ErrInvalidSender},
		{"sender with an off prefix byte", sealed, offPrefix, nkeys.ErrInvalidSender},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, got := relayX.Open(tc.sealed, tc.sender)
			if !errors.Is(got, tc.want) {
				t.Errorf("XKey.Open = %v, want %v", got, tc.want)
			}
			if _, want := relayKP.Open(tc.sealed, tc.sender); !errors.Is(got, want) {
				t.Errorf("XKey.Open = %v, nkeys Open = %v", got, want)
			}
		})
	}
	if n := relayX.peers.len(); n != 0 {
		t.Errorf("failed opens cached %d keys, want none", n)
	}

	t.Run("overlong sender", func(t *testing.T) {
		// nkeys' Open panics on this (it decodes into a fixed 35-byte
		// array); the relay checks the header first, but XKey need not panic.
		if _, err := relayX.Open(sealed, strings.Repeat("X", 200)); !errors.Is(err, nkeys.ErrInvalidSender) {
			t.Errorf("Open = %v, want ErrInvalidSender", err)
		}
	})
	t.Run("seal to a bad recipient", func(t *testing.T) {
		for _, r := range []string{"", "nope", accountPub, offPrefix, strings.Repeat("X", 200)} {
			if _, err := relayX.Seal([]byte("x"), r); !errors.Is(err, nkeys.ErrInvalidRecipient) {
				t.Errorf("Seal to %q = %v, want ErrInvalidRecipient", r, err)
			}
		}
		if _, err := relayKP.Seal([]byte("x"), accountPub); !errors.Is(err, nkeys.ErrInvalidRecipient) {
			t.Errorf("nkeys Seal to an account key = %v, want ErrInvalidRecipient", err)
		}
	})
}

// encodeWithPrefixByte encodes raw behind an arbitrary first byte with a
// valid checksum, as nkeys encodes keys (CRC-16/XMODEM, base32 unpadded).
func encodeWithPrefixByte(t *testing.T, prefix byte, raw []byte) string {
	t.Helper()
	b := append([]byte{prefix}, raw...)
	var crc uint16
	for _, c := range b {
		crc ^= uint16(c) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	b = append(b, byte(crc), byte(crc>>8))
	s := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)
	if !nkeys.IsValidPublicCurveKey(s) {
		t.Fatalf("test key %s does not pass nkeys.Decode; the case tests nothing", s)
	}
	return s
}

func TestXKeyConcurrent(t *testing.T) {
	relayX, _ := relayXKey(t, nil)
	const servers, workers, rounds = 6, 12, 40
	type srv struct {
		kp  nkeys.KeyPair
		pub string
	}
	var ss []srv
	for range servers {
		kp, pub := curvePair(t, nil)
		ss = append(ss, srv{kp, pub})
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				s := ss[(w+i)%servers]
				req := fmt.Appendf(nil, "request %d/%d", w, i)
				sealed, err := s.kp.Seal(req, relayX.PublicKey())
				if err != nil {
					errs <- err
					return
				}
				got, err := relayX.Open(sealed, s.pub)
				if err != nil || !bytes.Equal(got, req) {
					errs <- fmt.Errorf("open %q: got %q, %v", req, got, err)
					return
				}
				resp, err := relayX.Seal(append(got, " ok"...), s.pub)
				if err != nil {
					errs <- err
					return
				}
				got, err = s.kp.Open(resp, relayX.PublicKey())
				if want := string(req) + " ok"; err != nil || string(got) != want {
					errs <- fmt.Errorf("server open: got %q, %v, want %q", got, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := relayX.peers.len(); got != servers {
		t.Errorf("cached %d shared keys, want %d", got, servers)
	}
}

func TestXKeyCacheBound(t *testing.T) {
	relayX, _ := relayXKey(t, nil)
	type srv struct {
		kp  nkeys.KeyPair
		pub string
	}
	var ss []srv
	for i := range maxPeerKeys + 20 {
		kp, pub := curvePair(t, nil)
		ss = append(ss, srv{kp, pub})
		msg := fmt.Appendf(nil, "to %d", i)
		sealed, err := relayX.Seal(msg, pub)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := kp.Open(sealed, relayX.PublicKey()); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("server %d open = %q, %v", i, got, err)
		}
		if n := relayX.peers.len(); n > maxPeerKeys {
			t.Fatalf("after %d peers the cache holds %d keys, bound %d", i+1, n, maxPeerKeys)
		}
	}
	if n := relayX.peers.len(); n != maxPeerKeys {
		t.Errorf("cache holds %d keys, want it full at %d", n, maxPeerKeys)
	}
	// Evicted or not, every peer still opens and is opened.
	for i, s := range ss {
		sealed, err := s.kp.Seal([]byte("again"), relayX.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		if got, err := relayX.Open(sealed, s.pub); err != nil || string(got) != "again" {
			t.Errorf("open from server %d = %q, %v", i, got, err)
		}
	}

	t.Run("sharedKeys", func(t *testing.T) {
		c := newSharedKeys(3)
		for i := range 10 {
			c.put(fmt.Sprint(i), new([32]byte))
			if _, ok := c.get(fmt.Sprint(i)); !ok {
				t.Errorf("key %d missing right after put", i)
			}
			if n := c.len(); n > 3 {
				t.Fatalf("len = %d after %d puts, bound 3", n, i+1)
			}
		}
		k := new([32]byte)
		c.put("9", k) // already there: kept, not replaced
		if got, _ := c.get("9"); got == k {
			t.Error("put replaced an existing key")
		}
	})
}

// FuzzXKeyOpen feeds arbitrary sealed input, with the sender a real key or
// an arbitrary string of key length at most, to XKey.Open and nkeys' Open:
// they must agree on the plaintext or on the error. (Senders stop at 56
// characters because nkeys' Open panics on longer ones.)
func FuzzXKeyOpen(f *testing.F) {
	relaySeed, serverSeed := byte(1), byte(2)
	relayX, relayKP := relayXKey(f, &relaySeed)
	_, serverPub := curvePair(f, &serverSeed)
	f.Fuzz(func(t *testing.T, sealed []byte, sender string) {
		if sender == "" {
			sender = serverPub
		}
		if len(sender) > 56 {
			return
		}
		got, gotErr := relayX.Open(sealed, sender)
		want, wantErr := relayKP.Open(sealed, sender)
		switch {
		case wantErr != nil && !errors.Is(gotErr, wantErr):
			t.Fatalf("XKey.Open = %v, nkeys Open = %v", gotErr, wantErr)
		case wantErr == nil && (gotErr != nil || !bytes.Equal(got, want)):
			t.Fatalf("XKey.Open = %q, %v; nkeys Open = %q", got, gotErr, want)
		}
	})
}

func TestSignerMatchesNkeys(t *testing.T) {
	for _, create := range []func() (nkeys.KeyPair, error){nkeys.CreateAccount, nkeys.CreateOperator, nkeys.CreateUser} {
		kp, err := create()
		if err != nil {
			t.Fatal(err)
		}
		s, err := newSigner(kp)
		if err != nil {
			t.Fatal(err)
		}
		wantPub, _ := kp.PublicKey()
		if got, _ := s.PublicKey(); got != wantPub {
			t.Errorf("PublicKey = %s, want %s", got, wantPub)
		}
		wantSeed, _ := kp.Seed()
		if got, _ := s.Seed(); !bytes.Equal(got, wantSeed) {
			t.Error("Seed differs from the wrapped pair's")
		}
		wantPriv, _ := kp.PrivateKey()
		if got, _ := s.PrivateKey(); !bytes.Equal(got, wantPriv) {
			t.Error("PrivateKey differs from the wrapped pair's")
		}
		pubOnly, err := nkeys.FromPublicKey(wantPub)
		if err != nil {
			t.Fatal(err)
		}
		for _, msg := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte("header.payload"), 100)} {
			got, err := s.Sign(msg)
			if err != nil {
				t.Fatal(err)
			}
			want, err := kp.Sign(msg)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Error("Ed25519 signature differs from nkeys' (it is deterministic)")
			}
			if err := pubOnly.Verify(msg, got); err != nil {
				t.Errorf("nkeys Verify of the signature: %v", err)
			}
			if err := s.Verify(msg, got); err != nil {
				t.Errorf("signer Verify: %v", err)
			}
			bad := bytes.Clone(got)
			bad[0] ^= 1
			if err := s.Verify(msg, bad); !errors.Is(err, nkeys.ErrInvalidSignature) {
				t.Errorf("Verify of a bad signature = %v, want ErrInvalidSignature", err)
			}
		}
		s.Wipe()
		if _, err := s.Sign([]byte("x")); err == nil {
			t.Error("Sign after Wipe succeeded")
		}
	}

	curve, _ := nkeys.CreateCurveKeys()
	if _, err := newSigner(curve); err == nil {
		t.Error("newSigner accepted a curve pair")
	}
}

func TestIssuedTokensDecode(t *testing.T) {
	iss, keys := newTestIssuer(t)
	ref, err := nkeys.FromSeed([]byte(keys.IssuerSeed))
	if err != nil {
		t.Fatal(err)
	}
	unkey := newUserNkey(t)
	g, err := Resolve(User{
		Name:    "alice",
		Account: "APP",
		Permissions: Permissions{
			Pub:  Rule{Allow: []string{"orders.>"}, Deny: []string{"orders.secret"}},
			Sub:  Rule{Allow: []string{"orders.>", "_INBOX.>"}},
			Resp: &ResponsePermission{MaxMsgs: 1, TTL: time.Second},
		},
		ConnTypes: []string{jwt.ConnectionTypeStandard},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}

	// sameButStamp compares decoded claims apart from what Encode stamps
	// with the wall clock (iat, and jti, a hash over it).
	sameButStamp := func(t *testing.T, got, want jwt.Claims) {
		t.Helper()
		gd, wd := got.Claims(), want.Claims()
		gd.IssuedAt, gd.ID = wd.IssuedAt, wd.ID
		if !reflect.DeepEqual(got, want) {
			t.Errorf("decoded claims differ from nkeys-signed ones:\n got %+v\nwant %+v", got, want)
		}
	}
	valid := func(t *testing.T, c jwt.Claims) {
		t.Helper()
		vr := jwt.CreateValidationResults()
		c.Validate(vr)
		if vr.IsBlocking(true) {
			t.Errorf("claims do not validate: %v", vr.Errors())
		}
	}

	t.Run("user jwt", func(t *testing.T) {
		uc, err := iss.UserClaims(g, unkey, time.Now(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		token, err := iss.IssueUserJWT(uc)
		if err != nil {
			t.Fatal(err)
		}
		refToken, err := uc.Encode(ref)
		if err != nil {
			t.Fatal(err)
		}
		got, err := jwt.DecodeUserClaims(token) // verifies the signature
		if err != nil {
			t.Fatal(err)
		}
		want, err := jwt.DecodeUserClaims(refToken)
		if err != nil {
			t.Fatal(err)
		}
		if got.Issuer != iss.PublicKey() {
			t.Errorf("iss = %s, want %s", got.Issuer, iss.PublicKey())
		}
		valid(t, got)
		sameButStamp(t, got, want)
		// And the signature checks with nkeys against the issuer's public key.
		verifyJWT(t, token, iss.PublicKey())
	})

	t.Run("response", func(t *testing.T) {
		skp, _ := nkeys.CreateServer()
		sid, _ := skp.PublicKey()
		for _, c := range []struct{ userJWT, reason string }{{"user.jwt", ""}, {"", "denied"}} {
			token, err := iss.Respond(sid, unkey, c.userJWT, c.reason)
			if err != nil {
				t.Fatal(err)
			}
			rc := jwt.NewAuthorizationResponseClaims(unkey)
			rc.Audience, rc.Jwt, rc.Error = sid, c.userJWT, c.reason
			refToken, err := rc.Encode(ref)
			if err != nil {
				t.Fatal(err)
			}
			got, err := jwt.DecodeAuthorizationResponseClaims(token)
			if err != nil {
				t.Fatal(err)
			}
			want, err := jwt.DecodeAuthorizationResponseClaims(refToken)
			if err != nil {
				t.Fatal(err)
			}
			valid(t, got)
			sameButStamp(t, got, want)
			verifyJWT(t, token, iss.PublicKey())
		}
	})
}

// flipChar returns s with the base32 character at i replaced by another.
func flipChar(s string, i int) string {
	c := byte('A')
	if s[i] == 'A' {
		c = 'B'
	}
	return s[:i] + string(c) + s[i+1:]
}

// verifyJWT checks token's signature with nkeys against the public key pub.
func verifyJWT(t *testing.T, token, pub string) {
	t.Helper()
	i := strings.LastIndexByte(token, '.')
	sig, err := base64.RawURLEncoding.DecodeString(token[i+1:])
	if err != nil {
		t.Fatal(err)
	}
	kp, err := nkeys.FromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := kp.Verify([]byte(token[:i]), sig); err != nil {
		t.Errorf("nkeys Verify of the token signature: %v", err)
	}
	if len(sig) != ed25519.SignatureSize {
		t.Errorf("signature is %d bytes, want %d", len(sig), ed25519.SignatureSize)
	}
}
