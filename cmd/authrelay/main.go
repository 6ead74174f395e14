// Command authrelay is an identity relay for NATS: it answers nats-server
// auth_callout requests from users kept in SQLite, and manages those users.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"os/user"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/store"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := NewMain()
	os.Exit(m.Exit(m.Run(ctx, os.Args[1:])))
}

// Main is the authrelay program with its environment, so tests can run it
// in-process.
type Main struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Getenv reads the environment.
	Getenv func(string) string
	// CurrentUser looks up the OS user running the program, the actor of
	// admin audit rows; nil means user.Current.
	CurrentUser func() (*user.User, error)
	// Now is the clock.
	Now func() time.Time
	// ReadPassword reads a password without echo from a terminal; it is nil
	// when standard input is not a terminal.
	ReadPassword func(prompt string) (string, error)
	// Ready, when not nil, is called by serve once the relay answers requests,
	// with the NATS URL clients connect to.
	Ready func(url string)
	// Hup delivers reload requests to serve; nil means SIGHUP.
	Hup <-chan os.Signal
	// BcryptCost is the cost of the bcrypt hashes init writes into nats.conf
	// for the relay and admin users; 0 means deploy.DefaultBcryptCost.
	BcryptCost int

	// dir is a --dir given before the command, the default of the
	// command's own --dir.
	dir string
}

func (m *Main) bcryptCost() int {
	if m.BcryptCost > 0 {
		return m.BcryptCost
	}
	return deploy.DefaultBcryptCost
}

// NewMain returns a Main wired to the process's standard streams.
func NewMain() *Main {
	m := &Main{
		Stdin:  os.Stdin,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		Getenv: os.Getenv,
		Now:    time.Now,
	}
	if fd := int(os.Stdin.Fd()); term.IsTerminal(fd) {
		m.ReadPassword = func(prompt string) (string, error) {
			fmt.Fprint(os.Stderr, prompt)
			b, err := term.ReadPassword(fd)
			fmt.Fprintln(os.Stderr)
			return string(b), err
		}
	}
	return m
}

// usageError is a mistake in the command line; it exits with status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// Exit prints err, if any, and returns the process exit status for it.
func (m *Main) Exit(err error) int {
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue), errors.Is(err, deploy.ErrInvalid):
		fmt.Fprintf(m.Stderr, "authrelay: %v\n", err)
		return exitUsage
	case errors.Is(err, store.ErrReservedAccount):
		fmt.Fprintf(m.Stderr, "authrelay: %v; %s\n", err, reservedHint)
		return exitUsage
	default:
		fmt.Fprintf(m.Stderr, "authrelay: %v\n", err)
		return exitFailure
	}
}

const mainUsage = `authrelay is an identity relay for NATS: nats-server delegates every client
login to it through auth_callout, and it answers from users kept in SQLite
with a signed user JWT carrying the user's account, permissions and expiry.

Usage:

  authrelay <command> [arguments]

Commands:

  init     create keys, the user database and a nats.conf in a directory
  cluster  enable a cluster on a single node; status of each relay's copy
  serve    answer the server's login requests (--embedded runs a server too)
  user     add, list, show, explain, change and remove users
  token    API tokens that services log in with
  idp      OpenID Connect / OAuth2 identity providers whose tokens log in
  role     named permission sets that users hold
  account  application accounts and their limits
  import   bring users in from an existing nats.conf
  export   print users, roles and accounts
  backup   copy the database, safely while serve runs
  restore  put a backup in place of the database, with serve stopped
  audit    print the audit trail of logins and admin changes
  hash     the password hash policy, and calibrating it for this machine
  doctor   check a deployment end to end and say what is wrong
  reload   have the servers reload nats.conf and accounts.conf
  sessions who is connected, as the servers report it
  completion  print shell completion for bash or zsh
  bench    measure logins on this machine against stock nats-server
  version  print the version

Every command takes --dir DIR (default $AUTHRELAY_DIR, else ./data).
Run 'authrelay <command> -h' for a command's flags and examples.

Exit status: 0 success, 1 failure, 2 usage error.
`

// Run runs the command named by args[0]. --dir, --version and -h may come
// before the command.
func (m *Main) Run(ctx context.Context, args []string) error {
	for len(args) > 0 && strings.HasPrefix(args[0], "-") && args[0] != "-" {
		name, value, hasValue := strings.Cut(strings.TrimLeft(args[0], "-"), "=")
		switch name {
		case "h", "help":
			fmt.Fprint(m.Stdout, mainUsage)
			return nil
		case "version":
			return m.runVersion(ctx, args[1:])
		case "dir":
			if !hasValue {
				if len(args) < 2 {
					return usagef("--dir needs a directory: authrelay --dir DIR <command>")
				}
				value, args = args[1], args[1:]
			}
			m.dir = value
			args = args[1:]
		default:
			return usagef("unknown flag %q before the command: only --dir, --version and -h go there; a command's own flags follow it (run 'authrelay -h')", "--"+accounts.Clip(name, 64))
		}
	}
	return m.dispatch(ctx, "", mainUsage, []subcommand{
		{[]string{"init"}, m.runInit},
		{[]string{"cluster"}, m.runCluster},
		{[]string{"serve"}, m.runServe},
		{[]string{"user"}, m.runUser},
		{[]string{"token"}, m.runToken},
		{[]string{"idp"}, m.runIdp},
		{[]string{"role"}, m.runRole},
		{[]string{"account"}, m.runAccount},
		{[]string{"import"}, m.runImport},
		{[]string{"export"}, m.runExport},
		{[]string{"backup"}, m.runBackup},
		{[]string{"restore"}, m.runRestore},
		{[]string{"audit"}, m.runAudit},
		{[]string{"hash"}, m.runHash},
		{[]string{"doctor"}, m.runDoctor},
		{[]string{"bench"}, m.runBench},
		{[]string{"reload"}, m.runReload},
		{[]string{"sessions"}, m.runSessions},
		{[]string{"completion"}, m.runCompletion},
		{[]string{"version"}, m.runVersion},
	}, args)
}

// newFlagSet returns a flag set that reports errors instead of exiting, and
// prints usage (a synopsis, then the flags) to stderr.
func (m *Main) newFlagSet(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	fs.Usage = func() {
		fmt.Fprint(m.Stderr, strings.TrimLeft(usage, "\n"))
		fmt.Fprintln(m.Stderr, "\nFlags:")
		fs.PrintDefaults()
	}
	return fs
}

// dirFlag registers --dir on fs.
func (m *Main) dirFlag(fs *flag.FlagSet) *string {
	def := m.dir
	if def == "" {
		def = m.Getenv("AUTHRELAY_DIR")
	}
	if def == "" {
		def = "data"
	}
	return fs.String("dir", def, "authrelay directory (keys, database, nats.conf); also $AUTHRELAY_DIR")
}

// parse parses args into fs, allowing flags and positional arguments in any
// order, and returns the positional arguments. A "--" ends flag parsing.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		// Stop at "--" ourselves: the flag package would swallow it.
		end := len(args)
		for i, a := range args {
			if a == "--" {
				end = i
				break
			}
		}
		if err := parseFlags(fs, args[:end]); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) > 0 {
			pos = append(pos, rest[0])
			args = append(rest[1:], args[end:]...)
			continue
		}
		if end < len(args) {
			pos = append(pos, args[end+1:]...)
		}
		return pos, nil
	}
}

// parseNoArgs parses args for a command that takes flags only.
func parseNoArgs(fs *flag.FlagSet, args []string, cmd string) error {
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("%s takes no arguments, got %q", cmd, pos)
	}
	return nil
}

// parseNamed parses args for a command that takes one NAME, checks the name
// with one (oneName, oneRole, oneAccount) and opens DIR's store; the caller
// closes it.
func (m *Main) parseNamed(ctx context.Context, fs *flag.FlagSet, args []string, dir *string,
	one func(cmd string, pos []string) (string, error), cmd string) (*store.DB, string, error) {
	pos, err := parse(fs, args)
	if err != nil {
		return nil, "", err
	}
	name, err := one(cmd, pos)
	if err != nil {
		return nil, "", err
	}
	db, err := m.openStore(ctx, *dir) // *dir as parsed above
	if err != nil {
		return nil, "", err
	}
	return db, name, nil
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }

func (s *stringList) Set(v string) error {
	*s = append(*s, v)
	return nil
}
