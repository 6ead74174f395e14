package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/relay"
	"github.com/authrelay/authrelay/store"
)

const doctorUsage = `
Usage: authrelay doctor [--dir DIR] [--config FILE] [--nats URL | --offline] [--json]

Checks a deployment end to end and says what is wrong in NATS terms, and
what to do about it. It reads DIR (secrets.json, the user database) and the
server config, then talks to the server:

  files    secrets.json readable by its owner only; DIR not world-writable;
           the database opens and its schema is current; users and roles
           that grant a direction entirely (an allow of '>')
  config   the server config parses; auth_callout names the relay's issuer
           and xkey; the callout account is dedicated and holds only the
           relay's user; allowed_accounts keeps the admin on static auth;
           system_account is set; authorization.timeout leaves the relay
           time to answer
  network  the server answers at the URL; the relay's user and the system
           admin log in; the server's version, the clock skew between it and
           this host; whether a relay answers logins at all

Each check prints one line: "ok", "warn" (a risk worth fixing; it does not
fail the run) or "FAIL", the check's name, and what was found or what to do.
Exit status: 0 when no check fails, 1 when any does.

The server config is DIR/nats.conf unless --config names the file the server
runs. The URL is the config's listen address unless --nats gives one; all of
doctor's traffic goes to that one URL. To see whether a relay is answering,
doctor logs in once with a random username and password: a relay denies that
at once, a server with no relay refuses it only after authorization.timeout.
The attempt shows in the relay's log as one denied login (user
authrelay-doctor-<random>) from this host, and counts towards that address's
lockout like any wrong password.

With --json the output is an array of {"check", "status", "message"}
objects, status being "ok", "warn" or "fail".

Examples:

  authrelay doctor --dir ./data
  authrelay doctor --dir ./data --offline          # files and config only, before starting nats-server
  authrelay doctor --dir /var/lib/authrelay --config /etc/nats/nats.conf --nats nats://10.0.0.5:4222
  authrelay doctor --dir ./data --json | jq '.[] | select(.status != "ok")'
`

// Check statuses, as the text output prints them.
const (
	doctorOK   = "ok"
	doctorWarn = "warn"
	doctorFail = "FAIL"
)

// Thresholds the checks use.
const (
	// doctorDecisionTimeout is serve's default --decision-timeout: the
	// server's authorization.timeout must leave more than that.
	doctorDecisionTimeout = 1500 * time.Millisecond
	// Clock skew between this host and the server: above the relay's
	// warning threshold sessions end early or late by as much; beyond its
	// default tolerance (serve --max-clock-skew) a relay on this host drops
	// every request of the server, so every login fails.
	doctorSkewWarn = relay.SkewWarnThreshold
	doctorSkewFail = relay.DefaultMaxClockSkew
	// doctorDialTimeout bounds the TCP dial and each login that is not
	// the relay probe.
	doctorDialTimeout = 5 * time.Second
	// doctorRequestTimeout bounds each request to the system account.
	doctorRequestTimeout = 5 * time.Second
)

// doctorResult is one line of doctor's report.
type doctorResult struct {
	Check   string `json:"check"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

// doctor runs the checks and collects their results.
type doctor struct {
	now      func() time.Time
	layout   deploy.Layout
	confPath string
	natsURL  string
	offline  bool

	results []doctorResult

	// What the checks learnt, for the checks after them; zero when unknown.
	secrets   *deploy.Secrets
	issuerPub string
	xkeyPub   string
	opts      *server.Options
	// storeAccounts are the accounts authrelay places users in, with the
	// number of users in each; nil when the database could not be read.
	storeAccounts map[string]int
	// skewFault, when not empty, is the clock check's finding that a relay
	// on this host would drop the server's requests.
	skewFault string
}

func (m *Main) runDoctor(ctx context.Context, args []string) error {
	fs := m.newFlagSet("doctor", doctorUsage)
	dir := m.dirFlag(fs)
	confPath := fs.String("config", "", "the server config nats-server runs (default DIR/nats.conf)")
	natsURL := fs.String("nats", "", "URL of the server to check (default: the config's listen address)")
	offline := fs.Bool("offline", false, "check files and config only; do not connect to the server")
	asJSON := fs.Bool("json", false, "print the results as a JSON array")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("doctor takes no arguments, got %q", pos)
	}
	if *offline && *natsURL != "" {
		return usagef("--offline and --nats exclude each other: --offline makes no connection")
	}
	d := &doctor{
		now:      m.Now,
		layout:   deploy.Layout{Dir: *dir},
		confPath: *confPath,
		natsURL:  *natsURL,
		offline:  *offline,
	}
	if d.confPath == "" {
		d.confPath = d.layout.Path(deploy.ServerConf)
	}
	d.run(ctx)

	if *asJSON {
		out := make([]doctorResult, len(d.results))
		for i, r := range d.results {
			r.Status = strings.ToLower(r.Status)
			out[i] = r
		}
		b, err := json.MarshalIndent(out, "", "  ")
		if err != nil {
			return fmt.Errorf("doctor: encode results: %w", err)
		}
		fmt.Fprintf(m.Stdout, "%s\n", b)
	} else {
		for _, r := range d.results {
			fmt.Fprintf(m.Stdout, "%-4s  %-16s  %s\n", r.Status, r.Check, r.Message)
		}
	}
	var failed []string
	for _, r := range d.results {
		if r.Status == doctorFail && !slices.Contains(failed, r.Check) {
			failed = append(failed, r.Check)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("doctor: %s failed: %s", plural(len(failed), "check"), strings.Join(failed, ", "))
	}
	return nil
}

// add records a result. Messages embed what the server answered (account
// names, versions, errors) and what files hold: control characters are
// escaped, so that a result is one line that cannot steer the terminal.
func (d *doctor) add(status, check, format string, args ...any) {
	msg := accounts.EscapeControl(fmt.Sprintf(format, args...))
	d.results = append(d.results, doctorResult{Check: check, Status: status, Message: msg})
}

func (d *doctor) ok(check, format string, args ...any) { d.add(doctorOK, check, format, args...) }
func (d *doctor) warn(check, format string, args ...any) {
	d.add(doctorWarn, check, format, args...)
}
func (d *doctor) fail(check, format string, args ...any) {
	d.add(doctorFail, check, format, args...)
}

// run runs every check in order: files, config, network.
func (d *doctor) run(ctx context.Context) {
	d.checkDirectory()
	d.checkSecrets()
	d.checkDatabase(ctx)
	d.checkConfig()
	if !d.offline {
		d.checkNetwork(ctx)
	}
}

// Local files.

func (d *doctor) checkDirectory() {
	const check = "directory"
	dir := d.layout.Dir
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		d.fail(check, "%s does not exist: run 'authrelay init --dir %s', or give the --dir that 'authrelay serve' uses", dir, dir)
		return
	case err != nil:
		d.fail(check, "%s: %v", dir, err)
		return
	case !fi.IsDir():
		d.fail(check, "%s is not a directory: give the --dir that 'authrelay serve' uses", dir)
		return
	}
	perm := fi.Mode().Perm()
	switch {
	case perm&0o002 != 0:
		d.fail(check, "%s has mode %#o: anyone on the host can replace its files (the keys, the user database); run 'chmod 700 %s'", dir, perm, dir)
	case perm&0o077 != 0:
		d.warn(check, "%s has mode %#o: other users on the host can list it and read the database's password hashes; run 'chmod 700 %s'", dir, perm, dir)
	default:
		d.ok(check, "%s has mode %#o: only its owner can use it", dir, perm)
	}
}

func (d *doctor) checkSecrets() {
	const check = deploy.SecretsFile
	path := d.layout.Path(deploy.SecretsFile)
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		d.fail(check, "%s does not exist: %s is not an authrelay directory; run 'authrelay init --dir %s', or give the --dir that 'authrelay serve' uses", path, d.layout.Dir, d.layout.Dir)
		return
	}
	if err != nil {
		d.fail(check, "%s: %v", path, err)
		return
	}
	bad := false
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		// serve refuses such a file; doctor reads on, to report the rest.
		d.fail(check, "%s has mode %#o: others on the host can read the issuer and xkey seeds, forge any login and read every password; run 'chmod 600 %s' ('authrelay serve' refuses to start until then)", path, perm, path)
		bad = true
	}
	b, err := os.ReadFile(path)
	if err != nil {
		d.fail(check, "read %s: %v", path, err)
		return
	}
	var s deploy.Secrets
	if err := json.Unmarshal(b, &s); err != nil {
		d.fail(check, "%s is not valid JSON (%v): restore it from a backup; its seeds cannot be regenerated without changing nats.conf", path, err)
		return
	}
	var missing []string
	for _, f := range []struct{ name, v string }{
		{"issuer_seed", s.IssuerSeed}, {"xkey_seed", s.XKeySeed}, {"relay_password", s.RelayPassword},
	} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		d.fail(check, "%s lacks %s: restore it from a backup", path, strings.Join(missing, ", "))
		return
	}
	if s.RelayUser == "" {
		s.RelayUser = deploy.RelayUser
	}
	issuer, err := accounts.NewIssuer(s.IssuerSeed, nil)
	if err != nil {
		d.fail(check, "%s: %v: restore it from a backup", path, err)
		return
	}
	xkey, err := accounts.NewXKey(s.XKeySeed)
	if err != nil {
		d.fail(check, "%s: %v: restore it from a backup", path, err)
		return
	}
	d.secrets, d.issuerPub, d.xkeyPub = &s, issuer.PublicKey(), xkey.PublicKey()
	if s.AdminUser == "" || s.AdminPassword == "" {
		d.warn(check, "%s has no admin_user or admin_password: the system account checks are skipped", path)
	}
	if !bad {
		d.ok(check, "%s has mode %#o; issuer %s, xkey %s, relay user %q", path, fi.Mode().Perm(), d.issuerPub, d.xkeyPub, s.RelayUser)
	}
}

func (d *doctor) checkDatabase(ctx context.Context) {
	const check = "database"
	path := d.layout.Path(deploy.DatabaseFile)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		d.missingDatabase(check, path)
		return
	} else if err != nil {
		d.fail(check, "%s: %v", path, err)
		return
	}
	// Open read-only: opening through OpenExisting would migrate an older
	// database under a relay that may still be running the older code.
	db, err := store.OpenReadOnly(ctx, path)
	var sv *store.SchemaVersionError
	switch {
	case errors.As(err, &sv) && sv.Have > sv.Want:
		d.fail(check, "%s has schema version %d but this authrelay knows only up to %d: it was written by a newer authrelay; run that version (of doctor and of serve)", path, sv.Have, sv.Want)
		return
	case errors.As(err, &sv):
		d.warn(check, "%s has schema version %d, this authrelay's is %d: the next 'authrelay serve' or admin command migrates it, after which older authrelay binaries refuse it; upgrade every relay together", path, sv.Have, sv.Want)
		return
	case err != nil:
		d.fail(check, "%s cannot be read: %v", path, err)
		return
	}
	defer db.Close()
	have, err := db.SchemaVersion(ctx)
	if err != nil {
		d.fail(check, "%s: %v", path, err)
		return
	}
	defer db.Close()
	counts, err := db.AccountUserCounts(ctx)
	if err != nil {
		d.fail(check, "%s: %v", path, err)
		return
	}
	d.storeAccounts = counts
	users := 0
	for _, n := range counts {
		users += n
	}
	d.ok(check, "%s opens; schema version %d is current; %s, %s", path, have, plural(len(counts), "account"), plural(users, "user"))
	d.checkUnrestricted(ctx, db)
}

// missingDatabase reports a directory without its database: removed under
// a running relay, removed, or never created.
func (d *doctor) missingDatabase(check, path string) {
	serving, err := store.Serving(path)
	switch {
	case err == nil && serving:
		d.fail(check, "%s does not exist, but a relay is serving %s: the file was removed under it, and the relay keeps granting logins from the removed file while admin commands refuse to run; stop every relay, restore the latest backup with 'authrelay restore FILE --dir %s', start them again", path, d.layout.Dir, d.layout.Dir)
	case d.layout.Initialised():
		d.fail(check, "%s does not exist, though %s does: it was removed or moved away; restore the latest backup with 'authrelay restore FILE --dir %s'", path, deploy.SecretsFile, d.layout.Dir)
	default:
		d.fail(check, "%s does not exist: run 'authrelay init --dir %s', or give the --dir that 'authrelay serve' uses", path, d.layout.Dir)
	}
}

// The server config.

func (d *doctor) checkConfig() {
	path := d.confPath
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		d.fail("server config", "%s does not exist: run 'authrelay init --dir %s', or give --config FILE for the config the server runs", path, d.layout.Dir)
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

	ac := o.AuthCallout
	if ac == nil {
		d.fail("auth_callout", "%s has no authorization { auth_callout { … } } block: the server never asks the relay about logins; restore the block 'authrelay init' wrote (changing it needs a server restart)", path)
		return
	}
	d.checkIssuer(ac)
	d.checkXKey(ac)
	d.checkCalloutAccount(&o)
	d.checkAppAccounts(&o)
	d.checkAllowedAccounts(&o)
	d.checkSystemAccount(&o)
	d.checkAuthTimeout(&o)
}

func (d *doctor) checkIssuer(ac *server.AuthCallout) {
	const check = "issuer"
	switch {
	case d.issuerPub == "":
		d.warn(check, "auth_callout.issuer is %s; not compared: secrets.json could not be read", ac.Issuer)
	case ac.Issuer != d.issuerPub:
		d.fail(check, "auth_callout.issuer %s does not match the relay's issuer key %s (the public key of issuer_seed in secrets.json): the server would reject every answer, so no login succeeds; set 'issuer: %s' and restart the server", ac.Issuer, d.issuerPub, d.issuerPub)
	default:
		d.ok(check, "auth_callout.issuer %s is the relay's issuer key", ac.Issuer)
	}
}

func (d *doctor) checkXKey(ac *server.AuthCallout) {
	const check = "xkey"
	want := d.xkeyPub
	if want == "" {
		want = "<the relay's public xkey>"
	}
	switch {
	case ac.XKey == "":
		d.fail(check, "auth_callout has no xkey: passwords travel in clear inside the callout account, where anyone who can subscribe there reads them; add 'xkey: %s' and restart the server", want)
	case d.xkeyPub == "":
		d.warn(check, "auth_callout.xkey is %s; not compared: secrets.json could not be read", ac.XKey)
	case ac.XKey != d.xkeyPub:
		d.fail(check, "auth_callout.xkey %s does not match the relay's xkey %s (the public key of xkey_seed in secrets.json): the relay cannot open the sealed requests, so no login succeeds; set 'xkey: %s' and restart the server", ac.XKey, d.xkeyPub, d.xkeyPub)
	default:
		d.ok(check, "auth_callout.xkey %s is the relay's: login requests are sealed to it", ac.XKey)
	}
}

// doctorStaticUsers returns the statically configured users (and nkey users) of
// each account; users outside any account are under server.DEFAULT_GLOBAL_ACCOUNT.
func doctorStaticUsers(o *server.Options) map[string][]string {
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

// doctorConfigAccounts returns the names of the accounts the config defines.
func doctorConfigAccounts(o *server.Options) []string {
	var names []string
	for _, a := range o.Accounts {
		names = append(names, a.Name)
	}
	return names
}

func (d *doctor) checkCalloutAccount(o *server.Options) {
	ac := o.AuthCallout
	acct := ac.Account
	switch {
	case acct == "" || acct == server.DEFAULT_GLOBAL_ACCOUNT:
		d.fail("callout account", "auth_callout.account is not set, so login requests go to the global account where every user without an account lands and could read them; set 'account: %s', a dedicated account holding only the relay's user", deploy.AuthAccount)
		return
	case !slices.Contains(doctorConfigAccounts(o), acct):
		d.fail("callout account", "auth_callout.account %q is not defined under accounts: add it with only the relay's user, as 'authrelay init' writes it", acct)
		return
	case acct == o.SystemAccount:
		d.fail("callout account", "auth_callout.account %q is the system account: use a dedicated account such as %s holding only the relay's user", acct, deploy.AuthAccount)
		return
	}
	if _, reserved := d.storeAccounts[acct]; reserved && d.storeAccounts != nil {
		d.fail("callout account", "authrelay's database has an account %q, the callout account: users placed there could read other users' login requests; move them ('authrelay user set NAME --account …') and remove the account", acct)
	}
	users := doctorStaticUsers(o)[acct]
	intruders := 0
	for _, u := range users {
		if !slices.Contains(ac.AuthUsers, u) {
			intruders++
			d.fail("callout account", "user %q in the callout account %s could read other users' passwords (it may subscribe to the login requests); remove it from %s's users: only the relay's user belongs there", u, acct, acct)
		}
	}
	if intruders == 0 {
		d.ok("callout account", "%s is a dedicated callout account holding only %s", acct, strings.Join(doctorQuote(users), ", "))
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

func doctorQuote(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = strconv.Quote(n)
	}
	return out
}

// doctorDelegated reports whether the server sends a static user of account acct
// to the callout even when its password matches (nats-server's auth.go: an
// empty allowed_accounts delegates every account).
func doctorDelegated(ac *server.AuthCallout, acct string) bool {
	return len(ac.AllowedAccounts) == 0 || slices.Contains(ac.AllowedAccounts, acct)
}

func (d *doctor) checkAppAccounts(o *server.Options) {
	const check = "app accounts"
	ac := o.AuthCallout
	users := doctorStaticUsers(o)
	defined := doctorConfigAccounts(o)
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
		if doctorDelegated(ac, a) {
			d.warn(check, "account %s has static users %s; allowed_accounts sends their logins to the relay, so the static entries are unused: import them ('authrelay import %s') and remove them", a, strings.Join(doctorQuote(us), ", "), d.confPath)
		} else {
			d.warn(check, "account %s has static users %s that log in with the server's own password check, bypassing authrelay ('authrelay user disable' cannot stop them); import them ('authrelay import %s') and remove them from the config", a, strings.Join(doctorQuote(us), ", "), d.confPath)
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
				d.fail(check, "account %s of authrelay's database (%s) is not defined in %s: the server refuses their logins; add it to the config ('authrelay account' writes accounts.conf) and reload the server", n, plural(k, "user"), d.confPath)
			} else {
				d.warn(check, "account %s of authrelay's database is not defined in %s: users added to it could not log in; add it to the config and reload the server", n, d.confPath)
			}
		}
	}
	if !problems {
		d.ok(check, "%s: no static users, every login goes through the relay", strings.Join(apps, ", "))
	}
}

func (d *doctor) checkAllowedAccounts(o *server.Options) {
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

func (d *doctor) checkSystemAccount(o *server.Options) {
	const check = "system account"
	sys := o.SystemAccount
	if sys == "" {
		d.fail(check, "system_account is not set: the server makes its own %s with no users, so no admin can see server events or kick connections; set 'system_account: %s' with a static admin user as 'authrelay init' writes it", server.DEFAULT_SYSTEM_ACCOUNT, deploy.SystemAccount)
		return
	}
	if !slices.Contains(doctorConfigAccounts(o), sys) {
		d.fail(check, "system_account %q is not defined under accounts: define it with a static admin user", sys)
		return
	}
	if d.secrets == nil || d.secrets.AdminUser == "" {
		d.ok(check, "system_account is %s", sys)
		return
	}
	if !slices.Contains(doctorStaticUsers(o)[sys], d.secrets.AdminUser) {
		d.fail(check, "the admin user %q of secrets.json is not a user of the system account %s: add it there with its password's bcrypt hash", d.secrets.AdminUser, sys)
		return
	}
	d.ok(check, "system_account is %s, with the admin user %q", sys, d.secrets.AdminUser)
}

// doctorAuthTimeout returns the server's authorization timeout for o: the
// configured one, else nats-server's default.
func doctorAuthTimeout(o *server.Options) time.Duration {
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

func (d *doctor) checkAuthTimeout(o *server.Options) {
	const check = "auth timeout"
	t := doctorAuthTimeout(o)
	if t <= doctorDecisionTimeout {
		d.warn(check, "authorization.timeout is %v, not above the relay's decision timeout (%v by default): a slow decision arrives after the server has refused the login; set 'timeout: %d' under authorization (or lower serve's --decision-timeout)", t, doctorDecisionTimeout, deploy.AuthTimeoutSeconds)
		return
	}
	d.ok(check, "authorization.timeout is %v, above the relay's default decision timeout of %v", t, doctorDecisionTimeout)
}

// The network.

// doctorURL returns the URL to check: --nats, else the config's listen
// address (a wildcard host is reached through loopback).
func (d *doctor) doctorURL() (string, bool) {
	if d.natsURL != "" {
		return d.natsURL, true
	}
	if d.opts == nil {
		return "", false
	}
	host, port := d.opts.Host, d.opts.Port
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	switch {
	case port == 0:
		port = server.DEFAULT_PORT
	case port < 0:
		return "", false
	}
	return "nats://" + net.JoinHostPort(host, strconv.Itoa(port)), true
}

// doctorDialAddr returns the host:port a NATS URL names.
func doctorDialAddr(raw string) (string, error) {
	if !strings.Contains(raw, "://") {
		raw = "nats://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	if u.Hostname() == "" {
		return "", fmt.Errorf("no host in %q", raw)
	}
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), strconv.Itoa(server.DEFAULT_PORT)), nil
	}
	return u.Host, nil
}

// doctorResponse is a reply from the system account's request API.
type doctorResponse[T any] struct {
	Server struct {
		Name    string `json:"name"`
		ID      string `json:"id"`
		Version string `json:"ver"`
	} `json:"server"`
	Data  T `json:"data"`
	Error *struct {
		Code        int    `json:"code"`
		Description string `json:"description"`
	} `json:"error"`
}

// doctorRequest sends a request to the system API and decodes the reply.
func doctorRequest[T any](ctx context.Context, nc *nats.Conn, subject string) (doctorResponse[T], error) {
	var r doctorResponse[T]
	ctx, cancel := context.WithTimeout(ctx, doctorRequestTimeout)
	defer cancel()
	msg, err := nc.RequestWithContext(ctx, subject, nil)
	if err != nil {
		return r, fmt.Errorf("request %s: %w", subject, err)
	}
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		return r, fmt.Errorf("request %s: %w", subject, err)
	}
	if r.Error != nil {
		return r, fmt.Errorf("request %s: %d %s", subject, r.Error.Code, r.Error.Description)
	}
	return r, nil
}

// doctorUserInfo is the data of a $SYS.REQ.USER.INFO reply.
type doctorUserInfo struct {
	User    string `json:"user"`
	Account string `json:"account"`
}

// doctorVarz is the part of a VARZ reply doctor reads.
type doctorVarz struct {
	ID           string    `json:"server_id"`
	Name         string    `json:"server_name"`
	Version      string    `json:"version"`
	Now          time.Time `json:"now"`
	AuthTimeout  float64   `json:"auth_timeout"`
	ConfigDigest string    `json:"config_digest"`
}

// doctorAccountz is the part of an ACCOUNTZ reply doctor reads.
type doctorAccountz struct {
	Accounts []string `json:"accounts"`
}

func (d *doctor) connect(url, user, password string, timeout time.Duration) (*nats.Conn, error) {
	return nats.Connect(url, nats.UserInfo(user, password), nats.Timeout(timeout),
		nats.NoReconnect(), nats.Name("authrelay doctor"))
}

func (d *doctor) checkNetwork(ctx context.Context) {
	url, ok := d.doctorURL()
	if !ok {
		d.fail("server", "no server to check: the server config gives no usable listen address; give --nats URL (or --offline to check files only)")
		return
	}
	addr, err := doctorDialAddr(url)
	if err != nil {
		d.fail("server", "--nats %q: %v: give a URL such as nats://127.0.0.1:4222", url, err)
		return
	}
	dialer := net.Dialer{Timeout: doctorDialTimeout}
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		d.fail("server", "nothing answers at %s (%v): start the server: nats-server -c %s (or 'authrelay serve --embedded --dir %s'), or give the right --nats URL", url, err, d.confPath, d.layout.Dir)
		return
	}
	conn.Close()
	d.ok("server", "%s accepts connections", url)

	timeout := time.Duration(0)
	if d.opts != nil {
		timeout = doctorAuthTimeout(d.opts)
	}
	if d.secrets != nil {
		d.checkRelayLogin(ctx, url)
		if t := d.checkAdmin(ctx, url); t > 0 {
			timeout = t
		}
	}
	if timeout <= 0 {
		timeout = server.AUTH_TIMEOUT
	}
	if ctx.Err() != nil {
		return // interrupted: skip the probe, which takes up to the timeout
	}
	d.checkRelayAnswers(url, timeout)
}

func (d *doctor) checkRelayLogin(ctx context.Context, url string) {
	const check = "relay login"
	s := d.secrets
	nc, err := d.connect(url, s.RelayUser, s.RelayPassword, doctorDialTimeout)
	if errors.Is(err, nats.ErrAuthorization) {
		d.fail(check, "the server refused the relay's user %q with relay_password from secrets.json: the server runs a config whose callout account user does not match this directory (another --dir, or nats.conf edited); 'authrelay serve' cannot connect", s.RelayUser)
		return
	}
	if err != nil {
		d.fail(check, "the relay's user %q could not log in: %v", s.RelayUser, err)
		return
	}
	defer nc.Close()
	r, err := doctorRequest[doctorUserInfo](ctx, nc, "$SYS.REQ.USER.INFO")
	if err != nil {
		d.ok(check, "the relay's user %q logs in (its account is unknown: %v)", s.RelayUser, err)
		return
	}
	want := deploy.AuthAccount
	if d.opts != nil && d.opts.AuthCallout != nil {
		want = d.opts.AuthCallout.Account
	}
	if r.Data.Account != want {
		d.fail(check, "the relay's user %q logs in to account %s, not the callout account %s: the relay would not receive login requests", s.RelayUser, r.Data.Account, want)
		return
	}
	d.ok(check, "the relay's user %q logs in to the callout account %s", s.RelayUser, r.Data.Account)
}

// checkAdmin logs in as the system account's admin, reports the server and
// the clock skew, and returns the server's authorization timeout (0 when
// unknown).
func (d *doctor) checkAdmin(ctx context.Context, url string) time.Duration {
	const check = "admin login"
	s := d.secrets
	if s.AdminUser == "" || s.AdminPassword == "" {
		return 0
	}
	nc, err := d.connect(url, s.AdminUser, s.AdminPassword, doctorDialTimeout)
	if errors.Is(err, nats.ErrAuthorization) {
		d.fail(check, "the server refused the admin user %q with admin_password from secrets.json: the system account's static user does not match this directory, or allowed_accounts sends the admin to the relay; the admin login is what works while the relay is down", s.AdminUser)
		return 0
	}
	if err != nil {
		d.fail(check, "the admin user %q could not log in: %v", s.AdminUser, err)
		return 0
	}
	defer nc.Close()
	ui, err := doctorRequest[doctorUserInfo](ctx, nc, "$SYS.REQ.USER.INFO")
	if err == nil && d.opts != nil && d.opts.SystemAccount != "" && ui.Data.Account != d.opts.SystemAccount {
		d.fail(check, "the admin user %q logs in to account %s, not the system account %s", s.AdminUser, ui.Data.Account, d.opts.SystemAccount)
		return 0
	}

	// Ask the server this connection is on, not whichever answers a PING.
	id := nc.ConnectedServerId()
	before := d.now()
	v, err := doctorRequest[doctorVarz](ctx, nc, "$SYS.REQ.SERVER."+id+".VARZ")
	after := d.now()
	if err != nil {
		d.fail(check, "the admin user %q logs in, but the server does not answer system requests (%v): is the admin's account the system account of the server at %s?", s.AdminUser, err, url)
		return 0
	}
	srv := v.Data.ID
	if v.Data.Name != "" && v.Data.Name != v.Data.ID {
		srv = fmt.Sprintf("%q (%s)", v.Data.Name, v.Data.ID)
	}
	d.ok(check, "the admin user %q logs in to the system account; server %s, nats-server %s", s.AdminUser, srv, v.Data.Version)

	// The running config is the one checked above?
	if d.opts != nil {
		if want := d.opts.ConfigDigest(); want != "" && v.Data.ConfigDigest != "" && want != v.Data.ConfigDigest {
			d.warn("config in use", "the server at %s runs a config that differs from %s (digest %s, file %s): it runs another file, or was not reloaded since the file changed; reload it ('nats-server --signal reload'; an auth_callout change needs a restart) or give --config with the file it runs", url, d.confPath, v.Data.ConfigDigest, want)
		} else if want != "" {
			d.ok("config in use", "the server at %s runs %s as it is now", url, d.confPath)
		}
	}

	if d.storeAccounts != nil {
		d.checkServerAccounts(ctx, nc, id)
	}

	// Clock skew, against the midpoint of the request.
	mid := before.Add(after.Sub(before) / 2)
	skew := v.Data.Now.Sub(mid)
	abs := skew.Abs().Round(time.Millisecond)
	dir := "ahead of"
	if skew < 0 {
		dir = "behind"
	}
	if abs == 0 {
		dir = "off"
	}
	switch {
	case abs > doctorSkewFail:
		d.skewFault = fmt.Sprintf("this host's clock is %v %s the server's", abs, doctorFlip(dir))
		d.fail("clock", "the server's clock is %v %s this host's, beyond the relay's clock skew tolerance (serve --max-clock-skew, %v by default): a relay on this host drops every login request of this server as issued too far in the past or future, so every login through it fails; sync both clocks (NTP)", abs, dir, doctorSkewFail)
	case abs > doctorSkewWarn:
		d.warn("clock", "the server's clock is %v %s this host's: logins work (the relay tolerates %v by default), but session expiries are off by as much; sync both clocks (NTP)", abs, dir, doctorSkewFail)
	default:
		d.ok("clock", "the server's clock is within %v of this host's (%v %s)", doctorSkewWarn, abs, dir)
	}
	return time.Duration(v.Data.AuthTimeout * float64(time.Second))
}

func (d *doctor) checkServerAccounts(ctx context.Context, nc *nats.Conn, id string) {
	const check = "server accounts"
	r, err := doctorRequest[doctorAccountz](ctx, nc, "$SYS.REQ.SERVER."+id+".ACCOUNTZ")
	if err != nil {
		d.warn(check, "could not list the server's accounts: %v", err)
		return
	}
	var missing []string
	for n, users := range d.storeAccounts {
		if users > 0 && !slices.Contains(r.Data.Accounts, n) {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		d.fail(check, "the running server does not know account(s) %s that authrelay places users in: their logins are refused; reload the server ('nats-server --signal reload', or SIGHUP to 'authrelay serve --embedded')", strings.Join(missing, ", "))
		return
	}
	d.ok(check, "the server knows every account authrelay places users in")
}

// doctorFlip turns the server's direction relative to this host into this
// host's relative to the server.
func doctorFlip(dir string) string {
	switch dir {
	case "ahead of":
		return "behind"
	case "behind":
		return "ahead of"
	}
	return dir
}

// checkRelayAnswers logs in with a random username and password: a relay
// denies it at once, while a server with no relay waits its authorization
// timeout before refusing.
func (d *doctor) checkRelayAnswers(url string, timeout time.Duration) {
	const check = "relay answering"
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms.
	}
	user := "authrelay-doctor-" + hex.EncodeToString(b[:])
	start := time.Now()
	nc, err := d.connect(url, user, deploy.RandomPassword(), timeout+3*time.Second)
	elapsed := time.Since(start)
	// A server that got no answer refuses at its timeout; the client may
	// then see the server's first PING before the refusal ("expected
	// 'PONG', got 'PING'"), so any error that came after the whole timeout
	// counts as unanswered.
	unanswered := errors.Is(err, nats.ErrAuthorization) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.Is(err, nats.ErrTimeout) || elapsed >= timeout
	switch {
	case err == nil:
		nc.Close()
		d.fail(check, "a login with a random username and password was accepted: the server at %s lets anyone in (no auth_callout in the config it runs, or a relay that grants unknown users); check the server's config and restart it", url)
	case errors.Is(err, nats.ErrAuthorization) && elapsed < timeout:
		e := elapsed.Round(time.Millisecond)
		if elapsed > doctorDecisionTimeout {
			d.warn(check, "a relay answered, but denying a login for an unknown user took %v, close to the server's %v authorization timeout: the relay is overloaded or its database slow; run more relays or give them more CPU", e, timeout)
			return
		}
		d.ok(check, "a relay denied a test login for an unknown user in %v (the server waits up to %v)", e, timeout)
	case d.skewFault != "" && unanswered:
		d.fail(check, "no relay is answering logins: the server refused a test login only after its %v authorization timeout; %s, beyond the relay's clock skew tolerance, so a relay on this host drops every request (its log says \"clock skew beyond tolerance\", its /readyz fails on \"clock\"); sync the clocks (NTP)", timeout, d.skewFault)
	case unanswered:
		d.fail(check, "no relay is answering logins: the server refused a test login only after its %v authorization timeout, so every authrelay user's login fails; start one: authrelay serve --dir %s --nats %s (if one runs, its log says why it does not answer)", timeout, d.layout.Dir, url)
	default:
		d.fail(check, "a test login failed in an unexpected way after %v: %v", elapsed.Round(time.Millisecond), err)
	}
}
