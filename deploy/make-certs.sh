#!/usr/bin/env bash
# Makes the certificates deltasync's mutual TLS needs, with the openssl CLI:
#
#   make-certs.sh OUTDIR [--receiver-name NAME]... [--receiver-ip IP]...
#                        [--sender-name NAME]... [--days N] [--force]
#
#   OUTDIR/ca.pem, ca.key          a private CA (EC P-256). ca.pem goes to both
#                                  sides (`ca`); keep ca.key offline.
#   OUTDIR/receiver.pem, .key      the receiver's server certificate: CN = the
#                                  first name, subjectAltName = every
#                                  --receiver-name (DNS) and --receiver-ip (IP),
#                                  extendedKeyUsage serverAuth. Senders must
#                                  connect with one of these names / addresses.
#                                  Defaults: the name `hostname` prints, and
#                                  IP 127.0.0.1.
#   OUTDIR/sender-NAME.pem, .key   one client certificate per --sender-name:
#                                  CN = NAME (what the receiver's allow-client
#                                  lists), extendedKeyUsage clientAuth.
#                                  Without --sender-name: one certificate named
#                                  "sender", in sender.pem / sender.key.
#
# Keys are EC P-256 (PKCS#8 PEM, unencrypted, mode 0600); certificates carry
# no extension beyond the ones above, so the two that cross the wire in each
# handshake stay small (bytes on the wire are what deltasync measures).
# Certificates are valid for --days (default 3650) days.
#
# Refuses to overwrite any file it would write unless --force is given; a
# rerun with the same arguments therefore fails instead of silently replacing
# a CA that certificates in the field depend on. Prints what it made.
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
  exit "${1:-2}"
}

die() {
  echo "make-certs.sh: $*" >&2
  exit 1
}

out_dir=""
receiver_names=()
receiver_ips=()
sender_names=()
days=3650
force=0

need_value() {
  [[ $# -ge 2 && -n "$2" ]] || die "$1 needs a value (see --help)"
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --receiver-name) need_value "$@"; receiver_names+=("$2"); shift 2 ;;
    --receiver-ip) need_value "$@"; receiver_ips+=("$2"); shift 2 ;;
    --sender-name) need_value "$@"; sender_names+=("$2"); shift 2 ;;
    --days) need_value "$@"; days="$2"; shift 2 ;;
    --force) force=1; shift ;;
    -h | --help) usage 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *)
      [[ -z "$out_dir" ]] || die "more than one output directory: '$out_dir' and '$1'"
      out_dir="$1"
      shift
      ;;
  esac
done

[[ -n "$out_dir" ]] || usage 2
command -v openssl >/dev/null || die "the openssl command is needed (apt-get install openssl)"
[[ "$days" =~ ^[1-9][0-9]{0,5}$ ]] || die "--days '$days' is not a number of days (1..999999)"

if [[ ${#receiver_names[@]} -eq 0 ]]; then
  receiver_names=("$(hostname)")
  [[ "${receiver_names[0]}" =~ ^[A-Za-z0-9.-]+$ ]] ||
    die "this machine's host name '${receiver_names[0]}' cannot go into a certificate; give --receiver-name"
fi
if [[ ${#receiver_ips[@]} -eq 0 ]]; then
  receiver_ips=(127.0.0.1)
fi

# Names become subject fields, subjectAltNames and (senders) file names:
# host-name characters only.
name_ok() {
  [[ "$1" =~ ^[A-Za-z0-9]([A-Za-z0-9.-]{0,62}[A-Za-z0-9])?$ ]]
}
for name in "${receiver_names[@]}"; do
  name_ok "$name" || die "--receiver-name '$name' is not a host name (letters, digits, '.', '-')"
done
for name in "${sender_names[@]}"; do
  name_ok "$name" || die "--sender-name '$name' is not a name of letters, digits, '.', '-'"
done
for ip in "${receiver_ips[@]}"; do
  if [[ "$ip" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]]; then
    IFS=. read -r -a octets <<<"$ip"
    for octet in "${octets[@]}"; do
      ((10#$octet <= 255)) || die "--receiver-ip '$ip' is not an IPv4 address"
    done
  elif [[ ! "$ip" =~ ^[0-9A-Fa-f:.]+$ || "$ip" != *:* ]]; then
    die "--receiver-ip '$ip' is not an IPv4 or IPv6 address"
  fi
done

# The files to make: sender files are sender-NAME.*, or sender.* for the
# single default sender.
default_sender=0
if [[ ${#sender_names[@]} -eq 0 ]]; then
  sender_names=(sender)
  default_sender=1
fi
sender_base() {
  if [[ $default_sender -eq 1 ]]; then echo sender; else echo "sender-$1"; fi
}
targets=(ca.pem ca.key receiver.pem receiver.key)
for name in "${sender_names[@]}"; do
  base="$(sender_base "$name")"
  targets+=("$base.pem" "$base.key")
done
# The same sender twice would write one pair of files twice.
duplicates="$(printf '%s\n' "${targets[@]}" | sort | uniq -d)"
[[ -z "$duplicates" ]] || die "the same --sender-name is given twice (both would write $(echo "$duplicates" | head -1))"

mkdir -p "$out_dir"
existing=()
for file in "${targets[@]}"; do
  [[ -e "$out_dir/$file" ]] && existing+=("$out_dir/$file")
done
if [[ ${#existing[@]} -gt 0 && $force -eq 0 ]]; then
  die "refusing to overwrite ${existing[*]} (certificates in use may depend on them); use --force to replace them"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# A minimal request config: no default extensions from the system openssl.cnf.
cat >"$work/req.cnf" <<'EOF'
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign
EOF

# new_key PATH: an EC P-256 private key, mode 0600 from the start.
new_key() {
  rm -f "$1"
  (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
    -pkeyopt ec_param_enc:named_curve -out "$1" 2>"$work/err") ||
    die "making the key $1 failed: $(cat "$work/err")"
  chmod 600 "$1"
}

# sign BASE CN EXTENSIONS: key BASE.key, certificate BASE.pem signed by the CA.
sign() {
  local base="$1" cn="$2" extensions="$3"
  new_key "$out_dir/$base.key"
  # openssl adds key identifiers by default; the chain here is one CA deep,
  # found by name, so they would only add 64 bytes to every handshake.
  printf '[leaf]\n%s\nsubjectKeyIdentifier = none\nauthorityKeyIdentifier = none\n' \
    "$extensions" >"$work/$base.ext"
  openssl req -new -config "$work/req.cnf" -key "$out_dir/$base.key" -subj "/CN=$cn" \
    -out "$work/$base.csr" 2>"$work/err" || die "making the request for $base failed: $(cat "$work/err")"
  openssl x509 -req -in "$work/$base.csr" -CA "$out_dir/ca.pem" -CAkey "$out_dir/ca.key" \
    -set_serial "0x$(openssl rand -hex 8)" -days "$days" -sha256 \
    -extfile "$work/$base.ext" -extensions leaf -out "$out_dir/$base.pem" 2>"$work/err" ||
    die "signing $base failed: $(cat "$work/err")"
  chmod 644 "$out_dir/$base.pem"
}

# The CA: a random suffix in its name tells the CAs of different sites apart
# in error messages ("issued by 'CN=deltasync CA 1f2e3d4c', not by ...").
ca_name="deltasync CA $(openssl rand -hex 4)"
new_key "$out_dir/ca.key"
openssl req -x509 -new -config "$work/req.cnf" -extensions ca -key "$out_dir/ca.key" \
  -subj "/CN=$ca_name" -days "$days" -sha256 -set_serial "0x$(openssl rand -hex 8)" \
  -out "$out_dir/ca.pem" 2>"$work/err" || die "making the CA failed: $(cat "$work/err")"
chmod 644 "$out_dir/ca.pem"

alt_names=()
for name in "${receiver_names[@]}"; do alt_names+=("DNS:$name"); done
for ip in "${receiver_ips[@]}"; do alt_names+=("IP:$ip"); done
alt_list="$(IFS=,; echo "${alt_names[*]}")"
sign receiver "${receiver_names[0]}" \
  "subjectAltName = $alt_list
extendedKeyUsage = serverAuth"

for name in "${sender_names[@]}"; do
  sign "$(sender_base "$name")" "$name" "extendedKeyUsage = clientAuth"
done

size() { openssl x509 -in "$1" -outform DER | wc -c; }
echo "made in $out_dir (valid $days days):"
echo "  ca.pem, ca.key: CA '$ca_name' (ca.pem goes to the receiver and the senders; keep ca.key offline)"
echo "  receiver.pem, receiver.key: receiver '${receiver_names[0]}', $alt_list ($(size "$out_dir/receiver.pem") bytes DER)"
for name in "${sender_names[@]}"; do
  base="$(sender_base "$name")"
  echo "  $base.pem, $base.key: sender '$name' ($(size "$out_dir/$base.pem") bytes DER; allow it on the receiver with allow-client = $name)"
done
