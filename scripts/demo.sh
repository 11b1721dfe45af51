#!/usr/bin/env bash
# `make demo`: see scripts/demo.py.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 scripts/demo.py "$@"
