// Package accounts owns authrelay's domain: users, their permissions and
// accounts, the issuing keys, and the turning of an authorization decision
// into signed NATS claims. It imports no SQL and no NATS connection.
package accounts

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// MaxNameLen is the longest username, in bytes, that authrelay accepts.
const MaxNameLen = 128

// MaxAccountLen is the longest account name, in bytes, that authrelay accepts.
const MaxAccountLen = 64

// MaxSubjectLen is the longest subject, in bytes, allowed in a permission.
const MaxSubjectLen = 512

// Errors that callers branch on. Store implementations return them so that the
// relay and the command line can tell outcomes apart without knowing the store.
var (
	// ErrInvalidCredentials means the username is unknown or the password is
	// wrong. The two are deliberately indistinguishable.
	ErrInvalidCredentials = errors.New("invalid credentials")
	// ErrStaleCredentials means the password is the user's previous one,
	// replaced and past its grace: a client not yet updated, not a guess.
	// It wraps ErrInvalidCredentials, and is refused the same way, but a
	// lockout never counts it.
	ErrStaleCredentials = fmt.Errorf("%w: the password was replaced", ErrInvalidCredentials)
	// ErrUserDisabled means the user exists and the password matched, but the
	// user is disabled.
	ErrUserDisabled = errors.New("user disabled")
	// ErrUserExpired means the user's own expiry has passed.
	ErrUserExpired = errors.New("user expired")
)

// User is one identity that authrelay can authorise.
type User struct {
	// Name is the username a client sends in its CONNECT.
	Name string `json:"name"`
	// Account is the NATS account the user is placed in.
	Account string `json:"account"`
	// Permissions are the user's publish, subscribe and response permissions.
	Permissions Permissions `json:"permissions"`
	// Disabled users are refused on their next connect.
	Disabled bool `json:"disabled"`
	// Expires, when not zero, is the instant after which the user may no
	// longer log in; no issued JWT outlives it.
	Expires time.Time `json:"expires,omitzero"`
	// Roles are the names of the roles whose permissions the user holds in
	// addition to Permissions.
	Roles []string `json:"roles"`
	// Src, when not empty, lists the networks (CIDR prefixes) the user may
	// connect from; the relay checks the client's address against them.
	Src []string `json:"src"`
	// ConnTypes, when not empty, lists the connection types the user may use:
	// ConnStandard, ConnWebsocket, ConnMQTT, ConnLeafnode.
	ConnTypes []string `json:"conn_types"`
	// Created and Updated are maintained by the store.
	Created time.Time `json:"created,omitzero"`
	Updated time.Time `json:"updated,omitzero"`
	// Grace, set only by a login that used the user's previous password
	// within its grace ('user passwd --grace'), is when that password stops
	// working; Expires is then no later than it, so that the JWT and the
	// connection end with it.
	Grace time.Time `json:"-"`
}

// Permissions are the subject permissions written into a user JWT.
type Permissions struct {
	Pub Rule `json:"pub"`
	Sub Rule `json:"sub"`
	// Resp, when set, lets the user publish to reply subjects of requests it
	// received, even where Pub does not allow them.
	Resp *ResponsePermission `json:"resp,omitempty"`
}

// Rule is an allow and a deny list of subjects. Deny wins over allow, and
// only an allow grants: once a user's roles and own rules are merged, a
// direction with no allow permits nothing (see Scope).
type Rule struct {
	Allow []string `json:"allow"`
	Deny  []string `json:"deny"`
}

// AllSubjects is the subject that matches every subject: an allow of it
// grants a direction entirely ("--pub '>'").
const AllSubjects = ">"

// Scope is what one direction of a user's merged permissions lets it do,
// as the relay issues it.
type Scope string

// The scopes of a direction.
const (
	// ScopeNothing: the rule allows no subject, so the direction is closed
	// (a direction nobody granted permits nothing).
	ScopeNothing Scope = "nothing"
	// ScopeLimited: only the allowed subjects, less the denied ones.
	ScopeLimited Scope = "limited"
	// ScopeAnything: the rule allows '>', so every subject, less the denied
	// ones.
	ScopeAnything Scope = "anything"
)

// Scope says what r lets a user do in its direction. Only an allow grants:
// a rule with no allow, whatever it denies, permits nothing.
func (r Rule) Scope() Scope {
	switch {
	case len(r.Allow) == 0:
		return ScopeNothing
	case slices.Contains(r.Allow, AllSubjects):
		return ScopeAnything
	}
	return ScopeLimited
}

// ResponsePermission limits how many replies a user may send to a request it
// received (MaxMsgs; 0 means nats-server's default of one, negative means no
// limit) and for how long (TTL; 0 means the server's default of two minutes).
type ResponsePermission struct {
	MaxMsgs int           `json:"max"`
	TTL     time.Duration `json:"ttl"`
}

// Validate reports the first problem with the user's fields, or nil.
func (u User) Validate() error {
	if err := ValidateName(u.Name); err != nil {
		return err
	}
	if err := ValidateAccount(u.Account); err != nil {
		return err
	}
	for _, r := range u.Roles {
		if err := ValidateRoleName(r); err != nil {
			return err
		}
	}
	for _, s := range u.Src {
		if _, err := ParseSource(s); err != nil {
			return err
		}
	}
	for _, c := range u.ConnTypes {
		if _, err := ParseConnType(c); err != nil {
			return err
		}
	}
	return u.Permissions.Validate()
}

// Validate reports the first subject that is not a valid NATS subject.
func (p Permissions) Validate() error {
	lists := []struct {
		what string
		subs []string
	}{
		{"publish allow", p.Pub.Allow}, {"publish deny", p.Pub.Deny},
		{"subscribe allow", p.Sub.Allow}, {"subscribe deny", p.Sub.Deny},
	}
	for _, l := range lists {
		for _, s := range l.subs {
			if err := ValidateSubject(s); err != nil {
				return fmt.Errorf("%s subject: %w", l.what, err)
			}
		}
	}
	if p.Resp != nil && p.Resp.TTL < 0 {
		return errors.New("response permission: ttl must not be negative")
	}
	return nil
}

// ValidateName checks a username: not empty, valid UTF-8, at most MaxNameLen
// bytes, and no whitespace or control characters.
func ValidateName(name string) error {
	switch {
	case name == "":
		return errors.New("username is empty: give a name such as alice or orders-svc")
	case len(name) > MaxNameLen:
		return fmt.Errorf("username is %d bytes long: the limit is %d", len(name), MaxNameLen)
	case !utf8.ValidString(name):
		return errors.New("username is not valid UTF-8")
	}
	for _, r := range name {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == utf8.RuneError {
			return fmt.Errorf("username %q contains whitespace or a control character: use letters, digits and punctuation only", name)
		}
	}
	return nil
}

// ValidateAccount checks an account name. Account names are written into the
// server config, so they are limited to ASCII letters, digits, '_' and '-',
// and must start with a letter.
func ValidateAccount(name string) error {
	switch {
	case name == "":
		return errors.New("account name is empty: give one such as APP")
	case len(name) > MaxAccountLen:
		return fmt.Errorf("account name is %d bytes long: the limit is %d", len(name), MaxAccountLen)
	}
	for i, r := range name {
		letter := (r >= 'A' && r <= 'Z') || (r >= 'a' && r <= 'z')
		if i == 0 && !letter {
			return fmt.Errorf("account name %q must start with a letter", name)
		}
		if !letter && !(r >= '0' && r <= '9') && r != '_' && r != '-' {
			return fmt.Errorf("account name %q may contain only letters, digits, '_' and '-'", name)
		}
	}
	switch strings.ToUpper(name) {
	case "$G", "$SYS":
		return fmt.Errorf("account name %q is reserved by nats-server", name)
	}
	return nil
}

// ValidateSubject checks that s is a valid NATS subject or wildcard subject:
// non-empty dot-separated tokens, no whitespace, '*' and '>' only as whole
// tokens and '>' only last. The templates {{name}} and {{account}} may appear
// inside tokens; any other use of "{{" is refused.
func ValidateSubject(s string) error {
	if err := checkTemplates(s); err != nil {
		return err
	}
	if s == "" {
		return errors.New("subject is empty")
	}
	if len(s) > MaxSubjectLen {
		return fmt.Errorf("subject is %d bytes long: the limit is %d", len(s), MaxSubjectLen)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("subject %q is not valid UTF-8", s)
	}
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return fmt.Errorf("subject %q contains whitespace or a control character", s)
		}
	}
	tokens := strings.Split(s, ".")
	for i, tok := range tokens {
		switch {
		case tok == "":
			return fmt.Errorf("subject %q has an empty token: remove the doubled, leading or trailing '.'", s)
		case tok == ">" && i != len(tokens)-1:
			return fmt.Errorf("subject %q has '>' before the last token: '>' may only end a subject", s)
		case len(tok) > 1 && strings.ContainsAny(tok, "*>"):
			return fmt.Errorf("subject %q has a wildcard inside a token: '*' and '>' must stand alone between dots", s)
		}
	}
	return nil
}

// Check decides whether u may log in at now: it returns ErrUserDisabled or
// ErrUserExpired, or nil. The password must already have been verified.
func (u User) Check(now time.Time) error {
	if u.Disabled {
		return ErrUserDisabled
	}
	if !u.Expires.IsZero() && !now.Before(u.Expires) {
		return ErrUserExpired
	}
	return nil
}

// UserChange is one row of the store's user change feed, which relays read
// to close the connections of users that changed.
type UserChange struct {
	// ID orders the feed.
	ID int64
	// User is the user it concerns.
	User string
	// Time is when it was committed, in whole seconds, on the clock of the
	// database's host (RecentUserChanges only).
	Time time.Time
	// Quiet is a change that closes no connection (a password replaced
	// with a grace: its connections last until the grace ends).
	Quiet bool
	// BeforeID and Before, for the end of a grace, limit the change to the
	// connections granted before the change BeforeID, or connected before
	// Before: those of the previous password, not of the new one.
	BeforeID int64
	Before   time.Time
}
