#!/usr/bin/env bash
# The agent's namespace tests: real nftables, conntrack and packets between network
# namespaces the tests create (and remove). Needs root and `apt-get install -y nftables
# conntrack iproute2 python3`. Nothing is loaded into this machine's own namespace.
#   scripts/netns-test.sh           the enforcement and differential tests (debug build)
#   scripts/netns-test.sh --bench   the propagation / 1,000-rule benchmark (release build)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "needs root" >&2
  exit 1
fi
for t in nft conntrack ip python3; do
  command -v "$t" >/dev/null || { echo "missing $t: apt-get install -y nftables conntrack iproute2 python3" >&2; exit 1; }
done
if [ "${1:-}" = "--bench" ]; then
  cargo build --release -p palisade -p palisade-agent
  cargo test --release -p palisade-agent --test bench -- --ignored --nocapture
else
  cargo build -p palisade -p palisade-agent
  cargo test -p palisade-agent -- --nocapture
fi
