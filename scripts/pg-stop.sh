#!/usr/bin/env bash
# Stops a cluster started by scripts/pg-start.sh DIR and removes DIR: pg-stop.sh DIR
set -euo pipefail
dir=${1:?usage: pg-stop.sh DIR}
[ -d "$dir" ] || exit 0
data="$dir/data"
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -n "$bin" ] && [ -s "$data/postmaster.pid" ]; then
  run_as=()
  [ "$(id -u)" -eq 0 ] && run_as=(runuser -u "$(stat -c %U "$data")" --)
  "${run_as[@]}" "$bin/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null 2>&1 \
    || "${run_as[@]}" "$bin/pg_ctl" -D "$data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
fi
rm -rf "$dir"
