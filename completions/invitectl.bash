# bash completion for invitectl                               -*- shell-script -*-
# SPDX-License-Identifier: MIT

_invitectl()
{
	local cur prev words cword
	_init_completion || return

	local commands="template validate submit jobs show results watch wait cancel
		pause resume retry stats status audit reload help"
	local i cmd=
	for ((i = 1; i < cword; i++)); do
		case ${words[i]} in
		-s | --socket) ((i++)) ;;
		-*) ;;
		*) cmd=${words[i]}; break ;;
		esac
	done

	case $prev in
	-s | --socket)
		_filedir
		return
		;;
	-o | --output)
		_filedir
		return
		;;
	--state)
		COMPREPLY=($(compgen -W "pending in_flight succeeded failed cancelled" -- "$cur"))
		return
		;;
	esac

	if [[ -z $cmd ]]; then
		COMPREPLY=($(compgen -W "$commands -s --socket --json -h --help --version" -- "$cur"))
		return
	fi
	case $cmd in
	validate | submit)
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "--name --redirect-url --send-email --no-send-email
				--message --language --cc --wait --watch --json --help" -- "$cur"))
		else
			_filedir '@(csv|CSV|txt)'
		fi
		;;
	jobs) COMPREPLY=($(compgen -W "--all --json --help" -- "$cur")) ;;
	show) COMPREPLY=($(compgen -W "--state --json --help" -- "$cur")) ;;
	results) COMPREPLY=($(compgen -W "-o --output --help" -- "$cur")) ;;
	stats) COMPREPLY=($(compgen -W "--prometheus --json --help" -- "$cur")) ;;
	audit) COMPREPLY=($(compgen -W "--job --limit --json --help" -- "$cur")) ;;
	help) COMPREPLY=($(compgen -W "$commands" -- "$cur")) ;;
	*) COMPREPLY=($(compgen -W "--json --help" -- "$cur")) ;;
	esac
} &&
	complete -F _invitectl invitectl
