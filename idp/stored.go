package idp

import (
	"fmt"
	"maps"
	"strings"

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

// ParseRoleMap reads --role-map values, each VALUE=ROLE: a value of the
// roles claim and the authrelay role it maps to.
func ParseRoleMap(list []string) (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range list {
		v, role, ok := strings.Cut(kv, "=")
		if !ok || v == "" || role == "" {
			return nil, fmt.Errorf("--role-map %s: give VALUE=ROLE, a value of the roles claim and an authrelay role", accounts.ClientText(kv))
		}
		if _, dup := m[v]; dup {
			return nil, fmt.Errorf("--role-map: %s is mapped twice", accounts.ClientText(v))
		}
		m[v] = role
	}
	return m, nil
}
