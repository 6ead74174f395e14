package deploy

import (
	"fmt"
	"slices"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/store"
)

// ReservedAccounts returns the accounts authrelay never places a user in and
// never creates: the callout account (authorization.auth_callout.account,
// where the server publishes every login request, passwords included) and
// the system account (system_account, $SYS when unset) of the server config
// the relay serves, DIR/nats.conf. A separate nats-server must run that same
// file. serve gives the list to the relay, OpenDatabase to the store, and
// CheckAccountNotReserved checks a name against it, so all refuse the same
// names whatever the config calls them.
func (l Layout) ReservedAccounts() ([]string, error) {
	if !l.Initialised() {
		return nil, NotInitialised(l.Dir)
	}
	if mode, err := l.Mode(); err != nil {
		return nil, err
	} else if mode == ModeOperator {
		// nats.conf names accounts by public key: the names are the ones
		// 'init --operator' gave them.
		return []string{AuthAccount, SystemAccount}, nil
	}
	path := l.Path(ServerConf)
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the callout and system accounts from %s: %w: authrelay must know them to never place a user in them; fix the file (authrelay doctor --offline --dir %s)", path, err, l.Dir)
	}
	return reservedFromOptions(opts), nil
}

// reservedFromOptions is ReservedAccounts for a parsed server config.
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

// ReservedAccountError is an account name that is one of the reserved
// accounts of a directory's nats.conf. It matches store.ErrReservedAccount,
// the store's refusal of the same names.
type ReservedAccountError struct {
	Account string
}

func (e *ReservedAccountError) Error() string {
	return fmt.Sprintf("account %q is reserved: it is the callout or system account of nats.conf", e.Account)
}

// Is reports whether target is store.ErrReservedAccount.
func (e *ReservedAccountError) Is(target error) bool { return target == store.ErrReservedAccount }

// CheckAccountNotReserved refuses acct with a *ReservedAccountError when
// it is one of the reserved accounts of the directory's nats.conf
// (ReservedAccounts), so that a flag naming an account can be checked
// before anything is read or written.
func (l Layout) CheckAccountNotReserved(acct string) error {
	reserved, err := l.ReservedAccounts()
	if err != nil {
		return err
	}
	if slices.Contains(reserved, acct) {
		return &ReservedAccountError{Account: acct}
	}
	return nil
}

// CheckAccountName refuses, with an ErrInvalid error, a name that is not
// a valid account name or that is one of the fixed accounts of the config
// Init writes (AuthAccount, SystemAccount): the names an application
// account can never take.
func CheckAccountName(name string) error {
	if err := accounts.ValidateAccount(name); err != nil {
		return &invalidError{msg: err.Error()}
	}
	if name == AuthAccount || name == SystemAccount {
		return invalidf("account %q is reserved for authrelay's own use: pick another name", name)
	}
	return nil
}

// StaticUser reports whether name is one of the static users of the config
// Init writes (RelayUser, AdminUser): the server authenticates them itself
// and never asks the relay about them, so no authrelay user can take the
// name.
func StaticUser(name string) bool {
	return name == RelayUser || name == AdminUser
}
