package store

import (
	"bufio"
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The bounds of the shortest password an admin may set.
const (
	// DefaultMinPasswordLen is the shortest password, in characters, an
	// admin may give a user unless MinPasswordLen says otherwise: 8, NIST
	// SP 800-63B's minimum for a password a person chooses.
	DefaultMinPasswordLen = 8
	// MaxMinPasswordLen is the highest that minimum may be set: 64, the
	// length NIST SP 800-63B asks every system to accept.
	MaxMinPasswordLen = 64
)

// settingMinPasswordLen is the settings key of the shortest password.
const settingMinPasswordLen = "min_password_length"

//go:embed common_passwords.txt
var commonPasswordsText string

// commonPasswords is the set of common_passwords.txt.
var commonPasswords = func() map[string]bool {
	set := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(commonPasswordsText))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			set[l] = true
		}
	}
	return set
}()

// ErrWeakPassword means a password an admin gave is refused by the password
// policy: too short, one of the most common, a run such as 12345678 or
// aaaaaaaa, or the user's own name.
var ErrWeakPassword = errors.New("password refused by the password policy")

// CheckNewPassword reports why password may not be set as the password of
// the user called name under a policy of minLen characters at the least, or
// nil. It applies to passwords an admin chooses (user add, user passwd),
// not to credentials brought in by import, which services already use:
// NIST SP 800-63B §3.1.1.2 asks for a minimum length and a check against
// the most used and the context's own words, and for nothing else (no
// composition rules).
func CheckNewPassword(name, password string, minLen int) error {
	if err := ValidatePassword(password); err != nil {
		return err
	}
	n := utf8.RuneCountInString(password)
	if n < minLen {
		return fmt.Errorf("%w: it is %d characters long, the minimum is %d: choose a longer one, such as a few unrelated words, or use --generate-password", ErrWeakPassword, n, minLen)
	}
	lower := strings.ToLower(password)
	switch {
	case commonPasswords[lower], commonPasswords[strings.TrimRightFunc(lower, notLetter)]:
		return fmt.Errorf("%w: it is one of the most used passwords, the first an attacker tries: choose another, or use --generate-password", ErrWeakPassword)
	case isRun(lower):
		return fmt.Errorf("%w: it is one character repeated or a sequence such as 12345678 or abcdefgh: choose another, or use --generate-password", ErrWeakPassword)
	case strings.EqualFold(password, name):
		return fmt.Errorf("%w: it is the user's own name: choose another, or use --generate-password", ErrWeakPassword)
	}
	return nil
}

// notLetter tells digits, punctuation and symbols, which people add to the
// end of a common password ("password2026!").
func notLetter(r rune) bool { return !unicode.IsLetter(r) }

// isRun reports whether s is one rune repeated, or each rune one above or one
// below the one before it.
func isRun(s string) bool {
	rs := []rune(s)
	if len(rs) < 2 {
		return false
	}
	same, up, down := true, true, true
	for i := 1; i < len(rs); i++ {
		d := rs[i] - rs[i-1]
		same, up, down = same && d == 0, up && d == 1, down && d == -1
	}
	return same || up || down
}

// MinPasswordLen returns the shortest password, in characters, an admin may
// set, as stored in the database, or DefaultMinPasswordLen.
func (db *DB) MinPasswordLen(ctx context.Context) (int, error) {
	var value string
	err := db.q(ctx).QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, settingMinPasswordLen).Scan(&value)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return DefaultMinPasswordLen, nil
	case err != nil:
		return 0, fmt.Errorf("read minimum password length: %w", err)
	}
	n, err := strconv.Atoi(value)
	if err != nil || n < 1 || n > MaxMinPasswordLen {
		return 0, fmt.Errorf("read minimum password length: stored value %q is not 1 to %d: set it with 'authrelay hash set --min-password-length N'", value, MaxMinPasswordLen)
	}
	return n, nil
}

// SetMinPasswordLen sets the shortest password an admin may set, 1 to
// MaxMinPasswordLen characters. Existing passwords are not checked again.
func (db *DB) SetMinPasswordLen(ctx context.Context, n int) error {
	if n < 1 || n > MaxMinPasswordLen {
		return fmt.Errorf("set minimum password length: %d is not 1 to %d", n, MaxMinPasswordLen)
	}
	tx, err := db.begin(ctx)
	if err != nil {
		return fmt.Errorf("set minimum password length: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO settings (key, value, updated) VALUES (?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated = excluded.updated`,
		settingMinPasswordLen, strconv.Itoa(n), formatTime(db.now())); err != nil {
		return fmt.Errorf("set minimum password length: %w", err)
	}
	return tx.Commit()
}

// CheckPasswordOf holds a password an admin chose for the user called
// name to the policy (CheckNewPassword) at the database's minimum length.
// A password refused is an error wrapping ErrWeakPassword.
func (db *DB) CheckPasswordOf(ctx context.Context, name, password string) error {
	minLen, err := db.MinPasswordLen(ctx)
	if err != nil {
		return err
	}
	if err := CheckNewPassword(name, password, minLen); err != nil && !errors.Is(err, ErrWeakPassword) {
		return fmt.Errorf("%w: %w", ErrWeakPassword, err)
	} else if err != nil {
		return err
	}
	return nil
}
