package main

import (
	"fmt"
	"slices"

	"github.com/nats-io/nats-server/v2/server"
)

// reservedAccounts returns the accounts authrelay never places a user in and
// never creates: the callout account (authorization.auth_callout.account,
// where the server publishes every login request, passwords included) and
// the system account (system_account, $SYS when unset) of the server config
// the relay serves, DIR/nats.conf. A separate nats-server must run that same
// file. serve gives the list to the relay, and the admin commands that name
// an account check against it (checkAccountNotReserved), so both refuse the
// same names whatever the config calls them.
func reservedAccounts(l Layout) ([]string, error) {
	if !l.initialised() {
		return nil, notInitialised(l.Dir)
	}
	path := l.Path(serverConf)
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the callout and system accounts from %s: %w: authrelay must know them to never place a user in them; fix the file (authrelay doctor --offline --dir %s)", path, err, l.Dir)
	}
	return reservedFromOptions(opts), nil
}

// reservedFromOptions is reservedAccounts for a parsed server config.
func reservedFromOptions(o *server.Options) []string {
	var out []string
	if ac := o.AuthCallout; ac != nil {
		if ac.Account != "" {
			out = append(out, ac.Account)
		} else {
			// Without an account the requests go to the global account.
			out = append(out, server.DEFAULT_GLOBAL_ACCOUNT)
		}
	}
	sys := o.SystemAccount
	if sys == "" {
		sys = server.DEFAULT_SYSTEM_ACCOUNT
	}
	if !slices.Contains(out, sys) {
		out = append(out, sys)
	}
	return out
}

// reservedHint follows a store.ErrReservedAccount refusal: the store refuses
// the reserved accounts (openDatabase gives it those of nats.conf), and the
// command line says why and what to do instead.
const reservedHint = "a user in it could read every login request or control the server: give an application account"

// checkAccountNotReserved refuses acct when it is one of reserved, with what
// to do instead, for a flag checked before anything is read or written.
func checkAccountNotReserved(acct string, reserved []string) error {
	if slices.Contains(reserved, acct) {
		return usagef("account %q is reserved: it is the callout or system account of nats.conf; %s", acct, reservedHint)
	}
	return nil
}

// checkAccountNotReservedIn is checkAccountNotReserved against the reserved
// accounts of l's nats.conf.
func checkAccountNotReservedIn(l Layout, acct string) error {
	reserved, err := reservedAccounts(l)
	if err != nil {
		return err
	}
	return checkAccountNotReserved(acct, reserved)
}
