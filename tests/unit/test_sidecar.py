"""The run in its sidecar process, driven through the Trainer callback exactly as a training
does (no Axolotl here; the end-to-end lane does the same with real `axolotl train`):
the user's own swanlab calls, a killed or terminated training, a sidecar that cannot start,
dies before its run started or dies in the middle, and the console left as it was."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from swanlab_autopatch.runs.reader import find_runs
from tests.support.fake import REPO

PROBES = ("HARDWARE", "RUNTIME", "REQUIREMENTS", "CONDA", "GIT", "MONITOR")

TRAINING = r'''
import json, os, signal, sys, time
from types import SimpleNamespace

p = json.loads(os.environ["T_ARGS"])
if p.get("import_first"):
    import swanlab  # the user's code imported SwanLab before training started
from swanlab_autopatch.tracking.callback import SwanLabAutopatchCallback
from swanlab_autopatch.config.settings import parse
from swanlab_autopatch.tracking import run

result = parse({"swanlab_project": "sidecar-test", "swanlab_mode": "offline",
                "swanlab_log_dir": p["log_dir"]}, env={})
cfg = {"base_model": "tiny", "learning_rate": 0.001, "output_dir": p["out"],
       **result.settings.public_keys()}
args = SimpleNamespace(output_dir=p["out"], to_dict=lambda: {"learning_rate": 0.001})
state, control = SimpleNamespace(is_world_process_zero=True, global_step=0), SimpleNamespace()
callback = SwanLabAutopatchCallback(result.settings, cfg)
isatty_before = sys.stdout.isatty()
t0 = time.perf_counter()
callback.on_train_begin(args, state, control)
begin_s = time.perf_counter() - t0
report = {"backend": type(run._backend).__name__, "begin_s": begin_s, "pid": os.getpid(),
          "isatty_same": sys.stdout.isatty() == isatty_before}
if p.get("user"):
    import swanlab
    swanlab.log({"user/value": 1.5}, step=1)
    user_run = swanlab.get_run()
    user_run.log({"user/other": 2.5}, step=2)
    swanlab.config["user_key"] = "from-user"
    swanlab.config.update({"user_batch": 7})
    report.update(has_run=swanlab.has_run(), run_id=user_run.id, run_dir=str(user_run.dir))
for step in range(1, p["steps"] + 1):
    state.global_step = step
    callback.on_log(args, state, control, logs={"loss": 10.0 / step, "learning_rate": 0.001})
    print(f"training line {step}", flush=True)
    if step == p.get("ready_at"):
        run._backend._wait_info(30)  # from here on, logs take the packed path
    if step == p.get("kill_at"):
        os.kill(os.getpid(), signal.SIGKILL)
    if step == p.get("term_at"):
        os.kill(os.getpid(), signal.SIGTERM)
    if step == p.get("kill_sidecar_at"):
        run._backend._wait_info(30)  # its run has started
        os.kill(run._backend.proc.pid, signal.SIGKILL)
        run._backend.proc.wait()
        for i in range(2000):  # a full pipe buffer's worth: printing must never fail
            print(f"after the sidecar died {i}")
callback.on_train_end(args, state, control)
report["schemas"] = len(getattr(run._backend, "_schemas", {}))
report["swanlab_loaded"] = "swanlab" in sys.modules
report["threads"] = sorted(t.name for t in __import__("threading").enumerate())
print("RESULT:" + json.dumps(report), flush=True)
'''

NO_SIDECAR = "import subprocess\n_real = subprocess.Popen\n" \
    "class Popen(_real):\n" \
    "    def __init__(self, args, *a, **k):\n" \
    "        if any('sidecar_main' in str(x) for x in args):\n" \
    "            raise OSError(11, 'Resource temporarily unavailable (injected)')\n" \
    "        super().__init__(args, *a, **k)\n" \
    "subprocess.Popen = Popen\n"
# In the sidecar itself: die before the run starts.
SIDECAR_DIES = "import os\nif b'sidecar_main' in open('/proc/self/cmdline', 'rb').read():\n" \
    "    os._exit(3)\n"


def train(tmp: Path, inject: str = "", timeout: float = 120, runtime_probe: bool = False,
          **params) -> dict:
    tmp.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SWANLAB", "RANK", "LOCAL_RANK", "WORLD_SIZE"))}
    paths = [str(REPO)]
    if inject:
        (tmp / "inject").mkdir(exist_ok=True)
        (tmp / "inject" / "sitecustomize.py").write_text(inject)
        paths.insert(0, str(tmp / "inject"))
    env.update({"PYTHONPATH": os.pathsep.join(paths), "HOME": str(tmp),
                "SWANLAB_ROOT": str(tmp / ".swanlab"),
                **{f"SWANLAB_PROBE_{name}": "false" for name in PROBES
                   if not (runtime_probe and name == "RUNTIME")},
                "T_ARGS": json.dumps({"log_dir": str(tmp / "swanlog"), "out": str(tmp / "out"),
                                      "steps": 20, **params})})
    proc = subprocess.run([sys.executable, "-c", TRAINING], env=env, cwd=tmp,
                          capture_output=True, text=True, timeout=timeout)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT:")]
    report = json.loads(lines[0][len("RESULT:"):]) if lines else {}
    return {"proc": proc, "report": report, "log_dir": tmp / "swanlog"}


def settled_run(log_dir: Path, timeout: float = 60):
    """The one run, once its sidecar has written the finish record (it may outlive the
    training process by a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        runs = find_runs(log_dir) if log_dir.exists() else []
        if len(runs) == 1 and runs[0].state != "running":
            return runs[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no settled run in {log_dir}: {[(r.path, r.state) for r in runs]}")
        time.sleep(0.2)


def losses(steps) -> list:
    return [(s, pytest.approx(10.0 / s)) for s in steps]


def test_the_run_lives_in_the_sidecar(tmp_path):
    out = train(tmp_path, runtime_probe=True, ready_at=8)
    assert out["proc"].returncode == 0, out["proc"].stderr
    report = out["report"]
    assert report["backend"] == "Sidecar"
    assert report["schemas"] == 1  # steps 9..20 went packed, under one schema
    assert report["swanlab_loaded"] is False  # SwanLab's client never loads here
    assert not [t for t in report["threads"] if "SwanLab" in t], report["threads"]
    assert report["isatty_same"] is True
    assert report["begin_s"] < 0.5, report["begin_s"]  # never waits for the run to start
    run = settled_run(out["log_dir"])
    assert run.state == "finished"
    assert run.series("train/loss") == losses(range(1, 21))
    assert run.config["model"]["base_model"] == "tiny"
    # The console: every line once on the real stdout, and in the run's console record.
    printed = [x for x in out["proc"].stdout.splitlines() if x.startswith("training line")]
    assert printed == [f"training line {i}" for i in range(1, 21)]
    assert [x for x in run.console if x.startswith("training line")] == printed
    # Metadata describes the training process, not the sidecar.
    runtime = run.metadata["runtime"]
    assert runtime["pid"] == report["pid"], runtime
    assert "sidecar_main" not in runtime["command"] and "import json" in runtime["command"]


def test_user_swanlab_calls_land_in_the_same_run(tmp_path):
    for name, first in (("imported-after", False), ("imported-before", True)):
        out = train(tmp_path / name, user=True, import_first=first)
        assert out["proc"].returncode == 0, out["proc"].stderr
        report = out["report"]
        assert report["backend"] == "Sidecar" and report["has_run"] is True
        run = settled_run(out["log_dir"])
        assert report["run_id"] == run.run_id and Path(report["run_dir"]) == run.path
        assert run.series("user/value") == [(1, 1.5)]
        assert run.series("user/other") == [(2, 2.5)]
        assert run.config["user_key"] == "from-user" and run.config["user_batch"] == 7
        assert run.series("train/loss") == losses(range(1, 21))


def test_sigkilled_training_ends_crashed_with_every_point(tmp_path):
    out = train(tmp_path, kill_at=12)
    assert out["proc"].returncode == -9
    run = settled_run(out["log_dir"])
    assert run.state == "crashed", run.state
    assert "ended without finishing" in (run.error or "")
    assert run.series("train/loss") == losses(range(1, 13))  # every point it sent


def test_sigterm_training_does_not_stay_running(tmp_path):
    out = train(tmp_path, term_at=7)
    assert out["proc"].returncode == -15  # the signal kept its meaning
    run = settled_run(out["log_dir"])
    assert run.state in ("aborted", "crashed"), run.state
    assert run.series("train/loss") == losses(range(1, 8))


def test_sidecar_that_cannot_start_falls_back_in_process(tmp_path):
    out = train(tmp_path, inject=NO_SIDECAR)
    assert out["proc"].returncode == 0, out["proc"].stderr
    assert out["report"]["backend"] == "module"  # tracking.client, in this process
    warnings = [x for x in out["proc"].stderr.splitlines() if "helper process" in x]
    assert len(warnings) == 1 and "could not be started" in warnings[0], out["proc"].stderr
    run = settled_run(out["log_dir"])
    assert run.state == "finished" and run.series("train/loss") == losses(range(1, 21))


def test_sidecar_dying_before_its_run_started_replays_in_process(tmp_path):
    out = train(tmp_path, inject=SIDECAR_DIES)
    assert out["proc"].returncode == 0, out["proc"].stderr
    warnings = [x for x in out["proc"].stderr.splitlines() if "helper process" in x]
    assert len(warnings) == 1 and "before its run started" in warnings[0], out["proc"].stderr
    run = settled_run(out["log_dir"])
    assert run.state == "finished"
    assert run.series("train/loss") == losses(range(1, 21)), (
        run.path, run.records, run.problems, sorted(run.scalars), out["proc"].stderr)


def test_sidecar_dying_mid_run_costs_tracking_not_training(tmp_path):
    out = train(tmp_path, kill_sidecar_at=5)
    assert out["proc"].returncode == 0, out["proc"].stderr
    assert out["proc"].stdout.count("after the sidecar died") == 2000
    warnings = [x for x in out["proc"].stderr.splitlines() if "helper process" in x]
    assert len(warnings) == 1 and "ended unexpectedly" in warnings[0], out["proc"].stderr
    # One run: no second one started for the rest of the training. (What SwanLab had not yet
    # written when its process was killed is lost with it.)
    assert len(find_runs(out["log_dir"])) == 1


def test_progress_bar_redraws_are_dropped_before_swanlabs_emulator():
    from swanlab_autopatch.tracking import sidecar_main

    car = sidecar_main.Sidecar(status_fd=-1, training_pid=1)
    fed = {1: [], 2: []}
    car.stdout = type("R", (), {"feed": lambda self, t: fed[1].append(t)})()
    car.stderr = type("R", (), {"feed": lambda self, t: fed[2].append(t)})()
    car.started = True
    for i in range(100):
        car.console(2, f"\r{i:3d}%|bar|")
    car.console(2, "\rdone|bar|\nnext line\n")
    car.console(1, "partial ")
    car.console(1, "\x1b[Acursor\rup")  # escape codes: left to SwanLab's emulator as they are
    assert fed[2] == ["\rdone|bar|\nnext line\n"]
    car.flush_console()
    assert fed[1] == ["partial \x1b[Acursor\rup"]
