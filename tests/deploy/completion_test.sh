#!/usr/bin/env bash
# The bash completions (deploy/completion/): source each script, set
# COMP_WORDS / COMP_CWORD / COMP_LINE as readline would for a command line,
# call the completion function and check COMPREPLY. Then check that every
# option and subcommand the binaries' --help shows is offered, so that an
# option added to sender/main.cpp or receiver/main.cpp without completion
# fails here. (The completion may offer more than --help shows: options
# being added are listed there first; they are printed as a note.)
#
#   completion_test.sh SOURCE_DIR DELTASEND DELTARECVD
#
# No engine is needed: `docker` is a stub that logs its arguments and prints
# a fixed image list.
set -uo pipefail

src=${1:?usage: completion_test.sh SOURCE_DIR DELTASEND DELTARECVD}
deltasend=${2:?usage: completion_test.sh SOURCE_DIR DELTASEND DELTARECVD}
deltarecvd=${3:?usage: completion_test.sh SOURCE_DIR DELTASEND DELTARECVD}

work=$(mktemp -d /tmp/deltasync-completion-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

for script in deltasend deltarecvd; do
  bash -n "$src/deploy/completion/$script.bash" || fail "$script.bash: syntax"
done

# ---- a docker stub and some files to complete
mkdir -p "$work/bin" "$work/files/certs" "$work/files/layout"
cat >"$work/bin/docker" <<'EOF'
#!/bin/sh
echo "$*" >>"$DOCKER_STUB_LOG"
printf '%s\n' app:1.0.0 app:2.0.0 busybox:latest '<none>:<none>' 'web:<none>'
EOF
chmod +x "$work/bin/docker"
export DOCKER_STUB_LOG=$work/docker.log
: >"$DOCKER_STUB_LOG"
touch "$work/files/app-2.0.0.dsb" "$work/files/notes.txt" "$work/files/sender.pem" \
  "$work/files/sender.key" "$work/files/old.tar"
PATH=$work/bin:$PATH
unset DELTASEND_ENGINE DOCKER_HOST
COMP_WORDBREAKS=$' \t\n"\'><=;|&(:'

# shellcheck source=/dev/null
. "$src/deploy/completion/deltasend.bash" || fail "sourcing deltasend.bash"
# shellcheck source=/dev/null
. "$src/deploy/completion/deltarecvd.bash" || fail "sourcing deltarecvd.bash"
complete -p deltasend >/dev/null 2>&1 || fail "deltasend.bash registers no completion"
complete -p deltarecvd >/dev/null 2>&1 || fail "deltarecvd.bash registers no completion"

# complete LINE: COMP_* as readline sets them for LINE with the cursor at its
# end (words split at blanks; runs of ':' and '=' are words of their own, as
# COMP_WORDBREAKS makes them), then the command's completion function.
# COMPREPLY holds the answer; stderr of the function goes to $work/stderr.
complete_line() {
  local line=$1 i c word='' kind='' k
  COMP_WORDS=()
  for ((i = 0; i < ${#line}; i++)); do
    c=${line:i:1}
    case $c in
      ' ') k=blank ;;
      ':' | '=') k=breaker ;;
      *) k=text ;;
    esac
    if [[ $k == blank ]]; then
      if [[ -n $word ]]; then COMP_WORDS+=("$word"); fi
      word='' kind=''
      continue
    fi
    if [[ -n $word && $k != "$kind" ]]; then
      COMP_WORDS+=("$word")
      word=
    fi
    word+=$c kind=$k
  done
  COMP_WORDS+=("$word") # the word under the cursor ("" after a blank)
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMP_LINE=$line
  COMP_POINT=${#line}
  COMPREPLY=()
  local function_name
  function_name=$(complete -p "${COMP_WORDS[0]}" | sed -n 's/.*-F \([^ ]*\).*/\1/p')
  # NO_DOCKER=1: run it with a PATH that has no docker (and nothing else).
  PATH=${NO_DOCKER:+$work/empty}${NO_DOCKER:-$PATH} \
    "$function_name" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]-}" \
    2>"$work/stderr"
  if [[ -s $work/stderr ]]; then fail "'$line': the completion wrote to stderr: $(cat "$work/stderr")"; fi
}

reply() { printf '%s\n' "${COMPREPLY[@]}" | sort -u | tr '\n' ' ' | sed 's/ $//'; }

# expect LINE WORD...: the completion of LINE is exactly WORD... (any order)
expect() {
  local line=$1 want got
  shift
  complete_line "$line"
  want=$(printf '%s\n' "$@" | sort -u | tr '\n' ' ' | sed 's/ $//')
  got=$(reply)
  if [[ $got != "$want" ]]; then fail "'$line<TAB>': got [$got], want [$want]"; fi
}

# expect_has LINE WORD...: the completion of LINE includes each WORD
expect_has() {
  local line=$1 w
  shift
  complete_line "$line"
  for w in "$@"; do
    if [[ " $(reply) " != *" $w "* ]]; then fail "'$line<TAB>': [$(reply)] lacks '$w'"; fi
  done
}

# expect_lacks LINE WORD...: the completion of LINE includes no WORD
expect_lacks() {
  local line=$1 w
  shift
  complete_line "$line"
  for w in "$@"; do
    if [[ " $(reply) " == *" $w "* ]]; then fail "'$line<TAB>': [$(reply)] offers '$w'"; fi
  done
}

# ---- deltasend
expect_has 'deltasend bu' bundle
expect 'deltasend st' status
expect 'deltasend diff-' diff-image
expect 'deltasend bundle --eff' --effort
expect 'deltasend --effort ' fast default max
expect 'deltasend bundle app:2.0.0 --effort m' max
expect 'deltasend --effort=' fast default max
expect 'deltasend --effort=d' default
expect 'deltasend --log-level ' trace debug info warn error
expect 'deltasend diff --log-level w' warn
# Images from the engine (never <none>), the subcommands and the transports.
expect 'deltasend ' bundle diff diff-image publish status docker-archive: oci-archive: oci: \
  app:1.0.0 app:2.0.0 busybox:latest
expect_lacks 'deltasend ' '<none>:<none>' 'web:<none>'
expect 'deltasend bundle ' docker-archive: oci-archive: oci: app:1.0.0 app:2.0.0 busybox:latest
# After "app:" bash replaces only what follows the colon.
expect 'deltasend bundle app:' 1.0.0 2.0.0
expect 'deltasend bundle app:2.0.0 --base app:1' 1.0.0
expect 'deltasend diff app:1.0.0 app:' 1.0.0 2.0.0
expect 'deltasend diff-image app:1.0.0 a' app:1.0.0 app:2.0.0
expect 'deltasend diff-image app:1.0.0 app:2.0.0 -t ' # a new name: nothing
expect 'deltasend --threads ' # a number: nothing
# Positional arguments done: options.
expect_has 'deltasend diff app:1.0.0 app:2.0.0 ' --json --summary --include-dir-mtime --engine
expect_has 'deltasend app:2.0.0 ' --to --dry-run
expect_lacks 'deltasend diff app:1.0.0 app:2.0.0 ' --to --dry-run --base
expect_has 'deltasend status ' --to --cert --key --ca --json --config --log-level
expect_lacks 'deltasend status --' --effort --dry-run --base
expect_lacks 'deltasend bundle --' --to --dry-run --summary
# Option values are not positional arguments.
expect_has 'deltasend bundle --effort max -o x.dsb ' app:2.0.0
expect_has 'deltasend --effort=max bundle ' app:2.0.0
# The send options being added (issue 6), known whatever the binary says.
expect 'deltasend --dr' --dry-run
expect 'deltasend --par' --parallel
expect 'deltasend --ra' --rate
expect 'deltasend --to-' --to-file
expect_has 'deltasend --rate ' 2mbit 512kbit 10MB/s
expect 'deltasend app:2.0.0 --to edge --qu' --quiet
# --engine on the line is the engine whose images are listed.
: >"$DOCKER_STUB_LOG"
expect_has 'deltasend --engine unix:///tmp/other.sock diff app:1.0.0 ' app:2.0.0
grep -q -- '-H unix:///tmp/other.sock images' "$DOCKER_STUB_LOG" ||
  fail "--engine not passed to docker: $(cat "$DOCKER_STUB_LOG")"
: >"$DOCKER_STUB_LOG"
expect_has 'deltasend --engine=unix:///tmp/eq.sock bundle ' app:2.0.0
grep -q -- '-H unix:///tmp/eq.sock images' "$DOCKER_STUB_LOG" ||
  fail "--engine=... not passed to docker: $(cat "$DOCKER_STUB_LOG")"
: >"$DOCKER_STUB_LOG"
DELTASEND_ENGINE=unix:///tmp/env.sock expect_has 'deltasend bundle ' app:2.0.0
grep -q -- '-H unix:///tmp/env.sock images' "$DOCKER_STUB_LOG" ||
  fail "DELTASEND_ENGINE not passed to docker: $(cat "$DOCKER_STUB_LOG")"
: >"$DOCKER_STUB_LOG"
expect_has 'deltasend bundle ' app:2.0.0
grep -q -- '-H' "$DOCKER_STUB_LOG" && fail "docker got -H without --engine: $(cat "$DOCKER_STUB_LOG")"
expect_has 'deltasend --engine ' # sockets of this machine, or "unix://"
# Files.
cd "$work/files" || exit 1
expect 'deltasend bundle app:2.0.0 -o app' app-2.0.0.dsb
expect 'deltasend bundle app:2.0.0 --output no' notes.txt
expect 'deltasend --cert sender.p' sender.pem
expect 'deltasend --key sender.' sender.key sender.pem
expect 'deltasend --ca cer' certs
expect 'deltasend --config no' notes.txt
expect 'deltasend app:2.0.0 --to-file no' notes.txt
expect 'deltasend --cache-dir ' certs layout
expect 'deltasend diff docker-archive:ol' old.tar
expect 'deltasend bundle oci:la' layout
expect 'deltasend docker-archive' docker-archive:
# No docker: no images, no noise.
NO_DOCKER=1 expect 'deltasend ' bundle diff diff-image publish status docker-archive: oci-archive: oci:
NO_DOCKER=1 expect 'deltasend bundle app:' # nothing

# ---- deltarecvd
expect 'deltarecvd ' apply pull
expect 'deltarecvd ap' apply
expect 'deltarecvd --log-level ' trace debug info warn error
expect 'deltarecvd --log-level=i' info
expect 'deltarecvd --list' --listen
expect_has 'deltarecvd --listen ' 0.0.0.0:7443
expect 'deltarecvd --store-budget ' # a size: nothing
expect 'deltarecvd --index-engine-share ' # a percentage: nothing
expect_has 'deltarecvd --no-' --no-index-engine
expect_has 'deltarecvd --' --listen --cert --key --ca --store --store-budget --allow-client \
  --max-sessions --io-timeout --engine --log-level --config
expect_has 'deltarecvd apply --' --json --quiet --engine --log-level --config
expect_lacks 'deltarecvd apply --' --listen --store --allow-client
expect 'deltarecvd apply ' app-2.0.0.dsb certs layout
expect_has 'deltarecvd pull --' --attempts --no-full-pull --json --engine
expect 'deltarecvd pull ' # a registry reference: nothing to offer
expect_has 'deltasend publish --' --base --registry --part-size --registry-insecure
expect 'deltarecvd apply no' notes.txt # not a .dsb: any file
expect 'deltarecvd apply app-2.0.0.dsb ' --allow-unsigned --config --engine --help --json --log-level --quiet -h -q
expect 'deltarecvd --config no' notes.txt
expect 'deltarecvd --store ' certs layout
expect 'deltarecvd --cert sender.p' sender.pem
cd / || exit 1

# ---- every option and subcommand of --help is offered
# help_options BINARY [SUBCOMMAND]: the options --help lists, one a line
help_options() {
  # CLI11 shows a flag's negation with its value: --a,--no-a{false}
  "$@" --help | sed -n 's/^  \(-[^ ]*\).*/\1/p' | tr ',' '\n' | sed 's/[={].*//'
}
help_subcommands() {
  "$@" --help | sed -n '/^Subcommands:/,/^$/p' | sed -n 's/^  \([a-z][a-z-]*\) .*/\1/p'
}
check_help() { # COMMAND BINARY [SUBCOMMAND]
  local command=$1 binary=$2 sub=${3-} options offered o extra line
  options=$(help_options "$binary" ${sub:+"$sub"}) || { fail "$command $sub --help failed"; return; }
  [ -n "$options" ] || { fail "$command $sub --help lists no options"; return; }
  line="$command ${sub:+$sub }-"
  complete_line "$line"
  offered=" $(reply) "
  for o in $options; do
    if [[ $offered != *" $o "* ]]; then
      fail "'$command ${sub:+$sub }--help' lists $o, which the completion does not offer after '$line'"
    fi
  done
  extra=
  for o in $offered; do
    if ! grep -qx -- "$o" <<<"$options"; then extra+=" $o"; fi
  done
  if [[ -n $extra ]]; then
    echo "note: '$line<TAB>' also offers (global options, or not in this binary's --help yet):$extra"
  fi
}
check_help deltasend "$deltasend"
for sub in $(help_subcommands "$deltasend"); do
  check_help deltasend "$deltasend" "$sub"
  complete_line "deltasend $sub"
  [[ " $(reply) " == *" $sub "* ]] || fail "subcommand $sub (deltasend --help) is not completed"
done
[ -n "$(help_subcommands "$deltasend")" ] || fail "deltasend --help lists no subcommands"
check_help deltarecvd "$deltarecvd"
for sub in $(help_subcommands "$deltarecvd"); do
  check_help deltarecvd "$deltarecvd" "$sub"
  complete_line "deltarecvd $sub"
  [[ " $(reply) " == *" $sub "* ]] || fail "subcommand $sub (deltarecvd --help) is not completed"
done
[ -n "$(help_subcommands "$deltarecvd")" ] || fail "deltarecvd --help lists no subcommands"

if ((failures > 0)); then
  echo "$failures failure(s)" >&2
  exit 1
fi
echo "completion: all checks passed"
