# bash completion for deltarecvd (deltasync)                 -*- shell-script -*-
#
# Installed as /usr/share/bash-completion/completions/deltarecvd (loaded on
# first use by the bash-completion package); without that package:
#   . deploy/completion/deltarecvd.bash
# Needs nothing from bash-completion itself. Completes the `apply` and
# `pull` subcommands, the options (global ones after `apply` too), log levels,
# files for --cert/--key/--ca/--config, a directory for --store, engine
# sockets for --engine, listen addresses, and bundle files (*.dsb, else any
# file) for `apply`.
#
# The option lists are strings split into words on purpose.
# shellcheck disable=SC2086

# Keep the lists below in step with receiver/main.cpp:
# tests/deploy/completion_test.sh fails when `deltarecvd [apply] --help`
# shows an option that is missing here.

_deltarecvd_subcommands='apply pull'
# Before or after the subcommand.
_deltarecvd_opts_global='-h --help --config --engine --log-level'
# The service (no subcommand).
_deltarecvd_opts_serve='--listen --cert --key --ca --store --store-budget --allow-client
  --max-sessions --io-timeout --trusted-key --watch --poll-interval --registry-ca --registry-auth
  --registry-insecure --allow-unsigned-deltas --index-engine --no-index-engine --index-engine-share
  --index-poll-interval'
_deltarecvd_opts_apply='--allow-unsigned --json -q --quiet'
_deltarecvd_opts_pull='--attempts --platform --allow-unsigned --no-full-pull --json -q --quiet'
# Options whose value is the next word.
_deltarecvd_opts_with_value='--config --engine --log-level --listen --cert --key --ca --store
  --store-budget --allow-client --max-sessions --io-timeout --trusted-key --watch --poll-interval
  --registry-ca --registry-auth --platform --attempts --index-engine-share --index-poll-interval'

# As _deltasend_join_words in deltasend's completion: COMP_WORDS with the
# pieces split off at ':' and '=' joined again, into words and cword.
_deltarecvd_join_words() {
  local line=${COMP_LINE:-${COMP_WORDS[*]}} pos=0 i w spaced last
  words=() cword=0
  for ((i = 0; i < ${#COMP_WORDS[@]}; i++)); do
    w=${COMP_WORDS[i]}
    spaced=0
    while [[ ${line:pos:1} == [[:space:]] ]]; do
      pos=$((pos + 1)) spaced=1
    done
    last=
    if ((${#words[@]} > 0)); then last=${words[${#words[@]}-1]}; fi
    if ((i > 0 && !spaced)) && [[ $w == [:=]* || $last == *: || $last == -*= ]]; then
      words[${#words[@]}-1]+=$w
    else
      words+=("$w")
    fi
    if ((i == COMP_CWORD)); then cword=$((${#words[@]} - 1)); fi
    pos=$((pos + ${#w}))
  done
}

# COMPREPLY=( candidates of $3.. that start with $1 ), cut to the part bash
# replaces (after the word's last ':'; $2 is "--opt=" for --opt=value).
_deltarecvd_reply() {
  local cur=$1 prefix=$2 c cut='' i
  shift 2
  COMPREPLY=()
  for c in "$@"; do
    if [[ $c == "$cur"* ]]; then COMPREPLY+=("$c"); fi
  done
  if [[ $cur == *:* && ${COMP_WORDBREAKS-:} == *:* ]]; then
    cut=${cur%"${cur##*:}"}
  fi
  for i in "${!COMPREPLY[@]}"; do
    COMPREPLY[i]=${COMPREPLY[i]#"$cut"}
    if [[ -n $prefix && -z $cut && ${COMP_WORDBREAKS-=} != *=* ]]; then
      COMPREPLY[i]=$prefix${COMPREPLY[i]}
    fi
  done
}

_deltarecvd_compopt() {
  compopt "$@" 2>/dev/null
  return 0
}

_deltarecvd() {
  local -a words
  local cword cur prev prefix='' w i sub='' npos=0 value_next='' done_opts=''
  _deltarecvd_join_words
  cur=${words[cword]-}
  prev=${words[cword-1]-}
  if [[ $cur == --*=* ]]; then
    prev=${cur%%=*} prefix=${cur%%=*}= cur=${cur#*=}
  fi
  COMPREPLY=()

  for ((i = 1; i < cword; i++)); do
    w=${words[i]}
    if [[ -n $value_next ]]; then
      value_next=
      continue
    fi
    if [[ -z $done_opts && $w == -* ]]; then
      if [[ $w == -- ]]; then done_opts=1; fi
      if [[ $w != *=* && " ${_deltarecvd_opts_with_value//$'\n'/ } " == *" $w "* ]]; then
        value_next=1
      fi
      continue
    fi
    if [[ -z $sub && " $_deltarecvd_subcommands " == *" $w "* ]]; then
      sub=$w
    else
      npos=$((npos + 1))
    fi
  done

  case $prev in
    --config | --cert | --key | --ca | --registry-ca | --registry-auth | --trusted-key)
      _deltarecvd_compopt -o filenames
      mapfile -t COMPREPLY < <(compgen -f -- "$cur")
      return
      ;;
    --store)
      _deltarecvd_compopt -o filenames
      mapfile -t COMPREPLY < <(compgen -d -- "$cur")
      return
      ;;
    --log-level)
      _deltarecvd_reply "$cur" "$prefix" trace debug info warn error
      return
      ;;
    --engine)
      local s
      local -a sockets=()
      for s in /var/run/docker.sock /run/podman/podman.sock; do
        if [[ -S $s ]]; then sockets+=("unix://$s"); fi
      done
      if ((${#sockets[@]} == 0)); then
        sockets=(unix://)
        _deltarecvd_compopt -o nospace
      fi
      _deltarecvd_reply "$cur" "$prefix" "${sockets[@]}"
      return
      ;;
    --listen)
      _deltarecvd_reply "$cur" "$prefix" 0.0.0.0:7443 '[::]:7443'
      return
      ;;
    --store-budget | --allow-client | --max-sessions | --io-timeout | --watch | --poll-interval | --platform | --attempts | --index-engine-share | --index-poll-interval)
      return # a size, a name or a number: nothing to offer
      ;;
  esac

  local opts=$_deltarecvd_opts_global max_pos=0
  case $sub in
    '') opts+=" $_deltarecvd_opts_serve" ;;
    apply) opts+=" $_deltarecvd_opts_apply" max_pos=1 ;;
    pull) opts+=" $_deltarecvd_opts_pull" max_pos=1 ;;
  esac
  if [[ -z $done_opts && ($cur == -* || npos -ge max_pos) ]]; then
    if [[ -z $sub && $cur != -* ]]; then
      _deltarecvd_reply "$cur" '' $_deltarecvd_subcommands
    else
      _deltarecvd_reply "$cur" '' $opts
    fi
    return
  fi
  # pull REG/REPO:TAG: nothing to offer.
  if [[ $sub == pull ]]; then return; fi
  # apply BUNDLE: bundle files (*.dsb) and directories; any file if none.
  _deltarecvd_compopt -o filenames
  mapfile -t COMPREPLY < <(compgen -d -- "$cur"; compgen -f -X '!*.dsb' -- "$cur")
  if ((${#COMPREPLY[@]} == 0)); then mapfile -t COMPREPLY < <(compgen -f -- "$cur"); fi
}

complete -F _deltarecvd deltarecvd
