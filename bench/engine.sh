#!/usr/bin/env bash
# Decision-engine figures for bench/run.sh (run after the API workload): verdicts per second of the
# compiled engine against the naive reference evaluator in the same process, and the cost of one
# rule change with 10 versus 10,000 groups loaded.
set -euo pipefail
cd "$(dirname "$0")/.."
echo
echo "### decision engine (cargo run --release -p palisade-engine --example engine_bench)"
echo
echo '```'
cargo run -q --release -p palisade-engine --example engine_bench
echo '```'
