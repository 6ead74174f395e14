package store

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"

	"github.com/authrelay/authrelay/accounts"
)

// TestMigrateLeastPrivilege: 0007 gives every user whose direction was
// effectively unrestricted under the previous schema (an empty merged allow,
// and for publish no response permission anywhere in the merge) an explicit
// '>' for it, and changes nothing else: no role, no user that had a grant.
func TestMigrateLeastPrivilege(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "authrelay.db")
	raw := openAtVersion(t, path, 6)

	hash, err := HashPassword("pw", testParams)
	if err != nil {
		t.Fatal(err)
	}
	ts := formatTime(t0)
	roles := map[string]string{
		"writer":    `{"pub":{"allow":["orders.>"],"deny":null},"sub":{"allow":null,"deny":null}}`,
		"reader":    `{"pub":{"allow":null,"deny":null},"sub":{"allow":["metrics.>"],"deny":["metrics.secret.>"]}}`,
		"responder": `{"pub":{"allow":null,"deny":null},"sub":{"allow":null,"deny":null},"resp":{"max":0,"ttl":0}}`,
		"empty":     `{"pub":{"allow":null,"deny":null},"sub":{"allow":null,"deny":null}}`,
	}
	users := []struct {
		name, perms string
		roles       []string
		want        accounts.Permissions
		migrated    []string // directions the audit row names
	}{
		{name: "open", perms: `{"pub":{"allow":null,"deny":null},"sub":{"allow":null,"deny":null}}`,
			want:     accounts.Permissions{Pub: accounts.Rule{Allow: []string{">"}}, Sub: accounts.Rule{Allow: []string{">"}}},
			migrated: []string{"pub", "sub"}},
		{name: "empty-lists", perms: `{"pub":{"allow":[],"deny":[]},"sub":{"allow":[],"deny":[]}}`,
			want:     accounts.Permissions{Pub: accounts.Rule{Allow: []string{">"}}, Sub: accounts.Rule{Allow: []string{">"}}},
			migrated: []string{"pub", "sub"}},
		{name: "subonly", perms: `{"pub":{"allow":null,"deny":null},"sub":{"allow":["metrics.>"],"deny":null}}`,
			want:     accounts.Permissions{Pub: accounts.Rule{Allow: []string{">"}}, Sub: accounts.Rule{Allow: []string{"metrics.>"}}},
			migrated: []string{"pub"}},
		{name: "denyonly", perms: `{"pub":{"allow":null,"deny":["secret.>"]},"sub":{"allow":["a"],"deny":null}}`,
			want:     accounts.Permissions{Pub: accounts.Rule{Allow: []string{">"}, Deny: []string{"secret.>"}}, Sub: accounts.Rule{Allow: []string{"a"}}},
			migrated: []string{"pub"}},
		// nats-server closed publish (replies aside) for a JWT with a
		// response permission and no publish allow: it stays closed.
		{name: "service", perms: `{"pub":{"allow":null,"deny":null},"sub":{"allow":["svc.>"],"deny":null},"resp":{"max":1,"ttl":0}}`,
			want: accounts.Permissions{Sub: accounts.Rule{Allow: []string{"svc.>"}}, Resp: &accounts.ResponsePermission{MaxMsgs: 1}}},
		{name: "role-writer", perms: `{"pub":{"allow":null,"deny":null},"sub":{"allow":null,"deny":null}}`, roles: []string{"writer"},
			want:     accounts.Permissions{Sub: accounts.Rule{Allow: []string{">"}}},
			migrated: []string{"sub"}},
		{name: "role-reader", perms: `{"pub":{"allow":null,"deny":null},"sub":{"allow":null,"deny":null}}`, roles: []string{"reader", "empty"},
			want:     accounts.Permissions{Pub: accounts.Rule{Allow: []string{">"}}},
			migrated: []string{"pub"}},
		{name: "role-responder", perms: `{"pub":{"allow":null,"deny":null},"sub":{"allow":["svc.>"],"deny":null}}`, roles: []string{"responder"},
			want: accounts.Permissions{Sub: accounts.Rule{Allow: []string{"svc.>"}}}},
		// A role with an empty direction contributes nothing: the user's
		// own publish allow stays its only one.
		{name: "own-and-empty-role", perms: `{"pub":{"allow":["x"],"deny":null},"sub":{"allow":["y"],"deny":null}}`, roles: []string{"empty"},
			want: accounts.Permissions{Pub: accounts.Rule{Allow: []string{"x"}}, Sub: accounts.Rule{Allow: []string{"y"}}}},
	}
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := raw.ExecContext(ctx, q, args...); err != nil {
			t.Fatal(err)
		}
	}
	exec(`INSERT INTO accounts (name, created) VALUES ('APP', ?)`, ts)
	for name, p := range roles {
		exec(`INSERT INTO roles (name, permissions, created, updated) VALUES (?, ?, ?, ?)`, name, p, ts, ts)
	}
	for _, u := range users {
		exec(`INSERT INTO users (name, account, password_hash, permissions, created, updated) VALUES (?, 'APP', ?, ?, ?, ?)`, u.name, hash, u.perms, ts, ts)
		for i, r := range u.roles {
			exec(`INSERT INTO user_roles (user, role, position) VALUES (?, ?, ?)`, u.name, r, i)
		}
	}
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}

	db := openTest(t, path)
	if got := userVersion(t, db); got < 7 {
		t.Fatalf("user_version after Open = %d, want at least 7", got)
	}
	entries, err := db.Audit(ctx, AuditFilter{Kind: AuditAdmin})
	if err != nil {
		t.Fatal(err)
	}
	audited := map[string][]string{}
	for _, e := range entries {
		if e.Action != "user migrate" || e.Actor != "authrelay upgrade" {
			continue
		}
		var d struct {
			Migration  string   `json:"migration"`
			Directions []string `json:"explicit_allow_all"`
		}
		if err := json.Unmarshal([]byte(e.Detail), &d); err != nil {
			t.Fatalf("audit detail %q: %v", e.Detail, err)
		}
		if d.Migration != "0007_least_privilege" {
			t.Errorf("audit row for %s names migration %q", e.User, d.Migration)
		}
		audited[e.User] = d.Directions
	}
	for _, u := range users {
		t.Run(u.name, func(t *testing.T) {
			got, err := db.User(ctx, u.name)
			if err != nil {
				t.Fatal(err)
			}
			assertPermissions(t, got.Permissions, u.want)
			if !slices.Equal(audited[u.name], u.migrated) {
				t.Errorf("audit trail says %q were opened explicitly, want %q", audited[u.name], u.migrated)
			}
		})
	}
	t.Run("roles unchanged", func(t *testing.T) {
		for name, p := range roles {
			r, err := db.Role(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			var want accounts.Permissions
			if err := json.Unmarshal([]byte(p), &want); err != nil {
				t.Fatal(err)
			}
			assertPermissions(t, r.Permissions, want)
		}
	})
	t.Run("a new database gets no audit rows", func(t *testing.T) {
		fresh, _ := newTestDB(t)
		entries, err := fresh.Audit(ctx, AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 0 {
			t.Errorf("fresh database has %d audit rows", len(entries))
		}
	})
}

func assertPermissions(t *testing.T, got, want accounts.Permissions) {
	t.Helper()
	eq := func(a, b []string) bool { return slices.Equal(a, b) || len(a) == 0 && len(b) == 0 }
	if !eq(got.Pub.Allow, want.Pub.Allow) || !eq(got.Pub.Deny, want.Pub.Deny) ||
		!eq(got.Sub.Allow, want.Sub.Allow) || !eq(got.Sub.Deny, want.Sub.Deny) ||
		(got.Resp == nil) != (want.Resp == nil) || (got.Resp != nil && *got.Resp != *want.Resp) {
		t.Errorf("permissions = %+v (resp %+v), want %+v (resp %+v)", got, got.Resp, want, want.Resp)
	}
}
