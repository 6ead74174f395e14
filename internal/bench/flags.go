package bench

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Description is the part of the bench's usage text that 'authrelay bench'
// and authrelay-bench share: what a run measures and how. Each puts its own
// usage line before it and its examples after it.
const Description = `
Measures logins on this machine, side by side, in one run:

  (a) noauth   stock nats-server without authorization
  (b) bcrypt   stock nats-server with static users whose nats.conf
               passwords are bcrypt hashes (cost 11)
  (c) grant    the callout protocol ceiling: authrelay's own responder,
               with the same xkey sealing and signing, granting every login
               at once (no store, no password hashing). It is not part of
               the authrelay binary: it is authrelay-bench's grant relay.
               'authrelay bench' runs the authrelay-bench beside it or on
               PATH (or --grant-relay PATH), and reports (c) as skipped
               without one; build it with
               'go build -o DIR/authrelay-bench ./cmd/authrelay-bench'.
  (d) shipped  authrelay as shipped: 'authrelay serve' on a fresh directory
               whose users are hashed at the default argon2id policy.
               cold:  each user logs in once (nothing cached)
               warm:  the same users log in again
               nkey, token: 100 users with an nkey, and 100 with an API
                      token, log in round and round (beside warm)
               warm, admin writes: the same again while an admin changes
                      a user no client is, --admin-writes times a second
                      (from this process, as the CLI would); with the
                      password verifications the relay ran (its /metrics)
               storm: --storm-clients clients connected (as the users of
                      the cold phase, round-robin), the server restarted;
                      the time until every client is back and authorised,
                      and how many gave up
  (e) cluster  only with --cluster, after the others: three nodes made
               with the commands (init of n1 with the users of (d),
               cluster enable, init --join of n2 and n3), their
               nats-servers in this process, routed on 127.0.0.1 with
               JetStream, and an 'authrelay serve' child per server.
               cold:  as in (d), through n2's server
               warm:  as in (d), after a warm-up: the server hands a login
                      to any relay of the queue group, each with its own
                      cache, so the users log in again until three
                      passes over them in a row verify no password
               the ratio of each to (d), the single node of the same run;
               import: 'authrelay import' on n1 of a nats.conf with
                      --import-users bcrypt users, and the time until every
                      relay's copy has them and a login of the last one
                      through its server succeeds, then until the relays
                      are idle again (they look for the connections of
                      every changed user)
  (f) operator only with --operator, after (d): its cold and warm phases
               against a directory made with 'authrelay init --operator'
               (account JWTs in a full resolver, the default sentinel);
               the ratio of each to (d), config mode, in the same run

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
4 clients, 100 users, 1.5s per scenario, a storm of 10 clients, an
import of 500 users in (e); flags given with it still apply.

The report ends with each relay's resident set (VmRSS and its peak) at the
end of its scenario, with the users in its store: run with --users 100000
for the memory of a relay with 100,000 users.
`

// UsageError is a mistake in the bench's command line.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

func usagef(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

// Flags are the bench's flags, which 'authrelay bench' and authrelay-bench
// share, registered on a flag.FlagSet.
type Flags struct {
	fs        *flag.FlagSet
	c         Config
	scenarios string
	short     bool
	serveArgs stringList
}

// NewFlags registers the bench's flags on fs.
func NewFlags(fs *flag.FlagSet) *Flags {
	f := &Flags{fs: fs}
	fs.IntVar(&f.c.Clients, "clients", 16, "concurrent clients, each connecting and closing in a loop")
	fs.IntVar(&f.c.Users, "users", 2000, "users in (b) and (d); cold logins use each at most once")
	fs.DurationVar(&f.c.Duration, "duration", 10*time.Second, "how long each scenario (and each phase of (d)) runs")
	fs.IntVar(&f.c.StormClients, "storm-clients", 5000, "clients connected for the reconnect storm of (d) (0 = no storm)")
	fs.DurationVar(&f.c.StormTimeout, "storm-timeout", 3*time.Minute, "longest wait for the storm clients to connect, and again for them to come back")
	fs.IntVar(&f.c.AdminWrites, "admin-writes", 1, "admin changes a second to an unrelated user during the warm phase with writes of (d) (0 = no such phase)")
	fs.StringVar(&f.scenarios, "scenarios", strings.Join(scenarioNames(), ","), "comma-separated subset of noauth,bcrypt,grant,shipped (or a,b,c,d)")
	fs.BoolVar(&f.c.JSON, "json", false, "print the report as JSON")
	fs.BoolVar(&f.c.Cluster, "cluster", false, "also run (e): a three-node cluster, its logins through one node beside (d)'s single node")
	fs.BoolVar(&f.c.Operator, "operator", false, "also run (f): (d)'s cold and warm phases with a directory in operator mode, beside (d)")
	fs.IntVar(&f.c.ImportUsers, "import-users", 10000, "users (e) imports on its first node, timed until every relay can log one in (0 = no import)")
	fs.BoolVar(&f.short, "short", false, "quick mode for CI: 4 clients, 100 users, 1.5s per scenario, a storm of 10 clients")
	fs.Var(&f.serveArgs, "serve-arg", "extra argument for 'authrelay serve' in (d), such as --serve-arg=--workers=8 (repeatable)")
	return f
}

// Config returns the settings of the parsed flags: --short's defaults for
// the flags not given with it, the scenarios in run order. It checks them;
// its errors are *UsageError. The caller fills in the rest of the Config.
func (f *Flags) Config() (Config, error) {
	c := f.c
	c.ServeArgs = append([]string(nil), f.serveArgs...)
	if f.short {
		set := map[string]bool{}
		f.fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
		short := []struct {
			name string
			fn   func()
		}{
			{"clients", func() { c.Clients = 4 }},
			{"users", func() { c.Users = 100 }},
			{"duration", func() { c.Duration = 1500 * time.Millisecond }},
			{"storm-clients", func() { c.StormClients = 10 }},
			{"storm-timeout", func() { c.StormTimeout = 30 * time.Second }},
			{"import-users", func() { c.ImportUsers = 500 }},
		}
		for _, s := range short {
			if !set[s.name] {
				s.fn()
			}
		}
	}
	var err error
	if c.Scenarios, err = ParseScenarios(f.scenarios); err != nil {
		return Config{}, err
	}
	switch {
	case c.Clients < 1:
		return Config{}, usagef("--clients %d: give at least 1", c.Clients)
	case c.Users < 1:
		return Config{}, usagef("--users %d: give at least 1", c.Users)
	case c.Duration <= 0:
		return Config{}, usagef("--duration %v: give a positive duration, such as 10s", c.Duration)
	case c.StormClients < 0:
		return Config{}, usagef("--storm-clients %d: must not be negative (0 skips the storm)", c.StormClients)
	case c.StormTimeout <= 0:
		return Config{}, usagef("--storm-timeout %v: give a positive duration, such as 3m", c.StormTimeout)
	case c.AdminWrites < 0 || c.AdminWrites > 1000:
		return Config{}, usagef("--admin-writes %d: give 0 to 1000 a second (0 skips the phase)", c.AdminWrites)
	case c.ImportUsers < 0 || c.ImportUsers > 1000000:
		return Config{}, usagef("--import-users %d: give 0 to 1000000 (0 skips the import)", c.ImportUsers)
	}
	return c, nil
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }

func (s *stringList) Set(v string) error {
	*s = append(*s, v)
	return nil
}

// FindProgram returns the path of the executable name: the one in the
// directory of the program self, if there is one, else the first in the
// absolute directories of pathList (a $PATH value); "" if there is none.
func FindProgram(name, self, pathList string) string {
	dirs := filepath.SplitList(pathList)
	if self != "" {
		dirs = append([]string{filepath.Dir(self)}, dirs...)
	}
	for _, d := range dirs {
		if !filepath.IsAbs(d) {
			// An empty or relative entry means a place relative to the
			// working directory: never run a program from there (as
			// exec.LookPath refuses to).
			continue
		}
		p := filepath.Join(d, name)
		if isExecutable(p) {
			return p
		}
	}
	return ""
}

// CheckProgram returns an error unless path is an executable file.
func CheckProgram(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", path)
	}
	return nil
}

func isExecutable(path string) bool { return CheckProgram(path) == nil }
