package doctor

import (
	"context"
	"fmt"
	"strings"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/store"
)

// listMax is how many names one doctor line lists before "and N
// more".
const listMax = 20

// checkUnrestricted lists the users whose merged permissions, and the roles
// whose own, grant a direction entirely (an allow of '>'): each may use
// every subject of its account in that direction, $JS.API.> included. That
// is a warning, not a failure: it may be meant, and the upgrade to least
// privilege (schema 0007) gave '>' to every user that had an empty
// direction, to keep what it could do before.
func (d *checker) checkUnrestricted(ctx context.Context, db *store.DB) {
	const check = "unrestricted"
	users, err := db.Users(ctx)
	if err != nil {
		d.fail(check, "read users: %v", err)
		return
	}
	roles, err := db.Roles(ctx)
	if err != nil {
		d.fail(check, "read roles: %v", err)
		return
	}
	var openUsers, openRoles []string
	for _, u := range users {
		g, err := accounts.Resolve(u, roles)
		if err != nil {
			continue // its logins are refused; user explain says why
		}
		if s := unrestrictedText(g.Permissions); s != "" {
			openUsers = append(openUsers, u.Name+" ("+s+")")
		}
	}
	for _, r := range roles {
		if s := unrestrictedText(r.Permissions); s != "" {
			openRoles = append(openRoles, r.Name+" ("+s+")")
		}
	}
	if len(openUsers)+len(openRoles) == 0 {
		d.ok(check, "no user or role is granted every subject ('>') in a direction")
		return
	}
	var parts []string
	if len(openUsers) > 0 {
		parts = append(parts, fmt.Sprintf("%s: %s", accounts.Plural(len(openUsers), "user"), list(openUsers)))
	}
	if len(openRoles) > 0 {
		parts = append(parts, fmt.Sprintf("%s: %s", accounts.Plural(len(openRoles), "role"), list(openRoles)))
	}
	d.warn(check, "every subject ('>') is granted in a direction to %s. Each may use all of its account in that direction, $JS.API.> and other services' subjects included (the upgrade to least privilege gave '>' to every direction a user had left empty, which nats-server read as everything); narrow what they do not need with 'authrelay user set NAME --pub … --sub …' or 'authrelay role set', and check with 'authrelay user explain NAME'", strings.Join(parts, "; "))
}

// unrestrictedText names the directions in which p allows '>', with their
// denies, or returns "".
func unrestrictedText(p accounts.Permissions) string {
	var dirs []string
	for _, d := range []struct {
		name string
		rule accounts.Rule
	}{{"publish", p.Pub}, {"subscribe", p.Sub}} {
		if d.rule.Scope() != accounts.ScopeAnything {
			continue
		}
		s := d.name
		if len(d.rule.Deny) > 0 {
			s += " except " + strings.Join(d.rule.Deny, ",")
		}
		dirs = append(dirs, s)
	}
	return strings.Join(dirs, ", ")
}

// list joins names, at most listMax of them.
func list(names []string) string {
	if len(names) <= listMax {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:listMax], ", "), len(names)-listMax)
}
