"""Run tests/support/training_driver.py as a training process and watch it as a user's shell
would: its stdout and stderr are pipes read to their end (`| cat`), its exit is noticed without
collecting it (so the helper process can still read how it ended, as under a real parent), and
its helper process is followed to its end."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from swanlab_autopatch.runs.reader import find_runs
from tests.support.fake import REPO

DRIVER = REPO / "tests" / "support" / "training_driver.py"
PROBES = ("HARDWARE", "RUNTIME", "REQUIREMENTS", "CONDA", "GIT", "MONITOR")


@dataclass
class Driven:
    proc: subprocess.Popen
    tmp: Path
    stdout: str = ""
    stderr: str = ""
    exited_at: Optional[float] = None  # time.monotonic() of the exit
    eof_at: dict = field(default_factory=dict)  # stream -> time.monotonic() of its end

    @property
    def log_dir(self) -> Path:
        return self.tmp / "swanlog"

    @property
    def out(self) -> Path:
        return self.tmp / "out"

    @property
    def report(self) -> dict:
        try:
            return json.loads((self.out / "driver.json").read_text())
        except (OSError, ValueError):
            return {}

    exit_code: Optional[int] = None  # as subprocess gives it: -N when ended by signal N

    @property
    def returncode(self) -> Optional[int]:
        return self.exit_code

    def messages(self) -> list[str]:
        return [x for x in self.stderr.splitlines() if "[swanlab-autopatch]" in x]

    def outputs_closed_within(self) -> float:
        """Seconds from the exit to the end of the slower of its two output pipes."""
        return max(self.eof_at.values()) - self.exited_at


def environment(tmp: Path, runtime_probe: bool = False, extra: Optional[dict] = None) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SWANLAB", "RANK", "LOCAL_RANK", "WORLD_SIZE"))}
    env.update({"PYTHONPATH": str(REPO), "HOME": str(tmp), "SWANLAB_ROOT": str(tmp / ".swanlab"),
                **{f"SWANLAB_PROBE_{name}": "false" for name in PROBES
                   if not (runtime_probe and name == "RUNTIME")}})
    env.update(extra or {})
    return env


def drive(tmp: Path, plan: dict, env: Optional[dict] = None, runtime_probe: bool = False,
          inject: str = "", timeout: float = 300, on_exit=None) -> Driven:
    """Run a plan to the training's exit and the end of its outputs (bounded by ``timeout``).
    ``on_exit(driven)`` runs the moment the training has exited (before its outputs end)."""
    tmp.mkdir(parents=True, exist_ok=True)
    full = {"log_dir": str(tmp / "swanlog"), "out": str(tmp / "out"), "steps": 20, **plan}
    environ = environment(tmp, runtime_probe, env)
    if inject:
        (tmp / "inject").mkdir(exist_ok=True)
        (tmp / "inject" / "sitecustomize.py").write_text(inject)
        environ["PYTHONPATH"] = f"{tmp / 'inject'}{os.pathsep}{environ['PYTHONPATH']}"
    environ["T_PLAN"] = json.dumps(full)
    return watch([sys.executable, str(DRIVER), *plan.get("argv", [])], tmp, environ, timeout,
                 on_exit)


def watch(command: list[str], tmp: Path, environ: dict, timeout: float = 300,
          on_exit=None) -> Driven:
    """Run ``command`` in ``tmp`` with both outputs read to their end, as `| cat` does; note
    the exit without collecting it. ``on_exit(driven)`` runs the moment it has exited."""
    proc = subprocess.Popen(command, cwd=tmp, env=environ, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    driven = Driven(proc, tmp)
    chunks: dict = {"stdout": [], "stderr": []}

    def pump(name: str, stream) -> None:
        for data in iter(lambda: stream.read1(65536), b""):
            chunks[name].append(data)
        driven.eof_at[name] = time.monotonic()

    pumps = [threading.Thread(target=pump, args=(n, getattr(proc, n)), daemon=True)
             for n in ("stdout", "stderr")]
    for p in pumps:
        p.start()
    deadline = time.monotonic() + timeout
    while driven.exited_at is None:
        # Noticed without collecting it: /proc keeps its exit status for the helper to read.
        info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG)
        if info is not None:
            driven.exited_at = time.monotonic()
            driven.exit_code = info.si_status if info.si_code == os.CLD_EXITED \
                else -info.si_status
            break
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"{command[:3]} did not exit within {timeout} s")
        time.sleep(0.01)
    if on_exit is not None:
        on_exit(driven)
    for p in pumps:
        p.join(max(1.0, deadline - time.monotonic()))
    driven.stdout = b"".join(chunks["stdout"]).decode("utf-8", "replace")
    driven.stderr = b"".join(chunks["stderr"]).decode("utf-8", "replace")
    return driven


def settle(driven: Driven, timeout: float = 120):
    """The one run, once its helper process has ended; then the training is collected."""
    report = driven.report
    pid = report.get("helper_pid")
    deadline = time.monotonic() + timeout
    while pid and _alive(pid):
        if time.monotonic() > deadline:
            raise AssertionError(f"the helper process {pid} still runs {timeout} s after the "
                                 f"training exited")
        time.sleep(0.05)
    driven.proc.wait(timeout=30)
    runs = find_runs(driven.log_dir) if driven.log_dir.exists() else []
    assert len(runs) == 1, f"expected one run in {driven.log_dir}, found " \
                           f"{[(str(r.path), r.state) for r in runs]}\n{driven.stderr[-3000:]}"
    return runs[0]


def _alive(pid: int) -> bool:
    """Running (a zombie or a stopped process counts as ended / running as the kernel says)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            text = handle.read().decode("ascii", "replace")
        return text[text.rindex(")") + 2] != "Z"
    except (OSError, ValueError, IndexError):
        return False


def send(pid: Optional[int], sig: int) -> None:
    if pid:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def continue_helper(driven: Driven) -> None:
    send(driven.report.get("helper_pid"), signal.SIGCONT)
