package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/store"
)

func (m *Main) runAccountAdd(ctx context.Context, args []string) error {
	fs := m.newFlagSet("account add", `
Usage: authrelay account add NAME [--max-connections N] [--max-subs N] [--max-payload BYTES]
                             [--jetstream [--js-max-memory BYTES] [--js-max-storage BYTES]
                              [--js-max-streams N] [--js-max-consumers N]] [--nsc KEYDIR]

Creates an application account, writes it to DIR/accounts.conf and has the
servers reload it (see 'authrelay account -h'). Users can be placed in it
at once; they can log in once the server has reloaded. In a directory
managed with nsc, --nsc takes the account's signing key from an nsc export.

Examples:

  authrelay account add ORDERS
  authrelay account add BULK --max-payload 8388608
  authrelay account add IOT --jetstream --js-max-storage 1073741824 --js-max-streams 20
`)
	dir := m.dirFlag(fs)
	var rf reloadFlags
	rf.register(fs)
	var lf limitFlags
	lf.register(fs)
	nsc := fs.String("nsc", "", "an nsc key export holding the account's signing key (directories managed with nsc)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	name, err := oneAccount("add", pos)
	if err != nil {
		return err
	}
	a := accounts.Account{Name: name}
	if err := lf.edit(setFlags(fs)).Apply(&a); err != nil {
		return &usageError{msg: err.Error()}
	}
	l := deploy.Layout{Dir: *dir}
	if err := l.CheckJetStreamConf(a); err != nil {
		return err
	}
	db, err := m.openStore(ctx, *dir)
	if err != nil {
		return err
	}
	defer db.Close()
	if *nsc != "" {
		if err := l.ImportNscAccount(a, *nsc); err != nil {
			return err
		}
	}
	err = m.adminAccounts(ctx, l, db, "account add", func(ctx context.Context) (map[string]any, error) {
		return map[string]any{"account": name, "limits": a.Limits, "jetstream": a.JetStream, "jetstream_limits": a.JetStreamLimits}, db.AddAccountWithLimits(ctx, a)
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
                             [--jetstream[=false]] [--js-max-memory BYTES] [--js-max-storage BYTES]
                             [--js-max-streams N] [--js-max-consumers N]

Changes an account's limits; flags not given stay as they are, 0 removes a
limit. The --js-max-* limits need JetStream in the account (--jetstream, now
or before); --jetstream=false removes them with JetStream. The servers reload accounts.conf, as after 'account add'.

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
	edit := lf.edit(setFlags(fs))
	if edit.Empty() {
		return usagef("account set: give at least one of --max-connections, --max-subs, --max-payload, --jetstream, --js-max-*")
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
	if err := edit.Apply(&a); err != nil {
		return &usageError{msg: err.Error()}
	}
	l := deploy.Layout{Dir: *dir}
	if err := l.CheckJetStreamConf(a); err != nil {
		return err
	}
	if err := m.adminAccounts(ctx, l, db, "account set", func(ctx context.Context) (map[string]any, error) {
		return map[string]any{"account": name, "limits": a.Limits, "jetstream": a.JetStream, "jetstream_limits": a.JetStreamLimits}, db.UpdateAccount(ctx, a)
	}); err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "account %s limits: %s; jetstream %s\n", name, limitsText(a.Limits), a.JetStreamText("disabled"))
	return m.reload(ctx, m.Stdout, l, rf)
}
