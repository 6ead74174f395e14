package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/internal/buildinfo"
	"github.com/authrelay/authrelay/node"
	"github.com/authrelay/authrelay/relay"
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
	fs.DurationVar(&c.revokeReplay, "revoke-replay", node.DefaultRevokeReplay, "at start, also revoke the user changes of this last period, made while no relay was running (0 = none; at most --session-ttl is used)")
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
	cfg := m.nodeConfig(c)
	if err := cfg.Check(); err != nil {
		return &usageError{msg: err.Error()}
	}
	c.level = new(slog.LevelVar)
	logger, err := node.NewLogger(m.Stderr, c.logLevel, c.logFormat, c.level)
	if err != nil {
		return &usageError{msg: err.Error()}
	}
	if len(applied) > 0 {
		logger.Info("flags set from the environment or "+serveConfigFile, "flags", applied)
	}
	return m.serve(ctx, c, cfg, logger)
}

// serve runs a node on c.dir until ctx is done: cmd resolves the server
// URL, owns SIGHUP and prints the welcome text; the node does the rest.
func (m *Main) serve(ctx context.Context, c serveConfig, cfg node.Config, logger *slog.Logger) error {
	l := deploy.Layout{Dir: c.dir}
	var url string
	var tls []nats.Option
	if !c.embedded {
		// An uninitialised DIR has no nats.conf to take the address from:
		// the node refuses it first, saying what to do.
		var lp *deploy.Layout
		if l.Initialised() {
			lp = &l
		}
		var err error
		if url, tls, err = c.nats.resolve(m, lp); err != nil {
			return fmt.Errorf("serve: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	reload := make(chan struct{})
	hupDone := make(chan struct{})
	go func() {
		defer close(hupDone)
		m.reloadOnHup(ctx, c, reload, logger)
	}()
	defer func() {
		cancel()
		<-hupDone
	}()
	cfg.URL, cfg.NATSOptions, cfg.Logger, cfg.Reload = url, tls, logger, reload
	cfg.OnReady = func(url string) {
		if c.embedded {
			m.printWelcome(l, url)
		}
		if m.Ready != nil {
			m.Ready(url)
		}
	}
	return node.Run(ctx, cfg)
}

// nodeConfig is the node c asks for, but for its connection and logger.
func (m *Main) nodeConfig(c serveConfig) node.Config {
	return node.Config{
		Layout:          deploy.Layout{Dir: c.dir},
		Embedded:        c.embedded,
		Listen:          c.listen,
		BcryptCost:      m.bcryptCost(),
		SessionTTL:      c.sessionTTL,
		DecisionTimeout: c.decisionTimeout,
		Workers:         c.workers,
		HashWorkers:     c.hashWorkers,
		CacheTTL:        c.cacheTTL,
		CacheSize:       c.cacheSize,
		MaxClockSkew:    c.maxClockSkew,
		Lockout:         c.lockout,
		Revoke:          c.revoke,
		RevokePoll:      c.revokePoll,
		RevokeReplay:    c.revokeReplay,
		AuditRetention:  c.auditRetention,
		HTTPAddr:        c.httpAddr,
		ServiceVersion:  buildinfo.ServiceVersion(version),
		Now:             m.Now,
	}
}

// reloadOnHup reloads on each SIGHUP (or receive from m.Hup) what can
// change while serve runs: the log level from the environment or
// authrelay.conf, and, through reload, the embedded server's config
// (nats.conf and the accounts.conf it includes), as 'authrelay reload' has
// a separate server do itself. It logs what it changed, and which changed
// settings need a restart.
func (m *Main) reloadOnHup(ctx context.Context, c serveConfig, reload chan<- struct{}, logger *slog.Logger) {
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
		select {
		case reload <- struct{}{}:
		case <-ctx.Done():
			return
		}
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
