"""7. Cloud mode: the harness's tiny CPU training syncing to a SwanLab server on localhost (the
stand-in, tools/swanlab_server.py), next to offline and untracked training.

Scenarios (``axolotl train cfg.yaml --launcher python`` through tools/harness.py, axolotl-0.19.0
venv, the tiny Llama; max_steps 30, logging every step, one checkpoint at the end), interleaved
round-robin with a rotating start, in one run:
    none        no swanlab keys (the package installed, nothing to track)
    offline     ``swanlab_project`` + ``swanlab_mode: offline``
    cloud       ``swanlab_mode: cloud`` against the stand-in on 127.0.0.1 (private-deployment
                keys ``swanlab_api_host`` / ``swanlab_web_host``, key in ``SWANLAB_API_KEY``)
    cloud-slow  the same against a second stand-in that delays every answer by 200 ms (the
                stand-in's ``delay`` fault): a distant or busy server

Timings come from measurement 5's probe (a ``sitecustomize.py`` on ``PYTHONPATH``; the package
is not modified): time per step = the interval between consecutive ``on_step_end`` stamps,
steps 3..N-1; time to finish = ``swanlab_autopatch.tracking.run.finish`` in the training
process at ``on_train_end`` (it hands the end of the run to the sidecar and waits, bounded, until
the sidecar has finished the run: for cloud, the last uploads and the final state).
"""
from __future__ import annotations

import random
from pathlib import Path

KEY = "7"
SCENARIOS = ["none", "offline", "cloud", "cloud-slow"]
STEPS = 30
BENCH_KEY = "bench-cloud-key-not-a-secret"
SLOW_ANSWER_S = 0.2


def _config(ctx, scenario: str, run_dir: Path, urls: dict) -> dict:
    import harness

    extra: dict = {"max_steps": STEPS, "save_steps": STEPS}
    if not ctx.smoke:  # one tokenized dataset for every training (prepared by the warm-up)
        extra["dataset_prepared_path"] = str(ctx.work / "cloud" / "prepared")
    if scenario == "offline":
        extra.update(swanlab_project="bench-cloud", swanlab_mode="offline")
    elif scenario.startswith("cloud"):
        url = urls[scenario]
        extra.update(swanlab_project="bench-cloud", swanlab_mode="cloud",
                     swanlab_experiment_name=run_dir.name,
                     swanlab_api_host=url, swanlab_web_host=url)
    return harness.config_for(ctx.assets, run_dir, **extra)


def ratio_ci(a: list, b: list, iters: int = 2000, seed: int = 5) -> tuple[float, float]:
    """Bootstrap 90% interval of median(a) / median(b)."""
    import stats

    if len(a) < 2 or len(b) < 2:
        return float("nan"), float("nan")
    if len(a) + len(b) > 600:
        iters = 600
    rng = random.Random(seed)
    out = []
    for _ in range(iters):
        ma = stats.median([a[rng.randrange(len(a))] for _ in a])
        mb = stats.median([b[rng.randrange(len(b))] for _ in b])
        if mb:
            out.append(ma / mb)
    return stats.percentile(out, 5), stats.percentile(out, 95)


def _ratio_text(xs: list, base: list, runs: list, base_runs: list) -> str:
    import stats

    r = stats.median(xs) / stats.median(base) if stats.median(base) else float("nan")
    if len(xs) < 2 or len(base) < 2:
        return f"ratio {r:.3f} (one sample each: no interval)"
    lo, hi = ratio_ci(xs, base)
    text = f"ratio {r:.3f} (90% interval {lo:.3f} … {hi:.3f}, pooled samples)"
    if len(runs) >= 2 and len(base_runs) >= 2:
        rr = stats.median(runs) / stats.median(base_runs)
        rlo, rhi = ratio_ci(runs, base_runs)
        head = "within noise" if rlo <= 1 <= rhi else ("slower" if rr > 1 else "faster (noise)")
        text = (f"{head}: per-training medians ratio {rr:.3f} (90% interval {rlo:.3f} … "
                f"{rhi:.3f}, {len(runs)} vs {len(base_runs)} trainings); {text}")
    return text


def run(ctx) -> "stats.Section":
    import end_to_end
    import harness
    import stats
    from swanlab_server import StandIn

    warmup, rounds = (0, 1) if ctx.smoke else (1, 3)
    probe_dir = ctx.work / "cloud-probe"
    probe_dir.mkdir(parents=True, exist_ok=True)
    (probe_dir / "sitecustomize.py").write_text(end_to_end.PROBE)
    servers = {"cloud": StandIn(ctx.work / "cloud-store", api_keys=[BENCH_KEY]),
               "cloud-slow": StandIn(ctx.work / "cloud-slow-store", api_keys=[BENCH_KEY],
                                     faults={"delay": SLOW_ANSWER_S})}
    results: dict[str, list[dict]] = {s: [] for s in SCENARIOS}
    failures: list[str] = []
    jobs = [(r, warm, s) for r, warm, s in stats.rotations(SCENARIOS, rounds, warmup)
            if not warm or s == "none"]
    try:
        urls = {name: server.start().url for name, server in servers.items()}

        def train(r: int, warm: bool, scenario: str):
            run_dir = ctx.work / "cloud" / f"{scenario}-{r}"
            run_dir.mkdir(parents=True, exist_ok=True)
            env = {"PYTHONPATH": str(probe_dir), "BENCH_PROBE_OUT": str(run_dir / "probe.jsonl"),
                   "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
            if scenario.startswith("cloud"):
                env["SWANLAB_API_KEY"] = BENCH_KEY
            stats.say(f"cloud: round {r}{' (warm-up)' if warm else ''}, {scenario}")
            return run_dir, harness.run_training(
                ctx.ax_venv, "0.19.0", run_dir, _config(ctx, scenario, run_dir, urls),
                launcher="python", env_extra=env, timeout=900)

        done = stats.maybe_parallel([lambda j=j: train(*j) for j in jobs], parallel=ctx.smoke)
        dumps = {name: server.dump() for name, server in servers.items()}
    finally:
        for server in servers.values():
            server.stop()

    served: dict[str, list[str]] = {"cloud": [], "cloud-slow": []}
    for (r, warm, scenario), (run_dir, res) in zip(jobs, done):
        if res.returncode != 0:
            failures.append(f"{scenario} round {r}: exit {res.returncode}")
            stats.say(res.describe()[-1500:])
            continue
        if warm:
            continue
        if any("cloud mode could not start" in line for line in res.output.splitlines()):
            failures.append(f"{scenario} round {r}: fell back to offline")
            continue
        probe = end_to_end._read_probe(run_dir / "probe.jsonl")
        if "steps" not in probe:
            failures.append(f"{scenario} round {r}: the probe recorded no steps")
            continue
        probe["process_s"] = res.seconds
        results[scenario].append(probe)
        if scenario in served:
            served[scenario].append(run_dir.name)
    if not results["none"] or not results["cloud"]:
        raise RuntimeError(f"not enough successful trainings ({failures})")

    def intervals(p: dict) -> list[float]:
        end = p["steps"]["end"]
        return [(end[i] - end[i - 1]) * 1000 for i in range(3, len(end) - 1)]

    def finish_s(p: dict) -> list[float]:
        xs = p["events"].get("swanlab_autopatch.tracking.run.finish") or []
        return [max(xs)] if xs else []

    step_ms = {s: [x for p in v for x in intervals(p)] for s, v in results.items()}
    run_med = {s: [stats.median(intervals(p)) for p in v] for s, v in results.items()}
    fin = {s: [x for p in v for x in finish_s(p)] for s, v in results.items()}
    proc = {s: [p["process_s"] for p in v] for s, v in results.items()}
    sec = stats.Section(KEY, f"Cloud mode: tiny CPU training, {STEPS} steps, syncing to a "
                             "server on localhost", method=_method(warmup, rounds))
    base = step_ms["none"]
    for key, scenario, label in (("7a", "cloud", "cloud (stand-in on localhost)"),
                                 ("7b", "cloud-slow", "cloud, every answer 200 ms late"),
                                 ("7c", "offline", "offline")):
        if step_ms[scenario]:
            sec.figures.append(stats.Figure(
                key, f"Time per training step, {label}", "ms", step_ms[scenario], "no tracking",
                base, "report (ratio)",
                _ratio_text(step_ms[scenario], base, run_med[scenario], run_med["none"]),
                digits=1))
    for key, scenario, label in (("7d", "cloud", "cloud (stand-in on localhost)"),
                                 ("7e", "cloud-slow", "cloud, every answer 200 ms late")):
        if fin[scenario] and fin["offline"]:
            sec.figures.append(stats.Figure(
                key, f"Time to finish (`run.finish` at `on_train_end`), {label}", "s",
                fin[scenario], "offline", fin["offline"], "report (ratio)",
                _ratio_text(fin[scenario], fin["offline"], fin[scenario], fin["offline"]),
                digits=3))
    header, rows = stats.scenario_rows([(s, step_ms[s]) for s in SCENARIOS if step_ms[s]], base,
                                       digits=1, pairs=False)
    sec.header = header
    blank = [""] * (len(header) - 1)
    sec.rows = [["**time per step (every step 3..N-1 of every run), ms**"] + blank] + rows
    _h, r2 = stats.scenario_rows([(s, run_med[s]) for s in SCENARIOS if run_med[s]],
                                 run_med["none"], digits=1, pairs=False)
    sec.rows += [["**median step per training run, ms**"] + [""] * (len(header) - 1)] + r2
    if fin["offline"]:
        _h, r3 = stats.scenario_rows([(s, fin[s]) for s in SCENARIOS if fin[s]], fin["offline"],
                                     digits=3, pairs=False)
        sec.rows += [["**time to finish (`run.finish` in the training process), s**"] +
                     [""] * (len(header) - 1)] + r3
    _h, r4 = stats.scenario_rows([(s, proc[s]) for s in SCENARIOS if proc[s]], proc["none"],
                                 digits=1, pairs=False)
    sec.rows += [["**whole `axolotl train` process, s**"] + [""] * (len(header) - 1)] + r4
    sec.notes.append(_server_note(dumps, served))
    events = sorted({n for v in results.values() for p in v for n in p["events"]})

    def event_median(v: list, name: str) -> float:
        return stats.median([max(p["events"][name]) for p in v if p["events"].get(name)])

    sec.notes.append("Probe timings, median per scenario (s; `swanlab.init` and SwanLab's "
                     "`Run.finish` run in the sidecar, which loads the same probe): " + "; ".join(
                         f"{s}: " + ", ".join(f"`{n}` {event_median(v, n):.3f}" for n in events
                                              if any(p["events"].get(n) for p in v))
                         for s, v in results.items() if any(p["events"] for p in v)) + ".")
    if failures:
        sec.notes.append(f"Failed, fallen back or incomplete trainings (left out): {failures}")
    return sec


def _server_note(dumps: dict, served: dict) -> str:
    """What the stand-ins hold: every measured cloud training once, finished, every step."""
    parts = []
    for scenario, names in served.items():
        experiments = {e["name"]: e for e in dumps[scenario]["experiments"]}
        complete = [n for n in names if n in experiments
                    and experiments[n]["state"] == "FINISHED"
                    and [s for s, _ in experiments[n]["metrics"].get("train/loss", [])]
                    == list(range(1, STEPS + 1)) and not experiments[n]["duplicates"]]
        parts.append(f"{scenario}: {len(complete)} of {len(names)} measured trainings finished "
                     f"on the server with steps 1..{STEPS} once "
                     f"({len(experiments)} experiment(s) in all, warm-up included)")
    return "Server side: " + "; ".join(parts) + "."


def _method(warmup: int, rounds: int) -> str:
    return (
        "`axolotl train cfg.yaml --launcher python` through tools/harness.py (axolotl-0.19.0 "
        f"venv, the tiny Llama, `max_steps: {STEPS}`, `logging_steps: 1`, one checkpoint at the "
        "end). *none*: no swanlab keys; *offline*: `swanlab_project` + `swanlab_mode: offline`; "
        "*cloud*: `swanlab_mode: cloud`, `swanlab_api_host`/`swanlab_web_host` = the SwanLab "
        "server stand-in (tools/swanlab_server.py) on 127.0.0.1, key in `SWANLAB_API_KEY`; "
        f"*cloud-slow*: the same against a second stand-in that delays every answer by "
        f"{SLOW_ANSWER_S * 1000:.0f} ms. "
        f"{'One untimed warm-up training, then ' if warmup else ''}{rounds} round(s), scenarios "
        "round-robin with a rotating start, the stand-ins running throughout. Timings from "
        "measurement 5's probe: time per step = interval between consecutive `on_step_end` "
        f"stamps, steps 3..{STEPS - 1} of every run pooled; time to finish = "
        "`swanlab_autopatch.tracking.run.finish` in the training process at `on_train_end` "
        "(the sidecar finishes the run, uploads and final state included, while it waits). "
        "Ratios are medians over the baseline's median with bootstrap 90% intervals; for the "
        "step, trainings (not steps) are the independent samples, so the per-training-median "
        "ratio decides \"within noise\". `OMP_NUM_THREADS=1` in every scenario.")
