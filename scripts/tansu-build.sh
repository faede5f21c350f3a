#!/usr/bin/env bash
# Build (once) the tansu Kafka-protocol broker used by the tests and print its path.
# Cached under ~/.cache/tansu-<version>; cold build is 15-20 minutes on 2 cores.
set -euo pipefail
TANSU_VERSION=0.6.0
TANSU_ROOT="${TANSU_ROOT:-$HOME/.cache/tansu-$TANSU_VERSION}"
BIN="$TANSU_ROOT/bin/tansu"
if ! "$BIN" --version 2>/dev/null | grep -q "tansu $TANSU_VERSION"; then
  echo "building tansu $TANSU_VERSION into $TANSU_ROOT (cold: ~20 min on 2 cores)..." >&2
  cargo install tansu --version "$TANSU_VERSION" --locked --no-default-features \
      --features dynostore,libsql --root "$TANSU_ROOT" >&2
fi
echo "$BIN"
