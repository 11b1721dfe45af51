"""1. Interpreter start-up: what the start-up file costs every Python process of the environment.

Method
- One dedicated venv (Python 3.11, ``python -m venv --without-pip``) with the package's real
  dependencies installed once (wrapt 2.5.2, swanlab, pydantic, packaging) and cached under
  ``$SWANLAB_AUTOPATCH_CACHE/bench/`` (default ``~/.cache/swanlab-autopatch/bench/``). wrapt 2.x is
  the expensive one to import (~70 ms cold, see instrumentation-anchors.md section 8), so it
  makes the eager reference as costly as it gets.
- The current wheel is installed into it with ``--no-deps`` at every benchmark run.
- The scenarios share that one venv; between two timed runs the benchmark *renames* files to
  switch scenario (outside the timing):
    without  the package's four entries (``swanlab_autopatch.pth``, ``.start``, the package
             folder and its dist-info) moved to a stash folder outside site-packages;
    with     all of them in place, ``SWANLAB_AUTOPATCH`` unset (the trigger is armed);
    with, SWANLAB_AUTOPATCH=0   in place, switched off by the environment variable;
    eager    package stashed, and a reference ``.pth`` that imports wrapt and registers two
             post-import hooks (what an eager shim would do).
  A single venv keeps everything else identical: same interpreter, same site-packages, same
  other ``.pth`` files, same disk location.
- ``python -c pass`` wall time from the parent (``subprocess.run``), rounds interleaved
  round-robin with warm-up rounds (the first runs also write the bytecode caches).
- One ``-X importtime`` run of the ``with`` scenario attributes the start-up module itself.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import stats

KEY = "1"
DEPS = ["wrapt==2.5.2", "swanlab==0.10.3", "pydantic>=2.7,<3", "packaging>=23"]
EAGER_PTH = "zz_bench_eager_wrapt.pth"
EAGER_LINE = ("import wrapt; wrapt.register_post_import_hook(lambda m: None, 'axolotl.cli.config'); "
              "wrapt.register_post_import_hook(lambda m: None, 'axolotl.core.builders.base')\n")
SCENARIOS = ["without", "with", "with, SWANLAB_AUTOPATCH=0", "eager wrapt .pth (reference)"]
WITH_PACKAGE = ("with", "with, SWANLAB_AUTOPATCH=0")
EAGER = "eager wrapt .pth (reference)"


def _venv_dir(venvs: Any) -> Path:
    tag = hashlib.sha256(json.dumps({"deps": DEPS, "python": "3.11", "v": 1}).encode()).hexdigest()[:12]
    return venvs.cache_dir() / "bench" / f"startup-py3.11-{tag}"


def ensure_venv(ctx: Any) -> Path:
    """The cached dependency venv (built once per machine, about a minute)."""
    import venvs  # tools/venvs.py

    def build(target: Path) -> None:
        shutil.rmtree(target, ignore_errors=True)
        stats.say(f"startup: building the start-up venv {target} (once per machine)")
        stats.check_run([venvs.find_python("3.11"), "-m", "venv", "--without-pip", str(target)])
        stats.check_run([ctx.fast_python, "-m", "pip", "--python", str(target / "bin" / "python"),
                         "install", "-q", "--disable-pip-version-check", *DEPS])
        (target / ".complete").write_text(json.dumps(DEPS))

    return venvs.build_once(_venv_dir(venvs), build)


def _site_packages(venv: Path) -> Path:
    return next(venv.glob("lib/python3.*/site-packages"))


class Toggle:
    """Switches the shared venv between scenarios by renaming files (never inside a timing)."""

    def __init__(self, venv: Path):
        self.site = _site_packages(venv)
        self.stash = venv / "bench-stash"
        self.stash.mkdir(exist_ok=True)
        self.entries = sorted(p.name for p in self.site.iterdir()
                              if p.name.startswith(("swanlab_autopatch.", "swanlab_autopatch-"))
                              or p.name == "swanlab_autopatch")
        if not any(e.endswith(".pth") for e in self.entries):
            raise RuntimeError(f"swanlab_autopatch.pth is not in {self.site}")

    def package(self, present: bool) -> None:
        for name in self.entries:
            src, dst = (self.stash / name, self.site / name) if present else \
                (self.site / name, self.stash / name)
            if src.exists() and not dst.exists():
                src.rename(dst)

    def eager(self, present: bool) -> None:
        path = self.site / EAGER_PTH
        if present:
            path.write_text(EAGER_LINE)
        else:
            path.unlink(missing_ok=True)

    def set(self, scenario: str) -> None:
        self.package(scenario in WITH_PACKAGE)
        self.eager(scenario == EAGER)

    def restore(self) -> None:
        """Leave the venv with the package installed and no reference file."""
        self.eager(False)
        self.package(True)


def _env(scenario: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "SWANLAB", "VIRTUAL_ENV"))}
    if scenario.endswith("SWANLAB_AUTOPATCH=0"):
        env["SWANLAB_AUTOPATCH"] = "0"
    return env


def run(ctx: Any) -> stats.Section:
    venv = ensure_venv(ctx)
    python = str(venv / "bin" / "python")
    # Current wheel, without touching the dependencies; reinstalling also undoes a stash
    # left behind by an interrupted run.
    shutil.rmtree(venv / "bench-stash", ignore_errors=True)
    (_site_packages(venv) / EAGER_PTH).unlink(missing_ok=True)
    stats.check_run([ctx.fast_python, "-m", "pip", "--python", python, "install", "-q",
                     "--no-deps", "--force-reinstall", "--disable-pip-version-check",
                     str(ctx.wheel)])
    toggle = Toggle(venv)
    warmup, rounds = (1, 6) if ctx.smoke else (5, 100)
    it_rounds = 5 if ctx.smoke else 40
    times: dict[str, list[float]] = {s: [] for s in SCENARIOS}
    site_ms: dict[str, list[float]] = {"without": [], "with": []}
    startup_us: list[tuple[int, int]] = []  # (self, cumulative) of the start-up module
    failures: list[str] = []
    try:
        # Sanity, per scenario: what the start-up files load (the package's start-up module
        # and nothing else with it; wrapt only in the eager reference), and that the package
        # really is absent when it should be.
        loaded = {}
        for scenario in SCENARIOS:
            toggle.set(scenario)
            probe = subprocess.run(
                [python, "-c", "import sys, importlib.util as u; print(sorted(m for m in "
                 "sys.modules if m.startswith(('swanlab', 'wrapt', 'pydantic'))), "
                 "u.find_spec('swanlab_autopatch') is not None)"],
                env=_env(scenario), capture_output=True, text=True,
                cwd=venv)
            loaded[scenario] = probe.stdout.strip()
            installed = loaded[scenario].endswith("True")
            if installed != (scenario in WITH_PACKAGE):
                raise RuntimeError(f"scenario {scenario!r}: package installed={installed} "
                                   f"({loaded[scenario]!r}); the toggle does not work")
        for _r, warm, scenario in stats.rotations(SCENARIOS, rounds, warmup):
            toggle.set(scenario)
            env = _env(scenario)
            t0 = time.perf_counter()
            proc = subprocess.run([python, "-c", "pass"], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, cwd=venv)
            dt = (time.perf_counter() - t0) * 1000
            if proc.returncode != 0 or proc.stderr:
                failures.append(f"{scenario}: exit {proc.returncode}: {proc.stderr[-200:]!r}")
            if not warm:
                times[scenario].append(dt)
        # In-process: `site` (which processes every .pth file) under -X importtime.
        for _r, warm, scenario in stats.rotations(list(site_ms), it_rounds, 1):
            toggle.set(scenario)
            proc = subprocess.run([python, "-X", "importtime", "-c", "pass"],
                                  env=_env(scenario), capture_output=True, text=True,
                cwd=venv)
            parsed = stats.importtime(proc.stderr)
            site = parsed.get("site")
            if not warm and site:
                site_ms[scenario].append(site[1] / 1000)
            if not warm and "swanlab_autopatch._startup" in parsed:
                startup_us.append(parsed["swanlab_autopatch._startup"])
    finally:
        toggle.restore()

    base = times["without"]
    sec = stats.Section("1", "Interpreter start-up (`python -c pass`)",
                        method=_method(warmup, rounds, it_rounds))
    with_s = stats.summarize(times["with"])
    diff = with_s.median - stats.median(base)
    lo, hi = stats.diff_ci(times["with"], base)
    verdict = "met" if diff < 1.0 else (
        f"**missed** by {diff - 1.0:.2f} ms" + (
            f" — the 90% interval of the difference ({lo:+.2f} … {hi:+.2f} ms) includes 1 ms: "
            "within this machine's noise" if lo < 1.0 else ""))
    sec.figures.append(stats.Figure(
        "1", "Start-up, package installed (trigger armed)", "ms", times["with"],
        "same venv without the package", base, "< 1 ms median difference", verdict))
    site_diff = stats.median(site_ms["with"]) - stats.median(site_ms["without"])
    sec.figures.append(stats.Figure(
        "1b", "Start-up in-process: `site` import incl. `.pth` processing (`-X importtime`)",
        "ms", site_ms["with"], "same venv without the package", site_ms["without"],
        "< 1 ms median difference", "met" if site_diff < 1.0 else
        f"**missed** by {site_diff - 1.0:.2f} ms: the start-up file imports two small modules "
        "(the package's `__init__` and `_startup`, see the importtime note)"))
    eager = times["eager wrapt .pth (reference)"]
    sec.figures.append(stats.Figure(
        "1r", "Start-up, eager wrapt `.pth` (reference)", "ms", eager,
        "same venv without the package", base, "reference only (~70 ms in the notes)",
        "reported"))
    sec.header, sec.rows = stats.scenario_rows(
        [(s, times[s]) for s in SCENARIOS], base)
    h2, r2 = stats.scenario_rows([("without", site_ms["without"]), ("with", site_ms["with"])],
                                 site_ms["without"], digits=3)
    sec.rows += [["**`site` cumulative import time (ms), `-X importtime`**"] + [""] * (len(h2) - 1)]
    sec.rows += r2
    sec.notes.append("Checked before timing, per scenario: modules from swanlab/wrapt/pydantic "
                     "that `python -c` has loaded, and whether `swanlab_autopatch` can be "
                     "found: " + "; ".join(f"*{k}*: `{v}`" for k, v in loaded.items()) +
                     ". With the package, only its start-up module is loaded, never wrapt.")
    if startup_us:
        sec.notes.append(
            f"`-X importtime` of `swanlab_autopatch._startup` (including the package's "
            f"import-free `__init__`), median of the {len(startup_us)} *with* runs of 1b: "
            f"{stats.median([x[0] for x in startup_us]):.0f} µs self, "
            f"{stats.median([x[1] for x in startup_us]):.0f} µs cumulative (importtime's own "
            "bookkeeping included; 1b is the better figure).")
    sec.notes.append(f"Eager reference vs package: the armed trigger saves "
                     f"{stats.median(eager) - with_s.median:.1f} ms per interpreter.")
    if failures:
        sec.notes.append(f"{len(failures)} run(s) wrote to stderr or failed, first: {failures[0]}")
    return sec


def _method(warmup: int, rounds: int, it_rounds: int) -> str:
    return (
        "One cached venv (Python 3.11, `venv --without-pip`, the package's real dependencies: "
        f"{', '.join(DEPS)}), the current wheel installed with `--no-deps`. Scenarios are "
        "switched by renaming files between runs (never inside a timing): *without* moves the "
        "package's four entries (`.pth`, `.start`, package folder, dist-info) to a stash "
        "folder; *with* puts them back (trigger armed); *SWANLAB_AUTOPATCH=0* is the same with "
        "the switch off; the *eager* reference has the package stashed and a `.pth` that imports "
        "wrapt and registers two post-import hooks. One venv keeps the interpreter, "
        "site-packages, the other `.pth` files and the disk location identical. Each sample is "
        "the wall time of `subprocess.run([python, '-c', 'pass'])` seen by the parent; "
        f"{warmup} warm-up round(s) (bytecode caches), then {rounds} rounds, scenarios "
        "round-robin with a rotating start. Because whole-process wall time on a busy machine "
        "moves by several ms from run to run, a second, in-process figure (1b) takes the "
        "cumulative import time of `site` from `python -X importtime -c pass`: `site` processes "
        "every `.pth` file, so its cumulative time contains exactly what the start-up file "
        f"adds ({it_rounds} interleaved rounds of *without* and *with*).")
