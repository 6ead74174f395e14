package deploy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/store"
)

// Names of the files that make up an authrelay directory.
const (
	// SecretsFile holds the seeds and passwords (mode 0600).
	SecretsFile = "secrets.json"
	// ServerConf is the server config a stock nats-server runs.
	ServerConf = "nats.conf"
	// AccountsConf holds the application accounts, included from ServerConf.
	AccountsConf = "accounts.conf"
	// DatabaseFile is the SQLite user database.
	DatabaseFile = "authrelay.db"
)

// Fixed names and values of the server config Init writes.
const (
	// AuthAccount is the callout account: it holds only the relay's user.
	AuthAccount = "AUTH"
	// SystemAccount is the system account, with a static admin login.
	SystemAccount = "SYS"
	// RelayUser is the relay's own login, in AuthAccount.
	RelayUser = "authrelay"
	// AdminUser is the system account's static admin login.
	AdminUser = "admin"
	// DefaultListen is the client listen address of a new nats.conf.
	DefaultListen = "127.0.0.1:4222"
	// AuthTimeoutSeconds is the server's authorization.timeout: how long
	// it waits for the relay's answer.
	AuthTimeoutSeconds = 2
	// DefaultBcryptCost is the bcrypt cost of the static users in
	// nats.conf. The server verifies it on each of their connects, which
	// are rare.
	DefaultBcryptCost = 11
)

// relayBcryptCost is the bcrypt cost of the relay user's hash in nats.conf.
const relayBcryptCost = 6

// ErrInvalid marks an error about an argument the caller gave (a listen
// address, an account name) rather than about the directory: what was
// asked is wrong, not the files. Match it with errors.Is.
var ErrInvalid = errors.New("invalid argument")

// invalidError is an ErrInvalid with its own message.
type invalidError struct{ msg string }

func (e *invalidError) Error() string        { return e.msg }
func (e *invalidError) Is(target error) bool { return target == ErrInvalid }

func invalidf(format string, args ...any) error {
	return &invalidError{msg: fmt.Sprintf(format, args...)}
}

// Layout names the files of one authrelay directory.
type Layout struct {
	Dir string
}

// Path returns the path of name inside the directory.
func (l Layout) Path(name string) string { return filepath.Join(l.Dir, name) }

// Secrets is the content of secrets.json: everything authrelay needs that must
// never be written into nats.conf.
type Secrets struct {
	accounts.Keys
	RelayUser     string `json:"relay_user"`
	RelayPassword string `json:"relay_password"`
	AdminUser     string `json:"admin_user"`
	AdminPassword string `json:"admin_password"`
	// RouteUser and RoutePassword are the route credentials of a cluster
	// node (see ClusterConf); empty on a single node.
	RouteUser     string `json:"route_user,omitempty"`
	RoutePassword string `json:"route_password,omitempty"`
	// Operator holds the seeds of an operator-mode directory (see
	// OperatorKeys); nil in config mode. The relay and the admin then log
	// in with user JWTs, so RelayPassword and AdminPassword are empty.
	Operator *OperatorKeys `json:"operator,omitempty"`
}

// NewSecrets generates fresh keys and passwords for the fixed users
// RelayUser and AdminUser.
func NewSecrets() (Secrets, error) {
	keys, err := accounts.GenerateKeys()
	if err != nil {
		return Secrets{}, err
	}
	return Secrets{
		Keys:          keys,
		RelayUser:     RelayUser,
		RelayPassword: RandomPassword(),
		AdminUser:     AdminUser,
		AdminPassword: RandomPassword(),
	}, nil
}

// RandomPassword returns 32 random bytes, hex-encoded: nothing a shell or
// a command line could misread (base64url could start with '-').
func RandomPassword() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms.
	}
	return hex.EncodeToString(b)
}

// Initialised reports whether the directory already holds authrelay's keys.
func (l Layout) Initialised() bool {
	_, err := os.Stat(l.Path(SecretsFile))
	return err == nil
}

// NotInitialised is the error for a directory that Init has not set up.
func NotInitialised(dir string) error {
	return fmt.Errorf("%s is not an authrelay directory: run 'authrelay init --dir %s' first, or pass the right --dir", dir, dir)
}

// LoadSecrets reads secrets.json. It refuses a file that the group or others
// can read, since it holds the issuer and xkey seeds.
func (l Layout) LoadSecrets() (Secrets, error) {
	path := l.Path(SecretsFile)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return Secrets{}, fmt.Errorf("%s is not an authrelay directory (no %s): run 'authrelay init --dir %s' first", l.Dir, SecretsFile, l.Dir)
	}
	return readSecretsFile(path)
}

// readSecretsFile reads the secrets.json at path, refusing it when the
// group or others can read it.
func readSecretsFile(path string) (Secrets, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Secrets{}, fmt.Errorf("read secrets: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return Secrets{}, fmt.Errorf("%s has mode %#o: it holds signing seeds and must be readable by its owner only; run 'chmod 600 %s'", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return Secrets{}, fmt.Errorf("read secrets: %w", err)
	}
	var s Secrets
	if err := json.Unmarshal(b, &s); err != nil {
		return Secrets{}, fmt.Errorf("read secrets: %s is not valid JSON: %v", path, err)
	}
	if s.IssuerSeed == "" || s.XKeySeed == "" || (s.RelayPassword == "" && s.Operator == nil) {
		return Secrets{}, fmt.Errorf("read secrets: %s lacks issuer_seed, xkey_seed or relay_password", path)
	}
	if s.RelayUser == "" {
		s.RelayUser = RelayUser
	}
	return s, nil
}

// marshalSecrets encodes s for secrets.json.
func marshalSecrets(s Secrets) ([]byte, error) {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode secrets: %w", err)
	}
	return append(b, '\n'), nil
}

// WriteFileAtomic writes data to path through a temporary file in the same
// directory, so a reader never sees a half-written file.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// OpenDatabase opens the database of an initialised directory: OpenStore
// with the default StoreOptions (in cluster mode, this node's server as
// $NATS_URL or nats.conf's listen address give it).
func (l Layout) OpenDatabase(ctx context.Context) (*store.DB, error) {
	return l.OpenStore(ctx, StoreOptions{})
}

// missingDatabase is the error for a directory that has keys but no
// database.
func (l Layout) missingDatabase(cause error) error {
	return fmt.Errorf("%s has authrelay's keys (%s) but no user database: %w. "+
		"Nothing was created. Restore the latest backup with 'authrelay restore FILE --dir %s' "+
		"(stop every 'authrelay serve' of this directory first: a running relay keeps serving the removed file until it restarts); "+
		"or, to start over with new keys and no users, move %s aside and run 'authrelay init --dir %s'",
		l.Dir, SecretsFile, cause, l.Dir, l.Dir, l.Dir)
}
