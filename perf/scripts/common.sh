# Shared by flamegraph.sh and callgrind.sh (sourced, not run).
# Starts two bench-origin instances on the load core and cleans up on exit.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SCRIPTS="$ROOT/perf/scripts"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
PIDS=()

cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

need() { # need BINARY APT_PACKAGE
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "installing $2 (for $1)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1; DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >/dev/null; }
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_http URL: until it answers 200, at most 30 s (valgrind is slow to start).
wait_http() {
  for _ in $(seq 1 300); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "$1" || true) == 200 ]] && return 0
    sleep 0.1
  done
  echo "not ready: $1" >&2; return 1
}

# Builds bench-origin (and sluice unless SLUICE_BIN is set), starts the
# origins; sets ORIGIN1 ORIGIN2 SLUICE_BIN.
start_origins() {
  (cd "$ROOT" && cargo build -q --release -p sluice-bench --bin bench-origin)
  if [[ -z ${SLUICE_BIN:-} ]]; then
    (cd "$ROOT" && cargo build -q --release -p sluice)
    SLUICE_BIN="$CARGO_TARGET_DIR/release/sluice"
  fi
  local p1 p2
  p1=$(free_port); p2=$(free_port)
  "$SCRIPTS/pin.sh" load "$CARGO_TARGET_DIR/release/bench-origin" --listen "127.0.0.1:$p1" >/dev/null & PIDS+=($!)
  "$SCRIPTS/pin.sh" load "$CARGO_TARGET_DIR/release/bench-origin" --listen "127.0.0.1:$p2" >/dev/null & PIDS+=($!)
  ORIGIN1="127.0.0.1:$p1"; ORIGIN2="127.0.0.1:$p2"
  wait_http "http://$ORIGIN1/ping"; wait_http "http://$ORIGIN2/ping"
}

# proxy_cmd NAME LISTEN DIR: prints the command line that runs proxy NAME in
# the foreground with one worker, keep-alive to both origins, no access log.
# Configs match sluice-bench's generated ones (bench/src/peers/).
proxy_cmd() {
  local name=$1 listen=$2 dir=$3
  case "$name" in
    sluice)
      echo "$SLUICE_BIN --listen $listen --backend $ORIGIN1 --backend $ORIGIN2 --workers 1 --lb round-robin" ;;
    nginx)
      # master_process off: one process, so valgrind/perf see the worker.
      cat > "$dir/nginx.conf" <<NGINX
master_process off; daemon off; worker_processes 1; user root;
pid $dir/nginx.pid; error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off; keepalive_requests 1000000;
  proxy_temp_path $dir/p; client_body_temp_path $dir/c; fastcgi_temp_path $dir/f; uwsgi_temp_path $dir/u; scgi_temp_path $dir/s;
  upstream origins { server $ORIGIN1; server $ORIGIN2; keepalive 64; keepalive_requests 1000000; }
  server { listen $listen; location / { proxy_pass http://origins; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
NGINX
      echo "nginx -p $dir -e $dir/error.log -c $dir/nginx.conf" ;;
    haproxy)
      cat > "$dir/haproxy.cfg" <<HAP
global
    nbthread 1
    maxconn 4000
defaults
    mode http
    timeout connect 5s
    timeout client 75s
    timeout server 75s
    http-reuse always
frontend fe
    bind $listen
    default_backend origins
backend origins
    balance roundrobin
    server o1 $ORIGIN1
    server o2 $ORIGIN2
HAP
      echo "haproxy -db -f $dir/haproxy.cfg" ;;
    *) echo "unknown proxy: $name" >&2; return 64 ;;
  esac
}

# start_proxy NAME PATH: origins, then proxy NAME pinned on the proxy core,
# warmed up with 2 s of wrk on PATH; sets WORK LISTEN PROXY_PID.
start_proxy() {
  start_origins
  WORK=$(mktemp -d)
  LISTEN="127.0.0.1:$(free_port)"
  # shellcheck disable=SC2046
  "$SCRIPTS/pin.sh" proxy $(proxy_cmd "$1" "$LISTEN" "$WORK") >"$WORK/proxy.log" 2>&1 & PIDS+=($!)
  PROXY_PID=$!
  wait_http "http://$LISTEN/ping"
  "$SCRIPTS/pin.sh" load wrk -t1 -c"${CONNS:-64}" -d2s "http://$LISTEN$2" >/dev/null
}
