"""The training side of the helper process that owns the SwanLab run.

Rank 0 starts ``python -m swanlab_autopatch.helper`` at train begin and never waits for it: the
run starts there (login, init, the cloud fallback) while training goes on. Everything the run
gets goes down one non-blocking channel (``swanlab_autopatch.channel``): metrics (packed, a few
microseconds a log), config, texts, tables, the console (console.py) and the calls of the
user's own ``swanlab.*`` code (remote_run.py). A status pipe brings lines back ("ready", "say",
"done"), read by one idle thread of this process.

What happens when, as states (lifecycle.py, docs/sidecar.md):
- It cannot be started (fork/exec fails): SwanLab runs in this process instead.
- It ends before its run is up: the same, and what it was sent is replayed here (the next call
  of the training's own thread does it; a forked child never does).
- It ends later: one warning; training goes on, untracked from there.
- This process ends (crash, SIGKILL, out of memory, preemption): the helper reads the channel
  to its end, keeps every point, marks the run crashed (aborted if the job was stopped).
- The end of training: whatever the pipe has not taken is written to a spill file the helper
  reads after the pipe, the pipe is closed, and the wait for "done" is bounded; past it the
  helper finishes on its own (and for much longer: its uploads block nobody). Nothing is written
  to the channel after the end, and every descriptor is closed exactly once.
"""
from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

from swanlab_autopatch import channel, log
from swanlab_autopatch.tracking.console import ConsoleTee, EarlyLines
from swanlab_autopatch.tracking.lifecycle import Lifecycle, State
from swanlab_autopatch.tracking.metric_names import metric_name, to_metrics
from swanlab_autopatch.tracking.request import StartRequest, connect_timeout, finish_timeout

REPLAY_LIMIT = 20_000  # frames kept for an in-process fallback until the run is up
SPILL_NAME = "spill"  # in the helper's work folder: the stream's continuation at the end
OUTPUT_NAME = "output.log"  # the helper's own stdout/stderr until its run folder exists
_fork_hook_registered = False
_live: list["HelperProcess"] = []
_launching: set[int] = set()  # the pipes' descriptors while a launch is under way
_HELD_SIGNALS = {signal.SIGINT, signal.SIGHUP, signal.SIGTERM}


def _in_forked_child() -> None:
    """A fork of the training process (a data loader worker, user code) holds copies of our
    descriptors: it closes them and never acts (no lock is taken here: another thread of the
    parent may have held one at the fork)."""
    for link in _live:
        link._become_fork_copy()
    _live.clear()
    for fd in _launching:
        channel.close_quietly(fd)
    _launching.clear()


# The console from the moment the config is loaded until the helper exists (whole job's
# console): a tee into a bounded buffer, taken over by the helper process's channel at launch.
_early: Optional[tuple[ConsoleTee, EarlyLines]] = None


def capture_console_early() -> None:
    """Rank 0 of a tracked training, once its config is loaded (shim/wrappers.around_load_cfg).
    Only with the helper process: the run starts later, and what is printed before is kept."""
    global _early
    if _early is not None:
        return
    from swanlab_autopatch.tracking.run import sidecar_enabled

    if not sidecar_enabled():
        return
    lines = EarlyLines()
    tee = ConsoleTee(lines)
    tee.install()
    _early = (tee, lines)


def release_early_console() -> None:
    """No helper process after all (the run lives in this process): stop keeping lines."""
    global _early
    early, _early = _early, None
    if early is not None:
        early[0].uninstall()


def _register_fork_hook() -> None:
    global _fork_hook_registered
    if not _fork_hook_registered:
        os.register_at_fork(after_in_child=_in_forked_child)
        _fork_hook_registered = True


def _command() -> tuple[list[str], dict]:
    """How to start the helper, and its environment. The package is found the way this process
    found it: where a fresh interpreter would not (a checkout added to sys.path at run time), its
    folder goes at the END of the helper's path, never in front of the standard library."""
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["SWANLAB_AUTOPATCH"] = "0"  # the helper never imports Axolotl: nothing to arm
    import site

    default_path = set(env.get("PYTHONPATH", "").split(os.pathsep)) | set(site.getsitepackages())
    try:
        default_path.add(site.getusersitepackages())
    except Exception:
        pass
    if root in {str(Path(p).resolve()) for p in default_path if p}:
        return [sys.executable, "-m", "swanlab_autopatch.helper"], env
    bootstrap = (f"import sys, runpy; sys.path.append({root!r}); "
                 "runpy.run_module('swanlab_autopatch.helper', run_name='__main__')")
    return [sys.executable, "-c", bootstrap], env


class HelperProcess:
    def __init__(self, proc: subprocess.Popen, writer: channel.Writer, status_fd: int,
                 workdir: str, request: StartRequest,
                 fallback: Callable[[StartRequest, list], None]) -> None:
        self.proc = proc
        self.writer = writer
        self.status_fd = status_fd
        self.workdir = workdir
        self.request = request
        self.fallback = fallback
        self.lifecycle = Lifecycle()
        self.info: Optional[dict] = None  # the "ready" line: id, name, dir, mode, url, log
        self.outcome: Optional[dict] = None  # the "done" line
        self.why_gone: Optional[str] = None
        self.started_at = time.monotonic()  # the benchmark reports the time until "ready"
        self._pid = os.getpid()
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)  # ready, done, status closed
        self._status_closed = False
        self._replay: Optional[list[bytes]] = []
        self._replay_overflow = 0
        self._schemas: dict[tuple, tuple] = {}  # log keys -> (id, positions, packer, others)
        self._next_schema = 0
        self.console = ConsoleTee(self._send_console)
        self.remote: Any = None
        self._watcher: Any = None

    # -- start ------------------------------------------------------------------------

    @classmethod
    def launch(cls, request: StartRequest,
               fallback: Callable[[StartRequest, list], None]) -> Optional["HelperProcess"]:
        """Start the helper; None (with one warning) when the process cannot be started."""
        _register_fork_hook()
        workdir = tempfile.mkdtemp(prefix="swanlab-autopatch-")
        data_r, data_w = os.pipe()
        status_r, status_w = os.pipe()
        _launching.update((data_r, data_w, status_r, status_w))
        command, env = _command()
        command += ["--status-fd", str(status_w), "--training-pid", str(os.getpid()),
                    "--workdir", workdir]
        # It starts with SIGINT, SIGHUP and SIGTERM blocked (a mask survives exec) and unblocks
        # them once it has set what they do: even the first milliseconds are covered. Here
        # they are blocked only for this thread and only during the call.
        masked = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD_SIGNALS)
        try:
            with open(os.path.join(workdir, OUTPUT_NAME), "ab") as output:
                # Its own outputs go to a file: it never holds the training's stdout or stderr
                # (`axolotl train ... | tee` ends with the training, whatever the helper does).
                proc = subprocess.Popen(command, stdin=data_r, stdout=output, stderr=output,
                                        pass_fds=(status_w,), env=env, start_new_session=True)
        except Exception as exc:
            _launching.clear()
            for fd in (data_r, data_w, status_r, status_w):
                channel.close_quietly(fd)
            shutil.rmtree(workdir, ignore_errors=True)
            log.warning(f"SwanLab's helper process could not be started ({type(exc).__name__}: "
                        f"{exc}); SwanLab runs inside the training process instead.")
            return None
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, masked)
        channel.close_quietly(data_r)
        channel.close_quietly(status_w)
        link = cls(proc, channel.Writer(data_w), status_r, workdir, request, fallback)
        _live.append(link)
        _launching.clear()
        threading.Thread(target=link._read_status, name="swanlab-autopatch-status",
                         daemon=True).start()
        training = {"pid": os.getpid(), "argv": list(sys.argv), "cwd": os.getcwd()}
        link._emit(channel.pickled(("start", request, training)), keep=True)
        link._take_over_console()
        link._offer_remote_run()
        atexit.register(link._at_exit)
        log.debug(f"SwanLab's helper process started (pid {proc.pid})")
        return link

    def _take_over_console(self) -> None:
        """The lines printed since the config was loaded go first, in order; the same tee then
        writes into the channel (no gap, no second wrapper)."""
        global _early
        early, _early = _early, None
        if early is None:
            self.console.install()
            return
        tee, lines = early
        with self._lock:
            if lines.dropped_lines:
                self._send_console(channel.STDERR, f"[swanlab-autopatch] {lines.dropped_lines} "
                                                   "earlier console lines were not kept (the "
                                                   "buffer before the run started holds 4 MB)\n")
            for kind, text in lines.pieces:
                self._send_console(kind, text)
            lines.pieces.clear()
            self.console = tee
            tee.redirect(self._send_console)

    # -- what the run gets --------------------------------------------------------------

    def active(self) -> bool:
        return self.lifecycle.state in (State.STARTING, State.READY, State.DIED_EARLY)

    def _emit(self, frame: bytes, keep: bool = False, user: Optional[str] = None,
              console: bool = False, more: bool = False) -> None:
        """Every frame goes through here: the state decides what happens to it. ``more``: the
        next frame belongs to the same record (a schema before its first metrics), so a fall
        back waits for it and replays both."""
        if self._pid != os.getpid():  # a fork the at-fork hook did not see
            return
        with self._lock:
            state = self.lifecycle.state
            if state in (State.STARTING, State.READY):
                if state is State.STARTING and not console:
                    self._keep_for_replay(frame)
                self._write(frame, keep)
                return
            if state is State.DIED_EARLY and not console:
                self._keep_for_replay(frame)
                if not more:
                    self._fall_back_now()
                return
            if user and state in (State.ENDING, State.ENDED):
                log.warning(f"Your code called swanlab {user}(...) after the run ended; it is "
                            "ignored (the run is finished).", once=f"after-end-{user}")

    def _keep_for_replay(self, frame: bytes) -> None:
        if self._replay is None:
            return
        if len(self._replay) < REPLAY_LIMIT:
            self._replay.append(frame)
        else:
            self._replay_overflow += 1

    def _write(self, frame: bytes, keep: bool) -> None:
        dropped = bool(self.writer.dropped)
        self.writer.send(frame, keep=keep)
        if self.writer.broken:
            self._gone("the pipe to it closed")
        elif self.writer.dropped and not dropped:
            log.warning("SwanLab's helper process is not keeping up: the oldest queued metrics "
                        "and console lines are dropped so training never waits (the end of "
                        "the run counts them).")

    def send(self, message: tuple) -> None:
        """A message of the channel's protocol (tracking/run.py dispatch) for the run."""
        self._send(message)

    def _send(self, message: tuple, user: Optional[str] = None, more: bool = False) -> None:
        try:
            frame = channel.pickled(message)
        except Exception as exc:  # user values that cannot be pickled
            log.warning(f"A value given to SwanLab could not be passed to its helper process "
                        f"({type(exc).__name__}: {exc}); it is left out.",
                        once=f"unpicklable-{message[0]}")
            return
        self._emit(frame, keep=message[0] in channel.KEEP, user=user, more=more)

    def _send_console(self, kind: int, text: str) -> None:
        self._emit(channel.encode(kind, text.encode("utf-8", "replace")), console=True)

    def log_logs(self, logs: dict, step: int) -> None:
        """One Trainer log, the every-step path: its numbers packed under a schema sent once
        per set of keys (no pickling, no names). A log whose values changed kind (a number
        that became text, or the reverse) gets a schema of its own."""
        keys = tuple(logs)
        values = list(logs.values())
        schema = self._schemas.get(keys)
        if schema is None or any(type(values[i]) in (int, float) for i in schema[3]):
            schema = self._new_schema(keys, logs)
        number, positions, packer, _others = schema
        try:
            frame = channel.packed_metrics(packer, number, step, [values[i] for i in positions])
        except (struct.error, TypeError):
            number, positions, packer, _others = self._new_schema(keys, logs)
            frame = channel.packed_metrics(packer, number, step, [values[i] for i in positions])
        self._emit(frame)

    def _new_schema(self, keys: tuple, logs: dict) -> tuple:
        metrics = to_metrics(logs)
        positions = [i for i, key in enumerate(keys)
                     if isinstance(key, str) and key and metric_name(key) in metrics]
        others = [i for i in range(len(keys)) if i not in positions]
        number = self._next_schema
        self._next_schema += 1
        self._send(("schema", number, [metric_name(keys[i]) for i in positions]),
                   more=True)  # its metrics frame follows at once
        schema = (number, positions, channel.metrics_packer(len(positions)), others)
        self._schemas[keys] = schema
        return schema

    def log_texts(self, texts: dict) -> None:
        self._send(("texts", texts))

    def update_config(self, values: dict) -> None:
        self._send(("config", values))

    def call(self, name: str, args: tuple, kwargs: dict) -> None:
        self._send(("call", name, args, kwargs), user=name)

    def log_table(self, key: str, headers: list, rows: list, step: int) -> None:
        self._send(("table", key, headers, rows, step))

    def save_files(self, base: str, names: list, what: str) -> None:
        self._send(("save", base, names, what))

    def run_dir(self) -> Optional[str]:
        return (self.info or {}).get("dir")

    # -- the status pipe (its own idle thread) -------------------------------------------

    def _read_status(self) -> None:
        pending = b""
        try:
            while True:
                data = os.read(self.status_fd, 65536)
                if not data:
                    break
                pending += data
                while b"\n" in pending:
                    line, _, pending = pending.partition(b"\n")
                    self._status_line(line.decode("utf-8", "replace"))
        except Exception:
            pass
        self._status_eof()

    def _status_line(self, line: str) -> None:
        word, _, rest = line.partition(" ")
        try:
            value = json.loads(rest) if rest else None
        except ValueError:
            value = rest
        if word == "say" and isinstance(value, dict):
            log.say(int(value.get("level", 20)), str(value.get("text", "")))
            return
        if word == "ready":
            from swanlab_autopatch.tracking import run_messages

            run_messages.report_start(value if isinstance(value, dict) else None)
        with self._lock:
            if word == "ready":
                self.info = value if isinstance(value, dict) else {}
                self._replay = None  # the run is up: no fallback replay any more
                self.lifecycle.move(State.READY)
            elif word == "failed":  # SwanLab could not start a run at all (it said why)
                self.why_gone = str(value)
                if self.lifecycle.move(State.LOST):
                    self._replay = None
                    self.writer.discard()
                    self.writer.close()
                    self._stop_training_side()
            elif word == "done":
                self.outcome = value if isinstance(value, dict) else {}
            self._changed.notify_all()

    def _status_eof(self) -> None:
        fd, self.status_fd = self.status_fd, -1
        if fd >= 0:
            channel.close_quietly(fd)
        with self._lock:
            self._status_closed = True
            if self.outcome is None:
                self._gone(self.why_gone or "it exited")
            self._changed.notify_all()
        try:  # reap it: a helper that ended never stays a zombie
            self.proc.wait(timeout=30)
        except Exception:
            return
        if self._helper_output() is None:  # it left nothing worth reading
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _helper_output(self) -> Optional[str]:
        """The helper's own output file, while it is in the work folder and not empty (its
        run never came up: what it printed says why)."""
        path = os.path.join(self.workdir, OUTPUT_NAME)
        try:
            return path if os.path.getsize(path) > 0 else None
        except OSError:
            return None

    def _gone(self, why: str) -> None:
        """The helper is gone (its pipe broke, or its status pipe closed without "done")."""
        with self._lock:
            self.why_gone = self.why_gone or why
            state = self.lifecycle.state
            if state is State.STARTING or (state is State.ENDING and self.info is None):
                self.lifecycle.move(State.DIED_EARLY)
            elif state is State.READY and self.lifecycle.move(State.LOST):
                self.writer.discard()
                self.writer.close()
                self._stop_training_side()
                log.warning(f"SwanLab's helper process ended unexpectedly ({self.why_gone}); "
                            f"training goes on untracked from here. The run so far is in "
                            f"{self.run_dir() or 'the SwanLab log folder'}.")
            self._changed.notify_all()
        try:
            self.proc.poll()
        except Exception:
            pass

    def _fall_back_now(self) -> None:
        """It ended before its run was up: SwanLab runs here, with what it was sent. Only the
        training's own process does this, once (the lock is held)."""
        if not self.lifecycle.move(State.FALLEN_BACK):
            return
        frames, self._replay = self._replay or [], None
        self.writer.close()
        self._stop_training_side()
        output = self._helper_output()
        log.warning(f"SwanLab's helper process ended before its run started ({self.why_gone}"
                    + (f"; its output is in {output}" if output else "") +
                    "); SwanLab runs inside the training process instead.")
        decoder = channel.Decoder()
        messages = []
        for frame in frames:
            length, kind = struct.unpack_from("<IB", frame)
            message = decoder.message(*channel.decode(kind, frame[channel.HEADER_SIZE:]))
            if message is not None and message[0] != "start":
                messages.append(message)
        if self._replay_overflow:
            log.warning(f"{self._replay_overflow} records sent before the helper ended could "
                        "not be kept for the training process's own run.")
        self.fallback(self.request, messages)

    # -- the user's own swanlab calls ---------------------------------------------------

    def _offer_remote_run(self) -> None:
        from swanlab_autopatch.tracking.remote_run import RemoteRun

        self.remote = RemoteRun(forward=self.call, update_config=self._user_config,
                                end=self._user_finish, info=self._wait_info,
                                alive=lambda: self.lifecycle.sending, config=self.request.config)
        if "swanlab" in sys.modules:
            self._install_remote(sys.modules["swanlab"])
            return
        from swanlab_autopatch.shim.post_import import ModuleWatcher

        self._watcher = ModuleWatcher(self._install_remote)
        self._watcher.watch(["swanlab"])

    def _install_remote(self, _module: Any) -> None:
        try:
            from swanlab_autopatch.tracking import compat

            if self.lifecycle.sending and compat.install_run(self.remote):
                log.debug("the user's swanlab calls go to the helper process's run")
        except Exception as exc:
            log.debug(f"could not offer the run to user code: {exc!r}")

    def _user_config(self, values: dict) -> None:
        self._send(("config", values), user="config")

    def _wait_info(self, budget: float = 5.0) -> dict:
        with self._lock:
            self._changed.wait_for(lambda: self.info is not None or not self.active(), budget)
            return dict(self.info or {})

    def _user_finish(self, state: str, error: Optional[str]) -> None:
        from swanlab_autopatch.tracking import run

        run.finish(state, error)

    def _stop_training_side(self) -> None:
        self.console.uninstall()
        if self.remote is not None:
            from swanlab_autopatch.tracking import compat

            compat.remove_run(self.remote)
        if self._watcher is not None:
            self._watcher._remove()

    # -- the end --------------------------------------------------------------------------

    def finish(self, state: str = "success", error: Optional[str] = None) -> None:
        """Hand the end of the run over and wait (bounded) for the helper to finish it."""
        if self._pid != os.getpid():
            return
        with self._lock:
            current = self.lifecycle.state
            if current is State.DIED_EARLY:
                self._keep_for_replay(channel.pickled(("finish", state, error)))
                self._fall_back_now()
                return
            if current not in (State.STARTING, State.READY):
                return
            self._emit(channel.pickled(("finish", state, error)), keep=True)
            if self.lifecycle.state is State.DIED_EARLY:  # the write found it gone
                self._fall_back_now()
                return
            if not self.lifecycle.move(State.ENDING):  # lost on that write
                return
            self._stop_training_side()
            self._hand_over_rest()
        self._wait_done()

    def _hand_over_rest(self) -> None:
        """The backlog goes to the spill file (the helper reads it after the pipe); the pipe is
        closed: its end of file tells the helper the training has nothing more."""
        writer = self.writer
        if not writer.flush() and not writer.broken:
            try:
                size = writer.spill(os.path.join(self.workdir, SPILL_NAME))
                log.debug(f"{size} bytes the helper had not read yet went to its spill file")
            except OSError as exc:
                log.debug(f"the spill file could not be written: {exc!r}")
                writer.discard()
        elif writer.broken:
            writer.discard()
        writer.close()
        if writer.dropped:
            log.warning(f"SwanLab's helper process fell behind during training: "
                        f"{writer.dropped.describe()} were dropped so training never waited; "
                        "everything else is in the run.")

    def _wait_done(self) -> None:
        budget = finish_timeout() + (0.0 if self.info is not None else connect_timeout())
        with self._lock:
            self._changed.wait_for(lambda: self.outcome is not None or self._status_closed
                                   or self.lifecycle.state is State.DIED_EARLY, budget)
            if self.lifecycle.state is State.DIED_EARLY:
                self._fall_back_now()
                return
            self.lifecycle.move(State.ENDED)
            outcome, closed = self.outcome, self._status_closed
        if outcome is not None:
            self._report_end(outcome)
        elif closed:
            log.warning(f"SwanLab's helper process ended before it finished the run "
                        f"({self.why_gone}); what it wrote is in "
                        f"{self.run_dir() or 'the SwanLab log folder'}.")
        else:
            where = (self.info or {}).get("log") or os.path.join(self.workdir, OUTPUT_NAME)
            log.warning(f"SwanLab's helper process is still finishing the run after {budget:.0f} "
                        f"s (uploads, or a cloud login); training is done and the helper goes "
                        f"on in the background. It writes how it ended to {where}.")

    def _report_end(self, outcome: dict) -> None:
        from swanlab_autopatch.tracking import run_messages

        run_messages.report_end(outcome)

    def _at_exit(self) -> None:
        """The process ends without on_train_end (evaluate, a crash caught by user code)."""
        try:
            self.finish("success")
        except Exception:
            pass

    # -- forks --------------------------------------------------------------------------

    def _become_fork_copy(self) -> None:
        self.lifecycle.state = State.FORKED
        self._replay = None
        self.console.enabled = False
        self.writer.broken = True
        for fd in (self.writer.fd, self.status_fd):
            if fd >= 0:
                channel.close_quietly(fd)
        self.writer.fd = -1
        self.status_fd = -1
