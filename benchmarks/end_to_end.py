"""5. End to end: the harness's tiny CPU training, untracked, with this package, with Axolotl's
own SwanLab plugin.

Scenarios (``axolotl train cfg.yaml --launcher python`` through tools/harness.py, axolotl-0.19.0
venv, the same tiny Llama and dataset; max_steps 30, logging every step, one checkpoint at the
end), interleaved round-robin:
    none       no swanlab keys (this package installed, nothing to track)
    ours       ``swanlab_project`` + ``swanlab_mode: offline`` (this package tracks)
    axolotl    ``plugins: [axolotl.integrations.swanlab.SwanLabPlugin]``, ``use_swanlab: true``,
               ``swanlab_mode: offline``, with ``SWANLAB_AUTOPATCH=0`` (Axolotl's plugin alone)

The figures come from a probe that every scenario loads the same way: a ``sitecustomize.py``
on ``PYTHONPATH`` that registers wrapt post-import hooks (nothing else; this package's code is
not touched). It adds a ``TrainerCallback`` at the end of every Trainer's callback list that
stamps ``perf_counter`` at each ``on_step_begin`` / ``on_step_end``, and it times
``swanlab.init``, SwanLab's ``Run.finish``, our ``swanlab_autopatch.tracking.run.start`` / ``finish`` and
Axolotl's ``SwanLabPlugin.pre_model_load``. The time per step is the interval between two
consecutive ``on_step_end`` stamps (the optimizer step plus every callback's ``on_log``, i.e.
what a tracker adds), steps 3..N-1 (the first steps warm up; the last one saves a checkpoint).
``OMP_NUM_THREADS=1`` for every scenario: on this 2-core machine shared with other jobs, torch's
two-thread barrier turns a busy second core into a 3-4x slower step.
"""
from __future__ import annotations

import json
from pathlib import Path

KEY = "5"
SCENARIOS = ["none", "ours", "axolotl"]

PROBE = r'''
"""Benchmark probe (benchmarks/end_to_end.py): timings for the end-to-end measurement."""
import json
import os
import time

_OUT = os.environ.get("BENCH_PROBE_OUT")


def _emit(**record):
    record["wall"] = time.time()
    with open(_OUT, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def _timed(name):
    def wrapper(wrapped, instance, args, kwargs):
        t0 = time.perf_counter()
        try:
            return wrapped(*args, **kwargs)
        finally:
            _emit(event=name, seconds=time.perf_counter() - t0)
    return wrapper


def _install():
    import wrapt

    def on_swanlab(mod):
        wrapt.wrap_function_wrapper(mod, "init", _timed("swanlab.init"))

    def on_run(mod):
        if hasattr(mod, "Run"):
            wrapt.wrap_function_wrapper(mod, "Run.finish", _timed("swanlab Run.finish"))

    def on_ours(mod):
        wrapt.wrap_function_wrapper(mod, "start", _timed("swanlab_autopatch.tracking.run.start"))
        wrapt.wrap_function_wrapper(mod, "finish", _timed("swanlab_autopatch.tracking.run.finish"))

    def on_plugin(mod):
        if hasattr(mod, "SwanLabPlugin"):
            wrapt.wrap_function_wrapper(mod, "SwanLabPlugin.pre_model_load",
                                        _timed("axolotl SwanLabPlugin.pre_model_load"))

    def on_trainer(mod):
        from transformers import TrainerCallback

        class StepClock(TrainerCallback):
            def __init__(self):
                self.begin, self.end = [], []

            def on_train_begin(self, args, state, control, **kw):
                _emit(event="train_begin", pc=time.perf_counter())

            def on_step_begin(self, args, state, control, **kw):
                self.begin.append(time.perf_counter())

            def on_step_end(self, args, state, control, **kw):
                self.end.append(time.perf_counter())

            def on_train_end(self, args, state, control, **kw):
                _emit(event="steps", begin=self.begin, end=self.end, pc=time.perf_counter())

        def init_wrapper(wrapped, instance, args, kwargs):
            result = wrapped(*args, **kwargs)
            if not getattr(instance, "_bench_clock", False):
                instance._bench_clock = True
                instance.add_callback(StepClock())
            return result

        wrapt.wrap_function_wrapper(mod, "Trainer.__init__", init_wrapper)

    wrapt.register_post_import_hook(on_swanlab, "swanlab")
    wrapt.register_post_import_hook(on_run, "swanlab.sdk.internal.run")
    wrapt.register_post_import_hook(on_ours, "swanlab_autopatch.tracking.run")
    wrapt.register_post_import_hook(on_plugin, "axolotl.integrations.swanlab.plugins")
    wrapt.register_post_import_hook(on_trainer, "transformers.trainer")
    _emit(event="probe_ready", pc=time.perf_counter())


if _OUT:
    try:
        _install()
    except Exception as exc:  # never break the training
        import sys
        sys.stderr.write(f"[bench probe] not installed: {exc!r}\n")
'''


def _config(ctx, scenario: str, run_dir: Path, steps: int) -> dict:
    import harness

    extra: dict = {"max_steps": steps, "save_steps": steps}
    if not ctx.smoke:  # one tokenized dataset for every training (prepared by the warm-up);
        # smoke mode trains in parallel, so each training prepares its own
        extra["dataset_prepared_path"] = str(ctx.work / "e2e" / "prepared")
    if scenario == "ours":
        extra.update(swanlab_project="bench-e2e", swanlab_mode="offline")
    elif scenario == "axolotl":
        extra.update(plugins=["axolotl.integrations.swanlab.SwanLabPlugin"], use_swanlab=True,
                     swanlab_project="bench-e2e", swanlab_mode="offline")
    return harness.config_for(ctx.assets, run_dir, **extra)


def _read_probe(path: Path) -> dict:
    out: dict = {"events": {}}
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec["event"] == "steps":
            out["steps"] = rec
        elif "seconds" in rec:
            out["events"].setdefault(rec["event"], []).append(rec["seconds"])
    return out


def _trainer_runtime(run_dir: Path) -> tuple[float | None, int | None]:
    """train_runtime and global steps from the checkpoint's trainer_state.json."""
    try:
        states = sorted((run_dir / "out").glob("checkpoint-*/trainer_state.json"))
        state = json.loads(states[-1].read_text())
    except (IndexError, OSError, ValueError):
        return None, None
    runtime = None
    for entry in state.get("log_history", []):
        if "train_runtime" in entry:
            runtime = entry["train_runtime"]
    return runtime, state.get("global_step")


def run(ctx) -> "stats.Section":
    import harness
    import stats

    steps = 30
    warmup, rounds = (0, 1) if ctx.smoke else (1, 3)
    probe_dir = ctx.work / "e2e-probe"
    probe_dir.mkdir(parents=True, exist_ok=True)
    (probe_dir / "sitecustomize.py").write_text(PROBE)
    results: dict[str, list[dict]] = {s: [] for s in SCENARIOS}
    failures = []
    jobs = [(r, warm, scenario) for r, warm, scenario in stats.rotations(SCENARIOS, rounds, warmup)
            if not warm or scenario == "none"]  # one untimed training warms the caches

    def train(r: int, warm: bool, scenario: str):
        run_dir = ctx.work / "e2e" / f"{scenario}-{r}"
        run_dir.mkdir(parents=True, exist_ok=True)
        env = {"PYTHONPATH": str(probe_dir), "BENCH_PROBE_OUT": str(run_dir / "probe.jsonl"),
               "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        if scenario == "axolotl":
            env["SWANLAB_AUTOPATCH"] = "0"
        stats.say(f"end-to-end: round {r}{' (warm-up)' if warm else ''}, {scenario}")
        return run_dir, harness.run_training(
            ctx.ax_venv, "0.19.0", run_dir, _config(ctx, scenario, run_dir, steps),
            launcher="python", env_extra=env, timeout=900)

    # Smoke mode trains its three scenarios at once (its numbers only show that the code
    # runs); the full run trains one at a time.
    done = stats.maybe_parallel([lambda j=j: train(*j) for j in jobs], parallel=ctx.smoke)
    for (r, warm, scenario), (run_dir, res) in zip(jobs, done):
        if res.returncode != 0:
            failures.append(f"{scenario} round {r}: exit {res.returncode}")
            stats.say(res.describe()[-1500:])
            if len(failures) >= 3:
                raise RuntimeError(f"training fails: {res.describe()[-600:]}")
            continue
        if warm:
            continue
        probe = _read_probe(run_dir / "probe.jsonl")
        runtime, gsteps = _trainer_runtime(run_dir)
        probe.update(process_s=res.seconds, train_runtime=runtime, global_steps=gsteps,
                     swanlog=sorted(p.name for p in (run_dir / "swanlog").glob("run-*"))
                     if (run_dir / "swanlog").exists() else [])
        if "steps" not in probe:
            failures.append(f"{scenario} round {r}: the probe recorded no steps")
            continue
        results[scenario].append(probe)
    if not results["none"] or not results["ours"]:
        raise RuntimeError(f"not enough successful trainings ({failures})")

    def intervals(p: dict) -> list[float]:
        end = p["steps"]["end"]
        return [(end[i] - end[i - 1]) * 1000 for i in range(3, len(end) - 1)]

    def gaps(p: dict) -> list[float]:
        """From one step's end to the next one's begin: on_log of every callback, the
        dataloader's next batch."""
        b, e = p["steps"]["begin"], p["steps"]["end"]
        return [(b[i] - e[i - 1]) * 1000 for i in range(3, min(len(b), len(e)) - 1)]

    step_ms = {s: [x for p in v for x in intervals(p)] for s, v in results.items()}
    gap_ms = {s: [x for p in v for x in gaps(p)] for s, v in results.items()}
    run_med = {s: [stats.median(intervals(p)) for p in v] for s, v in results.items()}
    sec = stats.Section(KEY, "End to end: tiny CPU training, 30 steps",
                        method=_method(warmup, rounds, steps))
    base = step_ms["none"]
    for key, scenario, label in (("5a", "ours", "this package"),
                                 ("5b", "axolotl", "Axolotl's plugin")):
        xs = step_ms[scenario]
        if not xs:
            continue
        sec.figures.append(stats.Figure(
            key, f"Time per training step, {label}", "ms", xs, "no tracking", base,
            "unchanged within noise" if scenario == "ours" else "report (comparison)",
            _step_verdict(xs, base, run_med[scenario], run_med["none"], scenario == "ours"),
            digits=1))
    # What the trackers add between two steps (their on_log), far less noisy than the step.
    for key, scenario, label in (("5g", "ours", "this package"),
                                 ("5h", "axolotl", "Axolotl's plugin")):
        xs = gap_ms[scenario]
        if xs:
            d = stats.median(xs) - stats.median(gap_ms["none"])
            sec.figures.append(stats.Figure(
                key, f"Between two steps (every callback's `on_log`, next batch), {label}", "ms",
                xs, "no tracking", gap_ms["none"], "report",
                f"reported: {d:+.2f} ms per step = {d / stats.median(base):+.2%} of a step",
                digits=2))
    # Fixed costs.
    ev = {s: [p["events"] for p in v] for s, v in results.items()}

    def event(s: str, name: str) -> list[float]:
        """One value per training: the longest call (a second finish call is a no-op)."""
        return [max(e[name]) for e in ev[s] if e.get(name)]

    fixed = [
        ("5c", "ours", "swanlab_autopatch.tracking.run.start", "SwanLab start, this package "
         "(`run.start` in the training process: the config, launching the helper process that "
         "runs `swanlab.init`; the training does not wait for it)"),
        ("5d", "ours", "swanlab_autopatch.tracking.run.finish", "SwanLab finish, this package "
         "(`run.finish` at `on_train_end`: the helper drains and finishes the run)"),
        ("5e", "axolotl", "axolotl SwanLabPlugin.pre_model_load", "SwanLab start, Axolotl's "
         "plugin (`pre_model_load`: `swanlab.init`, config)"),
        ("5f", "axolotl", "swanlab Run.finish", "SwanLab finish, Axolotl's plugin (at exit)"),
    ]
    for key, s, name, label in fixed:
        xs = event(s, name)
        if xs:
            sec.figures.append(stats.Figure(key, label, "s", xs, target="report the fixed cost",
                                            verdict="reported", digits=3))
    sec.header, sec.rows = stats.scenario_rows([(s, step_ms[s]) for s in SCENARIOS if step_ms[s]],
                                               base, digits=1, pairs=False)
    sec.rows = [["**time per step (every step 3..N-1 of every run), ms**"] +
                [""] * (len(sec.header) - 1)] + sec.rows
    _h, r2 = stats.scenario_rows([(s, gap_ms[s]) for s in SCENARIOS if gap_ms[s]],
                                 gap_ms["none"], digits=2, pairs=False)
    sec.rows += [["**gap between a step's end and the next step's begin (callbacks' `on_log`, "
                  "next batch), ms**"] + [""] * (len(sec.header) - 1)] + r2
    _h, r3 = stats.scenario_rows([(s, run_med[s]) for s in SCENARIOS if run_med[s]],
                                 run_med["none"], digits=1, pairs=False)
    sec.rows += [["**median step per training run, ms**"] + [""] * (len(sec.header) - 1)] + r3
    rt = {s: [p["train_runtime"] / p["global_steps"] * 1000 for p in v
              if p.get("train_runtime") and p.get("global_steps")] for s, v in results.items()}
    if rt["none"]:
        _h, r4 = stats.scenario_rows([(s, rt[s]) for s in SCENARIOS if rt[s]], rt["none"],
                                     digits=1, pairs=False)
        sec.rows += [["**Trainer's own `train_runtime` / steps, ms** (includes `on_train_begin`,"
                      " where this package starts its run, and the checkpoint)"] +
                     [""] * (len(sec.header) - 1)] + r4
    proc = {s: [p["process_s"] for p in v] for s, v in results.items()}
    _h, r5 = stats.scenario_rows([(s, proc[s]) for s in SCENARIOS if proc[s]], proc["none"],
                                 digits=1, pairs=False)
    sec.rows += [["**whole `axolotl train` process, s**"] + [""] * (len(sec.header) - 1)] + r5
    all_events = sorted({n for s in SCENARIOS for e in ev[s] for n in e})
    sec.notes.append("Probe timings, median per scenario (s): " + "; ".join(
        f"{s}: " + ", ".join(f"`{n}` {stats.median(event(s, n)):.3f}" for n in all_events
                             if event(s, n)) for s in SCENARIOS if ev[s]) + ".")
    sec.notes.append("SwanLab run folders written: " + "; ".join(
        f"{s}: {sum(len(p['swanlog']) for p in v)} in {len(v)} training(s)"
        for s, v in results.items()) + " (none expected for *none*).")
    sec.notes.append(_why(ctx, step_ms, gap_ms))
    if failures:
        sec.notes.append(f"Failed or incomplete trainings (left out): {failures}")
    return sec


def _step_verdict(steps: list, base: list, runs: list, base_runs: list, target: bool) -> str:
    """Trainings, not steps, are the independent samples: steps of one training share its
    process, its data and the machine's state at that moment. So noise is judged on the
    per-training medians; the pooled-step interval (which treats steps as independent and so
    is too narrow) is shown next to it."""
    import stats

    diff = stats.median(steps) - stats.median(base)
    lo, hi = stats.diff_ci(steps, base)
    pooled = f"pooled steps Δ {diff:+.1f} ms ({diff / stats.median(base):+.1%}, {lo:+.1f} … {hi:+.1f})"
    if len(runs) >= 2 and len(base_runs) >= 2:
        rd = stats.median(runs) - stats.median(base_runs)
        rlo, rhi = stats.diff_ci(runs, base_runs)
        spread = max(base_runs) - min(base_runs)
        per_run = (f"per-training medians Δ {rd:+.1f} ms, 90% interval {rlo:+.1f} … {rhi:+.1f} "
                   f"({len(runs)} vs {len(base_runs)} trainings; untracked trainings alone "
                   f"differ by {spread:.1f} ms)")
        if rlo <= 0 <= rhi:
            head = "met, within noise" if target else "within noise"
        elif rd < 0:
            head = "met, not slower" if target else "faster (noise)"
        else:
            head = "**missed**" if target else "slower"
        return f"{head}: {per_run}; {pooled}"
    if lo <= 0 <= hi or diff < 0:
        return f"{'met' if target else 'within noise'} (one training each): {pooled}"
    return f"{'**missed**' if target else 'slower'} (one training each): {pooled}"


def _why(ctx, step_ms: dict, gap_ms: dict) -> str:
    """Where a slower step comes from, from this run's figures."""
    import stats

    med = {s: stats.median(v) if v else float("nan") for s, v in step_ms.items()}
    gap = {s: stats.median(v) if v else float("nan") for s, v in gap_ms.items()}
    inside = {s: med[s] - gap[s] for s in med}
    on_log_ms = getattr(ctx, "on_log_us", float("nan")) / 1000
    text = (f"Reading the step figures. Between two steps (where the trackers' `on_log` runs, "
            f"along with the progress bar and the Trainer's printed log line) SwanLab tracking "
            f"adds {gap['ours'] - gap['none']:+.2f} ms with this package and "
            f"{gap['axolotl'] - gap['none']:+.2f} ms with Axolotl's plugin (5g, 5h), while one "
            f"`on_log` call of ours costs {on_log_ms:.2f} ms (measurement 4)")
    cons = getattr(ctx, "console_us", None)
    if cons and "during the run" in cons and "before the run" in cons:
        text += (f"; the rest there is SwanLab's: while a run is active, its terminal proxy "
                 f"captures the console, and a console write costs "
                 f"{cons['during the run']:.0f} µs instead of {cons['before the run']:.0f} µs "
                 "(measurement 4), plus its writer and monitor threads")
    text += (f". Inside the optimizer step no tracker code runs; there the medians moved by "
             f"{inside['ours'] - inside['none']:+.1f} ms (this package) and "
             f"{inside['axolotl'] - inside['none']:+.1f} ms (Axolotl's plugin). A difference "
             "there can only come from SwanLab's background threads (writer, monitor, terminal "
             "proxy) competing for the GIL and this machine's 2 cores, the same for both "
             "integrations, or from noise: compare it with the differences between trainings "
             "(the per-training rows above). A step of this tiny CPU model is ~25 ms, so any "
             "fixed per-step cost shows as a large percentage of it.")
    return text


def _method(warmup: int, rounds: int, steps: int) -> str:
    return (
        f"`axolotl train cfg.yaml --launcher python` through tools/harness.py (axolotl-0.19.0 "
        f"venv, the tiny Llama, `max_steps: {steps}`, `logging_steps: 1`, one checkpoint at the "
        "end). *none*: no swanlab keys; *ours*: `swanlab_project` + `swanlab_mode: offline`; "
        "*axolotl*: `plugins: [axolotl.integrations.swanlab.SwanLabPlugin]`, `use_swanlab: "
        "true`, `swanlab_mode: offline`, `SWANLAB_AUTOPATCH=0` (Axolotl's plugin alone). "
        f"{'One untimed warm-up training, then ' if warmup else ''}{rounds} round(s), "
        "scenarios round-robin with a rotating start. Timings come from a probe loaded the "
        "same way in every scenario (a `sitecustomize.py` on `PYTHONPATH` that registers wrapt "
        "post-import hooks; the package is not modified): a `TrainerCallback` appended to "
        "every Trainer stamps `perf_counter` at `on_step_begin`/`on_step_end`, and "
        "`swanlab.init`, SwanLab's `Run.finish`, `swanlab_autopatch.tracking.run.start`/`finish` and "
        "Axolotl's `SwanLabPlugin.pre_model_load` are timed. Time per step = interval between "
        "consecutive `on_step_end` stamps (the optimizer step plus every callback's `on_log`), "
        f"steps 3..{steps - 1} of every run pooled. `OMP_NUM_THREADS=1` in every scenario: on "
        "this 2-core machine shared with other jobs, torch's two-thread barrier makes a step "
        "3-4× slower whenever the second core is busy.")
