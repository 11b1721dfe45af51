"""9. `swanlab-autopatch doctor`: its wall time and what it imports, in the Axolotl venv.

Method
- ``python -m swanlab_autopatch doctor`` in the axolotl-0.19.0 venv (this wheel installed),
  wall time from the parent's spawn to its exit, warm-up rounds first (bytecode caches), then
  the timed rounds, one process each.
- One more run with ``-X importtime``: how many modules it imports, whether any of torch,
  transformers, bitsandbytes, torchao, axolotl or swanlab is among them (doctor reads Axolotl's
  and SwanLab's source files instead), the slowest imports by cumulative time, and whether the
  first line on stdout is the report's own (nothing printed before it).
- Issue 27 asks for under 2 s without those imports; before it (doctor importing Axolotl's
  parent packages to find its modules) it took 11 to 17 s here and printed torchao's and
  bitsandbytes' warnings on stdout.
"""
from __future__ import annotations

import time
from typing import Any

import stats

KEY = "9"
HEAVY = ("torch", "transformers", "bitsandbytes", "torchao", "axolotl", "swanlab")
TARGET_S = 2.0


def run(ctx: Any) -> stats.Section:
    import harness

    command = [ctx.ax_python, "-m", "swanlab_autopatch", "doctor"]
    env = harness.training_env(ctx.ax_venv, swanlab_root=ctx.work / "doctor-root")
    rounds, warmup = (3, 1) if ctx.smoke else (15, 2)
    samples = []
    for i in range(warmup + rounds):
        t0 = time.perf_counter()
        proc = stats.check_run(command, env=env)
        seconds = time.perf_counter() - t0
        if i >= warmup:
            samples.append(seconds)
    traced = stats.check_run([ctx.ax_python, "-X", "importtime", *command[1:]], env=env)
    modules = stats.importtime(traced.stderr)
    heavy = [m for m in HEAVY if m in modules]
    first_line = (traced.stdout.splitlines() or [""])[0]
    own_first = first_line.startswith("swanlab-autopatch ")
    slowest = sorted(modules.items(), key=lambda kv: -kv[1][1])[:5]

    median = stats.median(samples)
    met = median < TARGET_S and not heavy and own_first
    why = [f"{median - TARGET_S:.2f} s over"] * (median >= TARGET_S) + \
        [f"imports {', '.join(heavy)}"] * bool(heavy) + \
        [f"stdout starts with {first_line[:60]!r}"] * (not own_first)
    sec = stats.Section(KEY, "`swanlab-autopatch doctor`", method=__doc__ or "")
    sec.figures.append(stats.Figure(
        key=KEY, name="`swanlab-autopatch doctor`, whole process (Axolotl 0.19.0 venv)",
        unit="s", samples=samples, target=f"< {TARGET_S:.0f} s, none of {', '.join(HEAVY[:4])}",
        verdict="met" if met else f"**missed**: {'; '.join(why)}", digits=2))
    sec.header = ["What", "Value"]
    sec.rows = [
        ["exit code of the last run", str(proc.returncode)],
        ["modules imported (`-X importtime` lines)", str(len(modules))],
        ["of torch, transformers, bitsandbytes, torchao, axolotl, swanlab",
         ", ".join(heavy) or "none"],
        ["first line on stdout", f"`{first_line[:80]}`"],
        ["slowest imports (cumulative)",
         "; ".join(f"{name} {cum / 1000:.0f} ms" for name, (_s, cum) in slowest)],
    ]
    return sec
