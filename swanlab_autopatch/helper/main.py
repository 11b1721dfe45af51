"""The helper process: owns the SwanLab run of one training process.

It reads the training's channel (channel.py) to its end, then the spill file the training may
have left, and drives the SwanLab client (tracking/client.py) with what arrives. Its own stdout
and stderr never are the training's: they go to a file, moved into the run's folder once the
run is up (``debug/swanlab-autopatch-helper.log``); what the user must see goes back to the
training through the status pipe (status.py) while the training is there.

Signals: SIGINT and SIGHUP are ignored for its whole life (also after SwanLab's ``init``
installs its own SIGINT handler): a Ctrl-C or a hang-up of the job's terminal reaches the
training, which ends the run itself. SIGTERM (the job is being stopped) is noted: the channel is
still read to its end for up to TERM_GRACE seconds, and the run ends ``aborted``.

When the training has gone, the helper blocks nobody: a cloud run's uploads go on as long as
they make progress (tracking/request.py: upload_timeout, UPLOAD_STALL).
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any, Optional

from swanlab_autopatch import channel
from swanlab_autopatch.helper.alerting import Alerting
from swanlab_autopatch.helper.console_record import ConsoleLines, LineRecorder, Recorder
from swanlab_autopatch.helper.status import SayToTraining, StatusPipe

TERM_GRACE = 20.0  # seconds to read on after our own SIGTERM
READ_WAIT = 0.5  # longest sleep waiting for the channel (the loop's tick)
BATCH_WAIT = 0.05  # after a short read: let writes gather in the pipe instead of waking often
CONSOLE_BACKLOG = 2000  # pieces of text SwanLab's capture may hold before reading pauses
LOG_NAME = "swanlab-autopatch-helper.log"
_STOPPING = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


class _NoRun(Exception):
    """SwanLab could not start a run at all: the helper has nothing to do."""


class Helper:
    def __init__(self, status: StatusPipe, training_pid: int, workdir: str) -> None:
        self.status = status
        self.training_pid = training_pid
        self.workdir = workdir
        self.started = False  # SwanLab's run is up
        self.finish: Optional[tuple] = None  # ("finish", state, error) once the training said so
        self.terminated_at: Optional[float] = None
        self.term_signal: Optional[int] = None
        self.stdout = Recorder(sys.stdout)
        self.stderr = Recorder(sys.stderr)
        self.recorder = LineRecorder(None, self.stdout, self.stderr)
        self.lines = ConsoleLines(self._feed)
        self.decoder = channel.Decoder()
        self.log_path: Optional[str] = None
        self.exit_signal: Optional[int] = None
        self.outcome: dict = {}
        self.alerting: Optional[Alerting] = None

    # -- signals ------------------------------------------------------------------------

    def on_term(self, signum: int, _frame: Any) -> None:
        if self.terminated_at is None:
            self.terminated_at = time.monotonic()
            self.term_signal = signum

    def _grace_over(self) -> bool:
        return self.terminated_at is not None and \
            time.monotonic() - self.terminated_at > TERM_GRACE

    # -- the loop -------------------------------------------------------------------------

    def run(self, reader: channel.Reader) -> None:
        while not reader.eof and not self._grace_over():
            if self._console_backlogged():  # SwanLab's capture is behind: let it catch up
                time.sleep(BATCH_WAIT)
                continue
            got = reader.read(READ_WAIT)
            self._apply_all(reader.frames())
            if self.alerting is not None and self.finish is None:  # saving the model is
                self.alerting.tick()  # no stall
            if 0 < got < (1 << 20):
                time.sleep(BATCH_WAIT)
        # How the training process ended, read at once: /proc keeps it only until its parent
        # collects it.
        self.exit_signal = exit_of(self.training_pid)
        if reader.eof:
            spill = os.path.join(self.workdir, "spill")
            if os.path.exists(spill):
                self._apply_all(reader.read_file(spill))
        self.end()

    def _apply_all(self, frames: Any) -> None:
        for kind, value in frames:
            try:
                self.apply(kind, value)
            except _NoRun:
                raise
            except Exception as exc:  # one bad message never ends the run
                _debug(f"a message could not be applied ({type(exc).__name__}: {exc})")

    def apply(self, kind: int, value: Any) -> None:
        if kind in (channel.STDOUT, channel.STDERR):
            if self.started and self.finish is None:
                self.lines.add(kind, value)
            return
        message = self.decoder.message(kind, value)
        if message is None:
            return
        word = message[0]
        if word == "start":
            self.start(message[1], message[2])
        elif word == "finish":
            self.finish = message
        elif self.started:
            from swanlab_autopatch.tracking import client, run

            run.dispatch(client, message)
            if word == "log" and self.alerting is not None and self.finish is None:
                self.alerting.metrics(message[2], message[1])

    def _feed(self, stream: int, text: str) -> None:
        self.recorder(stream, text)

    def _console_backlogged(self) -> bool:
        """Only for the fallback through SwanLab's capture, whose queue has no bound."""
        if not self.started or self.recorder.direct:
            return False
        from swanlab_autopatch.tracking import client, compat

        pending = compat.console_pending(client.current_run())
        return pending is not None and pending > CONSOLE_BACKLOG

    # -- the start ------------------------------------------------------------------------

    def start(self, request: Any, training: dict) -> None:
        from swanlab_autopatch.config import credentials
        from swanlab_autopatch.redact import mask
        from swanlab_autopatch.tracking import client, compat

        credentials.register_known_secrets(request.settings)
        compat.attribute_to_process(self.training_pid)
        if training.get("argv"):  # SwanLab records it: never a key given on the command line
            sys.argv = [mask(arg) for arg in training["argv"]]
        # SwanLab captures what is written to these; the training's text is fed through them.
        sys.stdout, sys.stderr = self.stdout, self.stderr
        client.notifications_sent_elsewhere()
        # swanlab.init installs its own SIGINT handler (which ends the run "aborted"): a SIGINT
        # that arrives while it runs waits, blocked, and meets our ignore once init is done.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            self.started = client.start(request)
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        if self.started:
            writer = compat.console_line_writer(client.current_run())
            if writer is None and not (compat.console_capture_installed(self.stdout)
                                       and compat.console_capture_installed(self.stderr)):
                writer = _ignore  # no way into the run's console record (one warning said so)
            self.recorder = LineRecorder(writer, self.stdout, self.stderr)
        info = client.run_info() if self.started else None
        if info is None:  # client.start said why; nothing more to do here
            self.status.line("failed", "SwanLab could not start a run")
            raise _NoRun()
        self.log_path = self._move_output(info.get("dir"))
        info["log"] = self.log_path
        self.status.line("ready", info)
        try:
            self.alerting = Alerting(request.settings, self.training_pid)
            self.alerting.started(info, request.settings.swanlab_project, request.config)
        except Exception as exc:  # alerts never cost the run
            _debug(f"alerts are off: {exc!r}")

    def _move_output(self, run_dir: Optional[str]) -> Optional[str]:
        """From here on this process's stdout and stderr go to a file in the run's folder,
        with what they had so far."""
        current = os.path.join(self.workdir, "output.log")
        if not run_dir:
            return current
        folder = Path(run_dir) / "debug"
        target = folder / LOG_NAME if folder.is_dir() else Path(run_dir) / LOG_NAME
        try:
            for stream in (sys.__stdout__, sys.__stderr__):
                stream.flush()
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                with open(current, "rb") as earlier:
                    os.write(fd, earlier.read())
                os.dup2(fd, 1)
                os.dup2(fd, 2)
            finally:
                os.close(fd)
            os.remove(current)
            return str(target)
        except OSError as exc:
            _debug(f"the helper's output stays in {current}: {exc!r}")
            return current

    # -- the end ----------------------------------------------------------------------------

    def end(self) -> None:
        from swanlab_autopatch.tracking import client

        if not self.started:
            return
        self.lines.flush()
        self._wait_for_console()
        if self.finish is not None:
            _word, state, error = self.finish[:3]
            killed_by = None
        else:
            state, error, killed_by = self._how_it_ended()
        if self.alerting is not None:
            self.alerting.ended(state, error, killed_by)
        uploaded = client.finish(state, error, patient=True)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.outcome = client.outcome(state, uploaded)

    def _wait_for_console(self, budget: float = 60.0) -> None:
        """SwanLab gives its console thread 5 s at finish: hand it nothing it cannot take."""
        deadline = time.monotonic() + budget
        while self._console_backlogged() or self._console_pending():
            if time.monotonic() > deadline:
                return
            time.sleep(BATCH_WAIT)

    def _console_pending(self) -> bool:
        if self.recorder.direct:
            return False
        from swanlab_autopatch.tracking import client, compat

        return bool(compat.console_pending(client.current_run()))

    def _how_it_ended(self) -> tuple[str, str, str]:
        """The channel ended (or our grace time ran out) before the training said finish:
        the state, why, and the signal that ended the training ("unknown" when not known)."""
        pid, how = self.training_pid, self.exit_signal
        stop = self.term_signal or (how if how in _STOPPING else None)
        if stop:
            name = signal.Signals(stop).name
            return "aborted", f"The job was stopped ({name}) before training finished " \
                              f"(training process {pid}). Everything it logged until then is " \
                              "kept.", name
        cause = (f"it was killed by {signal.Signals(how).name}" if how
                 else "it was killed (SIGKILL, out of memory, a scheduler) or crashed hard")
        return "crashed", f"The training process (pid {pid}) ended without finishing the run: " \
                          f"{cause}. Everything it logged until then is kept.", \
            signal.Signals(how).name if how else "unknown"


def _ignore(_line: str) -> None:
    pass


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


def _record_end(outcome: dict) -> None:
    """The last line of the helper's own log: how it ended (also when nobody waits for it)."""
    try:
        sys.__stderr__.write(f"[swanlab-autopatch] helper done: state {outcome.get('state')}, "
                             f"uploaded {outcome.get('uploaded')}, peak memory "
                             f"{outcome.get('peak_rss_kb', 0) // 1024} MB\n")
        sys.__stderr__.flush()
    except Exception:
        pass


def _debug(message: str) -> None:
    try:
        from swanlab_autopatch import log

        log.debug(message)
    except Exception:
        pass


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="swanlab-autopatch-helper")
    parser.add_argument("--status-fd", type=int, required=True)
    parser.add_argument("--training-pid", type=int, required=True)
    parser.add_argument("--workdir", required=True)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the terminal closing must not cut the run
    status = StatusPipe(args.status_fd)
    helper = Helper(status, args.training_pid, args.workdir)
    signal.signal(signal.SIGTERM, helper.on_term)
    # Started with these blocked (tracking/helper_process.py): what arrived meanwhile is
    # delivered now, to what was just set.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGHUP, signal.SIGTERM})
    from swanlab_autopatch import log

    log.write_to(sys.__stderr__)  # never into the console record fed through sys.stderr
    log.logger().addHandler(SayToTraining(status))
    try:
        helper.run(channel.Reader(sys.stdin.fileno()))
    except _NoRun:
        pass
    finally:
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        import resource

        helper.outcome["peak_rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        _record_end(helper.outcome)
        status.line("done", helper.outcome)
        status.close()
        if helper.alerting is not None:  # the training does not wait for these
            helper.alerting.flush()
        if helper.log_path and not helper.log_path.startswith(helper.workdir):
            shutil.rmtree(helper.workdir, ignore_errors=True)
        else:
            try:  # the spill is read; the output file stays where the training said it is
                os.remove(os.path.join(helper.workdir, "spill"))
            except OSError:
                pass
    return 0


def run_and_exit() -> None:
    try:
        code = main()
    except Exception as exc:  # never a traceback on anyone's terminal from here
        _debug(f"the helper process failed: {exc!r}")
        code = 1
    # The run is finished (or given up on): nothing is left for exit handlers, whose only one,
    # SwanLab's, would finish it again and print its own (unmasked) errors.
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(code)


if __name__ == "__main__":
    run_and_exit()
