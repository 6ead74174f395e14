package main

import (
	"context"
	"fmt"

	"github.com/authrelay/authrelay/accounts"
)

// bashCompletion completes authrelay's commands, subcommands and flags in
// bash. It reads them from authrelay's own -h output when it completes, so
// it never falls behind the program it completes.
const bashCompletion = `# bash completion for authrelay: source <(authrelay completion bash)
_authrelay() {
	local prog=${COMP_WORDS[0]} cur=${COMP_WORDS[COMP_CWORD]} words=() w i
	for ((i = 1; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		case $w in
		--dir | -dir) ((i++)) ;;
		-*) ;;
		*) words+=("$w") ;;
		esac
	done
	# The usage lists a command's subcommands, or the commands, indented
	# under "Commands:" or "Subcommands:".
	_authrelay_list() {
		"$prog" "$@" -h 2>&1 | awk '/^(Sub)?[Cc]ommands:$/ { on = 1; next } on && /^  [a-z]/ { print $1; next } on && /^[^ ]/ { on = 0 }'
	}
	local list
	if [[ $cur == -* ]]; then
		list=$("$prog" "${words[@]:0:2}" -h 2>&1 | awk '/^  -[a-z]/ { sub(/^  -/, "--"); print $1 }')
	elif ((${#words[@]} == 0)); then
		list=$(_authrelay_list)
	elif ((${#words[@]} == 1)); then
		list=$(_authrelay_list "${words[0]}")
	fi
	COMPREPLY=($(compgen -W "$list" -- "$cur"))
}
complete -o default -F _authrelay authrelay
`

// zshCompletion is the bash completion, through zsh's bashcompinit.
const zshCompletion = `# zsh completion for authrelay: source <(authrelay completion zsh)
autoload -U +X bashcompinit && bashcompinit
` + bashCompletion

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
		fmt.Fprint(m.Stdout, zshCompletion)
	default:
		return usagef("completion: unknown shell %q: give bash or zsh", accounts.Clip(pos[0], 64))
	}
	return nil
}
