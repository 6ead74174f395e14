package deploy

import (
	"context"
	"fmt"
	"time"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/store"
)

// GrantSizer checks that the login response a grant gets fits the server
// of a directory: its size (accounts.Issuer.ResponseSize, the one place
// that computes it) against max_payload of DIR/nats.conf.
type GrantSizer struct {
	// Issuer is a throwaway key to size responses with: sizes do not
	// depend on the key.
	Issuer *accounts.Issuer
	// Limit is the server's max_payload.
	Limit int
	now   func() time.Time
}

// NewGrantSizer reads max_payload from l's nats.conf (the server's
// default when unset) and makes a signing key to size responses with.
func NewGrantSizer(l Layout, now func() time.Time) (*GrantSizer, error) {
	limit, err := l.MaxPayload()
	if err != nil {
		return nil, err
	}
	mode, err := l.Mode()
	if err != nil {
		return nil, err
	}
	// Operator mode's responses name the accounts by key: a little larger.
	issuer, err := accounts.NewSizingIssuer(mode == ModeOperator)
	if err != nil {
		return nil, fmt.Errorf("size login responses: %w", err)
	}
	return &GrantSizer{Issuer: issuer, Limit: limit, now: now}, nil
}

// Check returns the size of the response a login of u holding roles gets,
// and a *accounts.ResponseTooLargeError when the server would refuse it. A
// user whose grant does not resolve gets no JWT (explain says why): 0, nil.
func (s *GrantSizer) Check(u accounts.User, roles []accounts.Role) (int, error) {
	g, err := accounts.Resolve(u, roles)
	if err != nil {
		return 0, nil
	}
	return s.Issuer.CheckResponseSize(u.Name, g, s.now(), s.Limit)
}

// CheckStored is Check for u with its roles as the store has them.
func (s *GrantSizer) CheckStored(ctx context.Context, db *store.DB, u accounts.User) (int, error) {
	roles, err := db.RolesNamed(ctx, u.Roles)
	if err != nil {
		return 0, err
	}
	return s.Check(u, roles)
}

// CheckRole checks every holder of role r as it would be after a change to
// r, and, so that a role no user could ever hold is refused too, a holder
// with nothing else. It names the first holder pushed over.
func (s *GrantSizer) CheckRole(ctx context.Context, db *store.DB, r accounts.Role, holders []string) error {
	bare := accounts.User{Name: "u", Account: "A", Roles: []string{r.Name}}
	if _, err := s.Check(bare, []accounts.Role{r}); err != nil {
		return fmt.Errorf("role %s alone makes a login response too large: %w", r.Name, err)
	}
	for _, h := range holders {
		u, err := db.User(ctx, h)
		if err != nil {
			return err
		}
		roles, err := db.RolesNamed(ctx, u.Roles)
		if err != nil {
			return err
		}
		for i := range roles {
			if roles[i].Name == r.Name {
				roles[i] = r
			}
		}
		if _, err := s.Check(u, roles); err != nil {
			return fmt.Errorf("holder %s: %w", h, err)
		}
	}
	return nil
}
