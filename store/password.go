package store

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"github.com/authrelay/authrelay/accounts"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// MaxPasswordLen is the longest password, in bytes, that authrelay stores or
// verifies. Longer passwords are refused when set and never verify.
const MaxPasswordLen = accounts.MaxPasswordLen

// bcryptMaxPasswordLen is the number of password bytes bcrypt looks at. A
// longer password never verifies against a bcrypt hash, so two passwords that
// differ only after this byte can never both match.
const bcryptMaxPasswordLen = 72

// The names HashScheme reports for the supported password hash schemes.
const (
	// SchemeArgon2id names argon2id hashes in PHC string format.
	SchemeArgon2id = "argon2id"
	// SchemeBcrypt names bcrypt hashes in modular crypt format ($2a$, $2b$,
	// $2y$), as nats-server's own configuration uses them.
	SchemeBcrypt = "bcrypt"
	// SchemeNone is HashInfo's scheme of a user without a password
	// (added with only other credentials).
	SchemeNone = "none"
)

// Limits on the parameters of a hash that is created or verified. They are far
// above any published recommendation and only stop a mistyped or forged hash
// from stalling every authentication or allocating without bound.
const (
	maxArgon2Memory = 4 << 20 // KiB: 4 GiB
	maxArgon2Time   = 100
	minArgon2Salt   = 8
	maxArgon2Salt   = 1024
	minArgon2Key    = 16
	maxArgon2Key    = 1024
	maxBcryptCost   = 16 // about 5 s per verify: already past any auth timeout
)

// Argon2Params are the cost parameters of an argon2id hash.
type Argon2Params struct {
	// Memory is the memory cost in KiB.
	Memory uint32
	// Time is the number of passes over the memory.
	Time uint32
	// Threads is the degree of parallelism.
	Threads uint8
	// SaltLen and KeyLen are the lengths, in bytes, of the random salt and
	// of the derived key.
	SaltLen, KeyLen uint32
}

// String is p as 'authrelay hash show' prints it.
func (p Argon2Params) String() string {
	return fmt.Sprintf("argon2id m=%d KiB (%d MiB), t=%d, p=%d", p.Memory, p.Memory/1024, p.Time, p.Threads)
}

// DefaultArgon2Params are OWASP's recommended argon2id parameters: 19 MiB of
// memory, two passes, one thread, a 16-byte salt and a 32-byte key.
var DefaultArgon2Params = Argon2Params{Memory: 19456, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// Validate reports whether p can be used to create a hash that VerifyPassword
// accepts.
func (p Argon2Params) Validate() error {
	switch {
	case p.Time < 1 || p.Time > maxArgon2Time:
		return fmt.Errorf("argon2id time cost %d is out of range: use 1 to %d", p.Time, maxArgon2Time)
	case p.Threads < 1:
		return errors.New("argon2id parallelism is 0: use at least 1")
	case p.Memory < 8*uint32(p.Threads) || p.Memory > maxArgon2Memory:
		return fmt.Errorf("argon2id memory %d KiB is out of range: use %d to %d KiB", p.Memory, 8*uint32(p.Threads), maxArgon2Memory)
	case p.SaltLen < minArgon2Salt || p.SaltLen > maxArgon2Salt:
		return fmt.Errorf("argon2id salt length %d is out of range: use %d to %d bytes", p.SaltLen, minArgon2Salt, maxArgon2Salt)
	case p.KeyLen < minArgon2Key || p.KeyLen > maxArgon2Key:
		return fmt.Errorf("argon2id key length %d is out of range: use %d to %d bytes", p.KeyLen, minArgon2Key, maxArgon2Key)
	}
	return nil
}

// ValidatePassword reports why password cannot be set as a user's password:
// it is empty, longer than MaxPasswordLen, or not valid UTF-8.
func ValidatePassword(password string) error {
	switch {
	case password == "":
		return errors.New("password is empty: give a password")
	case len(password) > MaxPasswordLen:
		return fmt.Errorf("password is %d bytes long: the limit is %d bytes, choose a shorter one", len(password), MaxPasswordLen)
	case !utf8.ValidString(password):
		// NATS clients send the password as a JSON string, so a password
		// that is not UTF-8 could never arrive intact.
		return errors.New("password is not valid UTF-8: clients could never send it, choose another")
	}
	return nil
}

// HashPassword hashes password with argon2id and a random salt, and returns
// the hash as a PHC string: $argon2id$v=19$m=…,t=…,p=…$<salt>$<key>, with the
// salt and key in unpadded standard base64.
func HashPassword(password string, p Argon2Params) (string, error) {
	if err := ValidatePassword(password); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	if err := p.Validate(); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return formatArgon2id(p, salt, key), nil
}

func formatArgon2id(p Argon2Params, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads,
		base64.RawStdEncoding.EncodeToString(salt),
		base64.RawStdEncoding.EncodeToString(key))
}

// VerifyPassword reports whether password matches hash, which is an argon2id
// PHC string or a bcrypt hash ($2a$, $2b$ or $2y$). The comparison is in
// constant time. A password longer than MaxPasswordLen never matches, and
// neither does one longer than 72 bytes against a bcrypt hash, because bcrypt
// would ignore everything after byte 72. The error is non-nil only when hash
// cannot be parsed or uses an unsupported scheme; it never contains the hash.
func VerifyPassword(hash, password string) (bool, error) {
	switch schemeOf(hash) {
	case SchemeArgon2id:
		h, err := parseArgon2id(hash)
		if err != nil {
			return false, err
		}
		if len(password) > MaxPasswordLen {
			return false, nil
		}
		key := argon2.IDKey([]byte(password), h.salt, h.params.Time, h.params.Memory, h.params.Threads, uint32(len(h.key)))
		return subtle.ConstantTimeCompare(key, h.key) == 1, nil
	case SchemeBcrypt:
		if err := checkBcrypt(hash); err != nil {
			return false, err
		}
		if len(password) > MaxPasswordLen {
			return false, nil
		}
		// bcrypt would silently ignore the bytes after the 72nd. The hash is
		// still computed for an over-long password so that the answer takes
		// as long as for any other wrong password.
		tooLong := len(password) > bcryptMaxPasswordLen
		err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password))
		switch {
		case err == nil:
			return !tooLong, nil
		case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
			return false, nil
		default:
			return false, errors.New("bcrypt password hash is malformed")
		}
	}
	_, err := hashScheme(hash)
	return false, err
}

// schemeOf names the scheme of hash by its prefix alone, or returns "".
func schemeOf(hash string) string {
	switch {
	case strings.HasPrefix(hash, "$argon2id$"):
		return SchemeArgon2id
	case strings.HasPrefix(hash, "$2a$"), strings.HasPrefix(hash, "$2b$"), strings.HasPrefix(hash, "$2y$"):
		return SchemeBcrypt
	}
	return ""
}

// hashScheme returns SchemeArgon2id or SchemeBcrypt for a hash in one of the
// supported formats, after checking the whole hash. Its errors say what is
// wrong without quoting the hash.
func hashScheme(hash string) (string, error) {
	switch schemeOf(hash) {
	case SchemeArgon2id:
		if _, err := parseArgon2id(hash); err != nil {
			return "", err
		}
		return SchemeArgon2id, nil
	case SchemeBcrypt:
		if err := checkBcrypt(hash); err != nil {
			return "", err
		}
		return SchemeBcrypt, nil
	}
	// Name the scheme only when it looks like a scheme identifier: a
	// plain-text password given where a hash was expected must not end up in
	// an error message.
	if rest, ok := strings.CutPrefix(hash, "$"); ok {
		if id, _, ok := strings.Cut(rest, "$"); ok && isSchemeID(id) {
			return "", fmt.Errorf("password hash scheme %q is not supported: use argon2id ($argon2id$…) or bcrypt ($2a$, $2b$, $2y$)", id)
		}
	}
	return "", errors.New("password hash is not in a supported format: give an argon2id PHC string ($argon2id$…) or a bcrypt hash ($2a$, $2b$, $2y$)")
}

func isSchemeID(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z') && !(r >= '0' && r <= '9') && r != '-' {
			return false
		}
	}
	return true
}

type argon2idHash struct {
	params    Argon2Params
	salt, key []byte
}

// parseArgon2id parses $argon2id$v=19$m=M,t=T,p=P$salt$key.
func parseArgon2id(hash string) (argon2idHash, error) {
	malformed := func(what string) (argon2idHash, error) {
		return argon2idHash{}, fmt.Errorf("argon2id password hash is malformed: %s", what)
	}
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return malformed("want $argon2id$v=19$m=…,t=…,p=…$<salt>$<key>")
	}
	if parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return malformed(fmt.Sprintf("only version v=%d is supported", argon2.Version))
	}
	var h argon2idHash
	fields := strings.Split(parts[3], ",")
	if len(fields) != 3 {
		return malformed("want parameters m=…,t=…,p=…")
	}
	var vals [3]uint64
	for i, name := range []string{"m", "t", "p"} {
		v, ok := strings.CutPrefix(fields[i], name+"=")
		if !ok {
			return malformed("want parameters m=…,t=…,p=…")
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return malformed(fmt.Sprintf("parameter %s is not a number", name))
		}
		vals[i] = n
	}
	if vals[2] > 255 {
		return malformed("parallelism above 255 is not supported")
	}
	h.params.Memory, h.params.Time, h.params.Threads = uint32(vals[0]), uint32(vals[1]), uint8(vals[2])
	var err error
	if h.salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil {
		return malformed("salt is not unpadded base64")
	}
	if h.key, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil {
		return malformed("key is not unpadded base64")
	}
	h.params.SaltLen, h.params.KeyLen = uint32(len(h.salt)), uint32(len(h.key))
	if err := h.params.Validate(); err != nil {
		return malformed(err.Error())
	}
	return h, nil
}

// checkBcrypt checks a bcrypt hash completely: prefix, cost, and the 53
// characters of salt and hash in bcrypt's base64 alphabet.
func checkBcrypt(hash string) error {
	const size = 60 // "$2b$" + "NN$" + 22 salt + 31 hash characters
	if len(hash) != size || hash[6] != '$' {
		return errors.New("bcrypt password hash is malformed: want $2b$<cost>$ and 53 characters")
	}
	for i := 7; i < size; i++ {
		c := hash[i]
		if !(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9') && c != '.' && c != '/' {
			return errors.New("bcrypt password hash is malformed: invalid character in salt or hash")
		}
	}
	if hash[4] < '0' || hash[4] > '9' || hash[5] < '0' || hash[5] > '9' {
		return errors.New("bcrypt password hash is malformed: the cost is not two digits")
	}
	cost := int(hash[4]-'0')*10 + int(hash[5]-'0')
	if cost < bcrypt.MinCost {
		return fmt.Errorf("bcrypt password hash is malformed: cost %d is below the minimum %d", cost, bcrypt.MinCost)
	}
	if _, err := bcrypt.Cost([]byte(hash)); err != nil {
		return errors.New("bcrypt password hash is malformed")
	}
	if cost > maxBcryptCost {
		return fmt.Errorf("bcrypt cost %d is too high to verify at each connect: the limit is %d", cost, maxBcryptCost)
	}
	return nil
}
