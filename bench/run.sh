#!/usr/bin/env bash
# Palisade vs moto on the security-group workload (bench/WORKLOAD.md), side by side.
#
#   bench/run.sh [--quick] [--skip-build] [--no-moto]
#
#   --quick        G=20 R=10 D=5 instead of G=200 R=50 D=5
#   --skip-build   use the binaries already built
#   --no-moto      run only the Palisade side
#
# Environment overrides (win over --quick): BENCH_GROUPS, BENCH_RULES, BENCH_DESCRIBES,
# BENCH_CONCURRENCY (default "1 16"), BENCH_SEED (default 1); CARGO_TARGET_DIR is honoured.
#
# For each concurrency: a fresh `palisade serve` on 127.0.0.1:0 with a new data dir, then
# palisade-bench; then a fresh moto_server and bench/moto_driver.py. Prints one table and
# writes it to bench/results/latest.md (JSON per run in bench/results/latest-json/).
#
# Hook: if bench/engine.sh exists it runs afterwards (bash bench/engine.sh), with
# BENCH_RESULTS_DIR, BENCH_LATEST_MD, BENCH_GROUPS, BENCH_RULES, BENCH_DESCRIBES,
# BENCH_CONCURRENCY, BENCH_QUICK and PALISADE_BIN exported; its stdout is printed and
# appended to latest.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
CMDLINE="bench/run.sh${*:+ $*}"

QUICK=0 SKIP_BUILD=0 NO_MOTO=0
for a in "$@"; do
  case "$a" in
    --quick) QUICK=1 ;;
    --skip-build) SKIP_BUILD=1 ;;
    --no-moto) NO_MOTO=1 ;;
    -h|--help) sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done

if [ "$QUICK" = 1 ]; then dg=20 dr=10 dd=5; else dg=200 dr=50 dd=5; fi
G=${BENCH_GROUPS:-$dg}
R=${BENCH_RULES:-$dr}
D=${BENCH_DESCRIBES:-$dd}
CONC=${BENCH_CONCURRENCY:-"1 16"}
SEED=${BENCH_SEED:-1}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
PALISADE="$TARGET/release/palisade"
PBENCH="$TARGET/release/palisade-bench"
VENV="$BENCH/.venv"
OUT="$BENCH/results"
JSON_DIR="$OUT/latest-json"

# ---- (a) build
if [ "$SKIP_BUILD" = 0 ]; then
  echo "== building palisade and palisade-bench (release, target dir $TARGET)"
  (cd "$ROOT" && cargo build --release -p palisade -p palisade-bench)
fi
for b in "$PALISADE" "$PBENCH"; do
  [ -x "$b" ] || { echo "run.sh: $b is missing (build first)" >&2; exit 1; }
done

# ---- (b) the moto virtualenv
if [ "$NO_MOTO" = 0 ] && [ ! -x "$VENV/bin/moto_server" ]; then
  echo "== creating $VENV (moto[server]==5.2.5, boto3==1.44.8)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet 'moto[server]==5.2.5' 'boto3==1.44.8'
fi

# ---- (c) the runs
WORK=$(mktemp -d "${TMPDIR:-/tmp}/palisade-bench.XXXXXX")
SERVER_PID=""
stop_server() {
  local pid=$SERVER_PID
  SERVER_PID=""
  [ -n "$pid" ] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}
cleanup() { stop_server; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() { # port seconds
  local end=$((SECONDS + $2))
  while [ $SECONDS -lt $end ]; do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || return 1
    sleep 0.2
  done
  return 1
}

rm -rf "$JSON_DIR"
mkdir -p "$JSON_DIR"
AK="bench-ak"
SK="bench-$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')"

for C in $CONC; do
  echo
  echo "== palisade, concurrency $C (G=$G R=$R D=$D)"
  data="$WORK/palisade-data-c$C"
  log="$WORK/palisade-c$C.log"
  mkdir -p "$data"
  PALISADE_ACCESS_KEY_ID=$AK PALISADE_ACCESS_KEY_SECRET=$SK \
    "$PALISADE" serve --listen 127.0.0.1:0 --data-dir "$data" >"$log" 2>&1 &
  SERVER_PID=$!
  url=""
  for _ in $(seq 300); do
    url=$(sed -n 's/.*palisade listening on \(http:\/\/127\.0\.0\.1:[0-9]*\).*/\1/p' "$log" | head -n1)
    [ -n "$url" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$url" ]; then
    echo "palisade did not report its address; its output:" >&2
    cat "$log" >&2
    stop_server
  else
    echo "palisade pid $SERVER_PID at $url"
    "$PBENCH" --endpoint "$url" --server-pid "$SERVER_PID" \
      --access-key-id "$AK" --access-key-secret "$SK" \
      --groups "$G" --rules "$R" --describes "$D" --concurrency "$C" --seed "$SEED" \
      --json "$JSON_DIR/palisade-c$C.json" || echo "palisade-bench exited with status $?"
    stop_server
  fi

  if [ "$NO_MOTO" = 0 ]; then
    echo
    echo "== moto, concurrency $C (G=$G R=$R D=$D)"
    port=$(free_port)
    "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$WORK/moto-c$C.log" 2>&1 &
    SERVER_PID=$!
    if wait_port "$port" 60; then
      echo "moto_server pid $SERVER_PID at http://127.0.0.1:$port"
      "$VENV/bin/python" "$BENCH/moto_driver.py" --endpoint "http://127.0.0.1:$port" \
        --server-pid "$SERVER_PID" --groups "$G" --rules "$R" --describes "$D" \
        --concurrency "$C" --seed "$SEED" --json "$JSON_DIR/moto-c$C.json" \
        || echo "moto_driver.py exited with status $?"
    else
      echo "moto_server did not open port $port; its output:" >&2
      cat "$WORK/moto-c$C.log" >&2
    fi
    stop_server
  fi
done

# ---- (d) the table
# shellcheck disable=SC2086  # $CONC is a list of numbers
TABLE=$(python3 "$BENCH/table.py" "$JSON_DIR" $CONC)
{
  echo "# Palisade vs moto: security-group workload"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "- machine: $(uname -m), $(nproc) CPUs"
  echo "- command: \`${BENCH_GROUPS:+BENCH_GROUPS=$BENCH_GROUPS }${BENCH_RULES:+BENCH_RULES=$BENCH_RULES }${BENCH_DESCRIBES:+BENCH_DESCRIBES=$BENCH_DESCRIBES }${BENCH_CONCURRENCY:+BENCH_CONCURRENCY=\"$BENCH_CONCURRENCY\" }$CMDLINE\`"
  echo "- workload (bench/WORKLOAD.md): G=$G groups, R=$R rules/group, D=$D describes/group, seed $SEED"
  echo "- palisade: ECS API, V1-signed POST, one keep-alive client per worker thread (palisade-bench);"
  echo "  moto 5.2.5 through boto3 1.44.8 (bench/moto_driver.py). Latency is client-observed;"
  echo "  CPU ms/req is server CPU (utime+stime from /proc/PID/stat, counted in clock ticks of 10 ms, so"
  echo "  coarse for short phases) per request; ratio = palisade req/s / moto req/s."
  echo
  echo "$TABLE"
} >"$WORK/latest.md"
mkdir -p "$OUT"
cp "$WORK/latest.md" "$OUT/latest.md"
echo
cat "$OUT/latest.md"

# ---- hook for the engine/agent figures
if [ -f "$BENCH/engine.sh" ]; then
  echo
  echo "== bench/engine.sh"
  export BENCH_RESULTS_DIR="$OUT" BENCH_LATEST_MD="$OUT/latest.md" BENCH_GROUPS="$G" \
    BENCH_RULES="$R" BENCH_DESCRIBES="$D" BENCH_CONCURRENCY="$CONC" BENCH_QUICK="$QUICK" \
    PALISADE_BIN="$PALISADE"
  bash "$BENCH/engine.sh" | tee -a "$OUT/latest.md" || echo "bench/engine.sh exited with status $?"
fi
