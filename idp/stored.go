package idp

import (
	"maps"

	"github.com/authrelay/authrelay/accounts"
)

// FromStored returns the Provider of a store row ('authrelay idp add').
func FromStored(p accounts.IdentityProvider) Provider {
	return Provider{
		Name:          p.Name,
		Issuer:        p.Issuer,
		Audience:      p.Audience,
		UsernameClaim: p.UsernameClaim,
		RolesClaim:    p.RolesClaim,
		RoleMap:       maps.Clone(p.RoleMap),
		Account:       p.Account,
		CreateUsers:   p.CreateUsers,
	}
}
