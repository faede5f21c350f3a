#!/usr/bin/env bash
# Stop the PostgreSQL cluster started by scripts/pg-up.sh and, when pg-up.sh created its state
# folder, remove it. Usage: scripts/pg-down.sh [state-dir]   (default: $PG_STATE_DIR)
set -euo pipefail
STATE="${1:-${PG_STATE_DIR:-}}"
[ -n "$STATE" ] || { echo "pg-down: no state folder (pass it or set PG_STATE_DIR)" >&2; exit 1; }
[ -d "$STATE" ] || { echo "pg-down: $STATE does not exist" >&2; exit 0; }

if command -v pg_ctl >/dev/null 2>&1; then
  PG_BIN="$(dirname "$(readlink -f "$(command -v pg_ctl)")")"
else
  PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
fi

if [ -f "$STATE/data/postmaster.pid" ]; then
  OWNER="$(stat -c %U "$STATE/data")"
  if [ "$(id -u)" -eq 0 ] && [ "$OWNER" != root ]; then
    if command -v runuser >/dev/null 2>&1; then
      runuser -u "$OWNER" -- "$PG_BIN/pg_ctl" -D "$STATE/data" -m fast -w stop >&2
    else
      su -s /bin/sh "$OWNER" -c "$(printf '%q ' "$PG_BIN/pg_ctl" -D "$STATE/data" -m fast -w stop)" >&2
    fi
  else
    "$PG_BIN/pg_ctl" -D "$STATE/data" -m fast -w stop >&2
  fi
fi

if [ -f "$STATE/.created-by-pg-up" ]; then
  rm -rf "$STATE"
  echo "pg-down: stopped and removed $STATE" >&2
else
  echo "pg-down: stopped (kept $STATE)" >&2
fi
