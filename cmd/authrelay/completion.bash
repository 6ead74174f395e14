# bash completion for authrelay: source <(authrelay completion bash)
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
