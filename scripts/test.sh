#!/usr/bin/env bash
# The whole test suite: unit and integration tests (they start the real binary), then the
# official-client compatibility suite against that binary. Run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --locked
cargo test --release --workspace --locked
if [ "${PALISADE_SKIP_COMPAT:-0}" != "1" ] && [ -x tests/compat/run.sh ]; then
  PALISADE_BIN="$PWD/target/release/palisade" tests/compat/run.sh
fi
