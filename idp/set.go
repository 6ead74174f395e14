package idp

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/authrelay/authrelay/accounts"
)

// Set is the verifiers of several providers, keyed by name, sharing one
// HTTP transport. Update replaces the providers (the relay calls it when
// the store's rows change); Verify picks the provider a token names. Its
// methods are safe for concurrent use.
type Set struct {
	opts Options

	mu     sync.RWMutex
	byName map[string]*Verifier
	closed bool
}

// NewSet returns an empty Set whose verifiers will use opts.
func NewSet(opts Options) (*Set, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("identity provider options: %w", err)
	}
	return &Set{opts: o, byName: map[string]*Verifier{}}, nil
}

// Update makes providers the Set's providers. It checks them all first and
// changes nothing if one is invalid, two share a name, or two share an
// issuer and audience (a token would name both). A provider whose name and
// issuer are unchanged keeps its verifier and cached keys, with the new
// claim mapping; one whose issuer changed, or that is new, gets a new
// verifier, which begins discovery in the background; the verifiers of
// providers no longer listed are closed.
func (s *Set) Update(providers []Provider) error {
	seen := map[string]bool{}
	pairs := map[[2]string]string{}
	for _, p := range providers {
		if err := p.Validate(); err != nil {
			return err
		}
		if seen[p.Name] {
			return fmt.Errorf("provider %s is listed twice", p.Name)
		}
		seen[p.Name] = true
		key := [2]string{p.Issuer, p.Audience}
		if other, ok := pairs[key]; ok {
			return fmt.Errorf("providers %s and %s have the same issuer and audience: a token could not tell them apart", other, p.Name)
		}
		pairs[key] = p.Name
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	// Make the new verifiers first, so a failure leaves the Set as it was.
	next := make(map[string]*Verifier, len(providers))
	var kept []Provider
	for _, p := range providers {
		if v, ok := s.byName[p.Name]; ok && v.cfg.Load().Issuer == p.Issuer {
			next[p.Name] = v
			kept = append(kept, p)
			continue
		}
		v, err := NewVerifier(p, s.opts)
		if err != nil {
			for name, nv := range next {
				if s.byName[name] != nv {
					nv.Close()
				}
			}
			s.mu.Unlock()
			return err
		}
		next[p.Name] = v
	}
	for _, p := range kept {
		next[p.Name].setProvider(p)
	}
	var stale []*Verifier
	for name, v := range s.byName {
		if next[name] != v {
			stale = append(stale, v)
		}
	}
	s.byName = next
	s.mu.Unlock()
	for _, v := range stale {
		v.Close()
	}
	return nil
}

// Verifier returns the verifier of the provider called name, or nil.
func (s *Set) Verifier(name string) *Verifier {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.byName[name]
}

// Names returns the names of the Set's providers, sorted.
func (s *Set) Names() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Sorted(maps.Keys(s.byName))
}

// Verify verifies a raw token with the provider whose issuer is the
// token's iss and whose audience is among its aud, as Verifier.Verify
// does. A token no provider matches is refused with ReasonUnknownIssuer,
// before any signature check or fetch.
func (s *Set) Verify(ctx context.Context, raw string) (Identity, error) {
	pt, perr := parse(raw)
	if perr != nil {
		return Identity{}, perr
	}
	v, err := s.route(pt)
	if err != nil {
		return Identity{}, err
	}
	return v.verify(ctx, pt)
}

func (s *Set) route(pt *parsedToken) (*Verifier, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var byIssuer, match []*Verifier
	for _, v := range s.byName {
		p := v.cfg.Load()
		if p.Issuer != pt.claims.Issuer {
			continue
		}
		byIssuer = append(byIssuer, v)
		if pt.claims.Audience.Contains(p.Audience) {
			match = append(match, v)
		}
	}
	switch {
	case len(byIssuer) == 0:
		return nil, refuse("", ReasonUnknownIssuer, "no identity provider has issuer %s", tokenText(pt.claims.Issuer))
	case len(byIssuer) == 1:
		return byIssuer[0], nil // its checks give the reason
	case len(match) == 0:
		return nil, refuse("", ReasonAudience, "no identity provider of issuer %s has an audience the token names", tokenText(pt.claims.Issuer))
	case len(match) > 1:
		names := make([]string, len(match))
		for i, v := range match {
			names[i] = v.cfg.Load().Name
		}
		slices.Sort(names)
		return nil, refuse("", ReasonAudience, "the token's audience names several providers (%s): which account and roles apply is ambiguous", accounts.EscapeControl(fmt.Sprint(names)))
	}
	return match[0], nil
}

// Check runs Check on every verifier of the Set, in parallel, and returns
// the errors by provider name (nil for a provider that passed).
func (s *Set) Check(ctx context.Context) map[string]error {
	s.mu.RLock()
	vs := maps.Clone(s.byName)
	s.mu.RUnlock()
	out := make(map[string]error, len(vs))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, v := range vs {
		wg.Go(func() {
			err := v.Check(ctx)
			mu.Lock()
			out[name] = err
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// Close closes every verifier of the Set; Update fails afterwards.
func (s *Set) Close() {
	s.mu.Lock()
	vs := s.byName
	s.byName = map[string]*Verifier{}
	s.closed = true
	s.mu.Unlock()
	for _, v := range vs {
		v.Close()
	}
}
