package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"sync/atomic"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/store"
)

// credentialUsers is how many users of (d) log in with an nkey, and as
// many with an API token, in their phases.
const credentialUsers = 100

// runCredentials adds the phases of (d) that log in with nkeys and with
// API tokens, beside the warm password reconnects: credentialUsers users
// each, round and round for the phase's duration. Their first logins miss
// the cache (no hash to verify either way), the rest are answered from it;
// an nkey's signature of the nonce is checked on every login.
func (b *bench) runCredentials(ctx context.Context, dir string, s *served) error {
	nkeyOpts, tokenOpts, err := addCredentialUsers(ctx, dir)
	if err != nil {
		return err
	}
	for _, p := range []struct {
		name, title, note string
		opts              []nats.Option
	}{
		{"nkey", "authrelay nkey logins", "users with an nkey, round and round (the signature checked every time)", nkeyOpts},
		{"token", "authrelay API token logins", "users with an API token, round and round", tokenOpts},
	} {
		if ctx.Err() != nil {
			return nil
		}
		b.progress("(d) %s: %d clients for %v, %d users", p.title, b.cfg.Clients, b.cfg.Duration, len(p.opts))
		var i atomic.Uint64
		res, err := b.measureVerified(ctx, s.child, s.metricsAddr, connectLoad{url: s.srv.url(), clients: b.cfg.Clients, duration: b.cfg.Duration,
			options: func() []nats.Option { return []nats.Option{p.opts[(i.Add(1)-1)%uint64(len(p.opts))]} }})
		if err != nil {
			return err
		}
		res.ID, res.Name, res.Title = "d", ScenarioShipped+"-"+p.name, p.title
		res.Note = fmt.Sprintf("%d %s", len(p.opts), p.note)
		if res.Relay != nil && res.Relay.Verifications != nil {
			res.Note += fmt.Sprintf("; %d password verifications", *res.Relay.Verifications)
		}
		b.rep.Scenarios = append(b.rep.Scenarios, res.Scenario)
	}
	return nil
}

// addCredentialUsers adds credentialUsers users with an nkey and as many
// with an API token to the store of dir, in one admin change, and returns
// the connect option of each.
func addCredentialUsers(ctx context.Context, dir string) (nkeyOpts, tokenOpts []nats.Option, err error) {
	db, err := store.OpenExisting(ctx, filepath.Join(dir, databaseFile))
	if err != nil {
		return nil, nil, fmt.Errorf("bench: %w", err)
	}
	defer db.Close()
	// One hash of a secret nobody keeps serves every user, as in
	// addUsers: a hash each would cost the run one per user.
	hash, err := store.HashPassword(rand.Text(), db.Params)
	if err != nil {
		return nil, nil, fmt.Errorf("bench: %w", err)
	}
	err = db.Admin(ctx, "authrelay-bench", "bench credential users", func(ctx context.Context) (string, error) {
		for i := range credentialUsers {
			kp, err := nkeys.CreateUser()
			if err != nil {
				return "", err
			}
			pub, err := kp.PublicKey()
			if err != nil {
				return "", err
			}
			token, err := accounts.NewAPIToken()
			if err != nil {
				return "", err
			}
			for _, c := range []accounts.StoredCredential{
				{Kind: accounts.CredNkey, Value: pub, User: fmt.Sprintf("bench-nkey-%d", i)},
				{Kind: accounts.CredToken, Value: accounts.TokenDigest(token), User: fmt.Sprintf("bench-token-%d", i)},
			} {
				if err := db.AddUserWithHash(ctx, User(c.User), hash); err != nil {
					return "", err
				}
				if err := db.AddCredential(ctx, c); err != nil {
					return "", err
				}
			}
			nkeyOpts = append(nkeyOpts, nats.Nkey(pub, kp.Sign))
			tokenOpts = append(tokenOpts, nats.Token(token))
		}
		return fmt.Sprintf("%d users", 2*credentialUsers), nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("bench: %w", err)
	}
	return nkeyOpts, tokenOpts, db.Close()
}
