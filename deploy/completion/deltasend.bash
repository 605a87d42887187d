# bash completion for deltasend (deltasync)                  -*- shell-script -*-
#
# Installed as /usr/share/bash-completion/completions/deltasend (loaded on
# first use by the bash-completion package); without that package:
#   . deploy/completion/deltasend.bash
# Needs nothing from bash-completion itself. Completes the subcommands, the
# options of each (global ones after a subcommand too: the command line
# takes them there), effort values, log levels, files for --cert/--key/--ca/
# --config/--to-file/-o, host names for --to, engine sockets for --engine,
# and image names for IMAGE/OLD/NEW/BASE/TARGET/--base from
# `docker images` (on --engine's engine if the line names one, else
# $DELTASEND_ENGINE, else docker's own default/DOCKER_HOST; nothing when
# docker is absent or does not answer within 2 s).
#
# The option lists are strings split into words on purpose.
# shellcheck disable=SC2086

# Keep the lists below in step with sender/main.cpp:
# tests/deploy/completion_test.sh fails when `deltasend [SUBCOMMAND] --help`
# shows an option that is missing here.

_deltasend_subcommands='bundle diff diff-image publish status'
# Before or after a subcommand.
_deltasend_opts_global='-h --help --config --engine --log-level'
# deltasend IMAGE --to HOST (no subcommand).
_deltasend_opts_send='--to --to-file --cert --key --ca --effort --threads --no-local-basis --require-same-id --platform
  --cache-dir --cache-budget --no-cache --segment-bytes --dry-run --rate --parallel --json -q --quiet'
_deltasend_opts_bundle='--base -o --output --effort --threads --require-same-id --platform
  --signing-key --unsigned --json -q --quiet'
_deltasend_opts_publish='--base --registry --part-size --effort --threads --platform --signing-key
  --unsigned --registry-ca --registry-auth --registry-insecure --json -q --quiet'
_deltasend_opts_diff='--json --summary --include-dir-mtime'
_deltasend_opts_diff_image='-t --tag --json -q --quiet'
_deltasend_opts_status='--to --cert --key --ca --json'
# Options whose value is the next word (that word is no positional argument).
_deltasend_opts_with_value='--config --engine --log-level --to --to-file --cert --key --ca
  --effort --threads --cache-dir --cache-budget --segment-bytes --rate --parallel --base -o --output -t --tag
  --io-timeout --platform --signing-key --registry --part-size --registry-ca --registry-auth'

# Sets the caller's words, cword: COMP_WORDS/COMP_CWORD with the pieces bash
# splits off at ':' and '=' (COMP_WORDBREAKS) joined again, so that
# app:2.0.0, docker-archive:PATH and --effort=max are one word each.
_deltasend_join_words() {
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

# COMPREPLY=( candidates of $2.. that start with $1 ), then cut to the part
# bash replaces: after the last ':' of the word (COMP_WORDBREAKS), after
# the '=' of --opt=value.
_deltasend_reply() {
  local cur=$1 prefix=$2 c
  shift 2
  COMPREPLY=()
  for c in "$@"; do
    if [[ $c == "$cur"* ]]; then COMPREPLY+=("$c"); fi
  done
  _deltasend_trim "$cur" "$prefix"
}

# $1: the word's value part; $2: "--opt=" when the word is --opt=value.
_deltasend_trim() {
  local cur=$1 prefix=$2 cut='' i
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

_deltasend_compopt() {
  compopt "$@" 2>/dev/null
  return 0
}

# Image names (REPO:TAG) of the engine: $1 the --engine value from the line.
_deltasend_images() {
  local host=${1:-${DELTASEND_ENGINE-}} line
  local -a cmd=(docker)
  type -P docker >/dev/null 2>&1 || return 0
  if [[ -n $host ]]; then cmd+=(-H "$host"); fi
  if type -P timeout >/dev/null 2>&1; then cmd=(timeout 2 "${cmd[@]}"); fi
  while IFS= read -r line; do
    if [[ -n $line && $line != *'<none>'* ]]; then printf '%s\n' "$line"; fi
  done < <("${cmd[@]}" images --format '{{.Repository}}:{{.Tag}}' 2>/dev/null)
}

# Files (with -d: directories) whose names start with the last argument.
_deltasend_files() {
  local kind=-f
  if [[ $1 == -d ]]; then
    kind=-d
    shift
  fi
  _deltasend_compopt -o filenames
  mapfile -t COMPREPLY < <(compgen "$kind" -- "$1")
}

# An image argument: engine images, the archive transports, and files or
# directories after docker-archive:, oci-archive:, oci:.
_deltasend_image_arg() {
  local cur=$1 engine=$2 c
  shift 2
  case $cur in
    docker-archive:* | oci-archive:* | oci:*)
      local transport=${cur%%:*}: kind=-f
      if [[ $transport == oci: ]]; then kind=-d; fi
      _deltasend_compopt -o filenames
      mapfile -t COMPREPLY < <(compgen "$kind" -- "${cur#*:}")
      for c in "${!COMPREPLY[@]}"; do COMPREPLY[c]=$transport${COMPREPLY[c]}; done
      _deltasend_trim "$cur" ''
      return
      ;;
  esac
  local -a images
  mapfile -t images < <(_deltasend_images "$engine")
  _deltasend_reply "$cur" '' "$@" docker-archive: oci-archive: oci: "${images[@]}"
  if ((${#COMPREPLY[@]} == 1)) && [[ ${COMPREPLY[0]} == *: ]]; then
    _deltasend_compopt -o nospace
  fi
}

_deltasend_engines() {
  local cur=$1 prefix=$2 s
  local -a sockets=()
  for s in /var/run/docker.sock /run/podman/podman.sock ${XDG_RUNTIME_DIR:+"$XDG_RUNTIME_DIR/docker.sock"} \
    ${XDG_RUNTIME_DIR:+"$XDG_RUNTIME_DIR/podman/podman.sock"}; do
    if [[ -S $s ]]; then sockets+=("unix://$s"); fi
  done
  if ((${#sockets[@]} == 0)); then
    sockets=(unix://)
    _deltasend_compopt -o nospace
  fi
  _deltasend_reply "$cur" "$prefix" "${sockets[@]}"
}

_deltasend() {
  local -a words
  local cword cur prev prefix='' w i sub='' engine='' npos=0 value_next='' done_opts=''
  _deltasend_join_words
  cur=${words[cword]-}
  prev=${words[cword-1]-}
  if [[ $cur == --*=* ]]; then
    prev=${cur%%=*} prefix=${cur%%=*}= cur=${cur#*=}
  fi
  COMPREPLY=()

  # What comes before the word: the subcommand, the positional arguments,
  # the engine.
  for ((i = 1; i < cword; i++)); do
    w=${words[i]}
    if [[ -n $value_next ]]; then
      value_next=
      continue
    fi
    if [[ -z $done_opts && $w == -* ]]; then
      case $w in
        --) done_opts=1 ;;
        --engine=*) engine=${w#*=} ;;
        --engine) engine=${words[i+1]-} ;;
      esac
      if [[ $w != *=* && " ${_deltasend_opts_with_value//$'\n'/ } " == *" $w "* ]]; then
        value_next=1
      fi
      continue
    fi
    if [[ -z $sub && " $_deltasend_subcommands " == *" $w "* ]]; then
      sub=$w
    else
      npos=$((npos + 1))
    fi
  done
  engine=${engine//[\'\"]/}

  case $prev in
    --config | --to-file | --cert | --key | --ca | -o | --output | --registry-ca | --registry-auth)
      _deltasend_files "$cur"
      return
      ;;
    --cache-dir)
      _deltasend_files -d "$cur"
      return
      ;;
    --effort)
      _deltasend_reply "$cur" "$prefix" fast default max
      return
      ;;
    --log-level)
      _deltasend_reply "$cur" "$prefix" trace debug info warn error
      return
      ;;
    --engine)
      _deltasend_engines "$cur" "$prefix"
      return
      ;;
    --base)
      _deltasend_image_arg "$cur" "$engine"
      return
      ;;
    --to)
      local -a hosts
      mapfile -t hosts < <(compgen -A hostname -- "$cur" 2>/dev/null)
      _deltasend_reply "$cur" "$prefix" "${hosts[@]}"
      return
      ;;
    --rate)
      _deltasend_reply "$cur" "$prefix" 256kbit 512kbit 1mbit 2mbit 10mbit 100mbit 1MB/s 10MB/s
      return
      ;;
    --threads | --parallel | --segment-bytes | -t | --tag | --io-timeout | --registry | --part-size)
      return # a number or a name: nothing to offer
      ;;
  esac

  local opts=$_deltasend_opts_global max_pos
  case $sub in
    '') opts+=" $_deltasend_opts_send" max_pos=1 ;;
    bundle) opts+=" $_deltasend_opts_bundle" max_pos=1 ;;
    diff) opts+=" $_deltasend_opts_diff" max_pos=2 ;;
    diff-image) opts+=" $_deltasend_opts_diff_image" max_pos=2 ;;
    publish) opts+=" $_deltasend_opts_publish" max_pos=1 ;;
    status) opts+=" $_deltasend_opts_status" max_pos=0 ;;
  esac

  if [[ -z $done_opts && ($cur == -* || npos -ge max_pos) ]]; then
    _deltasend_reply "$cur" '' $opts
    return
  fi
  if [[ -z $sub ]]; then
    _deltasend_image_arg "$cur" "$engine" $_deltasend_subcommands
  else
    _deltasend_image_arg "$cur" "$engine"
  fi
}

complete -F _deltasend deltasend
