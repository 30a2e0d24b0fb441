#!/usr/bin/env bash
# Instructions per response of one `levels` row under callgrind: two runs
# (1 and 21 responses), the difference ÷ 20, so setup is subtracted.
#
#   ./ir.sh [BIN] ENCODER LEVEL FRAMES     e.g. ./ir.sh finish-last 2 one
#   BIN defaults to target/release/levels; target/simd/release/levels is the
#   --features simd build (cargo build --release --features simd --target-dir target/simd).
set -euo pipefail
cd "$(dirname "$0")"
BIN=target/release/levels
if [[ $# -eq 4 ]]; then BIN=$1; shift; fi
ir() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$BIN" one "$1" "$2" "$3" "$4" 2>&1 \
    | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
a=$(ir "$1" "$2" "$3" 1); b=$(ir "$1" "$2" "$3" 21)
echo "$BIN $1 L$2 $3: $(( (b - a) / 20 )) Ir/response"
