#!/usr/bin/env bash
# Set up everything the tests need, on a bare Debian machine as on a warm one. scripts/test sources
# it; quick when everything is already there (a few checks and a PostgreSQL start, ~2 s).
#
# Usage: source scripts/setup.sh   (from scripts/test: the exports and the EXIT trap stay in the caller)
#        scripts/setup.sh          (alone: installs what is missing, starts PostgreSQL, stops it on exit)
#
# Steps, each skipped when its result is already there:
#   1. Debian packages (one apt-get update first; sudo when not root): a C toolchain (build-essential,
#      for librdkafka and tansu), chromium (the Studio browser test; $CHROMIUM_BIN if set), nodejs and
#      npm (the browser driver), postgresql (the store's PostgreSQL tests).
#   2. `npm ci --prefix ui-tests` when ui-tests/node_modules is missing or was installed from another
#      package-lock.json (a sha256 stamp in node_modules records which one).
#   2b. the conformance checks' validators (crates/erp-bridge/tests/api/conformance.rs and
#      openapi.rs): promtool (Debian `prometheus`; its server is not left running), python3-venv,
#      one virtualenv conformance/.venv from conformance/requirements.txt (jsonschema with format
#      checkers, the CloudEvents SDK, kafka-python, openapi-spec-validator, openapi-core) and
#      `npm ci --prefix conformance` (@asyncapi/parser, @redocly/cli), each redone only when its
#      requirements file or lock changed (sha256 stamps, as in step 2).
#   3. the tansu Kafka-protocol broker, built once by scripts/tansu-build.sh into ~/.cache (cold: ~20
#      min on 2 cores); exports TANSU_BIN. A TANSU_BIN already pointing to a program is kept.
#   4. cargo-nextest (`cargo install` when missing; without it scripts/test uses cargo test).
#   5. a throwaway loopback PostgreSQL by scripts/pg-up.sh, stopped by scripts/pg-down.sh on exit;
#      exports ERP_BRIDGE_TEST_PG_URL. An ERP_BRIDGE_TEST_PG_URL already set is kept (your server).
# Progress goes to stderr.

set -euo pipefail
SETUP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

setup_note() { echo "setup: $*" >&2; }

# --- 1. Debian packages -----------------------------------------------------------------------------
setup_missing=()
{ command -v cc && command -v c++ && command -v make; } >/dev/null 2>&1 || setup_missing+=(build-essential)
[ -x "${CHROMIUM_BIN:-/usr/bin/chromium}" ] || setup_missing+=(chromium)
command -v node >/dev/null 2>&1 || setup_missing+=(nodejs)
command -v npm >/dev/null 2>&1 || setup_missing+=(npm)
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  setup_missing+=(postgresql)
fi
command -v promtool >/dev/null 2>&1 || setup_missing+=(prometheus)
command -v openssl >/dev/null 2>&1 || setup_missing+=(openssl) # scripts/pg-up.sh: PostgreSQL's TLS certificates
command -v python3 >/dev/null 2>&1 || setup_missing+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || setup_missing+=(python3-venv)
if [ ${#setup_missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null 2>&1 || {
    setup_note "missing: ${setup_missing[*]} (no apt-get here: install them by hand)"; exit 1; }
  SETUP_SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { setup_note "missing: ${setup_missing[*]}; need root or sudo"; exit 1; }
    SETUP_SUDO=sudo
  fi
  setup_note "installing ${setup_missing[*]}"
  setup_apt_log="$(mktemp /tmp/setup-apt.XXXXXX.log)"
  { $SETUP_SUDO apt-get update -qq &&
    $SETUP_SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${setup_missing[@]}"; } \
    >"$setup_apt_log" 2>&1 || { cat "$setup_apt_log" >&2; setup_note "apt-get failed (log above)"; exit 1; }
  rm -f "$setup_apt_log"
  # Only promtool is wanted from `prometheus`: do not leave its server running.
  if [[ " ${setup_missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null 2>&1; then
    $SETUP_SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
fi

# --- 2. The browser test's driver (playwright-core drives the system Chromium; no download) ---------
setup_lock_sum="$(sha256sum "$SETUP_ROOT/ui-tests/package-lock.json" | cut -d' ' -f1)"
setup_stamp="$SETUP_ROOT/ui-tests/node_modules/.installed-from-lock.sha256"
if [ ! -d "$SETUP_ROOT/ui-tests/node_modules/playwright-core" ] || [ "$(cat "$setup_stamp" 2>/dev/null)" != "$setup_lock_sum" ]; then
  setup_note "npm ci --prefix ui-tests"
  npm ci --prefix "$SETUP_ROOT/ui-tests" --no-audit --no-fund >&2
  echo "$setup_lock_sum" >"$setup_stamp"
fi

# --- 2b. The conformance checks' validators (one Python environment for check.py and openapi_check.py)
setup_req_sum="$(sha256sum "$SETUP_ROOT/conformance/requirements.txt" | cut -d' ' -f1)"
setup_venv="$SETUP_ROOT/conformance/.venv"
if [ ! -x "$setup_venv/bin/python" ] || [ "$(cat "$setup_venv/.installed-from.sha256" 2>/dev/null)" != "$setup_req_sum" ]; then
  setup_note "python venv conformance/.venv (conformance/requirements.txt)"
  python3 -m venv --clear "$setup_venv" >&2
  "$setup_venv/bin/pip" install --quiet --disable-pip-version-check -r "$SETUP_ROOT/conformance/requirements.txt" >&2
  echo "$setup_req_sum" >"$setup_venv/.installed-from.sha256"
fi
setup_lock_sum="$(sha256sum "$SETUP_ROOT/conformance/package-lock.json" | cut -d' ' -f1)"
setup_stamp="$SETUP_ROOT/conformance/node_modules/.installed-from-lock.sha256"
if [ ! -d "$SETUP_ROOT/conformance/node_modules/@asyncapi/parser" ] || [ "$(cat "$setup_stamp" 2>/dev/null)" != "$setup_lock_sum" ]; then
  setup_note "npm ci --prefix conformance"
  npm ci --prefix "$SETUP_ROOT/conformance" --no-audit --no-fund >&2
  echo "$setup_lock_sum" >"$setup_stamp"
fi

# --- 3. The Kafka-protocol broker (each Kafka test starts its own on a free port) -------------------
if [ -z "${TANSU_BIN:-}" ] || [ ! -x "$TANSU_BIN" ]; then
  TANSU_BIN="$("$SETUP_ROOT/scripts/tansu-build.sh")"
fi
export TANSU_BIN

# --- 4. The test runner ------------------------------------------------------------------------------
if ! command -v cargo-nextest >/dev/null 2>&1; then
  setup_note "cargo install cargo-nextest"
  cargo install cargo-nextest --locked >&2 || setup_note "cargo-nextest unavailable; scripts/test uses cargo test"
fi

# --- 5. A throwaway PostgreSQL ---------------------------------------------------------------------
if [ -z "${ERP_BRIDGE_TEST_PG_URL:-}" ]; then
  # Assignment, then eval: a failing pg-up stops the run (set -e); a bare eval "$(...)" would not.
  setup_pg_env="$("$SETUP_ROOT/scripts/pg-up.sh")"
  eval "$setup_pg_env" # exports ERP_BRIDGE_TEST_PG_URL and PG_STATE_DIR
  trap '"'"$SETUP_ROOT"'/scripts/pg-down.sh" || true' EXIT
  trap 'exit 130' INT # so that Ctrl-C and kill go through the EXIT trap too
  trap 'exit 143' TERM
else
  setup_note "using the PostgreSQL at ERP_BRIDGE_TEST_PG_URL (already set)"
fi
setup_note "ready: TANSU_BIN=$TANSU_BIN ERP_BRIDGE_TEST_PG_URL=$ERP_BRIDGE_TEST_PG_URL"
