#!/usr/bin/env bash
# The whole test suite, from a fresh clone on a fresh machine: builds (or reuses) the cached
# virtual environments, then runs
#   1. the fast lane (unit, packaging, stand-in and release-source tests) on Python 3.10 to 3.13,
#      then the unit tests on SwanLab 0.8.x and 0.9.x and on transformers 5
#   2. the end-to-end lane: real `axolotl train` on CPU, Axolotl 0.19.0, 0.21.0, 0.12.2, 0.9.2
#   3. a smoke run of the benchmarks (no timing is asserted)
# Usage: scripts/test.sh [fast|e2e|bench|all]   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
lane=${1:-all}
PY=${PYTHON:-python3}

export AXOLOTL_DO_NOT_TRACK=1 DO_NOT_TRACK=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
       TRANSFORMERS_OFFLINE=1 WANDB_MODE=disabled TOKENIZERS_PARALLELISM=false

venv() { "$PY" tools/venvs.py path "$1"; }
stage() { echo; echo "=== $* ($(date +%H:%M:%S))"; }

fast_lane() {
  for py in 3.10 3.11 3.12 3.13; do
    stage "fast lane on Python $py"
    local v; v=$(venv "fast-py$py")
    local paths=(tests/unit tests/packaging tests/standin)
    # The release-source check reads every Axolotl release once; one Python is enough.
    [ "$py" = 3.11 ] && paths+=(tests/releases)
    "$v/bin/python" -m pytest "${paths[@]}" -q -p no:cacheprovider -n 2
  done
  # The other SwanLab clients the package supports, and transformers 5 (Python 3.11).
  for variant in swanlab0.8 swanlab0.9 transformers5; do
    stage "fast lane with $variant"
    "$(venv "fast-$variant")/bin/python" -m pytest tests/unit -q -p no:cacheprovider -n 2
  done
}

AXOLOTL_ENVS=(axolotl-0.19.0 axolotl-0.21.0 axolotl-0.12.2 axolotl-0.9.2 axolotl-0.19.0-ray
             axolotl-0.19.0-swanlab0.8.0)

# On a fresh machine the Axolotl environments take a while to download: build them in the
# background (two at a time) while the fast lane runs. On a machine that has them: instant.
start_axolotl_builds() {
  mkdir -p .work
  ( venv axolotl-0.19.0 >/dev/null && venv axolotl-0.12.2 >/dev/null && venv axolotl-0.19.0-swanlab0.8.0 >/dev/null ) > .work/build-a.log 2>&1 &
  ( venv axolotl-0.21.0 >/dev/null && venv axolotl-0.9.2 >/dev/null && venv axolotl-0.19.0-ray >/dev/null ) > .work/build-b.log 2>&1 &
}

# The dashboard test looks at the page as a user does, in headless Chromium (Debian's package).
ensure_chromium() {
  command -v chromium >/dev/null && return 0
  stage "installing chromium (apt-get)"
  apt-get install -y -q chromium >/dev/null || { echo "chromium is needed for the dashboard test" >&2; return 1; }
}

e2e_lane() {
  ensure_chromium
  stage "preparing Axolotl environments"
  wait || true  # background builds, if any; a failed one is retried (and reported) below
  for env in "${AXOLOTL_ENVS[@]}"; do venv "$env" >/dev/null; done
  stage "end-to-end lane (real axolotl train on CPU)"
  "$(venv fast-py3.11)/bin/python" -m pytest tests/e2e -q -p no:cacheprovider -n 2 \
    --timeout 1200 --durations 15
}

bench_smoke() {
  stage "benchmark smoke run (numbers are not checked)"
  "$(venv fast-py3.11)/bin/python" benchmarks/run.py --smoke
}

case "$lane" in
  fast) fast_lane ;;
  e2e) e2e_lane ;;
  bench) bench_smoke ;;
  all) start_axolotl_builds; fast_lane; e2e_lane; bench_smoke ;;
  *) echo "usage: scripts/test.sh [fast|e2e|bench|all]" >&2; exit 2 ;;
esac
stage "all requested lanes passed"
