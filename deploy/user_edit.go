package deploy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/store"
)

// UserEdit is what 'user set' changes of one user: the fields given (nil
// or zero for those not), and the credentials to remove and add.
type UserEdit struct {
	Name        string
	Account     *string
	Expires     *time.Time
	Constraints accounts.ConstraintEdit
	Permissions accounts.PermissionEdit
	ClearCreds  []accounts.CredentialKind
	AddCreds    []accounts.StoredCredential
	// Fields are the flags given, for the audit row.
	Fields []string
}

// EditError is a change that the edit itself makes invalid (a permission
// removed that the user does not have): the admin's input, not the store.
type EditError struct{ Err error }

func (e *EditError) Error() string { return e.Err.Error() }
func (e *EditError) Unwrap() error { return e.Err }

// SetUser makes e with its audit row, by actor, in one transaction: the
// credentials first, then the fields, the user checked (Validate) and its
// grant sized against the server's limits (GrantSizer) before it is
// written.
func (l Layout) SetUser(ctx context.Context, db *store.DB, actor string, e UserEdit, now func() time.Time) error {
	sizer, err := NewGrantSizer(l, now)
	if err != nil {
		return err
	}
	update := func(u *accounts.User) error {
		if e.Account != nil {
			u.Account = *e.Account
		}
		if e.Expires != nil {
			u.Expires = *e.Expires
		}
		e.Constraints.Apply(u)
		if err := e.Permissions.Apply(&u.Permissions); err != nil {
			return &EditError{err}
		}
		if err := u.Validate(); err != nil {
			return err
		}
		_, err := sizer.CheckStored(ctx, db, *u)
		return err
	}
	return Admin(ctx, db, actor, "user set", func(ctx context.Context) (map[string]any, error) {
		detail := map[string]any{"user": e.Name, "fields": e.Fields}
		if len(e.AddCreds) > 0 || len(e.ClearCreds) > 0 {
			if err := db.SetCredentials(ctx, e.Name, e.ClearCreds, e.AddCreds); err != nil {
				return nil, err
			}
		}
		return detail, db.UpdateUser(ctx, e.Name, update)
	})
}

// DefaultAccount returns account, or, when it is "", the only application
// account of db; with several, an error that names them.
func DefaultAccount(ctx context.Context, db *store.DB, account string) (string, error) {
	if account != "" {
		return account, nil
	}
	names, err := db.Accounts(ctx)
	if err != nil {
		return "", err
	}
	if len(names) != 1 {
		return "", &EditError{fmt.Errorf("give --account, one of %s", strings.Join(names, ", "))}
	}
	return names[0], nil
}

// CheckNewUser checks a user before 'user add' asks for its password: u
// itself (Validate, an EditError) and its grant against the server's
// limits (GrantSizer).
func (l Layout) CheckNewUser(ctx context.Context, db *store.DB, u accounts.User, now func() time.Time) error {
	if err := u.Validate(); err != nil {
		return &EditError{err}
	}
	sizer, err := NewGrantSizer(l, now)
	if err != nil {
		return err
	}
	if _, err := sizer.CheckStored(ctx, db, u); err != nil {
		return fmt.Errorf("user add %s: %w", u.Name, err)
	}
	return nil
}

// AddUser adds u (checked by CheckNewUser) with password (may be "" when
// creds is not empty) and creds, with its audit row by actor, in one
// transaction; flags are the flags given, for the row.
func AddUser(ctx context.Context, db *store.DB, actor string, u accounts.User, password string, creds []accounts.StoredCredential, flags []string) error {
	detail := map[string]any{"user": u.Name, "account": u.Account, "flags": flags}
	return Admin(ctx, db, actor, "user add", func(ctx context.Context) (map[string]any, error) {
		return detail, db.AddUserWith(ctx, u, password, creds)
	})
}

// AddRole checks r's grant against the server's limits (GrantSizer) and
// adds it with its audit row, by actor, in one transaction; flags are the
// flags given, for the row.
func (l Layout) AddRole(ctx context.Context, db *store.DB, actor string, r accounts.Role, flags []string, now func() time.Time) error {
	sizer, err := NewGrantSizer(l, now)
	if err != nil {
		return err
	}
	if err := sizer.CheckRole(ctx, db, r, nil); err != nil {
		return fmt.Errorf("role add %s: %w", r.Name, err)
	}
	return Admin(ctx, db, actor, "role add", func(ctx context.Context) (map[string]any, error) {
		return map[string]any{"role": r.Name, "flags": flags}, db.AddRole(ctx, r)
	})
}

// SetRole applies edit to the role called name with its audit row, by
// actor, in one transaction, refused (EditError for the edit itself) when
// the role would be invalid or push a holder over the server's limits;
// it returns the role's holders, whose next logins it applies to.
func (l Layout) SetRole(ctx context.Context, db *store.DB, actor, name string, edit accounts.PermissionEdit, fields []string, now func() time.Time) ([]string, error) {
	sizer, err := NewGrantSizer(l, now)
	if err != nil {
		return nil, err
	}
	var holders []string
	err = Admin(ctx, db, actor, "role set", func(ctx context.Context) (map[string]any, error) {
		err := db.UpdateRole(ctx, name, func(r *accounts.Role) error {
			if err := edit.Apply(&r.Permissions); err != nil {
				return &EditError{err}
			}
			if err := r.Validate(); err != nil {
				return err
			}
			// Refused when it would push any holder over the server's
			// max_payload, naming the holder.
			held, err := db.RoleHolders(ctx, name)
			if err != nil {
				return err
			}
			return sizer.CheckRole(ctx, db, *r, held)
		})
		if err != nil {
			return nil, err
		}
		if holders, err = db.RoleHolders(ctx, name); err != nil {
			return nil, err
		}
		return map[string]any{"role": name, "fields": fields, "holders": len(holders)}, nil
	})
	return holders, err
}

// maxPasswordInput bounds what is read from standard input for a password.
const maxPasswordInput = 64 << 10

// ReadPasswordLine reads a password from the first line of r (a
// command's standard input), without its line ending.
func ReadPasswordLine(r io.Reader) (string, error) {
	br := bufio.NewReader(io.LimitReader(r, maxPasswordInput))
	line, err := br.ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from standard input: %w", err)
	}
	line = strings.TrimSuffix(line, "\n")
	line = strings.TrimSuffix(line, "\r")
	if line == "" {
		return "", errors.New("no password on standard input: pipe one line in, e.g. printf 's3cret-pass\\n' | authrelay user ... --password-stdin")
	}
	return line, nil
}

// Actor names the OS user running a command, for the audit trail: the
// account of the process's user id (current), else $USER (getenv), else
// the user id.
func Actor(current func() (*user.User, error), getenv func(string) string) string {
	if current == nil {
		current = user.Current
	}
	if u, err := current(); err == nil && u.Username != "" {
		return u.Username
	}
	if name := getenv("USER"); name != "" {
		return name
	}
	return fmt.Sprintf("uid:%d", os.Getuid())
}
