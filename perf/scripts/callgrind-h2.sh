#!/usr/bin/env bash
# Instructions per request for Sluice serving HTTP/2 over TLS, under
# valgrind --tool=callgrind (the h2 counterpart of callgrind.sh).
#
#   perf/scripts/callgrind-h2.sh [PATH] [REQUESTS]
#     PATH      /1k (default)
#     REQUESTS  20000 (default), sent by `h2load -c 8 -m 16` (the bench's shape)
#
# A baseline run (start, one request, stop) is subtracted from a loaded run,
# as in callgrind.sh. The certificate is a throwaway self-signed RSA-2048 one.
set -euo pipefail
source "$(dirname "$0")/common.sh"

URLPATH=${1:-/1k}
N=${2:-20000}
STAMP=$(date -u +%Y-%m-%d-%H%M)
OUTDIR=${OUTDIR:-$ROOT/perf/callgrind}
mkdir -p "$OUTDIR"

need valgrind valgrind
need h2load nghttp2-client
need openssl openssl
start_origins

CERTS=$(mktemp -d)
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$CERTS/key.pem" -out "$CERTS/cert.pem" \
  -days 2 -subj /CN=localhost >/dev/null 2>&1

total_ir() { awk '/^(totals|summary):/ {print $2; exit}' "$1"; }

run_one() { # run_one LABEL LOAD(0|1) → prints Ir
  local label=$1 load=$2 plain tls pid out log
  plain="127.0.0.1:$(free_port)"; tls="127.0.0.1:$(free_port)"
  out="$OUTDIR/callgrind.sluice-h2.${URLPATH#/}.$label.$STAMP.out"
  log=$(mktemp)
  "$SCRIPTS/pin.sh" proxy valgrind --tool=callgrind --callgrind-out-file="$out" \
    "$SLUICE_BIN" --listen "$plain" --tls-listen "$tls" --cert "$CERTS/cert.pem" --key "$CERTS/key.pem" \
    --backend "$ORIGIN1" --backend "$ORIGIN2" --workers 1 --lb round-robin >"$log" 2>&1 &
  pid=$!
  wait_http "http://$plain/ping"
  curl -sk -o /dev/null "https://$tls/ping"
  if [[ $load == 1 ]]; then
    "$SCRIPTS/pin.sh" load h2load -n "$N" -c 8 -m 16 -t 1 "https://$tls$URLPATH" >"$log.h2load"
    grep -E "^requests:" "$log.h2load" >&2
    grep -qE " $N succeeded, 0 failed" "$log.h2load" || { cat "$log.h2load" >&2; exit 1; }
  fi
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  total_ir "$out"
  rm -f "$log" "$log.h2load"
}

BASE=$(run_one base 0)
LOAD=$(run_one load 1)
rm -rf "$CERTS"
echo "sluice h2-tls $URLPATH: Ir_load=$LOAD Ir_base=$BASE requests=$N → $(( (LOAD - BASE) / N )) instructions/request"
