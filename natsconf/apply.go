package natsconf

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/store"
)

// Target is the store an import plan is applied to; *store.DB is one. In
// a store.DB.Admin transaction, the calls are made with the ctx the
// transaction gives.
type Target interface {
	AddAccountWithLimits(ctx context.Context, a accounts.Account) error
	RemoveAccount(ctx context.Context, name string) error
	AddUser(ctx context.Context, u accounts.User, password string) error
	AddUserWithHash(ctx context.Context, u accounts.User, hash string) error
}

var _ Target = (*store.DB)(nil)

// HashPasswords replaces the plain-text password of each user r adds with
// hash's hash of it, so that Apply does not hold the store's write lock
// for a hash per user. A password the store refuses is left for Apply to
// report.
func (r *Report) HashPasswords(hash func(password string) (string, error)) error {
	for _, u := range r.Users {
		if u.Action != ActionAdd || u.hashed || store.ValidatePassword(u.secret) != nil {
			continue // AddUser says what is wrong with the password
		}
		h, err := hash(u.secret)
		if err != nil {
			return fmt.Errorf("user %s: %w", u.Name, err)
		}
		u.secret, u.hashed = h, true
	}
	return nil
}

// Apply creates the accounts and adds the users r marks, and updates the
// rows. Accounts come first, so that every user's account exists; once
// they are created, written is called (to write the server's accounts
// file) unless none was. If creating an account or written fails, Apply
// removes the accounts it created and returns the error: nothing is
// imported. Then a user that fails stops the import: Apply returns
// (nil, the error), the rows saying which users were added; the users
// added before it are valid and stay. An account or user created by
// someone else since the plan was made is reported as existing.
func Apply(ctx context.Context, t Target, r *Report, written func(context.Context) error) (userErr, err error) {
	var created []string
	for _, a := range r.Accounts {
		if a.Action != ActionCreate {
			continue
		}
		err := t.AddAccountWithLimits(ctx, accounts.Account{Name: a.Name, Limits: a.limits})
		switch {
		case errors.Is(err, store.ErrExists):
			a.Action, a.Detail = ActionExists, existsDetail
		case err != nil:
			return nil, undoAccounts(ctx, t, created, err)
		default:
			created = append(created, a.Name)
		}
	}
	if len(created) > 0 && written != nil {
		if err := written(ctx); err != nil {
			// Keep the database and the server config in step.
			return nil, undoAccounts(ctx, t, created, err)
		}
	}
	userErr = addUsers(ctx, t, r)
	r.Count()
	return userErr, nil
}

// addUsers adds the users r marks, until one fails.
func addUsers(ctx context.Context, t Target, r *Report) error {
	for i, u := range r.Users {
		if u.Action != ActionAdd {
			continue
		}
		var err error
		if u.hashed {
			err = t.AddUserWithHash(ctx, u.user, u.secret)
		} else {
			err = t.AddUser(ctx, u.user, u.secret)
		}
		if errors.Is(err, store.ErrExists) {
			u.Action, u.Detail = ActionExists, existsDetail
			continue
		}
		if err == nil {
			continue
		}
		u.Action, u.Detail = ActionFailed, err.Error()
		added, rest := 0, 0
		for _, v := range r.Users[:i] {
			if v.Action == ActionAdd {
				added++
			}
		}
		for _, v := range r.Users[i+1:] {
			if v.Action == ActionAdd {
				v.Action, v.Detail = ActionNotRun, stoppedDetail
				rest++
			}
		}
		return fmt.Errorf("import stopped at user %q: %w; the %s added before it stay, %s not attempted: fix the cause and run import again (users already imported are then reported as exists)",
			u.Name, err, users(added), users(rest))
	}
	return nil
}

// undoAccounts removes the accounts import created, so that a failed import
// leaves neither accounts nor users behind, and returns err with what the
// undo could not do.
func undoAccounts(ctx context.Context, t Target, created []string, err error) error {
	for _, name := range created {
		if rerr := t.RemoveAccount(ctx, name); rerr != nil {
			err = errors.Join(err, fmt.Errorf("undo: %w", rerr))
		}
	}
	return fmt.Errorf("%w; no user was imported", err)
}

// users returns "1 user" or "n users".
func users(n int) string {
	if n == 1 {
		return "1 user"
	}
	return strconv.Itoa(n) + " users"
}
