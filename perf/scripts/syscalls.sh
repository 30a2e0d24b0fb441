#!/usr/bin/env bash
# Syscalls, context switches, wake-ups and IPIs per request of one proxy
# under wrk load, pinned like sluice-bench: which proxy makes which calls how
# often. The CPU line is inflated by the tracing itself (about 3x): compare
# it only between runs of this script; CPU per request is sluice-bench's.
#
#   perf/scripts/syscalls.sh [PROXY] [PATH] [SECONDS]
#     PROXY    sluice (default) | nginx | haproxy
#     PATH     /tiny (default), /1k, /64k
#     SECONDS  measuring time, default 5
#   env: SLUICE_BIN, CONNS (wrk connections, default 64)
#
# Counts come from the syscalls:sys_enter_* tracepoints (perf stat -p), so
# they are exact counts, not samples; requests from wrk's own total.
set -euo pipefail
source "$(dirname "$0")/common.sh"

PROXY=${1:-sluice}
URLPATH=${2:-/tiny}
SECS=${3:-5}
CONNS=${CONNS:-64}

need perf linux-perf
need wrk wrk

start_proxy "$PROXY" "$URLPATH"

EVENTS=task-clock,context-switches,sched:sched_waking,sched:sched_wakeup,ipi:ipi_send_cpu
for s in read recvfrom recvmsg readv write sendto sendmsg writev epoll_wait epoll_pwait epoll_ctl \
         accept4 close setsockopt getsockopt futex ioctl madvise mmap munmap; do
  EVENTS+=",syscalls:sys_enter_$s"
done
"$SCRIPTS/pin.sh" load wrk -t1 -c"$CONNS" -d"${SECS}s" "http://$LISTEN$URLPATH" >"$WORK/wrk.txt" & WRK=$!
perf stat -x, -e "$EVENTS" -p "$PROXY_PID" -o "$WORK/stat.csv" -- sleep "$((SECS - 1))" 2>/dev/null
wait "$WRK"

# wrk's total is for SECS; perf counted SECS-1 of them: scale by rate.
RPS=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.txt")
REQS=$(awk -v r="$RPS" -v s="$((SECS - 1))" 'BEGIN {printf "%d", r * s}')
echo "$PROXY $URLPATH: $RPS req/s; per request over ~$REQS requests:"
awk -F, -v n="$REQS" '$1 ~ /^[0-9.]+$/ && $1 > 0 {
  name = $3; sub("syscalls:sys_enter_", "", name)
  if (name == "task-clock") printf "  %-18s %8.2f µs\n", "cpu (traced)", $1 * 1000 / n
  else printf "  %-18s %8.3f\n", name, $1 / n
}' "$WORK/stat.csv"
rm -rf "$WORK"
