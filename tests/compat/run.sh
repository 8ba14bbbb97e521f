#!/usr/bin/env bash
# Compatibility suites: the official Alibaba Cloud ECS clients against a real `palisade serve`.
#
#   tests/compat/run.sh                 # uses target/release/palisade (never builds it)
#   PALISADE_BIN=/path/to/palisade tests/compat/run.sh
#   tests/compat/run.sh -k quota        # extra arguments go to every pytest run
#
# Installs the pinned Python clients into tests/compat/.venv (requirements.txt) and the Node
# client into tests/compat/node/node_modules (npm ci from package-lock.json), then runs one
# pytest per Python client and `node --test` for pop-core. Every test module starts its own
# server on a free 127.0.0.1 port with a temporary data dir. Exits non-zero if anything fails.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HERE/../.." && pwd)"

# The SDKs honour proxy variables themselves; these tests only ever talk to 127.0.0.1.
unset HTTP_PROXY http_proxy HTTPS_PROXY https_proxy ALL_PROXY all_proxy NO_PROXY no_proxy

die() { echo "compat: $*" >&2; exit 1; }

# --- the binary under test ----------------------------------------------------------
PALISADE_BIN="${PALISADE_BIN:-$REPO_ROOT/target/release/palisade}"
case "$PALISADE_BIN" in /*) ;; *) PALISADE_BIN="$REPO_ROOT/$PALISADE_BIN" ;; esac
[ -x "$PALISADE_BIN" ] || die "palisade binary not found at $PALISADE_BIN (cargo build --release -p palisade, or set PALISADE_BIN)"
export PALISADE_BIN

apt_updated=""
apt_install() {
    command -v apt-get >/dev/null 2>&1 || return 1
    if [ -z "$apt_updated" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || return 1
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# --- Python clients -----------------------------------------------------------------
PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
    for candidate in python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1; then PYTHON="$candidate"; break; fi
    done
fi
[ -n "$PYTHON" ] || die "no python3 found"

VENV="$HERE/.venv"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
    rm -rf "$VENV"
    if ! "$PYTHON" -m venv "$VENV" >/dev/null 2>&1; then
        # Debian splits venv/ensurepip out of the interpreter package.
        pyver="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
        apt_install "python${pyver}-venv" || apt_install python3-venv || die "cannot install python venv support"
        rm -rf "$VENV"
        "$PYTHON" -m venv "$VENV" || die "cannot create $VENV"
    fi
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$HERE/requirements.txt" \
    || die "pip install -r tests/compat/requirements.txt failed"

# --- Node client --------------------------------------------------------------------
command -v node >/dev/null 2>&1 || die "node not found (Node 20 expected)"
if ! command -v npm >/dev/null 2>&1; then
    apt_install npm || die "npm not found and could not be installed"
fi
(cd "$HERE/node" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) \
    || die "npm ci in tests/compat/node failed"

# --- run ----------------------------------------------------------------------------
LOGDIR="$(mktemp -d)"
trap 'rm -rf "$LOGDIR"' EXIT
total_pass=0
total_fail=0
failed_suites=()

count() { # count REGEX FILE -> the number captured by the last matching line, or 0
    local n
    n="$(grep -Eo "$1" "$2" | tail -n 1 | grep -Eo '[0-9]+' | head -n 1)"
    echo "${n:-0}"
}

run_pytest() { # run_pytest NAME MODULE [pytest args...]
    local name="$1" module="$2"; shift 2
    local log="$LOGDIR/$name.log"
    echo "=== $name ($module)"
    (cd "$HERE" && "$VENV/bin/python" -m pytest -q "$module" "$@") 2>&1 | tee "$log"
    local rc="${PIPESTATUS[0]}"
    local summary passed failed errors
    summary="$(grep -E '^(=+ )?[0-9]+ (passed|failed|error|errors|skipped)' "$log" | tail -n 1)"
    passed="$(count '[0-9]+ passed' <(echo "$summary"))"
    failed="$(count '[0-9]+ failed' <(echo "$summary"))"
    errors="$(count '[0-9]+ errors?' <(echo "$summary"))"
    total_pass=$((total_pass + passed))
    total_fail=$((total_fail + failed + errors))
    if [ "$rc" -ne 0 ]; then
        failed_suites+=("$name")
        [ $((failed + errors)) -gt 0 ] || total_fail=$((total_fail + 1))  # crashed without a count
    fi
    echo "$name: $passed passed, $((failed + errors)) failed"
}

run_pytest core-sdk test_core_sdk.py "$@"
run_pytest tea-sdk test_tea_sdk.py "$@"
run_pytest footmark test_footmark.py "$@"

echo "=== pop-core (node --test)"
nlog="$LOGDIR/pop-core.log"
(cd "$HERE/node" && node --test --test-reporter=spec test/popcore.test.js) 2>&1 | tee "$nlog"
nrc="${PIPESTATUS[0]}"
npass="$(count '^ℹ pass [0-9]+' "$nlog")"
nfail="$(count '^ℹ fail [0-9]+' "$nlog")"
total_pass=$((total_pass + npass))
total_fail=$((total_fail + nfail))
if [ "$nrc" -ne 0 ]; then
    failed_suites+=("pop-core")
    [ "$nfail" -gt 0 ] || total_fail=$((total_fail + 1))
fi
echo "pop-core: $npass passed, $nfail failed"

echo
if [ "${#failed_suites[@]}" -ne 0 ]; then
    echo "compat: failing suites: ${failed_suites[*]}"
fi
echo "compat: $total_pass passed, $total_fail failed"
[ "${#failed_suites[@]}" -eq 0 ]
