package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/store"
)

const userPasswdUsage = `
Usage: authrelay user passwd NAME (--password-stdin | --generate-password) [--grace DURATION]

Sets a user's password. It applies from the user's next connect, and a
running 'authrelay serve' closes the user's open connections within a
second, so clients must reconnect with the new password.

--grace DURATION rotates without downtime: the previous password keeps
working for that long (at most 168h), and no connection is closed
before it ends; logins with it get a JWT that ends with the grace. When the grace
ends, serve closes the connections made before the change (those of the
previous password), not those of the new one. Either way, a client still
trying the previous password later is refused as a wrong password but
never locks the user out: authrelay knows it is stale, not a guess.

Examples:

  printf 'n3w-pass\n' | authrelay user passwd alice --password-stdin
  authrelay user passwd billing-svc --generate-password --grace 10m
`

func (m *Main) runUserPasswd(ctx context.Context, args []string) error {
	fs := m.newFlagSet("user passwd", userPasswdUsage)
	dir := m.dirFlag(fs)
	pwStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input")
	generate := fs.Bool("generate-password", false, "generate a strong password and print it once")
	grace := fs.Duration("grace", 0, "keep the previous password working for this long (at most 168h), and its connections open until then")
	db, name, err := m.parseNamed(ctx, fs, args, dir, oneName, "passwd")
	if err != nil {
		return err
	}
	defer db.Close()
	if *grace < 0 || *grace > store.MaxPasswordGrace {
		return usagef("--grace %v: give 0 to %v", *grace, store.MaxPasswordGrace)
	}
	if _, err := db.User(ctx, name); err != nil {
		return userError(err, name, db, ctx)
	}
	pw, err := m.newPassword(ctx, db, name, *pwStdin, *generate)
	if err != nil {
		return err
	}
	if err := m.admin(ctx, db, "user passwd", func(ctx context.Context) (map[string]any, error) {
		return map[string]any{"user": name, "grace": grace.String()}, db.SetPasswordGrace(ctx, name, pw, *grace)
	}); err != nil {
		return userError(err, name, db, ctx)
	}
	if *grace > 0 {
		fmt.Fprintf(m.Stdout, "password of %s changed; the previous one works until %s, and its connections close then\n",
			name, m.Now().Add(*grace).UTC().Format(time.RFC3339))
	} else {
		fmt.Fprintf(m.Stdout, "password of %s changed\n", name)
	}
	if *generate {
		fmt.Fprintf(m.Stdout, "password: %s\n(shown once: store it now)\n", pw)
	}
	return nil
}

// newPassword reads or generates the new password of the user called name
// (password) and holds one the admin chose to the password policy
// (store.CheckNewPassword, at the database's minimum length).
func (m *Main) newPassword(ctx context.Context, db *store.DB, name string, fromStdin, generate bool) (string, error) {
	pw, err := m.password(fromStdin, generate)
	if err != nil || generate {
		return pw, err
	}
	if err := db.CheckPasswordOf(ctx, name, pw); errors.Is(err, store.ErrWeakPassword) {
		return "", &usageError{msg: fmt.Sprintf("password of %s: %v; nothing changed", name, err)}
	} else if err != nil {
		return "", err
	}
	return pw, nil
}

// password obtains a new password from standard input, the generator or a
// terminal prompt.
func (m *Main) password(fromStdin, generate bool) (string, error) {
	switch {
	case fromStdin && generate:
		return "", usagef("give either --password-stdin or --generate-password, not both")
	case generate:
		return deploy.RandomPassword(), nil
	case fromStdin:
		return deploy.ReadPasswordLine(m.Stdin)
	case m.ReadPassword != nil:
		pw, err := m.ReadPassword("Password: ")
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		again, err := m.ReadPassword("Repeat password: ")
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		if pw != again {
			return "", errors.New("the two passwords differ: nothing changed, try again")
		}
		if pw == "" {
			return "", errors.New("empty password: nothing changed")
		}
		return pw, nil
	default:
		return "", usagef("no password given: pipe it in with --password-stdin (printf 'pass\\n' | authrelay user ... --password-stdin), or use --generate-password; passwords are never taken from flags")
	}
}
