// Package grantrelay is the relay of the bench's scenario (c), the callout
// protocol ceiling: authrelay's own responder (package relay), with the same
// xkey sealing and signing as 'authrelay serve', but a decision that grants
// every login at once, with no store and no password hash.
//
// It grants any login, so it must never answer for a real deployment: it
// runs only on a directory that the bench created (which holds the token
// the bench gave it) and for a server on a loopback address. Only
// cmd/authrelay-bench imports it: the authrelay binary, which guards real
// logins, never links it (TestGrantRelayNotLinked in cmd/authrelay checks
// that). It may import accounts, relay and internal/bench.
package grantrelay

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/internal/bench"
	"github.com/authrelay/authrelay/relay"
)

// Config is one grant relay.
type Config struct {
	// Dir is the authrelay directory the bench created.
	Dir string
	// URL is the bench's nats-server; it must be on a loopback address.
	URL string
	// Token is the token the bench gave its child (bench.TokenEnv); Dir
	// must hold the same in bench.TokenFile.
	Token string
	// Logger receives the relay's log; nil discards it.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// ErrNotBench means the directory is not one the bench created, or the
// token is not the one it holds.
var ErrNotBench = errors.New("grant-relay runs only on a directory that 'authrelay bench' or authrelay-bench created, as its child")

// ErrNotLoopback means the server is not on a loopback address.
var ErrNotLoopback = errors.New("grant-relay answers only a server on a loopback address")

// Run runs the grant relay until ctx is done. It refuses, before it
// connects anywhere, unless cfg.Dir holds cfg.Token (ErrNotBench) and
// cfg.URL names a loopback IP address (ErrNotLoopback).
func Run(ctx context.Context, cfg Config) error {
	want, err := os.ReadFile(filepath.Join(cfg.Dir, bench.TokenFile))
	if err != nil || cfg.Token == "" || subtle.ConstantTimeCompare(want, []byte(cfg.Token)) != 1 {
		return fmt.Errorf("grant relay: %w", ErrNotBench)
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return fmt.Errorf("grant relay: --nats: %w", err)
	}
	if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("grant relay: --nats %q: %w", cfg.URL, ErrNotLoopback)
	}
	s, err := deploy.Layout{Dir: cfg.Dir}.LoadSecrets()
	if err != nil {
		return fmt.Errorf("grant relay: %w", err)
	}
	issuer, err := accounts.NewIssuer(s.IssuerSeed, nil)
	if err != nil {
		return fmt.Errorf("grant relay: %w", err)
	}
	xkey, err := accounts.NewXKey(s.XKeySeed)
	if err != nil {
		return fmt.Errorf("grant relay: %w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	// As serve configures the relay, with its defaults, less the store,
	// the lockout guard and the audit trail.
	r, err := relay.New(relay.Config{
		URL:              cfg.URL,
		User:             s.RelayUser,
		Password:         s.RelayPassword,
		Issuer:           issuer,
		XKey:             xkey,
		Users:            grantUsers{},
		ReservedAccounts: []string{deploy.AuthAccount, deploy.SystemAccount},
		SessionTTL:       time.Hour,
		Logger:           logger,
		Now:              now,
	})
	if err != nil {
		return fmt.Errorf("grant relay: %w", err)
	}
	if err := r.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("grant relay: %w", err)
	}
	return nil
}

// grantUsers is the decision of scenario (c): every name and password is
// granted at once, as bench.User(name) — the account and permissions of the
// users of (d) — without a store or a password hash.
type grantUsers struct{}

func (grantUsers) Authenticate(_ context.Context, name, _ string) (accounts.User, error) {
	return bench.User(name), nil
}

func (grantUsers) RolesNamed(context.Context, []string) ([]accounts.Role, error) {
	return nil, nil
}

// VerifyDummy and Rehash have nothing to do: there is no password hash.
func (grantUsers) VerifyDummy(context.Context, string) error { return nil }
func (grantUsers) Rehash(context.Context, string, string)    {}

var _ relay.Users = grantUsers{}
