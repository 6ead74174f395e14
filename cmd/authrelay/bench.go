package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/internal/bench"
)

const benchUsage = `
Usage: authrelay bench [--short] [--clients N] [--users N] [--duration D]
                       [--storm-clients N] [--admin-writes N] [--scenarios LIST]
                       [--operator] [--grant-relay PATH] [--json]
` + bench.Description + `
Examples:

  authrelay bench --short
  authrelay bench --clients 16 --users 2000 --duration 10s --storm-clients 5000
  authrelay bench --scenarios noauth,shipped --storm-clients 0 --json > bench.json
  authrelay bench --scenarios shipped --serve-arg=--workers=8
  authrelay bench --short --grant-relay ./bin/authrelay-bench
`

// benchProgram is the program 'authrelay bench' runs the grant relay of (c)
// with; the authrelay binary does not hold it.
const benchProgram = "authrelay-bench"

func (m *Main) runBench(ctx context.Context, args []string) error {
	fs := m.newFlagSet("bench", benchUsage)
	flags := bench.NewFlags(fs)
	grantRelay := fs.String("grant-relay", "", "the authrelay-bench that runs the grant relay of (c) (default: the one beside authrelay, else on PATH)")
	if err := parseNoArgs(fs, args, "bench"); err != nil {
		return err
	}
	c, err := flags.Config()
	var ue *bench.UsageError
	if errors.As(err, &ue) {
		return usagef("%s", ue.Msg)
	}
	if err != nil {
		return err
	}
	// The relay child 'authrelay serve' is this program; init runs here.
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench: find this program to run the relay: %w", err)
	}
	c.Program, c.Args = []string{"authrelay", "bench"}, args
	c.Authrelay, c.Version, c.BcryptCost = self, version, m.bcryptCost()
	c.Init = func(ctx context.Context, dir string, operator bool) error {
		return deploy.Init(ctx, deploy.Layout{Dir: dir}, deploy.InitOptions{Accounts: []string{bench.Account}, Listen: deploy.DefaultListen, BcryptCost: m.bcryptCost(), Operator: operator})
	}
	c.Progress = func(line string) { fmt.Fprintf(m.Stderr, "bench: %s\n", line) }
	switch {
	case *grantRelay != "":
		if err := bench.CheckProgram(*grantRelay); err != nil {
			return usagef("--grant-relay %q: %v: give the path of an authrelay-bench executable", *grantRelay, err)
		}
		c.GrantRelay = *grantRelay
	default:
		c.GrantRelay = bench.FindProgram(benchProgram, self, m.Getenv("PATH"))
		dir := filepath.Dir(self)
		c.GrantRelaySkip = fmt.Sprintf("no %s beside %s or on PATH, and the authrelay binary holds no grant relay; "+
			"build it in authrelay's source tree with 'go build -o %s ./cmd/authrelay-bench', or give --grant-relay PATH",
			benchProgram, self, bench.ShellJoin([]string{filepath.Join(dir, benchProgram)}))
	}
	if c.GrantRelay == "" && c.Has(bench.ScenarioGrant) {
		c.Progress("(c) skipped: no " + benchProgram + " to run the grant relay with (see the report)")
	}
	rep, err := bench.Run(ctx, c)
	if err != nil {
		return err
	}
	if c.JSON {
		return rep.WriteJSON(m.Stdout)
	}
	rep.WriteText(m.Stdout)
	return nil
}
