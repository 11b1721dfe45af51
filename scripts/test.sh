#!/usr/bin/env bash
# The whole test suite, from a fresh clone on a fresh machine: builds (or reuses) the cached
# virtual environments, then runs
#   1. the fast lane (unit, notification, packaging, stand-in and release-source tests) on
#      Python 3.10 to 3.13 (on 3.11 also the client tests and the helper process's chaos test),
#      then the unit, client and notification tests on SwanLab 0.8.x and 0.9.x and on the next
#      SwanLab minor (a fake: the newest client's code under a higher version), the unit tests
#      on transformers 5
#   2. the end-to-end lane: real `axolotl train` on CPU, Axolotl 0.19.0, 0.21.0, 0.12.2, 0.9.2
#   3. a smoke run of the benchmarks (no timing is asserted)
# Usage: scripts/test.sh [--busy[=N]] [fast|e2e|bench|all]   (default: all)
#   --busy[=N] (or BUSY=N in the environment): N CPU-bound processes (default 2) run beside the
#   lanes for their whole duration, as on a developer's or CI machine doing other work; they are
#   stopped at the end, also on failure or Ctrl-C, and the load average is reported. The suite
#   must pass this way too: tests wait for conditions, never for a number of seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
BUSY=${BUSY:-0}
lane=all
for arg in "$@"; do
  case "$arg" in
    --busy) [ "$BUSY" -gt 0 ] || BUSY=2 ;;
    --busy=*) BUSY=${arg#--busy=} ;;
    fast|e2e|bench|all) lane=$arg ;;
    *) echo "usage: scripts/test.sh [--busy[=N]] [fast|e2e|bench|all]" >&2; exit 2 ;;
  esac
done
case "$BUSY" in ''|*[!0-9]*) echo "BUSY must be a number of processes, got '$BUSY'" >&2; exit 2 ;; esac

export AXOLOTL_DO_NOT_TRACK=1 DO_NOT_TRACK=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
       TRANSFORMERS_OFFLINE=1 WANDB_MODE=disabled TOKENIZERS_PARALLELISM=false

venv() { "$PY" tools/venvs.py path "$1"; }
stage() { echo; echo "=== $* ($(date +%H:%M:%S))"; }

fast_lane() {
  for py in 3.10 3.11 3.12 3.13; do
    stage "fast lane on Python $py"
    local v; v=$(venv "fast-py$py")
    local paths=(tests/unit tests/notify tests/packaging tests/standin)
    # The release-source check reads every Axolotl release once, the client tests track once
    # per SwanLab client (here 0.10.x), and the chaos test's random sequences need one Python.
    [ "$py" = 3.11 ] && paths+=(tests/releases tests/clients tests/chaos)
    "$v/bin/python" -m pytest "${paths[@]}" -q -p no:cacheprovider -n 2
  done
  # The other SwanLab clients the package supports, and transformers 5 (Python 3.11).
  # The notification tests run SwanLab's own senders: on every supported client.
  for variant in swanlab0.8 swanlab0.9 transformers5; do
    stage "fast lane with $variant"
    local paths=(tests/unit)
    [ "$variant" != transformers5 ] && paths+=(tests/clients tests/notify)
    "$(venv "fast-$variant")/bin/python" -m pytest "${paths[@]}" -q -p no:cacheprovider -n 2
  done
  # The next SwanLab minor before it ships: the newest client's code under a higher version,
  # installed into a fresh venv next to this package (pip check clean; tests/support/
  # fake_swanlab.py), then the unit tests on it.
  stage "fast lane with the next SwanLab minor (built from the installed client)"
  local next
  next=$("$(venv fast-py3.11)/bin/python" -m tests.support.fake_swanlab venv .work/swanlab-next | tail -1)
  "$next" -m pytest tests/unit tests/clients -q -p no:cacheprovider -n 2
}

AXOLOTL_ENVS=(axolotl-0.19.0 axolotl-0.21.0 axolotl-0.12.2 axolotl-0.9.2 axolotl-0.19.0-ray
             axolotl-0.19.0-swanlab0.8.0)

# On a fresh machine the Axolotl environments take a while to download: build them in the
# background (two at a time) while the fast lane runs. On a machine that has them: instant.
BUILD_PIDS=()
start_axolotl_builds() {
  mkdir -p .work
  ( venv axolotl-0.19.0 >/dev/null && venv axolotl-0.12.2 >/dev/null && venv axolotl-0.19.0-swanlab0.8.0 >/dev/null ) > .work/build-a.log 2>&1 &
  BUILD_PIDS+=($!)
  ( venv axolotl-0.21.0 >/dev/null && venv axolotl-0.9.2 >/dev/null && venv axolotl-0.19.0-ray >/dev/null ) > .work/build-b.log 2>&1 &
  BUILD_PIDS+=($!)
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
  # the background builds, if any (not the --busy processes); a failed one is retried (and
  # reported) below
  [ ${#BUILD_PIDS[@]} -eq 0 ] || wait "${BUILD_PIDS[@]}" || true
  for env in "${AXOLOTL_ENVS[@]}"; do venv "$env" >/dev/null; done
  stage "end-to-end lane (real axolotl train on CPU)"
  "$(venv fast-py3.11)/bin/python" -m pytest tests/e2e -q -p no:cacheprovider -n 2 \
    --timeout 1200 --durations 15
}

bench_smoke() {
  stage "benchmark smoke run (numbers are not checked)"
  "$(venv fast-py3.11)/bin/python" benchmarks/run.py --smoke
}

# --busy: CPU burners beside the lanes, and a load-average sample every 15 s (.work/busy-load.log).
BUSY_PIDS=()
start_busy() {
  [ "$BUSY" -gt 0 ] || return 0
  mkdir -p .work
  : > .work/busy-load.log
  for _ in $(seq "$BUSY"); do
    "$PY" -c "while True: pass" &
    BUSY_PIDS+=($!)
  done
  ( while sleep 15; do echo "$(date +%H:%M:%S) $(cut -d' ' -f1-3 /proc/loadavg)"; done ) \
    >> .work/busy-load.log &
  BUSY_PIDS+=($!)
  trap stop_busy EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  stage "machine made busy: $BUSY CPU-bound processes (pids ${BUSY_PIDS[*]:0:$BUSY}) for the whole run"
}
stop_busy() {
  local rc=$?
  [ ${#BUSY_PIDS[@]} -gt 0 ] || return 0
  kill "${BUSY_PIDS[@]}" 2>/dev/null || true
  wait "${BUSY_PIDS[@]}" 2>/dev/null || true
  BUSY_PIDS=()
  # 1-minute load average over the run: samples, min / mean / max
  awk '{ n++; s += $2; if (n == 1 || $2 < lo) lo = $2; if ($2 > hi) hi = $2 }
       END { if (n) printf "busy run: %d load samples (1-min average): min %.2f, mean %.2f, max %.2f (.work/busy-load.log)\n", n, lo, s / n, hi }' \
    .work/busy-load.log
  return $rc
}

start_busy
case "$lane" in
  fast) fast_lane ;;
  e2e) e2e_lane ;;
  bench) bench_smoke ;;
  all) start_axolotl_builds; fast_lane; e2e_lane; bench_smoke ;;
esac
stage "all requested lanes passed"
