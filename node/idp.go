package node

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/idp"
	"github.com/authrelay/authrelay/store"
)

// idpPoll is how often a running relay looks for changed identity
// providers: a change to the store's generation reads them again. A
// provider removed needs no poll to stop its logins (the login query joins
// the providers table) nor its connections (the change feed closes them).
const idpPoll = 500 * time.Millisecond

// identitySet builds the identity provider verifiers from the store's
// providers, and keeps them in step with it until ctx ends (watch).
type identitySet struct {
	db     *store.DB
	set    *idp.Set
	logger *slog.Logger
	last   []accounts.IdentityProvider
}

func newIdentitySet(ctx context.Context, db *store.DB, logger *slog.Logger) (*identitySet, error) {
	set, err := idp.NewSet(idp.Options{Logger: logger})
	if err != nil {
		return nil, err
	}
	s := &identitySet{db: db, set: set, logger: logger}
	if err := s.load(ctx); err != nil {
		set.Close()
		return nil, err
	}
	return s, nil
}

// load reads the providers and updates the Set when they changed. A
// provider the idp package refuses (a row written by hand) is logged and
// left out, so that the others still work.
func (s *identitySet) load(ctx context.Context) error {
	list, err := s.db.IdentityProviders(ctx)
	if err != nil {
		return err
	}
	if slices.EqualFunc(list, s.last, sameProvider) && s.last != nil {
		return nil
	}
	var ps []idp.Provider
	for _, p := range list {
		q := idp.FromStored(p)
		if err := q.Validate(); err != nil {
			s.logger.Error("identity provider left out: its logins are refused", "idp", accounts.ClientText(p.Name), "err", err)
			continue
		}
		ps = append(ps, q)
	}
	if err := s.set.Update(ps); err != nil {
		return err
	}
	if list == nil {
		list = []accounts.IdentityProvider{}
	}
	s.last = list
	return nil
}

func sameProvider(a, b accounts.IdentityProvider) bool {
	return a.Name == b.Name && a.Issuer == b.Issuer && a.Audience == b.Audience && a.Account == b.Account &&
		a.UsernameClaim == b.UsernameClaim && a.RolesClaim == b.RolesClaim && a.CreateUsers == b.CreateUsers &&
		maps.Equal(a.RoleMap, b.RoleMap)
}

// watch reloads the providers whenever the store's generation changes,
// until ctx ends, then closes the Set.
func (s *identitySet) watch(ctx context.Context) {
	defer s.set.Close()
	t := time.NewTicker(idpPoll)
	defer t.Stop()
	var gen int64 = -1
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		g, err := s.db.Generation(ctx)
		if err != nil || g == gen {
			continue
		}
		if err := s.load(ctx); err != nil {
			if ctx.Err() == nil {
				s.logger.Error("read identity providers", "err", err)
			}
			continue
		}
		gen = g
	}
}
