package bench

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"golang.org/x/crypto/bcrypt"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/store"
)

const benchUsage = `
Usage: authrelay bench [--short] [--clients N] [--users N] [--duration D]
                       [--storm-clients N] [--admin-writes N] [--scenarios LIST]
                       [--json]

Measures logins on this machine, side by side, in one run:

  (a) noauth   stock nats-server without authorization
  (b) bcrypt   stock nats-server with static users whose nats.conf
               passwords are bcrypt hashes (cost 11)
  (c) grant    the callout protocol ceiling: authrelay's own responder,
               with the same xkey sealing and signing, granting every login
               at once (no store, no password hashing). It exists only
               inside bench.
  (d) shipped  authrelay as shipped: 'authrelay serve' on a fresh directory
               whose users are hashed at the default argon2id policy.
               cold:  each user logs in once (nothing cached)
               warm:  the same users log in again
               warm, admin writes: the same again while an admin changes
                      a user no client is, --admin-writes times a second
                      (from this process, as the CLI would); with the
                      password verifications the relay ran (its /metrics)
               storm: --storm-clients clients connected (as the users of
                      the cold phase, round-robin), the server restarted;
                      the time until every client is back and authorised,
                      and how many gave up

nats-server runs in this process on 127.0.0.1 (a random port), from a
generated config (for (c) and (d), the nats.conf that 'authrelay init'
writes). --clients goroutines each connect a real nats.go TCP client and
close it, in a loop, for --duration per scenario. The relay runs in a child
process, so its CPU time per login and its peak RSS are its own.

The report gives, per scenario, connects/s, the p50/p99/max connect latency
(from the start of the connect until the client is connected and
authorised) and the failures; the relay's CPU time per login and peak RSS;
and the ratio of (d) to (a), (b) and (c). It begins with the command line,
and the same command with every setting spelled out, to reproduce it.
Only 127.0.0.1 is used; the temporary directory is removed at the end.

A full run takes a few minutes: each storm client needs one login before
the restart and one after. --short is a quick check for CI (15 to 20 s):
4 clients, 100 users, 1.5s per scenario, a storm of 10 clients; flags
given with it still apply.

Examples:

  authrelay bench --short
  authrelay bench --clients 16 --users 2000 --duration 10s --storm-clients 5000
  authrelay bench --scenarios noauth,shipped --storm-clients 0 --json > bench.json
  authrelay bench --scenarios shipped --serve-arg=--workers=8
`

// Scenario names, in the order they run.
const (
	scenarioNoAuth  = "noauth"
	scenarioBcrypt  = "bcrypt"
	scenarioGrant   = "grant"
	scenarioShipped = "shipped"
)

var benchScenarios = []string{scenarioNoAuth, scenarioBcrypt, scenarioGrant, scenarioShipped}

// benchScenarioAlias maps the letters the report uses to scenario names.
var benchScenarioAlias = map[string]string{
	"a": scenarioNoAuth, "b": scenarioBcrypt, "c": scenarioGrant, "d": scenarioShipped,
}

// Settings of a run that are not flags. They are printed in the report.
const (
	benchConnectTimeout = 5 * time.Second
	// Storm clients retry every 250 ms to 1 s: a small reconnect wait with
	// jitter, so that they come back as a burst, as after a real restart.
	stormReconnectWait   = 250 * time.Millisecond
	stormReconnectJitter = 750 * time.Millisecond
	// benchRelayReady bounds the wait for a relay child to answer logins.
	benchRelayReady = 60 * time.Second
)

// benchConfig is the parsed bench command line.
type benchConfig struct {
	clients      int
	users        int
	duration     time.Duration
	stormClients int
	stormTimeout time.Duration
	adminWrites  int
	scenarios    []string
	json         bool
	short        bool
	serveArgs    []string
	// args is the command line as given, after "bench".
	args []string
}

func (c benchConfig) has(scenario string) bool {
	for _, s := range c.scenarios {
		if s == scenario {
			return true
		}
	}
	return false
}

// resolved returns the bench command line with every setting spelled out.
func (c benchConfig) resolved() string {
	parts := []string{"authrelay", "bench",
		"--clients", fmt.Sprint(c.clients),
		"--users", fmt.Sprint(c.users),
		"--duration", c.duration.String(),
		"--storm-clients", fmt.Sprint(c.stormClients),
		"--storm-timeout", c.stormTimeout.String(),
		"--admin-writes", fmt.Sprint(c.adminWrites),
		"--scenarios", strings.Join(c.scenarios, ","),
	}
	for _, a := range c.serveArgs {
		parts = append(parts, "--serve-arg="+a)
	}
	if c.json {
		parts = append(parts, "--json")
	}
	return shellJoin(parts)
}

func (m *Main) runBench(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == benchGrantRelayCmd {
		return m.runBenchGrantRelay(ctx, args[1:])
	}
	fs := m.newFlagSet("bench", benchUsage)
	c := benchConfig{args: args}
	fs.IntVar(&c.clients, "clients", 16, "concurrent clients, each connecting and closing in a loop")
	fs.IntVar(&c.users, "users", 2000, "users in (b) and (d); cold logins use each at most once")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "how long each scenario (and each phase of (d)) runs")
	fs.IntVar(&c.stormClients, "storm-clients", 5000, "clients connected for the reconnect storm of (d) (0 = no storm)")
	fs.DurationVar(&c.stormTimeout, "storm-timeout", 3*time.Minute, "longest wait for the storm clients to connect, and again for them to come back")
	fs.IntVar(&c.adminWrites, "admin-writes", 1, "admin changes a second to an unrelated user during the warm phase with writes of (d) (0 = no such phase)")
	scen := fs.String("scenarios", strings.Join(benchScenarios, ","), "comma-separated subset of noauth,bcrypt,grant,shipped (or a,b,c,d)")
	fs.BoolVar(&c.json, "json", false, "print the report as JSON")
	fs.BoolVar(&c.short, "short", false, "quick mode for CI: 4 clients, 100 users, 1.5s per scenario, a storm of 10 clients")
	var serveArgs stringList
	fs.Var(&serveArgs, "serve-arg", "extra argument for 'authrelay serve' in (d), such as --serve-arg=--workers=8 (repeatable)")
	err := parseNoArgs(fs, args, "bench")
	if err != nil {
		return err
	}
	c.serveArgs = serveArgs
	if c.short {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		short := []struct {
			name string
			fn   func()
		}{
			{"clients", func() { c.clients = 4 }},
			{"users", func() { c.users = 100 }},
			{"duration", func() { c.duration = 1500 * time.Millisecond }},
			{"storm-clients", func() { c.stormClients = 10 }},
			{"storm-timeout", func() { c.stormTimeout = 30 * time.Second }},
		}
		for _, s := range short {
			if !set[s.name] {
				s.fn()
			}
		}
	}
	if c.scenarios, err = parseScenarios(*scen); err != nil {
		return err
	}
	switch {
	case c.clients < 1:
		return usagef("--clients %d: give at least 1", c.clients)
	case c.users < 1:
		return usagef("--users %d: give at least 1", c.users)
	case c.duration <= 0:
		return usagef("--duration %v: give a positive duration, such as 10s", c.duration)
	case c.stormClients < 0:
		return usagef("--storm-clients %d: must not be negative (0 skips the storm)", c.stormClients)
	case c.stormTimeout <= 0:
		return usagef("--storm-timeout %v: give a positive duration, such as 3m", c.stormTimeout)
	case c.adminWrites < 0 || c.adminWrites > 1000:
		return usagef("--admin-writes %d: give 0 to 1000 a second (0 skips the phase)", c.adminWrites)
	}
	return m.bench(ctx, c)
}

// parseScenarios turns the --scenarios list into scenario names in run order.
func parseScenarios(list string) ([]string, error) {
	want := map[string]bool{}
	for _, s := range strings.Split(list, ",") {
		s = strings.ToLower(strings.TrimSpace(s))
		if s == "" {
			continue
		}
		if a, ok := benchScenarioAlias[s]; ok {
			s = a
		}
		known := false
		for _, b := range benchScenarios {
			known = known || b == s
		}
		if !known {
			return nil, usagef("--scenarios: unknown scenario %q: choose from %s (or a, b, c, d)", s, strings.Join(benchScenarios, ", "))
		}
		want[s] = true
	}
	var out []string
	for _, s := range benchScenarios {
		if want[s] {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, usagef("--scenarios is empty: choose from %s", strings.Join(benchScenarios, ", "))
	}
	return out, nil
}

// bench is one run of the bench command.
type bench struct {
	m   *Main
	cfg benchConfig
	tmp string
	// token authorises the grant relay child to run on the bench's
	// directory; see runBenchGrantRelay.
	token string
	rep   *Report
}

// progress reports what the run is doing, on stderr.
func (b *bench) progress(format string, args ...any) {
	fmt.Fprintf(b.m.Stderr, "bench: "+format+"\n", args...)
}

func (m *Main) bench(ctx context.Context, c benchConfig) error {
	need := uint64(2*(c.clients+c.stormClients) + 256)
	if err := raiseOpenFiles(need); err != nil {
		return fmt.Errorf("bench: %w: lower --storm-clients or raise 'ulimit -n'", err)
	}
	tmp, err := os.MkdirTemp("", "authrelay-bench-*")
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(tmp)

	b := &bench{m: m, cfg: c, tmp: tmp, token: randomPassword()}
	b.rep = &Report{
		Command:  shellJoin(append([]string{"authrelay", "bench"}, c.args...)),
		Resolved: c.resolved(),
		Machine: Machine{
			OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(),
			GOMAXPROCS: runtime.GOMAXPROCS(0), Go: runtime.Version(),
			NATSServer: server.VERSION, Authrelay: version,
		},
		Settings: Settings{
			Clients: c.clients, Users: c.users, DurationS: c.duration.Seconds(),
			StormClients: c.stormClients, StormTimeoutS: c.stormTimeout.Seconds(),
			BcryptCost: m.bcryptCost(), ConnectTimeoutS: benchConnectTimeout.Seconds(),
			StormReconnectWaitMs:   float64(stormReconnectWait.Milliseconds()),
			StormReconnectJitterMs: float64(stormReconnectJitter.Milliseconds()),
			ServeArgs:              c.serveArgs,
		},
	}
	password := "bench-" + randomPassword()
	names := make([]string, c.users)
	for i := range names {
		names[i] = fmt.Sprintf("bench%05d", i)
	}

	l := Layout{Dir: filepath.Join(tmp, "relay")}
	steps := []struct {
		run bool
		fn  func() error
	}{
		{c.has(scenarioNoAuth), func() error { return b.runNoAuth(ctx) }},
		{c.has(scenarioBcrypt), func() error { return b.runBcrypt(ctx, names, password) }},
		{c.has(scenarioGrant) || c.has(scenarioShipped), func() error { return b.initRelayDir(ctx, l) }},
		{c.has(scenarioGrant), func() error { return b.runGrant(ctx, l, names, password) }},
		{c.has(scenarioShipped), func() error { return b.runShipped(ctx, l, names, password) }},
	}
	for _, s := range steps {
		if !s.run {
			continue
		}
		err := s.fn()
		// An interrupted run says so, whatever else went wrong with it.
		if ctx.Err() != nil {
			return fmt.Errorf("bench: interrupted: %w", ctx.Err())
		}
		if err != nil {
			return err
		}
	}
	b.rep.computeRatios()
	if c.json {
		return b.rep.WriteJSON(m.Stdout)
	}
	b.rep.WriteText(m.Stdout)
	return nil
}

// runNoAuth is scenario (a).
func (b *bench) runNoAuth(ctx context.Context) error {
	conf := filepath.Join(b.tmp, "noauth.conf")
	if err := os.WriteFile(conf, []byte("# (a) stock nats-server without authorization, written by 'authrelay bench'\n"), 0o600); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	srv, err := startBenchServer(conf, 0)
	if err != nil {
		return err
	}
	defer srv.stop()
	title := "nats-server, no auth"
	b.progress("(a) %s: %d clients for %v", title, b.cfg.clients, b.cfg.duration)
	res := b.measure(ctx, nil, connectLoad{url: srv.url(), clients: b.cfg.clients, duration: b.cfg.duration,
		creds: func() (string, string, bool) { return "", "", true }})
	res.ID, res.Name, res.Title = "a", scenarioNoAuth, title
	b.rep.Scenarios = append(b.rep.Scenarios, res.Scenario)
	return nil
}

// runBcrypt is scenario (b): static users in nats.conf, all with one bcrypt
// hash of the same password (a verify costs the same whatever the salt).
func (b *bench) runBcrypt(ctx context.Context, names []string, password string) error {
	cost := b.m.bcryptCost()
	b.progress("(b) hashing the password with bcrypt cost %d", cost)
	hash, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return fmt.Errorf("bench: bcrypt: %w", err)
	}
	var conf strings.Builder
	fmt.Fprintf(&conf, "# (b) stock nats-server with bcrypt cost-%d users, written by 'authrelay bench'\n", cost)
	conf.WriteString("authorization {\n  users: [\n")
	for _, n := range names {
		fmt.Fprintf(&conf, "    { user: %q, password: %q }\n", n, hash)
	}
	conf.WriteString("  ]\n}\n")
	path := filepath.Join(b.tmp, "bcrypt.conf")
	if err := os.WriteFile(path, []byte(conf.String()), 0o600); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	srv, err := startBenchServer(path, 0)
	if err != nil {
		return err
	}
	defer srv.stop()
	title := fmt.Sprintf("nats-server, bcrypt cost %d", cost)
	b.progress("(b) %s: %d clients for %v", title, b.cfg.clients, b.cfg.duration)
	res := b.measure(ctx, nil, connectLoad{url: srv.url(), clients: b.cfg.clients, duration: b.cfg.duration,
		creds: cycle(names, password)})
	res.ID, res.Name, res.Title = "b", scenarioBcrypt, title
	b.rep.Scenarios = append(b.rep.Scenarios, res.Scenario)
	return nil
}

// initRelayDir creates the authrelay directory (c) and (d) share, as 'init'
// does, and the token file that lets the grant relay run on it.
func (b *bench) initRelayDir(ctx context.Context, l Layout) error {
	b.progress("initialising %s", l.Dir)
	if err := initDir(ctx, l, []string{benchAccount}, defaultListen, b.m.bcryptCost()); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if err := os.WriteFile(l.Path(benchTokenFile), []byte(b.token), 0o600); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

// runGrant is scenario (c).
func (b *bench) runGrant(ctx context.Context, l Layout, names []string, password string) error {
	srv, err := startBenchServer(l.Path(serverConf), 0)
	if err != nil {
		return err
	}
	defer srv.stop()
	child, err := b.startRelay(ctx, benchCmd, benchGrantRelayCmd, "--dir", l.Dir, "--nats", srv.url())
	if err != nil {
		return err
	}
	defer child.stop()
	if err := child.awaitReady(ctx, srv.url(), benchProbeUser, password); err != nil {
		return err
	}
	title := "callout ceiling (grant, no store)"
	b.progress("(c) %s: %d clients for %v", title, b.cfg.clients, b.cfg.duration)
	res := b.measure(ctx, child, connectLoad{url: srv.url(), clients: b.cfg.clients, duration: b.cfg.duration,
		creds: cycle(names, password)})
	res.ID, res.Name, res.Title = "c", scenarioGrant, title
	b.rep.Scenarios = append(b.rep.Scenarios, res.Scenario)
	return child.stop()
}

// runShipped is scenario (d): cold logins, warm reconnects and the storm,
// against 'authrelay serve' in a child process.
func (b *bench) runShipped(ctx context.Context, l Layout, names []string, password string) error {
	params, err := b.addUsers(ctx, l, names, password)
	if err != nil {
		return err
	}
	b.rep.Settings.Argon2id = fmt.Sprintf("m=%d KiB, t=%d, p=%d", params.Memory, params.Time, params.Threads)
	srv, err := startBenchServer(l.Path(serverConf), 0)
	if err != nil {
		return err
	}
	defer srv.stop() // the server it is at the time: the storm restarts it
	metricsAddr, err := freeLoopbackAddr()
	if err != nil {
		return err
	}
	args := append([]string{"serve", "--dir", l.Dir, "--nats", srv.url(), "--http", metricsAddr}, b.cfg.serveArgs...)
	child, err := b.startRelay(ctx, args...)
	if err != nil {
		return err
	}
	defer child.stop()
	if err := child.awaitReady(ctx, srv.url(), benchProbeUser, password); err != nil {
		return err
	}

	// Cold: every user at most once.
	title := "authrelay cold logins"
	b.progress("(d) %s: %d clients for %v, %d users", title, b.cfg.clients, b.cfg.duration, len(names))
	res := b.measure(ctx, child, connectLoad{url: srv.url(), clients: b.cfg.clients, duration: b.cfg.duration,
		creds: once(names, password), collect: true})
	res.ID, res.Name, res.Title = "d", scenarioShipped+"-cold", title
	if res.exhausted {
		res.Note = fmt.Sprintf("all %d users had logged in after %.1fs: the phase ended early (give more --users)", len(names), res.Seconds)
	}
	b.rep.Scenarios = append(b.rep.Scenarios, res.Scenario)
	warm := res.authorised
	if len(warm) == 0 {
		b.rep.Notes = append(b.rep.Notes, "(d) no cold login succeeded: warm reconnects and the storm were skipped")
		return child.stop()
	}

	// Warm: the same users again.
	title = "authrelay warm reconnects"
	b.progress("(d) %s: %d clients for %v, %d users", title, b.cfg.clients, b.cfg.duration, len(warm))
	res, err = b.measureVerified(ctx, child, metricsAddr, connectLoad{url: srv.url(), clients: b.cfg.clients, duration: b.cfg.duration,
		creds: cycle(warm, password)})
	if err != nil {
		return err
	}
	res.ID, res.Name, res.Title = "d", scenarioShipped+"-warm", title
	res.Note = fmt.Sprintf("the %d users of the cold phase, again", len(warm))
	if res.Relay != nil && res.Relay.Verifications != nil {
		res.Note += fmt.Sprintf("; %d password verifications", *res.Relay.Verifications)
	}
	b.rep.Scenarios = append(b.rep.Scenarios, res.Scenario)
	warmRes := res.Scenario

	if b.cfg.adminWrites > 0 && ctx.Err() == nil {
		if err := b.runWarmWithWrites(ctx, l, child, metricsAddr, srv.url(), warm, password, &warmRes); err != nil {
			return err
		}
	}

	if b.cfg.stormClients > 0 && ctx.Err() == nil {
		st, err := b.storm(ctx, srv, child, warm, password)
		if err != nil {
			return err
		}
		b.rep.Storm = st
	}
	return child.stop()
}

// addUsers adds the users of (d) and the readiness probe's user to the
// store, all with one argon2id hash at the store's policy (the default on a
// fresh directory): verifying costs the same whatever the salt, and hashing
// each user's password would cost the run one hash per user. It returns the
// policy.
func (b *bench) addUsers(ctx context.Context, l Layout, names []string, password string) (store.Argon2Params, error) {
	db, err := l.openDatabase(ctx)
	if err != nil {
		return store.Argon2Params{}, fmt.Errorf("bench: %w", err)
	}
	defer db.Close()
	hash, err := store.HashPassword(password, db.Params)
	if err != nil {
		return store.Argon2Params{}, fmt.Errorf("bench: %w", err)
	}
	b.progress("(d) adding %d users (argon2id %d KiB, t=%d)", len(names), db.Params.Memory, db.Params.Time)
	for _, n := range append([]string{benchProbeUser, benchAdminUser}, names...) {
		if err := db.AddUserWithHash(ctx, benchUser(n), hash); err != nil {
			return store.Argon2Params{}, fmt.Errorf("bench: %w", err)
		}
	}
	if err := db.Close(); err != nil {
		return store.Argon2Params{}, fmt.Errorf("bench: close store: %w", err)
	}
	return db.Params, nil
}

// Names of the bench's users and account.
const (
	benchAccount   = "APP"
	benchProbeUser = "bench-probe"
)

// benchUser is a user of (d), and the user the grant relay of (c) issues:
// the same account and permissions, so both sign the same claims.
func benchUser(name string) accounts.User {
	return accounts.User{
		Name:    name,
		Account: benchAccount,
		Permissions: accounts.Permissions{
			Pub: accounts.Rule{Allow: []string{"bench.>"}},
			Sub: accounts.Rule{Allow: []string{"bench.>", "_INBOX.>"}},
		},
	}
}

// cycle returns credentials that go round names.
func cycle(names []string, password string) func() (string, string, bool) {
	var i atomic.Uint64
	return func() (string, string, bool) {
		n := i.Add(1) - 1
		return names[n%uint64(len(names))], password, true
	}
}

// once returns credentials that give each name once, then run out.
func once(names []string, password string) func() (string, string, bool) {
	var i atomic.Int64
	return func() (string, string, bool) {
		n := i.Add(1) - 1
		if n >= int64(len(names)) {
			return "", "", false
		}
		return names[n], password, true
	}
}
