// Command authrelay-bench is authrelay's benchmark with every scenario: the
// same run as 'authrelay bench', plus the callout ceiling (c), whose
// grant-everything relay it holds itself ('authrelay-bench grant-relay'),
// so that the authrelay binary, which guards real logins, never does. It
// runs 'authrelay init' and 'authrelay serve' from the authrelay executable
// beside it, on PATH, or given with --authrelay.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/authrelay/authrelay/internal/bench"
	"github.com/authrelay/authrelay/internal/bench/grantrelay"
)

const usage = `
Usage: authrelay-bench [--short] [--clients N] [--users N] [--duration D]
                       [--storm-clients N] [--admin-writes N] [--scenarios LIST]
                       [--cluster] [--operator] [--import-users N] [--authrelay PATH] [--json]

The flags and the report of 'authrelay bench'; authrelay-bench runs (c)
itself, as its own grant relay, and 'authrelay init' and 'authrelay serve'
from --authrelay (default: the authrelay beside authrelay-bench, else the
one on PATH). Build both from authrelay's source tree:

  go build -o bin/ ./cmd/authrelay ./cmd/authrelay-bench
` + bench.Description + `
Examples:

  authrelay-bench --short
  authrelay-bench --clients 16 --users 2000 --duration 10s --storm-clients 5000
  go run ./cmd/authrelay-bench --authrelay ./bin/authrelay --scenarios grant,shipped --storm-clients 0
`

// Exit codes, as authrelay's.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p := program{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	os.Exit(p.exit(p.run(ctx, os.Args[1:])))
}

// program is authrelay-bench with its environment.
type program struct {
	stdout, stderr io.Writer
	getenv         func(string) string
}

// exit prints err, if any, and returns the exit status for it.
func (p program) exit(err error) int {
	var ue *bench.UsageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(p.stderr, "authrelay-bench: %v\n", err)
		return exitUsage
	default:
		fmt.Fprintf(p.stderr, "authrelay-bench: %v\n", err)
		return exitFailure
	}
}

func (p program) flagSet(name, text string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(p.stderr)
	fs.Usage = func() {
		fmt.Fprint(p.stderr, strings.TrimLeft(text, "\n"))
		fmt.Fprintln(p.stderr, "\nFlags:")
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args into fs, which takes flags only.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &bench.UsageError{Msg: err.Error()}
	}
	if fs.NArg() > 0 {
		return &bench.UsageError{Msg: fmt.Sprintf("%s takes no arguments, got %q", fs.Name(), fs.Args())}
	}
	return nil
}

func (p program) run(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == bench.GrantRelayCommand {
		return p.grantRelay(ctx, args[1:])
	}
	fs := p.flagSet("authrelay-bench", usage)
	flags := bench.NewFlags(fs)
	authrelay := fs.String("authrelay", "", "the authrelay executable that runs init and serve (default: the one beside authrelay-bench, else on PATH)")
	if err := parse(fs, args); err != nil {
		return err
	}
	c, err := flags.Config()
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this program to run the grant relay: %w", err)
	}
	c.Program, c.Args = []string{"authrelay-bench"}, args
	c.GrantRelay = self
	c.Progress = func(line string) { fmt.Fprintf(p.stderr, "bench: %s\n", line) }
	if c.Has(bench.ScenarioGrant) || c.Has(bench.ScenarioShipped) || c.Cluster || c.Operator {
		if c.Authrelay, err = findAuthrelay(*authrelay, self, p.getenv("PATH")); err != nil {
			return err
		}
		if c.Version, err = authrelayVersion(ctx, c.Authrelay); err != nil {
			return err
		}
	}
	rep, err := bench.Run(ctx, c)
	if err != nil {
		return err
	}
	if c.JSON {
		return rep.WriteJSON(p.stdout)
	}
	rep.WriteText(p.stdout)
	return nil
}

// findAuthrelay returns the authrelay executable to run: given, if not empty,
// else the one beside self, else the one on PATH.
func findAuthrelay(given, self, pathList string) (string, error) {
	if given != "" {
		if err := bench.CheckProgram(given); err != nil {
			return "", &bench.UsageError{Msg: fmt.Sprintf("--authrelay %q: %v: give the path of an authrelay executable", given, err)}
		}
		return given, nil
	}
	if exe := bench.FindProgram("authrelay", self, pathList); exe != "" {
		return exe, nil
	}
	beside := filepath.Join(filepath.Dir(self), "authrelay")
	return "", fmt.Errorf("no authrelay beside %s or on PATH: the bench runs 'authrelay init' and 'authrelay serve' for (c) and (d); "+
		"build it in authrelay's source tree with 'go build -o %s ./cmd/authrelay', or give --authrelay PATH",
		self, bench.ShellJoin([]string{beside}))
}

// authrelayVersion asks exe for its version, for the report.
func authrelayVersion(ctx context.Context, exe string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, exe, "version").Output()
	if err != nil {
		return "", fmt.Errorf("%s version: %w: is it authrelay?", exe, err)
	}
	v, ok := strings.CutPrefix(strings.TrimSpace(string(out)), "authrelay ")
	if !ok || v == "" || len(v) > 100 || strings.ContainsFunc(v, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return "", fmt.Errorf("%s version printed %q, not 'authrelay VERSION': is it authrelay?", exe, out[:min(len(out), 100)])
	}
	return v, nil
}

// grantRelay is 'authrelay-bench grant-relay', the relay of (c), which
// authrelay-bench and 'authrelay bench' start as their child.
func (p program) grantRelay(ctx context.Context, args []string) error {
	fs := p.flagSet("authrelay-bench "+bench.GrantRelayCommand, "\nUsage: authrelay-bench "+bench.GrantRelayCommand+
		" --dir DIR --nats URL\n\nThe grant relay of (c); only the bench runs it, as its child.\n")
	dir := fs.String("dir", "", "the directory the bench created")
	natsURL := fs.String("nats", "", "the bench's server, on a loopback address")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *dir == "" || *natsURL == "" {
		return &bench.UsageError{Msg: fmt.Sprintf("%s needs --dir and --nats: only the bench runs it, as its child", bench.GrantRelayCommand)}
	}
	logger := slog.New(slog.NewTextHandler(p.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return grantrelay.Run(ctx, grantrelay.Config{
		Dir:    *dir,
		URL:    *natsURL,
		Token:  p.getenv(bench.TokenEnv),
		Logger: logger,
	})
}
