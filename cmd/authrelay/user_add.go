package main

import (
	"context"
	"fmt"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/deploy"
)

const userAddUsage = `
Usage: authrelay user add NAME [--account ACCOUNT] (--password-stdin | --generate-password)
                          [--nkey U… | --generate-nkey [--nkey-file FILE]]
                          [--tls-subject DN] [--tls-fingerprint SHA256] [--idp PROVIDER]
                          [--role ROLE]... [permission flags] [--expires TIME]
                          [--src CIDR]... [--conn-type TYPE]...

Creates a user. The password is read from the first line of standard input
(--password-stdin), generated and printed once (--generate-password), or
asked for without echo when standard input is a terminal. A user given an
nkey, a certificate or an identity provider (--idp) needs no password (it
may have both); API tokens are added with 'authrelay token add'.

Only allows grant: a direction (publish, subscribe) that no --pub or --sub
of the user or of its roles allows permits nothing. --pub '>' (or
--sub '>') grants every subject of the account, explicitly.

Examples:

  printf 's3cret-pass\n' | authrelay user add alice --account APP --password-stdin \
      --pub 'orders.>' --sub 'orders.>' --sub '_INBOX.>'
  authrelay user add reporter --generate-password --sub 'metrics.>' --deny-sub 'metrics.secret.>'
  authrelay user add bob --generate-password --role svc --src 10.1.0.0/16 --conn-type STANDARD
  authrelay user add billing-svc --generate-nkey --nkey-file billing.nk --pub 'billing.>'
  authrelay user add ingest --tls-subject 'CN=ingest,O=acme' --pub 'ingest.>'
  authrelay user add alice@example.com --idp corp --role reader
`

func (m *Main) runUserAdd(ctx context.Context, args []string) error {
	fs := m.newFlagSet("user add", userAddUsage)
	dir := m.dirFlag(fs)
	account := fs.String("account", "", "account to place the user in (default: the only application account)")
	pwStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input")
	generate := fs.Bool("generate-password", false, "generate a strong password and print it once")
	expires := fs.String("expires", "never", "when the user stops being able to log in: never, 2027-01-31T18:00:00Z, 2027-01-31 or 720h")
	disabled := fs.Bool("disabled", false, "create the user disabled")
	var pf permFlags
	pf.register(fs)
	var cf constraintFlags
	cf.register(fs)
	var crf credFlags
	crf.register(fs, false)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	name, err := oneName("add", pos)
	if err != nil {
		return err
	}
	if deploy.StaticUser(name) {
		return usagef("user add: %q is a static user of nats.conf (the relay's or the system admin's login); the server would never ask authrelay about it, pick another name", name)
	}
	set := setFlags(fs)
	constraints, err := cf.edit(set)
	if err != nil {
		return err
	}
	perms, err := pf.edit(set, clearFlags{}).New()
	if err != nil {
		return &usageError{msg: err.Error()}
	}
	exp, err := accounts.ParseExpiry(*expires, m.Now())
	if err != nil {
		return &usageError{msg: err.Error()}
	}
	db, err := m.openStore(ctx, *dir)
	if err != nil {
		return err
	}
	defer db.Close()
	acct, err := deploy.DefaultAccount(ctx, db, *account)
	if err != nil {
		return editError(err, "user add")
	}
	u := accounts.User{Name: name, Account: acct, Permissions: perms, Disabled: *disabled, Expires: exp}
	constraints.Apply(&u)
	if err := (deploy.Layout{Dir: *dir}).CheckNewUser(ctx, db, u, m.Now); err != nil {
		return editError(err, "")
	}
	creds, _, seed, err := crf.edit()
	if err != nil {
		return err
	}
	var pw string
	if len(creds) == 0 || *pwStdin || *generate {
		if pw, err = m.newPassword(ctx, db, name, *pwStdin, *generate); err != nil {
			return err
		}
	}
	if err := crf.saveSeed(seed); err != nil {
		return err
	}
	if err := deploy.AddUser(ctx, db, m.actor(), u, pw, creds, changedFlags(set)); err != nil {
		crf.dropSeed()
		return userError(err, name, db, ctx)
	}
	fmt.Fprintf(m.Stdout, "added user %s in account %s\n", name, acct)
	m.handOver(&crf, seed)
	if *generate {
		fmt.Fprintf(m.Stdout, "password: %s\n(shown once: store it now)\n", pw)
	}
	m.noteLogins(ctx, db, *dir, name)
	return nil
}
