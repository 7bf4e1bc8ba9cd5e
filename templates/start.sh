#!/usr/bin/env bash
# edgeworker start script for Vast.ai templates (replaces the base image's
# start_server.sh bootstrap; README "Vast template").
#
# Downloads the pinned release binary (EDGEWORKER_URL), checks it against
# EDGEWORKER_SHA256 before running anything, keeps the verified copy as a
# cache for restarts and for when the download cannot be made, gets the TLS
# certificate when USE_SSL=true (as start_server.sh does), raises the soft
# open-files limit to the hard one and execs `edgeworker run --preset
# "$BACKEND"` with DENO_USR2_MEMORY_TRIM=1. Any failure before that exec is
# reported to every REPORT_ADDR as a partial worker_status
# ({"id","mtoken","version","error_msg","url"}) and the script exits 1: never
# a silent failure.
#
# Environment (defaults in brackets):
#   EDGEWORKER_URL            release binary to download (required)
#   EDGEWORKER_SHA256         its SHA-256, 64 hex digits (required)
#   BACKEND                   preset to run (required)
#   EDGEWORKER_DIR            cache and working directory (.has_benchmark)
#                             [/workspace/edgeworker]
#   REPORT_ADDR               autoscaler addresses, comma list [https://run.vast.ai]
#   USE_SSL                   "true": get /etc/instance.{crt,key} first [true]
#   WORKER_PORT               [3000]
#   EDGEWORKER_SIGN_CERT_URL  certificate signer
#                             [https://console.vast.ai/api/v0/sign_cert/]
#   EDGEWORKER_TLS_CERT, EDGEWORKER_TLS_KEY  [/etc/instance.crt, /etc/instance.key]
#   EDGEWORKER_DOWNLOAD_RETRIES  curl retries of the download [3]
#   EDGEWORKER_SIGN_RETRIES      tries of the certificate signing [5]
#   EDGEWORKER_RETRY_DELAY       seconds before the first signing retry,
#                                doubled each time [2]
#   EDGEWORKER_FAILURE_PAUSE     seconds to wait after reporting a failure,
#                                so a supervisor restart loop reports about as
#                                often as the worker's own beacon [10]
set -uo pipefail
shopt -s execfail # a failed exec returns here, to be reported

EDGEWORKER_DIR="${EDGEWORKER_DIR:-/workspace/edgeworker}"
REPORT_ADDR="${REPORT_ADDR:-https://run.vast.ai}"
USE_SSL="${USE_SSL:-true}"
WORKER_PORT="${WORKER_PORT:-3000}"
SIGN_CERT_URL="${EDGEWORKER_SIGN_CERT_URL:-https://console.vast.ai/api/v0/sign_cert/}"
TLS_CERT="${EDGEWORKER_TLS_CERT:-/etc/instance.crt}"
TLS_KEY="${EDGEWORKER_TLS_KEY:-/etc/instance.key}"
export REPORT_ADDR USE_SSL WORKER_PORT

log() { echo "edgeworker start: $*" >&2; }

# JSON string literal of $1 (quotes, backslashes and control characters).
json_string() {
  local s=$1 out="" c i i_code
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case $c in
      '"') out+='\"' ;;
      "\\") out+="\\\\" ;;
      $'\n') out+='\n' ;;
      $'\r') out+='\r' ;;
      $'\t') out+='\t' ;;
      *)
        printf -v i_code '%d' "'$c"
        ((i_code < 32)) && printf -v c '\\u%04x' "$i_code"
        out+=$c
        ;;
    esac
  done
  printf '"%s"' "$out"
}

# The URL the worker reports (lib/config/env.ts publicUrl).
public_url() {
  local scheme=http port_var="VAST_TCP_PORT_${WORKER_PORT}"
  [ "$USE_SSL" = true ] && scheme=https
  echo "${scheme}://${PUBLIC_IPADDR:-127.0.0.1}:${!port_var:-$WORKER_PORT}"
}

# Reports $1 to every REPORT_ADDR, then exits 1.
fail() {
  local msg="edgeworker start: $1" id="${CONTAINER_ID:-0}" addr body
  log "ERROR: $1"
  [[ $id =~ ^[0-9]+$ ]] || id=0
  body="{\"id\": $id, \"mtoken\": $(json_string "${MASTER_TOKEN:-}"),"
  body+=" \"version\": $(json_string "${EDGEWORKER_VERSION:-1.1.0}"),"
  body+=" \"error_msg\": $(json_string "$msg"),"
  body+=" \"url\": $(json_string "$(public_url)")}"
  IFS=',' read -r -a addrs <<<"$REPORT_ADDR"
  for addr in "${addrs[@]}"; do
    addr="${addr#"${addr%%[![:space:]]*}"}"
    addr="${addr%"${addr##*[![:space:]]}"}"
    addr="${addr%/}"
    [ -n "$addr" ] || continue
    curl -sS --max-time 10 -X POST -H 'Content-Type: application/json' \
      --data-binary "$body" -o /dev/null "$addr/worker_status/" ||
      log "could not report to $addr"
  done
  sleep "${EDGEWORKER_FAILURE_PAUSE:-10}"
  exit 1
}

sha256_of() { sha256sum "$1" | cut -d ' ' -f 1; }

for tool in curl sha256sum; do
  command -v "$tool" >/dev/null || fail "$tool is not installed"
done
[ -n "${EDGEWORKER_URL:-}" ] || fail "EDGEWORKER_URL must be set (the release binary to download)"
want="$(printf '%s' "${EDGEWORKER_SHA256:-}" | tr 'A-F' 'a-f')"
[[ $want =~ ^[0-9a-f]{64}$ ]] ||
  fail "EDGEWORKER_SHA256 must be the 64-hex-digit SHA-256 of the binary, got '${EDGEWORKER_SHA256:-}'"
[ -n "${BACKEND:-}" ] || fail "BACKEND must be set (the preset to run)"
mkdir -p "$EDGEWORKER_DIR" || fail "cannot create EDGEWORKER_DIR $EDGEWORKER_DIR"
cd "$EDGEWORKER_DIR" || fail "cannot enter EDGEWORKER_DIR $EDGEWORKER_DIR"

# One cached copy per checksum: a new pin never runs an old binary.
bin="$EDGEWORKER_DIR/edgeworker-$want"
if [ -f "$bin" ] && [ "$(sha256_of "$bin")" = "$want" ]; then
  log "using the verified copy $bin"
else
  rm -f "$bin"
  tmp="$EDGEWORKER_DIR/.download.$$"
  log "downloading $EDGEWORKER_URL"
  if ! err="$(curl -fsSL --retry "${EDGEWORKER_DOWNLOAD_RETRIES:-3}" \
    --retry-connrefused --retry-delay 2 --connect-timeout 20 \
    -o "$tmp" "$EDGEWORKER_URL" 2>&1)"; then
    rm -f "$tmp"
    fail "download of $EDGEWORKER_URL failed and no verified copy is cached: $err"
  fi
  got="$(sha256_of "$tmp")"
  if [ "$got" != "$want" ]; then
    rm -f "$tmp"
    fail "checksum mismatch for $EDGEWORKER_URL: expected $want, got $got (not run)"
  fi
  mv -f "$tmp" "$bin" || fail "cannot store the binary at $bin"
  # Older pins' copies are of no further use.
  for old in "$EDGEWORKER_DIR"/edgeworker-*; do
    [ "$old" = "$bin" ] || rm -f "$old"
  done
fi
chmod +x "$bin" 2>/dev/null
[ -x "$bin" ] || fail "$bin is not executable (a noexec mount?)"

if [ "$USE_SSL" = true ]; then
  command -v openssl >/dev/null || fail "USE_SSL=true needs openssl"
  cnf="$EDGEWORKER_DIR/.openssl-san.cnf"
  # The request Vast's start_server.sh makes: CN pyworker.vast.ai, SAN 0.0.0.0.
  printf '%s\n' '[req]' 'default_bits = 2048' \
    'distinguished_name = req_distinguished_name' 'req_extensions = v3_req' \
    '[req_distinguished_name]' '[v3_req]' 'basicConstraints = CA:FALSE' \
    'keyUsage = nonRepudiation, digitalSignature, keyEncipherment' \
    'subjectAltName = @alt_names' '[alt_names]' 'IP.1 = 0.0.0.0' >"$cnf" ||
    fail "cannot write $cnf"
  csr="$EDGEWORKER_DIR/.instance.csr"
  if ! err="$(openssl req -newkey rsa:2048 -nodes -sha256 \
    -subj "/C=US/ST=CA/CN=pyworker.vast.ai/" -config "$cnf" \
    -keyout "$TLS_KEY" -out "$csr" 2>&1)"; then
    fail "cannot make the TLS key and certificate request: $err"
  fi
  chmod 600 "$TLS_KEY"
  tries="${EDGEWORKER_SIGN_RETRIES:-5}"
  delay="${EDGEWORKER_RETRY_DELAY:-2}"
  for ((attempt = 1; ; attempt++)); do
    code="$(curl -sS --max-time 30 -o "$TLS_CERT.tmp" -w '%{http_code}' \
      -H 'Content-Type: application/octet-stream' --data-binary "@$csr" \
      -X POST "${SIGN_CERT_URL}?instance_id=${CONTAINER_ID:-}" 2>/dev/null)"
    if [[ $code =~ ^2[0-9][0-9]$ ]] && [ -s "$TLS_CERT.tmp" ]; then
      mv -f "$TLS_CERT.tmp" "$TLS_CERT" || fail "cannot write $TLS_CERT"
      break
    fi
    rm -f "$TLS_CERT.tmp"
    log "certificate signing try $attempt/$tries failed (HTTP ${code:-none})"
    [ "$attempt" -lt "$tries" ] ||
      fail "cannot get the TLS certificate signed after $tries tries (HTTP ${code:-none})"
    sleep "$delay"
    delay=$((delay * 2))
  done
fi

# Deno answers SIGUSR2 with malloc_trim and a V8 low-memory GC only when
# this is set at start; the worker signals itself once a burst of requests
# is over, giving the memory of that burst back (README "Benchmark").
export DENO_USR2_MEMORY_TRIM=1

# Many open connections: take the hard limit of open files.
hard="$(ulimit -Hn)"
ulimit -Sn "$hard" 2>/dev/null || log "cannot raise the open-files limit to $hard"

log "running $bin run --preset $BACKEND"
# shellcheck disable=SC2093 # execfail: a failed exec comes back here
exec "$bin" run --preset "$BACKEND"
fail "cannot run $bin (exit $?) on $(uname -sm): not a binary for this machine?"
