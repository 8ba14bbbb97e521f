#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for tests: pg-start.sh DIR PORT
# Installs Debian's postgresql if missing, creates the cluster in DIR (owned by the
# `postgres` system user, since initdb refuses root), listens on 127.0.0.1:PORT only (and
# a Unix socket in DIR), trust auth, no system service. Prints the admin URL on stdout:
#   postgres://postgres@127.0.0.1:PORT/postgres
# Stop it with scripts/pg-stop.sh DIR.
set -euo pipefail
dir=${1:?usage: pg-start.sh DIR PORT}
port=${2:?usage: pg-start.sh DIR PORT}
export DEBIAN_FRONTEND=noninteractive

pg_bin() {
  # Debian's versioned binaries, newest first.
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ] && echo "$d"
}

bin=$(pg_bin || true)
if [ -z "$bin" ]; then
  echo "pg-start: installing postgresql" >&2
  if [ "$(id -u)" -ne 0 ]; then
    echo "pg-start: postgresql is not installed and this is not root" >&2
    exit 1
  fi
  # Install the server without letting the package start its own system cluster.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
  fi
  (apt-get update -qq && apt-get install -y -qq postgresql >/dev/null) || {
    [ "$created_policy" = 1 ] && rm -f "$policy"
    echo "pg-start: apt-get install postgresql failed" >&2
    exit 1
  }
  [ "$created_policy" = 1 ] && rm -f "$policy"
  bin=$(pg_bin) || { echo "pg-start: no PostgreSQL binaries after install" >&2; exit 1; }
fi

# initdb and the server refuse to run as root: run them as an unprivileged user.
run_as=()
owner=$(id -un)
if [ "$(id -u)" -eq 0 ]; then
  owner=postgres
  id -u "$owner" >/dev/null 2>&1 || useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/sh "$owner"
  run_as=(runuser -u "$owner" --)
fi

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
[ "$(id -u)" -eq 0 ] && chown "$owner" "$dir"
chmod 700 "$dir"
data="$dir/data"
log="$dir/postgres.log"

if [ ! -s "$data/PG_VERSION" ]; then
  "${run_as[@]}" "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || "${run_as[@]}" "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
fi

if ! "${run_as[@]}" "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
  # A test cluster: durability is not wanted, speed is (fsync off), and enough
  # connections for parallel test servers, each with its own small pools.
  "${run_as[@]}" "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 \
    -o "-k $dir -p $port -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=128MB" \
    start >/dev/null || { tail -n 50 "$log" >&2; exit 1; }
fi

for _ in $(seq 1 120); do
  if "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres; then
    echo "postgres://postgres@127.0.0.1:$port/postgres"
    exit 0
  fi
  sleep 0.5
done
echo "pg-start: server on 127.0.0.1:$port did not become ready" >&2
tail -n 50 "$log" >&2 || true
exit 1
