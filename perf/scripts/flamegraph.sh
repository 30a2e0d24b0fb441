#!/usr/bin/env bash
# CPU flamegraph of one proxy under wrk load, pinned like sluice-bench.
#
#   perf/scripts/flamegraph.sh [PROXY] [PATH] [SECONDS]
#     PROXY    sluice (default) | nginx | haproxy
#     PATH     /1k (default), /tiny, /64k, /json64k
#     SECONDS  recording time, default 10
#   env: SLUICE_BIN (default: cargo build --release -p sluice), PERF_EVENT (default
#        cpu-clock: works on VMs without a PMU; use cycles where perf stat shows them),
#        CONNS (wrk connections, default 64), OUT (default perf/flamegraphs/PROXY-PATH-DATE.svg)
#
# perf records with DWARF call graphs (the release profile keeps line tables:
# debug = "line-tables-only"), then perf script → inferno-collapse-perf →
# inferno-flamegraph. Installs linux-perf, wrk and inferno if missing.
set -euo pipefail
source "$(dirname "$0")/common.sh"

PROXY=${1:-sluice}
URLPATH=${2:-/1k}
SECS=${3:-10}
CONNS=${CONNS:-64}
STAMP=$(date -u +%Y-%m-%d-%H%M)
OUT=${OUT:-$ROOT/perf/flamegraphs/$PROXY-${URLPATH#/}-$STAMP.svg}

need perf linux-perf
need wrk wrk
command -v inferno-flamegraph >/dev/null || cargo install inferno
mkdir -p "$(dirname "$OUT")"

start_proxy "$PROXY" "$URLPATH"
# Record while the load runs.
"$SCRIPTS/pin.sh" load wrk -t1 -c"$CONNS" -d"$((SECS + 2))s" --latency "http://$LISTEN$URLPATH" >"$WORK/wrk.txt" & WRK=$!
sleep 1
perf record -e "${PERF_EVENT:-cpu-clock}" -F 997 -g --call-graph dwarf,16384 -p "$PROXY_PID" -o "$WORK/perf.data" -- sleep "$SECS" 2>"$WORK/perf-record.log"
wait "$WRK"
grep -E "Requests/sec|Latency  " "$WORK/wrk.txt" || true

perf script -i "$WORK/perf.data" 2>/dev/null | inferno-collapse-perf > "$WORK/folded.txt"
inferno-flamegraph --title "$PROXY $URLPATH ($(date -u +%F))" < "$WORK/folded.txt" > "$OUT"
cp "$WORK/folded.txt" "${OUT%.svg}.folded"
echo "flamegraph: $OUT"
echo "folded:     ${OUT%.svg}.folded"
rm -rf "$WORK"
