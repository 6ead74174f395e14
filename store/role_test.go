package store

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/authrelay/authrelay/accounts"
)

// testRoles are the roles setupRoles adds.
func testRoles() []accounts.Role {
	return []accounts.Role{
		{Name: "writer", Permissions: accounts.Permissions{Pub: accounts.Rule{Allow: []string{"orders.>"}}}},
		{Name: "reader", Permissions: accounts.Permissions{
			Sub:  accounts.Rule{Allow: []string{"events.>", "{{name}}.inbox.>"}, Deny: []string{"events.secret"}},
			Resp: &accounts.ResponsePermission{MaxMsgs: 1, TTL: time.Second},
		}},
		{Name: "admin.ops"},
	}
}

// setupRoles is setup with the roles of testRoles added at t0.
func setupRoles(t *testing.T) (*DB, *clock) {
	t.Helper()
	db, c := setup(t)
	for _, r := range testRoles() {
		if err := db.AddRole(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	return db, c
}

func assertRoles(t *testing.T, what string, got, want []accounts.Role) {
	t.Helper()
	if got == nil {
		t.Errorf("%s = nil, want an empty list rather than nil", what)
	}
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s =\n\t%+v\nwant\n\t%+v", what, got, want)
	}
}

func assertNames(t *testing.T, what string, got, want []string) {
	t.Helper()
	if got == nil {
		t.Errorf("%s = nil, want an empty list rather than nil", what)
	}
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

// stored returns r as the store returns it when added at created and last
// changed at updated.
func stored(r accounts.Role, created, updated time.Time) accounts.Role {
	r.Created, r.Updated = created, updated
	return r
}

func TestRoleCRUD(t *testing.T) {
	db, c := setup(t)
	ctx := t.Context()

	none, err := db.Roles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	assertRoles(t, "Roles of a new store", none, nil)

	rs := testRoles()
	for _, r := range rs {
		r.Created, r.Updated = t1, t1 // ignored
		if err := db.AddRole(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	writer, reader, admin := stored(rs[0], t0, t0), stored(rs[1], t0, t0), stored(rs[2], t0, t0)

	got, err := db.Role(ctx, "reader")
	if err != nil {
		t.Fatal(err)
	}
	assertRoles(t, "Role(reader)", []accounts.Role{got}, []accounts.Role{reader})
	all, err := db.Roles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	assertRoles(t, "Roles", all, []accounts.Role{admin, reader, writer})

	c.Set(t1)
	err = db.UpdateRole(ctx, "writer", func(r *accounts.Role) error {
		r.Permissions.Pub.Deny = []string{"orders.admin.>"}
		r.Created, r.Updated = time.Time{}, time.Time{} // ignored
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	writer.Permissions.Pub.Deny = []string{"orders.admin.>"}
	writer.Updated = t1
	got, err = db.Role(ctx, "writer")
	if err != nil {
		t.Fatal(err)
	}
	assertRoles(t, "Role(writer) after update", []accounts.Role{got}, []accounts.Role{writer})

	holders, err := db.RoleHolders(ctx, "writer")
	if err != nil {
		t.Fatal(err)
	}
	assertNames(t, "RoleHolders of an unheld role", holders, nil)

	removed, err := db.RemoveRole(ctx, "admin.ops", false)
	if err != nil {
		t.Fatal(err)
	}
	assertNames(t, "RemoveRole of an unheld role", removed, nil)
	if _, err := db.Role(ctx, "admin.ops"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Role after RemoveRole = %v, want ErrNotFound", err)
	}
	all, err = db.Roles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	assertRoles(t, "Roles after remove", all, []accounts.Role{reader, writer})
}

func TestRolesNamed(t *testing.T) {
	db, _ := setupRoles(t)
	ctx := t.Context()
	byName := map[string]accounts.Role{}
	for _, r := range testRoles() {
		byName[r.Name] = stored(r, t0, t0)
	}
	for _, tc := range []struct {
		name  string
		names []string
		want  []string
	}{
		{"nil", nil, nil},
		{"empty", []string{}, nil},
		{"one", []string{"reader"}, []string{"reader"}},
		{"in the order asked", []string{"writer", "admin.ops", "reader"}, []string{"writer", "admin.ops", "reader"}},
		{"missing left out", []string{"nope", "reader", "gone", "writer"}, []string{"reader", "writer"}},
		{"only missing", []string{"nope"}, nil},
		{"duplicates once", []string{"reader", "writer", "reader"}, []string{"reader", "writer"}},
		{"not a role name", []string{"", "a b", "reader"}, []string{"reader"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := db.RolesNamed(ctx, tc.names)
			if err != nil {
				t.Fatal(err)
			}
			var want []accounts.Role
			for _, n := range tc.want {
				want = append(want, byName[n])
			}
			assertRoles(t, "RolesNamed", got, want)
		})
	}
}

func TestUserRoles(t *testing.T) {
	db, c := setupRoles(t)
	ctx := t.Context()

	u := fullUser("bob")
	u.Roles = []string{"writer", "reader", "writer", "admin.ops", "reader"}
	if err := db.AddUser(ctx, u, "pw-bob"); err != nil {
		t.Fatal(err)
	}
	want := fullUser("bob")
	want.Roles = []string{"writer", "reader", "admin.ops"}
	want.Created, want.Updated = t0, t0

	t.Run("round trip in order", func(t *testing.T) {
		got, err := db.User(ctx, "bob")
		if err != nil {
			t.Fatal(err)
		}
		assertUser(t, got, want)
		got, err = db.Authenticate(ctx, "bob", "pw-bob")
		if err != nil {
			t.Fatal(err)
		}
		assertUser(t, got, want)
		users, err := db.Users(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(users) != 2 || users[1].Name != "bob" {
			t.Fatalf("Users = %+v, want alice and bob", users)
		}
		assertUser(t, users[1], want)
		assertNames(t, "alice's roles", users[0].Roles, nil)
	})

	t.Run("holders", func(t *testing.T) {
		err := db.UpdateUser(ctx, "alice", func(u *accounts.User) error {
			u.Roles = []string{"reader"}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for role, want := range map[string][]string{
			"reader":    {"alice", "bob"},
			"writer":    {"bob"},
			"admin.ops": {"bob"},
		} {
			got, err := db.RoleHolders(ctx, role)
			if err != nil {
				t.Fatal(err)
			}
			assertNames(t, "RoleHolders("+role+")", got, want)
		}
	})

	t.Run("update reorders and keeps the rest", func(t *testing.T) {
		c.Set(t1)
		err := db.UpdateUser(ctx, "bob", func(u *accounts.User) error {
			u.Roles = []string{"admin.ops", "writer"}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		want := want
		want.Roles = []string{"admin.ops", "writer"}
		want.Updated = t1
		got, err := db.Authenticate(ctx, "bob", "pw-bob")
		if err != nil {
			t.Fatal(err)
		}
		assertUser(t, got, want)

		// An update that leaves the roles alone keeps them.
		err = db.UpdateUser(ctx, "bob", func(u *accounts.User) error {
			u.Disabled = true
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		want.Disabled = true
		got, err = db.User(ctx, "bob")
		if err != nil {
			t.Fatal(err)
		}
		assertUser(t, got, want)
	})

	t.Run("removing the user frees its roles", func(t *testing.T) {
		if err := db.RemoveUser(ctx, "bob"); err != nil {
			t.Fatal(err)
		}
		got, err := db.RoleHolders(ctx, "writer")
		if err != nil {
			t.Fatal(err)
		}
		assertNames(t, "RoleHolders(writer) after RemoveUser", got, nil)
		if _, err := db.RemoveRole(ctx, "writer", false); err != nil {
			t.Errorf("RemoveRole of a role its only holder no longer holds: %v", err)
		}
	})
}

func TestRemoveRoleForce(t *testing.T) {
	db, c := setupRoles(t)
	ctx := t.Context()
	for _, u := range []accounts.User{
		{Name: "zed", Account: "APP", Roles: []string{"writer", "reader", "admin.ops"}},
		{Name: "bob", Account: "APP", Roles: []string{"reader"}},
		{Name: "carol", Account: "APP", Roles: []string{"writer"}},
	} {
		if err := db.AddUser(ctx, u, "pw-"+u.Name); err != nil {
			t.Fatal(err)
		}
	}
	c.Set(t1)

	removed, err := db.RemoveRole(ctx, "reader", true)
	if err != nil {
		t.Fatal(err)
	}
	assertNames(t, "RemoveRole(reader, force)", removed, []string{"bob", "zed"})
	if _, err := db.Role(ctx, "reader"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Role(reader) after forced remove = %v, want ErrNotFound", err)
	}
	for _, tc := range []struct {
		name    string
		roles   []string
		updated time.Time
	}{
		{"zed", []string{"writer", "admin.ops"}, t1},
		{"bob", nil, t1},
		{"carol", []string{"writer"}, t0},
		{"alice", nil, t0},
	} {
		u, err := db.Authenticate(ctx, tc.name, "pw-"+tc.name)
		if err != nil {
			t.Fatal(err)
		}
		assertNames(t, tc.name+"'s roles", u.Roles, tc.roles)
		if !u.Updated.Equal(tc.updated) {
			t.Errorf("%s updated %v, want %v", tc.name, u.Updated, tc.updated)
		}
	}
	// The role can be added again, and held again, from scratch.
	if err := db.AddRole(ctx, accounts.Role{Name: "reader"}); err != nil {
		t.Fatal(err)
	}
	holders, err := db.RoleHolders(ctx, "reader")
	if err != nil {
		t.Fatal(err)
	}
	assertNames(t, "RoleHolders of the re-added role", holders, nil)
}

func TestRoleErrorsChangeNothing(t *testing.T) {
	db, c := setupRoles(t)
	ctx := t.Context()
	for _, u := range []accounts.User{
		{Name: "carol", Account: "APP", Roles: []string{"writer", "reader"}},
		{Name: "bob", Account: "APP", Roles: []string{"reader"}},
	} {
		if err := db.AddUser(ctx, u, "pw-"+u.Name); err != nil {
			t.Fatal(err)
		}
	}
	c.Set(t1)
	errFn := errors.New("changed my mind")
	unknownRole := []error{ErrUnknownRole, accounts.ErrUnknownRole}

	runErrorCases(t, db, []errorCase{
		{
			name:  "duplicate role",
			op:    func() error { return db.AddRole(ctx, accounts.Role{Name: "reader"}) },
			want:  []error{ErrExists},
			words: []string{`role "reader" already exists`},
		},
		{
			name:  "bad role name",
			op:    func() error { return db.AddRole(ctx, accounts.Role{Name: "1st"}) },
			words: []string{"must start with a letter"},
		},
		{
			name: "bad role subject",
			op: func() error {
				return db.AddRole(ctx, accounts.Role{Name: "bad", Permissions: accounts.Permissions{Pub: accounts.Rule{Deny: []string{"a.>.b"}}}})
			},
			words: []string{`"bad"`, "a.>.b"},
		},
		{
			name:  "look up missing role",
			op:    func() error { _, err := db.Role(ctx, "nope"); return err },
			want:  []error{ErrNotFound},
			words: []string{`role "nope" not found`},
		},
		{
			name: "update missing role",
			op:   func() error { return db.UpdateRole(ctx, "nope", func(*accounts.Role) error { return nil }) },
			want: []error{ErrNotFound},
		},
		{
			name: "update renaming the role",
			op: func() error {
				return db.UpdateRole(ctx, "reader", func(r *accounts.Role) error { r.Name = "viewer"; return nil })
			},
			words: []string{"name cannot change"},
		},
		{
			name: "update role to bad subject",
			op: func() error {
				return db.UpdateRole(ctx, "reader", func(r *accounts.Role) error {
					r.Permissions.Sub.Allow = append(r.Permissions.Sub.Allow, "{{nope}}")
					return nil
				})
			},
			words: []string{"{{nope}}"},
		},
		{
			name: "update role function fails",
			op: func() error {
				return db.UpdateRole(ctx, "reader", func(r *accounts.Role) error { r.Permissions = accounts.Permissions{}; return errFn })
			},
			want: []error{errFn},
		},
		{
			name: "holders of missing role",
			op:   func() error { _, err := db.RoleHolders(ctx, "nope"); return err },
			want: []error{ErrNotFound},
		},
		{
			name: "remove missing role",
			op:   func() error { _, err := db.RemoveRole(ctx, "nope", false); return err },
			want: []error{ErrNotFound},
		},
		{
			name: "force remove missing role",
			op:   func() error { _, err := db.RemoveRole(ctx, "nope", true); return err },
			want: []error{ErrNotFound},
		},
		{
			name: "remove role in use",
			op: func() error {
				removed, err := db.RemoveRole(ctx, "reader", false)
				if removed != nil {
					t.Errorf("RemoveRole refused but returned %q", removed)
				}
				var inUse *RoleInUseError
				if !errors.As(err, &inUse) {
					t.Errorf("error %v is not a *RoleInUseError", err)
				} else if want := (RoleInUseError{Role: "reader", Users: []string{"bob", "carol"}}); !reflect.DeepEqual(*inUse, want) {
					t.Errorf("RoleInUseError = %+v, want %+v", *inUse, want)
				}
				return err
			},
			want:  []error{ErrRoleInUse},
			words: []string{`"reader"`, `"bob", "carol"`, "--force"},
		},
		{
			name: "add user with unknown role",
			op: func() error {
				return db.AddUser(ctx, accounts.User{Name: "dave", Account: "APP", Roles: []string{"reader", "nope"}}, "pw-dave")
			},
			want:  unknownRole,
			words: []string{`"dave"`, `unknown role "nope"`, "authrelay role add"},
		},
		{
			name: "add user with hash and unknown roles",
			op: func() error {
				return db.AddUserWithHash(ctx, accounts.User{Name: "dave", Account: "APP", Roles: []string{"gone", "reader", "nope"}},
					"$2a$04$Q.CgCP2Sl9pkcTXEZHazaeMwPaAkSHk7AI51HkyMt5iJQQyUA4qxq")
			},
			want:  unknownRole,
			words: []string{`"gone", "nope"`, "authrelay role add"},
		},
		{
			name: "add user with bad role name",
			op: func() error {
				return db.AddUser(ctx, accounts.User{Name: "dave", Account: "APP", Roles: []string{"a b"}}, "pw-dave")
			},
			words: []string{`"a b"`},
		},
		{
			name: "update user to unknown role",
			op: func() error {
				return db.UpdateUser(ctx, "carol", func(u *accounts.User) error {
					u.Disabled = true
					u.Roles = []string{"admin.ops", "nope"}
					return nil
				})
			},
			want:  unknownRole,
			words: []string{`"carol"`, `unknown role "nope"`, "authrelay role add"},
		},
		{
			name: "update user with unknown role and unknown account",
			op: func() error {
				return db.UpdateUser(ctx, "carol", func(u *accounts.User) error {
					u.Account = "NOPE"
					u.Roles = []string{"nope"}
					return nil
				})
			},
			want: []error{ErrUnknownAccount},
		},
	})
}

func TestRoleInUseErrorMessage(t *testing.T) {
	for _, tc := range []struct {
		users []string
		want  string
	}{
		{[]string{"alice"}, `remove role "r": role in use: user "alice" still holds it`},
		{[]string{"a", "b", "c", "d", "e", "f", "g"}, `users "a", "b", "c", "d", "e" and 2 more still hold it: pass --force`},
	} {
		err := &RoleInUseError{Role: "r", Users: tc.users}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Error() = %q, want it to contain %q", err, tc.want)
		}
		if !errors.Is(err, ErrRoleInUse) {
			t.Errorf("errors.Is(%v, ErrRoleInUse) = false", err)
		}
	}
}
