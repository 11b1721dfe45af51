"""A Trainer-like loop that drives the package's real callback, run by the lifecycle and chaos
tests in a subprocess: ``python tests/support/training_driver.py`` with the plan as JSON in
``T_PLAN``. SwanLab's real client runs in the helper process (offline mode); only the Trainer is
stood in for (transformers' TrainerCallback base class is stubbed with ``stub_transformers``,
so a plan costs the helper's start-up, not transformers' import).

Plan keys: log_dir, out, steps, events ({step: [action, ...]}, run after that step's log; step 0:
before the first log),
print ("line" | "redraw" | "flood" | none, every step), user (the user's code logs through
swanlab and keeps the run object), user_thread (a thread of the user's logs ``user/thread``),
after_end ([action, ...] after on_train_end), canaries (files opened after the end),
argv (words on its command line: driving.py puts them there), settings (extra swanlab_* keys),
early_console (N: the console is captured from "config load" on, N lines printed before the
training, one while "saving the model" after it).

Actions: wait_ready, kill_self, term_self, stop_self, stop_helper, cont_helper, int_helper, hup_helper,
term_helper, kill_helper, kill_helper_nowait, check_reaped, fork_exit (the child exits normally: atexit runs), fork_os_exit,
fork_log (the child logs, then exits normally), kept_log (the kept run object logs; with
canaries), wait_helper_gone (the package has seen its helper end before its run was up),
wait_helper_log:<text> (the helper's own log says <text>: an alert was raised).
``loss_at`` ({step: value}) replaces a step's loss (10/step) with a number or "nan"/"inf".

It writes what it saw to ``<out>/driver.json`` (the helper's pid first, then the rest at the end).
"""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import types
from pathlib import Path
from types import SimpleNamespace

PLAN = json.loads(os.environ["T_PLAN"])
OUT = Path(PLAN["out"])
OUT.mkdir(parents=True, exist_ok=True)
REPORT: dict = {"pid": os.getpid(), "steps_done": 0}


def save() -> None:
    tmp = OUT / "driver.json.tmp"
    tmp.write_text(json.dumps(REPORT))
    tmp.replace(OUT / "driver.json")


if PLAN.get("stub_transformers", True) and "transformers" not in sys.modules:
    stub = types.ModuleType("transformers")

    class TrainerCallback:  # the base class's hooks do nothing
        pass

    stub.TrainerCallback = TrainerCallback
    sys.modules["transformers"] = stub

if PLAN.get("import_first"):
    import swanlab  # noqa: F401  (the user's code imported SwanLab before training)

from swanlab_autopatch.config.settings import parse  # noqa: E402
from swanlab_autopatch.tracking import run  # noqa: E402
from swanlab_autopatch.tracking.callback import SwanLabAutopatchCallback  # noqa: E402

if PLAN.get("early_console"):  # as the wrapper of Axolotl's load_cfg does for rank 0
    from swanlab_autopatch.tracking import helper_process

    helper_process.capture_console_early()
    for i in range(PLAN["early_console"]):
        print(f"loading the dataset {i}", flush=True)
        sys.stderr.write(f"\rmap: {i}%|bar|")
    sys.stderr.write("\n")

keys = {"swanlab_project": "driver", "swanlab_mode": "offline", "swanlab_log_dir": PLAN["log_dir"],
        **PLAN.get("settings", {})}
result = parse(keys, env={})
from swanlab_autopatch.config import credentials  # noqa: E402

credentials.register_known_secrets(result.settings)
cfg = {"base_model": "tiny", "learning_rate": 0.001, "output_dir": str(OUT / "model"),
       **result.settings.public_keys()}
args = SimpleNamespace(output_dir=str(OUT / "model"), to_dict=lambda: {"learning_rate": 0.001})
state = SimpleNamespace(is_world_process_zero=True, global_step=0)
control = SimpleNamespace()
callback = SwanLabAutopatchCallback(result.settings, cfg)
callback.on_train_begin(args, state, control)
helper = getattr(run._backend, "proc", None)
REPORT["helper_pid"] = helper.pid if helper else None
REPORT["backend"] = type(run._backend).__name__
save()

kept = None
if PLAN.get("user"):
    import swanlab

    kept = swanlab.get_run()
    swanlab.log({"user/value": 1.5}, step=1)
    kept.log({"user/other": 2.5}, step=2)
    swanlab.config["user_key"] = "from-user"


def user_thread() -> None:
    import swanlab

    for i in range(1, PLAN["user_thread"] + 1):
        try:
            swanlab.log({"user/thread": float(i)}, step=i)
        except Exception as exc:  # after the end: SwanLab itself says there is no run
            REPORT.setdefault("thread_errors", []).append(repr(exc)[:200])
        time.sleep(0.001)


thread = None
if PLAN.get("user_thread"):
    thread = threading.Thread(target=user_thread, name="user-logs")
    thread.start()


def signal_helper(sig: int) -> None:
    if helper is not None:
        try:
            os.kill(helper.pid, sig)
        except ProcessLookupError:
            pass


def fork(how: str) -> None:
    pid = os.fork()
    if pid == 0:  # the child: a data loader worker, or user code
        try:
            if how == "fork_log":
                import swanlab

                try:
                    swanlab.log({"child/value": 1.0}, step=1)
                except Exception:
                    pass
                callback.on_log(args, state, control, logs={"loss": -1.0})
            print("child says hello", flush=True)
        finally:
            if how == "fork_os_exit":
                os._exit(0)
        sys.exit(0)  # normal exit: atexit handlers run in the child
    os.waitpid(pid, 0)


def act(action: str) -> None:
    if action == "wait_ready":
        REPORT["ready"] = bool(run._backend._wait_info(120))
    elif action == "kill_self":
        save()
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "stop_self":  # hung, as seen from outside; someone else continues it
        save()
        os.kill(os.getpid(), signal.SIGSTOP)
    elif action == "term_self":
        save()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the default SIGTERM action ends the process
    elif action.endswith("_helper"):
        name = {"stop": "SIGSTOP", "cont": "SIGCONT", "int": "SIGINT", "hup": "SIGHUP",
                "term": "SIGTERM", "kill": "SIGKILL"}[action[:-len("_helper")]]
        signal_helper(getattr(signal, name))
        if name == "SIGKILL" and helper is not None:
            helper.wait()
    elif action == "wait_helper_gone":  # the package has seen its helper end (before ready)
        # DIED_EARLY until the next frame falls back; a frame of on_train_begin may already
        # have done that (FALLEN_BACK) on a loaded machine.
        backend = getattr(run._backend, "lifecycle", None) and run._backend
        deadline = time.monotonic() + 120
        while backend and backend.lifecycle.state.name not in ("DIED_EARLY", "FALLEN_BACK") \
                and time.monotonic() < deadline:
            time.sleep(0.02)
        REPORT["helper_gone_seen"] = backend.lifecycle.state.name if backend else "FALLEN_BACK"
    elif action == "kill_helper_nowait":  # nobody here collects it but the package
        os.kill(helper.pid, signal.SIGKILL)
    elif action == "check_reaped":
        deadline = time.monotonic() + 60
        while os.path.exists(f"/proc/{helper.pid}") and time.monotonic() < deadline:
            time.sleep(0.05)
        REPORT["helper_reaped"] = not os.path.exists(f"/proc/{helper.pid}")
    elif action.startswith("fork"):
        fork(action)
    elif action.startswith("wait_helper_log:"):
        wanted = action.split(":", 1)[1]
        log_file = run._backend._wait_info(120).get("log") or ""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if wanted in Path(log_file).read_text(errors="replace"):
                    break
            except OSError:
                pass
            time.sleep(0.05)
        else:
            REPORT.setdefault("not_seen", []).append(wanted)
    elif action == "kept_log":
        canaries = [open(OUT / f"canary{i}", "wb") for i in range(PLAN.get("canaries", 8))]
        REPORT["canary_fds"] = [c.fileno() for c in canaries]
        kept.log({"user/after_end": 1.0}, step=10**6)
        kept.log_text("after the end") if hasattr(kept, "log_text") else None
        kept.config["after_end"] = True
        for c in canaries:
            c.close()


events = {int(k): v for k, v in PLAN.get("events", {}).items()}
printing = PLAN.get("print")
loss_at = {int(k): float(v) for k, v in PLAN.get("loss_at", {}).items()}
for action in events.get(0, []):  # after on_train_begin, before the first log
    act(action)
for step in range(1, PLAN["steps"] + 1):
    state.global_step = step
    callback.on_log(args, state, control, logs={"loss": loss_at.get(step, 10.0 / step),
                                                "learning_rate": 0.001})
    if printing == "line":
        print(f"training line {step}", flush=True)
    elif printing == "redraw":
        sys.stderr.write(f"\r{step:6d} it |{'#' * (step % 40)}|")
    elif printing == "flood":
        print(f"flood {step} " + "x" * PLAN.get("flood_width", 2000), flush=True)
    REPORT["steps_done"] = step
    for action in events.get(step, []):
        act(action)
if printing == "redraw":
    sys.stderr.write("\n")
callback.on_train_end(args, state, control)
from swanlab_autopatch.tracking import trainer_hooks  # noqa: E402

if PLAN.get("early_console"):
    print("saving the model", flush=True)

trainer_hooks.after_training()  # what the wrapper of Axolotl's train() does when it returns
REPORT["ended_at"] = time.time()
if thread is not None:
    thread.join()
for action in PLAN.get("after_end", []):
    act(action)
outcome = getattr(run._backend, "outcome", None)
REPORT["outcome"] = outcome if isinstance(outcome, dict) else None
import resource  # noqa: E402

REPORT["peak_rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
REPORT["swanlab_loaded"] = "swanlab" in sys.modules
REPORT["threads"] = sorted(t.name for t in threading.enumerate())
save()
