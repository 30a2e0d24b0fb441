#!/usr/bin/env bash
# Core pinning used by every perf script and by sluice-bench:
# the proxy under test on core 0, load generator and origins on core 1.
#
#   pin.sh proxy CMD [ARGS...]   run CMD on the proxy core
#   pin.sh load  CMD [ARGS...]   run CMD on the load core
#   pin.sh show  PID             print the affinity of PID and its threads
#
# Override the cores with PROXY_CORE / LOAD_CORE. On a single-core machine
# both are 0 and pinning is a no-op in effect.
set -euo pipefail

ncpu=$(nproc --all)
PROXY_CORE=${PROXY_CORE:-0}
if [[ $ncpu -ge 2 ]]; then LOAD_CORE=${LOAD_CORE:-1}; else LOAD_CORE=${LOAD_CORE:-0}; fi

case "${1:-}" in
  proxy) shift; exec taskset -c "$PROXY_CORE" "$@" ;;
  load)  shift; exec taskset -c "$LOAD_CORE" "$@" ;;
  show)  taskset -a -p "$2" ;;
  *) echo "usage: $0 proxy|load CMD [ARGS...] | show PID" >&2; exit 64 ;;
esac
