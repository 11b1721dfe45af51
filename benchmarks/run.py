#!/usr/bin/env python3
"""The benchmarks' one entry command.

    python benchmarks/run.py            all ten measurements, writes benchmarks/RESULTS.md
    python benchmarks/run.py --smoke    every measurement with a handful of iterations (well
                                        under 3 minutes); prints the table and writes it to a
                                        temporary file, never to RESULTS.md

Run it with the fast-py3.11 environment's Python (``make bench`` does); it builds or reuses the
other environments through tools/venvs.py and starts their Pythons as needed. Nothing here
asserts on a time: the exit code is 0 whenever every measurement ran (1 when one could not).

Measurements (one module each): startup, activation, config_path, per_call, end_to_end, scale,
cloud, step_cost, helper_memory, doctor.
Shared statistics and the report: stats.py.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tools"))

import stats  # noqa: E402

MEASUREMENTS = ["startup", "activation", "config_path", "per_call", "end_to_end", "scale",
                "cloud", "step_cost", "helper_memory", "doctor"]
SMOKE_GROUPS = [["end_to_end", "cloud"], ["startup", "activation", "config_path"],
                ["per_call", "scale", "doctor"], ["step_cost", "helper_memory"]]
AXOLOTL = "0.19.0"


@dataclass
class Ctx:
    smoke: bool
    work: Path
    fast_python: str
    wheel: Path
    ax_venv: Path
    ax_python: str
    assets: Path
    source: str = "this source tree"

    def ax_env(self, extra: dict | None = None, swanlab_root: Path | None = None) -> dict:
        """A clean, offline environment for a child in the Axolotl venv."""
        import harness

        return harness.training_env(self.ax_venv, extra, swanlab_root=swanlab_root)


def _versions(ctx: Ctx) -> tuple[list[str], dict[str, list[str | None]]]:
    code = ("import json, importlib.metadata as m\nout = {}\n"
            "for d in ('swanlab-autopatch', 'axolotl', 'transformers', 'torch', 'swanlab', "
            "'wrapt', 'pydantic'):\n"
            "    try: out[d] = m.version(d)\n    except Exception: out[d] = None\n"
            "import platform; out['python'] = platform.python_version()\nprint(json.dumps(out))")
    ax = json.loads(stats.check_run([ctx.ax_python, "-c", code]).stdout)
    startup_env = None
    try:
        import startup
        import venvs

        venv = startup._venv_dir(venvs)
        if (venv / ".complete").exists():
            startup_env = json.loads(stats.check_run([str(venv / "bin" / "python"), "-c", code],
                                                     env={"SWANLAB_AUTOPATCH": "0"}).stdout)
    except Exception:
        startup_env = None
    columns = ["Axolotl venv (measurements 2–6)", "start-up venv (measurement 1)"]
    rows: dict[str, list[str | None]] = {}
    for dist in ("swanlab-autopatch", "axolotl", "transformers", "torch", "swanlab", "wrapt",
                 "pydantic", "python"):
        label = "Python" if dist == "python" else dist
        value = ax.get(dist)
        if dist == "swanlab-autopatch" and value:
            value = f"{value} (wheel `{ctx.wheel.parent.name}`, built from {ctx.source})"
        rows[label] = [value, (startup_env or {}).get(dist) if dist not in ("axolotl", "torch",
                                                                            "transformers")
                       else None]
    return columns, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true",
                        help="a handful of iterations per measurement; report to a temp file")
    parser.add_argument("--only", default="",
                        help=f"comma-separated subset of {','.join(MEASUREMENTS)} (development)")
    parser.add_argument("--out", default="", help="where to write the report")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    chosen = [m.strip() for m in args.only.split(",") if m.strip()] or MEASUREMENTS
    unknown = set(chosen) - set(MEASUREMENTS)
    if unknown:
        parser.error(f"unknown measurement(s): {', '.join(sorted(unknown))}")

    started = time.monotonic()
    load_start = stats.loadavg()
    mode = "smoke" if args.smoke else "full"
    stats.say(f"{mode} run of {', '.join(chosen)}; load average {load_start}")

    import harness

    source = _git_state()
    wheel = harness.build_wheel()
    ax_venv, assets = harness.prepare(AXOLOTL)
    work = Path(tempfile.mkdtemp(prefix="swanlab-autopatch-bench-"))
    ctx = Ctx(smoke=args.smoke, work=work, fast_python=sys.executable, wheel=wheel,
              ax_venv=ax_venv, ax_python=harness.python_of(ax_venv), assets=assets,
              source=source)

    loads = [load_start]

    def measure(name: str) -> stats.Section:
        module = __import__(name)
        t0 = time.monotonic()
        load0 = stats.loadavg()
        loads.append(load0)
        stats.say(f"--- {name} (load {load0}) ---")
        try:
            section = module.run(ctx)
        except Exception as exc:  # report it and go on with the other measurements
            traceback.print_exc()
            section = stats.Section(getattr(module, "KEY", "?"), name, method=module.__doc__ or "",
                                    error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
        section.seconds = time.monotonic() - t0
        load1 = stats.loadavg()
        loads.append(load1)
        section.notes.append(f"Load average (1 / 5 / 15 min) during this section: {load0} at "
                             f"the start, {load1} at the end.")
        stats.say(f"{name} done in {section.seconds:.0f} s")
        return section

    if args.smoke:
        # Smoke mode only checks that everything runs: independent groups of measurements at
        # the same time (config_path reuses activation's processes; scale reuses per_call's
        # child program; the end-to-end trainings are the longest part).
        groups = [[m for m in group if m in chosen] for group in SMOKE_GROUPS]
        done: dict[str, stats.Section] = {}

        def run_group(group: list[str]) -> None:
            for name in group:
                done[name] = measure(name)

        stats.maybe_parallel([lambda g=g: run_group(g) for g in groups if g], parallel=True)
        sections = [done[name] for name in chosen]
    else:
        sections = [measure(name) for name in chosen]

    columns, versions = _versions(ctx)
    total = time.monotonic() - started
    load_end = stats.loadavg()
    meta = {
        "command": "python benchmarks/run.py" + (" --smoke" if args.smoke else ""),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"), "mode": mode, "total_minutes": total / 60,
        "machine": stats.machine(), "load_start": load_start, "load_end": load_end,
        "load_note": _load_note(loads + [load_end]),
        "version_columns": columns, "versions": versions,
    }
    text = stats.render(meta, sections)
    if args.out:
        out = Path(args.out)
    elif args.smoke:
        out = Path(tempfile.gettempdir()) / f"swanlab-autopatch-bench-smoke-{int(time.time())}.md"
    else:
        out = HERE / "RESULTS.md"
    out.write_text(text, encoding="utf-8")
    if args.smoke:
        print(text)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        stats.say(f"work folder kept: {work}")
    stats.say(f"report written to {out}; total {total / 60:.1f} min")
    failed = [s.key for s in sections if s.error]
    if failed:
        stats.say(f"measurement(s) that did not run: {', '.join(failed)}")
        return 1
    return 0


def _git_state() -> str:
    """The commit the measured source comes from, and whether the package had local edits."""
    try:
        rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--",
                                "swanlab_autopatch", "startup", "pyproject.toml"],
                               capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "this source tree"
    if not rev:
        return "this source tree"
    return f"git `{rev}`" + (" plus uncommitted changes" if dirty else "")


def _load_note(samples: list[str]) -> str:
    """A warning when the 1-minute load, sampled at the start and end of every section, went
    above three quarters of the cores."""
    import os

    cores = os.cpu_count() or 1
    values = []
    for sample in samples:
        try:
            values.append(float(sample.split("/")[0]))
        except ValueError:
            continue
    if not values:
        return ""
    worst = max(values)
    if worst > cores * 0.75:
        return (f"**The machine was busy**: the 1-minute load average, sampled at the start and "
                f"end of every section, went up to {worst:.1f} on {cores} cores (other jobs were "
                "running; each section's values are in its notes). Absolute times are inflated "
                "and noisier than on an idle machine; the interleaving spreads that noise evenly "
                "over the scenarios, so differences and ratios remain comparable, with wider "
                "intervals.")
    return ""


if __name__ == "__main__":
    sys.exit(main())
