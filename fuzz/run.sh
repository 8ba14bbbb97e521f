#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 20): fuzz/run.sh [SECONDS]
# Seeds come from fuzz/corpus/<target>/ (left untouched: new inputs go to a scratch
# directory); a crash leaves its input in fuzz/artifacts/<target>/ and fails the run.
# Works on the stable toolchain: cargo-fuzz passes -Z flags (sanitizer, coverage), which
# stable rustc accepts under RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-20}
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
targets=(params sign_v1 sign_v3 net permission)
cargo fuzz build -a 2>&1 | tail -n 3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
summary=()
for t in "${targets[@]}"; do
  mkdir -p "$work/$t"
  args=(-max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048)
  [ -f "dict/$t.dict" ] && args+=(-dict="dict/$t.dict")
  if ! cargo fuzz run -a "$t" "$work/$t" "corpus/$t" -- "${args[@]}" >"$work/$t.log" 2>&1; then
    tail -n 60 "$work/$t.log"
    echo "fuzz: $t FAILED; the input is in fuzz/artifacts/$t/"
    exit 1
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/$t.log" | grep -o '[0-9]*$' | tail -n 1)
  cov=$(grep -o 'cov: [0-9]*' "$work/$t.log" | tail -n 1 | grep -o '[0-9]*$' || true)
  summary+=("$t: ${execs:-?} executions in ${secs}s, coverage ${cov:-?} edges, $(ls "$work/$t" | wc -l) new inputs")
done
printf 'fuzz: %s\n' "${summary[@]}"
