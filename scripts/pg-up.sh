#!/usr/bin/env bash
# Start a throwaway, loopback-only PostgreSQL cluster for the store's PostgreSQL tests.
#
# Usage: PG_ENV="$(scripts/pg-up.sh [port] [state-dir])" && eval "$PG_ENV"
#   (the assignment keeps pg-up's exit status for `set -e`; a bare `eval "$(...)"` would lose it)
#   port       default: $PG_PORT, else the first free one from 15432 up
#   state-dir  default: $PG_STATE_DIR, else a new /tmp/pg-test.XXXXXX (removed by pg-down.sh)
# Prints shell lines for eval on stdout (progress goes to stderr):
#   export ERP_BRIDGE_TEST_PG_URL=postgres://postgres@127.0.0.1:<port>/postgres
#   export PG_STATE_DIR=<state-dir>
#   export ERP_BRIDGE_TEST_PG_CA=<state-dir>/tls/ca.crt   (when openssl is there, see TLS below)
# Stop it with scripts/pg-down.sh (reads $PG_STATE_DIR, or pass the folder).
#
# The cluster: `initdb -A trust -U postgres` (no password: it listens on 127.0.0.1 and on a Unix
# socket inside the state folder only), UTF8, fsync off (test data is disposable).
# initdb and postgres refuse to run as root: as root the cluster runs as $PG_RUN_AS, by default the
# `postgres` user when it exists (Debian's package creates it), else `nobody`; the state folder is
# given to that user (so it must not lie inside a folder closed to it, such as /root).
# TLS: with openssl on the PATH the cluster also accepts TLS (`ssl=on`), with a server certificate
# for 127.0.0.1 and localhost signed by a throwaway CA made here (`<state-dir>/tls/ca.crt`), so that
# `sslmode=require` and `sslmode=verify-full&sslrootcert=<ca.crt>` can be tested; plain connections
# keep working. Without openssl the cluster runs without TLS (and no CA is exported).
set -euo pipefail

# --- CI: install PostgreSQL when its binaries are absent (a fresh Debian machine) ----------------
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "pg-up: PostgreSQL binaries not found; installing Debian's postgresql" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
fi
# -------------------------------------------------------------------------------------------------

if command -v initdb >/dev/null 2>&1; then
  PG_BIN="$(dirname "$(readlink -f "$(command -v initdb)")")"
else
  PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
fi

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
PORT="${1:-${PG_PORT:-}}"
if [ -z "$PORT" ]; then
  for p in $(seq 15432 15531); do
    if port_free "$p"; then PORT="$p"; break; fi
  done
  [ -n "$PORT" ] || { echo "pg-up: no free port in 15432..15531" >&2; exit 1; }
elif ! port_free "$PORT"; then
  echo "pg-up: 127.0.0.1:$PORT is in use" >&2; exit 1
fi

STATE="${2:-${PG_STATE_DIR:-}}"
if [ -z "$STATE" ]; then
  STATE="$(mktemp -d /tmp/pg-test.XXXXXX)"
  touch "$STATE/.created-by-pg-up"   # pg-down.sh removes the whole folder only then
fi
mkdir -p "$STATE"
STATE="$(cd "$STATE" && pwd)"

# Who runs the cluster, and how to run a command as that user.
as_user() { "$@"; }
if [ "$(id -u)" -eq 0 ]; then
  RUN_AS="${PG_RUN_AS:-}"
  if [ -z "$RUN_AS" ]; then
    RUN_AS=nobody
    id -u postgres >/dev/null 2>&1 && RUN_AS=postgres
  fi
  chown -R "$RUN_AS" "$STATE"
  if command -v runuser >/dev/null 2>&1; then
    as_user() { runuser -u "$RUN_AS" -- "$@"; }
  else
    as_user() { su -s /bin/sh "$RUN_AS" -c "$(printf '%q ' "$@")"; }
  fi
  as_user test -w "$STATE" || {
    echo "pg-up: user $RUN_AS cannot write $STATE (is a parent folder closed to it?)" >&2; exit 1; }
fi

if [ ! -f "$STATE/data/PG_VERSION" ]; then
  as_user "$PG_BIN/initdb" -D "$STATE/data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 --no-sync \
    >"$STATE/initdb.log" 2>&1 || { cat "$STATE/initdb.log" >&2; exit 1; }
fi
# --- TLS: a throwaway CA and a server certificate it signs (made once per state folder) ---------
TLS_OPTS=""
TLS="$STATE/tls"
if command -v openssl >/dev/null 2>&1; then
  if [ ! -f "$TLS/server.crt" ]; then
    mkdir -p "$TLS"
    {
      openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
        -subj "/CN=erp-bridge test CA" -keyout "$TLS/ca.key" -out "$TLS/ca.crt" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" &&
      openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -subj "/CN=127.0.0.1" -keyout "$TLS/server.key" -out "$TLS/server.csr" &&
      printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' >"$TLS/server.ext" &&
      openssl x509 -req -in "$TLS/server.csr" -CA "$TLS/ca.crt" -CAkey "$TLS/ca.key" -CAcreateserial \
        -days 3650 -extfile "$TLS/server.ext" -out "$TLS/server.crt"
    } >"$STATE/tls.log" 2>&1 || { cat "$STATE/tls.log" >&2; echo "pg-up: cannot make the TLS certificates" >&2; exit 1; }
    chmod 600 "$TLS/server.key" "$TLS/ca.key"
    if [ "$(id -u)" -eq 0 ]; then chown -R "$RUN_AS" "$TLS"; fi
  fi
  TLS_OPTS="-c ssl=on -c ssl_cert_file=$TLS/server.crt -c ssl_key_file=$TLS/server.key"
else
  echo "pg-up: openssl not found; PostgreSQL runs without TLS" >&2
fi

as_user "$PG_BIN/pg_ctl" -D "$STATE/data" -l "$STATE/postgres.log" -w -t 60 \
  -o "-k $STATE -h 127.0.0.1 -p $PORT -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 $TLS_OPTS" \
  start >&2 || { cat "$STATE/postgres.log" >&2; exit 1; }

URL="postgres://postgres@127.0.0.1:$PORT/postgres"
echo "pg-up: PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') at $URL (state $STATE${TLS_OPTS:+, TLS with CA $TLS/ca.crt})" >&2
echo "export ERP_BRIDGE_TEST_PG_URL=$URL"
echo "export PG_STATE_DIR=$STATE"
if [ -n "$TLS_OPTS" ]; then echo "export ERP_BRIDGE_TEST_PG_CA=$TLS/ca.crt"; fi
