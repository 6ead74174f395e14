package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

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
	js                            accounts.JetStreamLimits
}

func (f *limitFlags) register(fs *flag.FlagSet) {
	fs.Int64Var(&f.maxConns, "max-connections", 0, "most connections at once in the account (0 = no limit)")
	fs.Int64Var(&f.maxSubs, "max-subs", 0, "most subscriptions per connection in the account (0 = no limit)")
	fs.Int64Var(&f.maxPayload, "max-payload", 0, "largest message payload in bytes (0 = the server's max_payload)")
	fs.BoolVar(&f.jetstream, "jetstream", false, "enable JetStream in the account (MQTT clients need it; nats.conf needs a jetstream block); --jetstream=false disables it, with its JetStream limits")
	fs.Int64Var(&f.js.MaxMemory, "js-max-memory", 0, "most bytes in the account's memory streams (0 = no limit; needs --jetstream)")
	fs.Int64Var(&f.js.MaxStorage, "js-max-storage", 0, "most bytes in the account's file streams (0 = no limit; needs --jetstream)")
	fs.Int64Var(&f.js.MaxStreams, "js-max-streams", 0, "most streams and KV buckets in the account (0 = no limit; needs --jetstream)")
	fs.Int64Var(&f.js.MaxConsumers, "js-max-consumers", 0, "most consumers in the account (0 = no limit; needs --jetstream)")
}

// edit returns the change the flags give (set holds the names of the flags
// given).
func (f *limitFlags) edit(set map[string]bool) accounts.LimitEdit {
	return accounts.LimitEdit{
		MaxConnections: ifSet(set, "max-connections", f.maxConns),
		MaxSubs:        ifSet(set, "max-subs", f.maxSubs),
		MaxPayload:     ifSet(set, "max-payload", f.maxPayload),
		JetStream:      ifSet(set, "jetstream", f.jetstream),
		JSMaxMemory:    ifSet(set, "js-max-memory", f.js.MaxMemory),
		JSMaxStorage:   ifSet(set, "js-max-storage", f.js.MaxStorage),
		JSMaxStreams:   ifSet(set, "js-max-streams", f.js.MaxStreams),
		JSMaxConsumers: ifSet(set, "js-max-consumers", f.js.MaxConsumers),
	}
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

func limitsText(l accounts.AccountLimits) string { return l.String() }
