package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/store"
)

const accountUsage = `
Usage: authrelay account <subcommand> [flags] [NAME]

Subcommands:

  add NAME    create an application account
  list        list accounts with their limits and user counts
  set NAME    change an account's limits
  rm NAME     remove an account that has no users

Accounts live in DIR/accounts.conf, which nats.conf includes. After a change
add, set and rm have the servers reload it, with no restart: they connect
as the system account's admin (to --nats, default the listen address of
DIR/nats.conf) and send each server $SYS.REQ.SERVER.<id>.RELOAD, and say
which servers reloaded. With no server reachable the change waits in
accounts.conf for the server's start or 'authrelay reload'; --no-reload
only writes the file.

Limits are enforced by nats-server for every connection in the account.
nats-server ignores per-user limits in auth callout JWTs, so authrelay sets
limits per account.

Examples:

  authrelay account add ORDERS
  authrelay account add BULK --max-payload 8388608 --max-connections 50
  authrelay account list --json
  authrelay account rm ORDERS
`

func (m *Main) runAccount(ctx context.Context, args []string) error {
	return m.dispatch(ctx, "account", accountUsage, []subcommand{
		{[]string{"add"}, m.runAccountAdd},
		{[]string{"list", "ls"}, m.runAccountList},
		{[]string{"set"}, m.runAccountSet},
		{[]string{"rm", "remove"}, m.runAccountRemove},
	}, args)
}

// limitFlags are the account limit flags.
type limitFlags struct {
	maxConns, maxSubs, maxPayload int64
	jetstream                     bool
}

func (f *limitFlags) register(fs *flag.FlagSet) {
	fs.Int64Var(&f.maxConns, "max-connections", 0, "most connections at once in the account (0 = no limit)")
	fs.Int64Var(&f.maxSubs, "max-subs", 0, "most subscriptions per connection in the account (0 = no limit)")
	fs.Int64Var(&f.maxPayload, "max-payload", 0, "largest message payload in bytes (0 = the server's max_payload)")
	fs.BoolVar(&f.jetstream, "jetstream", false, "enable JetStream in the account (MQTT clients need it; nats.conf needs a jetstream block); --jetstream=false disables it")
}

// apply sets the limits that were given on the command line (set holds the
// names of the flags given).
func (f *limitFlags) apply(a *accounts.Account, set map[string]bool) {
	if set["max-connections"] {
		a.Limits.MaxConnections = f.maxConns
	}
	if set["max-subs"] {
		a.Limits.MaxSubs = f.maxSubs
	}
	if set["max-payload"] {
		a.Limits.MaxPayload = f.maxPayload
	}
	if set["jetstream"] {
		a.JetStream = f.jetstream
	}
}

func given(set map[string]bool) bool {
	return set["max-connections"] || set["max-subs"] || set["max-payload"] || set["jetstream"]
}

// oneAccount returns the single NAME argument of an account subcommand.
func oneAccount(cmd string, pos []string) (string, error) {
	switch len(pos) {
	case 0:
		return "", usagef("account %s: give the account's NAME", cmd)
	case 1:
		if err := deploy.CheckAccountName(pos[0]); err != nil {
			return "", &usageError{msg: err.Error()}
		}
		return pos[0], nil
	default:
		return "", usagef("account %s: give one NAME, got %q", cmd, pos)
	}
}

// accountError says what to do about an account the store does not know.
func accountError(err error, name string) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("account %q not found: see 'authrelay account list'", name)
	}
	return err
}

// syncAccountsConf rewrites accounts.conf from the database.
func syncAccountsConf(ctx context.Context, l deploy.Layout, db *store.DB) error {
	list, err := db.AccountList(ctx)
	if err != nil {
		return err
	}
	if err := deploy.WriteFileAtomic(l.Path(deploy.AccountsConf), deploy.RenderAccountsConf(list), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", deploy.AccountsConf, err)
	}
	return nil
}

func (m *Main) runAccountAdd(ctx context.Context, args []string) error {
	fs := m.newFlagSet("account add", `
Usage: authrelay account add NAME [--max-connections N] [--max-subs N] [--max-payload BYTES]
                             [--jetstream]

Creates an application account, writes it to DIR/accounts.conf and has the
servers reload it (see 'authrelay account -h'). Users can be placed in it
at once; they can log in once the server has reloaded.

Examples:

  authrelay account add ORDERS
  authrelay account add BULK --max-payload 8388608
`)
	dir := m.dirFlag(fs)
	var rf reloadFlags
	rf.register(fs)
	var lf limitFlags
	lf.register(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	name, err := oneAccount("add", pos)
	if err != nil {
		return err
	}
	a := accounts.Account{Name: name}
	lf.apply(&a, setFlags(fs))
	if err := a.Limits.Validate(); err != nil {
		return &usageError{msg: err.Error()}
	}
	db, err := m.openStore(ctx, *dir)
	if err != nil {
		return err
	}
	defer db.Close()
	l := deploy.Layout{Dir: *dir}
	err = m.adminAccounts(ctx, l, db, "account add", func(ctx context.Context) (map[string]any, error) {
		return map[string]any{"account": name, "limits": a.Limits, "jetstream": a.JetStream}, db.AddAccountWithLimits(ctx, a)
	})
	if errors.Is(err, store.ErrExists) && !errors.Is(err, store.ErrCaseTwin) {
		return fmt.Errorf("account %q already exists: see 'authrelay account list'", name)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "added account %s\n", name)
	return m.reload(ctx, m.Stdout, l, rf)
}

func (m *Main) runAccountSet(ctx context.Context, args []string) error {
	fs := m.newFlagSet("account set", `
Usage: authrelay account set NAME [--max-connections N] [--max-subs N] [--max-payload BYTES]
                             [--jetstream[=false]]

Changes an account's limits; flags not given stay as they are, 0 removes a
limit. The servers reload accounts.conf, as after 'account add'.

Example:

  authrelay account set ORDERS --max-subs 500 --max-connections 0
`)
	dir := m.dirFlag(fs)
	var rf reloadFlags
	rf.register(fs)
	var lf limitFlags
	lf.register(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	name, err := oneAccount("set", pos)
	if err != nil {
		return err
	}
	set := setFlags(fs)
	if !given(set) {
		return usagef("account set: give at least one of --max-connections, --max-subs, --max-payload, --jetstream")
	}
	db, err := m.openStore(ctx, *dir)
	if err != nil {
		return err
	}
	defer db.Close()
	a, err := db.Account(ctx, name)
	if err != nil {
		return accountError(err, name)
	}
	lf.apply(&a, set)
	if err := a.Limits.Validate(); err != nil {
		return &usageError{msg: err.Error()}
	}
	l := deploy.Layout{Dir: *dir}
	if err := m.adminAccounts(ctx, l, db, "account set", func(ctx context.Context) (map[string]any, error) {
		detail := map[string]any{"account": name, "limits": a.Limits, "jetstream": a.JetStream}
		if err := db.SetAccountJetStream(ctx, name, a.JetStream); err != nil {
			return nil, err
		}
		return detail, db.SetAccountLimits(ctx, name, a.Limits)
	}); err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "account %s limits: %s; jetstream %s\n", name, limitsText(a.Limits), map[bool]string{true: "enabled", false: "disabled"}[a.JetStream])
	return m.reload(ctx, m.Stdout, l, rf)
}

func (m *Main) runAccountRemove(ctx context.Context, args []string) error {
	fs := m.newFlagSet("account rm", `
Usage: authrelay account rm NAME

Removes an application account. It refuses while users remain in it: move
them with 'authrelay user set NAME --account OTHER' or remove them first.
The servers reload accounts.conf, as after 'account add'.

Example:

  authrelay account rm ORDERS
`)
	dir := m.dirFlag(fs)
	var rf reloadFlags
	rf.register(fs)
	db, name, err := m.parseNamed(ctx, fs, args, dir, oneAccount, "rm")
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Account(ctx, name); err != nil {
		return accountError(err, name)
	}
	l := deploy.Layout{Dir: *dir}
	err = m.adminAccounts(ctx, l, db, "account rm", func(ctx context.Context) (map[string]any, error) {
		return map[string]any{"account": name}, db.RemoveAccount(ctx, name)
	})
	if errors.Is(err, store.ErrAccountInUse) {
		users, _ := db.AccountUsers(ctx, name)
		return fmt.Errorf("account %q still has %d user(s) (%s): move them with 'authrelay user set NAME --account OTHER' or remove them, then try again", name, len(users), strings.Join(users, ", "))
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "removed account %s\n", name)
	return m.reload(ctx, m.Stdout, l, rf)
}

// accountView is an account as list prints it.
type accountView struct {
	accounts.Account
	Users int `json:"users"`
}

func (m *Main) runAccountList(ctx context.Context, args []string) error {
	fs := m.newFlagSet("account list", `
Usage: authrelay account list [--json]

Lists the application accounts with their limits and number of users.

Examples:

  authrelay account list
  authrelay account list --json
`)
	dir := m.dirFlag(fs)
	asJSON := fs.Bool("json", false, "print a JSON array")
	if err := parseNoArgs(fs, args, "account list"); err != nil {
		return err
	}
	db, err := m.openStore(ctx, *dir)
	if err != nil {
		return err
	}
	defer db.Close()
	list, err := db.AccountList(ctx)
	if err != nil {
		return err
	}
	counts, err := db.AccountUserCounts(ctx)
	if err != nil {
		return err
	}
	views := make([]accountView, 0, len(list))
	for _, a := range list {
		views = append(views, accountView{Account: a, Users: counts[a.Name]})
	}
	if *asJSON {
		return writeJSON(m.Stdout, views)
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tUSERS\tJETSTREAM\tLIMITS")
	for _, v := range views {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", v.Name, v.Users, map[bool]string{true: "enabled", false: "-"}[v.JetStream], limitsText(v.Limits))
	}
	return tw.Flush()
}

func limitsText(l accounts.AccountLimits) string { return l.String() }
