"""8. Per-step cost of tracking, seen inside one training: tracking switched on and off in
alternating blocks of steps (a same-process A/B), per-thread CPU time, the time inside the
tracking callback's ``on_log``, console capture and ``on_train_begin``.

Why not wall time across trainings: on the shared 2-core benchmark machine the median step of
two untracked trainings moves by more than the whole cost of tracking (10 -> 16 ms between
sessions). Blocks of ~half a second, alternating inside one process, see the same machine
state, the same data and the same memory layout; the difference between neighbouring blocks is
what tracking adds.

Variants (``axolotl train cfg.yaml --launcher python`` through tools/harness.py, axolotl-0.19.0
venv, the tiny Llama, ``logging_steps: 1``, ``OMP_NUM_THREADS=1``):
    untracked   no swanlab keys; the blocks are switched the same way but there is nothing to
                switch: an A/A test, the method's own noise
    sidecar     this package, default (the SwanLab run in a sidecar process), alerts on (the
                default) and two notification channels (Slack, Discord) to a local webhook
    inprocess   this package with ``SWANLAB_AUTOPATCH_SIDECAR=0`` (the run in the training
                process, the old design)
    axolotl     Axolotl's own plugin (``plugins: [axolotl.integrations.swanlab.SwanLabPlugin]``,
                ``use_swanlab: true``), with ``SWANLAB_AUTOPATCH=0``
every tracked one in ``swanlab_mode: offline``, each trained twice: blocks on-first and
off-first. The full run also trains the diagnostic ``sidecar-sink`` (everything on; "off" sends
the sidecar's pipe to /dev/null); ``BENCH_STEP_DIAGNOSTICS=all`` adds ``sidecar-on_log`` and
``sidecar-console`` (one part switched at a time). Smoke mode: one training per variant, at the
same time, 4 blocks each (~1 min; nothing is judged). ``BENCH_STEP_BLOCKS`` sets the number of
blocks per training of the full run (default 48).

The switch is a benchmark-only probe, a ``sitecustomize.py`` on ``PYTHONPATH`` that registers
wrapt post-import hooks (the package's code is not modified); see ``_method`` for what "off"
means per variant and its limits.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

KEY = "8"
VARIANTS = ["untracked", "sidecar", "inprocess", "axolotl"]
# Diagnostics of the sidecar variant (full run only): what one part of tracking adds. The full
# run trains "sidecar-sink"; BENCH_STEP_DIAGNOSTICS=all (or a comma-separated list) trains more
# (each alone stays within this machine's noise of ~±0.3 ms per step; see the method).
DIAGNOSTICS = {"sidecar-on_log": "on_log", "sidecar-console": "console", "sidecar-sink": "sink",
               "sidecar-watch": "watch"}
# sidecar-watch: `swanlab_watch: all` at its default interval (logging_steps: 1 here, so every
# step is measured); only the watch is switched (issue 24's row, target < 2% per step).
DEFAULT_DIAGNOSTICS = ["sidecar-sink", "sidecar-watch"]
LABELS = {"untracked": "untracked (A/A)",
          "sidecar": "this package, sidecar (default; alerts on, two channels)",
          "inprocess": "this package, in-process (`SWANLAB_AUTOPATCH_SIDECAR=0`)",
          "axolotl": "Axolotl's plugin",
          "sidecar-on_log": "sidecar, only `on_log` switched (console capture on throughout)",
          "sidecar-console": "sidecar, only console capture switched (`on_log` runs throughout)",
          "sidecar-sink": "sidecar, everything on; *off* = the pipe goes to /dev/null (the "
                          "sidecar receives nothing)",
          "sidecar-watch": "sidecar with `swanlab_watch: all` at the default interval (every "
                           "step here), only the watch switched (its norms skipped when off)"}
# Per training in the full run (24 on/off pairs); an epoch of the tiny set per block.
# BENCH_STEP_BLOCKS raises it when the machine's noise (the A/A row) is too wide for a verdict.
BLOCKS = int(os.environ.get("BENCH_STEP_BLOCKS") or 48)
MAX_STEPS = 5000  # the probe stops the training after its last block; this only bounds it


def _diagnostics() -> list[str]:
    chosen = os.environ.get("BENCH_STEP_DIAGNOSTICS", "").strip()
    if chosen == "all":
        return list(DIAGNOSTICS)
    if chosen:
        return [d for d in (x.strip() for x in chosen.split(",")) if d in DIAGNOSTICS]
    return list(DEFAULT_DIAGNOSTICS)


PROBE = r'''
"""Benchmark probe (benchmarks/step_cost.py): tracking on/off in blocks of steps, per-thread CPU.

Blocks are epochs of the tiny dataset (the first step of every epoch carries the dataloader's
restart, so every block carries exactly one). Plan from BENCH_STEP_PLAN (JSON): warm (epochs
before the first block), blocks, first ("on" or "off"), ready_wait (extra epochs to wait for the
sidecar's run to be up), cap (steps), switch (all, on_log, console or sink). The record goes to
BENCH_STEP_OUT (JSON) when training ends, before any tracker's on_train_end.
BENCH_STEP_DETAIL=1 also times the functions under our on_log (development; it adds overhead).
"""
import json
import os
import sys
import threading
import time

_OUT = os.environ.get("BENCH_STEP_OUT")
_pc = time.perf_counter
_tt = time.thread_time


class _P:
    on = True           # tracking state of the current block
    phase = "warm"      # warm -> blocks -> end
    step = 0
    epochs = 0          # epoch starts seen
    new_epoch = False
    block = -1
    tid = None
    steps = []          # (perf_counter at on_step_begin, after the probe's work, block or -1,
                        #  thread_time at the same two points)
    marks = []          # block boundaries: per-thread CPU and the counters below
    onlog = []          # (step, wall s, thread CPU s, GC s, on?) of each tracker on_log call
    onlog_skipped = 0
    watch = []          # (step, wall s, thread CPU s, on?) of each tracker on_pre_optimizer_step
    handler_log = []    # (step, wall s) of all callbacks' on_log together
    gc_s = 0.0          # time in the garbage collector (gc.callbacks), all threads
    gc_n = 0
    gc_t0 = None
    sink = None         # "sink" mode: (the pipe's fd, a copy of it, /dev/null)
    sink_backlog = 0    # switches made while the pipe had a backlog
    timed = {}          # name -> [seconds]
    captures = []       # (stream name, stream, original write, capture's write)
    console = {}        # stream name -> slot
    console_mode = {}
    switches = []
    ready = None        # sidecar ready: (step, seconds after launch)
    in_launch = False
    comm = {}
    emitted = False
    callbacks = []
    plan = {}


def _plan():
    if not _P.plan:
        _P.plan = json.loads(os.environ.get("BENCH_STEP_PLAN") or "{}")
    return _P.plan


def _record(name, seconds):
    _P.timed.setdefault(name, []).append(seconds)


def _timed(name):
    def wrapper(wrapped, instance, args, kwargs):
        t0 = _pc()
        try:
            return wrapped(*args, **kwargs)
        finally:
            _record(name, _pc() - t0)
    return wrapper


# -- the switch ---------------------------------------------------------------------------

def _on_log_switch(wrapped, instance, args, kwargs):
    """The tracker's on_log: skipped in "off" blocks (unless only the console or the sink is
    switched), timed whenever it runs, with the garbage collector's time inside it."""
    if not _P.on and _mode() in ("all", "on_log"):
        _P.onlog_skipped += 1
        return None
    t0, c0, g0 = _pc(), _tt(), _P.gc_s
    try:
        return wrapped(*args, **kwargs)
    finally:
        _P.onlog.append((_P.step, _pc() - t0, _tt() - c0, _P.gc_s - g0, _P.on))


def _mode():
    return _plan().get("switch", "all")


def _watch_switch(wrapped, instance, args, kwargs):
    """swanlab_watch (the tracker's on_pre_optimizer_step): skipped in "off" blocks of the
    "watch" switch, timed whenever it runs."""
    if not _P.on and _mode() == "watch":
        return None
    t0, c0 = _pc(), _tt()
    try:
        return wrapped(*args, **kwargs)
    finally:
        _P.watch.append((_P.step, _pc() - t0, _tt() - c0, _P.on))


def _gc_callback(phase, info):
    if phase == "start":
        _P.gc_t0 = _pc()
    elif _P.gc_t0 is not None:
        _P.gc_s += _pc() - _P.gc_t0
        _P.gc_n += 1
        _P.gc_t0 = None


class _Slot:
    """sys.stdout/sys.stderr's write during the blocks: the write chain as installed, every
    call timed (in both states)."""

    def __init__(self, stream, current):
        self.stream, self.current = stream, current
        self.inner = stream.write
        self.seconds = 0.0
        self.writes = 0

    def write(self, data):
        t0 = _pc()
        try:
            return self.inner(data)
        finally:
            self.seconds += _pc() - t0
            self.writes += 1


def _cell_holding(func, target, depth=0):
    """The closure cell of ``func`` (or of a wrapper it calls, a few levels down) that holds
    ``target``: how a wrapper installed later (wandb's console capture, imported by Axolotl,
    wraps every write) refers to the capture below it."""
    if depth > 4:
        return None
    for cell in getattr(func, "__closure__", None) or ():
        try:
            value = cell.cell_contents
        except ValueError:
            continue
        if value is target:
            return cell
        if callable(value) and getattr(value, "__closure__", None):
            found = _cell_holding(value, target, depth + 1)
            if found is not None:
                return found
    return None


class _Switch:
    """Where the tracker's console capture sits in a stream's write chain, and how to take it
    out of the chain ("off": the write it wrapped is called instead) and put it back."""

    def __init__(self, slot, wrapper, original, cell):
        self.slot, self.wrapper, self.original, self.cell = slot, wrapper, original, cell

    def set(self, on):
        fn = self.wrapper if on else self.original
        if self.cell is None:
            self.slot.inner = fn
        else:
            self.cell.cell_contents = fn


def _attach_console():
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name, None)
        if stream is None:
            continue
        try:
            current = vars(stream).get("write")
        except TypeError:
            _P.console_mode[name] = "no instance dict: not switched, not timed"
            continue
        slot = _Slot(stream, current)
        found = [c for c in _P.captures if c[1] is stream]
        if not found:
            who = "none" if current is None else (
                f"{getattr(current, '__module__', '?')}."
                f"{getattr(current, '__qualname__', type(current).__name__)}")
            _P.console_mode[name] = f"no tracker capture (top of the chain: {who})"
        else:
            _name, _stream, original, wrapper, kind = found[-1]
            if current is wrapper:
                _P.switches.append(_Switch(slot, wrapper, original, None))
                _P.console_mode[name] = f"switched ({kind}, top of the chain)"
            else:
                cell = _cell_holding(current, wrapper)
                if cell is not None:
                    _P.switches.append(_Switch(slot, wrapper, original, cell))
                    who = getattr(current, "__qualname__", "?")
                    _P.console_mode[name] = f"switched ({kind}, under {who})"
                else:
                    _P.console_mode[name] = f"{kind} not found in the chain: not switched"
        try:
            stream.write = slot.write
        except (AttributeError, TypeError):
            _P.console_mode[name] = _P.console_mode.get(name, "") + "; not timed"
            continue
        _P.console[name] = slot


def _set_state(on):
    """Switch tracking for the next block; what is switched depends on the plan's "switch":
    all (on_log and console capture), on_log, console, or sink (both stay on; "off" sends the
    sidecar's pipe to /dev/null: the training does the same work, the sidecar gets nothing)."""
    _P.on = on
    mode = _mode()
    for switch in _P.switches:
        switch.set(on if mode in ("all", "console") else True)
    if mode == "sink":
        car = _sidecar()
        if car is not None and _P.sink is None and not on:
            fd = car.writer.fd
            _P.sink = (fd, os.dup(fd), os.open(os.devnull, os.O_WRONLY))
        if _P.sink is not None:
            fd, saved, null = _P.sink
            if car is not None and car.writer.pending:
                _P.sink_backlog += 1
            else:
                os.dup2(saved if on else null, fd)


def _detach_console():
    """Put back what the tracker installed (before its own on_train_end uninstalls it)."""
    _set_state(True)
    if _P.sink is not None:
        fd, saved, null = _P.sink
        _P.sink = None
        os.dup2(saved, fd)
        os.close(saved)
        os.close(null)
    for name, slot in list(_P.console.items()):
        try:
            if vars(slot.stream).get("write") == slot.write:
                if slot.current is None:
                    del slot.stream.write
                else:
                    slot.stream.write = slot.current
        except Exception:
            pass
    _P.console.clear()


def _record_capture(kind):
    def after_install(wrapped, instance, args, kwargs):
        result = wrapped(*args, **kwargs)
        try:
            if kind == "this package's ConsoleTee":
                for stream, _own, original, wrapper in instance._installed:
                    name = "stdout" if stream is sys.stdout else "stderr"
                    _P.captures.append((name, stream, original, wrapper, kind))
            else:  # SwanLab's StreamCapture: one stream each
                name = instance._stream_name
                stream = getattr(sys, name)
                _P.captures.append((name, stream, instance._original_write,
                                    vars(stream).get("write"), kind))
        except Exception as exc:
            _record(f"capture record failed: {exc!r}", 0.0)
        return result
    return after_install


# -- threads ------------------------------------------------------------------------------

def _owner(th):
    """The executor a ThreadPoolExecutor worker serves (its first argument is a weak
    reference to it)."""
    try:
        ref = (getattr(th, "_args", None) or (None,))[0]
        owner = ref() if callable(ref) and type(ref).__name__ == "ReferenceType" else None
        return type(owner).__module__ if owner is not None else ""
    except Exception:
        return ""


def _stack(th):
    frame = sys._current_frames().get(th.ident)
    files = []
    while frame is not None and len(files) < 40:
        files.append(f"{frame.f_code.co_filename}:{frame.f_code.co_name}")
        frame = frame.f_back
    return files


_BARRIERS = ("/torch/", "/transformers/", "/accelerate/", "/axolotl/", "/datasets/", "/tqdm/",
             "/swanlab_autopatch/shim/", "/swanlab_autopatch/tracking/trainer_hooks.py")


def _origin_of_start():
    """Whose code starts a thread: the nearest frame from swanlab or from this package's
    tracking code decides, looking out from Thread.start past the standard library and the
    libraries SwanLab uses (watchdog's threads, for SwanLab's file watcher). The training's own
    libraries are a barrier: the whole training runs inside this package's pass-through
    wrappers, so a DataLoader's threads must not count as ours. Else the starting thread's own
    origin (a thread started by a SwanLab thread is SwanLab's)."""
    frame = sys._getframe(2)
    for _ in range(25):
        if frame is None:
            break
        fn = frame.f_code.co_filename
        if any(b in fn for b in _BARRIERS):
            break
        if "/swanlab_autopatch/" in fn:
            return "this package"
        if "/swanlab/" in fn:
            return "swanlab"
        frame = frame.f_back
    return getattr(threading.current_thread(), "_bench_origin", "")


def _hook_thread_start():
    original = threading.Thread.start

    def start(self, *args, **kwargs):
        try:
            self._bench_origin = _origin_of_start()
            frame, where = sys._getframe(1), []
            while frame is not None and len(where) < 12:
                where.append(f"{frame.f_code.co_filename.split('site-packages/')[-1]}:"
                             f"{frame.f_code.co_name}")
                frame = frame.f_back
            self._bench_started_by = where
        except Exception:
            pass
        return original(self, *args, **kwargs)

    threading.Thread.start = start


def _kind(th):
    """this package / swanlab / other: from who started the thread (see _origin_of_start),
    its name, class, target, the executor it serves, or the code on its stack."""
    origin = getattr(th, "_bench_origin", "")
    if origin:
        return origin
    name = (th.name or "").lower()
    target = getattr(th, "_target", None)
    where = " ".join([type(th).__module__ or "", getattr(target, "__module__", "") or "",
                      _owner(th)])
    stack = " ".join(_stack(th))
    if "swanlab_autopatch" in where or name.startswith("swanlab-autopatch") or \
            "/swanlab_autopatch/" in stack:
        return "this package"
    if "swanlab" in name or "swanlab" in where or "/swanlab/" in stack:
        return "swanlab"
    return "other"


def _describe(th):
    target = getattr(th, "_target", None)
    where = "" if target is None else \
        f"{getattr(target, '__module__', '')}.{getattr(target, '__qualname__', '')}"
    stack = [f.split("site-packages/")[-1] for f in _stack(th)]
    return {"class": f"{type(th).__module__}.{type(th).__qualname__}", "target": where,
            "owner": _owner(th), "origin": getattr(th, "_bench_origin", ""),
            "started_by": getattr(th, "_bench_started_by", []),
            "stack": stack[:3] + (["..."] + stack[3:][-2:] if len(stack) > 3 else [])}


def _read(path):
    with open(path, "rb") as fh:
        return fh.read().decode("utf-8", "replace")


def _ticks(stat):
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def _sidecar():
    run = sys.modules.get("swanlab_autopatch.tracking.run")
    backend = getattr(run, "_backend", None) if run else None
    return backend if type(backend).__name__ == "HelperProcess" else None


def _sample(label):
    t = _pc()
    py = {th.native_id: th for th in threading.enumerate()}
    threads = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            ns = int(_read(f"/proc/self/task/{tid}/schedstat").split()[0])
            ticks = _ticks(_read(f"/proc/self/task/{tid}/stat"))
        except (OSError, ValueError, IndexError):
            continue
        t_id = int(tid)
        if t_id not in _P.comm:
            comm = ""
            try:
                comm = _read(f"/proc/self/task/{tid}/comm").strip()
            except OSError:
                pass
            th = py.get(t_id)
            if t_id == _P.tid:
                kind, pyname = "training", th.name if th else ""
            elif th is not None:
                kind, pyname = _kind(th), th.name
            else:
                kind, pyname = "other", ""
            _P.comm[t_id] = {"comm": comm, "py": pyname, "kind": kind}
            if th is not None and t_id != _P.tid:
                try:
                    _P.comm[t_id].update(_describe(th))
                except Exception:
                    pass
        threads[t_id] = [ns, ticks]
    car = _sidecar()
    side = None
    if car is not None:
        pid = car.proc.pid
        try:
            ns = 0
            for tid in os.listdir(f"/proc/{pid}/task"):
                try:
                    ns += int(_read(f"/proc/{pid}/task/{tid}/schedstat").split()[0])
                except (OSError, ValueError):
                    pass
            side = [ns, _ticks(_read(f"/proc/{pid}/stat"))]
        except (OSError, ValueError, IndexError):
            side = None
    console = {n: [s.seconds, s.writes] for n, s in _P.console.items()}
    _P.marks.append({"label": label, "step": _P.step, "block": _P.block, "on": _P.on,
                     "pc": t, "threads": threads, "sidecar": side, "console": console,
                     "gc": [_P.gc_s, _P.gc_n],
                     "onlog_n": len(_P.onlog), "cost": _pc() - t})


def _ready():
    car = _sidecar()
    if car is None:
        return True
    if car.info is not None and _P.ready is None:
        _P.ready = (_P.step, time.monotonic() - car.started_at)
    return car.info is not None


def _boundary(control):
    plan = _plan()
    if _P.phase == "warm":
        enough = _P.epochs > plan.get("warm", 1)
        waited = _P.epochs > plan.get("warm", 1) + plan.get("ready_wait", 0)
        if not enough or (not _ready() and not waited):
            return
        _P.phase = "blocks"
    _P.block += 1
    if _P.block >= plan.get("blocks", 2):
        _P.phase = "end"
        _set_state(True)
        _sample("end")
        control.should_training_stop = True
        return
    first = plan.get("first", "on") == "on"
    _set_state(first if _P.block % 2 == 0 else not first)
    _sample("block")


def _emit():
    if _P.emitted or not _OUT:
        return
    _P.emitted = True
    _detach_console()
    py_threads = [{"name": th.name, "kind": _kind(th), "native_id": th.native_id,
                   "daemon": th.daemon} for th in threading.enumerate()]
    car = _sidecar()
    record = {
        "plan": _plan(), "tid": _P.tid, "steps": _P.steps, "marks": _P.marks,
        "threads": {str(k): v for k, v in _P.comm.items()}, "py_threads": py_threads,
        "onlog": _P.onlog, "onlog_skipped": _P.onlog_skipped, "timed": _P.timed,
        "watch": _P.watch,
        "handler_log": _P.handler_log, "sink_backlog": _P.sink_backlog,
        "console_mode": _P.console_mode, "ready": _P.ready, "callbacks": _P.callbacks,
        "swanlab_imported": "swanlab" in sys.modules,
        "swanlab_modules": sorted(m for m in sys.modules if m == "swanlab" or
                                  m.startswith("swanlab.")),
        "backend": type(getattr(sys.modules.get("swanlab_autopatch.tracking.run"),
                                "_backend", None)).__name__,
        "sidecar_pid": car.proc.pid if car is not None else None,
        "phase": _P.phase,
    }
    with open(_OUT, "w", encoding="utf-8") as fh:
        json.dump(record, fh)


def _install():
    import wrapt

    _hook_thread_start()
    import gc
    gc.callbacks.append(_gc_callback)

    def on_trainer(mod):
        from transformers import TrainerCallback

        class BlockProbe(TrainerCallback):
            def on_epoch_begin(self, args, state, control, **kw):
                _P.epochs += 1
                _P.new_epoch = True

            def on_step_begin(self, args, state, control, **kw):
                ta, ca = _pc(), _tt()
                _P.step += 1
                if _P.tid is None:
                    _P.tid = threading.get_native_id()
                    _attach_console()
                if _P.ready is None:
                    _ready()
                if _P.new_epoch:
                    _P.new_epoch = False
                    _boundary(control)
                if _P.step >= _plan().get("cap", 100000):
                    control.should_training_stop = True
                _P.steps.append((ta, _pc(), _P.block if _P.phase == "blocks" else -1, ca,
                                 _tt()))

        def init_wrapper(wrapped, instance, args, kwargs):
            result = wrapped(*args, **kwargs)
            if not getattr(instance, "_bench_blocks", False):
                instance._bench_blocks = True
                instance.add_callback(BlockProbe())
                _P.callbacks = [type(cb).__name__ for cb in instance.callback_handler.callbacks]
            return result

        wrapt.wrap_function_wrapper(mod, "Trainer.__init__", init_wrapper)

    def on_handler(mod):
        def train_end(wrapped, instance, args, kwargs):
            try:
                _emit()  # before any tracker's on_train_end (which ends its run)
            except Exception as exc:
                sys.stderr.write(f"[bench probe] emit failed: {exc!r}\n")
            return wrapped(*args, **kwargs)

        def on_log(wrapped, instance, args, kwargs):
            t0 = _pc()
            try:
                return wrapped(*args, **kwargs)
            finally:
                _P.handler_log.append((_P.step, _pc() - t0))

        wrapt.wrap_function_wrapper(mod, "CallbackHandler.on_train_end", train_end)
        wrapt.wrap_function_wrapper(mod, "CallbackHandler.on_log", on_log)
        wrapt.wrap_function_wrapper(mod, "CallbackHandler.on_train_begin",
                                    _timed("all callbacks' on_train_begin"))

    def on_ours(mod):
        wrapt.wrap_function_wrapper(mod, "SwanLabAutopatchCallback.on_log", _on_log_switch)
        if hasattr(mod.SwanLabAutopatchCallback, "on_pre_optimizer_step"):
            wrapt.wrap_function_wrapper(mod, "SwanLabAutopatchCallback.on_pre_optimizer_step",
                                        _watch_switch)
        wrapt.wrap_function_wrapper(mod, "SwanLabAutopatchCallback.on_train_begin",
                                    _timed("tracker on_train_begin"))
        wrapt.wrap_function_wrapper(mod, "SwanLabAutopatchCallback._log_texts",
                                    _timed("our _log_texts (config texts)"))

    def on_run(mod):
        wrapt.wrap_function_wrapper(mod, "start", _timed("our run.start"))

    def on_run_config(mod):
        wrapt.wrap_function_wrapper(mod, "build", _timed("our run_config.build"))

    def on_sidecar(mod):
        def launch(wrapped, instance, args, kwargs):
            _P.in_launch = True
            t0 = _pc()
            try:
                return wrapped(*args, **kwargs)
            finally:
                _P.in_launch = False
                _record("our HelperProcess.launch", _pc() - t0)

        def popen(wrapped, instance, args, kwargs):
            if not _P.in_launch:
                return wrapped(*args, **kwargs)
            t0 = _pc()
            try:
                return wrapped(*args, **kwargs)
            finally:
                _record("subprocess.Popen of the sidecar", _pc() - t0)

        wrapt.wrap_function_wrapper(mod, "HelperProcess.launch", launch)
        wrapt.wrap_function_wrapper(mod, "HelperProcess._offer_remote_run",
                                    _timed("our HelperProcess._offer_remote_run"))
        import subprocess
        wrapt.wrap_function_wrapper(subprocess, "Popen.__init__", popen)

    def on_console(mod):
        wrapt.wrap_function_wrapper(mod, "ConsoleTee.install",
                                    _record_capture("this package's ConsoleTee"))

    def on_capture(mod):
        if hasattr(mod, "StreamCapture"):
            wrapt.wrap_function_wrapper(mod, "StreamCapture.install",
                                        _record_capture("SwanLab's StreamCapture"))

    def on_axolotl_cb(mod):
        if hasattr(mod, "CustomSwanLabCallback"):
            wrapt.wrap_function_wrapper(mod, "CustomSwanLabCallback.on_log", _on_log_switch)
            wrapt.wrap_function_wrapper(mod, "CustomSwanLabCallback.on_train_begin",
                                        _timed("tracker on_train_begin"))
        if hasattr(mod, "SaveAxolotlConfigtoSwanLabCallback"):
            wrapt.wrap_function_wrapper(mod, "SaveAxolotlConfigtoSwanLabCallback.on_train_begin",
                                        _timed("Axolotl's config-file callback on_train_begin"))

    def on_plugin(mod):
        if hasattr(mod, "SwanLabPlugin"):
            wrapt.wrap_function_wrapper(mod, "SwanLabPlugin.pre_model_load",
                                        _timed("Axolotl SwanLabPlugin.pre_model_load"))

    def on_swanlab(mod):
        wrapt.wrap_function_wrapper(mod, "init", _timed("swanlab.init"))

    if os.environ.get("BENCH_STEP_DETAIL") == "1":  # a breakdown of our on_log (development)
        def detail(module, *names):
            def hook(mod):
                for name in names:
                    wrapt.wrap_function_wrapper(mod, name, _timed(f"detail {module}.{name}"))
            wrapt.register_post_import_hook(hook, module)

        detail("swanlab_autopatch.tracking.run", "active", "log_logs")
        detail("swanlab_autopatch.tracking.helper_process", "HelperProcess.log_logs",
               "HelperProcess._emit", "HelperProcess._write")
        detail("swanlab_autopatch.channel", "packed_metrics", "Writer.send")

    wrapt.register_post_import_hook(on_trainer, "transformers.trainer")
    wrapt.register_post_import_hook(on_handler, "transformers.trainer_callback")
    wrapt.register_post_import_hook(on_ours, "swanlab_autopatch.tracking.callback")
    wrapt.register_post_import_hook(on_run, "swanlab_autopatch.tracking.run")
    wrapt.register_post_import_hook(on_run_config, "swanlab_autopatch.tracking.run_config")
    wrapt.register_post_import_hook(on_sidecar, "swanlab_autopatch.tracking.helper_process")
    wrapt.register_post_import_hook(on_console, "swanlab_autopatch.tracking.console")
    wrapt.register_post_import_hook(on_capture,
                                    "swanlab.sdk.internal.run.components.terminal.capture")
    wrapt.register_post_import_hook(on_axolotl_cb, "axolotl.utils.callbacks.swanlab")
    wrapt.register_post_import_hook(on_plugin, "axolotl.integrations.swanlab.plugins")
    wrapt.register_post_import_hook(on_swanlab, "swanlab")


# Not in the sidecar (it inherits PYTHONPATH): only the training process is measured.
if _OUT and "swanlab_autopatch.helper" not in " ".join(getattr(sys, "orig_argv", [])):
    try:
        _install()
    except Exception as exc:  # never break the training
        sys.stderr.write(f"[bench probe] not installed: {exc!r}\n")
'''


# -- the trainings ----------------------------------------------------------------------------


def _plan(smoke: bool, first: str, variant: str = "") -> dict:
    switch = DIAGNOSTICS.get(variant, "all")
    if smoke:
        return {"warm": 1, "blocks": 4, "first": first, "ready_wait": 0, "cap": 400,
                "switch": switch}
    return {"warm": 1, "blocks": BLOCKS, "first": first, "ready_wait": 4, "cap": MAX_STEPS,
            "switch": switch}


def _base(variant: str) -> str:
    return "sidecar" if variant in DIAGNOSTICS else variant



_HOOK: list = []


def _webhook() -> str:
    """A local webhook answering 200 to everything, for the two channels of the sidecar
    variants (started once, in this process, for the whole benchmark)."""
    if not _HOOK:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Ok(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        _HOOK.append(f"http://127.0.0.1:{server.server_address[1]}")
    return _HOOK[0]


def _config(ctx, variant: str, run_dir: Path) -> dict:
    import harness

    extra: dict = {"max_steps": MAX_STEPS, "save_steps": MAX_STEPS, "logging_steps": 1}
    if not ctx.smoke:  # one tokenized dataset for every training (the first one prepares it)
        extra["dataset_prepared_path"] = str(ctx.work / "step-cost" / "prepared")
    if variant == "sidecar-watch":
        extra["swanlab_watch"] = "all"  # its default interval: logging_steps
    variant = _base(variant)
    if variant in ("sidecar", "inprocess"):
        extra.update(swanlab_project="bench-step-cost", swanlab_mode="offline")
    if variant == "sidecar":  # alerts are on by default; two channels as a user would set
        hook = _webhook()  # (issue 23: alerts cost the training nothing measurable)
        extra.update(swanlab_slack_webhook_url=f"{hook}/slack/services/T0/B0/bench",
                     swanlab_discord_webhook_url=f"{hook}/discord/api/webhooks/1/bench")
    elif variant == "axolotl":
        extra.update(plugins=["axolotl.integrations.swanlab.SwanLabPlugin"], use_swanlab=True,
                     swanlab_project="bench-step-cost", swanlab_mode="offline")
    return harness.config_for(ctx.assets, run_dir, **extra)


def _env(variant: str, probe_dir: Path, out: Path, plan: dict) -> dict:
    env = {"PYTHONPATH": str(probe_dir), "BENCH_STEP_OUT": str(out),
           "BENCH_STEP_PLAN": json.dumps(plan), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    variant = _base(variant)
    if variant == "inprocess":
        env["SWANLAB_AUTOPATCH_SIDECAR"] = "0"
    elif variant == "axolotl":
        env["SWANLAB_AUTOPATCH"] = "0"
    return env


def _jobs(smoke: bool) -> list[tuple[str, str]]:
    """(variant, first block) per training. Smoke: one training per variant, orders mixed.
    Full: every variant and diagnostic on-first, then every one off-first, the order rotated."""
    if smoke:
        return [("untracked", "off"), ("sidecar", "on"), ("inprocess", "off"), ("axolotl", "on"),
                ("sidecar-watch", "on")]
    every = VARIANTS + _diagnostics()
    out = []
    for r, first in enumerate(("on", "off")):
        k = (r * 3) % len(every)
        out += [(v, first) for v in every[k:] + every[:k]]
    return out


# What one write into a pipe costs the writer, by how the reader waits (no training).
PIPE_COST = r'''
import json, os, pickle, subprocess, sys, time
n = int(sys.argv[1])
frame = pickle.dumps(("log", {f"train/key{i}": float(i) for i in range(12)}, 1), protocol=5)
READERS = {
    "blocking read": "import os, sys\nfd = int(sys.argv[1])\nwhile os.read(fd, 65536): pass",
    "polling every 0.1 s": ("import os, sys, time\nfd = int(sys.argv[1])\n"
                            "os.set_blocking(fd, False)\n"
                            "while True:\n    time.sleep(0.1)\n    try:\n"
                            "        if not os.read(fd, 65536): break\n"
                            "        while os.read(fd, 65536): pass\n"
                            "    except BlockingIOError: pass"),
}


def writes(fd):
    out = []
    for _ in range(n):
        end = time.perf_counter() + 0.005  # a "step" of busy work between writes
        while time.perf_counter() < end:
            pass
        c0 = time.thread_time()
        os.write(fd, frame)
        out.append((time.thread_time() - c0) * 1e6)
    return sorted(out)[len(out) // 2]


result = {}
for name, code in READERS.items():
    r, w = os.pipe()
    child = subprocess.Popen([sys.executable, "-c", code, str(r)], pass_fds=(r,))
    os.close(r)
    time.sleep(0.3)
    result[name] = writes(w)
    os.close(w)
    child.wait(timeout=30)
null = os.open(os.devnull, os.O_WRONLY)
result["/dev/null"] = writes(null)
result["frame_bytes"] = len(frame)
print(json.dumps(result))
'''


def _pipe_costs(ctx) -> Optional[dict]:
    import stats

    try:
        out = stats.check_run([ctx.ax_python, "-c", PIPE_COST, "30" if ctx.smoke else "300"],
                              timeout=120)
        return json.loads(out.stdout.strip().splitlines()[-1])
    except Exception as exc:  # only a note depends on it
        stats.say(f"step cost: the pipe measurement failed: {exc!r}")
        return None


# -- the analysis -----------------------------------------------------------------------------


def _blocks(rec: dict) -> list[dict]:
    """One entry per block: its state, steps, wall time and CPU per step by thread kind."""
    marks = [m for m in rec["marks"] if m["label"] in ("block", "end")]
    kinds = {int(k): v["kind"] for k, v in rec["threads"].items()}
    steps_by_block: dict[int, list[float]] = {}
    cpu_by_block: dict[int, list[float]] = {}
    st = rec["steps"]
    for i in range(len(st) - 1):
        block = st[i][2]
        if block >= 0:  # from after the probe's work at this step to the next step's stamp
            steps_by_block.setdefault(block, []).append(st[i + 1][0] - st[i][1])
            cpu_by_block.setdefault(block, []).append(st[i + 1][3] - st[i][4])
    out = []
    for a, b in zip(marks, marks[1:]):
        durations = steps_by_block.get(a["block"], [])
        n = len(durations)
        if not n:
            continue
        cpu = {"training": 0, "swanlab": 0, "this package": 0, "other": 0}
        ticks = dict(cpu)
        for tid, (ns1, t1) in b["threads"].items():
            ns0, t0 = a["threads"].get(tid, (0, 0))
            kind = kinds.get(int(tid), "other")
            cpu[kind] = cpu.get(kind, 0) + ns1 - ns0
            ticks[kind] = ticks.get(kind, 0) + t1 - t0
        side = None
        if a.get("sidecar") and b.get("sidecar"):
            side = (b["sidecar"][0] - a["sidecar"][0]) / 1e6 / n
        console_s = sum(b["console"].get(k, [0, 0])[0] - a["console"].get(k, [0, 0])[0]
                        for k in b["console"])
        console_n = sum(b["console"].get(k, [0, 0])[1] - a["console"].get(k, [0, 0])[1]
                        for k in b["console"])
        gc_ms = (b["gc"][0] - a["gc"][0]) * 1000 / n if "gc" in a else None
        out.append({
            "block": a["block"], "on": a["on"], "steps": n,
            "wall_ms": sum(durations) / n * 1000,
            "median_ms": _median(durations) * 1000,
            "cpu_median_ms": _median(cpu_by_block.get(a["block"], [])) * 1000,
            "step_ms": [d * 1000 for d in durations],
            "cpu_ms": {k: v / 1e6 / n for k, v in cpu.items()},
            "tick_ms": {k: v * 10.0 / n for k, v in ticks.items()},  # USER_HZ = 100
            "sidecar_ms": side, "console_us": console_s * 1e6 / n, "writes": console_n / n,
            "gc_ms": gc_ms,
        })
    return out


def _median(xs):
    import stats

    return stats.median(xs) if xs else float("nan")


def _pairs(blocks: list[dict], value) -> list[tuple[float, float]]:
    """(on, off) per *on* block: its value and the mean of the *off* blocks on either side of
    it (one side at the ends), ~0.6 s away; comparing with both neighbours cancels a linear
    drift of the machine's speed."""
    out = []
    for i, block in enumerate(blocks):
        if not block["on"]:
            continue
        va = value(block)
        near = [value(blocks[j]) for j in (i - 1, i + 1)
                if 0 <= j < len(blocks) and not blocks[j]["on"]]
        near = [x for x in near if x is not None]
        if va is not None and near:
            out.append((va, sum(near) / len(near)))
    return out


def _paired(pairs: list[tuple[float, float]]):
    import stats

    return stats.paired([p[0] for p in pairs], [p[1] for p in pairs])


def run(ctx) -> "stats.Section":
    import harness
    import stats

    probe_dir = ctx.work / "step-cost-probe"
    probe_dir.mkdir(parents=True, exist_ok=True)
    (probe_dir / "sitecustomize.py").write_text(PROBE)
    jobs = _jobs(ctx.smoke)

    def train(i: int, variant: str, first: str):
        run_dir = ctx.work / "step-cost" / f"{i:02d}-{variant}-{first}"
        run_dir.mkdir(parents=True, exist_ok=True)
        out = run_dir / "probe.json"
        stats.say(f"step cost: training {i + 1}/{len(jobs)}, {variant}, {first}-first "
                  f"(load {stats.loadavg()})")
        res = harness.run_training(
            ctx.ax_venv, "0.19.0", run_dir, _config(ctx, variant, run_dir), launcher="python",
            env_extra=_env(variant, probe_dir, out, _plan(ctx.smoke, first, variant)),
            timeout=900)
        return run_dir, out, res

    done = stats.maybe_parallel([lambda i=i, j=j: train(i, *j) for i, j in enumerate(jobs)],
                                parallel=ctx.smoke)
    recs: dict[str, list[dict]] = {v: [] for v in VARIANTS + list(DIAGNOSTICS)}
    failures = []
    for (variant, first), (run_dir, out, res) in zip(jobs, done):
        if res.returncode != 0 or not out.exists():
            failures.append(f"{variant} {first}-first: exit {res.returncode}"
                            + ("" if out.exists() else ", no probe record"))
            stats.say(res.describe()[-2000:])
            continue
        rec = json.loads(out.read_text())
        rec["first"], rec["process_s"] = first, res.seconds
        rec["blocks_"] = _blocks(rec)
        rec["swanlog"] = sorted(p.name for p in (run_dir / "swanlog").glob("run-*")) \
            if (run_dir / "swanlog").exists() else []
        recs[variant].append(rec)
    if not any(recs.values()) or len(failures) > len(jobs) // 2:
        raise RuntimeError(f"too many trainings failed: {failures}")
    return _section(ctx, recs, failures, _pipe_costs(ctx))


def _collect(rs: list[dict]) -> dict:
    """Everything the figures need for one variant's trainings."""
    import stats

    per_training = [r["blocks_"] for r in rs]
    flat = [b for bl in per_training for b in bl]
    on = [b for b in flat if b["on"]]
    off = [b for b in flat if not b["on"]]

    def pairs(value):
        return [p for bl in per_training for p in _pairs(bl, value)]

    def track(b):
        return b["cpu_ms"]["swanlab"] + b["cpu_ms"]["this package"]

    onlog = [x for r in rs for x in r["onlog"] if _in_blocks(r, x[0]) and x[4]]
    onlog_off = [x for r in rs for x in r["onlog"] if _in_blocks(r, x[0]) and not x[4]]
    watch = [x for r in rs for x in r.get("watch", []) if _in_blocks(r, x[0]) and x[3]]
    return {
        "watch_us": [x[1] * 1e6 for x in watch], "watch_cpu_us": [x[2] * 1e6 for x in watch],
        "recs": rs, "n_blocks": len(flat), "steps_per_block": [b["steps"] for b in flat],
        "wall": pairs(lambda b: b["wall_ms"]), "wall_median": pairs(lambda b: b["median_ms"]),
        "train_cpu": pairs(lambda b: b["cpu_ms"]["training"]),
        "train_cpu_median": pairs(lambda b: b["cpu_median_ms"]),
        "train_ticks": pairs(lambda b: b["tick_ms"]["training"]),
        "related": pairs(lambda b: b["cpu_ms"]["training"] + (track(b) if b["on"] else 0.0)),
        "track": pairs(track), "other_cpu": pairs(lambda b: b["cpu_ms"]["other"]),
        "side": pairs(lambda b: b["sidecar_ms"]), "console": pairs(lambda b: b["console_us"]),
        "off_train_cpu": [b["cpu_ms"]["training"] for b in off],
        "track_on": [track(b) for b in on], "track_off": [track(b) for b in off],
        "writes": [b["writes"] for b in flat],
        "onlog_us": [x[1] * 1e6 for x in onlog], "onlog_cpu_us": [x[2] * 1e6 for x in onlog],
        "onlog_gc_us": [x[3] * 1e6 for x in onlog],
        "onlog_off_us": [x[1] * 1e6 for x in onlog_off],
        "gc": pairs(lambda b: b["gc_ms"]),
        "handler_on_us": [x[1] * 1e6 for r in rs for x in r.get("handler_log", [])
                          if _in_blocks(r, x[0]) and _state_at(r, x[0])],
        "handler_off_us": [x[1] * 1e6 for r in rs for x in r.get("handler_log", [])
                           if _in_blocks(r, x[0]) and not _state_at(r, x[0])],
        "begin_ms": [sum(r["timed"]["tracker on_train_begin"]) * 1000 for r in rs
                     if r["timed"].get("tracker on_train_begin")],
        "off_median": stats.median([b["wall_ms"] for b in off]) if off else float("nan"),
    }


def _verdict(smoke: bool, text: str, met: bool, missed: bool,
             estimate_over: Optional[bool] = None) -> str:
    """met / missed when the interval is on one side of the target; when it straddles it, the
    point estimate's side (``estimate_over``) says which is likely."""
    if smoke:
        return f"smoke run: {text}"
    if met:
        return f"met: {text}"
    if missed:
        return f"**missed**: {text}"
    if estimate_over is None:
        return f"not resolved: {text}"
    return (f"**likely missed** (the estimate is over the target, its interval reaches below): "
            f"{text}" if estimate_over else
            f"likely met (the estimate is under the target, its interval reaches over): {text}")


def _section(ctx, recs: dict[str, list[dict]], failures: list[str],
             pipe: Optional[dict] = None) -> "stats.Section":
    import stats

    sec = stats.Section(KEY, "Per-step cost of tracking, same-process A/B (tracking on/off in "
                             "blocks of steps)", method=_method(ctx.smoke))
    res = {v: _collect(rs) for v, rs in recs.items() if rs}
    if "untracked" not in res:
        raise RuntimeError(f"no untracked training succeeded ({failures})")
    smoke = ctx.smoke
    letters = iter("abcdefghijklmnopqrstuvwxyz")
    tracked = [v for v in ("sidecar", "inprocess", "axolotl") if v in res]
    aa = _paired(res["untracked"]["wall"])
    aa_pct = aa and tuple(x / res["untracked"]["off_median"] * 100 for x in aa)

    def key() -> str:
        return f"{KEY}{next(letters)}"

    # Added wall time per step.
    for v in tracked + ["untracked"]:
        r = res[v]
        p = _paired(r["wall"])
        if p is None:
            verdict = "– (fewer than two on blocks)"
        else:
            q = tuple(x / r["off_median"] * 100 for x in p)
            text = (f"paired on − off {p[0]:+.3f} ms per step = {q[0]:+.2f}% of the off step "
                    f"(90% CI {q[1]:+.2f} … {q[2]:+.2f}%, {len(r['wall'])} on blocks)")
            if v == "sidecar":
                verdict = _verdict(smoke, text, q[2] < 2, q[1] >= 2, q[0] >= 2)
            else:
                verdict = ("smoke run: " if smoke else "reported: ") + text
        sec.figures.append(stats.Figure(
            key(), f"Added time per step, on − off (each *on* block against its neighbours), "
            f"{LABELS[v]}", "ms", [a - b for a, b in r["wall"]],
            target="< 2% of the step" if v == "sidecar" else
            "≈ 0 (the method's noise)" if v == "untracked" else "report (comparison)",
            verdict=verdict, digits=3))
    # SwanLab-related CPU in the training process.
    for v in tracked:
        r = res[v]
        p = _paired(r["related"])
        direct = (stats.median(r["onlog_cpu_us"]) if r["onlog_cpu_us"] else 0.0)
        cons = _paired(r["console"])
        threads = stats.median(r["track_on"]) if r["track_on"] else 0.0
        if p is None:
            verdict = "– (fewer than two on blocks)"
        else:
            text = (f"paired {p[0]:+.3f} ms (90% CI {p[1]:+.3f} … {p[2]:+.3f}): the training "
                    f"thread's on − off CPU + SwanLab's threads ({threads:.3f} ms per step in on "
                    f"blocks); measured directly: `on_log` {direct:.0f} µs CPU + console "
                    f"capture {cons[0] if cons else float('nan'):+.0f} µs per step")
            if v == "sidecar":
                verdict = _verdict(smoke, text, p[2] <= 0.2, p[1] > 0.2, p[0] > 0.2)
            else:
                verdict = ("smoke run: " if smoke else "reported: ") + text
        sec.figures.append(stats.Figure(
            key(), f"SwanLab-related CPU per step in the training process (training thread on − "
            f"off, + SwanLab's threads), {LABELS[v]}", "ms", [a - b for a, b in r["related"]],
            target="≤ 0.2 ms" if v == "sidecar" else "report (comparison)", verdict=verdict,
            digits=3))
    # on_log in the training loop.
    for v in tracked:
        r = res[v]
        if not r["onlog_us"]:
            continue
        s = stats.summarize(r["onlog_us"])
        c = stats.median(r["onlog_cpu_us"])
        text = (f"median {s.median:.0f} µs (CPU {c:.0f} µs), p90 {s.hi:.0f} µs, mean "
                f"{sum(r['onlog_us']) / len(r['onlog_us']):.0f} µs")
        if v == "sidecar":
            verdict = _verdict(smoke, text, s.median <= 50, s.median > 50)
        else:
            verdict = ("smoke run: " if smoke else "reported: ") + text
        sec.figures.append(stats.Figure(
            key(), f"The tracking callback's `on_log` in the training loop, {LABELS[v]}", "µs",
            r["onlog_us"], target="≤ 50 µs" if v == "sidecar" else "report (comparison)",
            verdict=verdict, digits=1))
    # on_train_begin.
    for v in tracked:
        r = res[v]
        if not r["begin_ms"]:
            continue
        med = stats.median(r["begin_ms"])
        if v == "sidecar":
            ready = [x["ready"] for x in r["recs"] if x.get("ready")]
            text = (f"{med:.1f} ms in `on_train_begin`"
                    + (f"; the sidecar's run was up {stats.median([x[1] for x in ready]):.2f} s "
                       f"after its launch, at step {stats.median([x[0] for x in ready]):.0f}: "
                       "the training went on meanwhile" if ready else
                       "; the sidecar's run was not seen up during the trainings"))
            ok = bool(ready) and all(x[0] > 1 for x in ready)
            verdict = _verdict(smoke, text, ok, not ok)
            target = "never waits for the run to start"
        else:
            text = f"{med:.0f} ms in `on_train_begin`" + (
                " (`swanlab.init` runs there, before the first step)" if v == "inprocess" else
                f" (its `swanlab.init` ran before, in `pre_model_load`: "
                f"{_ms(r['recs'], 'Axolotl SwanLabPlugin.pre_model_load')} ms)")
            verdict, target = ("smoke run: " if smoke else "reported: ") + text, \
                "report (comparison)"
        sec.figures.append(stats.Figure(
            key(), f"Time inside the tracking callback's `on_train_begin`, {LABELS[v]}", "ms",
            r["begin_ms"], target=target, verdict=verdict, digits=1))
    # Threads.
    for v in tracked:
        r = res[v]
        counts, names, swanlab_own = [], set(), set()
        for x in r["recs"]:
            mine = [t for t in x["threads"].values() if t["kind"] in ("swanlab", "this package")]
            counts.append(float(len(mine)))
            names |= {t["py"] or t["comm"] for t in mine}
            swanlab_own |= {t["py"] or t["comm"] for t in mine if t["kind"] == "swanlab"}
        imported = any(x["swanlab_imported"] for x in r["recs"])
        text = (f"{int(max(counts))} thread(s) of SwanLab or this package seen during the "
                "blocks" + (f" ({', '.join(sorted(names))})" if names else "")
                + f"; `swanlab` imported in the training process: {'yes' if imported else 'no'}")
        if v == "sidecar":
            # Since the helper's redesign (issue 22) the training keeps one thread of its own,
            # blocked reading the helper's status pipe (ready, done, alert lines): it must stay
            # idle. No thread of SwanLab's, and swanlab not imported.
            idle = (stats.median(r["track_on"]) if r["track_on"] else 0.0) < 0.005
            ok = not swanlab_own and not imported and idle
            text += ("; this package's threads idle (< 0.005 ms CPU per step)" if idle else
                     "; this package's threads not idle")
            verdict, target = (_verdict(smoke, text, ok, not ok),
                               "no SwanLab thread; this package's idle")
        else:
            verdict, target = ("smoke run: " if smoke else "reported: ") + text, \
                "report (comparison)"
        sec.figures.append(stats.Figure(
            key(), f"SwanLab threads in the training process, {LABELS[v]}", "threads", counts,
            target=target, verdict=verdict, digits=0))

    # swanlab_watch: all (issue 24): its own added time per step (last, so the other figures keep their keys), at the default interval.
    if "sidecar-watch" in res:
        r = res["sidecar-watch"]
        p = _paired(r["wall"])
        inner = (f"; inside the callback {stats.median(r['watch_us']):.0f} µs per measured step "
                 f"(CPU {stats.median(r['watch_cpu_us']):.0f} µs)" if r["watch_us"] else "")
        if p is None:
            verdict = "– (fewer than two on blocks)"
        else:
            q = tuple(x / r["off_median"] * 100 for x in p)
            text = (f"paired on − off {p[0]:+.3f} ms per step = {q[0]:+.2f}% of the off step "
                    f"(90% CI {q[1]:+.2f} … {q[2]:+.2f}%, {len(r['wall'])} on blocks; every "
                    f"step is an interval step here){inner}")
            verdict = _verdict(smoke, text, q[2] < 2, q[1] >= 2, q[0] >= 2)
        sec.figures.append(stats.Figure(
            key(), f"Added time per step, {LABELS['sidecar-watch']}", "ms",
            [a - b for a, b in r["wall"]], target="< 2% of the step, averaged over the interval",
            verdict=verdict, digits=3))
    # -- detail table ----------------------------------------------------------------------
    sec.header = ["Variant", "Off: ms/step", "On − off, ms/step (paired)", "90% CI",
                  "% of off step", "Same, block medians of steps", "Training thread CPU off, "
                  "ms/step", "Training thread CPU on − off", "90% CI",
                  "SwanLab threads CPU on / off, ms/step", "Other threads on − off",
                  "Sidecar process CPU on / off, ms/step", "Console writes/step",
                  "Console capture, µs/step (paired)", "`on_log` wall median / p90, µs",
                  "`on_log` CPU median, µs", "GC inside `on_log`, mean µs",
                  "GC, ms/step on − off", "All callbacks' `on_log` on / off, µs", "On blocks"]
    for v in VARIANTS + list(DIAGNOSTICS):
        if v not in res:
            continue
        r = res[v]
        p = _paired(r["wall"])
        q = p and tuple(x / r["off_median"] * 100 for x in p)
        pm = _paired(r["wall_median"])
        c = _paired(r["train_cpu"])
        o = _paired(r["other_cpu"])
        cons = _paired(r["console"])
        side_on = [a for a, _b in r["side"]]
        side_off = [b for _a, b in r["side"]]
        ol = stats.summarize(r["onlog_us"]) if r["onlog_us"] else None
        g = _paired(r["gc"])
        off_log = (f" (off blocks: {_n(_median(r['onlog_off_us']), 1)})"
                   if r["onlog_off_us"] else "")
        sec.rows.append([
            LABELS[v], _n(r["off_median"], 2), _s(p and p[0], 3), _ci(p, 3),
            (_s(q[0], 2) + "%") if q else "–",
            f"{_s(pm and pm[0], 3)} ({_ci(pm, 3)})" if pm else "–",
            _n(_median(r["off_train_cpu"]), 2), _s(c and c[0], 3), _ci(c, 3),
            f"{_n(_median(r['track_on']), 3)} / {_n(_median(r['track_off']), 3)}",
            _s(o and o[0], 3),
            f"{_n(_median(side_on), 3)} / {_n(_median(side_off), 3)}" if side_on else "–",
            _n(_median(r["writes"]), 1), _s(cons and cons[0], 1),
            f"{_n(ol.median, 1)} / {_n(ol.hi, 1)}{off_log}" if ol else "–",
            _n(_median(r["onlog_cpu_us"]), 1) if r["onlog_cpu_us"] else "–",
            _n(sum(r["onlog_gc_us"]) / len(r["onlog_gc_us"]), 1) if r["onlog_gc_us"] else "–",
            _s(g and g[0], 3),
            f"{_n(_median(r['handler_on_us']), 0)} / {_n(_median(r['handler_off_us']), 0)}",
            str(len(r["wall"])),
        ])
    # -- notes -----------------------------------------------------------------------------
    if aa_pct:
        sec.notes.append(
            f"The method's resolution: in the untracked A/A trainings (nothing is switched) the "
            f"paired on − off difference is {aa[0]:+.3f} ms ({aa_pct[0]:+.2f}%, 90% CI "
            f"{aa_pct[1]:+.2f} … {aa_pct[2]:+.2f}%).")
    meaning = {
        "sidecar-on_log": "*only `on_log` switched* is what logging the metrics adds (the call, "
                          "the sidecar's work on them, what it leaves in the caches)",
        "sidecar-console": "*only console capture switched* is what copying the console adds",
        "sidecar-sink": "*pipe to /dev/null* keeps the training's work identical in both states "
                        "and takes away only the sidecar's side (it receives nothing: no "
                        "wake-ups, no SwanLab work on the other core), so its on − off is what "
                        "the sidecar's own activity costs the training",
        "sidecar-watch": "*swanlab_watch: all* switches only the watch (the tracker's "
                         "`on_pre_optimizer_step` returns at once when off; metrics and console "
                         "stay on), so its on − off is what the grouped norms, their one read "
                         "back and their message cost per measured step",
    }
    present = [meaning[v] for v in DIAGNOSTICS if v in res]
    if present:
        sec.notes.append("Diagnostic rows (the sidecar variant, one part switched): "
                         + "; ".join(present) + ".")
    for v in VARIANTS + list(DIAGNOSTICS):
        if v not in res:
            continue
        rs = res[v]["recs"]
        modes = "; ".join(sorted({f"{k}: {m}" for r in rs for k, m in r["console_mode"].items()}))
        per_training = ", ".join(
            f"{r['first']}-first {_median([b['wall_ms'] for b in r['blocks_'] if not b['on']]):.2f}"
            for r in rs)
        sec.notes.append(
            f"*{LABELS[v]}*: {len(rs)} training(s), {res[v]['n_blocks']} blocks of "
            f"{_n(_median(res[v]['steps_per_block']), 0)} steps; median off-block ms/step per "
            f"training: {per_training}; console: {modes or '–'}; callbacks: "
            f"{', '.join(sorted({c for r in rs for c in r['callbacks']}))}; run backend: "
            f"{', '.join(sorted({r['backend'] for r in rs}))}; `on_log` calls skipped in off "
            f"blocks: {sum(r['onlog_skipped'] for r in rs)}; SwanLab run folders: "
            f"{sum(len(r['swanlog']) for r in rs)}.")
    where = _where_note(res, pipe)
    if where:
        sec.notes.append(where)
    sec.notes.append(_breakdown(res))
    sec.notes.append(_threads_note(res))
    sec.notes.append(_stat_check(res))
    if failures:
        sec.notes.append(f"Failed trainings (left out): {failures}")
    return sec


def _state_at(rec: dict, step: int) -> bool:
    """The tracking state of the block a step belongs to."""
    state = True
    for m in rec["marks"]:
        if m["step"] > step:
            break
        state = m["on"]
    return state


def _in_blocks(rec: dict, step: int) -> bool:
    marks = [m for m in rec["marks"] if m["label"] in ("block", "end")]
    return bool(marks) and marks[0]["step"] <= step < marks[-1]["step"]


def _ms(recs: list[dict], name: str) -> str:
    import stats

    xs = [sum(r["timed"][name]) * 1000 for r in recs if r["timed"].get(name)]
    return _n(stats.median(xs), 0) if xs else "–"


def _n(value, digits: int = 2) -> str:
    import stats

    return stats.num(value, digits)


def _s(value, digits: int = 2) -> str:
    import stats

    return stats.signed(value, digits)


def _ci(p, digits: int) -> str:
    return f"{_s(p[1], digits)} … {_s(p[2], digits)}" if p else "–"


def _where_note(res: dict, pipe: Optional[dict] = None) -> str:
    """Where the sidecar variant's per-step cost sits, from the direct measurements."""
    if "sidecar" not in res:
        return ""
    r = res["sidecar"]
    if not r["onlog_us"]:
        return ""
    onlog = _median(r["onlog_us"])
    cons = _paired(r["console"])
    gc_in = sum(r["onlog_gc_us"]) / len(r["onlog_gc_us"]) if r["onlog_gc_us"] else 0.0
    side_on = _median([a for a, _b in r["side"]])
    side_off = _median([b for _a, b in r["side"]])
    direct = (onlog + (cons[0] if cons else 0.0)) / 1000
    text = (f"Where the sidecar variant's cost sits, per step. On the training thread, measured "
            f"directly: `on_log` {onlog:.0f} µs (median; {gc_in:.1f} µs of it garbage "
            f"collection on average) and console capture {cons[0] if cons else float('nan'):+.0f} "
            f"µs for {_median(r['writes']):.0f} writes: {direct:.3f} ms together, "
            f"{direct / r['off_median'] * 100:.1f}% of the off step.")
    p = _paired(r["train_cpu"])
    if p:
        span = f"{p[0]:+.3f} ms, 90% CI {p[1]:+.3f} … {p[2]:+.3f}"
        if p[1] <= direct <= p[2]:
            text += f" The paired training-thread CPU difference agrees ({span})."
        elif p[1] > direct:
            text += (f" The paired training-thread CPU difference is larger ({span}); no direct "
                     "measurement locates the remainder (this machine's noise is of that order: "
                     "see the A/A row).")
        else:
            text += (f" The paired training-thread CPU difference is smaller ({span}), within "
                     "this machine's noise (see the A/A row).")
    sink = res.get("sidecar-sink")
    if sink and sink["onlog_off_us"] and sink["onlog_us"]:
        a, b = _median(sink["onlog_us"]), _median(sink["onlog_off_us"])
        text += (f" With the pipe sent to /dev/null, the same `on_log` takes {b:.0f} µs instead "
                 f"of {a:.0f} µs: the write into the pipe, which wakes the sidecar when it sleeps "
                 f"in its blocking read, accounts for {a - b:+.0f} µs of each call in this run.")
    if pipe:
        text += (f" One {pipe.get('frame_bytes', 0)}-byte write into a pipe on this machine "
                 f"(a separate measurement, no training; median thread CPU): "
                 f"{pipe['blocking read']:.1f} µs when the reader sleeps in a blocking read, as "
                 f"the sidecar does, {pipe['polling every 0.1 s']:.1f} µs when the reader polls "
                 f"every 0.1 s instead, {pipe['/dev/null']:.1f} µs into /dev/null.")
    text += (f" In the sidecar process (on the other core): {side_on:.2f} ms of CPU per step "
             f"while tracking is on, {side_off:.2f} ms while it gets nothing.")
    return text


def _breakdown(res: dict) -> str:
    """What the training thread spends in on_train_begin, per variant (timed sub-calls)."""
    import stats

    parts = []
    names = ["tracker on_train_begin", "our run_config.build", "our run.start",
             "our HelperProcess.launch", "subprocess.Popen of the sidecar",
             "our HelperProcess._offer_remote_run", "our _log_texts (config texts)", "swanlab.init",
             "Axolotl SwanLabPlugin.pre_model_load",
             "Axolotl's config-file callback on_train_begin", "all callbacks' on_train_begin"]
    for v in ("sidecar", "inprocess", "axolotl", "untracked"):
        if v not in res:
            continue
        rs = res[v]["recs"]
        items = []
        for name in names:
            xs = [sum(r["timed"][name]) * 1000 for r in rs if r["timed"].get(name)]
            if xs:
                items.append(f"{name} {stats.median(xs):.1f} ms")
        parts.append(f"*{LABELS[v]}*: " + (", ".join(items) or "–"))
    return ("Start-up work on the training thread (medians over the trainings; nested: "
            "`on_train_begin` contains `run.start`, which contains `HelperProcess.launch` or "
            "`swanlab.init`): " + "; ".join(parts) + ".")


def _threads_note(res: dict) -> str:
    parts = []
    for v in VARIANTS:
        if v not in res:
            continue
        seen: dict[str, str] = {}
        for r in res[v]["recs"]:
            for t in r["threads"].values():
                label = t["py"] or t["comm"]
                seen[label] = t["kind"]
        parts.append(f"*{v}*: " + ", ".join(f"{k} ({seen[k]})" for k in sorted(seen)))
    return ("Threads of the training process seen at the block boundaries (Python name, or the "
            "kernel's `comm` for native threads; kind): " + "; ".join(parts) + ".")


def _stat_check(res: dict) -> str:
    parts = []
    for v in VARIANTS:
        if v in res and res[v]["train_ticks"]:
            p, c = _paired(res[v]["train_ticks"]), _paired(res[v]["train_cpu"])
            m = _paired(res[v]["train_cpu_median"])
            parts.append(f"{v} {_s(p and p[0], 3)} ms (schedstat {_s(c and c[0], 3)} ms; "
                         f"block medians of `thread_time` per step {_s(m and m[0], 3)} ms)")
    return ("Cross-checks of the training thread's paired on − off CPU per step with "
            "`/proc/self/task/<tid>/stat` (utime + stime, 10 ms ticks: coarse for one block, "
            "unbiased on average) and with per-step `time.thread_time()` (block medians, "
            "robust to the odd slow step): " + "; ".join(parts) + ".")


def _method(smoke: bool) -> str:
    blocks = 4 if smoke else BLOCKS
    diags = [] if smoke else _diagnostics()
    return (
        "`axolotl train cfg.yaml --launcher python` through tools/harness.py (axolotl-0.19.0 "
        "venv, the tiny Llama, `logging_steps: 1`, `OMP_NUM_THREADS=1`). Across separate "
        "trainings the median step moves more than tracking costs (10 → 16 ms between sessions "
        "on this shared machine), so tracking is switched on and off *inside* each training, in "
        "alternating blocks, by a benchmark-only probe (a `sitecustomize.py` on `PYTHONPATH` "
        "registering wrapt post-import hooks; the package is not modified). A block is one "
        "epoch of the tiny dataset (32 steps, ~0.6 s), so every block holds exactly one "
        "dataloader restart. The first epoch is a warm-up (for the sidecar, the warm-up lasts "
        "until its run is up, at most 4 more epochs), then "
        f"{blocks} blocks, then the probe stops the training. Each variant is trained twice, "
        "once starting with an *on* block and once with an *off* block, so a drift within a "
        "training cancels. Variants: *untracked* (no swanlab keys; the blocks are switched "
        "with nothing to switch: an A/A test of the method), *this package, sidecar* (the "
        "default), *this package, in-process* (`SWANLAB_AUTOPATCH_SIDECAR=0`) and *Axolotl's "
        "plugin* (`plugins: [axolotl.integrations.swanlab.SwanLabPlugin]`, `use_swanlab: true`, "
        "`SWANLAB_AUTOPATCH=0`), every tracked one in `swanlab_mode: offline`."
        + (" Diagnostic: " + ", ".join(LABELS[d] for d in diags) + " (two trainings each)."
           if diags else "") + "\n\n"
        "**What \"off\" means.** (1) The tracking callback's `on_log` "
        "(`SwanLabAutopatchCallback.on_log`, Axolotl's `CustomSwanLabCallback.on_log`) returns "
        "at once: no metric is converted, sent or logged. (2) Console capture is taken out of "
        "the write chain: `sys.stdout.write` / `sys.stderr.write` call the write the capture "
        "wrapped instead of the capture (this package's `ConsoleTee` in sidecar mode; SwanLab's "
        "`StreamCapture` in-process, which with Axolotl's plugin sits under the capture that "
        "importing wandb installs on every write, even with `WANDB_MODE=disabled`: there the "
        "reference inside wandb's wrapper is swapped). Nothing else changes. Limits: the run "
        "stays open; in-process, SwanLab's threads keep running (their idle polling, and "
        "whatever work from an *on* block spills over, land in *off* blocks, so the A/B "
        "under-counts them: their CPU is reported for both states); the sidecar process keeps "
        "running, idle (its CPU is reported apart); the start and the end of the run are outside "
        "the blocks (`on_train_begin` is measured on its own). In the *pipe to /dev/null* "
        "diagnostic, *off* keeps everything on and `dup2`s /dev/null over the pipe's descriptor "
        "(the training does the same work; the sidecar receives nothing).\n\n"
        "**Figures.** Time per step: from one `on_step_begin` to the next (the optimizer step, "
        "`on_step_end`, every callback's `on_log`, the next batch), the probe's own sampling "
        "excluded; a block's value is its mean step (the detail table also gives block "
        "medians). The paired difference is each *on* block minus the mean of the *off* blocks "
        "on either side of it (which cancels a linear drift of the machine's speed), median "
        "over the *on* blocks, bootstrap 90% interval (neighbours are shared, so the interval "
        "is somewhat optimistic), and as a % of the median *off* block. CPU per thread: "
        "`/proc/self/task/<tid>/schedstat` (ns on CPU; "
        "`stat`'s utime+stime in 10 ms ticks and per-step `time.thread_time()` as "
        "cross-checks), sampled at the block boundaries: the training thread (the one running "
        "the callbacks), SwanLab's and this package's threads (whose code started the thread, "
        "else its name, class or target), the others; the sidecar process's threads summed "
        "apart. CPU in the training process = training thread + SwanLab's threads; what "
        "tracking adds is the training thread's paired on − off plus SwanLab's threads in *on* "
        "blocks. `on_log`: `perf_counter`, `thread_time` and the garbage collector's time "
        "(`gc.callbacks`) around the tracking callback's `on_log`, in *on* blocks (~1 µs of it "
        "is the probe's own timing). Console: every `write` is timed in both states (on − off "
        "is the capture's cost). `on_train_begin`: the tracking callback's, its sub-calls timed "
        "(notes). Targets (issue 18): < 2% added per step; ≤ 0.2 ms of SwanLab-related CPU per "
        "step in the training process; `on_log` ≤ 50 µs; no SwanLab thread in the training "
        "process; the training never waits for the run to start; `swanlab_watch: all` at its "
        "default interval < 2% per step (issue 24).")
