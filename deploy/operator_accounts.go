package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/store"
)

// Accounts in operator mode.
//
// 'authrelay account add|set|rm' change the database, then write the
// directory's view of the accounts for the server (WriteAccountsConf),
// then have the running servers apply it (ReloadAt). In operator mode the
// first signs the account JWTs into the resolver directory, with their
// limits, and the AUTH account's with allowed_accounts listing exactly the
// application accounts; the second pushes every JWT the server does not
// run yet through the system account ($SYS.REQ.CLAIMS.UPDATE), which the
// server stores in its resolver and applies at once: no reload, nobody
// disconnected. A server that is not running reads the files when it
// starts.

// operatorLock is the file writeOperatorAccounts locks.
const operatorLock = ".operator.lock"

// claimsUpdateSubject and claimsDeleteSubject are where the system
// account pushes account JWTs to a full resolver, and has it delete them.
const (
	claimsUpdateSubject = "$SYS.REQ.CLAIMS.UPDATE"
	claimsDeleteSubject = "$SYS.REQ.CLAIMS.DELETE"
)

// writeOperatorAccounts is WriteAccountsConf for an operator directory:
// the database's accounts become the account JWTs. An account new
// to the directory gets fresh seeds, saved in secrets.json before any JWT
// names them; an account gone from list loses its seeds, its JWT file and
// its place in allowed_accounts. It reports whether any file changed.
func (l Layout) writeOperatorAccounts(ctx context.Context, db *store.DB) (bool, error) {
	// One writer at a time, reading the accounts under the lock: two
	// account commands at once would each save secrets.json with only
	// their own new seeds, or drop the other's account, and an account
	// whose seeds are lost gets new keys, a new identity, at the next
	// change.
	unlock, err := l.lockDir(operatorLock)
	if err != nil {
		return false, fmt.Errorf("lock %s: %w", operatorLock, err)
	}
	defer unlock()
	list, err := db.AccountList(ctx)
	if err != nil {
		return false, err
	}
	s, err := l.LoadSecrets()
	if err != nil {
		return false, err
	}
	oi, err := l.Operator()
	if err != nil {
		return false, err
	}
	ok := s.Operator
	if ok == nil {
		return false, fmt.Errorf("%s is in operator mode but %s has no operator seeds", l.Dir, SecretsFile)
	}
	if oi.NscManaged() {
		return false, l.checkNscAccounts(list, s)
	}
	want := map[string]bool{}
	secretsChanged := false
	for _, a := range list {
		want[a.Name] = true
		if _, held := ok.Accounts[a.Name]; held {
			continue
		}
		var seeds AccountSeeds
		if seeds.Seed, err = newSeed(nkeys.CreateAccount); err != nil {
			return false, err
		}
		if seeds.SigningSeed, err = newSeed(nkeys.CreateAccount); err != nil {
			return false, err
		}
		if ok.Accounts == nil {
			ok.Accounts = map[string]AccountSeeds{}
		}
		ok.Accounts[a.Name] = seeds
		secretsChanged = true
	}
	for name := range ok.Accounts {
		if !want[name] {
			// Its JWT file stays until a push has the server delete it
			// (pushOperatorAccounts): removed behind the server's back,
			// the server would keep running it.
			delete(ok.Accounts, name)
			secretsChanged = true
		}
	}
	if secretsChanged {
		if err := l.saveSecrets(s); err != nil {
			return false, err
		}
	}
	osk, err := nkeys.FromSeed([]byte(ok.OperatorSigning))
	if err != nil {
		return false, fmt.Errorf("operator signing seed: %w", err)
	}
	changed := false
	write := func(ac *jwt.AccountClaims) error {
		path := l.resolverPath(oi, ac.Subject)
		if old, err := l.AccountJWT(oi, ac.Subject); err == nil && sameClaims(old, ac) {
			return nil
		}
		j, err := ac.Encode(osk)
		if err != nil {
			return fmt.Errorf("sign account jwt %s: %w", ac.Name, err)
		}
		if err := WriteFileAtomic(path, []byte(j), 0o644); err != nil {
			return fmt.Errorf("write account jwt %s: %w", ac.Name, err)
		}
		changed = true
		return nil
	}
	var allowed []string
	for _, a := range list {
		seeds := ok.Accounts[a.Name]
		pub := mustPub(seeds.Seed)
		allowed = append(allowed, pub)
		ac := appAccountClaims(a, pub, mustPub(seeds.SigningSeed))
		if old, err := l.AccountJWT(oi, pub); err == nil {
			// Keep what an admin added with nsc (signing keys, exports,
			// imports); authrelay owns the name and the limits.
			old.Name, old.Limits = ac.Name, ac.Limits
			if !old.SigningKeys.Contains(mustPub(seeds.SigningSeed)) {
				old.SigningKeys.Add(mustPub(seeds.SigningSeed))
			}
			ac = old
		}
		if err := write(ac); err != nil {
			return false, err
		}
	}
	auth, err := l.AccountJWT(oi, oi.AuthAccount)
	if err != nil {
		return false, fmt.Errorf("load the AUTH account: %w", err)
	}
	if !auth.Authorization.AllowedAccounts.Contains(jwt.AnyAccount) {
		auth.Authorization.AllowedAccounts = jwt.StringList{}
		auth.Authorization.AllowedAccounts.Add(allowed...)
	}
	if err := write(auth); err != nil {
		return false, err
	}
	return changed, nil
}

// sameClaims reports whether old (decoded from a file) and ac say the
// same, leaving out what every signing changes (id, issue time, issuer).
func sameClaims(old, ac *jwt.AccountClaims) bool {
	norm := func(c jwt.AccountClaims) []byte {
		c.ID, c.IssuedAt, c.Issuer = "", 0, ""
		c.Type, c.Version = "", 0
		b, err := json.Marshal(c)
		if err != nil {
			return nil
		}
		return b
	}
	a, b := norm(*old), norm(*ac)
	return a != nil && bytes.Equal(a, b)
}

// pushOperatorAccounts is ReloadAt for an operator directory: it connects
// to url as the system admin and pushes each account JWT of the resolver
// directory that the server does not run yet ($SYS.REQ.ACCOUNT.<id>.INFO
// tells which it runs), re-signed so that the server takes it as new. The
// server answers each push; a refusal is that server's Err.
func (l Layout) pushOperatorAccounts(ctx context.Context, url string, wait time.Duration, opts ...nats.Option) ([]Reloaded, error) {
	s, err := l.LoadSecrets()
	if err != nil {
		return nil, err
	}
	oi, err := l.Operator()
	if err != nil {
		return nil, err
	}
	if s.Operator == nil {
		return nil, fmt.Errorf("%s is in operator mode but %s has no operator seeds", l.Dir, SecretsFile)
	}
	if oi.NscManaged() {
		return nil, ErrManagedByNsc
	}
	osk, err := nkeys.FromSeed([]byte(s.Operator.OperatorSigning))
	if err != nil {
		return nil, fmt.Errorf("operator signing seed: %w", err)
	}
	nc, err := l.ConnectAdmin(url, "authrelay account push", wait, opts...)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	dir := oi.ResolverDir
	if !filepath.IsAbs(dir) {
		dir = l.Path(dir)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.jwt"))
	if err != nil {
		return nil, err
	}
	res := Reloaded{ID: nc.ConnectedServerId(), Name: nc.ConnectedServerName(), Pushed: true}
	ours := map[string]bool{oi.SystemAccount: true, oi.AuthAccount: true}
	for _, seeds := range s.Operator.Accounts {
		ours[mustPub(seeds.Seed)] = true
	}
	var errs []error
	var gone []string
	for _, f := range files {
		pub := strings.TrimSuffix(filepath.Base(f), ".jwt")
		if !ours[pub] {
			gone = append(gone, pub) // an account removed since
			continue
		}
		ac, err := l.AccountJWT(oi, pub)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if live, err := liveAccountJWT(ctx, nc, pub, wait); err == nil && live == string(b) {
			continue
		}
		j, err := ac.Encode(osk)
		if err != nil {
			errs = append(errs, fmt.Errorf("sign account jwt %s: %w", ac.Name, err))
			continue
		}
		if err := pushAccountJWT(ctx, nc, j, wait); err != nil {
			errs = append(errs, fmt.Errorf("push account %s: %w", ac.Name, err))
		}
	}
	if len(gone) > 0 {
		if err := deleteAccountJWTs(ctx, nc, s.Operator, gone, wait); err != nil {
			errs = append(errs, fmt.Errorf("delete removed accounts %v: %w", gone, err))
		}
	}
	res.Err = errors.Join(errs...)
	return []Reloaded{res}, nil
}

// deleteAccountJWTs has the server delete the accounts pubs from its
// resolver ($SYS.REQ.CLAIMS.DELETE, a request the operator's signing key
// signs; the resolver's allow_delete keeps the files, renamed).
func deleteAccountJWTs(ctx context.Context, nc *nats.Conn, ok *OperatorKeys, pubs []string, wait time.Duration) error {
	kp, err := nkeys.FromSeed([]byte(ok.OperatorSigning))
	if err != nil {
		return fmt.Errorf("operator signing seed: %w", err)
	}
	sub, err := kp.PublicKey()
	if err != nil {
		return err
	}
	gc := jwt.NewGenericClaims(sub)
	gc.Data["accounts"] = pubs
	j, err := gc.Encode(kp)
	if err != nil {
		return fmt.Errorf("sign delete request: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	m, err := nc.RequestWithContext(ctx, claimsDeleteSubject, []byte(j))
	if err != nil {
		return err
	}
	return serverRefusal(m.Data)
}

// liveAccountJWT asks the server nc is connected to for the JWT it runs
// account pub with.
func liveAccountJWT(ctx context.Context, nc *nats.Conn, pub string, wait time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	m, err := nc.RequestWithContext(ctx, fmt.Sprintf("$SYS.REQ.ACCOUNT.%s.INFO", pub), nil)
	if err != nil {
		return "", err
	}
	var r struct {
		Data *struct {
			JWT string `json:"jwt"`
		} `json:"data"`
		Error *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &r); err != nil {
		return "", err
	}
	if r.Error != nil || r.Data == nil {
		return "", errors.New("account not loaded")
	}
	return r.Data.JWT, nil
}

// pushAccountJWT sends the account JWT j to the server's resolver and
// returns its refusal, if any.
func pushAccountJWT(ctx context.Context, nc *nats.Conn, j string, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	m, err := nc.RequestWithContext(ctx, claimsUpdateSubject, []byte(j))
	if err != nil {
		return err
	}
	return serverRefusal(m.Data)
}

// serverRefusal returns the error of a resolver's answer, if any.
func serverRefusal(data []byte) error {
	var r struct {
		Data *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"data"`
		Error *struct {
			Code        int    `json:"code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return fmt.Errorf("server answer: %w", err)
	}
	if r.Error != nil {
		return fmt.Errorf("server refused it: %s", accounts.Clip(r.Error.Description, 200))
	}
	return nil
}

// ServersLacking is the package's ServersLacking in the directory's mode.
// In operator mode a server loads an account from its resolver on first
// use, so the one it is connected to is asked for the account by its
// public key ($SYS.REQ.ACCOUNT.<id>.CLAIMS.LOOKUP, its resolver's copy):
// it lacks the account when its resolver has no JWT for it, or when
// authrelay holds no keys for it.
func (l Layout) ServersLacking(ctx context.Context, nc *nats.Conn, account string, wait time.Duration) (lacking []string, servers int, err error) {
	mode, err := l.Mode()
	if err != nil {
		return nil, 0, err
	}
	if mode != ModeOperator {
		return ServersLacking(ctx, nc, account, wait)
	}
	s, err := l.LoadSecrets()
	if err != nil {
		return nil, 0, err
	}
	if s.Operator == nil {
		return nil, 0, fmt.Errorf("%s is in operator mode but %s has no operator seeds", l.Dir, SecretsFile)
	}
	id := nc.ConnectedServerId()
	seeds, held := s.Operator.Accounts[account]
	if !held {
		return []string{id}, 1, nil
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	pub, err := seeds.Pub()
	if err != nil {
		return nil, 0, fmt.Errorf("account %s: %w", account, err)
	}
	m, err := nc.RequestWithContext(ctx, fmt.Sprintf("$SYS.REQ.ACCOUNT.%s.CLAIMS.LOOKUP", pub), nil)
	if err != nil {
		return nil, 0, fmt.Errorf("ask the server's resolver for account %s: %w", account, err)
	}
	if _, err := jwt.DecodeAccountClaims(string(m.Data)); err != nil {
		return []string{id}, 1, nil // the resolver has no JWT for it
	}
	return nil, 1, nil
}

// ServerHasAccount asks the servers at url, as the system admin (with
// name as the connection's name), whether they have all loaded acct: a
// server that has not refuses the logins into it that the relay grants.
// It returns what it found in words and yes or no, or nil when it could
// not tell.
func (l Layout) ServerHasAccount(ctx context.Context, url, name, acct string, opts ...nats.Option) (string, *bool) {
	nc, err := l.ConnectAdmin(url, name, time.Second, opts...)
	if err != nil {
		return fmt.Sprintf("not reachable (%v): whether it has loaded account %s is not known", err, acct), nil
	}
	defer nc.Close()
	lacking, servers, err := l.ServersLacking(ctx, nc, acct, time.Second)
	if err != nil {
		return err.Error(), nil
	}
	if len(lacking) > 0 {
		no := false
		return fmt.Sprintf("%s of %d servers at %s have not loaded account %s: they refuse the login the relay grants; run 'authrelay reload'",
			strings.Join(lacking, ", "), servers, accounts.RedactURL(url), acct), &no
	}
	yes := true
	return fmt.Sprintf("all %d servers at %s have loaded account %s", servers, accounts.RedactURL(url), acct), &yes
}
