"""The training's console text, recorded in the run by SwanLab's own console capture.

The helper's ``sys.stdout`` and ``sys.stderr`` are ``Recorder`` objects: SwanLab's capture wraps
their ``write`` (as it does for any process), so text fed through them is recorded as if it had
been printed here, and then swallowed (the user saw it already); SwanLab's own messages go on
to the helper's log file.

Text arrives in pieces: ``ConsoleLines`` assembles whole lines, keeps only the last redraw of a
line redrawn with carriage returns (a progress bar redraws many times a second; SwanLab keeps
the line as it stands when it ends), and caps an unfinished line, so the work per piece and the
memory held stay bounded whatever the training prints.
"""
from __future__ import annotations

import re
import threading
from typing import Any, Callable, Optional

MAX_PARTIAL = 64 * 1024  # an unfinished line longer than this is recorded as it stands
# Terminal control: CSI sequences (colours, cursor moves), OSC sequences (titles, links), and
# the other control characters but tab. SwanLab records console lines as plain text.
_CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|"
                      r"\x1b[@-_]?|[\x00-\x08\x0b-\x1f\x7f]")


def plain(line: str) -> str:
    return _CONTROL.sub("", line)


class LineRecorder:
    """Whole lines into the run: straight onto SwanLab's event queue where the client allows it
    (tracking/compat.console_line_writer; no terminal emulator, no unbounded queue, the order
    kept), else through SwanLab's own capture of the Recorder streams."""

    def __init__(self, write_line: Optional[Callable[[str], None]], stdout: "Recorder",
                 stderr: "Recorder") -> None:
        self._write_line = write_line
        self._streams = {1: stdout, 2: stderr}

    @property
    def direct(self) -> bool:
        return self._write_line is not None

    def __call__(self, stream: int, text: str) -> None:
        if self._write_line is None:
            self._streams[stream].feed(text)
            return
        for line in text.split("\n")[:-1]:
            self._write_line(plain(line))


class Recorder:
    """A stream for this process's stdout/stderr: fed text is swallowed after SwanLab's
    capture (wrapped around ``write``) has seen it; anything else goes to the real stream."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self._feeding = threading.local()

    def feed(self, text: str) -> None:
        self._feeding.on = True
        try:
            self.write(text)  # through SwanLab's wrapper when it is installed
        finally:
            self._feeding.on = False

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
        return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def last_redraw(line: str) -> str:
    """A line as it stands after its last carriage return (a \\r\\n ending is not a redraw)."""
    line = line.rstrip("\r")
    cut = line.rfind("\r")
    return line if cut < 0 else line[cut + 1:]


def _collapsed(partial: str) -> str:
    """An unfinished line with its earlier redraws dropped; a carriage return at its end is
    kept (what comes next overwrites the line, unless the line ends right there)."""
    core = last_redraw(partial)
    return core + "\r" if partial.endswith("\r") else core


class ConsoleLines:
    """Whole lines per stream, handed to ``feed(stream, text)``."""

    def __init__(self, feed: Any) -> None:
        self._feed = feed
        self._partial = {1: "", 2: ""}

    def add(self, stream: int, text: str) -> None:
        pieces = text.split("\n")
        if len(pieces) == 1:  # no line ended: only the unfinished one changes
            partial = self._partial[stream] + text
            if "\r" in text:
                partial = _collapsed(partial)
            if len(partial) > MAX_PARTIAL:
                self._feed(stream, partial + "\n")
                partial = ""
            self._partial[stream] = partial
            return
        pieces[0] = self._partial[stream] + pieces[0]
        self._partial[stream] = ""
        tail = pieces.pop()
        self._feed(stream, "\n".join(last_redraw(p) for p in pieces) + "\n")
        if tail:
            self.add(stream, tail)

    def flush(self) -> None:
        """Record the unfinished lines (at the end of the run)."""
        for stream, rest in self._partial.items():
            rest = last_redraw(rest)
            if rest:
                self._feed(stream, rest + "\n")
            self._partial[stream] = ""
