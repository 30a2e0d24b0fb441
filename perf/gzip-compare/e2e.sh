#!/usr/bin/env bash
# The whole proxy on the bench's gzip scenario body (/json64k from
# bench-origin, Accept-Encoding: gzip), one worker, pinned as sluice-bench
# pins it (proxy core 0, origins and load core 1).
#
#   ./e2e.sh ir   LEVEL [N] BIN...   instructions per request under callgrind
#                                    ((loaded run - idle run) / N; N=2000);
#                                    CG_OPTS: more callgrind options (e.g. a
#                                    cache simulation), whose totals are printed
#   ./e2e.sh cpu  LEVEL [N] BIN...   CPU µs per request (utime+stime of the
#                                    proxy / N; N=20000), the BINs in turn,
#                                    ROUNDS=5 rounds, every round prints a row
#
# LEVEL 0: no gzip (the same body proxied uncompressed). BIN is a sluice
# binary, or `nginx` (the system's, configured as sluice-bench configures it).
# ORIGIN_BIN is bench-origin (default: ../../target/release/bench-origin).
# Load: h2load --h1 -c 32 (CONNS).
set -euo pipefail
cd "$(dirname "$0")"
MODE=$1 LEVEL=$2; shift 2
if [[ $1 =~ ^[0-9]+$ ]]; then N=$1; shift; else N=$([[ $MODE == ir ]] && echo 2000 || echo 20000); fi
CONNS=${CONNS:-32}
ROUNDS=${ROUNDS:-5}
ORIGIN_BIN=${ORIGIN_BIN:-../../target/release/bench-origin}
PIN=../scripts/pin.sh
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ready() { for _ in $(seq 1 300); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done; echo "not ready: $1" >&2; exit 1; }

O1=127.0.0.1:$(port); O2=127.0.0.1:$(port)
$PIN load "$ORIGIN_BIN" --listen "$O1" >/dev/null 2>&1 & PIDS+=($!)
$PIN load "$ORIGIN_BIN" --listen "$O2" >/dev/null 2>&1 & PIDS+=($!)
ready "http://$O1/ping"; ready "http://$O2/ping"

load() { # load ADDR N
  local out; out=$($PIN load h2load --h1 -n "$2" -c "$CONNS" -t 1 -H 'Accept-Encoding: gzip' "http://$1/json64k")
  grep -qE " $2 succeeded, 0 failed" <<<"$out" || { echo "$out" >&2; exit 1; }
}
size() { curl -s -H 'Accept-Encoding: gzip' "http://$1/json64k" | wc -c; }

# nginx as sluice-bench configures it for its gzip scenarios (bench/results/
# *.md "nginx (gzip scenario)"), but master_process off: one process to measure.
nginx_conf() { # nginx_conf DIR ADDR
  cat > "$1/nginx.conf" <<NGINX
master_process off; daemon off; worker_processes 1; worker_rlimit_nofile 20000; user root;
pid $1/nginx.pid; error_log $1/error.log warn;
events { worker_connections 16384; multi_accept on; }
http {
  access_log off; keepalive_requests 1000000; keepalive_timeout 75s;
  client_body_temp_path $1/c; proxy_temp_path $1/p; fastcgi_temp_path $1/f; uwsgi_temp_path $1/u; scgi_temp_path $1/s;
  upstream origins { server $O1; server $O2; keepalive 64; keepalive_requests 1000000; }
  gzip $([[ $LEVEL == 0 ]] && echo off || echo on); gzip_comp_level $([[ $LEVEL == 0 ]] && echo 1 || echo "$LEVEL");
  gzip_types application/json; gzip_min_length 0; gzip_proxied any;
  server { listen $2 backlog=4096; location / { proxy_pass http://origins; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
NGINX
}

# start BIN [WRAPPER...] → sets ADDR PID. BIN `nginx`: the system nginx.
start() {
  local bin=$1; shift
  ADDR=127.0.0.1:$(port)
  if [[ $bin == nginx ]]; then
    local dir; dir=$(mktemp -d); nginx_conf "$dir" "$ADDR"
    $PIN proxy "$@" nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" >/dev/null 2>&1 &
    PID=$!; PIDS+=("$PID")
    ready "http://$ADDR/ping"
    return
  fi
  $PIN proxy "$@" "$bin" --listen "$ADDR" --backend "$O1" --backend "$O2" --workers 1 \
      --lb round-robin $([[ $LEVEL == 0 ]] || echo --gzip "$LEVEL") >/dev/null 2>&1 &
  PID=$!; PIDS+=("$PID")
  ready "http://$ADDR/ping"
}
stop() { kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; }

case $MODE in
  ir)
    for bin in "$@"; do
      irs=()
      for n in 0 "$N"; do
        f=$(mktemp)
        # shellcheck disable=SC2086
        start "$bin" valgrind --tool=callgrind --callgrind-out-file="$f" ${CG_OPTS:-}
        [[ $n == 0 ]] || { load "$ADDR" 100; load "$ADDR" "$n"; }
        [[ $n == 0 ]] && bytes=$(size "$ADDR") || true
        stop
        irs+=("$(awk '/^(totals|summary):/ {print $2; exit}' "$f")")
        [[ -z ${CG_OPTS:-} || $n == 0 ]] || { grep -E '^(events|summary):' "$f" | sed 's/^/    /'; }
        rm -f "$f"
      done
      # The idle run answered one /ping and one probe; the loaded one 100 warm-up + N more.
      echo "$bin L$LEVEL: $(( (irs[1] - irs[0]) / (N + 100) )) Ir/request, gzip body $bytes B"
    done ;;
  cpu)
    tck=$(getconf CLK_TCK)
    for r in $(seq 1 "$ROUNDS"); do
      row="round $r:"
      for bin in "$@"; do
        start "$bin"
        load "$ADDR" 2000
        read -r u0 s0 < <(awk '{print $14, $15}' /proc/$PID/stat)
        load "$ADDR" "$N"
        read -r u1 s1 < <(awk '{print $14, $15}' /proc/$PID/stat)
        bytes=$(size "$ADDR")
        stop
        row="$row $(basename "$bin") $(python3 -c "u=($u1-$u0)/$tck/$N*1e6; s=($s1-$s0)/$tck/$N*1e6; print(f'{u+s:.1f} µs/req (user {u:.1f} + sys {s:.1f})')") $bytes B |"
      done
      echo "$row"
    done ;;
  *) echo "mode: ir | cpu" >&2; exit 64 ;;
esac
