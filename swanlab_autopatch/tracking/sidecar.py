"""The training side of the sidecar that owns the SwanLab run.

Rank 0 starts ``python -m swanlab_autopatch.tracking.sidecar_main`` at train begin and never
waits for it: the run starts there (login, init, the cloud fallback) while training goes on.
Everything the run gets goes through one non-blocking pipe (channel.py): metrics (a pickled
tuple per log, a few microseconds), config, texts, the console (console.py), the calls of the
user's own ``swanlab.*`` code (remote_run.py). A second pipe brings back one line when the run
has started (its id, name, folder, mode) and one when it has finished.

- The sidecar cannot be started (fork/exec fails): SwanLab runs in this process instead.
- It dies before its run started: the same, and what it was sent is replayed here.
- It dies later: one warning; training goes on, untracked from there.
- This process dies (crash, SIGKILL, out of memory, preemption): the sidecar reads to the end of
  the pipe, keeps every point it received, marks the run crashed (aborted if the job was
  terminated) and exits.
- At the end of training, the wait for the sidecar is bounded (connect and finish timeouts);
  past it the sidecar finishes on its own in the background.
"""
from __future__ import annotations

import atexit
import json
import os
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

from swanlab_autopatch import log
from swanlab_autopatch.tracking import channel
from swanlab_autopatch.tracking.console import ConsoleTee
from swanlab_autopatch.tracking.metric_names import metric_name, to_metrics
from swanlab_autopatch.tracking.request import StartRequest, connect_timeout, finish_timeout

REPLAY_LIMIT = 20_000  # messages kept for an in-process fallback until the sidecar is ready
_children_registered = False
_live: list["Sidecar"] = []


def _in_forked_child() -> None:
    """A fork of the training process (a data loader worker) must not write into the pipe or
    keep it open (the sidecar would never see the end of file)."""
    for car in _live:
        car.writer.broken = True
        car.console.enabled = False
        try:
            os.close(car.writer.fd)
        except OSError:
            pass
    _live.clear()


def _package_root() -> str:
    return str(Path(__file__).resolve().parents[2])


class Sidecar:
    def __init__(self, proc: subprocess.Popen, writer: channel.Writer, status_fd: int,
                 request: StartRequest, fallback: Callable[[StartRequest, list], None]) -> None:
        self.proc = proc
        self.writer = writer
        self.status_fd = status_fd
        self.request = request
        self.fallback = fallback
        self.info: Optional[dict] = None  # the "ready" line: id, name, dir, mode
        self.failed: Optional[str] = None
        self.done = False
        self.finished = False  # finish was sent (by us or the user's code)
        self.dead = False
        self._status = b""
        self._replay: Optional[list[tuple]] = []
        self._schemas: dict[tuple, tuple] = {}  # Trainer log keys -> (id, positions, packer)
        self._lock = threading.RLock()
        self.console = ConsoleTee(self._send_console)
        self.remote: Any = None
        self._watcher: Any = None
        self.started_at = time.monotonic()

    # -- start ------------------------------------------------------------------------

    @classmethod
    def launch(cls, request: StartRequest,
               fallback: Callable[[StartRequest, list], None]) -> Optional["Sidecar"]:
        """Start the sidecar; None (with one warning) when the process cannot be started."""
        global _children_registered
        status_r, status_w = os.pipe()
        env = dict(os.environ)
        env["SWANLAB_AUTOPATCH"] = "0"  # the sidecar never imports Axolotl: nothing to arm
        env["PYTHONPATH"] = os.pathsep.join(
            [_package_root()] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        command = [sys.executable, "-m", "swanlab_autopatch.tracking.sidecar_main",
                   "--status-fd", str(status_w), "--training-pid", str(os.getpid())]
        try:
            proc = subprocess.Popen(command, stdin=subprocess.PIPE, pass_fds=(status_w,),
                                    env=env, start_new_session=True)
        except Exception as exc:
            os.close(status_r)
            os.close(status_w)
            log.warning(f"SwanLab's helper process could not be started ({type(exc).__name__}: "
                        f"{exc}); SwanLab runs inside the training process instead.")
            return None
        os.close(status_w)
        os.set_blocking(status_r, False)
        car = cls(proc, channel.Writer(proc.stdin.fileno()), status_r, request, fallback)
        if not _children_registered:
            os.register_at_fork(after_in_child=_in_forked_child)
            _children_registered = True
        _live.append(car)
        training = {"pid": os.getpid(), "argv": list(sys.argv), "cwd": os.getcwd()}
        car._send(("start", request, training))
        car.console.install()
        car._offer_remote_run()
        atexit.register(car._at_exit)
        log.debug(f"SwanLab sidecar started (pid {proc.pid})")
        return car

    # -- what the run gets --------------------------------------------------------------

    def active(self) -> bool:
        return not (self.finished or self.dead)

    def _send(self, message: tuple) -> None:
        with self._lock:
            if self.dead:
                return
            if self._replay is not None:
                if len(self._replay) < REPLAY_LIMIT:
                    self._replay.append(message)
                self._poll()
            try:
                frame = channel.pickled(message)
            except Exception as exc:  # user values that cannot be pickled
                log.warning(f"A value given to SwanLab could not be passed to its helper process "
                            f"({type(exc).__name__}: {exc}); it is left out.",
                            once=f"unpicklable-{message[0]}")
                return
            self._write(frame, keep=message[0] in channel.KEEP)

    def _send_console(self, kind: int, text: str) -> None:
        with self._lock:
            if not self.dead:
                self._write(channel.encode(kind, text.encode("utf-8", "replace")))

    def _write(self, frame: bytes, keep: bool = False) -> None:
        dropped = self.writer.dropped
        self.writer.send(frame, keep=keep)
        if self.writer.broken:
            self._lost("the pipe to it closed")
        elif self.writer.dropped > dropped:
            log.warning("SwanLab's helper process is not keeping up: the oldest queued metrics "
                        "and console lines are dropped so training never waits.", once="dropped")

    def log_logs(self, logs: dict, step: int) -> None:
        """One Trainer log, the every-step path: once the run is up, its numbers go packed
        (channel.METRICS) under a schema sent once per set of keys: no pickling of names."""
        if self._replay is not None:  # not up yet: as messages, replayable by a fallback
            self._send(("log", to_metrics(logs), step))
            return
        keys = tuple(logs)
        schema = self._schemas.get(keys)
        if schema is None:
            schema = self._new_schema(keys, logs)
        number, positions, packer = schema
        values = list(logs.values())
        try:
            payload = packer.pack(number, step, *[values[i] for i in positions])
        except (struct.error, TypeError):  # a value that is no longer a number
            self._send(("log", to_metrics(logs), step))
            return
        with self._lock:
            if not self.dead:
                self._write(channel.encode(channel.METRICS, payload))

    def _new_schema(self, keys: tuple, logs: dict) -> tuple:
        metrics = to_metrics(logs)
        positions = [i for i, key in enumerate(keys)
                     if isinstance(key, str) and key and metric_name(key) in metrics]
        number = len(self._schemas)
        self._send(("schema", number, [metric_name(keys[i]) for i in positions]))
        packer = struct.Struct(f"<IQ{len(positions)}d")
        self._schemas[keys] = (number, positions, packer)
        return self._schemas[keys]

    def log_texts(self, texts: dict) -> None:
        self._send(("texts", texts))

    def update_config(self, values: dict) -> None:
        self._send(("config", values))

    def call(self, name: str, args: tuple, kwargs: dict) -> None:
        self._send(("call", name, args, kwargs))

    def log_table(self, key: str, headers: list, rows: list, step: int) -> None:
        self._send(("table", key, headers, rows, step))

    def save_files(self, base: str, names: list, what: str) -> None:
        self._send(("save", base, names, what))

    def run_dir(self) -> Optional[str]:
        self._poll()
        return (self.info or {}).get("dir")

    # -- the status pipe ----------------------------------------------------------------

    def _poll(self) -> None:
        """Read the sidecar's status lines, if any (never blocks)."""
        data = channel.read_status(self.status_fd)
        if data is None:
            return
        if data == b"":
            self._status_closed()
            return
        self._status += data
        while b"\n" in self._status:
            line, _, self._status = self._status.partition(b"\n")
            self._status_line(line.decode("utf-8", "replace"))

    def _status_line(self, line: str) -> None:
        word, _, rest = line.partition(" ")
        if word == "ready":
            try:
                self.info = json.loads(rest)
            except ValueError:
                self.info = {}
            self._replay = None  # the run is up: no fallback replay any more
        elif word == "failed":
            self.failed = rest
        elif word == "done":
            self.done = True

    def _status_closed(self) -> None:
        try:
            os.close(self.status_fd)
        except OSError:
            pass
        self.status_fd = -1
        if not self.done:
            self._lost(self.failed or "it exited")

    def _lost(self, why: str) -> None:
        """The sidecar is gone: before its run started, SwanLab runs here instead."""
        if self.dead:
            return
        self.dead = True
        replay, self._replay = self._replay, None
        self._stop_training_side()
        if replay is not None:  # what it was sent (up to the finish, maybe) is replayed here
            log.warning(f"SwanLab's helper process ended before its run started ({why}); "
                        "SwanLab runs inside the training process instead.")
            self.fallback(self.request, replay[1:])
        elif not self.finished:
            log.warning(f"SwanLab's helper process ended unexpectedly ({why}); training goes "
                        f"on untracked from here. The run so far is in "
                        f"{(self.info or {}).get('dir', 'the SwanLab log folder')}.")

    # -- the user's own swanlab calls ---------------------------------------------------

    def _offer_remote_run(self) -> None:
        from swanlab_autopatch.tracking.remote_run import RemoteRun

        self.remote = RemoteRun(forward=self.call, update_config=self.update_config,
                                end=self._user_finish, info=self._wait_info,
                                config=self.request.config)
        if "swanlab" in sys.modules:
            self._install_remote(sys.modules["swanlab"])
            return
        from swanlab_autopatch.shim.post_import import ModuleWatcher

        self._watcher = ModuleWatcher(self._install_remote)
        self._watcher.watch(["swanlab"])

    def _install_remote(self, _module: Any) -> None:
        try:
            from swanlab_autopatch.tracking import compat

            if self.active() and compat.install_run(self.remote):
                log.debug("the user's swanlab calls go to the sidecar's run")
        except Exception as exc:
            log.debug(f"could not offer the run to user code: {exc!r}")

    def _wait_info(self, budget: float = 5.0) -> dict:
        deadline = time.monotonic() + budget
        while self.info is None and not self.dead and time.monotonic() < deadline:
            self._poll()
            time.sleep(0.02)
        return self.info or {}

    def _user_finish(self, state: str, error: Optional[str]) -> None:
        from swanlab_autopatch.tracking import run

        run.finish(state, error)

    # -- the end --------------------------------------------------------------------------

    def finish(self, state: str = "success", error: Optional[str] = None) -> None:
        """Send the end of the run and wait (bounded) for the sidecar to finish it."""
        with self._lock:
            if self.finished or self.dead:
                return
            self.finished = True
            self._send(("finish", state, error))
        self._stop_training_side()
        self._wait_done()

    def _stop_training_side(self) -> None:
        self.console.uninstall()
        if self.remote is not None:
            from swanlab_autopatch.tracking import compat

            compat.remove_run(self.remote)
        if self._watcher is not None:
            self._watcher._remove()
        if self in _live:
            _live.remove(self)

    def _wait_done(self) -> None:
        budget = finish_timeout() + (0.0 if self.info is not None else connect_timeout())
        deadline = time.monotonic() + budget
        self.writer.drain(deadline)
        self.writer.close()
        try:
            self.proc.stdin.close()
        except Exception:
            pass
        while not self.done and time.monotonic() < deadline:
            if self.status_fd < 0:
                break
            self._poll()
            if self.done or self.dead:
                break
            import select

            select.select([self.status_fd], [], [], min(0.5, max(0.0, deadline - time.monotonic())))
        if self.done:
            try:
                self.proc.wait(timeout=5)
            except Exception:
                pass
            return
        if not self.dead:
            where = (self.info or {}).get("dir")
            log.warning(f"SwanLab's helper process has not finished the run within {budget:.0f} s "
                        "(uploads or the cloud login still going); training is done and the "
                        "helper finishes on its own in the background"
                        + (f"; the local copy is in {where}" if where else "") + ".")

    def _at_exit(self) -> None:
        """The process ends without on_train_end (evaluate, a crash caught by user code)."""
        try:
            self.finish("success")
        except Exception:
            pass
