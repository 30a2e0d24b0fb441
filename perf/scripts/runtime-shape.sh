#!/usr/bin/env bash
# Runtime shape comparison: 2 workers, thread-per-core vs work-stealing.
set -euo pipefail
B=${BENCH_BIN_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/target/release}
$B/bench-origin --listen 127.0.0.1:9301 >/dev/null 2>&1 & O1=$!
$B/bench-origin --listen 127.0.0.1:9302 >/dev/null 2>&1 & O2=$!
sleep 0.5
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
for round in 1 2 3; do
for shape in thread-per-core work-stealing; do
  "${SLUICE_BIN:-$B/sluice}" --listen 127.0.0.1:9300 --backend 127.0.0.1:9301 --backend 127.0.0.1:9302 --workers 2 --runtime $shape >/dev/null 2>&1 & P=$!
  for i in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:9300/1k && break; sleep 0.1; done
  c0=$(cpu $P)
  out=$(wrk -t2 -c64 -d8s http://127.0.0.1:9300/1k)
  c1=$(cpu $P)
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  errs=$(echo "$out" | grep -c "Non-2xx\|Socket errors" || true)
  tck=$(getconf CLK_TCK)
  echo "round=$round shape=$shape requests=$reqs rps=$rps cpu_us_per_req=$(python3 -c "print(round(($c1-$c0)/$tck*1e6/$reqs,2))") error_lines=$errs"
  kill $P; wait $P 2>/dev/null || true
done
done
kill $O1 $O2
