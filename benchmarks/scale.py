"""6. Scale: how the per-call cost grows with the keys, and the end-of-run cost with the steps.

- Per call: the method of measurement 4 (per_call.py's child, one process, one offline run)
  for dicts of 1, 8, 32 and 128 keys (the realistic Trainer keys first, then ``custom/metric_NNN``),
  ``SwanLabAutopatchCallback.on_log`` next to a bare ``swanlab.log`` of the same dict, all eight
  combinations interleaved.
- finish: a fresh process per sample (axolotl-0.19.0 venv). *ours*: the run is started by the
  callback's ``on_train_begin``, N steps are logged through ``on_log`` (14 keys, back to back),
  then ``on_train_end`` ends the run (``swanlab_autopatch.tracking.run.finish``); *bare*: ``swanlab.init``
  (offline, same folder layout), N ``swanlab.log`` calls, ``swanlab.finish()``. N = 10,000, plus
  N = 10 for the fixed cost. Logging back to back is the worst case for finish: SwanLab's writer
  thread still has a backlog to write when finish starts (in training, steps are far apart).
"""
from __future__ import annotations

import json
import os
import sys
import time

KEY = "6"
KEY_COUNTS = [1, 8, 32, 128]


def child_finish(argv: list[str]) -> int:
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--logdir", required=True)
    p.add_argument("--who", required=True, help="ours, bare, or both in turn (ours,bare)")
    p.add_argument("--steps", type=int, required=True)
    a = p.parse_args(argv)
    results = {}
    for who in a.who.split(","):
        results[who] = _finish_one(who, a.steps, os.path.join(a.logdir, who))
    with open(a.out, "w", encoding="utf-8") as fh:
        json.dump(results, fh)
    return 0


def _finish_one(who: str, steps: int, logdir: str) -> dict:
    import per_call

    pool = [per_call.make_logs(14, v) for v in range(32)]
    # Both scenarios import the same modules (transformers, torch, the callback) before the
    # timings: a process holding torch has far more objects for the garbage collector.
    import swanlab
    from transformers import TrainingArguments  # noqa: F401

    import swanlab_autopatch.tracking.callback  # noqa: F401

    if who == "ours":
        loggers = per_call.Loggers(logdir, project="bench-finish", want=["ours"])
        log = loggers.log_ours
        init_s = loggers.start_s  # the callback's on_train_begin (swanlab.init inside)
    else:
        t0 = time.perf_counter()
        swanlab.init(project="bench-finish", mode="offline", log_dir=logdir,
                     settings=swanlab.Settings(interactive=False))
        init_s = time.perf_counter() - t0
        log = lambda logs, step: swanlab.log(logs, step=step)  # noqa: E731
    t1 = time.perf_counter()
    for step in range(1, steps + 1):
        log(pool[step % len(pool)], step)
    log_s = time.perf_counter() - t1
    t2 = time.perf_counter()
    if who == "ours":
        loggers.ours.on_train_end(loggers.args, loggers.state, loggers.control)
        # The run ends when Axolotl's train() returns (after the model is saved: the whole
        # job's console), not at on_train_end; this is what that return runs.
        from swanlab_autopatch.tracking import trainer_hooks

        trainer_hooks.after_training()
    else:
        swanlab.finish()
    finish_s = time.perf_counter() - t2
    return {"init_s": init_s, "log_s": log_s, "finish_s": finish_s, "steps": steps,
            "still_running": bool(swanlab.has_run()),
            "records": _count_records(logdir)}


def _spawn_finish(ctx, tag: str, who: str, steps: int) -> dict[str, dict]:
    import subprocess
    from pathlib import Path

    here = Path(__file__).resolve().parent
    work = ctx.work / "scale-finish" / tag
    work.mkdir(parents=True, exist_ok=True)
    out = work / "result.json"
    env = ctx.ax_env({"SWANLAB_AUTOPATCH": "0"}, swanlab_root=work / ".swanlab-root")
    cmd = [ctx.ax_python, str(here / "scale.py"), "--child-finish", "--out", str(out),
           "--logdir", str(work / "swanlog"), "--who", who, "--steps", str(steps)]
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0 or not out.exists():
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
        raise RuntimeError(f"finish child failed ({proc.returncode}): {tail[-800:]}")
    return json.loads(out.read_text())


def _count_records(logdir) -> str | None:
    """What the run file holds (read with the project's own reader): state and steps, a check
    that every step landed before finish returned."""
    try:
        from swanlab_autopatch.runs import reader  # the installed package, in the child

        runs = reader.find_runs(logdir)
        if not runs:
            return "no run folder"
        rec = runs[0]
        points = max((len(v) for v in rec.scalars.values()), default=0)
        text = f"{rec.state}, {points} points per metric"
        if rec.state != "finished":
            text += f" ({'; '.join(rec.problems)[:160]}; SwanLab's own reader: {_swanlab_count(rec)})"
        return text
    except Exception as exc:  # only a sanity check
        return f"unreadable ({type(exc).__name__})"


def _swanlab_count(rec) -> str:
    """Records SwanLab's own DataStoreReader gets out of the same file."""
    try:
        from swanlab.sdk.internal.core_python.store import DataStoreReader

        reader = DataStoreReader()
        reader.open(str(rec.data_file))
        n = 0
        try:
            for _ in reader:
                n += 1
        except Exception as exc:
            return f"{n} records, then {type(exc).__name__}"
        finally:
            try:
                reader.close()
            except Exception:
                pass
        return f"{n} records (ours: {rec.records})"
    except Exception as exc:
        return f"unavailable ({type(exc).__name__})"


def run(ctx) -> "stats.Section":
    import per_call
    import stats

    warmup, rounds, batch = (1, 3, 8) if ctx.smoke else (3, 30, 20)
    big = 1000 if ctx.smoke else 10000

    def per_call_job() -> dict:
        return per_call.both_modes(ctx, "scale-per-call", "bare,ours", [
            "--keys", ",".join(map(str, KEY_COUNTS)), "--warmup", str(warmup), "--rounds",
            str(rounds), "--batch", str(batch)], pairs=1)

    if ctx.smoke:  # both processes at once (smoke numbers only show that the code runs)
        stats.say(f"scale: per call, and finish after {big} steps (ours then bare), at once")
        data, smoke_finish = stats.maybe_parallel(
            [per_call_job, lambda: _spawn_finish(ctx, "smoke", "ours,bare", big)], parallel=True)
    else:
        data = per_call_job()
    res = data["results"]
    sec = stats.Section(KEY, "Scale: keys per call, and finish after many steps",
                        method=_method(warmup, rounds, batch, ctx.smoke))
    sec.header = ["Keys", "ours (sidecar) median µs", "ours (sidecar) spread",
                  "ours (in-process) median µs", "bare median µs", "bare spread", "n",
                  "Δ µs (sidecar − bare)", "Ratio (sidecar / bare)",
                  "Ratio (in-process / bare)", "ours (sidecar) µs per key", "bare µs per key"]
    for k in KEY_COUNTS:
        ours, bare = res[f"ours@{k}"]["calls_us"], res[f"bare@{k}"]["calls_us"]
        fallback = res[f"ours_inprocess@{k}"]["calls_us"]
        so, sb, sf = stats.summarize(ours), stats.summarize(bare), stats.summarize(fallback)
        sec.rows.append([str(k), stats.num(so.median, 1), stats.spread(so, 1),
                         stats.num(sf.median, 1), stats.num(sb.median, 1), stats.spread(sb, 1),
                         str(so.n), stats.signed(so.median - sb.median, 1),
                         stats.num(so.median / sb.median, 3),
                         stats.num(sf.median / sb.median, 3),
                         stats.num(so.median / k, 2), stats.num(sb.median / k, 2)])
        ratio, fb_ratio = so.median / sb.median, sf.median / sb.median
        worst = max(ratio, fb_ratio)
        sec.figures.append(stats.Figure(
            f"6.{k}", f"`on_log`, {k} key{'s' if k > 1 else ''} (sidecar)", "µs", ours,
            "bare `swanlab.log` (in-process)", bare, "≤ 1.2× bare (as 4), also in-process",
            ("met" if worst <= 1.2 else "**missed**") + f": sidecar {ratio:.2f}×, in-process "
            f"fallback {fb_ratio:.2f}× bare" + ("" if fb_ratio <= 1.2 else
                                               " (the `train/…` name conversion per key plus a "
                                               "fixed part, see 4)"), digits=1))

    # finish after N steps: one process per sample, interleaved.
    jobs = [("ours", big), ("bare", big)] if ctx.smoke else \
        [("ours", big), ("bare", big), ("ours", 10)]
    frounds = 1 if ctx.smoke else 2
    fin: dict[tuple[str, int], list[dict]] = {j: [] for j in jobs}
    if ctx.smoke:  # one process, ours then bare (started above)
        for who in ("ours", "bare"):
            fin[(who, big)].append(smoke_finish[who])
    else:
        for r, _warm, (who, steps) in stats.rotations(jobs, frounds, 0):
            stats.say(f"scale: finish after {steps} steps, {who}, round {r}")
            fin[(who, steps)].append(
                _spawn_finish(ctx, f"{who}-{steps}-{r}", who, steps)[who])
    f_ours = [x["finish_s"] for x in fin[("ours", big)]]
    f_bare = [x["finish_s"] for x in fin[("bare", big)]]
    sec.figures.append(stats.Figure(
        "6f", f"`finish` after {big:,} logged steps (ours: `on_train_end`, then the end of "
        "Axolotl's train())", "s", f_ours,
        "bare `swanlab.finish()`", f_bare, "report (how it grows)", "reported", digits=3))
    sec.notes.append("Finish after N steps, one process per sample: " + "; ".join(
        f"{who} N={steps:,}: init {stats.median([x['init_s'] for x in xs]):.2f} s, logging "
        f"{stats.median([x['log_s'] for x in xs]):.2f} s "
        f"({stats.median([x['log_s'] for x in xs]) / steps * 1e6:.0f} µs/step), finish "
        f"{stats.median([x['finish_s'] for x in xs]):.3f} s "
        f"(n={len(xs)}; run file as read back: {', '.join(str(x.get('records')) for x in xs)})"
        for (who, steps), xs in fin.items()) + ".")
    bad = [(who, steps, x.get("records")) for (who, steps), xs in fin.items() for x in xs
           if not str(x.get("records", "")).startswith("finished")]
    if bad:
        sec.notes.append(
            f"**{len(bad)} of {sum(len(v) for v in fin.values())} runs did not read back as "
            "finished** although `finish` had returned: " + "; ".join(
                f"{who} N={steps:,}: {rec}" for who, steps, rec in bad) + ". Read back in the "
            "same process right after `finish`, with this project's reader and with SwanLab's "
            "own `DataStoreReader`. When both stop at the same record, the file itself is "
            "damaged; if it happens in *bare* runs too, it is SwanLab's, not this package's.")
    return sec


def _method(warmup: int, rounds: int, batch: int, smoke: bool) -> str:
    big = "1,000" if smoke else "10,000"
    return (
        "**Per call:** measurement 4's method (one process in the axolotl-0.19.0 venv, one "
        "offline run, every call timed on its own) for dicts of 1, 8, 32 and 128 keys (the "
        "realistic Trainer keys first, then `custom/metric_NNN`): a bare `swanlab.log` of the "
        "same dict and our `on_log` interleaved in an in-process child, then our `on_log` in a "
        "sidecar child (the default); "
        f"{warmup} warm-up round(s), {rounds} rounds of {batch} calls. **finish:** a fresh "
        f"process per sample{' (smoke: one process, ours then bare)' if smoke else ''}: the run is started (ours: `on_train_begin`; bare: "
        f"`swanlab.init`, offline), {big} steps of the 14-key dict are logged back to back "
        "(ours: `on_log`; bare: `swanlab.log`), then the run is ended (ours: `on_train_end`, then "
        "`trainer_hooks.after_training` → `swanlab_autopatch.tracking.run.finish`; bare: `swanlab.finish()`). Back-to-back logging is the "
        "worst case for finish, which first waits for SwanLab's writer thread to write the "
        "backlog; in training, steps are far apart and the backlog is small. Ours runs with "
        "the sidecar (the default): its `on_log` only hands each step to the helper, so the "
        "helper's whole SwanLab work (what bare does inside its `swanlab.log` calls) comes due "
        "in the finish; compare logging + finish. "
        + ("" if smoke else "N = 10 (ours) gives the fixed cost; 2 interleaved rounds."))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child-finish":
        sys.exit(child_finish(sys.argv[2:]))
    sys.exit("run benchmarks/run.py (this module is one of its measurements)")
