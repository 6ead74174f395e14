package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/authrelay/authrelay/accounts"
)

// subcommand is one verb of a command with subcommands: its names (the
// first is the one suggested) and what runs it.
type subcommand struct {
	names []string
	run   func(ctx context.Context, args []string) error
}

// dispatch runs the subcommand args[0] of the command cmd, or the command
// args[0] when cmd is "". No subcommand
// prints the command's usage; help prints it to stdout; an unknown one is a
// one-line usage error with the nearest name, never the whole usage.
func (m *Main) dispatch(ctx context.Context, cmd, usage string, subs []subcommand, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(m.Stderr, strings.TrimLeft(usage, "\n"))
		if cmd == "" {
			return usagef("no command given")
		}
		return usagef("%s: no subcommand given", cmd)
	}
	sub, rest := args[0], args[1:]
	var names []string
	for _, s := range subs {
		for _, n := range s.names {
			if n == sub {
				return s.run(ctx, rest)
			}
		}
		names = append(names, s.names[0])
	}
	switch sub {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(m.Stdout, strings.TrimLeft(usage, "\n"))
		return nil
	}
	if cmd == "" {
		return unknownWord("unknown command", sub, names, "authrelay -h")
	}
	return unknownWord(cmd+": unknown subcommand", sub, names, "authrelay "+cmd+" -h")
}

// unknownWord is the usage error for a word that is not one of known: what
// it is, the nearest known word if one is close, and where the list is.
func unknownWord(what, got string, known []string, help string) error {
	msg := fmt.Sprintf("%s %q", what, accounts.Clip(got, 64))
	if near := accounts.Nearest(got, known); near != "" {
		msg += fmt.Sprintf("; did you mean %q?", near)
	}
	return usagef("%s (run '%s' for the list)", msg, help)
}

// parseFlags parses args with fs, printing its usage only for -h: a bad
// flag is one usage error naming the flag, the nearest defined one, and
// the command's -h, not the error and the whole usage twice.
func parseFlags(fs *flag.FlagSet, args []string) error {
	usage, out := fs.Usage, fs.Output()
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.Usage = usage
	fs.SetOutput(out)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		usage()
		return err
	}
	help := fmt.Sprintf("run 'authrelay %s -h' for its flags", fs.Name())
	if name, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: "); ok {
		name = strings.TrimLeft(name, "-")
		if name == "password" || name == "pass" {
			return usagef("%s: passwords never come from flags, where other users of the host can read them: use --password-stdin (or --generate-password where it is offered)", fs.Name())
		}
		var defined []string
		fs.VisitAll(func(f *flag.Flag) { defined = append(defined, f.Name) })
		msg := fmt.Sprintf("%s: unknown flag %q", fs.Name(), "--"+accounts.Clip(name, 64))
		if near := accounts.Nearest(name, defined); near != "" {
			msg += fmt.Sprintf("; did you mean --%s?", near)
		}
		return usagef("%s (%s)", msg, help)
	}
	return usagef("%s: %v (%s)", fs.Name(), err, help)
}
