// Package bench is the harness of 'authrelay bench' and authrelay-bench:
// it measures logins on this machine, side by side, in one run — stock
// nats-server without auth and with bcrypt users, the callout protocol
// ceiling, and authrelay as shipped (cold logins, warm reconnects, warm
// reconnects under admin writes, a reconnect storm) — and returns a Report
// to print as text or JSON.
//
// nats-server and the load generator run in the calling process, on
// 127.0.0.1; 'authrelay init' and 'authrelay serve' run as child processes
// of the authrelay executable named in Config (or init through Config.Init),
// so that the relay's CPU time and peak RSS are its own. The grant relay of the ceiling scenario is not
// in this package: it is authrelay-bench's 'grant-relay' command (package
// grantrelay), which Config.GrantRelay names; the authrelay binary links
// this package but never the grant relay.
//
// The package may import accounts, store, nats.go and nats-server; never
// cmd. It prints nothing itself: progress goes to Config.Progress.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"golang.org/x/crypto/bcrypt"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/store"
)

// Scenario names, in the order they run.
const (
	ScenarioNoAuth  = "noauth"
	ScenarioBcrypt  = "bcrypt"
	ScenarioGrant   = "grant"
	ScenarioShipped = "shipped"
)

// scenarioNames returns the scenarios, in the order they run; the letters
// the report uses for them are a to d, in the same order.
func scenarioNames() []string {
	return []string{ScenarioNoAuth, ScenarioBcrypt, ScenarioGrant, ScenarioShipped}
}

// grantTitle is the report's title of scenario (c).
const grantTitle = "callout ceiling (grant, no store)"

// Settings of a run that are not flags. They are printed in the report.
const (
	connectTimeout = 5 * time.Second
	// Storm clients retry every 250 ms to 1 s: a small reconnect wait with
	// jitter, so that they come back as a burst, as after a real restart.
	stormReconnectWait   = 250 * time.Millisecond
	stormReconnectJitter = 750 * time.Millisecond
	// relayReady bounds the wait for a relay child to answer logins.
	relayReady = 60 * time.Second
)

// The files of an authrelay directory that the bench reads, as 'authrelay
// init' writes them.
const (
	serverConf   = deploy.ServerConf
	databaseFile = deploy.DatabaseFile
)

// defaultBcryptCost is the cost of the bcrypt hashes of (b), that of the
// static users of the nats.conf 'authrelay init' writes.
const defaultBcryptCost = deploy.DefaultBcryptCost

// The environment of the bench's child processes.
const (
	// ChildEnv is set (to 1) in the environment of every child that the
	// bench starts. The authrelay and authrelay-bench binaries ignore it; a
	// test binary standing in for one of them runs the child's command
	// line when it is set.
	ChildEnv = "AUTHRELAY_BENCH_CHILD"
	// TokenEnv carries the token that TokenFile in the directory must hold
	// for the grant relay to run: only the bench that created the
	// directory knows it.
	TokenEnv = "AUTHRELAY_BENCH_TOKEN"
	// TokenFile is the file in the bench's authrelay directory that holds
	// the token.
	TokenFile = "bench-token"
	// GrantRelayCommand is the authrelay-bench command that runs the grant
	// relay: GrantRelay grant-relay --dir DIR --nats URL.
	GrantRelayCommand = "grant-relay"
)

// Config is one run of the bench.
type Config struct {
	// Clients is the number of concurrent clients, each connecting and
	// closing in a loop.
	Clients int
	// Users is the number of users of (b) and (d).
	Users int
	// Duration is how long each scenario, and each phase of (d), runs.
	Duration time.Duration
	// StormClients is the number of clients of the reconnect storm of (d);
	// 0 skips it.
	StormClients int
	// StormTimeout bounds the wait for the storm clients to connect, and
	// again for them to come back.
	StormTimeout time.Duration
	// AdminWrites is the admin changes a second of the warm phase with
	// writes of (d); 0 skips the phase.
	AdminWrites int
	// Scenarios are the scenarios to run, in run order (see
	// ParseScenarios).
	Scenarios []string
	// ServeArgs are extra arguments for 'authrelay serve' in (d).
	ServeArgs []string
	// JSON records in the resolved command line that the report is JSON.
	JSON bool
	// Cluster runs scenario (e), a cluster of three nodes, after the
	// others.
	Cluster bool
	// ImportUsers is the users (e) imports on its first node, to time
	// until every relay has them; 0 skips the import.
	ImportUsers int
	// Operator runs scenario (f), (d) in operator mode, after (d).
	Operator bool

	// Program is the command that runs the bench, such as
	// ["authrelay", "bench"], and Args its arguments as given: the report
	// begins with them, and with the same command with every setting
	// spelled out.
	Program, Args []string
	// Authrelay is the path of the authrelay executable that runs 'serve'
	// for (d), and 'init' for (c) and (d) unless Init is set.
	Authrelay string
	// Init, when not nil, creates the authrelay directory dir, with the
	// application account Account, as 'authrelay init --dir DIR --account
	// APP' does (with --operator when operator is set, for (f)); nil runs
	// that command from Authrelay.
	Init func(ctx context.Context, dir string, operator bool) error
	// Version is the version of that authrelay, for the report.
	Version string
	// GrantRelay is the path of an authrelay-bench executable that runs
	// the grant relay of (c). When it is empty, (c) is reported as skipped
	// with GrantRelaySkip as the reason.
	GrantRelay     string
	GrantRelaySkip string
	// BcryptCost is the bcrypt cost of (b); 0 means 11, that of the static
	// users in the nats.conf 'authrelay init' writes.
	BcryptCost int
	// Progress, when not nil, is told what the run is doing, a line at a
	// time.
	Progress func(line string)
}

// Has reports whether c runs scenario.
func (c Config) Has(scenario string) bool {
	for _, s := range c.Scenarios {
		if s == scenario {
			return true
		}
	}
	return false
}

func (c Config) bcryptCost() int {
	if c.BcryptCost > 0 {
		return c.BcryptCost
	}
	return defaultBcryptCost
}

// resolved returns the bench command line with every setting spelled out.
func (c Config) resolved() string {
	parts := append(append([]string(nil), c.Program...),
		"--clients", fmt.Sprint(c.Clients),
		"--users", fmt.Sprint(c.Users),
		"--duration", c.Duration.String(),
		"--storm-clients", fmt.Sprint(c.StormClients),
		"--storm-timeout", c.StormTimeout.String(),
		"--admin-writes", fmt.Sprint(c.AdminWrites),
		"--scenarios", strings.Join(c.Scenarios, ","),
	)
	for _, a := range c.ServeArgs {
		parts = append(parts, "--serve-arg="+a)
	}
	if c.Cluster {
		parts = append(parts, "--cluster", "--import-users", fmt.Sprint(c.ImportUsers))
	}
	if c.JSON {
		parts = append(parts, "--json")
	}
	return ShellJoin(parts)
}

// ParseScenarios turns a --scenarios list (names or the letters a to d,
// comma-separated) into scenario names in run order. Its errors are
// *UsageError.
func ParseScenarios(list string) ([]string, error) {
	want := map[string]bool{}
	for _, s := range strings.Split(list, ",") {
		s = strings.ToLower(strings.TrimSpace(s))
		if s == "" {
			continue
		}
		names := scenarioNames()
		if len(s) == 1 && s >= "a" && s <= "d" {
			s = names[s[0]-'a']
		}
		if !slices.Contains(names, s) {
			return nil, usagef("--scenarios: unknown scenario %q: choose from %s (or a, b, c, d)", s, strings.Join(names, ", "))
		}
		want[s] = true
	}
	var out []string
	for _, s := range scenarioNames() {
		if want[s] {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, usagef("--scenarios is empty: choose from %s", strings.Join(scenarioNames(), ", "))
	}
	return out, nil
}

// bench is one run.
type bench struct {
	cfg Config
	tmp string
	// token authorises the grant relay child to run on the bench's
	// directory; see package grantrelay.
	token string
	// password is every bench user's.
	password string
	rep      *Report
	// progressMu serialises the calls of Config.Progress: the relays of
	// (e) start side by side.
	progressMu sync.Mutex
}

// progress reports what the run is doing.
func (b *bench) progress(format string, args ...any) {
	if b.cfg.Progress != nil {
		b.progressMu.Lock()
		defer b.progressMu.Unlock()
		b.cfg.Progress(fmt.Sprintf(format, args...))
	}
}

// Run runs the scenarios of c and returns the report. It works in a
// temporary directory that it removes at the end, and uses only 127.0.0.1.
// An interrupted run (ctx done) returns an error that says so.
func Run(ctx context.Context, c Config) (*Report, error) {
	if c.Clients < 1 || c.Users < 1 || c.Duration <= 0 || c.StormClients < 0 || c.StormTimeout <= 0 || c.AdminWrites < 0 || c.ImportUsers < 0 || len(c.Scenarios) == 0 {
		return nil, fmt.Errorf("bench: invalid config: %d clients, %d users, duration %v, %d storm clients, storm timeout %v, %d admin writes/s, %d import users, scenarios %q (see Flags)",
			c.Clients, c.Users, c.Duration, c.StormClients, c.StormTimeout, c.AdminWrites, c.ImportUsers, c.Scenarios)
	}
	if (c.Has(ScenarioShipped) || c.Cluster || c.Operator || c.Has(ScenarioGrant) && c.GrantRelay != "" && c.Init == nil) && c.Authrelay == "" {
		return nil, fmt.Errorf("bench: no authrelay executable to run (c) and (d) with")
	}
	need := uint64(2*(c.Clients+c.StormClients) + 256)
	if err := raiseOpenFiles(need); err != nil {
		return nil, fmt.Errorf("bench: %w: lower --storm-clients or raise 'ulimit -n'", err)
	}
	tmp, err := os.MkdirTemp("", "authrelay-bench-*")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(tmp)

	b := &bench{cfg: c, tmp: tmp, token: randomHex()}
	b.rep = &Report{
		Command:  ShellJoin(append(append([]string(nil), c.Program...), c.Args...)),
		Resolved: c.resolved(),
		Machine: Machine{
			OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(),
			GOMAXPROCS: runtime.GOMAXPROCS(0), Go: runtime.Version(),
			NATSServer: server.VERSION, Authrelay: c.Version,
		},
		Settings: Settings{
			Clients: c.Clients, Users: c.Users, DurationS: c.Duration.Seconds(),
			StormClients: c.StormClients, StormTimeoutS: c.StormTimeout.Seconds(),
			BcryptCost: c.bcryptCost(), ConnectTimeoutS: connectTimeout.Seconds(),
			StormReconnectWaitMs:   float64(stormReconnectWait.Milliseconds()),
			StormReconnectJitterMs: float64(stormReconnectJitter.Milliseconds()),
			ServeArgs:              c.ServeArgs,
		},
	}
	password := "bench-" + randomHex()
	b.password = password
	names := make([]string, c.Users)
	for i := range names {
		names[i] = fmt.Sprintf("bench%05d", i)
	}

	dir := filepath.Join(tmp, "relay")
	grant := c.Has(ScenarioGrant) && c.GrantRelay != ""
	if c.Has(ScenarioGrant) && !grant {
		reason := c.GrantRelaySkip
		if reason == "" {
			reason = "no authrelay-bench to run the grant relay with"
		}
		b.rep.Skipped = append(b.rep.Skipped, Skipped{ID: "c", Name: ScenarioGrant, Title: grantTitle, Reason: reason})
	}
	steps := []struct {
		run bool
		fn  func() error
	}{
		{c.Has(ScenarioNoAuth), func() error { return b.runNoAuth(ctx) }},
		{c.Has(ScenarioBcrypt), func() error { return b.runBcrypt(ctx, names, password) }},
		{grant || c.Has(ScenarioShipped), func() error { return b.initRelayDir(ctx, dir) }},
		{grant, func() error { return b.runGrant(ctx, dir, names, password) }},
		{c.Has(ScenarioShipped), func() error { return b.runShipped(ctx, dir, names, password) }},
		{c.Operator, func() error { return b.runOperator(ctx, names, password) }},
		{c.Cluster, func() error { return b.runCluster(ctx, names, password) }},
	}
	for _, s := range steps {
		if !s.run {
			continue
		}
		err := s.fn()
		// An interrupted run says so, whatever else went wrong with it.
		if ctx.Err() != nil {
			return nil, fmt.Errorf("bench: interrupted: %w", ctx.Err())
		}
		if err != nil {
			return nil, err
		}
	}
	b.rep.computeRatios()
	return b.rep, nil
}

// randomHex returns 32 random bytes, hex-encoded.
func randomHex() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms.
	}
	return hex.EncodeToString(b)
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
	b.progress("(a) %s: %d clients for %v", title, b.cfg.Clients, b.cfg.Duration)
	res := b.measure(ctx, nil, connectLoad{url: srv.url(), clients: b.cfg.Clients, duration: b.cfg.Duration,
		creds: func() (string, string, bool) { return "", "", true }})
	res.ID, res.Name, res.Title = "a", ScenarioNoAuth, title
	b.rep.Scenarios = append(b.rep.Scenarios, res.Scenario)
	return nil
}

// runBcrypt is scenario (b): static users in nats.conf, all with one bcrypt
// hash of the same password (a verify costs the same whatever the salt).
func (b *bench) runBcrypt(ctx context.Context, names []string, password string) error {
	cost := b.cfg.bcryptCost()
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
	b.progress("(b) %s: %d clients for %v", title, b.cfg.Clients, b.cfg.Duration)
	res := b.measure(ctx, nil, connectLoad{url: srv.url(), clients: b.cfg.Clients, duration: b.cfg.Duration,
		creds: cycle(names, password)})
	res.ID, res.Name, res.Title = "b", ScenarioBcrypt, title
	b.rep.Scenarios = append(b.rep.Scenarios, res.Scenario)
	return nil
}

// initRelayDir creates the authrelay directory (c) and (d) share, as
// 'authrelay init' does, and the token file that lets the grant relay run on
// it.
func (b *bench) initRelayDir(ctx context.Context, dir string) error {
	b.progress("initialising %s", dir)
	if b.cfg.Init != nil {
		if err := b.cfg.Init(ctx, dir, false); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
	} else if err := b.runAuthrelay(ctx, "init", "--dir", dir, "--account", Account); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, TokenFile), []byte(b.token), 0o600); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

// runGrant is scenario (c).
func (b *bench) runGrant(ctx context.Context, dir string, names []string, password string) error {
	srv, err := startBenchServer(filepath.Join(dir, serverConf), 0)
	if err != nil {
		return err
	}
	defer srv.stop()
	child, err := b.startRelay(ctx, b.cfg.GrantRelay, "authrelay-bench "+GrantRelayCommand,
		[]string{TokenEnv + "=" + b.token}, GrantRelayCommand, "--dir", dir, "--nats", srv.url())
	if err != nil {
		return err
	}
	defer child.stop()
	if err := child.awaitReady(ctx, srv.url(), probeUser, password); err != nil {
		return err
	}
	title := grantTitle
	b.progress("(c) %s: %d clients for %v", title, b.cfg.Clients, b.cfg.Duration)
	res := b.measure(ctx, child, connectLoad{url: srv.url(), clients: b.cfg.Clients, duration: b.cfg.Duration,
		creds: cycle(names, password)})
	res.ID, res.Name, res.Title = "c", ScenarioGrant, title
	b.rep.Scenarios = append(b.rep.Scenarios, res.Scenario)
	return child.stop()
}

// served is a relay child serving a directory, with its nats-server in
// this process and the relay's metrics address.
type served struct {
	srv         *benchServer
	child       *relayProc
	metricsAddr string
}

// stop stops the relay, then the server.
func (s *served) stop() error {
	err := s.child.stop()
	s.srv.stop()
	return err
}

// serve starts a nats-server from dir's nats.conf and 'authrelay serve'
// on dir in a child (named name in errors), and waits until the relay
// answers logins.
func (b *bench) serve(ctx context.Context, dir, name, password string) (*served, error) {
	srv, err := startBenchServer(filepath.Join(dir, serverConf), 0)
	if err != nil {
		return nil, err
	}
	metricsAddr, err := freeLoopbackAddr()
	if err != nil {
		srv.stop()
		return nil, err
	}
	args := append([]string{"serve", "--dir", dir, "--nats", srv.url(), "--http", metricsAddr}, b.cfg.ServeArgs...)
	child, err := b.startRelay(ctx, b.cfg.Authrelay, name, nil, args...)
	if err != nil {
		srv.stop()
		return nil, err
	}
	s := &served{srv: srv, child: child, metricsAddr: metricsAddr}
	if err := child.awaitReady(ctx, srv.url(), probeUser, password); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// coldWarm runs the cold phase (each user of names logs in at most once)
// and the warm one (those that did, again, with the password
// verifications the relay ran) against s, as scenario id with names
// prefix+"-cold" and prefix+"-warm" and the titles cold and warm. It
// returns the users of the warm phase (none: the cold phase granted
// nobody, and the warm one did not run) and the warm phase's result.
func (b *bench) coldWarm(ctx context.Context, s *served, id, prefix, cold, warm string, names []string, password string) ([]string, Scenario, error) {
	b.progress("(%s) %s: %d clients for %v, %d users", id, cold, b.cfg.Clients, b.cfg.Duration, len(names))
	res := b.measure(ctx, s.child, connectLoad{url: s.srv.url(), clients: b.cfg.Clients, duration: b.cfg.Duration,
		creds: once(names, password), collect: true})
	res.ID, res.Name, res.Title = id, prefix+"-cold", cold
	if res.exhausted {
		res.Note = fmt.Sprintf("all %d users had logged in after %.1fs: the phase ended early (give more --users)", len(names), res.Seconds)
	}
	b.rep.Scenarios = append(b.rep.Scenarios, res.Scenario)
	users := res.authorised
	if len(users) == 0 {
		b.rep.Notes = append(b.rep.Notes, fmt.Sprintf("(%s) no cold login succeeded: the phases after it were skipped", id))
		return nil, Scenario{}, nil
	}
	b.progress("(%s) %s: %d clients for %v, %d users", id, warm, b.cfg.Clients, b.cfg.Duration, len(users))
	res, err := b.measureVerified(ctx, s.child, s.metricsAddr, connectLoad{url: s.srv.url(), clients: b.cfg.Clients, duration: b.cfg.Duration,
		creds: cycle(users, password)})
	if err != nil {
		return nil, Scenario{}, err
	}
	res.ID, res.Name, res.Title = id, prefix+"-warm", warm
	res.Note = fmt.Sprintf("the %d users of the cold phase, again", len(users))
	if res.Relay != nil && res.Relay.Verifications != nil {
		res.Note += fmt.Sprintf("; %d password verifications", *res.Relay.Verifications)
	}
	b.rep.Scenarios = append(b.rep.Scenarios, res.Scenario)
	return users, res.Scenario, nil
}

// runShipped is scenario (d): cold logins, warm reconnects and the storm,
// against 'authrelay serve' in a child process.
func (b *bench) runShipped(ctx context.Context, dir string, names []string, password string) error {
	params, err := b.addUsers(ctx, dir, names, password)
	if err != nil {
		return err
	}
	b.rep.Settings.Argon2id = fmt.Sprintf("m=%d KiB, t=%d, p=%d", params.Memory, params.Time, params.Threads)
	s, err := b.serve(ctx, dir, "authrelay serve", password)
	if err != nil {
		return err
	}
	defer s.stop() // the server it is at the time: the storm restarts it
	srv, child, metricsAddr := s.srv, s.child, s.metricsAddr
	warm, warmRes, err := b.coldWarm(ctx, s, "d", ScenarioShipped, "authrelay cold logins", "authrelay warm reconnects", names, password)
	if err != nil || len(warm) == 0 {
		return err
	}

	if ctx.Err() == nil {
		if err := b.runCredentials(ctx, dir, s); err != nil {
			return err
		}
	}
	if b.cfg.AdminWrites > 0 && ctx.Err() == nil {
		if err := b.runWarmWithWrites(ctx, dir, child, metricsAddr, srv.url(), warm, password, &warmRes); err != nil {
			return err
		}
	}

	if b.cfg.StormClients > 0 && ctx.Err() == nil {
		st, err := b.storm(ctx, srv, child, warm, password)
		if err != nil {
			return err
		}
		b.rep.Storm = st
	}
	var logins int64
	for _, sc := range b.rep.Scenarios {
		if sc.ID == "d" {
			logins += sc.Connects
		}
	}
	if st := b.rep.Storm; st != nil {
		logins += int64(st.Connected + st.Back)
	}
	b.recordMemory("(d) single node", child, len(names)+2, logins)
	return child.stop()
}

// addUsers adds the users of (d) and the readiness probe's user to the
// store, all with one argon2id hash at the store's policy (the default on a
// fresh directory): verifying costs the same whatever the salt, and hashing
// each user's password would cost the run one hash per user. It returns the
// policy.
func (b *bench) addUsers(ctx context.Context, dir string, names []string, password string) (store.Argon2Params, error) {
	db, err := store.OpenExisting(ctx, filepath.Join(dir, databaseFile))
	if err != nil {
		return store.Argon2Params{}, fmt.Errorf("bench: %w", err)
	}
	defer db.Close()
	hash, err := store.HashPassword(password, db.Params)
	if err != nil {
		return store.Argon2Params{}, fmt.Errorf("bench: %w", err)
	}
	b.progress("adding %d users to %s (argon2id %d KiB, t=%d)", len(names), filepath.Base(dir), db.Params.Memory, db.Params.Time)
	// One admin change, one transaction: a transaction per user would
	// cost a commit each, minutes for 100,000 users.
	err = db.Admin(ctx, "authrelay-bench", "bench users", func(ctx context.Context) (string, error) {
		for _, n := range append([]string{probeUser, adminUser}, names...) {
			if err := db.AddUserWithHash(ctx, User(n), hash); err != nil {
				return "", err
			}
		}
		return fmt.Sprintf("%d users", len(names)+2), nil
	})
	if err != nil {
		return store.Argon2Params{}, fmt.Errorf("bench: %w", err)
	}
	if err := db.Close(); err != nil {
		return store.Argon2Params{}, fmt.Errorf("bench: close store: %w", err)
	}
	return db.Params, nil
}

// Account is the application account of the bench's users.
const Account = "APP"

// probeUser is the user the bench logs in as to learn that a relay answers.
const probeUser = "bench-probe"

// User is a user of (d), and the user the grant relay of (c) issues for
// any name: the same account and permissions, so both sign the same claims.
func User(name string) accounts.User {
	return accounts.User{
		Name:    name,
		Account: Account,
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
