package accounts

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
	"golang.org/x/crypto/nacl/box"
)

// Keys are the secrets authrelay signs and seals with: the issuer account
// seed (SA…) whose public key nats.conf names as auth_callout.issuer, and the
// curve seed (SX…) whose public key nats.conf names as auth_callout.xkey.
type Keys struct {
	IssuerSeed string `json:"issuer_seed"`
	XKeySeed   string `json:"xkey_seed"`
}

// GenerateKeys creates a fresh issuer account key and xkey.
func GenerateKeys() (Keys, error) {
	akp, err := nkeys.CreateAccount()
	if err != nil {
		return Keys{}, fmt.Errorf("create issuer key: %w", err)
	}
	aseed, err := akp.Seed()
	if err != nil {
		return Keys{}, fmt.Errorf("create issuer key: %w", err)
	}
	xkp, err := nkeys.CreateCurveKeys()
	if err != nil {
		return Keys{}, fmt.Errorf("create xkey: %w", err)
	}
	xseed, err := xkp.Seed()
	if err != nil {
		return Keys{}, fmt.Errorf("create xkey: %w", err)
	}
	return Keys{IssuerSeed: string(aseed), XKeySeed: string(xseed)}, nil
}

// Placement decides how a user JWT names the account a user lands in and
// which key signs it. It is the one place that knows the difference between
// config mode (ConfigMode) and operator mode (OperatorMode); the directory
// decides which applies (deploy.Layout.Identity).
type Placement interface {
	// Place sets the fields of uc that put the user into account. It runs
	// last, once uc holds the grant, so that it may also clear what the
	// account's key must not carry (a scoped signing key).
	Place(uc *jwt.UserClaims, account string) error
}

// ConfigMode is the placement for a server whose accounts are defined in
// nats.conf: the user JWT's audience is the target account's name and the
// JWT is signed by the auth_callout issuer key.
type ConfigMode struct{}

// Place sets uc's audience to the account name.
func (ConfigMode) Place(uc *jwt.UserClaims, account string) error {
	uc.Audience = account
	return nil
}

// Issuer signs user JWTs and authorization responses with the auth_callout
// issuer key. It is safe for concurrent use.
type Issuer struct {
	kp        *signer // the issuer key, held expanded for signing
	pub       string
	placement Placement
	// account is the issuer_account of responses: the callout account,
	// when the issuer key is one of its signing keys (operator mode).
	account string
}

// NewIssuer returns an Issuer for an account seed (SA…). With a nil
// placement it uses ConfigMode.
func NewIssuer(seed string, placement Placement) (*Issuer, error) {
	kp, err := nkeys.FromSeed([]byte(seed))
	if err != nil {
		return nil, fmt.Errorf("issuer seed: %w", err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("issuer seed: %w", err)
	}
	if !nkeys.IsValidPublicAccountKey(pub) {
		return nil, errors.New("issuer seed is not an account seed (it must start with SA)")
	}
	s, err := newSigner(kp)
	if err != nil {
		return nil, fmt.Errorf("issuer seed: %w", err)
	}
	if placement == nil {
		placement = ConfigMode{}
	}
	i := &Issuer{kp: s, pub: pub, placement: placement}
	if ra, ok := placement.(responseAccount); ok && ra.calloutAccount() != pub {
		i.account = ra.calloutAccount()
	}
	return i, nil
}

// PublicKey returns the issuer's public account key (A…).
func (i *Issuer) PublicKey() string { return i.pub }

// Placeable returns the error Place would give for a user of account:
// nil in config mode; in operator mode one wrapping ErrAccountNotAllowed
// for an account the placement does not place users in.
func (i *Issuer) Placeable(account string) error {
	var scratch jwt.UserClaims
	return i.placement.Place(&scratch, account)
}

// PendingAccount is the account the servers' connection lists show a
// client in while the relay decides its login: in operator mode the
// callout account's public key (the default sentinel, which the server
// hands the client, is one of its users); "" in config mode, where such a
// client has no account yet.
func (i *Issuer) PendingAccount() string {
	if ra, ok := i.placement.(responseAccount); ok {
		return ra.calloutAccount()
	}
	return ""
}

// UserClaims builds the claims for grant g to the connection whose
// per-connection key is userNkey: subject, account placement, name,
// permissions, allowed connection types and an expiry of now+ttl (no expiry
// when ttl is 0), never later than the user's own expiry. A direction
// (publish, subscribe) the grant allows nothing in is closed: see
// jwtPermission.
func (i *Issuer) UserClaims(g Grant, userNkey string, now time.Time, ttl time.Duration) (*jwt.UserClaims, error) {
	uc := jwt.NewUserClaims(userNkey)
	uc.Name = g.Name
	uc.IssuedAt = now.Unix()
	p := g.Permissions
	uc.Pub = jwtPermission(p.Pub)
	uc.Sub = jwtPermission(p.Sub)
	if r := p.Resp; r != nil {
		uc.Resp = &jwt.ResponsePermission{MaxMsgs: r.MaxMsgs, Expires: r.TTL}
	}
	uc.AllowedConnectionTypes.Add(g.ConnTypes...)
	var exp time.Time
	if ttl > 0 {
		exp = now.Add(ttl)
	}
	if !g.Expires.IsZero() && (exp.IsZero() || g.Expires.Before(exp)) {
		exp = g.Expires
	}
	if !exp.IsZero() {
		// JWT times are whole seconds; round down so the JWT never outlives
		// the user's expiry, but keep at least one second.
		secs := exp.Unix()
		if secs <= now.Unix() {
			secs = now.Unix() + 1
		}
		uc.Expires = secs
	}
	if err := i.placement.Place(uc, g.Account); err != nil {
		return nil, err
	}
	return uc, nil
}

// jwtPermission is what a user JWT carries for one direction of a grant.
// It is the one place that decides least privilege for every placement:
// nats-server reads a direction with neither allow nor deny as "everything",
// and one with only denies as "everything else", so a direction whose rule
// allows nothing (Scope ScopeNothing) is closed explicitly with a deny of
// '>' (the rule's own denies are then moot and left out). A rule that allows
// something is written as it is.
//
// The deny keeps the server's own mechanisms working: a publish refused by
// the deny still passes when it answers a request the user received and its
// response permission covers it (client.go checks responses after allow and
// deny), and a direction that allows something carries no deny of '>'.
func jwtPermission(r Rule) jwt.Permission {
	var p jwt.Permission
	if r.Scope() == ScopeNothing {
		p.Deny.Add(AllSubjects)
		return p
	}
	p.Allow.Add(r.Allow...)
	p.Deny.Add(r.Deny...)
	return p
}

// IssueUserJWT signs uc with the issuer key, or in operator mode with the
// signing key of the account uc was placed in.
func (i *Issuer) IssueUserJWT(uc *jwt.UserClaims) (string, error) {
	var s string
	var err error
	if us, ok := i.placement.(userSigner); ok {
		s, err = us.signUser(uc)
	} else {
		s, err = uc.Encode(i.kp)
	}
	if err != nil {
		return "", fmt.Errorf("sign user jwt: %w", err)
	}
	return s, nil
}

// Respond builds and signs an authorization response for the server serverID
// about the connection userNkey: it carries userJWT when reason is empty,
// otherwise the denial reason.
func (i *Issuer) Respond(serverID, userNkey, userJWT, reason string) (string, error) {
	rc := jwt.NewAuthorizationResponseClaims(userNkey)
	rc.Audience = serverID
	rc.IssuerAccount = i.account
	if reason != "" {
		rc.Error = reason
	} else {
		rc.Jwt = userJWT
	}
	s, err := rc.Encode(i.kp)
	if err != nil {
		return "", fmt.Errorf("sign authorization response: %w", err)
	}
	return s, nil
}

// xkeyHeaderLen is the length of what precedes the box in a sealed message:
// nkeys' version prefix "xkv1" and the 24-byte nonce.
const xkeyHeaderLen = len(nkeys.XKeyVersionV1) + 24

// XKey opens requests sealed to the relay's curve key and seals responses to
// the server's curve key. Its wire format is nkeys' (xkv1, nonce, nacl/box
// output), but it keeps the X25519 shared key with each server's xkey (fixed
// for the server's lifetime), so only the first message with a server pays
// for the scalar multiplication. It is safe for concurrent use.
type XKey struct {
	pub   string
	priv  [32]byte // the raw curve private key, as nkeys uses it
	peers *sharedKeys
}

// NewXKey returns an XKey for a curve seed (SX…).
func NewXKey(seed string) (*XKey, error) {
	if !strings.HasPrefix(seed, "SX") {
		return nil, errors.New("xkey seed is not a curve seed (it must start with SX)")
	}
	kp, err := nkeys.FromCurveSeed([]byte(seed))
	if err != nil {
		return nil, fmt.Errorf("xkey seed: %w", err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("xkey seed: %w", err)
	}
	_, raw, err := nkeys.DecodeSeed([]byte(seed))
	if err != nil {
		return nil, fmt.Errorf("xkey seed: %w", err)
	}
	x := &XKey{pub: pub, peers: newSharedKeys(maxPeerKeys)}
	copy(x.priv[:], raw) // FromCurveSeed checked it is 32 bytes
	clear(raw)
	return x, nil
}

// PublicKey returns the public curve key (X…).
func (x *XKey) PublicKey() string { return x.pub }

// Open decrypts a request sealed by the server whose public xkey is sender.
// It fails like nkeys' Open, with the same errors: ErrInvalidEncrypted for an
// input too short to hold a box, ErrInvalidEncVersion for one not starting
// with xkv1, ErrInvalidSender for a sender that is not a public curve key and
// ErrCouldNotDecrypt for one that does not open. Only a sender whose message
// opened gets its shared key cached.
func (x *XKey) Open(sealed []byte, sender string) ([]byte, error) {
	if len(sealed) <= xkeyHeaderLen {
		return nil, fmt.Errorf("open sealed request: %w", nkeys.ErrInvalidEncrypted)
	}
	if string(sealed[:len(nkeys.XKeyVersionV1)]) != nkeys.XKeyVersionV1 {
		return nil, fmt.Errorf("open sealed request: %w", nkeys.ErrInvalidEncVersion)
	}
	k, cached, err := x.sharedKey(sender)
	if err != nil {
		return nil, fmt.Errorf("open sealed request: %w", nkeys.ErrInvalidSender)
	}
	var nonce [24]byte
	copy(nonce[:], sealed[len(nkeys.XKeyVersionV1):xkeyHeaderLen])
	b, ok := box.OpenAfterPrecomputation(nil, sealed[xkeyHeaderLen:], &nonce, k)
	if !ok {
		return nil, fmt.Errorf("open sealed request: %w", nkeys.ErrCouldNotDecrypt)
	}
	if !cached {
		x.peers.put(sender, k)
	}
	return b, nil
}

// Seal encrypts a response to the server whose public xkey is recipient,
// with a fresh random nonce. It fails with ErrInvalidRecipient, like nkeys'
// Seal, when recipient is not a public curve key.
func (x *XKey) Seal(msg []byte, recipient string) ([]byte, error) {
	return x.sealWithRand(msg, recipient, rand.Reader)
}

// sealWithRand is Seal with the nonce read from rr, as nkeys' SealWithRand;
// tests use it to compare the two byte for byte.
func (x *XKey) sealWithRand(msg []byte, recipient string, rr io.Reader) ([]byte, error) {
	k, cached, err := x.sharedKey(recipient)
	if err != nil {
		return nil, fmt.Errorf("seal response: %w", nkeys.ErrInvalidRecipient)
	}
	var nonce [24]byte
	if _, err := io.ReadFull(rr, nonce[:]); err != nil {
		return nil, fmt.Errorf("seal response: %w", err)
	}
	if !cached {
		x.peers.put(recipient, k)
	}
	out := make([]byte, xkeyHeaderLen, xkeyHeaderLen+len(msg)+box.Overhead)
	copy(out, nkeys.XKeyVersionV1)
	copy(out[len(nkeys.XKeyVersionV1):], nonce[:])
	return box.SealAfterPrecomputation(out, msg, &nonce, k), nil
}
