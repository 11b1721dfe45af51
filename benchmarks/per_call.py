"""4. Per logging call: the callback's ``on_log`` against real SwanLab, next to the alternatives.

Child processes in the axolotl-0.19.0 venv (they have transformers, Axolotl and SwanLab), each
with one offline SwanLab run that every scenario of the child logs into. An *in-process* child
(``SWANLAB_AUTOPATCH_SIDECAR=0``: SwanLab runs in the child itself, as it does for every other
integration) measures:
    bare          ``swanlab.log(logs, step=step)`` of the Trainer's dict as it is
    ours          ``SwanLabAutopatchCallback.on_log`` on the in-process fallback (the run was
                  started by its ``on_train_begin``, as in training)
    axolotl       Axolotl's ``axolotl.utils.callbacks.swanlab.CustomSwanLabCallback().on_log``
    swanlab       SwanLab's ``swanlab.integration.transformers.SwanLabCallback().on_log``
    to_metrics    only the callback's dict conversion (no SwanLab call), for the breakdown
A *sidecar* child (the default) measures ``ours`` again: there the run lives in the helper
process and ``on_log`` only hands the values to it. (In a sidecar child ``swanlab.log`` itself is
forwarded to the helper too, so the in-process baselines can only be measured in the other
child.) The two kinds of child alternate, twice each in the full run.
The Trainer objects are real (``TrainingArguments``, ``TrainerState``, ``TrainerControl``); the
log dict is the one Axolotl 0.19 logs on CPU (12 keys: loss, grad_norm, learning_rate, epoch,
memory/*, ppl, tokens/*) plus two more keys seen on GPU runs, 14 in all. Each call gets its own
increasing step, so no scenario ever logs a step twice. Every call is timed on its own
(perf_counter_ns); scenarios run in batches, round-robin with a rotating start, after warm-up
rounds; a short sleep after each batch lets SwanLab's writer thread drain its queue (in training,
a step takes far longer than a log call).

The child part of this module is reused by scale.py (key counts 1, 8, 32, 128).
"""
from __future__ import annotations

import json
import os
import sys
import time

KEY = "4"
SCENARIOS = ["bare", "bare_renamed", "ours", "axolotl", "swanlab", "to_metrics"]
# The report's rows: "ours" is measured in the sidecar children, the rest in-process.
ORDER = ["bare", "bare_renamed", "ours", "ours_inprocess", "axolotl", "swanlab", "to_metrics"]
LABELS = {"bare_renamed": "bare, our names", "ours": "ours (sidecar)",
          "ours_inprocess": "ours (in-process fallback)"}

# What Axolotl 0.19 logs per step on CPU (from a harness run's trainer_state.json), plus two keys
# GPU runs add.
REALISTIC = [
    ("loss", 4.9084), ("grad_norm", 4.9866), ("learning_rate", 2.739e-06), ("epoch", 0.9375),
    ("memory/max_active (GiB)", 0.0), ("memory/max_allocated (GiB)", 0.0),
    ("memory/device_reserved (GiB)", 0.0), ("ppl", 135.42), ("tokens/total", 3840),
    ("tokens/trainable", 191), ("tokens/train_per_sec_per_gpu", 23.8), ("num_tokens", 3840.0),
    ("mean_token_accuracy", 0.31), ("entropy", 2.71),
]


def make_logs(n_keys: int, variant: int) -> dict:
    """A Trainer-like log dict with n_keys keys; values change with the variant."""
    out = {}
    for i in range(n_keys):
        if i < len(REALISTIC):
            key, value = REALISTIC[i]
        else:
            key, value = f"custom/metric_{i:03d}", 1.0
        if isinstance(value, float):
            value = value * (1.0 + 0.001 * ((variant * 7 + i) % 97))
        out[key] = value
    return out


# ---------------------------------------------------------------------------------------------
# Child side (axolotl-0.19.0 venv)
# ---------------------------------------------------------------------------------------------


class Loggers:
    """The four ways to log a Trainer dict, all into one offline SwanLab run."""

    def __init__(self, logdir: str, project: str = "bench-percall", want=SCENARIOS):
        from transformers import TrainerControl, TrainerState, TrainingArguments

        import swanlab
        from swanlab_autopatch.tracking import run as sa_run
        from swanlab_autopatch.tracking.callback import SwanLabAutopatchCallback
        from swanlab_autopatch.tracking.metric_names import to_metrics
        from swanlab_autopatch.config.settings import parse

        self.swanlab = swanlab
        self.run = sa_run
        self.to_metrics = to_metrics
        self.args = TrainingArguments(output_dir=os.path.join(logdir, "out"), report_to="none",
                                      per_device_train_batch_size=2, logging_steps=1,
                                      max_steps=1000)
        self.state = TrainerState()
        self.state.global_step = 0
        self.control = TrainerControl()
        settings = parse({"swanlab_project": project, "swanlab_mode": "offline",
                          "swanlab_log_dir": logdir}).settings
        cfg = {"swanlab_project": project, "swanlab_mode": "offline", "base_model": "tiny",
               "micro_batch_size": 2, "gradient_accumulation_steps": 1, "learning_rate": 1e-3,
               "sequence_len": 128, "output_dir": self.args.output_dir}
        self.ours = SwanLabAutopatchCallback(settings, cfg)
        t0 = time.perf_counter()
        self.ours.on_train_begin(self.args, self.state, self.control, model=None)
        self.start_s = time.perf_counter() - t0
        if not sa_run.active():
            raise RuntimeError("swanlab_autopatch did not start a SwanLab run")
        self.fns = {"bare": self.bare, "bare_renamed": self.bare_named,
                    "ours": self.log_ours, "to_metrics": self.convert}
        self._named: dict[int, dict] = {}  # id(logs) -> our metric names, made outside timing
        self.missing = {}
        if "axolotl" in want:
            try:
                from axolotl.utils.callbacks.swanlab import CustomSwanLabCallback

                self.ax = CustomSwanLabCallback()
                self.ax.on_train_begin(self.args, self.state, self.control)
                if not getattr(self.ax, "_initialized", False):
                    raise RuntimeError("CustomSwanLabCallback did not see the run")
                self.fns["axolotl"] = self.log_axolotl
            except Exception as exc:
                self.missing["axolotl"] = repr(exc)
        if "swanlab" in want:
            try:
                from swanlab.integration.transformers import SwanLabCallback

                self.sw = SwanLabCallback()
                self.sw.on_train_begin(self.args, self.state, self.control, model=None)
                self.fns["swanlab"] = self.log_swanlab
            except Exception as exc:
                self.missing["swanlab"] = repr(exc)

    def bare(self, logs: dict, step: int) -> None:
        self.state.global_step = step
        self.swanlab.log(logs, step=step)

    def prepare(self, pool: list[dict]) -> None:
        for logs in pool:
            self._named[id(logs)] = self.to_metrics(logs)

    def bare_named(self, logs: dict, step: int) -> None:
        self.state.global_step = step
        self.swanlab.log(self._named[id(logs)], step=step)

    def log_ours(self, logs: dict, step: int) -> None:
        self.state.global_step = step
        self.ours.on_log(self.args, self.state, self.control, logs=logs)

    def log_axolotl(self, logs: dict, step: int) -> None:
        self.state.global_step = step
        self.ax.on_log(self.args, self.state, self.control, logs=logs)

    def log_swanlab(self, logs: dict, step: int) -> None:
        self.state.global_step = step
        self.sw.on_log(self.args, self.state, self.control, logs=logs)

    def convert(self, logs: dict, step: int) -> None:
        self.state.global_step = step
        self.to_metrics(logs)


def measure(loggers: Loggers, scenarios: list[tuple[str, int]], warmup: int, rounds: int,
            batch: int, pause: float = 0.02) -> dict:
    """Interleaved batches of individually timed calls. scenarios: (logger name, key count).
    Returns {"name@keys": {"calls_us": [...], "batch_mean_us": [...]}}."""
    import stats

    pools = {keys: [make_logs(keys, v) for v in range(32)] for _n, keys in scenarios}
    for pool in pools.values():
        loggers.prepare(pool)
    out = {f"{n}@{k}": {"calls_us": [], "batch_mean_us": []} for n, k in scenarios}
    step = 0
    clock = time.perf_counter_ns
    for _r, warm, (name, keys) in stats.rotations(scenarios, rounds, warmup):
        fn = loggers.fns[name]
        pool = pools[keys]
        times = []
        for i in range(batch):
            step += 1
            logs = pool[i % len(pool)]
            t0 = clock()
            fn(logs, step)
            times.append((clock() - t0) / 1000)
        if not warm:
            rec = out[f"{name}@{keys}"]
            rec["calls_us"] += times
            rec["batch_mean_us"].append(sum(times) / len(times))
        time.sleep(pause)
    return out


def console_write_us(n: int = 600) -> float:
    """One progress-bar-like write to stderr, in µs (best of 3 loops): SwanLab captures the
    console of a running run, and every write goes through its proxy."""
    line = " 50%|#####     | 15/30 [00:10<00:08,  1.76it/s]\r"
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(n):
            sys.stderr.write(line)
        best = min(best, (time.perf_counter() - t0) / n * 1e6)
    sys.stderr.write("\n")
    return best


def child(argv: list[str]) -> int:
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--logdir", required=True)
    p.add_argument("--scenarios", default=",".join(SCENARIOS))
    p.add_argument("--keys", default="14")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--batch", type=int, default=25)
    a = p.parse_args(argv)
    names = a.scenarios.split(",")
    from transformers import TrainerCallback  # noqa: F401  (same modules loaded before/after)

    console = {"before the run": console_write_us()}
    t0 = time.perf_counter()
    loggers = Loggers(a.logdir, want=names)
    setup_s = time.perf_counter() - t0
    names = [n for n in names if n in loggers.fns]
    keys = [int(k) for k in a.keys.split(",")]
    combos = [(n, k) for k in keys for n in names]
    res = measure(loggers, combos, a.warmup, a.rounds, a.batch)
    console["during the run"] = console_write_us()
    t1 = time.perf_counter()
    loggers.run.finish("success")
    finish_s = time.perf_counter() - t1
    console["after finish"] = console_write_us()
    with open(a.out, "w", encoding="utf-8") as fh:
        json.dump({"results": res, "missing": loggers.missing, "setup_s": setup_s,
                   "start_s": loggers.start_s, "finish_s": finish_s, "console_us": console,
                   "sample_logs": make_logs(keys[0], 0),
                   "ours_metrics": loggers.to_metrics(make_logs(keys[0], 0))}, fh)
    return 0


# ---------------------------------------------------------------------------------------------
# Parent side
# ---------------------------------------------------------------------------------------------


def spawn(ctx, name: str, args: list[str], timeout: float = 900, sidecar: bool = False) -> dict:
    """Run this module's child in the Axolotl venv; returns its JSON. sidecar: the run in the
    helper process (the default in use) instead of in the child (the in-process fallback)."""
    import subprocess
    from pathlib import Path

    import stats

    here = Path(__file__).resolve().parent
    work = ctx.work / name
    work.mkdir(parents=True, exist_ok=True)
    out = work / "result.json"
    env = ctx.ax_env({"SWANLAB_AUTOPATCH": "0", "SWANLAB_AUTOPATCH_SIDECAR": "1" if sidecar
                      else "0"}, swanlab_root=work / ".swanlab-root")
    cmd = [ctx.ax_python, str(here / "per_call.py"), "--child", "--out", str(out),
           "--logdir", str(work / "swanlog"), *args]
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0 or not out.exists():
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
        raise RuntimeError(f"child failed ({proc.returncode}): {tail[-800:]}")
    stats.say(f"{name}: child done")
    return json.loads(out.read_text())


def both_modes(ctx, name: str, scenarios: str, args: list[str], pairs: int) -> dict:
    """In-process and sidecar children in turn, `pairs` times each. Returns the in-process
    child's data (the last one's extras) with the results pooled over the children; the
    sidecar children's ``ours@k`` is ``ours@k`` and the in-process one's ``ours_inprocess@k``."""
    pooled: dict = {}
    data: dict = {}
    for i in range(pairs):
        for sidecar in (False, True):
            mode = "sidecar" if sidecar else "inprocess"
            chosen = "ours,to_metrics" if sidecar else scenarios
            got = spawn(ctx, f"{name}-{mode}-{i}", ["--scenarios", chosen, *args],
                        sidecar=sidecar)
            if not sidecar:
                data = got
            for key, rec in got["results"].items():
                if not sidecar and key.startswith("ours@"):
                    key = "ours_inprocess@" + key.split("@")[1]
                elif sidecar and not key.startswith("ours@"):
                    continue
                into = pooled.setdefault(key, {"calls_us": [], "batch_mean_us": []})
                into["calls_us"] += rec["calls_us"]
                into["batch_mean_us"] += rec["batch_mean_us"]
    data = dict(data, results=pooled)
    return data


def run(ctx) -> "stats.Section":
    import stats

    warmup, rounds, batch = (1, 4, 10) if ctx.smoke else (3, 20, 25)
    data = both_modes(ctx, "per-call", ",".join(SCENARIOS),
                      ["--keys", "14", "--warmup", str(warmup), "--rounds", str(rounds),
                       "--batch", str(batch)], pairs=1 if ctx.smoke else 2)
    res = data["results"]
    calls = {k.split("@")[0]: v["calls_us"] for k, v in res.items()}
    means = {k.split("@")[0]: v["batch_mean_us"] for k, v in res.items()}
    bare = calls["bare"]
    sec = stats.Section(KEY, "Per logging call (`on_log`, 14-key Trainer dict, offline SwanLab)",
                        method=_method(warmup, rounds, batch))
    ours_med = stats.median(calls["ours"])
    ctx.on_log_us = ours_med
    ratio = ours_med / stats.median(bare)
    ax = calls.get("axolotl")
    ax_med = stats.median(ax) if ax else None
    verdict_parts = [f"{'met' if ratio <= 1.2 else '**missed**'}: {ratio:.2f}× bare "
                     f"(limit 1.2×)"]
    slower_than_ax = False
    if ax_med is not None:
        lo, hi = stats.diff_ci(calls["ours"], ax)
        # "No slower" within this run's resolution: the interval of the difference reaches 0.
        slower_than_ax = lo > 0
        verdict_parts.append(
            f"{'**missed**' if slower_than_ax else 'met'}: {ours_med / ax_med:.2f}× Axolotl's "
            f"callback (Δ {ours_med - ax_med:+.1f} µs, 90% interval {lo:+.1f} … {hi:+.1f})")
    else:
        verdict_parts.append(f"Axolotl's callback unavailable ({data['missing'].get('axolotl')})")
    fallback = calls["ours_inprocess"]
    fb_med = stats.median(fallback)
    fb_ratio = fb_med / stats.median(bare)
    if calls.get("bare_renamed") and calls.get("to_metrics") and fb_ratio > 1.2:
        named_med = stats.median(calls["bare_renamed"])
        verdict_parts.append(
            f"in-process fallback (4c): the callback's own work, {fb_med - named_med:+.0f} µs per call (the "
            f"`train/…` name conversion {stats.median(calls['to_metrics']):.0f} µs, the run "
            f"checks and the call chain) on top of `swanlab.log`; Axolotl's callback passes the "
            f"raw keys through. SwanLab's own callback costs "
            f"{stats.median(calls['swanlab']):.0f} µs" if calls.get("swanlab") else
            f"in-process fallback (4c): the callback's own work, {fb_med - named_med:+.0f} µs per call")
    sec.figures.append(stats.Figure(
        "4", "`on_log` of SwanLabAutopatchCallback (sidecar, the default)", "µs", calls["ours"],
        "bare `swanlab.log` (in-process)",
        bare, "≤ 1.2× bare `swanlab.log`; ≤ Axolotl's callback", "; ".join(verdict_parts),
        digits=1))
    if ax:
        sec.figures.append(stats.Figure(
            "4b", "`on_log`, ours vs Axolotl's `CustomSwanLabCallback`", "µs", calls["ours"],
            "Axolotl's callback", ax, "no slower (≤ 1.0× within noise)",
            f"**missed** by {ours_med - ax_med:.1f} µs (90% interval excludes 0)"
            if slower_than_ax else "met" + (" (within noise)" if ours_med > ax_med else ""),
            digits=1))
    sec.figures.append(stats.Figure(
        "4c", "`on_log`, in-process fallback (`SWANLAB_AUTOPATCH_SIDECAR=0`)", "µs", fallback,
        "bare `swanlab.log` (same process)", bare, "≤ 1.2× bare `swanlab.log`",
        ("met" if fb_ratio <= 1.2 else "**missed**") + f": {fb_ratio:.2f}× bare", digits=1))
    named = [(LABELS.get(n, n), calls[n]) for n in ORDER if n in calls]
    sec.header, sec.rows = stats.scenario_rows(named, bare, digits=1, pairs=False)
    sec.rows = [["**each call, µs**"] + [""] * (len(sec.header) - 1)] + sec.rows
    _h, r2 = stats.scenario_rows([(LABELS.get(n, n), means[n]) for n in ORDER if n in means],
                                 means["bare"], digits=1, pairs=True)
    sec.header += ["Paired Δ (per round)", "Paired Δ 90% CI"]
    sec.rows = [r + ["", ""] for r in sec.rows]
    sec.rows.append(["**batch means (mean of each batch of calls), µs**"] +
                    [""] * (len(sec.header) - 1))
    sec.rows += r2
    for name, why in data["missing"].items():
        sec.notes.append(f"Scenario `{name}` could not run: {why}")
    sec.notes.append(f"Log dict given to every scenario ({len(data['sample_logs'])} keys): "
                     f"`{json.dumps(data['sample_logs'])}`; what our callback sends to "
                     f"`swanlab.log`: keys `{sorted(data['ours_metrics'])}`. Axolotl's callback "
                     "logs the raw keys; SwanLab's callback logs `train/…` names plus "
                     "`train/global_step`.")
    conv = stats.median(calls["to_metrics"]) if calls.get("to_metrics") else None
    named_med = stats.median(calls["bare_renamed"]) if calls.get("bare_renamed") else None
    if conv is not None and named_med is not None:
        sec.notes.append(
            f"Breakdown of the in-process fallback ({fb_med:.1f} µs): `swanlab.log` of our "
            f"`train/…` names {named_med:.1f} µs (bare with the raw names: "
            f"{stats.median(bare):.1f} µs); the callback's own overhead "
            f"{fb_med - named_med:+.1f} µs, of which the dict conversion (`to_metrics`) is "
            f"{conv:.1f} µs. With the sidecar ({ours_med:.1f} µs) the call only packs the "
            "values and writes them to the helper's pipe; SwanLab's work happens there.")
    cons = data.get("console_us") or {}
    if cons:
        sec.notes.append(
            "One progress-bar write to stderr (what tqdm and the Trainer's log printing do every "
            "step) costs " + ", ".join(f"{v:.1f} µs {k}" for k, v in cons.items()) +
            " (in-process children): while a SwanLab run is active in the process, its "
            "terminal proxy captures the console. With the sidecar the console is read from a "
            "tee by the helper instead (see 8).")
        ctx.console_us = cons
    sec.notes.append(f"In-process run started by the callback's `on_train_begin` in "
                     f"{data['start_s']:.2f} s (includes `swanlab.init`); finish after the "
                     "benchmark "
                     f"{data['finish_s']:.2f} s.")
    return sec


def _method(warmup: int, rounds: int, batch: int) -> str:
    return (
        "Child processes in the axolotl-0.19.0 venv, in-process and sidecar in turn (two of "
        "each in the full run), each with one offline SwanLab run shared by its scenarios "
        "(started by our callback's `on_train_begin`). In-process children "
        "(`SWANLAB_AUTOPATCH_SIDECAR=0`, SwanLab in the measured process as with every other "
        "integration): *bare* `swanlab.log(logs, step=…)`; *ours (in-process fallback)* "
        "`SwanLabAutopatchCallback.on_log`; *axolotl* Axolotl 0.19's "
        "`CustomSwanLabCallback()` (no constructor arguments; its `on_train_begin` finds the "
        "active run); *swanlab* SwanLab 0.10's `swanlab.integration.transformers."
        "SwanLabCallback()` (sees the active run, does not start another); *to_metrics* our "
        "dict conversion alone; *bare, our names* is `swanlab.log` of the dict our callback "
        "produces (converted beforehand, outside the timing), so *ours* − *bare, our names* is "
        "the callback's own overhead and *bare, our names* − *bare* is what SwanLab charges "
        "for the longer `train/…` names. Sidecar children (the default): *ours (sidecar)*, the "
        "same `on_log` while the run lives in the helper process. Real `TrainingArguments`, "
        "`TrainerState` and `TrainerControl`; every call has its own increasing step. Each call "
        f"is timed on its own; {warmup} warm-up round(s), then {rounds} rounds of one batch of "
        f"{batch} calls per scenario, round-robin with a rotating start, 20 ms pause after each "
        "batch so SwanLab's writer thread (or the helper) drains its queue (a training step is "
        "far longer than a log call). The figure is the median over all calls; the batch means "
        "(which include the rare slow calls, e.g. a GIL hand-off to the writer thread) are in "
        "the detail table. 8h measures the same call inside a real training loop.")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        sys.exit(child(sys.argv[2:]))
    sys.exit("run benchmarks/run.py (this module is one of its measurements)")
