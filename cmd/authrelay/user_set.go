package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/store"
)

// constraintFlags are the role and constraint flags of user add and set,
// and the clear flags of set (registerClear).
type constraintFlags struct {
	roles, src, connTypes              stringList
	maxSubs, maxPayload                int64
	clearRoles, clearSrc, clearConnTyp bool
}

func (c *constraintFlags) register(fs *flag.FlagSet) {
	fs.Var(&c.roles, "role", "role the user holds (repeatable); see 'authrelay role list'")
	fs.Var(&c.src, "src", "network the user may connect from, as CIDR or address (repeatable; default any), checked by the relay against the client's address")
	fs.Var(&c.connTypes, "conn-type", "connection type the user may use: STANDARD, WEBSOCKET, MQTT or LEAFNODE (repeatable; default any)")
	fs.Int64Var(&c.maxSubs, "max-subs", 0, "NOT SUPPORTED per user: nats-server 2.15 ignores per-user limits for auth callout users; use 'authrelay account set ACCOUNT --max-subs N'")
	fs.Int64Var(&c.maxPayload, "max-payload", 0, "NOT SUPPORTED per user: nats-server 2.15 ignores per-user limits for auth callout users; use 'authrelay account set ACCOUNT --max-payload N'")
}

func (c *constraintFlags) registerClear(fs *flag.FlagSet) {
	fs.BoolVar(&c.clearRoles, "clear-roles", false, "remove all the user's roles")
	fs.BoolVar(&c.clearSrc, "clear-src", false, "allow connections from any network")
	fs.BoolVar(&c.clearConnTyp, "clear-conn-types", false, "allow every connection type")
}

// edit refuses per-user limits and returns the checked change the flags
// give (set holds the names of the flags given).
func (c *constraintFlags) edit(set map[string]bool) (accounts.ConstraintEdit, error) {
	if set["max-subs"] || set["max-payload"] {
		return accounts.ConstraintEdit{}, usagef("--max-subs and --max-payload cannot be set per user: nats-server ignores the limits in an auth callout user JWT (authrelay's tests measure this), so they would have no effect. Set them on the account instead, e.g. 'authrelay account set APP --max-subs 100', which the server enforces for every connection in it")
	}
	e, err := accounts.ConstraintEdit{
		Roles: ifSet(set, "role", []string(c.roles)), Src: ifSet(set, "src", []string(c.src)),
		ConnTypes:  ifSet(set, "conn-type", []string(c.connTypes)),
		ClearRoles: c.clearRoles, ClearSrc: c.clearSrc, ClearConnTypes: c.clearConnTyp,
	}.Check()
	if err != nil {
		return e, &usageError{msg: err.Error()}
	}
	return e, nil
}

const userSetUsage = `
Usage: authrelay user set NAME [flags]

Changes a user. Each flag given replaces that field (a repeatable flag
replaces the whole list); fields not given stay as they are. Applies from
the user's next connect. The password changes with 'user passwd', the
status with 'user disable|enable'. --nkey, --tls-subject and
--tls-fingerprint add to the user's credentials (--clear-nkeys and
--clear-tls remove them first; a removal closes the user's connections).

Examples:

  authrelay user set bob --role svc --role reader
  authrelay user set bob --account ORDERS --expires 2027-06-30
  authrelay user set bob --src 10.1.0.0/16 --src 192.0.2.7 --conn-type STANDARD
  authrelay user set bob --clear-src --clear-conn-types --expires never
  authrelay user set alice --pub 'orders.>' --deny-pub 'orders.admin.>'
  authrelay user set billing-svc --clear-nkeys --generate-nkey --nkey-file billing.nk
`

func (m *Main) runUserSet(ctx context.Context, args []string) error {
	fs := m.newFlagSet("user set", userSetUsage)
	dir := m.dirFlag(fs)
	account := fs.String("account", "", "move the user to this account")
	expires := fs.String("expires", "", "when the user stops being able to log in: never, 2027-01-31T18:00:00Z, 2027-01-31 or 720h")
	var pf permFlags
	pf.register(fs)
	var clr clearFlags
	clr.register(fs)
	var cf constraintFlags
	cf.register(fs)
	cf.registerClear(fs)
	var crf credFlags
	crf.register(fs, true)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	name, err := oneName("set", pos)
	if err != nil {
		return err
	}
	set := setFlags(fs)
	delete(set, "dir")
	constraints, err := cf.edit(set)
	if err != nil {
		return err
	}
	if len(set) == 0 {
		return usagef("user set: give at least one field to change; see 'authrelay user set -h'")
	}
	perms := pf.edit(set, clr)
	add, clear, seed, err := crf.edit()
	if err != nil {
		return err
	}
	var exp time.Time
	if set["expires"] {
		if exp, err = accounts.ParseExpiry(*expires, m.Now()); err != nil {
			return &usageError{msg: err.Error()}
		}
	}
	if set["account"] {
		if err := accounts.ValidateAccount(*account); err != nil {
			return &usageError{msg: err.Error()}
		}
	}
	db, err := m.openStore(ctx, *dir)
	if err != nil {
		return err
	}
	defer db.Close()
	e := deploy.UserEdit{Name: name, Constraints: constraints, Permissions: perms, ClearCreds: clear, AddCreds: add, Fields: changedFlags(set)}
	if set["account"] {
		e.Account = account
	}
	if set["expires"] {
		e.Expires = &exp
	}
	if err := crf.saveSeed(seed); err != nil {
		return err
	}
	err = (deploy.Layout{Dir: *dir}).SetUser(ctx, db, m.actor(), e, m.Now)
	if err != nil {
		crf.dropSeed()
		if ue := editError(err, ""); ue != err {
			return ue
		}
		return userError(err, name, db, ctx)
	}
	fmt.Fprintf(m.Stdout, "user %s changed; applies from the next connect\n", name)
	m.handOver(&crf, seed)
	m.noteLogins(ctx, db, *dir, name)
	return nil
}

// noteLogins tells the admin, on standard error, what a change just made
// does to the logins of the users named (deploy.Layout.LoginNotes).
func (m *Main) noteLogins(ctx context.Context, db *store.DB, dir string, names ...string) {
	for _, note := range (deploy.Layout{Dir: dir}).LoginNotes(ctx, db, m.Now, names...) {
		fmt.Fprintf(m.Stderr, "authrelay: %s\n", note)
	}
}
