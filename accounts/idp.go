package accounts

import (
	"errors"
	"time"
)

// IdentityProvider is an OpenID Connect / OAuth2 provider as the store
// keeps it ('authrelay idp add'): whose tokens clients may present, and
// what their claims mean. The idp package verifies tokens against it
// (idp.Provider has the same fields and checks them, Validate).
type IdentityProvider struct {
	Name     string `json:"name"`
	Issuer   string `json:"issuer"`
	Audience string `json:"audience"`
	// Account is where users created on first login are placed.
	Account string `json:"account"`
	// UsernameClaim is the claim that is the authrelay username; "" is sub.
	UsernameClaim string `json:"username_claim"`
	// RolesClaim and RoleMap give users created on first login their
	// roles: each value of the claim RoleMap names is the role it maps to.
	RolesClaim string            `json:"roles_claim"`
	RoleMap    map[string]string `json:"role_map"`
	// CreateUsers lets an unknown subject be created on its first login.
	CreateUsers bool      `json:"create_users"`
	Created     time.Time `json:"created"`
	// Users are the users bound to the provider, sorted (as the store
	// reads them; not part of the provider's configuration).
	Users []string `json:"users"`
}

// ErrNameTaken means an identity provider's subject names a user that
// exists and is not bound to that provider: such a user is never taken
// over by a login with a token.
var ErrNameTaken = errors.New("the name is taken by a user not bound to this provider")
