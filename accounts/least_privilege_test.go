package accounts

import (
	"slices"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
)

func TestRuleScope(t *testing.T) {
	for _, tc := range []struct {
		rule Rule
		want Scope
	}{
		{Rule{}, ScopeNothing},
		{Rule{Deny: []string{"secret.>"}}, ScopeNothing},
		{Rule{Allow: []string{"orders.>"}}, ScopeLimited},
		{Rule{Allow: []string{"orders.>", "*"}, Deny: []string{"orders.x"}}, ScopeLimited},
		{Rule{Allow: []string{">"}}, ScopeAnything},
		{Rule{Allow: []string{"orders.>", ">"}, Deny: []string{"$JS.API.>"}}, ScopeAnything},
	} {
		if got := tc.rule.Scope(); got != tc.want {
			t.Errorf("%+v: Scope = %q, want %q", tc.rule, got, tc.want)
		}
	}
}

// TestUserClaimsCloseUngrantedDirections: nats-server reads a direction with
// no allow and no deny as "everything" and one with only denies as
// "everything else", so the JWT must deny '>' in a direction that nobody
// granted, after roles and the user's own rules are merged.
func TestUserClaimsCloseUngrantedDirections(t *testing.T) {
	iss, _ := newTestIssuer(t)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	unkey := newUserNkey(t)
	reader := Role{Name: "reader", Permissions: Permissions{Sub: Rule{Allow: []string{"metrics.>"}, Deny: []string{"metrics.secret.>"}}}}
	writer := Role{Name: "writer", Permissions: Permissions{Pub: Rule{Allow: []string{"svc.{{name}}.>"}}}}
	type perm struct{ allow, deny []string }
	for _, tc := range []struct {
		name     string
		user     User
		pub, sub perm
	}{
		{"no rules at all", User{}, perm{nil, []string{">"}}, perm{nil, []string{">"}}},
		{"sub only", User{Roles: []string{"reader"}},
			perm{nil, []string{">"}}, perm{[]string{"metrics.>"}, []string{"metrics.secret.>"}}},
		{"pub only", User{Permissions: Permissions{Pub: Rule{Allow: []string{"orders.>"}}}},
			perm{[]string{"orders.>"}, nil}, perm{nil, []string{">"}}},
		{"deny-only is closed, not everything else", User{Permissions: Permissions{Pub: Rule{Deny: []string{"secret.>"}}, Sub: Rule{Deny: []string{"secret.>"}}}},
			perm{nil, []string{">"}}, perm{nil, []string{">"}}},
		{"a role's allow opens the direction the user's own rules leave empty", User{Roles: []string{"reader", "writer"}, Permissions: Permissions{Sub: Rule{Deny: []string{"metrics.x"}}}},
			perm{[]string{"svc.alice.>"}, nil}, perm{[]string{"metrics.>"}, []string{"metrics.secret.>", "metrics.x"}}},
		{"explicit everything", User{Permissions: Permissions{Pub: Rule{Allow: []string{">"}}, Sub: Rule{Allow: []string{">"}, Deny: []string{"$SYS.>"}}}},
			perm{[]string{">"}, nil}, perm{[]string{">"}, []string{"$SYS.>"}}},
		{"responses alone do not open publish", User{Roles: []string{"reader"}, Permissions: Permissions{Resp: &ResponsePermission{}}},
			perm{nil, []string{">"}}, perm{[]string{"metrics.>"}, []string{"metrics.secret.>"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := tc.user
			u.Name, u.Account = "alice", "APP"
			g, err := Resolve(u, []Role{reader, writer})
			if err != nil {
				t.Fatal(err)
			}
			uc, err := iss.UserClaims(g, unkey, now, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			token, err := iss.IssueUserJWT(uc)
			if err != nil {
				t.Fatal(err)
			}
			got, err := jwt.DecodeUserClaims(token)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				what      string
				got, want []string
			}{
				{"pub allow", got.Pub.Allow, tc.pub.allow}, {"pub deny", got.Pub.Deny, tc.pub.deny},
				{"sub allow", got.Sub.Allow, tc.sub.allow}, {"sub deny", got.Sub.Deny, tc.sub.deny},
			} {
				if !slices.Equal(c.got, c.want) {
					t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
				}
			}
			if (u.Permissions.Resp != nil) != (got.Resp != nil) {
				t.Errorf("resp = %+v, want it only when the user allows responses", got.Resp)
			}
		})
	}
}
