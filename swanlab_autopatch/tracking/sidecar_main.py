"""The sidecar process: owns the SwanLab run of one training process (see sidecar.py).

It reads the training's pipe to its end and drives the in-process client (client.py) with what
arrives. The training's console text is written to this process's ``sys.stdout`` /
``sys.stderr`` while SwanLab's console capture is installed on them, so SwanLab records it as
if it had been printed here, and it is not printed a second time (the user saw it already);
SwanLab's own messages do reach the terminal.

It sits in a session of its own (a Ctrl-C in the terminal reaches the training, which ends the
run as aborted; not this process directly). SIGTERM (a scheduler stopping the job) is noted and
the pipe is still read to its end, for a bounded time.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from typing import Any, Optional

TERM_GRACE = 20.0  # seconds to wait for the training's end of pipe after our own SIGTERM


class Recorder:
    """This process's stdout/stderr: text fed from the training is swallowed after SwanLab's
    capture (wrapped around ``write``) has seen it; anything else goes to the terminal."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self._feeding = threading.local()

    def feed(self, text: str) -> None:
        self._feeding.on = True
        try:
            self.write_through_capture(text)
        finally:
            self._feeding.on = False

    def write_through_capture(self, text: str) -> None:
        # SwanLab's capture replaced `write` on this object: calling the attribute goes
        # through it (and ends in Recorder.write below).
        self.write(text)

    def write(self, text: str) -> int:
        if getattr(self._feeding, "on", False):
            return len(text)
        return self._real.write(text)

    def flush(self) -> None:
        try:
            self._real.flush()
        except Exception:
            pass

    def isatty(self) -> bool:
        try:
            return self._real.isatty()
        except Exception:
            return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class _Grace(Exception):
    pass


class Sidecar:
    def __init__(self, status_fd: int, training_pid: int) -> None:
        self.status_fd = status_fd
        self.training_pid = training_pid
        self.started = False
        self.finished = False
        self.terminated: Optional[int] = None  # the signal this process got, if any
        self.stdout = Recorder(sys.stdout)
        self.stderr = Recorder(sys.stderr)
        self._partial = {1: "", 2: ""}  # per stream: text after the last newline
        self._schemas: dict[int, list[str]] = {}  # packed metrics: schema id -> names

    def status(self, line: str) -> None:
        try:
            os.write(self.status_fd, (line + "\n").encode())
        except OSError:
            pass

    def on_signal(self, signum: int, _frame: Any) -> None:
        if self.terminated is None:
            self.terminated = signum
            signal.signal(signal.SIGALRM, self._grace_over)
            signal.alarm(int(TERM_GRACE))

    def _grace_over(self, _signum: int, _frame: Any) -> None:
        raise _Grace()

    # -- messages -------------------------------------------------------------------------

    def handle(self, message: tuple) -> None:
        from swanlab_autopatch.tracking import client, run

        kind = message[0]
        if kind == "start":
            self.start(message[1], message[2])
        elif kind == "finish":
            self.flush_console()
            self.finished = True
            run.dispatch(client, message)
        elif kind == "schema":
            self._schemas[message[1]] = list(message[2])
        elif self.started:
            run.dispatch(client, message)

    def metrics(self, packed: tuple) -> None:
        from swanlab_autopatch.tracking import client

        schema, step, values = packed
        names = self._schemas.get(schema)
        if self.started and names is not None and len(names) == len(values):
            client.log_metrics(dict(zip(names, values)), step)

    def start(self, request: Any, training: dict) -> None:
        from swanlab_autopatch.config import credentials
        from swanlab_autopatch.tracking import client, compat

        credentials.register_known_secrets(request.settings)
        compat.attribute_to_process(self.training_pid)
        if training.get("argv"):
            sys.argv = list(training["argv"])
        # SwanLab captures what is written to these, and records the training's text fed in.
        sys.stdout, sys.stderr = self.stdout, self.stderr
        self.started = client.start(request)
        info = client.run_info() if self.started else None
        if info is None:
            self.status("failed SwanLab could not start a run")
            return
        self.status("ready " + json.dumps(info))

    def console(self, kind: int, text: str) -> None:
        """Feed SwanLab's capture whole lines. A progress bar redraws its line with \r many
        times a second; SwanLab records only the line as it stands when it ends, so the
        redraws before the last one are dropped here instead of run through its terminal
        emulator (unless the text moves the cursor with escape codes)."""
        if not self.started or self.finished:
            return
        lines = (self._partial[kind] + text).split("\n")
        lines = [_last_redraw(line) for line in lines]
        self._partial[kind] = lines.pop()
        if lines:
            (self.stdout if kind == 1 else self.stderr).feed("\n".join(lines) + "\n")

    def flush_console(self) -> None:
        for kind, rest in self._partial.items():
            if rest and self.started:
                (self.stdout if kind == 1 else self.stderr).feed(rest)
            self._partial[kind] = ""

    # -- the end ----------------------------------------------------------------------------

    def ended_without_finish(self) -> None:
        """The pipe ended (or our grace time ran out) before the training said finish."""
        from swanlab_autopatch.tracking import client

        if not self.started or self.finished:
            return
        self.flush_console()
        pid = self.training_pid
        how = exit_of(pid)  # read at once: the process may still be there, exiting
        stop = self.terminated or (how if how in _STOPPING else None)
        if stop:
            name = signal.Signals(stop).name
            client.finish("aborted", f"The job was stopped ({name}) before training finished "
                                     f"(training process {pid}). Everything it logged until "
                                     "then is kept.")
            return
        cause = (f"it was killed by {signal.Signals(how).name}" if how
                 else "it was killed (SIGKILL, out of memory, a scheduler) or crashed hard")
        client.finish("crashed", f"The training process (pid {pid}) ended without finishing the "
                                 f"run: {cause}. Everything it logged until then is kept.")


def _last_redraw(line: str) -> str:
    """A line redrawn with carriage returns, as it stands after the last one."""
    if "\r" in line and "\x1b[" not in line:
        return line[line.rfind("\r"):]
    return line


_STOPPING = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


def exit_of(pid: int) -> Optional[int]:
    """The signal that ended a process, when it can still be read: /proc/<pid>/stat keeps the
    exit status (field 52) until the process's parent collects it. None when unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            text = handle.read().decode("ascii", "replace")
        fields = text[text.rindex(")") + 2:].split()
        status = int(fields[49])  # field 52 of the whole line; fields here start at 3
    except (OSError, ValueError, IndexError):
        return None
    return (status & 0x7F) or None


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="swanlab-autopatch-sidecar")
    parser.add_argument("--status-fd", type=int, required=True)
    parser.add_argument("--training-pid", type=int, required=True)
    args = parser.parse_args(argv)
    car = Sidecar(args.status_fd, args.training_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, car.on_signal)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the terminal closing must not cut the run
    from swanlab_autopatch.tracking.channel import METRICS, PICKLED, Reader

    reader = Reader(sys.stdin.fileno())
    try:
        for kind, payload in reader.frames():
            try:
                if kind == PICKLED:
                    car.handle(payload)
                elif kind == METRICS:
                    car.metrics(payload)
                elif kind in (1, 2):
                    car.console(kind, payload)
            except _Grace:
                raise
            except Exception as exc:  # one bad message never ends the run
                _warn(f"sidecar: a message could not be applied ({type(exc).__name__}: {exc})")
    except _Grace:
        pass
    signal.alarm(0)
    try:
        car.ended_without_finish()
    finally:
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        car.status("done")
    return 0


def _warn(message: str) -> None:
    try:
        from swanlab_autopatch import log

        log.debug(message)
    except Exception:
        pass


if __name__ == "__main__":
    try:
        code = main()
    except Exception as exc:  # never a traceback on the user's terminal from here
        _warn(f"sidecar failed: {exc!r}")
        code = 1
    # The run is finished (or given up on): nothing is left for exit handlers, whose only one,
    # SwanLab's, would finish it again and print its own (unmasked) errors.
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(code)
