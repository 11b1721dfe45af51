"""10. The helper process's memory: its peak resident memory (the kernel's high-water mark,
``ru_maxrss``, reported by the helper itself at its end) when the training floods the console
and when it logs a very long run, next to the training process's own peak.

Scenarios, each a training process of tests/support/training_driver.py (the package's callback
in a Trainer-like loop; SwanLab's real client in the helper, offline mode; the fast-lane venv),
its stdout and stderr going to /dev/null:
    flood       one console line of 2,000 characters and one Trainer log per step, about
                2 GB of text in all (smoke: 64 MB)
    long run    100,000 steps of one Trainer log each, no console output (smoke: 5,000)
    quiet       20 steps: the helper's baseline (SwanLab's client imported and a run started)
Also reported: the training's wall time, what the helper received in the run (loss points,
console lines) and what a full backlog dropped (the end-of-run warning's counts): the training
never waits, so in a flood the backlog (64 MB) drops the oldest console lines.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

KEY = "10"
REPO = Path(__file__).resolve().parent.parent
DRIVER = REPO / "tests" / "support" / "training_driver.py"
PROBES = ("HARDWARE", "RUNTIME", "REQUIREMENTS", "CONDA", "GIT", "MONITOR")


def _scenarios(smoke: bool) -> dict[str, dict]:
    flood_steps = (64 << 20) // 2000 if smoke else (2 << 30) // 2000
    return {
        "flood": {"steps": flood_steps, "print": "flood", "flood_width": 2000},
        "long run": {"steps": 5000 if smoke else 100_000},
        "quiet": {"steps": 20},
    }


def _train(ctx, name: str, plan: dict) -> dict:
    folder = ctx.work / "helper-memory" / name.replace(" ", "-")
    folder.mkdir(parents=True, exist_ok=True)
    plan = {"log_dir": str(folder / "swanlog"), "out": str(folder / "out"), **plan}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWANLAB", "RANK"))}
    env.update({"PYTHONPATH": str(REPO), "HOME": str(folder), "T_PLAN": json.dumps(plan),
                "SWANLAB_ROOT": str(folder / ".swanlab"),
                "SWANLAB_AUTOPATCH_FINISH_TIMEOUT": "600",
                **{f"SWANLAB_PROBE_{p}": "false" for p in PROBES}})
    t0 = time.monotonic()
    proc = subprocess.run([ctx.fast_python, str(DRIVER)], cwd=folder, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          timeout=3600)
    seconds = time.monotonic() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{name}: exit {proc.returncode}: {proc.stderr[-800:]}")
    report = json.loads((folder / "out" / "driver.json").read_text())
    if str(REPO) not in sys.path:  # the runner's Python need not have the package installed
        sys.path.insert(0, str(REPO))
    from swanlab_autopatch.runs.reader import find_runs

    runs = find_runs(folder / "swanlog")
    run = runs[0] if runs else None
    dropped = re.search(r"(\d+) console lines?", proc.stderr)
    return {"seconds": seconds, "helper_kb": (report.get("outcome") or {}).get("peak_rss_kb"),
            "training_kb": report.get("peak_rss_kb"),
            "points": len(run.series("train/loss")) if run else 0,
            "lines": sum(1 for line in run.console if line.startswith("flood")) if run else 0,
            "dropped_lines": int(dropped.group(1)) if dropped else 0,
            "state": run.state if run else None, "steps": plan["steps"]}


def run(ctx) -> "stats.Section":
    import stats

    results = {name: _train(ctx, name, plan) for name, plan in _scenarios(ctx.smoke).items()}
    header = ["Scenario", "Steps", "Helper peak RSS", "Training peak RSS", "Training wall",
              "Loss points in the run", "Console lines in the run", "Dropped (counted)",
              "Run state"]
    rows = []
    figures = []
    quiet = results["quiet"]["helper_kb"] or 0
    for index, (name, r) in enumerate(results.items()):
        mb = lambda kb: f"{kb / 1024:.0f} MB" if kb else "–"  # noqa: E731
        rows.append([name, f"{r['steps']:,}", mb(r["helper_kb"]), mb(r["training_kb"]),
                     f"{r['seconds']:.1f} s", f"{r['points']:,}", f"{r['lines']:,}",
                     f"{r['dropped_lines']:,} console lines", str(r["state"])])
        if r["helper_kb"] and name != "quiet":
            figures.append(stats.Figure(
                f"{KEY}{'ab'[index]}", f"Helper peak RSS, {name} ({r['steps']:,} steps)", "MB",
                [r["helper_kb"] / 1024], baseline_name="quiet (20 steps)",
                baseline=[quiet / 1024] if quiet else None, target="bounded",
                verdict="reported", digits=0))
    section = stats.Section(KEY, "The helper process's memory", method=__doc__, header=header,
                            rows=rows, figures=figures)
    section.notes.append(
        f"The helper's baseline (quiet) is {quiet / 1024:.0f} MB: SwanLab's client imported and "
        "one run. What a flood or a long run adds on top of it is the bounded part: SwanLab's "
        "event queue (100,000 events) and the helper's read buffer (1 MiB a read).")
    return section
