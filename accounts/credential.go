package accounts

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// CredentialKind is what a client logs in with. Which kind a CONNECT
// carries is decided in one place, Presented, for the relay and for
// 'user explain' alike.
type CredentialKind string

// The credential kinds. A user has a password, or other credentials (rows
// of the store's credentials table, one kind each), or both.
const (
	// CredPassword is a username with its password.
	CredPassword CredentialKind = "password"
	// CredNkey is a user nkey (U…) with its signature of the server's
	// nonce (nats --nkey).
	CredNkey CredentialKind = "nkey"
	// CredToken is an API token made by 'authrelay token add', sent as the
	// NATS token (nats --token).
	CredToken CredentialKind = "token"
	// CredTLSSubject binds a user to the subject, in RFC 2253 form, of a
	// client certificate whose chain the server verified.
	CredTLSSubject CredentialKind = "tls_subject"
	// CredTLSFingerprint binds a user to the SHA-256 of a client
	// certificate's public key, of a chain the server verified.
	CredTLSFingerprint CredentialKind = "tls_fingerprint"
	// CredOIDC is an OpenID Connect or OAuth2 bearer token (a JWT, an ID
	// token or an access token) of an identity provider ('authrelay idp
	// add'), sent as the NATS token, or as the password of a username. The
	// relay verifies it with the provider's keys and looks the user up by
	// Lookup: the provider and the token's username claim.
	CredOIDC CredentialKind = "oidc"
)

// Denial reasons of the credential kinds beside a password (see the
// Reason constants in decide.go).
const (
	// ReasonNonceMissing means a client sent an nkey and a signature but
	// the server sent it no nonce to sign, so the signature proves nothing
	// (it could be replayed). A config-mode server sends nonces only when
	// its config has an nkey user: 'authrelay init' writes one into the
	// callout account, and 'authrelay doctor' says when it is missing.
	ReasonNonceMissing = "nonce_missing"
	// ReasonIdpUnavailable means a client sent an identity provider's
	// token but the provider's keys could not be had (its discovery
	// document or key set unreachable, or the keys cached too long ago):
	// the token could not be checked. Other logins are not held up.
	ReasonIdpUnavailable = "idp_unavailable"
)

// TokenPrefix starts every API token, so that a secret scanner (or a
// person) can tell one at a glance.
const TokenPrefix = "authrelay_"

// tokenBytes is the entropy of an API token: 256 bits, which needs no slow
// hash (nobody can guess a preimage of its SHA-256).
const tokenBytes = 32

// tokenLen is the length of an API token: the prefix and 43 characters of
// unpadded base64url.
var tokenLen = len(TokenPrefix) + base64.RawURLEncoding.EncodedLen(tokenBytes)

// maxNonceLen and maxSigLen bound what a client's CONNECT may carry for an
// nkey login (nats-server's nonces are 11 bytes of base64; an ed25519
// signature is 64 bytes, 88 in padded base64).
const (
	maxNonceLen = 256
	maxSigLen   = 128
)

// minNonceLen is the shortest nonce a signature is checked against.
// nats-server sends 11 random bytes, base64url-encoded in 15 characters.
const minNonceLen = 8

// Credential is what one CONNECT presents, as Presented classifies it.
type Credential struct {
	Kind CredentialKind
	// Name and Password, for CredPassword.
	Name, Password string
	// Nkey, Sig and Nonce, for CredNkey: the client's public key, its
	// signature, and the nonce the server sent it.
	Nkey, Sig, Nonce string
	// Token, for CredToken: the API token.
	Token string
	// Cert, for CredTLSSubject: the leaf of the first chain the server
	// verified (the kind is CredTLSSubject for either TLS binding; the
	// store is asked for both).
	Cert *x509.Certificate
	// For CredOIDC, Token is the JWT; Name, when not empty, is the
	// username it came with (the token sent as the password), which the
	// token's username claim must equal. Password is the JWT then, too:
	// the relay decides it as a password when the user is bound to no
	// provider (see Presented).
	// Provider and Username are what the relay found the token to say,
	// for Lookup.
	Provider, Username string
}

// Presented returns the credential a CONNECT carries, in this order: a
// username with a password (CredOIDC when the password is shaped as a JWT,
// LooksLikeJWT); an nkey with a signature; an API token (a token with
// TokenPrefix); an identity provider's token (a JWT as the token); a
// client certificate the server verified, when the CONNECT carries no
// username.
//
// A username with a JWT as its password is CredOIDC with Name set, and
// the relay asks the store whether that user is bound to a provider: if
// it is, the JWT is verified as that provider's token (a failure counts
// only against the address, like every kind but the password); if not,
// the login is decided as a password (Credential.AsPassword), so that a
// password user's password that happens to look like a JWT still works,
// and a guess at it counts against the name as any password does. It reports false when there is none
// (ReasonNoCredentials). tls is nil for a client without TLS; only its
// verified chains count, as nats-server fills them only when it checked
// the client's certificate against its CA (tls { verify: true }).
func Presented(co jwt.ConnectOptions, nonce string, tls *jwt.ClientTLS) (Credential, bool) {
	switch {
	case co.Username != "" && co.Password != "" && LooksLikeJWT(co.Password):
		return Credential{Kind: CredOIDC, Name: co.Username, Password: co.Password, Token: co.Password}, true
	case co.Username != "" && co.Password != "":
		return Credential{Kind: CredPassword, Name: co.Username, Password: co.Password}, true
	case co.Nkey != "" && co.SignedNonce != "":
		return Credential{Kind: CredNkey, Nkey: co.Nkey, Sig: co.SignedNonce, Nonce: nonce}, true
	case strings.HasPrefix(co.Token, TokenPrefix):
		return Credential{Kind: CredToken, Token: co.Token}, true
	case LooksLikeJWT(co.Token):
		return Credential{Kind: CredOIDC, Token: co.Token}, true
	case co.Username == "" && tls != nil && len(tls.VerifiedChains) > 0 && len(tls.VerifiedChains[0]) > 0:
		cert, err := parseCertPEM(tls.VerifiedChains[0][0])
		if err != nil {
			return Credential{}, false
		}
		return Credential{Kind: CredTLSSubject, Cert: cert}, true
	}
	return Credential{}, false
}

// AsPassword returns a CredOIDC credential that came as a username's
// password as the password credential it also is.
func (c Credential) AsPassword() Credential {
	return Credential{Kind: CredPassword, Name: c.Name, Password: c.Password}
}

// maxJWTLen bounds what LooksLikeJWT reads (idp.MaxTokenSize).
const maxJWTLen = 16 << 10

// LooksLikeJWT reports whether s has the shape of a signed JWT in compact
// form: three dot-separated parts of base64url, the first of them
// decoding to a JSON object ('{'); the signature may be empty (alg none),
// so that such a token is refused as the bad token it is. It checks
// nothing else: the relay verifies the token. API tokens (TokenPrefix)
// never look like one.
func LooksLikeJWT(s string) bool {
	if len(s) > maxJWTLen || strings.HasPrefix(s, TokenPrefix) || strings.Count(s, ".") != 2 {
		return false
	}
	head, rest, _ := strings.Cut(s, ".")
	body, sig, _ := strings.Cut(rest, ".")
	if head == "" || body == "" {
		return false
	}
	for _, part := range []string{head, body, sig} {
		for i := 0; i < len(part); i++ {
			if ch := part[i]; !(ch >= 'A' && ch <= 'Z' || ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_') {
				return false
			}
		}
	}
	b, err := base64.RawURLEncoding.DecodeString(head)
	return err == nil && len(b) > 0 && b[0] == '{'
}

// OIDCValue is the value the store finds a provider's user by: the
// provider's name and the username, which neither holds a NUL.
func OIDCValue(provider, username string) string { return provider + "\x00" + username }

// maxCertPEM bounds a certificate the server passes on.
const maxCertPEM = 64 << 10

// parseCertPEM parses one PEM certificate.
func parseCertPEM(s string) (*x509.Certificate, error) {
	if len(s) > maxCertPEM {
		return nil, errors.New("certificate too large")
	}
	b, _ := pem.Decode([]byte(s))
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("not a PEM certificate")
	}
	return x509.ParseCertificate(b.Bytes)
}

// ErrBadSignature means an nkey login's signature does not verify against
// the nonce the server sent with the key the client named.
var ErrBadSignature = errors.New("the signature does not verify")

// VerifyNonce checks that sig is pub's signature of nonce. A signature is
// accepted in base64url (what nats clients send) or standard base64, as
// nats-server accepts it. An empty nonce is refused (ReasonNonceMissing):
// a signature of nothing could be replayed forever.
func (c Credential) VerifyNonce() error {
	if c.Nonce == "" {
		return errNonceMissing
	}
	if len(c.Nonce) < minNonceLen || len(c.Nonce) > maxNonceLen || len(c.Sig) > maxSigLen {
		return ErrBadSignature
	}
	if !nkeys.IsValidPublicUserKey(c.Nkey) {
		return ErrBadSignature
	}
	sig, err := base64.RawURLEncoding.DecodeString(c.Sig)
	if err != nil {
		if sig, err = base64.StdEncoding.DecodeString(c.Sig); err != nil {
			return ErrBadSignature
		}
	}
	kp, err := nkeys.FromPublicKey(c.Nkey)
	if err != nil {
		return ErrBadSignature
	}
	if err := kp.Verify([]byte(c.Nonce), sig); err != nil {
		return ErrBadSignature
	}
	return nil
}

// errNonceMissing is VerifyNonce's error for a request without a nonce.
var errNonceMissing = errors.New("the server sent no nonce to sign")

// IsNonceMissing reports whether err is VerifyNonce's for a missing nonce.
func IsNonceMissing(err error) bool { return errors.Is(err, errNonceMissing) }

// Lookup returns the kind and value the store finds the credential's user
// by: the public nkey, the digest of a token, the certificate's subject.
// For a certificate, the store is also asked by LookupFingerprint.
func (c Credential) Lookup() (CredentialKind, string) {
	switch c.Kind {
	case CredNkey:
		return CredNkey, c.Nkey
	case CredToken:
		return CredToken, TokenDigest(c.Token)
	case CredTLSSubject:
		return CredTLSSubject, CertSubject(c.Cert)
	case CredOIDC:
		return CredOIDC, OIDCValue(c.Provider, c.Username)
	}
	return c.Kind, ""
}

// LookupFingerprint returns the second lookup of a certificate credential.
func (c Credential) LookupFingerprint() (CredentialKind, string) {
	return CredTLSFingerprint, CertFingerprint(c.Cert)
}

// Guessable reports whether the credential can be guessed. Only a password
// can: the lockout counts a failed one against the username, while the
// other kinds (a signature of a fresh nonce, 256 random bits, a verified
// certificate) count only against the client's address, so that nobody can
// lock a service out by its name.
func (c Credential) Guessable() bool { return c.Kind == CredPassword }

// NewAPIToken returns a new API token: TokenPrefix and 256 random bits.
func NewAPIToken() (string, error) {
	b := make([]byte, tokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make token: %w", err)
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// TokenDigest returns what the store keeps of an API token: its SHA-256 in
// hex.
func TokenDigest(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// WellFormedToken reports whether token has the shape NewAPIToken gives.
func WellFormedToken(token string) bool {
	if len(token) != tokenLen || !strings.HasPrefix(token, TokenPrefix) {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(token[len(TokenPrefix):])
	return err == nil
}

// TokenID is the public name of a token in 'token list' and 'token rm':
// the first 12 hex digits of its digest, which tell nothing of the token.
func TokenID(digest string) string {
	if len(digest) < 12 {
		return digest
	}
	return digest[:12]
}

// CertSubject returns cert's subject in RFC 2253 form, as
// 'openssl x509 -noout -subject -nameopt RFC2253' prints it.
func CertSubject(cert *x509.Certificate) string {
	if cert == nil {
		return ""
	}
	return cert.Subject.ToRDNSequence().String()
}

// CertFingerprint returns the SHA-256, in hex, of cert's public key
// (SubjectPublicKeyInfo), which stays the same when the certificate is
// renewed with the same key.
func CertFingerprint(cert *x509.Certificate) string {
	if cert == nil {
		return ""
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:])
}

// ParseCredential checks a credential value an admin gives for kind and
// returns it as the store keeps it: an nkey must be a public user key, a
// subject is an RFC 2253 name (attribute types in upper case, no spaces
// around separators), a fingerprint 64 hex digits (colons allowed).
func ParseCredential(kind CredentialKind, value string) (string, error) {
	switch kind {
	case CredNkey:
		if !nkeys.IsValidPublicUserKey(value) {
			if strings.HasPrefix(value, "SU") {
				return "", errors.New("that is an nkey seed, a secret: give the public key (U…), for example from 'nk -inkey FILE -pubout'")
			}
			return "", errors.New("not a public user nkey: give the key that starts with U (56 characters)")
		}
		return value, nil
	case CredTLSSubject:
		return NormalizeSubject(value)
	case CredTLSFingerprint:
		v := strings.ToLower(strings.ReplaceAll(value, ":", ""))
		if b, err := hex.DecodeString(v); err != nil || len(b) != sha256.Size {
			return "", errors.New("not a SHA-256 fingerprint: give 64 hex digits, for example from 'openssl x509 -in CERT -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum'")
		}
		return v, nil
	}
	return "", fmt.Errorf("unknown credential kind %q", kind)
}

// maxSubjectNameLen bounds a certificate subject.
const maxSubjectNameLen = 1024

// NormalizeSubject returns an RFC 2253 subject such as 'CN=svc, o=acme' in
// the form CertSubject gives ('CN=svc,O=acme'): attribute types of the
// usual names in upper case, no space around ',' '+' and '='.
func NormalizeSubject(s string) (string, error) {
	if s == "" || len(s) > maxSubjectNameLen {
		return "", fmt.Errorf("a certificate subject is 1 to %d bytes in RFC 2253 form, such as 'CN=svc,O=acme'", maxSubjectNameLen)
	}
	var out strings.Builder
	var part strings.Builder
	flush := func(sep byte) error {
		typ, val, ok := strings.Cut(part.String(), "=")
		typ, val = strings.TrimSpace(typ), strings.TrimSpace(val)
		if !ok || typ == "" || val == "" {
			return fmt.Errorf("certificate subject %s: each part is TYPE=value, such as 'CN=svc,O=acme'", ClientText(s))
		}
		out.WriteString(strings.ToUpper(typ))
		out.WriteByte('=')
		out.WriteString(val)
		if sep != 0 {
			out.WriteByte(sep)
		}
		part.Reset()
		return nil
	}
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case ch < 0x20 || ch == 0x7f:
			return "", errors.New("certificate subject: control characters are not allowed")
		case ch == '\\' && i+1 < len(s):
			part.WriteByte(ch)
			part.WriteByte(s[i+1])
			i++
		case ch == ',' || ch == '+':
			if err := flush(ch); err != nil {
				return "", err
			}
		default:
			part.WriteByte(ch)
		}
	}
	if err := flush(0); err != nil {
		return "", err
	}
	return out.String(), nil
}

// StoredCredential is one row of a user's credentials beside the password.
type StoredCredential struct {
	Kind  CredentialKind `json:"kind"`
	Value string         `json:"value"`
	User  string         `json:"user"`
	// Name is a token's label (token add --name).
	Name    string    `json:"name,omitempty"`
	Created time.Time `json:"created"`
	// Expires, when not zero, is when a token stops working.
	Expires time.Time `json:"expires,omitzero"`
}

// Expired reports whether the credential has expired at now.
func (c StoredCredential) Expired(now time.Time) bool {
	return !c.Expires.IsZero() && !now.Before(c.Expires)
}

// CredentialEdit is what 'user add|set' asks of a user's credentials
// beside the password: nkeys (and one to generate), certificate subjects
// and fingerprints to add, the identity provider to bind to, and, for set,
// the kinds to remove first.
type CredentialEdit struct {
	Nkeys, Subjects, Fingerprints []string
	GenerateNkey                  bool
	Provider                      string
	ClearNkeys, ClearTLS          bool
}

// Check parses the edit's values (ParseCredential), generates the nkey
// asked for, and returns the credentials to add, the kinds to remove
// before them, and the generated nkey's seed (nil when none was asked for).
func (e CredentialEdit) Check() (add []StoredCredential, clear []CredentialKind, seed []byte, err error) {
	if e.GenerateNkey {
		pub, s, err := GenerateNkey()
		if err != nil {
			return nil, nil, nil, err
		}
		e.Nkeys, seed = append(slices.Clip(e.Nkeys), pub), s
	}
	for _, k := range []struct {
		kind   CredentialKind
		values []string
	}{{CredNkey, e.Nkeys}, {CredTLSSubject, e.Subjects}, {CredTLSFingerprint, e.Fingerprints}} {
		for _, v := range k.values {
			p, err := ParseCredential(k.kind, v)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("--%s: %w", strings.ReplaceAll(string(k.kind), "_", "-"), err)
			}
			add = append(add, StoredCredential{Kind: k.kind, Value: p})
		}
	}
	if e.Provider != "" {
		add = append(add, StoredCredential{Kind: CredOIDC, Value: e.Provider})
	}
	if e.ClearNkeys {
		clear = append(clear, CredNkey)
	}
	if e.ClearTLS {
		clear = append(clear, CredTLSSubject, CredTLSFingerprint)
	}
	return add, clear, seed, nil
}

// GenerateNkey returns a new user key pair's public key and seed. The seed
// is the secret a client logs in with (nats --nkey FILE).
func GenerateNkey() (public string, seed []byte, err error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return "", nil, fmt.Errorf("generate nkey: %w", err)
	}
	defer kp.Wipe()
	if public, err = kp.PublicKey(); err != nil {
		return "", nil, fmt.Errorf("generate nkey: %w", err)
	}
	s, err := kp.Seed()
	if err != nil {
		return "", nil, fmt.Errorf("generate nkey: %w", err)
	}
	// A copy: Wipe zeroes the key pair's own bytes, which Seed returns.
	return public, bytes.Clone(s), nil
}

// CredentialSummary is what a user may log in with, for 'user show': the
// kinds and the public parts, never a secret (a token is counted, not
// shown).
type CredentialSummary struct {
	Password        bool     `json:"password"`
	Nkeys           []string `json:"nkeys"`
	TLSSubjects     []string `json:"tls_subjects"`
	TLSFingerprints []string `json:"tls_fingerprints"`
	Tokens          int      `json:"tokens"`
	// Provider is the identity provider the user is bound to.
	Provider string `json:"idp,omitempty"`
}

// String is the summary in one line, such as "password, nkey UA…, 2 API
// tokens", or "none".
func (s CredentialSummary) String() string {
	var parts []string
	if s.Password {
		parts = append(parts, "password")
	}
	for _, l := range []struct {
		what   string
		values []string
	}{{"nkey", s.Nkeys}, {"certificate subject", s.TLSSubjects}, {"certificate key", s.TLSFingerprints}} {
		for _, v := range l.values {
			parts = append(parts, l.what+" "+ClientText(v))
		}
	}
	if s.Tokens > 0 {
		parts = append(parts, Plural(s.Tokens, "API token")+" ('token list')")
	}
	if s.Provider != "" {
		parts = append(parts, "identity provider "+s.Provider)
	}
	if len(parts) == 0 {
		return "none: the user cannot log in"
	}
	return strings.Join(parts, ", ")
}
