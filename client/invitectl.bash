# SPDX-License-Identifier: MIT
# bash completion for invitectl(1): commands, their options, states, files,
# job ids asked from the daemon (invitectl jobs -q) where a JOB goes, and
# tenant names (invitectl tenants -q) after --tenant.

# invitectl ARGS... on the socket given on this command line, if any, else
# the default; bounded: a daemon that does not answer must not hang the shell
_invitectl_ask()
{
	local sock=() i
	for ((i = 1; i < ${#COMP_WORDS[@]} - 1; i++)); do
		case ${COMP_WORDS[i]} in
		-s | --socket) sock=(-s "${COMP_WORDS[i + 1]}") ;;
		--socket=*) sock=(-s "${COMP_WORDS[i]#--socket=}") ;;
		esac
	done
	timeout 2 invitectl "${sock[@]}" "$@" 2>/dev/null
}

_invitectl_jobs()
{
	_invitectl_ask jobs --all -q
}

# the tenant names (invitectl tenants -q: [a-z0-9-] only, one per line)
_invitectl_tenants()
{
	_invitectl_ask tenants -q
}

_invitectl()
{
	local cur prev words cword
	_init_completion || return

	local commands="template validate submit jobs show results watch wait cancel pause resume retry resend track stats status audit reload tenants check help"
	local global="-s --socket --json -h --help --version"

	# the command: the first word that is not a global option (or its argument)
	local cmd="" i
	for ((i = 1; i < cword; i++)); do
		case ${words[i]} in
		-s | --socket) ((i++)) ;;
		-*) ;;
		*) cmd=${words[i]}; break ;;
		esac
	done

	case $prev in
	-s | --socket | -o | --output)
		_filedir
		return
		;;
	--state)
		COMPREPLY=($(compgen -W "pending in_flight succeeded failed cancelled skipped accepted not-accepted group-failed" -- "$cur"))
		return
		;;
	--tenant)
		COMPREPLY=($(compgen -W "$(_invitectl_tenants)" -- "$cur"))
		return
		;;
	--name | --redirect-url | --message | --language | --cc | --error-code | --job | --limit | --group | --older-than)
		return
		;;
	esac

	if [[ -z $cmd ]]; then
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "$global" -- "$cur"))
		else
			COMPREPLY=($(compgen -W "$commands" -- "$cur"))
		fi
		return
	fi

	# -s/--socket and --json are accepted after the command too
	local opts="--json -s --socket -h --help" takes=""
	case $cmd in
	template) opts="-s --socket -h --help" ;;
	validate) opts+=" --name --redirect-url --send-email --no-send-email --message --language --cc --tenant --skip-existing --group"; takes=file ;;
	submit) opts+=" --name --redirect-url --send-email --no-send-email --message --language --cc --tenant --skip-existing --group --wait --watch"; takes=file ;;
	jobs) opts+=" --all --tenant -q --quiet --no-legend" ;;
	show) opts+=" --state -q --quiet --no-legend --no-pager"; takes=job ;;
	results) opts="-o --output --bom --raw -s --socket -h --help"; takes=job ;;
	watch | wait | cancel | pause) takes=job ;;
	resume) opts+=" --tenant"; takes=job ;;
	retry) opts+=" --error-code --groups"; takes=job ;;
	resend) opts+=" --older-than --dry-run"; takes=job ;;
	track) takes=job ;;
	stats) opts+=" --prometheus" ;;
	status) ;;
	audit) opts+=" --job --limit" ;;
	reload) ;;
	tenants) opts+=" -q --quiet --no-legend" ;;
	check) opts+=" --tenant" ;;
	help) COMPREPLY=($(compgen -W "$commands" -- "$cur")); return ;;
	*) return ;;
	esac

	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$opts" -- "$cur"))
	elif [[ $takes == file ]]; then
		_filedir
		[[ -z $cur ]] && COMPREPLY+=(-)
	elif [[ $takes == job ]]; then
		COMPREPLY=($(compgen -W "$(_invitectl_jobs)" -- "$cur"))
	fi
} &&
	complete -F _invitectl invitectl
