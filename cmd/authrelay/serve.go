package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/metrics"
	"github.com/authrelay/authrelay/relay"
	"github.com/authrelay/authrelay/store"
)

const serveUsage = `
Usage: authrelay serve [--dir DIR] [--nats URL | --embedded [--listen HOST:PORT]] [flags]

Answers nats-server's auth_callout login requests from the users in DIR's
database. It connects as the relay user in secrets.json, reconnects forever,
and shares the load with other relays on the same server (queue group).
SIGINT or SIGTERM drains in-flight logins and exits.

With --embedded it also runs nats-server in-process from DIR/nats.conf, and
initialises DIR first if it is empty: one command for a working setup.

Every flag can also be set in the environment, as AUTHRELAY_ and the flag's
name in capitals with '_' for '-' (AUTHRELAY_SESSION_TTL=15m), or in
DIR/authrelay.conf, one 'name = value' a line (session-ttl = 15m). The
command line wins over the environment, which wins over the file. On
SIGHUP serve reads them again: a new log level applies at once, any other
changed setting is logged as needing a restart; with --embedded, SIGHUP
also reloads nats.conf and accounts.conf.

Examples:

  authrelay serve --dir ./data --nats nats://127.0.0.1:4222
  authrelay serve --embedded --dir ./data
  authrelay serve --embedded --dir ./data --listen 127.0.0.1:5222 --session-ttl 15m

After a successful login the relay remembers a keyed digest of the name and
password for --cache-ttl, so that reconnects skip the password hash; a change
to the user, by any process, applies on the very next connect. Logins that
need a password hash wait for one of --hash-workers; when they could not get
one before the server's deadline they are refused at once (reason
"overloaded") and the client retries.

With --http HOST:PORT it serves Prometheus metrics on /metrics, /healthz
(200 while the process runs) and /readyz (200 while the relay is connected
to NATS and answering, the database answers, DIR/authrelay.db is still the
file serve opened, the keys are loaded, this host's clock is within
--max-clock-skew of the server's and the server accepts the relay's keys;
503 with the reason otherwise). A relay whose keys the server does not
accept leaves the queue group until it does. serve never creates the
database, except that --embedded initialises an empty DIR; a DIR with keys
but no database is refused: restore a backup. Each relay also registers as the NATS micro
service "authrelay": 'nats micro ls|info|stats authrelay', run as the relay
user of secrets.json, lists every instance with its statistics.
`

// serveConfig is the parsed serve command line.
type serveConfig struct {
	dir             string
	nats            natsFlags
	embedded        bool
	listen          string
	sessionTTL      time.Duration
	decisionTimeout time.Duration
	workers         int
	hashWorkers     int
	cacheTTL        time.Duration
	cacheSize       int
	logLevel        string
	logFormat       string
	lockout         accounts.LockoutPolicy
	revoke          bool
	revokePoll      time.Duration
	revokeReplay    time.Duration
	auditRetention  time.Duration
	httpAddr        string
	maxClockSkew    time.Duration
	// args is the command line, re-read with the environment and
	// authrelay.conf on SIGHUP; flags is the value of every serve flag
	// serve started with (flagValues), what SIGHUP compares with; level
	// is the log level SIGHUP can change.
	args  []string
	flags map[string]string
	level *slog.LevelVar
}

// flagValues returns the value of every flag of fs, as its String
// method gives it, by name.
func flagValues(fs *flag.FlagSet) map[string]string {
	vals := make(map[string]string)
	fs.VisitAll(func(f *flag.Flag) { vals[f.Name] = f.Value.String() })
	return vals
}

// serveFlags registers serve's flags, bound to c and lf.
func (m *Main) serveFlags(c *serveConfig, lf *lockoutFlags) (*flag.FlagSet, *string) {
	fs := m.newFlagSet("serve", serveUsage)
	dir := m.dirFlag(fs)
	c.nats.register(fs, "NATS server URL to connect to, ignored with --embedded")
	fs.BoolVar(&c.embedded, "embedded", false, "run nats-server in-process from DIR/nats.conf")
	fs.StringVar(&c.listen, "listen", "", "with --embedded: client listen HOST:PORT, overriding nats.conf (port 0: any free port)")
	fs.DurationVar(&c.sessionTTL, "session-ttl", time.Hour, "lifetime of an issued user JWT; the client re-authenticates after it (0 = no expiry)")
	fs.DurationVar(&c.decisionTimeout, "decision-timeout", relay.DefaultDecisionTimeout, "longest time one login decision may take; must be below the server's authorization timeout")
	fs.IntVar(&c.workers, "workers", 0, "concurrent login decisions that verify no password: cache hits, signing (0 = twice the CPUs)")
	fs.IntVar(&c.hashWorkers, "hash-workers", 0, "concurrent password verifications, each CPU and memory heavy (0 = the CPUs)")
	fs.DurationVar(&c.cacheTTL, "cache-ttl", relay.DefaultCacheTTL, "how long a verified login is remembered (as a keyed digest, never the password), so reconnects skip the password hash; any change to the user applies at once (0 = no cache)")
	fs.IntVar(&c.cacheSize, "cache-size", relay.DefaultCacheSize, "most logins remembered, one per user")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	lf.register(fs)
	fs.BoolVar(&c.revoke, "revoke", true, "close a user's live connections within --revoke-poll when the user is disabled, removed or changed, by any process (needs the admin login of secrets.json)")
	fs.DurationVar(&c.revokePoll, "revoke-poll", relay.DefaultRevokePoll, "how often to look for user changes to revoke live connections for")
	fs.DurationVar(&c.revokeReplay, "revoke-replay", defaultRevokeReplay, "at start, also revoke the user changes of this last period, made while no relay was running (0 = none; at most --session-ttl is used)")
	fs.StringVar(&c.httpAddr, "http", "", "serve Prometheus /metrics, /healthz and /readyz on HOST:PORT (empty = off)")
	fs.DurationVar(&c.auditRetention, "audit-retention", 30*24*time.Hour, "how long audit rows are kept (0 = forever)")
	fs.DurationVar(&c.maxClockSkew, "max-clock-skew", relay.DefaultMaxClockSkew, "largest difference between this host's clock and the server's that logins tolerate; beyond it the relay drops the server's requests and /readyz fails (at least the server's authorization timeout)")
	return fs, dir
}

// parseServe reads serve's settings from the command line args, the
// environment and authrelay.conf, and returns them with what came from the
// environment or the file (for the log). It checks no values.
func (m *Main) parseServe(args []string) (c serveConfig, applied []string, err error) {
	var lf lockoutFlags
	fs, dir := m.serveFlags(&c, &lf)
	if err := parseNoArgs(fs, args, "serve"); err != nil {
		return c, nil, err
	}
	if applied, err = m.applyFlagDefaults(fs, *dir); err != nil {
		return c, nil, err
	}
	c.dir = *dir
	c.args = args
	c.flags = flagValues(fs)
	c.lockout = lf.p
	return c, applied, nil
}

func (m *Main) runServe(ctx context.Context, args []string) error {
	c, applied, err := m.parseServe(args)
	if err != nil {
		return err
	}
	if err := c.lockout.Validate(); err != nil {
		return &usageError{msg: err.Error()}
	}
	if c.revoke && c.revokePoll <= 0 {
		return usagef("--revoke-poll %v: give a positive duration such as 200ms (--revoke=false turns revocation off)", c.revokePoll)
	}
	if c.revokeReplay < 0 {
		return usagef("--revoke-replay %v: give zero or a positive duration such as 10m", c.revokeReplay)
	}
	if c.auditRetention < 0 {
		return usagef("--audit-retention %v: must not be negative (0 keeps rows forever)", c.auditRetention)
	}
	if c.sessionTTL < 0 {
		return usagef("--session-ttl %v: must not be negative (0 means no expiry)", c.sessionTTL)
	}
	if c.decisionTimeout <= 0 {
		return usagef("--decision-timeout %v: give a positive duration below the server's authorization timeout, such as 1.5s", c.decisionTimeout)
	}
	if c.workers < 0 {
		return usagef("--workers %d: must not be negative", c.workers)
	}
	if c.hashWorkers < 0 {
		return usagef("--hash-workers %d: must not be negative", c.hashWorkers)
	}
	if c.cacheTTL < 0 {
		return usagef("--cache-ttl %v: must not be negative (0 turns the cache off)", c.cacheTTL)
	}
	if c.maxClockSkew < time.Second {
		return usagef("--max-clock-skew %v: give at least 1s, and at least the server's authorization timeout, such as 5s", c.maxClockSkew)
	}
	if c.cacheSize < 1 {
		return usagef("--cache-size %d: give at least 1 (--cache-ttl 0 turns the cache off)", c.cacheSize)
	}
	if c.listen != "" && !c.embedded {
		return usagef("--listen applies only with --embedded; to change a separate server's address edit its nats.conf")
	}
	if c.listen != "" {
		if err := deploy.ValidateListen(c.listen, true); err != nil {
			return err
		}
	}
	c.level = new(slog.LevelVar)
	logger, err := newLogger(m.Stderr, c.logLevel, c.logFormat, c.level)
	if err != nil {
		return err
	}
	if len(applied) > 0 {
		logger.Info("flags set from the environment or "+serveConfigFile, "flags", applied)
	}
	return m.serve(ctx, c, logger)
}

func (m *Main) serve(ctx context.Context, c serveConfig, logger *slog.Logger) error {
	l := deploy.Layout{Dir: c.dir}
	if c.embedded && !l.Initialised() {
		if err := deploy.Init(ctx, l, deploy.InitOptions{Accounts: []string{"APP"}, Listen: defaultListenOr(c.listen), BcryptCost: m.bcryptCost()}); err != nil {
			return err
		}
		logger.Info("initialised directory", "dir", c.dir)
	}
	secrets, err := l.LoadSecrets()
	if err != nil {
		return err
	}
	issuer, err := accounts.NewIssuer(secrets.IssuerSeed, nil)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	xkey, err := accounts.NewXKey(secrets.XKeySeed)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	// Hold the serve lock for as long as serve runs, taken before the
	// database is opened, so that 'authrelay restore' cannot replace the
	// file in between.
	lock, err := store.LockServing(ctx, l.Path(deploy.DatabaseFile))
	switch {
	case errors.Is(err, errors.ErrUnsupported):
		logger.Warn("no serve lock on this platform: 'authrelay restore' cannot tell that this relay serves the directory", "err", err)
	case err != nil:
		return fmt.Errorf("serve: %w", err)
	}
	defer lock.Release()
	db, err := l.OpenDatabase(ctx)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer db.Close()
	db.TruncateWAL(ctx, logger)
	hashWorkers := c.hashWorkers
	if hashWorkers == 0 {
		hashWorkers = runtime.GOMAXPROCS(0) // the relay's default
	}
	if err := checkServePolicy(db.Params, hashWorkers); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if err := store.PolicyFloor(db.Params); err != nil {
		// A database set before the floor rose: it runs, but say so.
		logger.Warn("the stored password hash policy is weaker than OWASP's minimum: a stolen database is cheap to crack; raise it with 'authrelay hash set' (users are rehashed at their next login)",
			"policy", paramsText(db.Params), "err", err)
	}
	var rehashErrs atomic.Int64
	db.OnRehash = func(name string, err error) {
		switch {
		case err == nil:
			logger.Info("rehashed password to the current policy", "user", name)
		case errors.Is(err, store.ErrHashPolicyChanged):
			// 'authrelay hash set' ran after this relay started; say so
			// once in a while, not on every login.
			if rehashErrs.Add(1)%1000 == 1 {
				logger.Warn("hash policy changed since serve started: restart serve to rehash to it", "user", name)
			}
		default:
			logger.Warn("rehash failed; the next login tries again", "user", name, "err", err)
		}
	}
	reserved, err := db.ReservedAccounts() // from nats.conf; see deploy.Layout.OpenDatabase
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	audit := db.NewAuditWriter(store.AuditOptions{Logger: logger})
	guard := db.Lockouts(c.lockout)

	var url string
	var tls []nats.Option
	if !c.embedded {
		if url, tls, err = c.nats.resolve(m, &l); err != nil {
			return fmt.Errorf("serve: %w", err)
		}
	}
	cfg := relay.Config{
		URL:         url,
		NATSOptions: tls,
		User:        secrets.RelayUser,
		Password:    secrets.RelayPassword,
		Issuer:      issuer,
		XKey:        xkey,
		Users:       db,
		Guard:       guard,
		Audit:       audit,
		// Never place a user in the callout or system account of the
		// nats.conf served, whatever the database says.
		ReservedAccounts: reserved,
		SessionTTL:       c.sessionTTL,
		DecisionTimeout:  c.decisionTimeout,
		Workers:          c.workers,
		HashWorkers:      c.hashWorkers,
		CacheTTL:         c.cacheTTL,
		Positions:        db, // the user versions and the change feed in one store
		CacheSize:        c.cacheSize,
		Logger:           logger,
		Now:              m.Now,
		MaxClockSkew:     c.maxClockSkew,
	}

	var ns *server.Server
	if c.embedded {
		var opts *server.Options
		ns, opts, err = deploy.StartEmbedded(l, deploy.EmbeddedOptions{
			Listen: c.listen,
			Check:  func(o *server.Options) error { return checkCallout(o, issuer, xkey) },
			Logger: logger.With("component", "nats-server"),
		})
		if err != nil {
			return err
		}
		defer func() {
			ns.Shutdown()
			ns.WaitForShutdown()
		}()
		cfg.URL = ns.ClientURL()
		cfg.NATSOptions = []nats.Option{nats.InProcessServer(ns)}
		if timeout := time.Duration(opts.AuthTimeout * float64(time.Second)); timeout > 0 && c.decisionTimeout >= timeout {
			logger.Warn("--decision-timeout is not below the server's authorization timeout: slow decisions will be wasted", "decision_timeout", c.decisionTimeout, "server_timeout", timeout)
		}
		if timeout := time.Duration(opts.AuthTimeout * float64(time.Second)); c.maxClockSkew < timeout {
			logger.Warn("--max-clock-skew is below the server's authorization timeout: a clock skew the server tolerates would fail logins", "max_clock_skew", c.maxClockSkew, "server_timeout", timeout)
		}
		if opts.AuthCallout.XKey == "" {
			// The operator removed the xkey from nats.conf: requests arrive
			// unsealed, so the relay must accept them, but say so loudly.
			cfg.XKey = nil
			logger.Warn("nats.conf has no auth_callout xkey: passwords travel unencrypted inside the AUTH account; restore the xkey line")
		}
	}

	if c.revoke {
		if secrets.AdminUser == "" || secrets.AdminPassword == "" {
			return fmt.Errorf("serve: --revoke needs admin_user and admin_password in %s, the system account's login that kicks connections; or give --revoke=false", l.Path(deploy.SecretsFile))
		}
		kickLog := logger.With("component", "revoke")
		cfg.Revoke = &relay.RevokeConfig{
			AdminUser:     secrets.AdminUser,
			AdminPassword: secrets.AdminPassword,
			Changes:       db,
			History:       db,
			Poll:          c.revokePoll,
			Replay:        revokeReplay(c.revokeReplay, c.sessionTTL),
			OnKick: func(ctx context.Context, k relay.Kick) {
				detail := map[string]any{"user": k.User, "server_id": k.ServerID, "client_id": k.ClientID, "change": k.ChangeID, "found": k.Found}
				if k.Err != nil {
					detail["error"] = k.Err.Error()
				}
				b, _ := json.Marshal(detail)
				if err := db.AuditAdmin(ctx, "authrelay serve", "connection kick", string(b)); err != nil {
					kickLog.Error("kick not recorded in the audit trail", "user", k.User, "err", err)
				}
			},
		}
	}
	met := metrics.New()
	met.WatchStore(db, audit, guard)
	cfg.Observer = met
	cfg.ServiceVersion = serviceVersion(version)

	r, err := relay.New(cfg)
	if err != nil {
		audit.Close(context.Background())
		return fmt.Errorf("serve: %w", err)
	}
	met.WatchRelay(r)
	if cfg.Revoke != nil {
		met.WatchRevocation(r)
	}
	if c.httpAddr != "" {
		stopHTTP, err := metrics.Serve(c.httpAddr, metrics.Mux(met, metrics.ReadyChecks(r, db, audit, guard)), logger.With("component", "http"))
		if err != nil {
			audit.Close(context.Background())
			return fmt.Errorf("serve: --http %s: %w", c.httpAddr, err)
		}
		defer stopHTTP()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		err := r.Run(ctx)
		// The relay has drained: every decision it sent is in the
		// writer's buffer; flush them all before exiting.
		fctx, fcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer fcancel()
		if cerr := audit.Close(fctx); cerr != nil {
			logger.Error("audit trail not fully written", "err", cerr)
		}
		done <- err
	}()
	go db.Maintain(ctx, c.auditRetention, logger)
	go db.EndGracesLoop(ctx, time.Second, logger.With("component", "revoke"))
	go db.WatchFile(ctx, logger.With("component", "database"))
	go db.CheckpointLoop(ctx, logger.With("component", "database"))
	go r.LogStats(ctx, statsInterval, logger.With("component", "relay"))

	go m.reloadOnHup(ctx, c, ns, logger)

	select {
	case <-r.Ready():
		logger.Info("relay ready", "nats", cfg.URL, "dir", c.dir, "session_ttl", c.sessionTTL)
		if c.embedded {
			m.printWelcome(l, cfg.URL)
		}
		if m.Ready != nil {
			m.Ready(cfg.URL)
		}
	case err := <-done:
		return relayExit(err)
	}
	return relayExit(<-done)
}

// statsInterval is how often serve logs the relay's counts, when it made
// any decision since the last time.
const statsInterval = time.Minute

// reloadOnHup reloads on each SIGHUP what can change while serve runs: the
// log level from the environment or authrelay.conf, and with --embedded
// the server's config (nats.conf and the accounts.conf it includes), as
// 'authrelay reload' has the server do itself. It logs what it
// changed, and which changed settings need a restart.
func (m *Main) reloadOnHup(ctx context.Context, c serveConfig, ns *server.Server, logger *slog.Logger) {
	hup := m.Hup
	if hup == nil {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGHUP)
		defer signal.Stop(ch)
		hup = ch
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		applied, restart, err := m.reloadSettings(c)
		switch {
		case err != nil:
			logger.Error("reload: settings not read; nothing changed", "err", err)
		case len(applied) == 0 && len(restart) == 0:
			logger.Info("reload: settings unchanged")
		default:
			logger.Info("reload: settings", "applied", applied, "need_restart", restart)
		}
		if ns == nil {
			continue
		}
		// The server's own reload, of the file it runs (embedded.conf
		// keeps a --listen address), as 'authrelay reload' asks for.
		if err := ns.Reload(); err != nil {
			logger.Error("reload nats.conf failed; the server keeps its previous config", "err", err)
			continue
		}
		logger.Info("reloaded nats.conf")
	}
}

// reloadSettings reads serve's settings again (command line, environment,
// authrelay.conf), applies the log level, and returns the changes applied
// and the changed settings that only a restart applies, as "name: old ->
// new". It compares every flag of serve's flag set with the values serve
// started with (c.flags), so that no flag is left out.
func (m *Main) reloadSettings(c serveConfig) (applied, restart []string, err error) {
	var fresh serveConfig
	var lf lockoutFlags
	now, _ := m.serveFlags(&fresh, &lf)
	now.SetOutput(io.Discard)
	if _, err := parse(now, c.args); err != nil {
		return nil, nil, err
	}
	if _, err := m.applyFlagDefaults(now, c.dir); err != nil {
		return nil, nil, err
	}
	now.VisitAll(func(f *flag.Flag) {
		was, is := c.flags[f.Name], f.Value.String()
		if f.Name == "log-level" {
			var lv slog.Level
			if err := lv.UnmarshalText([]byte(is)); err != nil || lv == c.level.Level() {
				return // a bad level is refused at the next start
			}
			applied = append(applied, fmt.Sprintf("log-level: %s -> %s", c.level.Level(), lv))
			c.level.Set(lv)
			return
		}
		if was != is {
			restart = append(restart, fmt.Sprintf("%s: %s -> %s", f.Name, was, is))
		}
	})
	return applied, restart, nil
}

func relayExit(err error) error {
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// defaultListenOr returns listen for a new nats.conf, or the default when
// listen is empty or asks for any free port.
func defaultListenOr(listen string) string {
	if _, port, err := net.SplitHostPort(listen); err == nil && port != "0" {
		return listen
	}
	return deploy.DefaultListen
}

// printWelcome tells a newcomer how to add a user and connect.
func (m *Main) printWelcome(l deploy.Layout, url string) {
	fmt.Fprintf(m.Stdout, `
authrelay is answering logins for the NATS server at %[1]s
(config %[2]s). In another terminal, add a user:

  printf 's3cret-pass\n' | authrelay user add alice --dir %[3]s --account APP \
      --password-stdin --pub 'orders.>' --sub 'orders.>' --sub '_INBOX.>'

then connect as alice with the nats CLI:

  nats --server %[1]s --user alice --password s3cret-pass pub orders.new hi

(From a source checkout, 'go run ./cmd/authrelay' and 'go tool nats' run
the same commands.) The system account's admin login, which works while the
relay is down, is user %[4]q with the admin_password in %[5]s.
Ctrl-C stops both.
`, url, l.Path(deploy.ServerConf), l.Dir, deploy.AdminUser, l.Path(deploy.SecretsFile))
}

// checkCallout verifies that the server config delegates logins to this
// relay: same issuer, same xkey (or none), the dedicated callout account.
func checkCallout(opts *server.Options, issuer *accounts.Issuer, xkey *accounts.XKey) error {
	for _, p := range deploy.CheckCallout(opts.AuthCallout, issuer.PublicKey(), xkey.PublicKey()) {
		if p.Fatal {
			return errors.New(p.Message)
		}
	}
	return nil
}

// newLogger returns a slog logger writing to w.
func newLogger(w interface{ Write([]byte) (int, error) }, level, format string, lv *slog.LevelVar) (*slog.Logger, error) {
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", level)
	}
	o := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, o)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, o)), nil
	default:
		return nil, usagef("--log-format %q: want text or json", format)
	}
}

// The store is what the relay authenticates against, keeps lockouts in and
// writes the audit trail to.
var (
	_ relay.Users         = (*store.DB)(nil)
	_ relay.ChangeCounter = (*store.DB)(nil)
	_ relay.ChangeFeed    = (*store.DB)(nil)
	_ relay.Guard         = (*store.Lockouts)(nil)
	_ relay.Auditor       = (*store.AuditWriter)(nil)
)

// defaultRevokeReplay is --revoke-replay's default: long enough for a
// restart, an upgrade or a crash loop of every relay.
const defaultRevokeReplay = 10 * time.Minute

// revokeReplay is how far back a starting relay revokes user changes: what
// --revoke-replay asks, but no further than the session TTL, after which
// every JWT granted before a change has expired.
func revokeReplay(replay, sessionTTL time.Duration) time.Duration {
	if sessionTTL > 0 {
		return min(replay, sessionTTL)
	}
	return replay
}
