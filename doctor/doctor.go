// Package doctor checks an authrelay deployment end to end: the files of
// its directory (secrets.json, the user database), the server config that
// nats-server runs, and the running server itself. Run returns one Result
// per finding, saying what is wrong in NATS terms and what to do about it;
// it never prints, and it changes nothing (the database is opened
// read-only, never migrated). The authrelay doctor command prints the
// results.
package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/nats-io/nats.go"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/store"

	"github.com/authrelay/authrelay/deploy"
)

// Status is how a check came out.
type Status string

// The statuses of a Result.
const (
	// OK is a check that found nothing wrong.
	OK Status = "ok"
	// Warn is a risk worth fixing; it does not make the deployment fail.
	Warn Status = "warn"
	// Fail is a fault that makes logins fail or lets someone past the
	// relay.
	Fail Status = "fail"
)

// Result is one finding of a check.
type Result struct {
	// Check names the check, such as "issuer" or "relay answering"; a
	// check may give several results.
	Check  string
	Status Status
	// Message says what was found or what to do about it, on one line:
	// control characters are escaped.
	Message string
}

// Config says what Run checks and with which limits.
type Config struct {
	// Dir is the authrelay directory; SecretsPath and DatabasePath are its
	// secrets.json and user database.
	Dir, SecretsPath, DatabasePath string
	// ConfigPath is the server config nats-server runs.
	ConfigPath string
	// URL is the server to check; empty means the config's listen address.
	URL string
	// NATSOptions are extra options of doctor's connections, such as TLS
	// files.
	NATSOptions []nats.Option
	// Offline skips the checks that connect to the server.
	Offline bool
	// Now is this host's clock, compared with the server's; nil means
	// time.Now.
	Now func() time.Time

	// DecisionTimeout is the relay's default decision timeout
	// (relay.DefaultDecisionTimeout): the server's authorization timeout
	// must leave more than that.
	DecisionTimeout time.Duration
	// SkewWarn and MaxSkew are the relay's clock skew thresholds
	// (relay.SkewWarnThreshold and relay.DefaultMaxClockSkew): above
	// SkewWarn sessions end early or late by as much; above MaxSkew a
	// relay on this host drops every request of the server, so every login
	// fails. The checks compare against these three as given: a caller
	// sets them.
	SkewWarn, MaxSkew time.Duration

	// DialTimeout bounds the TCP dial and each login that is not the relay
	// probe; zero means DefaultTimeout.
	DialTimeout time.Duration
	// RequestTimeout bounds each request to the system account; zero means
	// DefaultTimeout.
	RequestTimeout time.Duration
}

// DefaultTimeout is the dial and request timeout of a Config that gives
// none.
const DefaultTimeout = 5 * time.Second

// secretsName is the name of the secrets file, and of the check that reads
// it.
const secretsName = deploy.SecretsFile

// Run runs every check in order (files, server config, network) and
// returns their results in that order. Its only traffic goes to the one
// server URL, and it makes one login attempt with a random username and
// password, which a relay denies (and counts towards this host's lockout).
// ctx bounds the dial and the requests; once it is done, that login is
// not tried.
func Run(ctx context.Context, cfg Config) []Result {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultTimeout
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultTimeout
	}
	d := &checker{cfg: cfg}
	d.run(ctx)
	return d.results
}

// checker runs the checks and collects their results.
type checker struct {
	cfg     Config
	results []Result

	// What the checks learnt, for the checks after them; zero when unknown.
	secrets   *deploy.Secrets
	issuerPub string
	xkeyPub   string
	opts      *server.Options
	// storeAccounts are the accounts authrelay places users in, with the
	// number of users in each; nil when the database could not be read.
	storeAccounts map[string]int
	// jsAccounts are the accounts of the database with --jetstream.
	jsAccounts []string
	// certUsers are the users of the database bound to a client
	// certificate ('user add --tls-subject|--tls-fingerprint').
	certUsers map[string]bool
	// skewFault, when not empty, is the clock check's finding that a relay
	// on this host would drop the server's requests.
	skewFault string
}

// add records a result. Messages embed what the server answered (account
// names, versions, errors) and what files hold: control characters are
// escaped, so that a result is one line that cannot steer the terminal.
func (d *checker) add(status Status, check, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if d.cfg.URL != "" {
		// A password or token in --nats is not repeated in the results.
		msg = strings.ReplaceAll(msg, d.cfg.URL, accounts.RedactURL(d.cfg.URL))
	}
	msg = accounts.EscapeControl(msg)
	d.results = append(d.results, Result{Check: check, Status: status, Message: msg})
}

func (d *checker) ok(check, format string, args ...any) { d.add(OK, check, format, args...) }
func (d *checker) warn(check, format string, args ...any) {
	d.add(Warn, check, format, args...)
}
func (d *checker) fail(check, format string, args ...any) {
	d.add(Fail, check, format, args...)
}

// run runs every check in order: files, config, network.
func (d *checker) run(ctx context.Context) {
	d.checkDirectory()
	d.checkSecrets()
	d.checkDatabase(ctx)
	d.checkConfig()
	d.checkCluster()
	if !d.cfg.Offline {
		d.checkNetwork(ctx)
		d.checkIdentityProviders(ctx)
	}
}

// initialised reports whether the directory holds authrelay's keys.
func (d *checker) initialised() bool {
	_, err := os.Stat(d.cfg.SecretsPath)
	return err == nil
}

// Local files.

func (d *checker) checkDirectory() {
	const check = "directory"
	dir := d.cfg.Dir
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

func (d *checker) checkSecrets() {
	const check = secretsName
	path := d.cfg.SecretsPath
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		d.fail(check, "%s does not exist: %s is not an authrelay directory; run 'authrelay init --dir %s', or give the --dir that 'authrelay serve' uses", path, d.cfg.Dir, d.cfg.Dir)
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
		if f.v == "" && (f.name != "relay_password" || s.Operator == nil) { // operator mode: the relay logs in with a JWT
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
	if s.AdminUser == "" || (s.AdminPassword == "" && (s.Operator == nil || s.Operator.AdminUser == "")) {
		d.warn(check, "%s has no admin_user or admin_password: the system account checks are skipped", path)
	}
	if !bad {
		d.ok(check, "%s has mode %#o; issuer %s, xkey %s, relay user %q", path, fi.Mode().Perm(), d.issuerPub, d.xkeyPub, s.RelayUser)
	}
}

func (d *checker) checkDatabase(ctx context.Context) {
	const check = "database"
	path := d.cfg.DatabasePath
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
	counts, err := db.AccountUserCounts(ctx)
	if err != nil {
		d.fail(check, "%s: %v", path, err)
		return
	}
	d.storeAccounts = counts
	creds, err := db.Credentials(ctx, "", "")
	if err != nil {
		d.fail(check, "%s: %v", path, err)
		return
	}
	d.certUsers = map[string]bool{}
	for _, c := range creds {
		if c.Kind == accounts.CredTLSSubject || c.Kind == accounts.CredTLSFingerprint {
			d.certUsers[c.User] = true
		}
	}
	list, err := db.AccountList(ctx)
	if err != nil {
		d.fail(check, "%s: %v", path, err)
		return
	}
	for _, a := range list {
		if a.JetStream {
			d.jsAccounts = append(d.jsAccounts, a.Name)
		}
	}
	users := 0
	for _, n := range counts {
		users += n
	}
	d.ok(check, "%s opens; schema version %d is current; %s, %s", path, have, accounts.Plural(len(counts), "account"), accounts.Plural(users, "user"))
	d.checkUnrestricted(ctx, db)
}

// missingDatabase reports a directory without its database: removed under
// a running relay, removed, or never created.
func (d *checker) missingDatabase(check, path string) {
	serving, err := store.Serving(path)
	switch {
	case err == nil && serving:
		d.fail(check, "%s does not exist, but a relay is serving %s: the file was removed under it, and the relay keeps granting logins from the removed file while admin commands refuse to run; stop every relay, restore the latest backup with 'authrelay restore FILE --dir %s', start them again", path, d.cfg.Dir, d.cfg.Dir)
	case d.initialised():
		d.fail(check, "%s does not exist, though %s does: it was removed or moved away; restore the latest backup with 'authrelay restore FILE --dir %s'", path, filepath.Base(d.cfg.SecretsPath), d.cfg.Dir)
	default:
		d.fail(check, "%s does not exist: run 'authrelay init --dir %s', or give the --dir that 'authrelay serve' uses", path, d.cfg.Dir)
	}
}
