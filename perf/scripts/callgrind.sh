#!/usr/bin/env bash
# Instructions per request under valgrind --tool=callgrind: counts, not
# seconds, so it is repeatable on a noisy machine.
#
#   perf/scripts/callgrind.sh [PROXY] [PATH] [REQUESTS]
#     PROXY     sluice (default) | nginx | haproxy
#     PATH      /1k (default)
#     REQUESTS  20000 (default), sent by `h2load --h1 -n` (a bounded client)
#
# Two runs of the same proxy under callgrind:
#   baseline: start, answer the readiness probe, stop  → Ir_base
#   loaded:   start, readiness probe, REQUESTS requests, stop → Ir_load
# Instructions per request = (Ir_load - Ir_base) / REQUESTS, which removes
# startup and shutdown cost. Prints one line and keeps the callgrind.out
# files in perf/callgrind/ for callgrind_annotate.
set -euo pipefail
source "$(dirname "$0")/common.sh"

PROXY=${1:-sluice}
URLPATH=${2:-/1k}
N=${3:-20000}
CONNS=${CONNS:-16}
STAMP=$(date -u +%Y-%m-%d-%H%M)
OUTDIR=${OUTDIR:-$ROOT/perf/callgrind}
mkdir -p "$OUTDIR"

need valgrind valgrind
need h2load nghttp2-client
start_origins

# total_ir FILE: the event total callgrind wrote ("totals:" or "summary:").
total_ir() { awk '/^(totals|summary):/ {print $2; exit}' "$1"; }

run_one() { # run_one LABEL LOAD(0|1) → prints Ir
  local label=$1 load=$2 work listen pid out
  work=$(mktemp -d); listen="127.0.0.1:$(free_port)"
  out="$OUTDIR/callgrind.$PROXY.${URLPATH#/}.$label.$STAMP.out"
  # shellcheck disable=SC2046
  "$SCRIPTS/pin.sh" proxy valgrind --tool=callgrind --callgrind-out-file="$out" \
      --trace-children=no $(proxy_cmd "$PROXY" "$listen" "$work") >"$work/log" 2>&1 &
  pid=$!
  wait_http "http://$listen/ping"
  if [[ $load == 1 ]]; then
    "$SCRIPTS/pin.sh" load h2load --h1 -n "$N" -c "$CONNS" -t 1 "http://$listen$URLPATH" >"$work/h2load.txt"
    grep -E "^requests:" "$work/h2load.txt" >&2
    grep -qE " $N succeeded, 0 failed" "$work/h2load.txt" || { echo "requests failed" >&2; cat "$work/h2load.txt" >&2; exit 1; }
  fi
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  total_ir "$out"
  rm -rf "$work"
}

BASE=$(run_one base 0)
LOAD=$(run_one load 1)
PER=$(( (LOAD - BASE) / N ))
echo "$PROXY $URLPATH: Ir_load=$LOAD Ir_base=$BASE requests=$N → $PER instructions/request"
