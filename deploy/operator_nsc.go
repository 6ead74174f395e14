package deploy

// An operator managed with nsc.
//
// 'authrelay init --operator --nsc KEYDIR' makes an operator directory for
// an operator that already exists and whose accounts nsc manages. KEYDIR is
// what the admin exported from nsc (the README gives the steps):
//
//	nsc export keys --accounts --users --curves --include-jwts --dir KEYDIR
//	nsc describe operator --raw --output-file KEYDIR/operator.jwt
//
// that is, PUBKEY.nk seed files and PUBKEY.jwt JWT files, and the operator
// JWT. authrelay takes from it only what a relay needs, into secrets.json:
// a signing key of the callout account (the account whose JWT has an
// authorization section listing a user whose seed is there), the relay's
// user (that auth_users entry, with the JWT nsc issued), the xkey (the
// curve key the authorization section names), one user of the system
// account for kicks, and the signing key of every application account
// AUTH allows. The operator's keys and the accounts' identity keys stay
// out of secrets.json (and need not be exported): authrelay signs no
// account JWT of such a directory. nsc owns the accounts: it signs them
// and pushes them ('nsc push'); operator.json says so (managed_by "nsc"),
// and 'account add|set|rm' then register nsc's accounts rather than sign
// them (see nscAccount).

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/authrelay/authrelay/accounts"
)

// ManagedByNsc is operator.json's managed_by for a directory whose
// operator and accounts nsc manages.
const ManagedByNsc = "nsc"

// NscOperatorFile is the name of the operator JWT in an nsc export
// ('nsc describe operator --raw --output-file KEYDIR/operator.jwt').
const NscOperatorFile = "operator.jwt"

// nscExport is the content of an nsc key export directory: JWTs and seeds
// by public key.
type nscExport struct {
	dir      string
	operator *jwt.OperatorClaims
	opJWT    string
	accts    map[string]*jwt.AccountClaims
	acctJWTs map[string]string
	users    map[string]*jwt.UserClaims
	userJWTs map[string]string
	seeds    map[string]string
}

// readNscExport reads the export directory dir: every PUBKEY.jwt and
// PUBKEY.nk, and operator.jwt. A file that does not decode is an error
// naming it; other files are ignored.
func readNscExport(dir string) (*nscExport, error) {
	x := &nscExport{dir: dir, accts: map[string]*jwt.AccountClaims{}, acctJWTs: map[string]string{},
		users: map[string]*jwt.UserClaims{}, userJWTs: map[string]string{}, seeds: map[string]string{}}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, invalidf("--nsc %s: %v: give the directory 'nsc export keys --accounts --users --curves --include-jwts --dir DIR' wrote", dir, err)
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !(strings.HasSuffix(name, ".jwt") || strings.HasSuffix(name, ".nk")) {
			continue
		}
		path := filepath.Join(dir, name)
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		if strings.HasSuffix(name, ".nk") {
			kp, err := nkeys.ParseDecoratedNKey(b)
			if err != nil {
				// A curve (xkey) seed, which the parser does not take.
				kp, err = nkeys.FromCurveSeed([]byte(strings.TrimSpace(string(b))))
			}
			if err != nil {
				return nil, invalidf("%s: not an nkey seed: %v", path, err)
			}
			seed, err := kp.Seed()
			if err != nil {
				return nil, invalidf("%s: not an nkey seed: %v", path, err)
			}
			pub, err := kp.PublicKey()
			if err != nil {
				return nil, invalidf("%s: %v", path, err)
			}
			x.seeds[pub] = string(seed)
			continue
		}
		j, err := jwt.ParseDecoratedJWT(b)
		if err != nil {
			return nil, invalidf("%s: not a JWT: %v", path, err)
		}
		gc, err := jwt.Decode(j)
		if err != nil {
			return nil, invalidf("%s: not a valid JWT: %v", path, err)
		}
		switch c := gc.(type) {
		case *jwt.OperatorClaims:
			if x.operator != nil && x.operator.Subject != c.Subject {
				return nil, invalidf("%s holds the JWTs of two operators (%s, %s): export one operator's keys", dir, x.operator.Name, c.Name)
			}
			x.operator, x.opJWT = c, j
		case *jwt.AccountClaims:
			x.accts[c.Subject], x.acctJWTs[c.Subject] = c, j
		case *jwt.UserClaims:
			x.users[c.Subject], x.userJWTs[c.Subject] = c, j
		}
	}
	if x.operator == nil {
		return nil, invalidf("%s has no operator JWT: write it with 'nsc describe operator --raw --output-file %s'", dir, filepath.Join(dir, NscOperatorFile))
	}
	if x.operator.SystemAccount == "" {
		return nil, invalidf("operator %s names no system account: authrelay needs one for kicks; 'nsc edit operator --system-account SYS'", x.operator.Name)
	}
	if len(x.accts) == 0 {
		return nil, invalidf("%s has no account JWTs: export with --include-jwts ('nsc export keys --accounts --users --curves --include-jwts --dir %s')", dir, dir)
	}
	for pub, ac := range x.accts {
		if !x.trusted(ac.Issuer) {
			return nil, invalidf("account %s (%s) is not signed by operator %s or one of its signing keys: export one operator's keys", ac.Name, pub, x.operator.Name)
		}
	}
	return x, nil
}

// trusted reports whether iss is the operator or one of its signing keys.
func (x *nscExport) trusted(iss string) bool {
	return iss == x.operator.Subject || x.operator.SigningKeys.Contains(iss)
}

// heldSigningSeed returns the seed of one of ac's signing keys that the
// export holds (the first in key order, for a stable choice), and whether
// there is one.
func (x *nscExport) heldSigningSeed(ac *jwt.AccountClaims) (string, bool) {
	keys := ac.SigningKeys.Keys()
	slices.Sort(keys)
	for _, k := range keys {
		if seed, ok := x.seeds[k]; ok {
			return seed, true
		}
	}
	return "", false
}

// accountUser returns the one user of the account pub among cands whose
// seed and JWT (issued for that account) the export holds; what names the
// user in errors.
func (x *nscExport) accountUser(pub string, cands []string, what string) (seed, ujwt, name string, err error) {
	var found []string
	for _, u := range cands {
		uc, ok := x.users[u]
		if _, held := x.seeds[u]; !ok || !held {
			continue
		}
		acct := uc.IssuerAccount
		if acct == "" {
			acct = uc.Issuer
		}
		if acct != pub {
			continue
		}
		found = append(found, u)
	}
	slices.Sort(found)
	switch len(found) {
	case 0:
		return "", "", "", invalidf("%s has no %s with its seed and JWT: export with --users --include-jwts", x.dir, what)
	case 1:
		u := found[0]
		return x.seeds[u], x.userJWTs[u], x.users[u].Name, nil
	default:
		var names []string
		for _, u := range found {
			names = append(names, x.users[u].Name)
		}
		slices.Sort(names)
		return "", "", "", invalidf("%s holds several %ss (%s): remove the .nk files of those authrelay is not to use from it", x.dir, what, strings.Join(names, ", "))
	}
}

// nscPlan is what an nsc export gives an operator directory.
type nscPlan struct {
	set      operatorSet
	apps     []string
	skipped  []string
	keys     *OperatorKeys
	issuer   string
	xkey     string
	relay    string
	admin    string
	authName string
	opName   string
}

// plan picks from the export what a relay needs (see the comment at the
// top of the file) and the server config's JWTs.
func (x *nscExport) plan() (*nscPlan, error) {
	var auths []string
	for pub, ac := range x.accts {
		if !ac.HasExternalAuthorization() {
			continue
		}
		for _, u := range ac.Authorization.AuthUsers {
			if _, held := x.seeds[u]; held {
				auths = append(auths, pub)
				break
			}
		}
	}
	slices.Sort(auths)
	if len(auths) != 1 {
		if len(auths) == 0 {
			return nil, invalidf("%s has no callout account: no account JWT has an authorization section whose auth_users lists a user with its seed exported; 'nsc edit authcallout --account AUTH --auth-user UPUB --allowed-account APUB --curve generate', then export again", x.dir)
		}
		return nil, invalidf("%s holds %d callout accounts: export one operator's keys with one account whose authorization section authrelay answers", x.dir, len(auths))
	}
	authPub := auths[0]
	auth := x.accts[authPub]
	p := &nscPlan{authName: auth.Name, opName: x.operator.Name, keys: &OperatorKeys{Accounts: map[string]AccountSeeds{}}}
	var ok bool
	if p.issuer, ok = x.heldSigningSeed(auth); !ok {
		if p.issuer, ok = x.seeds[authPub]; !ok {
			return nil, invalidf("account %s: neither a signing key's seed nor its own is exported: responses must be signed by one; 'nsc edit account %s --sk generate', then export again", auth.Name, auth.Name)
		}
	}
	var err error
	if p.keys.RelayUser, p.keys.RelayUserJWT, p.relay, err = x.accountUser(authPub, auth.Authorization.AuthUsers, "auth_users entry of "+auth.Name); err != nil {
		return nil, err
	}
	if auth.Authorization.XKey == "" {
		return nil, invalidf("account %s's authorization has no xkey: login requests, which carry passwords, would travel unsealed; 'nsc edit authcallout --account %s --curve generate', then export again with --curves", auth.Name, auth.Name)
	}
	if p.xkey, ok = x.seeds[auth.Authorization.XKey]; !ok {
		return nil, invalidf("the seed of %s's xkey %s is not in %s: export with --curves", auth.Name, auth.Authorization.XKey, x.dir)
	}
	sysPub := x.operator.SystemAccount
	var sysUsers []string
	for u := range x.users {
		sysUsers = append(sysUsers, u)
	}
	if p.keys.AdminUser, p.keys.AdminUserJWT, p.admin, err = x.accountUser(sysPub, sysUsers, "system account user"); err != nil {
		return nil, err
	}
	allowAll := auth.Authorization.AllowedAccounts.Contains(jwt.AnyAccount)
	var pubs []string
	for pub := range x.accts {
		pubs = append(pubs, pub)
	}
	slices.Sort(pubs)
	for _, pub := range pubs {
		ac := x.accts[pub]
		if pub == authPub || pub == sysPub {
			continue
		}
		switch seed, held := x.heldSigningSeed(ac); {
		case !allowAll && !auth.Authorization.AllowedAccounts.Contains(pub):
			p.skipped = append(p.skipped, fmt.Sprintf("%s: %s's allowed_accounts does not list it", ac.Name, auth.Name))
		case !held:
			p.skipped = append(p.skipped, fmt.Sprintf("%s: no signing key's seed exported", ac.Name))
		case CheckAccountName(ac.Name) != nil || ac.Name == AuthAccount || ac.Name == SystemAccount:
			p.skipped = append(p.skipped, fmt.Sprintf("%s: not a name authrelay can place users in", ac.Name))
		case slices.Contains(p.apps, ac.Name):
			return nil, invalidf("two accounts are named %s: authrelay places users by account name; rename one with nsc", ac.Name)
		default:
			p.keys.Accounts[ac.Name] = AccountSeeds{PublicKey: pub, SigningSeed: seed}
			p.apps = append(p.apps, ac.Name)
		}
	}
	p.set = operatorSet{
		info: OperatorInfo{Mode: ModeOperator, Operator: x.operator.Subject, SystemAccount: sysPub,
			AuthAccount: authPub, ResolverDir: ResolverDir, ManagedBy: ManagedByNsc},
		operator: x.opJWT,
		accounts: x.acctJWTs,
	}
	if p.set.sentinel, err = sentinelJWT(authPub, p.issuer); err != nil {
		return nil, err
	}
	return p, nil
}

// secrets makes s the directory's secrets from the plan.
func (p *nscPlan) secrets(s Secrets) Secrets {
	s.IssuerSeed, s.XKeySeed = p.issuer, p.xkey
	s.RelayUser, s.AdminUser = p.relay, p.admin
	s.RelayPassword, s.AdminPassword = "", ""
	s.Operator = p.keys
	return s
}

// ErrManagedByNsc is returned where authrelay would sign or push account
// JWTs in a directory whose accounts nsc manages.
var ErrManagedByNsc = errors.New("the accounts of this directory are managed with nsc: 'nsc push' sends a changed account to the server")

// checkNscAccounts is writeOperatorAccounts for a directory managed with
// nsc: it signs nothing, and refuses a database account whose signing key
// secrets.json does not hold (registered with 'account add NAME --nsc
// KEYDIR'); an account removed from the database loses its keys.
func (l Layout) checkNscAccounts(list []accounts.Account, s Secrets) error {
	ok := s.Operator
	want := map[string]bool{}
	for _, a := range list {
		want[a.Name] = true
		if a.Limits != (accounts.AccountLimits{}) || a.JetStream {
			return fmt.Errorf("account %s: %w; its limits are in its JWT, which nsc signs: 'nsc edit account %s --conns N --js-enable 1 …', then 'nsc push'", a.Name, ErrManagedByNsc, a.Name)
		}
		if _, held := ok.Accounts[a.Name]; !held {
			return fmt.Errorf("account %s: %w; authrelay holds no signing key for it: create it with nsc (nsc add account %s; nsc edit account %s --sk generate; nsc edit authcallout --account AUTH --allowed-account APUB; nsc push), export its keys (nsc export keys --accounts --account %s --include-jwts --dir KEYDIR) and run 'authrelay account add %s --nsc KEYDIR'", a.Name, ErrManagedByNsc, a.Name, a.Name, a.Name, a.Name)
		}
	}
	gone := false
	for name := range ok.Accounts {
		if !want[name] {
			delete(ok.Accounts, name)
			gone = true
		}
	}
	if !gone {
		return nil
	}
	return l.saveSecrets(s)
}

// ImportNscAccount registers the nsc account a.Name for users to be
// placed in (a limit on a is refused: the limits are in the JWT nsc
// signs): it takes the account's signing key from the nsc export keydir into
// secrets.json, after checking that the account belongs to the
// directory's operator and that the callout account allows it. The
// export's JWTs of the account and of AUTH replace the resolver's files
// unless those are newer ('nsc push' writes them there too when
// the server runs the directory's nats.conf). Call it before the account
// is added to the database.
func (l Layout) ImportNscAccount(a accounts.Account, keydir string) error {
	name := a.Name
	if a.Limits != (accounts.AccountLimits{}) || a.JetStream {
		return invalidf("account %s: %v; its limits are in its JWT, which nsc signs: leave out the limit flags, and set them with 'nsc edit account %s --conns N --js-enable 1 …', then 'nsc push'", name, ErrManagedByNsc, name)
	}
	unlock, err := l.lockDir(operatorLock)
	if err != nil {
		return fmt.Errorf("lock %s: %w", operatorLock, err)
	}
	defer unlock()
	oi, err := l.Operator()
	if err != nil {
		return err
	}
	if !oi.NscManaged() {
		return invalidf("--nsc: the accounts of %s are authrelay's own (init --operator without --nsc): leave out --nsc", l.Dir)
	}
	x, err := readNscExport(keydir)
	if err != nil {
		return err
	}
	if x.operator.Subject != oi.Operator {
		return invalidf("--nsc %s: the keys of operator %s (%s), but %s serves operator %s", keydir, x.operator.Name, x.operator.Subject, l.Dir, oi.Operator)
	}
	var ac *jwt.AccountClaims
	for _, c := range x.accts {
		if c.Name == name {
			if ac != nil {
				return invalidf("--nsc %s: two accounts are named %s; rename one with nsc", keydir, name)
			}
			ac = c
		}
	}
	if ac == nil {
		return invalidf("--nsc %s has no account JWT named %s: export it with 'nsc export keys --accounts --account %s --include-jwts --dir %s'", keydir, name, name, keydir)
	}
	seed, held := x.heldSigningSeed(ac)
	if !held {
		return invalidf("account %s: no signing key's seed in %s: 'nsc edit account %s --sk generate', then export again", name, keydir, name)
	}
	for _, pub := range []string{ac.Subject, oi.AuthAccount} {
		j, ok := x.acctJWTs[pub]
		if !ok {
			continue
		}
		if old, err := l.AccountJWT(oi, pub); err == nil && old.IssuedAt > x.accts[pub].IssuedAt {
			continue // the resolver's is newer than the export's
		}
		if err := WriteFileAtomic(l.resolverPath(oi, pub), []byte(j), 0o644); err != nil {
			return fmt.Errorf("write account jwt %s: %w", x.accts[pub].Name, err)
		}
	}
	auth, err := l.AccountJWT(oi, oi.AuthAccount)
	if err != nil {
		return fmt.Errorf("load the AUTH account: %w", err)
	}
	if al := auth.Authorization.AllowedAccounts; !al.Contains(ac.Subject) && !al.Contains(jwt.AnyAccount) {
		return invalidf("account %s (%s): the callout account's allowed_accounts does not list it, so the server would refuse its users: 'nsc edit authcallout --account %s --allowed-account %s', 'nsc push', export again and run this again", name, ac.Subject, auth.Name, ac.Subject)
	}
	s, err := l.LoadSecrets()
	if err != nil {
		return err
	}
	if s.Operator == nil {
		return fmt.Errorf("%s is in operator mode but %s has no operator seeds", l.Dir, SecretsFile)
	}
	if s.Operator.Accounts == nil {
		s.Operator.Accounts = map[string]AccountSeeds{}
	}
	s.Operator.Accounts[name] = AccountSeeds{PublicKey: ac.Subject, SigningSeed: seed}
	return l.saveSecrets(s)
}

// saveSecrets writes s to secrets.json (mode 0600), atomically.
func (l Layout) saveSecrets(s Secrets) error {
	b, err := marshalSecrets(s)
	if err != nil {
		return err
	}
	if err := WriteFileAtomic(l.Path(SecretsFile), b, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", SecretsFile, err)
	}
	return nil
}
