package accounts

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// ErrAccountNotAllowed is the error of a placement into an account the
// callout account may not place users in: in operator mode, one its
// account JWT's authorization.allowed_accounts does not list, or one
// authrelay holds no signing key of. The relay refuses the login with
// ReasonAccountNotAllowed rather than send a JWT the server would reject.
var ErrAccountNotAllowed = errors.New("account not allowed")

// OperatorAccount is an application account of an operator-mode server as
// the relay places users in it: its name, its public key (A…), the seed
// of one of its signing keys (SA…) and whether that signing key is scoped.
// Users placed with a scoped key carry no permissions of their own: the
// scope's template in the account JWT applies instead.
type OperatorAccount struct {
	Name        string
	PublicKey   string
	SigningSeed string
	Scoped      bool
}

// OperatorMode is the placement for a server in operator (decentralized
// JWT) mode: the user JWT names its account by issuer_account (the
// account's public key) and is signed by the account's signing key, never
// by the callout account's key; the audience, which only config mode reads,
// is left empty. Only the accounts it was made with can be placed in: those
// the callout account's JWT allows and whose signing key the relay holds.
// The authorization response is signed by the callout account's signing
// key, the Issuer's own, with issuer_account naming the callout account.
// It is safe for concurrent use.
type OperatorMode struct {
	callout string // the callout account's public key
	set     atomic.Pointer[operatorSet]

	// anyAccount, when set, places every account with one throwaway key
	// (NewSizingIssuer).
	anyAccount *operatorAccount
	// reload, when set, reads the accounts again (SetReload).
	reload     func() ([]OperatorAccount, error)
	mu         sync.Mutex // held while reloading
	lastReload time.Time
	// changed, when set, tells whether the accounts' sources changed
	// since it was last asked (SetChanged); lastCheck is when it was, in
	// Unix nanoseconds.
	changed   func() bool
	lastCheck atomic.Int64
	checking  atomic.Bool // a check runs
}

// operatorSet is the accounts an OperatorMode places users in.
type operatorSet struct {
	byName map[string]operatorAccount
	byPub  map[string]*signer // signing keys by account public key
}

// operatorAccount is an OperatorAccount ready to sign with.
type operatorAccount struct {
	pub    string
	kp     *signer
	scoped bool
}

// reloadEvery bounds how often an OperatorMode reads its accounts again.
const reloadEvery = time.Second

// NewOperatorMode returns the placement for the callout account whose
// public key is callout, placing users in accts. It refuses a key that is
// not an account key, a signing seed that is not an account seed, and a
// name given twice.
func NewOperatorMode(callout string, accts []OperatorAccount) (*OperatorMode, error) {
	if !nkeys.IsValidPublicAccountKey(callout) {
		return nil, fmt.Errorf("operator mode: callout account %q is not a public account key (A…)", Clip(callout, 80))
	}
	set, err := newOperatorSet(callout, accts)
	if err != nil {
		return nil, err
	}
	m := &OperatorMode{callout: callout}
	m.set.Store(set)
	return m, nil
}

// SetReload has m read its accounts again with load when asked to place a
// user in an account it does not know, at most once a second: an account
// added while the relay runs ('authrelay account add') is placed in
// without a restart. Call it before m is used. A failed reload keeps the
// accounts m had.
func (m *OperatorMode) SetReload(load func() ([]OperatorAccount, error)) { m.reload = load }

// SetChanged has m ask changed, at most once a second from the logins it
// places, whether the accounts' sources changed since it last asked, and
// read them again with the reload of SetReload when they did: an account
// an admin took out of the callout account's allowed_accounts, or whose
// signing key is now scoped, is placed accordingly within about a second,
// without a restart. A login never waits for it: the check and the reload
// run in a goroutine of their own, and logins place with the accounts m
// has meanwhile. Call it before m is used.
func (m *OperatorMode) SetChanged(changed func() bool) { m.changed = changed }

// refresh starts SetChanged's check when it is due, at most once a
// second and one at a time, in a goroutine of its own: the login that
// finds it due reads no file and places with the accounts m has.
func (m *OperatorMode) refresh() {
	now := time.Now()
	last := m.lastCheck.Load()
	if now.UnixNano()-last < int64(reloadEvery) || !m.lastCheck.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	if !m.checking.CompareAndSwap(false, true) {
		return // the last check still runs
	}
	go func() {
		defer m.checking.Store(false)
		if !m.changed() {
			return
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		m.lastReload = time.Now()
		if accts, err := m.reload(); err == nil {
			if set, err := newOperatorSet(m.callout, accts); err == nil {
				m.set.Store(set)
			}
		}
	}()
}

// newOperatorSet checks accts and prepares their keys.
func newOperatorSet(callout string, accts []OperatorAccount) (*operatorSet, error) {
	set := &operatorSet{byName: make(map[string]operatorAccount, len(accts)), byPub: make(map[string]*signer, len(accts))}
	for _, a := range accts {
		if _, dup := set.byName[a.Name]; dup {
			return nil, fmt.Errorf("operator mode: account %q given twice", a.Name)
		}
		if !nkeys.IsValidPublicAccountKey(a.PublicKey) {
			return nil, fmt.Errorf("operator mode: account %q: public key %q is not an account key (A…)", a.Name, Clip(a.PublicKey, 80))
		}
		if a.PublicKey == callout {
			return nil, fmt.Errorf("operator mode: account %q is the callout account: users are never placed there", a.Name)
		}
		kp, err := nkeys.FromSeed([]byte(a.SigningSeed))
		if err != nil {
			return nil, fmt.Errorf("operator mode: account %q: signing seed: %w", a.Name, err)
		}
		pub, err := kp.PublicKey()
		if err != nil || !nkeys.IsValidPublicAccountKey(pub) {
			return nil, fmt.Errorf("operator mode: account %q: the signing seed is not an account seed (it must start with SA)", a.Name)
		}
		s, err := newSigner(kp)
		if err != nil {
			return nil, fmt.Errorf("operator mode: account %q: signing seed: %w", a.Name, err)
		}
		if _, dup := set.byPub[a.PublicKey]; dup {
			return nil, fmt.Errorf("operator mode: account %q: public key %s given twice", a.Name, a.PublicKey)
		}
		set.byName[a.Name] = operatorAccount{pub: a.PublicKey, kp: s, scoped: a.Scoped}
		set.byPub[a.PublicKey] = s
	}
	return set, nil
}

// Accounts returns the names of the accounts m places users in, sorted.
func (m *OperatorMode) Accounts() []string {
	set := m.set.Load()
	out := make([]string, 0, len(set.byName))
	for n := range set.byName {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// lookup returns the account named name, reading the accounts again
// first (see SetReload) when m does not know it.
func (m *OperatorMode) lookup(name string) (operatorAccount, bool) {
	if m.changed != nil && m.reload != nil {
		m.refresh()
	}
	if a, ok := m.set.Load().byName[name]; ok || m.anyAccount != nil || m.reload == nil {
		if !ok && m.anyAccount != nil {
			return *m.anyAccount, true
		}
		return a, ok
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if a, ok := m.set.Load().byName[name]; ok {
		return a, ok // another login reloaded meanwhile
	}
	if time.Since(m.lastReload) >= reloadEvery {
		m.lastReload = time.Now()
		if accts, err := m.reload(); err == nil {
			if set, err := newOperatorSet(m.callout, accts); err == nil {
				m.set.Store(set)
			}
		}
	}
	a, ok := m.set.Load().byName[name]
	return a, ok
}

// Place sets uc's issuer_account to the account's public key. In an
// account whose signing key is scoped it clears every permission and
// limit, as the server requires: the scope's template applies. It fails
// with ErrAccountNotAllowed for an account m does not place users in.
func (m *OperatorMode) Place(uc *jwt.UserClaims, account string) error {
	a, ok := m.lookup(account)
	if !ok {
		return fmt.Errorf("place user in account %q: %w: the callout account's allowed_accounts does not list it, or authrelay holds none of its signing keys", Clip(account, 80), ErrAccountNotAllowed)
	}
	uc.Audience = ""
	uc.IssuerAccount = a.pub
	if a.scoped {
		uc.SetScoped(true)
	}
	return nil
}

// signUser signs uc, placed by Place, with the signing key of the account
// its issuer_account names.
func (m *OperatorMode) signUser(uc *jwt.UserClaims) (string, error) {
	if kp, ok := m.set.Load().byPub[uc.IssuerAccount]; ok {
		return uc.Encode(kp)
	}
	if a := m.anyAccount; a != nil && a.pub == uc.IssuerAccount {
		return uc.Encode(a.kp)
	}
	return "", fmt.Errorf("no signing key for account %q: %w", Clip(uc.IssuerAccount, 80), ErrAccountNotAllowed)
}

// calloutAccount is the public key the response's issuer_account names.
func (m *OperatorMode) calloutAccount() string { return m.callout }

// userSigner is a Placement that signs the user JWTs it placed with a key
// of its own rather than the Issuer's (OperatorMode).
type userSigner interface {
	signUser(uc *jwt.UserClaims) (string, error)
}

// responseAccount is a Placement whose responses name the callout account
// in issuer_account (OperatorMode, when the Issuer's key is a signing key
// of that account).
type responseAccount interface {
	calloutAccount() string
}

// NewSizingIssuer returns an Issuer with throwaway keys whose login
// responses have the size the relay's have in config mode, or in operator
// mode when operator is set: there every user JWT names an account in
// issuer_account and every response the callout account. It places any
// account. It is for ResponseSize only: no server trusts its keys.
func NewSizingIssuer(operator bool) (*Issuer, error) {
	keys, err := GenerateKeys()
	if err != nil {
		return nil, fmt.Errorf("sizing issuer: %w", err)
	}
	if !operator {
		return NewIssuer(keys.IssuerSeed, nil)
	}
	fresh := func() (*signer, error) {
		kp, err := nkeys.CreateAccount()
		if err != nil {
			return nil, err
		}
		return newSigner(kp)
	}
	callout, err := fresh()
	if err != nil {
		return nil, fmt.Errorf("sizing issuer: %w", err)
	}
	acct, err := fresh()
	if err != nil {
		return nil, fmt.Errorf("sizing issuer: %w", err)
	}
	m := &OperatorMode{callout: callout.pub, anyAccount: &operatorAccount{pub: acct.pub, kp: acct}}
	m.set.Store(&operatorSet{byName: map[string]operatorAccount{}, byPub: map[string]*signer{}})
	return NewIssuer(keys.IssuerSeed, m)
}
