package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/store"
)

const userUsage = `
Usage: authrelay user <subcommand> [flags] [NAME]

Subcommands:

  add NAME      create a user
  set NAME      change a user's account, roles, permissions or constraints
  list          list users
  show NAME     show one user as stored
  explain NAME  show what the relay would issue for the user right now
  passwd NAME   set a user's password
  disable NAME  refuse the user's next logins
  enable NAME   allow the user to log in again
  rm NAME       remove a user
  unlock NAME   lift lockouts after repeated failed logins (--addr for an address, both for a pair)
  lockouts      list what is locked out now, and why

Changes take effect on the user's next connect; the server needs no reload.
They are safe while 'authrelay serve' runs. Passwords are read from standard
input (--password-stdin) or a no-echo prompt, never from a flag.

Examples:

  printf 's3cret-pass\n' | authrelay user add alice --account APP --password-stdin \
      --pub 'orders.>' --sub 'orders.>' --sub '_INBOX.>'
  authrelay user add billing-svc --generate-password --pub 'billing.>'
  authrelay user list --json
  authrelay user disable alice
`

func (m *Main) runUser(ctx context.Context, args []string) error {
	return m.dispatch(ctx, "user", userUsage, []subcommand{
		{[]string{"add"}, m.runUserAdd},
		{[]string{"set"}, m.runUserSet},
		{[]string{"explain"}, m.runUserExplain},
		{[]string{"list", "ls"}, m.runUserList},
		{[]string{"show"}, m.runUserShow},
		{[]string{"passwd"}, m.runUserPasswd},
		{[]string{"disable"}, func(ctx context.Context, args []string) error { return m.runUserSetDisabled(ctx, args, true) }},
		{[]string{"enable"}, func(ctx context.Context, args []string) error { return m.runUserSetDisabled(ctx, args, false) }},
		{[]string{"rm", "remove"}, m.runUserRemove},
		{[]string{"unlock"}, m.runUserUnlock},
		{[]string{"lockouts"}, m.runUserLockouts},
	}, args)
}

// openStore opens the database of an initialised directory, in cluster
// mode attached to its cluster log; see deploy.Layout.OpenStore.
func (m *Main) openStore(ctx context.Context, dir string) (*store.DB, error) {
	db, err := deploy.Layout{Dir: dir}.OpenStore(ctx, deploy.StoreOptions{Getenv: m.Getenv, Name: "authrelay",
		Warn: func(msg string) { fmt.Fprintf(m.Stderr, "authrelay: warning: %s\n", msg) }})
	if err != nil {
		return nil, err
	}
	db.Now = m.Now
	return db, nil
}

// oneName returns the single NAME argument of a user subcommand.
func oneName(cmd string, pos []string) (string, error) {
	switch len(pos) {
	case 0:
		return "", usagef("user %s: give the user's NAME", cmd)
	case 1:
		if err := accounts.ValidateName(pos[0]); err != nil {
			return "", &usageError{msg: err.Error()}
		}
		return pos[0], nil
	default:
		return "", usagef("user %s: give one NAME, got %d arguments %q", cmd, len(pos), pos)
	}
}

// permFlags are the permission flags shared by user commands.
type permFlags struct {
	pub, sub, denyPub, denySub stringList
	allowResponses             bool
	respMax                    int
	respTTL                    time.Duration
}

func (p *permFlags) register(fs *flag.FlagSet) {
	fs.Var(&p.pub, "pub", "subject the user may publish to (repeatable, wildcards allowed), e.g. 'orders.>'; '>' is every subject, and with no --pub (own or from a role) the user may publish nothing")
	fs.Var(&p.sub, "sub", "subject the user may subscribe to (repeatable), e.g. '_INBOX.>'; '>' is every subject, and with no --sub (own or from a role) the user may subscribe to nothing")
	fs.Var(&p.denyPub, "deny-pub", "subject the user may never publish to (repeatable; wins over --pub)")
	fs.Var(&p.denySub, "deny-sub", "subject the user may never subscribe to (repeatable; wins over --sub)")
	fs.BoolVar(&p.allowResponses, "allow-responses", false, "let the user reply to requests it receives, whatever --pub allows")
	fs.IntVar(&p.respMax, "resp-max", 0, "with --allow-responses: replies allowed per request (0 = one)")
	fs.DurationVar(&p.respTTL, "resp-ttl", 0, "with --allow-responses: how long a reply is allowed (0 = no limit)")
}

// edit returns the permission change the flags give: set holds the names
// of the flags given, c the clear flags (zero on add).
func (p *permFlags) edit(set map[string]bool, c clearFlags) accounts.PermissionEdit {
	return accounts.PermissionEdit{
		Pub: ifSet(set, "pub", []string(p.pub)), Sub: ifSet(set, "sub", []string(p.sub)),
		DenyPub: ifSet(set, "deny-pub", []string(p.denyPub)), DenySub: ifSet(set, "deny-sub", []string(p.denySub)),
		AllowResponses: ifSet(set, "allow-responses", p.allowResponses),
		RespMax:        ifSet(set, "resp-max", p.respMax), RespTTL: ifSet(set, "resp-ttl", p.respTTL),
		ClearPub: c.pub, ClearSub: c.sub, ClearDenyPub: c.denyPub, ClearDenySub: c.denySub, ClearResp: c.resp,
	}
}

// ifSet returns &v when the flag name was given (set holds the names of
// the flags given), else nil: a field of an accounts edit.
func ifSet[T any](set map[string]bool, name string, v T) *T {
	if !set[name] {
		return nil
	}
	return &v
}

// userError turns store errors into messages that say what to do.
func userError(err error, name string, db *store.DB, ctx context.Context) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("user %q not found: see 'authrelay user list'", name)
	case errors.Is(err, store.ErrExists):
		return fmt.Errorf("user %q already exists: change it with 'authrelay user passwd' or remove it with 'authrelay user rm' first", name)
	case errors.Is(err, accounts.ErrUnknownRole):
		return fmt.Errorf("%v: create it with 'authrelay role add', see 'authrelay role list'", err)
	case errors.Is(err, store.ErrUnknownAccount):
		names, _ := db.Accounts(ctx)
		return fmt.Errorf("%v: known accounts are %s", err, strings.Join(names, ", "))
	}
	return err
}

// editError is deploy's EditError, the admin's input, as a usage error
// (prefixed with cmd when not ""); other errors as they are.
func editError(err error, cmd string) error {
	var ee *deploy.EditError
	if !errors.As(err, &ee) {
		return err
	}
	if cmd != "" {
		return usagef("%s: %v", cmd, err)
	}
	return &usageError{msg: err.Error()}
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func nonNilRule(r accounts.Rule) accounts.Rule {
	if r.Allow == nil {
		r.Allow = []string{}
	}
	if r.Deny == nil {
		r.Deny = []string{}
	}
	return r
}

func orAny(l []string) string {
	if len(l) == 0 {
		return "any"
	}
	return strings.Join(l, ",")
}

func status(v userView) string {
	if v.Disabled {
		return "disabled"
	}
	return "enabled"
}

func expiresText(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.Format(time.RFC3339)
}

func ruleText(r accounts.Rule) string {
	s := listText(r.Allow)
	if len(r.Deny) > 0 {
		s += " deny:" + strings.Join(r.Deny, ",")
	}
	return s
}

func listText(l []string) string {
	if len(l) == 0 {
		return "-"
	}
	return strings.Join(l, ",")
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	// Subjects hold '>' and names may hold '&': printed as they are, not
	// as \u003e, for jq and for people.
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
