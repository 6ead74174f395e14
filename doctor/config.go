package doctor

import (
	"errors"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/deploy"
)

func (d *checker) checkConfig() {
	path := d.cfg.ConfigPath
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		d.fail("server config", "%s does not exist: run 'authrelay init --dir %s', or give --config FILE for the config the server runs", path, d.cfg.Dir)
		return
	}
	var o server.Options
	if err := o.ProcessConfigFile(path); err != nil {
		var pe interface {
			Errors() []error
			Warnings() []error
		}
		if !errors.As(err, &pe) || len(pe.Errors()) > 0 {
			d.fail("server config", "nats-server would refuse %s: %v ('nats-server -t -c %s' shows the same)", path, err, path)
			return
		}
		for _, w := range pe.Warnings() {
			d.warn("server config", "nats-server warns about %s: %v", path, w)
		}
	}
	d.opts = &o
	d.ok("server config", "%s parses", path)
	d.checkClientCerts(&o)
	if l := (deploy.Layout{Dir: d.cfg.Dir}); len(o.TrustedOperators) > 0 {
		d.checkOperator(l, &o)
		return
	}

	problems := deploy.CheckCallout(o.AuthCallout, d.issuerPub, d.xkeyPub)
	if p, ok := calloutProblem(problems, "auth_callout"); ok {
		// The message reads on from the file's name: "FILE has no …".
		d.fail("auth_callout", "%s has %s", path, p)
		return
	}
	ac := o.AuthCallout
	d.checkIssuer(ac, problems)
	d.checkXKey(ac, problems)
	d.checkCalloutAccount(&o, problems)
	d.checkNonce(&o)
	d.checkAppAccounts(&o)
	d.checkAllowedAccounts(&o)
	d.checkSystemAccount(&o)
	d.checkAuthTimeout(&o)
	d.checkJetStream(&o)
}

// calloutProblem returns the message of the problem with field, if any.
func calloutProblem(problems []deploy.CalloutProblem, field string) (string, bool) {
	for _, p := range problems {
		if p.Field == field {
			return p.Message, true
		}
	}
	return "", false
}

func (d *checker) checkIssuer(ac *server.AuthCallout, problems []deploy.CalloutProblem) {
	const check = "issuer"
	if p, ok := calloutProblem(problems, "issuer"); ok {
		d.fail(check, "%s", p)
		return
	}
	if d.issuerPub == "" {
		d.warn(check, "auth_callout.issuer is %s; not compared: secrets.json could not be read", ac.Issuer)
		return
	}
	d.ok(check, "auth_callout.issuer %s is the relay's issuer key", ac.Issuer)
}

func (d *checker) checkXKey(ac *server.AuthCallout, problems []deploy.CalloutProblem) {
	const check = "xkey"
	if p, ok := calloutProblem(problems, "xkey"); ok {
		d.fail(check, "%s", p)
		return
	}
	if d.xkeyPub == "" {
		d.warn(check, "auth_callout.xkey is %s; not compared: secrets.json could not be read", ac.XKey)
		return
	}
	d.ok(check, "auth_callout.xkey %s is the relay's: login requests are sealed to it", ac.XKey)
}

// staticUsers returns the statically configured users (and nkey users) of
// each account; users outside any account are under server.DEFAULT_GLOBAL_ACCOUNT.
func staticUsers(o *server.Options) map[string][]string {
	m := map[string][]string{}
	for _, u := range o.Users {
		acc := server.DEFAULT_GLOBAL_ACCOUNT
		if u.Account != nil {
			acc = u.Account.Name
		}
		m[acc] = append(m[acc], u.Username)
	}
	for _, u := range o.Nkeys {
		acc := server.DEFAULT_GLOBAL_ACCOUNT
		if u.Account != nil {
			acc = u.Account.Name
		}
		m[acc] = append(m[acc], u.Nkey)
	}
	return m
}

// configAccounts returns the names of the accounts the config defines.
func configAccounts(o *server.Options) []string {
	var names []string
	for _, a := range o.Accounts {
		names = append(names, a.Name)
	}
	return names
}

func (d *checker) checkCalloutAccount(o *server.Options, found []deploy.CalloutProblem) {
	ac := o.AuthCallout
	acct := ac.Account
	p, unset := calloutProblem(found, "account")
	switch {
	case unset:
		d.fail("callout account", "%s", p)
		return
	case !slices.Contains(configAccounts(o), acct):
		d.fail("callout account", "auth_callout.account %q is not defined under accounts: add it with only the relay's user, as 'authrelay init' writes it", acct)
		return
	case acct == o.SystemAccount:
		d.fail("callout account", "auth_callout.account %q is the system account: use a dedicated account such as %s holding only the relay's user", acct, deploy.AuthAccount)
		return
	}
	if _, reserved := d.storeAccounts[acct]; reserved && d.storeAccounts != nil {
		d.fail("callout account", "authrelay's database has an account %q, the callout account: users placed there could read other users' login requests; move them ('authrelay user set NAME --account …') and remove the account", acct)
	}
	users := staticUsers(o)[acct]
	intruders := 0
	for _, u := range users {
		if !slices.Contains(ac.AuthUsers, u) && !deniedEverything(o, u) {
			intruders++
			d.fail("callout account", "user %q in the callout account %s could read other users' passwords (it may subscribe to the login requests); remove it from %s's users: only the relay's user belongs there", u, acct, acct)
		}
	}
	if intruders == 0 {
		d.ok("callout account", "%s is a dedicated callout account holding only %s", acct, strings.Join(quote(users), ", "))
	}

	// auth_users: the relay's user must be one, in the callout account.
	const check = "auth_users"
	var problems bool
	relay := deploy.RelayUser
	if d.secrets != nil {
		relay = d.secrets.RelayUser
	}
	if !slices.Contains(ac.AuthUsers, relay) {
		problems = true
		d.fail(check, "auth_callout.auth_users %v lacks the relay's user %q (relay_user in secrets.json): the relay's own login would be sent to the callout, which nobody answers; add it", ac.AuthUsers, relay)
	} else if !slices.Contains(users, relay) {
		problems = true
		d.fail(check, "the relay's user %q is not a user of the callout account %s: the relay would not receive the login requests; define it under accounts { %s { users } }", relay, acct, acct)
	}
	for _, u := range ac.AuthUsers {
		if u == relay {
			continue
		}
		problems = true
		if slices.Contains(users, u) {
			d.warn(check, "auth user %q is in the callout account %s next to the relay: it can read every login request; keep it only if it is another relay", u, acct)
		} else {
			d.warn(check, "auth user %q is not a user of the callout account %s: it skips the callout and logs in with its static password wherever it is defined; remove it from auth_users", u, acct)
		}
	}
	if !problems {
		d.ok(check, "auth_callout.auth_users is the relay's user %q", relay)
	}
}

// deniedEverything reports whether name is an nkey user of o that may
// neither publish nor subscribe (deny '>' both ways, no allow), such as
// the nonce key 'authrelay init' writes into the callout account: it reads
// nothing there.
func deniedEverything(o *server.Options, name string) bool {
	for _, u := range o.Nkeys {
		if u.Nkey != name {
			continue
		}
		p := u.Permissions
		return p != nil && p.Publish != nil && p.Subscribe != nil &&
			len(p.Publish.Allow) == 0 && len(p.Subscribe.Allow) == 0 &&
			slices.Contains(p.Publish.Deny, ">") && slices.Contains(p.Subscribe.Deny, ">")
	}
	return false
}

// checkClientCerts checks that a server whose users log in with client
// certificates verifies them: the relay reads only the chains the server
// verified, so without tls verify those users cannot log in.
func (d *checker) checkClientCerts(o *server.Options) {
	const check = "client certificates"
	switch n := len(d.certUsers); {
	case o.TLSVerify:
		d.ok(check, "tls verify is on: every client presents a certificate of the CA in ca_file; users bound to one: %s", accounts.Plural(n, "user"))
	case n > 0:
		d.fail(check, "%s with a client certificate binding, but the server does not verify client certificates, so they cannot log in: add ca_file and verify: true to nats.conf's tls block ('authrelay init --tls-client-ca' writes them), then restart the server", accounts.Plural(n, "user"))
	}
}

// checkNonce checks that the server sends clients a nonce, which nkey
// logins through the relay sign: nats-server sends one only when its
// config has an nkey user (in config mode; a trusted operator always has
// nonces).
func (d *checker) checkNonce(o *server.Options) {
	const check = "nonce"
	if len(o.Nkeys) > 0 || o.AlwaysEnableNonce {
		d.ok(check, "the server sends every client a nonce: nkey logins ('user add --nkey') can sign it")
		return
	}
	d.warn(check, "the server sends no nonce (its config has no nkey user), so nkey logins are refused with %s: add to the users of %s, as 'authrelay init' writes it: { nkey: %q, permissions: { publish: { deny: \">\" }, subscribe: { deny: \">\" } } } (a key nobody holds), then restart the server",
		accounts.ReasonNonceMissing, o.AuthCallout.Account, deploy.NonceKey)
}

func quote(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = strconv.Quote(n)
	}
	return out
}

// delegated reports whether the server sends a static user of account acct
// to the callout even when its password matches (nats-server's auth.go: an
// empty allowed_accounts delegates every account).
func delegated(ac *server.AuthCallout, acct string) bool {
	return len(ac.AllowedAccounts) == 0 || slices.Contains(ac.AllowedAccounts, acct)
}

func (d *checker) checkAppAccounts(o *server.Options) {
	const check = "app accounts"
	ac := o.AuthCallout
	users := staticUsers(o)
	defined := configAccounts(o)
	var apps []string
	problems := false
	for _, a := range defined {
		if a == ac.Account || a == o.SystemAccount || a == server.DEFAULT_SYSTEM_ACCOUNT {
			continue
		}
		apps = append(apps, a)
		us := users[a]
		if len(us) == 0 {
			continue
		}
		problems = true
		if delegated(ac, a) {
			d.warn(check, "account %s has static users %s; allowed_accounts sends their logins to the relay, so the static entries are unused: import them ('authrelay import %s') and remove them", a, strings.Join(quote(us), ", "), d.cfg.ConfigPath)
		} else {
			d.warn(check, "account %s has static users %s that log in with the server's own password check, bypassing authrelay ('authrelay user disable' cannot stop them); import them ('authrelay import %s') and remove them from the config", a, strings.Join(quote(us), ", "), d.cfg.ConfigPath)
		}
	}
	if d.storeAccounts != nil {
		names := make([]string, 0, len(d.storeAccounts))
		for n := range d.storeAccounts {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			if n == ac.Account {
				continue // reported with the callout account
			}
			if n == o.SystemAccount {
				problems = true
				d.fail(check, "authrelay's database has an account %q, the system account: move its users to an application account and remove it", n)
				continue
			}
			if slices.Contains(defined, n) {
				continue
			}
			problems = true
			if k := d.storeAccounts[n]; k > 0 {
				d.fail(check, "account %s of authrelay's database (%s) is not defined in %s: the server refuses their logins; add it to the config ('authrelay account' writes accounts.conf) and reload the server", n, accounts.Plural(k, "user"), d.cfg.ConfigPath)
			} else {
				d.warn(check, "account %s of authrelay's database is not defined in %s: users added to it could not log in; add it to the config and reload the server", n, d.cfg.ConfigPath)
			}
		}
	}
	if !problems {
		d.ok(check, "%s: no static users, every login goes through the relay", strings.Join(apps, ", "))
	}
}

func (d *checker) checkAllowedAccounts(o *server.Options) {
	const check = "allowed_accounts"
	ac := o.AuthCallout
	switch {
	case len(ac.AllowedAccounts) == 0:
		d.warn(check, "auth_callout.allowed_accounts is empty: every static login of other accounts, the system admin's included, also goes through the relay, which does not know them, so the admin cannot log in (not even while the relay is down); set 'allowed_accounts: [ %q ]'", ac.Account)
	case o.SystemAccount != "" && slices.Contains(ac.AllowedAccounts, o.SystemAccount):
		d.warn(check, "auth_callout.allowed_accounts %v includes the system account %s: its admin's logins go through the relay, which does not know them; list only %q", ac.AllowedAccounts, o.SystemAccount, ac.Account)
	default:
		d.ok(check, "%v: static users outside them (the system admin) keep the server's own password check", ac.AllowedAccounts)
	}
}

func (d *checker) checkSystemAccount(o *server.Options) {
	const check = "system account"
	sys := o.SystemAccount
	if sys == "" {
		d.fail(check, "system_account is not set: the server makes its own %s with no users, so no admin can see server events or kick connections; set 'system_account: %s' with a static admin user as 'authrelay init' writes it", server.DEFAULT_SYSTEM_ACCOUNT, deploy.SystemAccount)
		return
	}
	if !slices.Contains(configAccounts(o), sys) {
		d.fail(check, "system_account %q is not defined under accounts: define it with a static admin user", sys)
		return
	}
	if d.secrets == nil || d.secrets.AdminUser == "" {
		d.ok(check, "system_account is %s", sys)
		return
	}
	if !slices.Contains(staticUsers(o)[sys], d.secrets.AdminUser) {
		d.fail(check, "the admin user %q of secrets.json is not a user of the system account %s: add it there with its password's bcrypt hash", d.secrets.AdminUser, sys)
		return
	}
	d.ok(check, "system_account is %s, with the admin user %q", sys, d.secrets.AdminUser)
}

// serverAuthTimeout returns the server's authorization timeout for o: the
// configured one, else nats-server's default.
func serverAuthTimeout(o *server.Options) time.Duration {
	secs := o.AuthTimeout
	if secs <= 0 {
		secs = float64(server.AUTH_TIMEOUT / time.Second)
		if o.TLSConfig != nil {
			tls := o.TLSTimeout
			if tls <= 0 {
				tls = float64(server.TLS_TIMEOUT / time.Second)
			}
			secs = tls + 1
		}
	}
	return time.Duration(secs * float64(time.Second))
}

func (d *checker) checkAuthTimeout(o *server.Options) {
	const check = "auth timeout"
	t := serverAuthTimeout(o)
	if t <= d.cfg.DecisionTimeout {
		d.warn(check, "authorization.timeout is %v, not above the relay's decision timeout (%v by default): a slow decision arrives after the server has refused the login; set 'timeout: %d' under authorization (or lower serve's --decision-timeout)", t, d.cfg.DecisionTimeout, deploy.AuthTimeoutSeconds)
		return
	}
	d.ok(check, "authorization.timeout is %v, above the relay's default decision timeout of %v", t, d.cfg.DecisionTimeout)
}

// checkOperator checks a server config in operator mode (trusted
// operators): that it trusts the directory's operator and that the AUTH
// account's JWT delegates logins to this relay (deploy.Layout.CheckServer,
// which serve runs too), and which accounts users can be placed in.
func (d *checker) checkOperator(l deploy.Layout, o *server.Options) {
	const check = "operator"
	if mode, err := l.Mode(); err != nil || mode != deploy.ModeOperator {
		d.fail(check, "%s trusts an operator but %s was not made with 'authrelay init --operator' (no %s): authrelay cannot sign for its accounts", d.cfg.ConfigPath, d.cfg.Dir, deploy.OperatorFile)
		return
	}
	id, err := l.Identity()
	if err != nil {
		d.fail(check, "%v", err)
		return
	}
	failed := false
	for _, p := range l.CheckServer(o, id) {
		if p.Fatal {
			failed = true
			d.fail(p.Field, "%s", p.Message)
		} else {
			d.warn(p.Field, "%s", p.Message)
		}
	}
	if !failed {
		d.ok(check, "the server trusts the directory's operator; the AUTH account's JWT delegates logins to the relay's user; users can be placed in %v", id.Accounts)
	}
	d.checkPlacement(l)
	d.checkAuthTimeout(o)
}

// checkPlacement checks, in operator mode, that every account of the
// database is one the relay can place users in: allowed by the AUTH
// account, with a signing key authrelay holds that its JWT lists.
func (d *checker) checkPlacement(l deploy.Layout) {
	const check = "placed accounts"
	if d.storeAccounts == nil {
		return
	}
	names := make([]string, 0, len(d.storeAccounts))
	for n := range d.storeAccounts {
		names = append(names, n)
	}
	slices.Sort(names)
	problems, err := l.PlacementProblems(names)
	if err != nil {
		d.fail(check, "%v", err)
		return
	}
	for _, n := range names {
		why, bad := problems[n]
		switch k := d.storeAccounts[n]; {
		case !bad:
		case k > 0:
			d.fail(check, "account %s (%s): %s; their logins are refused with account_not_allowed", n, accounts.Plural(k, "user"), why)
		default:
			d.warn(check, "account %s: %s; users added to it could not log in", n, why)
		}
	}
	if len(problems) == 0 {
		d.ok(check, "every account of the database (%s) is allowed by the AUTH account and has a signing key authrelay holds", strings.Join(names, ", "))
	}
}
