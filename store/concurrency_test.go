package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/authrelay/authrelay/accounts"
)

// TestConcurrentAdminAndAuthenticate runs admin writes from two handles on
// the same file, as the CLI and a running relay are two processes, while
// Authenticate runs in a loop on both. No call may fail ("database is locked")
// and no write may be lost.
func TestConcurrentAdminAndAuthenticate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "authrelay.db")
	handles := []*DB{openTest(t, path), openTest(t, path)}
	ctx := t.Context()
	if err := handles[0].AddAccount(ctx, "APP"); err != nil {
		t.Fatal(err)
	}
	if err := handles[0].AddUser(ctx, accounts.User{Name: "svc", Account: "APP"}, "svc-pw"); err != nil {
		t.Fatal(err)
	}

	const writers, perWriter = 4, 25
	stop := make(chan struct{})
	var auths atomic.Int64
	var readers sync.WaitGroup
	for i := range 4 {
		db := handles[i%2]
		readers.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := db.Authenticate(ctx, "svc", "svc-pw"); err != nil {
					t.Errorf("Authenticate(svc): %v", err)
					return
				}
				// A user the writers are creating and changing: either
				// answer is fine, an error is not.
				name := fmt.Sprintf("w%d-%d", n%writers, n%perWriter)
				if _, err := db.Authenticate(ctx, name, "second-"+name); err != nil && !errors.Is(err, accounts.ErrInvalidCredentials) {
					t.Errorf("Authenticate(%s): %v", name, err)
					return
				}
				if _, err := db.Users(ctx); err != nil {
					t.Errorf("Users: %v", err)
					return
				}
				auths.Add(2)
			}
		})
	}

	var writersWG sync.WaitGroup
	for w := range writers {
		db := handles[w%2]
		writersWG.Go(func() {
			for i := range perWriter {
				name := fmt.Sprintf("w%d-%d", w, i)
				steps := []struct {
					what string
					do   func() error
				}{
					{"add", func() error { return db.AddUser(ctx, accounts.User{Name: name, Account: "APP"}, "first-"+name) }},
					{"set password", func() error { return db.SetPassword(ctx, name, "second-"+name) }},
					{"update svc", func() error {
						return db.UpdateUser(ctx, "svc", func(u *accounts.User) error {
							u.Permissions.Pub.Allow = append(u.Permissions.Pub.Allow, fmt.Sprintf("w%d.%d", w, i))
							return nil
						})
					}},
					{"disable", func() error { return db.SetDisabled(ctx, name, true) }},
					{"update", func() error {
						return db.UpdateUser(ctx, name, func(u *accounts.User) error {
							u.Permissions.Sub.Allow = []string{name}
							return nil
						})
					}},
				}
				for _, s := range steps {
					if err := s.do(); err != nil {
						t.Errorf("%s %s: %v", s.what, name, err)
						return
					}
				}
			}
		})
	}
	writersWG.Wait()
	close(stop)
	readers.Wait()
	if t.Failed() {
		return
	}
	if auths.Load() == 0 {
		t.Error("no authentication ran during the writes")
	}
	t.Logf("%d authentications during %d writes", auths.Load(), writers*perWriter*5)

	// Every write landed, seen from both handles.
	for _, db := range handles {
		users, err := db.Users(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := len(users), 1+writers*perWriter; got != want {
			t.Errorf("%d users, want %d", got, want)
		}
		svc, err := db.User(ctx, "svc")
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for w := range writers {
			for i := range perWriter {
				want = append(want, fmt.Sprintf("w%d.%d", w, i))
			}
		}
		got := slices.Sorted(slices.Values(svc.Permissions.Pub.Allow))
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("svc publish allow has %d subjects, want %d: updates were lost", len(got), len(want))
		}
		for _, u := range users {
			if u.Name == "svc" {
				continue
			}
			if !u.Disabled || !slices.Equal(u.Permissions.Sub.Allow, []string{u.Name}) {
				t.Errorf("user %s = %+v: a write was lost", u.Name, u)
			}
		}
	}
	for w := range writers {
		for i := range perWriter {
			name := fmt.Sprintf("w%d-%d", w, i)
			if _, err := handles[(w+1)%2].Authenticate(ctx, name, "second-"+name); err != nil {
				t.Errorf("Authenticate(%s) with the new password: %v", name, err)
			}
		}
	}
}

// TestConcurrentRoleRemoval gives a role to users from one handle while
// another handle removes the role with force and adds it again. Each call
// either succeeds or, for a user update that finds the role gone, fails with
// ErrUnknownRole; none fails otherwise, and no user is left holding a role
// that does not exist.
func TestConcurrentRoleRemoval(t *testing.T) {
	path := filepath.Join(t.TempDir(), "authrelay.db")
	a, b := openTest(t, path), openTest(t, path)
	ctx := t.Context()
	if err := a.AddAccount(ctx, "APP"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"keep", "flaky"} {
		if err := a.AddRole(ctx, accounts.Role{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	const users, rounds = 4, 40
	for i := range users {
		if err := a.AddUser(ctx, accounts.User{Name: fmt.Sprintf("u%d", i), Account: "APP", Roles: []string{"keep"}}, "pw"); err != nil {
			t.Fatal(err)
		}
	}

	var wg sync.WaitGroup
	var refused atomic.Int64
	wg.Go(func() {
		for n := range rounds {
			name := fmt.Sprintf("u%d", n%users)
			err := a.UpdateUser(ctx, name, func(u *accounts.User) error {
				u.Roles = []string{"flaky", "keep"}
				return nil
			})
			switch {
			case errors.Is(err, ErrUnknownRole):
				refused.Add(1)
			case err != nil:
				t.Errorf("give %s the role: %v", name, err)
				return
			}
			if _, err := a.Authenticate(ctx, name, "pw"); err != nil {
				t.Errorf("Authenticate(%s): %v", name, err)
				return
			}
		}
	})
	wg.Go(func() {
		for range rounds {
			if _, err := b.RemoveRole(ctx, "flaky", true); err != nil {
				t.Errorf("remove role: %v", err)
				return
			}
			if err := b.AddRole(ctx, accounts.Role{Name: "flaky"}); err != nil {
				t.Errorf("add role: %v", err)
				return
			}
		}
	})
	wg.Wait()
	t.Logf("%d of %d updates found the role gone", refused.Load(), rounds)

	all, err := a.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range all {
		roles, err := a.RolesNamed(ctx, u.Roles)
		if err != nil {
			t.Fatal(err)
		}
		if len(roles) != len(u.Roles) || !slices.Contains(u.Roles, "keep") {
			t.Errorf("user %s holds %q, of which %d exist; want keep among them, all existing", u.Name, u.Roles, len(roles))
		}
	}
}
