package main

import (
	"context"
	_ "embed"
	"fmt"

	"github.com/authrelay/authrelay/accounts"
)

// bashCompletion completes authrelay's commands, subcommands and flags in
// bash. It reads them from authrelay's own -h output when it completes, so
// it never falls behind the program it completes.
//
//go:embed completion.bash
var bashCompletion string

// zshCompletion is the bash completion, through zsh's bashcompinit.
func zshCompletion() string {
	return "# zsh completion for authrelay: source <(authrelay completion zsh)\nautoload -U +X bashcompinit && bashcompinit\n" + bashCompletion
}

func (m *Main) runCompletion(_ context.Context, args []string) error {
	fs := m.newFlagSet("completion", `
Usage: authrelay completion bash|zsh

Prints a shell script that completes authrelay's commands, subcommands and
flags. It asks authrelay itself (-h) as it completes, so it stays right
across upgrades.

Examples:

  source <(authrelay completion bash)        # in ~/.bashrc
  source <(authrelay completion zsh)         # in ~/.zshrc
`)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("completion: give the shell, bash or zsh")
	}
	switch pos[0] {
	case "bash":
		fmt.Fprint(m.Stdout, bashCompletion)
	case "zsh":
		fmt.Fprint(m.Stdout, zshCompletion())
	default:
		return usagef("completion: unknown shell %q: give bash or zsh", accounts.Clip(pos[0], 64))
	}
	return nil
}
