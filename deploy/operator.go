package deploy

// Operator mode.
//
// A directory runs in one of two modes, decided once, here, by the
// directory itself: config mode (the accounts and the auth_callout block
// are in nats.conf; 'authrelay init') or operator mode (decentralized JWT:
// the server trusts an operator, accounts are JWTs in a resolver, the
// callout is the AUTH account JWT's authorization section; 'authrelay init
// --operator'). An operator directory holds operator.json, its public
// facts; its absence means config mode (Layout.Mode). Everything that
// differs between the modes is answered from the mode here, never
// re-derived by a caller:
//
//   - what the relay signs, seals and logs in with (Layout.Identity: the
//     Issuer with its Placement, accounts.ConfigMode or
//     accounts.OperatorMode, the xkey, the relay's and the admin's logins);
//   - the server config (renderServerConf or renderOperatorConf), written
//     by Init;
//   - the accounts users are never placed in (Layout.ReservedAccounts);
//   - whether a server config delegates logins to this relay
//     (Layout.CheckServer).
//
// In operator mode the seeds (operator, its signing key, every account and
// its signing key, the relay's and the admin's user nkeys) are in
// secrets.json with the others; the account JWTs are files of the full
// nats resolver in DIR/jwt, where the server keeps them too. The user JWT
// of a login is signed by the target account's signing key with
// issuer_account set; the response by the AUTH account's signing key
// (issuer_seed). Clients with only a username and password are handed the
// default_sentinel of nats.conf (a bearer user JWT of AUTH with no
// permissions), which sends them through the callout.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/authrelay/authrelay/accounts"
)

// Files of an operator-mode directory.
const (
	// OperatorFile marks a directory in operator mode and holds its public
	// facts (OperatorInfo).
	OperatorFile = "operator.json"
	// ResolverDir is the directory of the account JWTs: the full nats
	// resolver's, which the server also writes pushed accounts to.
	ResolverDir = "jwt"
)

// Mode is how a directory's server authenticates clients and defines its
// accounts.
type Mode string

// The modes of a directory.
const (
	// ModeConfig: accounts and auth_callout in nats.conf.
	ModeConfig Mode = "config"
	// ModeOperator: decentralized JWT, an operator, account JWTs in a
	// resolver, the callout in the AUTH account's JWT.
	ModeOperator Mode = "operator"
)

// OperatorInfo is the content of operator.json: the public keys of an
// operator directory, which tools may read without the seeds.
type OperatorInfo struct {
	Mode          Mode   `json:"mode"`
	Operator      string `json:"operator"`
	SystemAccount string `json:"system_account"`
	AuthAccount   string `json:"auth_account"`
	// ResolverDir is the resolver's directory, relative to the
	// authrelay directory.
	ResolverDir string `json:"resolver_dir"`
	// ManagedBy is ManagedByNsc when nsc manages the operator and its
	// accounts (operator_nsc.go); empty when authrelay made and signs
	// them.
	ManagedBy string `json:"managed_by,omitempty"`
}

// NscManaged reports whether nsc, not authrelay, signs the directory's
// account JWTs. It is the one place that is decided.
func (oi OperatorInfo) NscManaged() bool { return oi.ManagedBy == ManagedByNsc }

// OperatorKeys are the seeds of an operator-mode directory, kept in
// secrets.json under "operator". The AUTH account's signing key is the
// issuer_seed of secrets.json: the key responses are signed with.
type OperatorKeys struct {
	Operator        string `json:"operator_seed"`
	OperatorSigning string `json:"operator_signing_seed"`
	System          string `json:"system_seed"`
	SystemSigning   string `json:"system_signing_seed"`
	Auth            string `json:"auth_seed"`
	// RelayUser and AdminUser are the user nkeys of the relay's login
	// (in AUTH, listed in auth_users) and the admin's (in the system
	// account); their JWTs are signed from these seeds when they connect.
	RelayUser string `json:"relay_user_seed"`
	AdminUser string `json:"admin_user_seed"`
	// RelayUserJWT and AdminUserJWT, when set, are the users' JWTs as
	// issued by nsc, used as they are: a directory managed with nsc holds
	// no signing key of the system account to issue the admin's own.
	RelayUserJWT string `json:"relay_user_jwt,omitempty"`
	AdminUserJWT string `json:"admin_user_jwt,omitempty"`
	// Accounts are the application accounts' seeds, by name.
	Accounts map[string]AccountSeeds `json:"accounts"`
}

// AccountSeeds are an application account's identity seed and the seed
// of the signing key users are issued with.
// With nsc (operator_nsc.go) the identity seed is not held: PublicKey
// names the account instead.
type AccountSeeds struct {
	Seed        string `json:"seed,omitempty"`
	PublicKey   string `json:"public_key,omitempty"`
	SigningSeed string `json:"signing_seed"`
}

// Pub returns the account's public key.
func (a AccountSeeds) Pub() (string, error) {
	if a.Seed == "" {
		if !nkeys.IsValidPublicAccountKey(a.PublicKey) {
			return "", fmt.Errorf("neither an account seed nor an account public key (%q)", a.PublicKey)
		}
		return a.PublicKey, nil
	}
	return publicKey(a.Seed)
}

// Mode returns the directory's mode: ModeOperator when it holds
// operator.json, else ModeConfig. It is the one place the mode is decided.
func (l Layout) Mode() (Mode, error) {
	_, err := os.Stat(l.Path(OperatorFile))
	switch {
	case err == nil:
		return ModeOperator, nil
	case errors.Is(err, fs.ErrNotExist):
		return ModeConfig, nil
	default:
		return "", fmt.Errorf("read mode of %s: %w", l.Dir, err)
	}
}

// Operator reads operator.json.
func (l Layout) Operator() (OperatorInfo, error) {
	path := l.Path(OperatorFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return OperatorInfo{}, fmt.Errorf("read %s: %w", path, err)
	}
	var oi OperatorInfo
	if err := json.Unmarshal(b, &oi); err != nil {
		return OperatorInfo{}, fmt.Errorf("read %s: not valid JSON: %v", path, err)
	}
	if oi.Mode != ModeOperator || !nkeys.IsValidPublicOperatorKey(oi.Operator) ||
		!nkeys.IsValidPublicAccountKey(oi.AuthAccount) || !nkeys.IsValidPublicAccountKey(oi.SystemAccount) {
		return OperatorInfo{}, fmt.Errorf("read %s: want mode \"operator\" and the operator, auth_account and system_account public keys; restore the file 'authrelay init --operator' wrote", path)
	}
	if oi.ResolverDir == "" {
		oi.ResolverDir = ResolverDir
	}
	return oi, nil
}

// resolverPath is the path of the resolver's file for the account pub.
func (l Layout) resolverPath(oi OperatorInfo, pub string) string {
	dir := oi.ResolverDir
	if !filepath.IsAbs(dir) {
		dir = l.Path(dir)
	}
	return filepath.Join(dir, pub+".jwt")
}

// AccountJWT returns the decoded account JWT the resolver holds for the
// account whose public key is pub, checked to be issued by the operator
// (or one of its signing keys, as the server checks).
func (l Layout) AccountJWT(oi OperatorInfo, pub string) (*jwt.AccountClaims, error) {
	path := l.resolverPath(oi, pub)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read account jwt: %w", err)
	}
	ac, err := jwt.DecodeAccountClaims(string(b))
	if err != nil {
		return nil, fmt.Errorf("read account jwt %s: %w", path, err)
	}
	if ac.Subject != pub {
		return nil, fmt.Errorf("read account jwt %s: it is account %s's", path, ac.Subject)
	}
	return ac, nil
}

// Identity is what a relay of the directory signs, seals and logs in with,
// in the directory's mode.
type Identity struct {
	Mode Mode
	// Issuer signs responses (and, in config mode, user JWTs) and places
	// users in accounts.
	Issuer *accounts.Issuer
	// XKey opens requests and seals responses.
	XKey *accounts.XKey
	// RelayUser names the relay's login; RelayLogin is it, as a
	// connection option.
	RelayUser  string
	RelayLogin nats.Option
	// AdminUser names the system account admin's login; AdminLogin is
	// it; nil when secrets.json has none.
	AdminUser  string
	AdminLogin nats.Option
	// Accounts are, in operator mode, the accounts users can be placed
	// in (allowed by the AUTH account and with a signing key held).
	Accounts []string
}

// Identity reads the directory's keys and returns what a relay needs, as
// the directory's mode has it.
func (l Layout) Identity() (Identity, error) {
	s, err := l.LoadSecrets()
	if err != nil {
		return Identity{}, err
	}
	mode, err := l.Mode()
	if err != nil {
		return Identity{}, err
	}
	xkey, err := accounts.NewXKey(s.XKeySeed)
	if err != nil {
		return Identity{}, fmt.Errorf("load keys: %w", err)
	}
	id := Identity{Mode: mode, XKey: xkey, RelayUser: s.RelayUser, AdminUser: s.AdminUser}
	if mode == ModeConfig {
		if id.Issuer, err = accounts.NewIssuer(s.IssuerSeed, nil); err != nil {
			return Identity{}, fmt.Errorf("load keys: %w", err)
		}
		id.RelayLogin = nats.UserInfo(s.RelayUser, s.RelayPassword)
		if s.AdminUser != "" && s.AdminPassword != "" {
			id.AdminLogin = nats.UserInfo(s.AdminUser, s.AdminPassword)
		}
		return id, nil
	}
	oi, err := l.Operator()
	if err != nil {
		return Identity{}, err
	}
	ok := s.Operator
	if ok == nil {
		return Identity{}, fmt.Errorf("%s is in operator mode (%s) but %s has no operator seeds: restore the secrets.json 'authrelay init --operator' wrote", l.Dir, OperatorFile, SecretsFile)
	}
	placement, err := l.operatorPlacement(oi, ok)
	if err != nil {
		return Identity{}, err
	}
	if id.Issuer, err = accounts.NewIssuer(s.IssuerSeed, placement); err != nil {
		return Identity{}, fmt.Errorf("load keys: %w", err)
	}
	id.Accounts = placement.Accounts()
	if id.RelayLogin, err = userLogin(s.RelayUser, ok.RelayUser, ok.RelayUserJWT, oi.AuthAccount, s.IssuerSeed); err != nil {
		return Identity{}, fmt.Errorf("load keys: relay user: %w", err)
	}
	if ok.AdminUser != "" {
		if id.AdminLogin, err = userLogin(s.AdminUser, ok.AdminUser, ok.AdminUserJWT, oi.SystemAccount, ok.SystemSigning); err != nil {
			return Identity{}, fmt.Errorf("load keys: admin user: %w", err)
		}
	}
	return id, nil
}

// operatorPlacement builds the placement of an operator directory (see
// operatorAccounts), which reads the directory again when asked for an
// account it does not know: one added while the relay runs.
func (l Layout) operatorPlacement(oi OperatorInfo, ok *OperatorKeys) (*accounts.OperatorMode, error) {
	accts, err := l.operatorAccounts(oi, ok)
	if err != nil {
		return nil, err
	}
	m, err := accounts.NewOperatorMode(oi.AuthAccount, accts)
	if err != nil {
		return nil, err
	}
	m.SetReload(func() ([]accounts.OperatorAccount, error) {
		s, err := l.LoadSecrets()
		if err != nil {
			return nil, err
		}
		if s.Operator == nil {
			return nil, fmt.Errorf("%s has no operator seeds", SecretsFile)
		}
		return l.operatorAccounts(oi, s.Operator)
	})
	m.SetChanged(l.operatorChanged(oi))
	return m, nil
}

// operatorChanged returns a function that reports whether the files the
// accounts are read from (secrets.json and the resolver's account JWTs,
// which the server rewrites on every push) changed since it last looked:
// their names, sizes and modification times.
func (l Layout) operatorChanged(oi OperatorInfo) func() bool {
	dir := oi.ResolverDir
	if !filepath.IsAbs(dir) {
		dir = l.Path(dir)
	}
	fingerprint := func() string {
		var b strings.Builder
		paths, _ := filepath.Glob(filepath.Join(dir, "*.jwt"))
		for _, p := range append(paths, l.Path(SecretsFile)) {
			if fi, err := os.Stat(p); err == nil {
				fmt.Fprintf(&b, "%s %d %d\n", p, fi.Size(), fi.ModTime().UnixNano())
			}
		}
		return b.String()
	}
	var mu sync.Mutex
	last := fingerprint()
	return func() bool {
		now := fingerprint()
		mu.Lock()
		defer mu.Unlock()
		changed := now != last
		last = now
		return changed
	}
}

// operatorAccounts are the accounts users can be placed in: the
// application accounts whose seeds secrets.json holds and that the AUTH
// account's JWT allows (all of them when it allows "*"), each with its
// signing key, marked scoped when the account JWT scopes that key.
func (l Layout) operatorAccounts(oi OperatorInfo, ok *OperatorKeys) ([]accounts.OperatorAccount, error) {
	auth, err := l.AccountJWT(oi, oi.AuthAccount)
	if err != nil {
		return nil, fmt.Errorf("load the AUTH account: %w", err)
	}
	allowed := auth.Authorization.AllowedAccounts
	var accts []accounts.OperatorAccount
	for _, name := range sortedKeys(ok.Accounts) {
		seeds := ok.Accounts[name]
		pub, err := seeds.Pub()
		if err != nil {
			return nil, fmt.Errorf("account %s: %w", name, err)
		}
		if !slices.Contains(allowed, pub) && !slices.Contains(allowed, jwt.AnyAccount) {
			continue // the relay refuses it: ReasonAccountNotAllowed
		}
		ac, err := l.AccountJWT(oi, pub)
		if err != nil {
			return nil, fmt.Errorf("account %s: %w", name, err)
		}
		spub, err := publicKey(seeds.SigningSeed)
		if err != nil {
			return nil, fmt.Errorf("account %s signing key: %w", name, err)
		}
		scope, held := ac.SigningKeys.GetScope(spub)
		if !held {
			return nil, fmt.Errorf("account %s: its JWT does not list the signing key %s that secrets.json holds: the server would reject its users; restore the account JWT", name, spub)
		}
		accts = append(accts, accounts.OperatorAccount{Name: name, PublicKey: pub, SigningSeed: seeds.SigningSeed, Scoped: scope != nil})
	}
	return accts, nil
}

// userLogin is a connection option that logs in as the user of seed in
// the account acct: with issued, the user JWT nsc issued, when set; else
// with a user JWT named name signed by the account's signing key
// signingSeed, made now and without expiry.
func userLogin(name, seed, issued, acct, signingSeed string) (nats.Option, error) {
	ujwt, err := userCredsJWT(name, seed, issued, acct, signingSeed)
	if err != nil {
		return nil, err
	}
	return nats.UserJWTAndSeed(ujwt, seed), nil
}

// userCredsJWT is the user JWT userLogin logs in with.
func userCredsJWT(name, seed, issued, acct, signingSeed string) (string, error) {
	if issued == "" {
		return userJWT(name, seed, acct, signingSeed)
	}
	uc, err := jwt.DecodeUserClaims(issued)
	if err != nil {
		return "", fmt.Errorf("the user JWT of %s in %s: %w", name, SecretsFile, err)
	}
	if pub, err := publicKey(seed); err != nil || pub != uc.Subject {
		return "", fmt.Errorf("the user JWT of %s in %s is not the user of its seed: import the keys again", name, SecretsFile)
	}
	return issued, nil
}

// userJWT is the user JWT of the user nkey seed, named name, in the account
// acct, signed by the account's signing key signingSeed.
func userJWT(name, seed, acct, signingSeed string) (string, error) {
	upub, err := publicKey(seed)
	if err != nil {
		return "", err
	}
	if !nkeys.IsValidPublicUserKey(upub) {
		return "", errors.New("not a user seed (it must start with SU)")
	}
	sk, err := nkeys.FromSeed([]byte(signingSeed))
	if err != nil {
		return "", err
	}
	uc := jwt.NewUserClaims(upub)
	uc.Name = name
	uc.IssuerAccount = acct
	return uc.Encode(sk)
}

// publicKey returns the public key of an nkey seed.
func publicKey(seed string) (string, error) {
	kp, err := nkeys.FromSeed([]byte(seed))
	if err != nil {
		return "", err
	}
	return kp.PublicKey()
}

// sortedKeys returns m's keys, sorted.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// CheckServer returns the problems of a parsed server config opts for this
// directory's relay, in the directory's mode: in config mode those of its
// auth_callout block (CheckCallout); in operator mode that the server
// trusts the directory's operator and that the AUTH account JWT delegates
// logins to this relay (its user in auth_users, its xkey).
func (l Layout) CheckServer(opts *server.Options, id Identity) []CalloutProblem {
	if id.Mode != ModeOperator {
		return CheckCallout(opts.AuthCallout, id.Issuer.PublicKey(), id.XKey.PublicKey())
	}
	oi, err := l.Operator()
	if err != nil {
		return []CalloutProblem{{Field: "operator", Fatal: true, Message: err.Error()}}
	}
	trusted := false
	for _, oc := range opts.TrustedOperators {
		trusted = trusted || oc.Subject == oi.Operator
	}
	if !trusted {
		return []CalloutProblem{{Field: "operator", Fatal: true,
			Message: fmt.Sprintf("the server does not trust the directory's operator %s: it would reject every account JWT authrelay signs; set 'operator:' to the operator JWT 'authrelay init --operator' wrote", oi.Operator)}}
	}
	if opts.SystemAccount != oi.SystemAccount {
		return []CalloutProblem{{Field: "system_account", Fatal: true,
			Message: fmt.Sprintf("system_account %q is not the directory's system account %s: revocation and account pushes need it; set 'system_account: %s'", opts.SystemAccount, oi.SystemAccount, oi.SystemAccount)}}
	}
	auth, err := l.AccountJWT(oi, oi.AuthAccount)
	if err != nil {
		return []CalloutProblem{{Field: "auth_callout", Fatal: true, Message: err.Error()}}
	}
	var ps []CalloutProblem
	if !auth.HasExternalAuthorization() {
		return []CalloutProblem{{Field: "auth_callout", Fatal: true,
			Message: "the AUTH account's JWT has no authorization section (auth_users): the server never asks the relay about logins"}}
	}
	s, err := l.LoadSecrets()
	if err == nil && s.Operator != nil {
		if relayPub, err := publicKey(s.Operator.RelayUser); err == nil && !slices.Contains(auth.Authorization.AuthUsers, relayPub) {
			ps = append(ps, CalloutProblem{Field: "auth_users", Fatal: true,
				Message: fmt.Sprintf("the AUTH account's auth_users does not list the relay's user %s: its own login would be sent to the callout", relayPub)})
		}
	}
	switch x := auth.Authorization.XKey; {
	case x == "":
		ps = append(ps, CalloutProblem{Field: "xkey",
			Message: "the AUTH account's JWT has no authorization xkey: passwords travel in clear inside the AUTH account"})
	case x != id.XKey.PublicKey():
		ps = append(ps, CalloutProblem{Field: "xkey", Fatal: true,
			Message: fmt.Sprintf("the AUTH account's xkey %s is not the relay's %s (the public key of xkey_seed in secrets.json): the relay cannot open the sealed requests", x, id.XKey.PublicKey())})
	}
	if opts.DefaultSentinel == "" {
		ps = append(ps, CalloutProblem{Field: "default_sentinel",
			Message: "no default_sentinel: clients with only a username and password are refused by the server before the relay is asked; restore the default_sentinel line 'authrelay init --operator' wrote"})
	}
	return ps
}

// XKeyOff reports whether the server config opts sends login requests
// unsealed, though the relay has an xkey: in config mode, auth_callout has
// no xkey; in operator mode, the AUTH account's JWT has none.
func (l Layout) XKeyOff(opts *server.Options, id Identity) bool {
	if id.Mode != ModeOperator {
		return opts.AuthCallout != nil && opts.AuthCallout.XKey == ""
	}
	oi, err := l.Operator()
	if err != nil {
		return false
	}
	auth, err := l.AccountJWT(oi, oi.AuthAccount)
	return err == nil && auth.Authorization.XKey == ""
}

// AccountsFile names where the directory keeps its application accounts
// for the server: accounts.conf in config mode, the resolver's directory
// in operator mode.
func (l Layout) AccountsFile() string {
	if mode, err := l.Mode(); err == nil && mode == ModeOperator {
		return ResolverDir + string(filepath.Separator)
	}
	return AccountsConf
}

// AdminCreds is the nats credentials file of an operator directory's
// system admin, written by SaveAdminContext (mode 0600).
const AdminCreds = "admin.creds"

// adminCreds returns the content of the admin's credentials file of an
// operator directory: its user JWT and seed.
func (l Layout) adminCreds(s Secrets) ([]byte, error) {
	oi, err := l.Operator()
	if err != nil {
		return nil, err
	}
	if s.Operator == nil || s.Operator.AdminUser == "" {
		return nil, fmt.Errorf("%s has no admin_user_seed", l.Path(SecretsFile))
	}
	ujwt, err := userCredsJWT(s.AdminUser, s.Operator.AdminUser, s.Operator.AdminUserJWT, oi.SystemAccount, s.Operator.SystemSigning)
	if err != nil {
		return nil, fmt.Errorf("admin credentials: %w", err)
	}
	return jwt.FormatUserConfig(ujwt, []byte(s.Operator.AdminUser))
}

// PlacementProblems says, for each of the accounts names (the database's),
// why the relay of an operator directory cannot place users in it: the
// AUTH account's allowed_accounts does not list it, authrelay holds no
// signing key for it, or its JWT is missing or does not list that key. An
// account it can place users in has no entry.
func (l Layout) PlacementProblems(names []string) (map[string]string, error) {
	oi, err := l.Operator()
	if err != nil {
		return nil, err
	}
	s, err := l.LoadSecrets()
	if err != nil {
		return nil, err
	}
	if s.Operator == nil {
		return nil, fmt.Errorf("%s is in operator mode but %s has no operator seeds", l.Dir, SecretsFile)
	}
	auth, err := l.AccountJWT(oi, oi.AuthAccount)
	if err != nil {
		return nil, fmt.Errorf("load the AUTH account: %w", err)
	}
	hint := "'authrelay account add' makes its keys"
	if oi.NscManaged() {
		hint = "export its keys from nsc and run 'authrelay account add NAME --nsc KEYDIR'"
	}
	out := map[string]string{}
	for _, name := range names {
		seeds, held := s.Operator.Accounts[name]
		if !held {
			out[name] = "authrelay holds no signing key for it: " + hint
			continue
		}
		pub, err := seeds.Pub()
		if err != nil {
			out[name] = err.Error()
			continue
		}
		if al := auth.Authorization.AllowedAccounts; !al.Contains(pub) && !al.Contains(jwt.AnyAccount) {
			out[name] = fmt.Sprintf("the AUTH account's allowed_accounts does not list it (%s), so the server refuses its users", pub)
			continue
		}
		ac, err := l.AccountJWT(oi, pub)
		if err != nil {
			out[name] = err.Error()
			continue
		}
		if spub, err := publicKey(seeds.SigningSeed); err != nil || !ac.SigningKeys.Contains(spub) {
			out[name] = "its account JWT does not list the signing key authrelay holds, so the server would reject its users"
		}
	}
	return out, nil
}
