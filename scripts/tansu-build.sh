#!/usr/bin/env bash
# Build (once) the tansu Kafka-protocol broker used by the tests and print its path.
# Cached under ~/.cache/tansu-<version>; cold build is 15-20 minutes on 2 cores.
# Runs at the same time do not build twice: they take a lock beside the cache (flock), and wait for
# a `cargo install tansu` into the same folder that is already under way (started without the lock).
set -euo pipefail
TANSU_VERSION=0.6.0
TANSU_ROOT="${TANSU_ROOT:-$HOME/.cache/tansu-$TANSU_VERSION}"
BIN="$TANSU_ROOT/bin/tansu"
built() { "$BIN" --version 2>/dev/null | grep -q "tansu $TANSU_VERSION"; }
if ! built; then
  mkdir -p "$(dirname "$TANSU_ROOT")"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$TANSU_ROOT.lock"
    flock 9
  fi
  # Anchored at the start of the command line, so that a shell merely mentioning it does not match.
  other_build() { pgrep -f "^[^ ]*cargo install tansu --version $TANSU_VERSION .*--root $TANSU_ROOT" >/dev/null; }
  if other_build; then
    echo "tansu-build: a build of tansu $TANSU_VERSION into $TANSU_ROOT is under way; waiting for it..." >&2
    while other_build; do sleep 10; done
  fi
  if ! built; then
    echo "building tansu $TANSU_VERSION into $TANSU_ROOT (cold: ~20 min on 2 cores)..." >&2
    cargo install tansu --version "$TANSU_VERSION" --locked --no-default-features \
        --features dynostore,libsql --root "$TANSU_ROOT" >&2
  fi
fi
echo "$BIN"
