"""2. Activation inside Axolotl: what importing Axolotl costs with the shim armed.

The processes: ``import axolotl.cli.config, axolotl.core.builders`` in the axolotl-0.19.0 venv,
each scenario in its own process, processes interleaved round-robin:
    on            the shim armed (the installed start-up file), YAML with swanlab keys
    off           ``SWANLAB_AUTOPATCH=0``, same YAML
    on, no keys   the shim armed, YAML without swanlab keys (a user who does not track)
After the import, the same process goes on to the config-path measurement (config_path.py):
repeated ``load_cfg`` calls. One Axolotl import costs 8 to 30 s here, so sharing the processes
halves the runtime; the import is timed before any load_cfg call.

Three figures, from the coarse to the precise:
- whole process: wall time from the parent's spawn to the end of the import (as a user feels
  it; on this machine its noise is seconds, far above the 5 ms target);
- in-process, the shim's own time (upper bound): the child times, with perf_counter, every
  call into the trigger finder (``AxolotlTrigger.find_spec``: importing the patcher, wrapt, the
  version check, watching the target modules), every post-import hook (wrapping the targets,
  importing the wrappers module and what it needs) and every call of the shim's module
  watcher (which sees every later import until the last target module is imported). Nested calls are counted once.
- in-process, added: the same minus the import time of the modules those windows loaded that
  Axolotl loads anyway without the shim (``-X importtime`` self times of modules also present
  in an ``off`` process): the shim only moves those imports earlier, it does not add them.
"""
from __future__ import annotations

import json
import sys
import time

KEY = "2"
SCENARIOS = ["on", "off", "on, no keys"]


# ---------------------------------------------------------------------------------------------
# The child: runs in the Axolotl venv. Stdlib only until the import has been measured.
# ---------------------------------------------------------------------------------------------


class _ShimClock:
    """Times the shim's windows; nested windows count once."""

    def __init__(self) -> None:
        self.depth = 0
        self.total = {"trigger": 0.0, "hooks": 0.0, "finder": 0.0}
        self.calls = {"trigger": 0, "hooks": 0, "finder": 0}
        self.loaded: set[str] = set()  # modules first imported inside a window
        self.hooks: list[dict] = []
        self.finder = None  # (the module watcher, its original find_spec)

    def finder_call_us(self, n: int = 20000) -> tuple[float, float]:
        """The cost of one call of the module watcher for a module it does not watch, without and
        with this benchmark's timer around it (to correct the in-process figure)."""
        if self.finder is None:
            return 0.0, 0.0
        finder, original = self.finder
        timed = type(finder).find_spec
        name = "bench_not_a_hooked_module"
        costs = []
        for fn in (original, timed):
            best = float("inf")
            for _ in range(5):
                t0 = time.perf_counter()
                for _ in range(n // 5):
                    fn(finder, name, None, None)
                best = min(best, (time.perf_counter() - t0) / (n // 5) * 1e6)
            costs.append(best)
        return costs[0], costs[1]

    def timed(self, kind: str, fn, *args, label: str = ""):
        if self.depth:
            self.depth += 1
            try:
                return fn(*args)
            finally:
                self.depth -= 1
        # the watcher runs for every import: copying sys.modules there would cost seconds.
        before = set(sys.modules) if kind != "finder" else None
        self.depth = 1
        t0 = time.perf_counter()
        try:
            return fn(*args)
        finally:
            dt = time.perf_counter() - t0
            self.depth = 0
            self.total[kind] += dt
            self.calls[kind] += 1
            new = set(sys.modules) - before if before is not None else set()
            self.loaded |= new
            if kind == "hooks":
                self.hooks.append({"module": label, "ms": dt * 1000, "new_modules": len(new)})


def _instrument(clock: _ShimClock) -> bool:
    """Wrap the armed trigger (and, once it fired, the watcher's hooks and finder) with timers.
    Returns False when the shim is not armed in this process."""
    startup = sys.modules.get("swanlab_autopatch._startup")
    if startup is None or not any(type(f).__name__ == "AxolotlTrigger" for f in sys.meta_path):
        return False
    original = startup.AxolotlTrigger.find_spec
    state = {"instrumented": False}

    def after_activation() -> None:
        post_import = sys.modules.get("swanlab_autopatch.shim.post_import")
        if post_import is None or state["instrumented"]:
            return
        state["instrumented"] = True
        cls = post_import.ModuleWatcher
        imported_original = cls.imported

        def imported(self, module, _o=imported_original):
            return clock.timed("hooks", _o, self, module, label=module.__name__)

        cls.imported = imported
        for finder in sys.meta_path:
            if isinstance(finder, cls):
                finder_original = cls.find_spec
                clock.finder = (finder, finder_original)

                def find_spec(self, fullname, path=None, target=None, _o=finder_original):
                    return clock.timed("finder", _o, self, fullname, path, target)

                cls.find_spec = find_spec
                break

    def find_spec(self, fullname, path=None, target=None):
        try:
            return clock.timed("trigger", original, self, fullname, path, target)
        finally:
            after_activation()

    startup.AxolotlTrigger.find_spec = find_spec
    return True


def child(argv: list[str]) -> int:
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--cfg", default="")
    p.add_argument("--warmup", type=int, default=0)
    p.add_argument("--calls", type=int, default=0)
    p.add_argument("--ab-rounds", type=int, default=0)
    p.add_argument("--ab-batch", type=int, default=0)
    a = p.parse_args(argv)
    clock = _ShimClock()
    armed = _instrument(clock)
    t0 = time.perf_counter()
    import axolotl.cli.config  # noqa: F401
    import axolotl.core.builders  # noqa: F401
    import_s = time.perf_counter() - t0
    end_wall = time.time()
    result = {
        "armed": armed, "import_s": import_s, "end_wall": end_wall,
        "shim_ms": {k: v * 1000 for k, v in clock.total.items()},
        "shim_calls": dict(clock.calls),  # copied before the calibration loop below
        "hooks": clock.hooks, "shim_loaded": sorted(clock.loaded),
        "modules": sorted(sys.modules),
        "patched": None,
    }
    plain_us, timed_us = clock.finder_call_us() if armed else (0.0, 0.0)
    result.update(finder_call_us=plain_us, finder_timed_call_us=timed_us)
    if armed:
        try:
            from swanlab_autopatch.shim import patcher

            result["patched"] = patcher.status().get("wrapped")
        except Exception as exc:  # the measurement still stands
            result["patched"] = f"error: {exc!r}"
    if a.cfg:
        import config_path

        result["config_path"] = config_path.child_loop(a.cfg, a.warmup, a.calls, a.ab_rounds,
                                                        a.ab_batch)
    with open(a.out, "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    return 0


# ---------------------------------------------------------------------------------------------
# The parent.
# ---------------------------------------------------------------------------------------------


def axolotl_processes(ctx) -> dict:
    """Run (once per benchmark run) the interleaved Axolotl processes that measurements 2 and 3
    share. Returns {"samples": {scenario: [result...]}, "importtime": [result...], ...}."""
    cache = getattr(ctx, "_axolotl_processes", None)
    if cache is not None:
        return cache
    import subprocess
    from pathlib import Path

    import harness
    import stats

    smoke = ctx.smoke
    warmup, rounds = (0, 1) if smoke else (1, 5)
    extra_importtime_runs = 0 if smoke else 2
    cfg_warmup, cfg_calls = (1, 5) if smoke else (3, 30)
    ab_rounds, ab_batch = (2, 3) if smoke else (6, 7)
    here = Path(__file__).resolve().parent
    base = ctx.work / "axolotl-procs"
    configs = {}
    for name, keys in (("with-keys", True), ("no-keys", False)):
        run_dir = base / name
        extra = {"swanlab_project": "bench-config", "swanlab_mode": "offline"} if keys else {}
        configs[name] = harness.write_config(run_dir / "cfg.yaml",
                                             harness.config_for(ctx.assets, run_dir, **extra))
    samples: dict[str, list[dict]] = {s: [] for s in SCENARIOS}
    importtime_runs: list[dict] = []
    failures: list[str] = []
    scenarios = SCENARIOS[:2] if smoke else SCENARIOS  # smoke: on and off only
    # One untimed process warms the caches (page cache, bytecode); no need to warm all three.
    jobs = [(r, warm, s, False) for r, warm, s in stats.rotations(scenarios, rounds, warmup)
            if not warm or s == scenarios[0]]
    # -X importtime for the attribution: the smoke run's single `on` process, or extra ones.
    if smoke:
        jobs = [(r, w, s, s == "on") for r, w, s, _ in jobs]
    jobs += [(warmup + rounds + i, False, "on", True) for i in range(extra_importtime_runs)]
    def launch(i: int, job: tuple) -> tuple:
        r, warm, scenario, with_importtime = job
        out = base / f"proc-{i}.json"
        cfg = configs["no-keys" if scenario == "on, no keys" else "with-keys"]
        env = ctx.ax_env({"SWANLAB_AUTOPATCH": "0"} if scenario == "off" else {},
                         swanlab_root=base / ".swanlab-root")
        cmd = [ctx.ax_python] + (["-X", "importtime"] if with_importtime else []) + [
            str(here / "activation.py"), "--child", "--out", str(out), "--cfg", str(cfg),
            "--warmup", str(cfg_warmup), "--calls", str(cfg_calls),
            "--ab-rounds", str(ab_rounds if scenario == "on" else 0), "--ab-batch", str(ab_batch)]
        stats.say(f"activation/config: round {r}{' (warm-up)' if warm else ''}, {scenario}"
                  f"{' with -X importtime' if with_importtime else ''}")
        spawn = time.time()
        proc = subprocess.run(cmd, cwd=cfg.parent, env=env, capture_output=True, text=True,
                              timeout=900)
        return job, out, spawn, proc

    # Smoke mode starts its few processes at once (its numbers only show that the code runs);
    # the full run starts one process at a time.
    launched = stats.maybe_parallel([lambda i=i, j=j: launch(i, j) for i, j in enumerate(jobs)],
                                    parallel=smoke)
    for (r, warm, scenario, with_importtime), out, spawn, proc in launched:
        if proc.returncode != 0 or not out.exists():
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
            failures.append(f"{scenario}: exit {proc.returncode}")
            stats.say(f"child failed ({proc.returncode}):\n{tail}")
            if len(failures) >= 3:
                raise RuntimeError(f"Axolotl child processes fail: {tail[-500:]}")
            continue
        res = json.loads(out.read_text())
        res["wall_s"] = res["end_wall"] - spawn
        res["scenario"] = scenario
        res["stderr_tail"] = proc.stderr[-2000:] if not with_importtime else ""
        if with_importtime:
            res["importtime"] = stats.importtime(proc.stderr)
            importtime_runs.append(res)
            if not (smoke and scenario == "on"):
                continue  # the extra attribution runs are not timing samples
        if not warm:
            samples[scenario].append(res)
    cache = {"samples": samples, "importtime": importtime_runs, "failures": failures,
             "rounds": rounds, "warmup": warmup, "cfg_warmup": cfg_warmup,
             "cfg_calls": cfg_calls, "ab_rounds": ab_rounds, "ab_batch": ab_batch}
    ctx._axolotl_processes = cache
    return cache


def _added_ms(run: dict, off_modules: set[str]) -> tuple[float, float, list[tuple[str, float]]]:
    """(moved ms, added-import ms, the largest added modules) for one -X importtime run."""
    it = run["importtime"]
    moved = added = 0.0
    added_list = []
    for name in run["shim_loaded"]:
        self_ms = it.get(name, (0, 0))[0] / 1000
        if name in off_modules:
            moved += self_ms
        else:
            added += self_ms
            added_list.append((name, self_ms))
    added_list.sort(key=lambda x: -x[1])
    return moved, added, added_list


def run(ctx) -> "stats.Section":
    import stats

    data = axolotl_processes(ctx)
    s = data["samples"]
    if not s["on"] or not s["off"]:
        raise RuntimeError(f"no successful processes ({data['failures']})")
    wall = {k: [r["wall_s"] for r in v] for k, v in s.items()}
    imp = {k: [r["import_s"] for r in v] for k, v in s.items()}
    def own_ms(r: dict) -> float:
        """Trigger + hooks as timed, the watcher as calls x its plain per-call cost (the
        benchmark's own timer around ~6000 finder calls would otherwise count too)."""
        finder = r["shim_calls"]["finder"] * r.get("finder_call_us", 0.0) / 1000
        return r["shim_ms"]["trigger"] + r["shim_ms"]["hooks"] + finder

    shim_ms = [own_ms(r) for r in s["on"]]
    off_modules: set[str] = set()
    for r in s["off"]:
        off_modules |= set(r["modules"])
    attributions = [(_added_ms(r, off_modules), r) for r in data["importtime"] if r["armed"]]
    added = [own_ms(r) - moved for (moved, _a, _l), r in attributions]
    moved_ms = [m for (m, _a, _l), _r in attributions]

    sec = stats.Section(KEY, "Activation inside Axolotl (`import axolotl.cli.config, "
                        "axolotl.core.builders`)", method=_method(data))
    w_on, w_off = wall["on"], wall["off"]
    lo, hi = stats.diff_ci(w_on, w_off)
    sec.figures.append(stats.Figure(
        "2a", "Activation, whole process (spawn → imports done)", "s", w_on,
        "`SWANLAB_AUTOPATCH=0`", w_off, "< 5 ms",
        f"not resolvable this way: 90% interval of Δ is {lo * 1000:+.0f} … {hi * 1000:+.0f} ms "
        "(machine noise); see 2b/2c", digits=3))
    med_shim = stats.median(shim_ms)
    sec.figures.append(stats.Figure(
        "2b", "Activation, the shim's own time in-process (upper bound)", "ms", shim_ms,
        target="< 5 ms", verdict=_verdict(med_shim, 5.0, "ms", "upper bound: includes "
                                             "modules Axolotl imports anyway (see 2c)")))
    meta_ms = _metadata_version_ms(ctx, 1 if ctx.smoke else 3)
    calls0 = s["on"][0]["shim_calls"]
    finder_est = calls0["finder"] * stats.median([r["finder_call_us"] for r in s["on"]]) / 1000
    if added:
        med_added = stats.median(added)
        add_imports = stats.median([a for (_m, a, _l), _r in attributions])
        rest = med_added - add_imports - finder_est
        why = (f"imports only the shim brings {add_imports:.1f} ms ({_why_added(attributions)}); "
               f"the module watcher in front of the {calls0['finder']} imports before it leaves "
               f"{finder_est:.1f} ms; the rest, {rest:.1f} ms, is work that is not an import: "
               f"reading Axolotl's version"
               + (f" (≈{stats.median([m[0] for m in meta_ms]):.1f} ms in a fresh process)"
                  if meta_ms else "")
               + ", watching the modules, wrapping the targets")
        sec.figures.append(stats.Figure(
            "2c", "Activation, added cost (2b minus imports Axolotl makes anyway)", "ms", added,
            target="< 5 ms", verdict=_verdict(med_added, 5.0, "ms", why)))
    present = [k for k in SCENARIOS if wall[k]]
    named = [(k, w_on if k == "on" else wall[k]) for k in present]
    sec.header, sec.rows = stats.scenario_rows(named, w_off, digits=3)
    sec.rows = [["**whole process, s**"] + [""] * (len(sec.header) - 1)] + sec.rows
    _h, rows2 = stats.scenario_rows([(k, imp[k]) for k in present], imp["off"], digits=3)
    sec.rows += [["**in-process `import` statement only, s**"] + [""] * (len(sec.header) - 1)]
    sec.rows += rows2
    # Breakdown of the shim's own time.
    parts = {k: [r["shim_ms"][k] for r in s["on"]] for k in ("trigger", "hooks", "finder")}
    calls = s["on"][0]["shim_calls"]
    per_call = stats.median([r["finder_call_us"] for r in s["on"]])
    per_call_timed = stats.median([r["finder_timed_call_us"] for r in s["on"]])
    finder_est = calls["finder"] * per_call / 1000
    sec.notes.append(
        "The shim's own time (2b), medians over the `on` processes: trigger (patcher import, "
        f"wrapt import, version check, watching the modules) {stats.median(parts['trigger']):.2f} ms; "
        f"post-import hooks (wrapping {len(s['on'][0]['hooks'])} modules' targets, importing the "
        f"wrappers module and its needs) {stats.median(parts['hooks']):.2f} ms; the module "
        f"watcher, first in sys.meta_path until the last target module is imported: {calls['finder']} calls × "
        f"{per_call:.2f} µs = {finder_est:.2f} ms (one call measured in a loop after the import; "
        f"with the benchmark's timer around it a call costs {per_call_timed:.2f} µs, which is why "
        f"the timed sum, {stats.median(parts['finder']):.2f} ms, is not used).")
    hooks = s["on"][0]["hooks"]
    if hooks:
        sec.notes.append("Post-import hooks in one process: " + "; ".join(
            f"`{h['module']}` {h['ms']:.2f} ms ({h['new_modules']} modules imported)"
            for h in hooks))
    if attributions:
        (moved, add_imp, top), _r = attributions[0]
        sec.notes.append(
            f"Attribution (`-X importtime`, {len(attributions)} run(s)): the shim's windows "
            f"imported {len(_r['shim_loaded'])} modules; {moved:.1f} ms of their import time is "
            "for modules an `off` process imports too (moved earlier, not added), "
            f"{add_imp:.1f} ms for modules only the shim brings. Largest of those: " + ", ".join(
                f"`{n}` {ms:.2f} ms" for n, ms in top[:8]) + ".")
        sec.notes.append(f"Moved import time per attribution run (ms): "
                         f"{', '.join(f'{m:.1f}' for m in moved_ms)}; 2c = 2b of the same "
                         "run minus that.")
        add_imports = stats.median([a for (_m, a, _l), _r in attributions])
        rest = stats.median(added) - add_imports - finder_est
        sec.notes.append(
            f"2c in parts (medians): imports only the shim brings {add_imports:.1f} ms; the "
            f"module watcher on later imports {finder_est:.1f} ms; the rest, {rest:.1f} ms, is work that "
            "is not an import: reading Axolotl's version (from the name of its `.dist-info` "
            "folder), watching the modules, wrapping the targets.")
    if meta_ms:
        sec.notes.append(
            f"Reading Axolotl's version in a fresh process of this venv (median of "
            f"{len(meta_ms)}): the shim's `versions.axolotl_version()` "
            f"{stats.median([m[0] for m in meta_ms]):.2f} ms; `importlib.metadata.version"
            f"('axolotl')`, which it used before, {stats.median([m[1] for m in meta_ms]):.2f} ms "
            "(the import of `importlib.metadata` itself excluded).")
    patched = s["on"][0].get("patched")
    sec.notes.append(f"Targets wrapped in the `on` processes: {patched}.")
    if any(r["armed"] for r in s["off"]):
        sec.notes.append("**Warning:** an `off` process had the trigger armed.")
    if data["failures"]:
        sec.notes.append(f"Failed processes (left out): {data['failures']}")
    return sec


def _metadata_version_ms(ctx, n: int) -> list[tuple[float, float]]:
    """(the shim's version lookup, importlib.metadata's) in ms, one fresh process each."""
    import subprocess

    code = ("import time, importlib.metadata as m\n"
            "from swanlab_autopatch import versions\n"
            "t = time.perf_counter(); versions.axolotl_version(); t1 = time.perf_counter()\n"
            "m.version('axolotl'); t2 = time.perf_counter()\n"
            "print((t1 - t) * 1000, (t2 - t1) * 1000)")
    out = []
    for _ in range(n):
        proc = subprocess.run([ctx.ax_python, "-c", code], capture_output=True, text=True,
                              env=ctx.ax_env({"SWANLAB_AUTOPATCH": "0"}), timeout=120)
        try:
            ours, meta = proc.stdout.strip().splitlines()[-1].split()
            out.append((float(ours), float(meta)))
        except (ValueError, IndexError):
            pass
    return out


def _verdict(value: float, limit: float, unit: str, why: str) -> str:
    if value < limit:
        return f"met ({why})" if why else "met"
    return f"**missed** by {value - limit:.2f} {unit}: {why}"


def _why_added(attributions: list) -> str:
    tops = {}
    for (_m, _a, top), _r in attributions:
        for name, ms in top[:3]:
            tops[name] = max(tops.get(name, 0.0), ms)
    big = sorted(tops.items(), key=lambda x: -x[1])[:3]
    return "largest: " + ", ".join(f"`{n}` {ms:.1f} ms" for n, ms in big)


def _method(data: dict) -> str:
    return (
        f"Processes in the axolotl-0.19.0 venv, each running `import axolotl.cli.config, "
        f"axolotl.core.builders` and then the load_cfg loop of measurement 3. Scenarios: *on* "
        "(shim armed, YAML with `swanlab_project`), *off* (`SWANLAB_AUTOPATCH=0`), *on, no keys* "
        f"(shim armed, YAML without swanlab keys); {'one untimed warm-up process, then ' if data['warmup'] else ''}"
        f"{data['rounds']} timed round(s), processes round-robin with a rotating start. "
        "**2a** is the wall time from the parent's spawn to the end of the imports. **2b** is "
        "timed inside the `on` processes with `perf_counter`: the trigger finder "
        "(`AxolotlTrigger.find_spec`: importing the patcher and wrapt, reading Axolotl's "
        "version, watching the target modules), each post-import hook (wrapping the targets, "
        "importing the wrappers module and what it needs) and every call of the module "
        "watcher, which sits in front of every import until the last target module is "
        "imported and then leaves `sys.meta_path`; nested calls count once. It is an "
        "upper bound, because the trigger fires at the very first `import axolotl`, before "
        "Axolotl has imported the standard-library modules it needs (logging, dataclasses, "
        "inspect, pydantic…), so the shim pays for their import and Axolotl then finds them "
        "loaded. **2c** removes that: extra `on` processes under `-X importtime` give the self "
        "import time of every module the shim's windows loaded; the modules that an *off* "
        "process also loads are moved, not added, and their time is subtracted from that "
        "run's 2b. (Added relative to these two imports: a whole `axolotl train` may import "
        "some of the remaining modules later anyway, so 2c is itself on the high side.)")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        sys.exit(child(sys.argv[2:]))
    sys.exit("run benchmarks/run.py (this module is one of its measurements)")
