#!/usr/bin/env bash
# The API workload on one server with SQLite, one with PostgreSQL, and two with PostgreSQL
# (workers alternate between them), side by side. Needs a PostgreSQL admin URL in
# PALISADE_TEST_PG_URL, or starts a throwaway cluster with scripts/pg-start.sh.
#   bench/storage.sh            (env: BENCH_GROUPS, BENCH_RULES, BENCH_DESCRIBES, BENCH_CONCURRENCY)
set -euo pipefail
cd "$(dirname "$0")/.."
G=${BENCH_GROUPS:-200}; R=${BENCH_RULES:-50}; D=${BENCH_DESCRIBES:-5}; C=${BENCH_CONCURRENCY:-16}
T=${CARGO_TARGET_DIR:-target}
cargo build -q --release -p palisade -p palisade-bench
BIN=$T/release/palisade; BENCH=$T/release/palisade-bench
work=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; [ -n "${own_pg:-}" ] && bash scripts/pg-stop.sh "$own_pg" >/dev/null 2>&1; rm -rf "$work"; }
trap cleanup EXIT
if [ -z "${PALISADE_TEST_PG_URL:-}" ]; then
  own_pg=/tmp/palisade-bench-pg-$$
  PALISADE_TEST_PG_URL=$(bash scripts/pg-start.sh "$own_pg" 55434)
fi
base=${PALISADE_TEST_PG_URL%/*}
export PALISADE_ACCESS_KEY_ID=benchak PALISADE_ACCESS_KEY_SECRET=benchsecret

start() { # data-dir [database-url] -> prints "pid url"
  local args=(serve --listen 127.0.0.1:0 --data-dir "$1")
  [ -n "${2:-}" ] && args+=(--database-url "$2")
  "$BIN" "${args[@]}" > "$1.out" 2>/dev/null &
  local pid=$!
  until grep -q "listening on" "$1.out" 2>/dev/null; do sleep 0.1; done
  echo "$pid $(sed -n 's/.*listening on //p' "$1.out")"
}
newdb() { local n="bench_$(date +%s%N)"; psql "$PALISADE_TEST_PG_URL" -qc "CREATE DATABASE $n" >/dev/null; echo "$base/$n"; }
run() { # label pid endpoints
  "$BENCH" --endpoint "$3" --server-pid "$2" --access-key-id benchak --access-key-secret benchsecret \
    --groups "$G" --rules "$R" --describes "$D" --concurrency "$C" --json "$work/$1.json" > "$work/$1.txt"
}
read -r p1 u1 < <(start "$work/sqlite"); pids+=("$p1"); run sqlite "$p1" "$u1"; kill "$p1"
db=$(newdb); read -r p2 u2 < <(start "$work/pg1" "$db"); pids+=("$p2"); run pg1 "$p2" "$u2"; kill "$p2"
db=$(newdb); read -r p3 u3 < <(start "$work/pg2a" "$db"); read -r p4 u4 < <(start "$work/pg2b" "$db"); pids+=("$p3" "$p4")
run pg2 "$p3" "$u3,$u4"; kill "$p3" "$p4"
python3 - "$work" "$G" "$R" "$D" "$C" <<'PY'
import json, sys
work, G, R, D, C = sys.argv[1:]
runs = [("SQLite, 1 server", "sqlite"), ("PostgreSQL, 1 server", "pg1"), ("PostgreSQL, 2 servers", "pg2")]
data = {k: json.load(open(f"{work}/{k}.json")) for _, k in runs}
def phase(d, name):
    for p in d.get("phases", []):
        if p.get("phase") == name or p.get("name") == name:
            return p
    return None
print(f"API workload G={G} R={R} D={D}, concurrency {C} (req/s, p99 ms)\n")
print("| phase | " + " | ".join(l for l, _ in runs) + " |")
print("|---|" + "---:|" * len(runs))
for name in ["create", "authorize", "describe", "revoke", "delete"]:
    cells = []
    for _, k in runs:
        p = phase(data[k], name)
        cells.append("n/a" if p is None else f"{p.get('req_per_s', p.get('rps', 0)):,.0f} / {p.get('p99_ms', 0):.1f}")
    print(f"| {name} | " + " | ".join(cells) + " |")
PY
