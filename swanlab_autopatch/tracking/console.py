"""A copy of the training's console output for the run, taken without changing the console.

The ``write`` method of ``sys.stdout`` and ``sys.stderr`` is wrapped on the objects themselves
(as SwanLab's own capture does, so loggers and progress bars that keep a reference to the
stream are covered): the original write runs first and unchanged, so the descriptors, colours,
``isatty()`` and progress bars are exactly as without this package; then the text is handed to
``send``, which never blocks and never raises into the caller. Forked children (data loader
workers) are skipped, and so is text written while ``send`` itself runs.
"""
from __future__ import annotations

import collections
import os
import sys
import threading
from typing import Any, Callable

from swanlab_autopatch.channel import STDERR, STDOUT

_inside = threading.local()


class EarlyLines:
    """Console text written before the helper process exists (from the moment the config is
    loaded: model and dataset loading, warnings), kept in order up to a cap; past it the
    oldest pieces go, counted."""

    CAP = 4 * 1024 * 1024

    def __init__(self) -> None:
        self.pieces: collections.deque[tuple[int, str]] = collections.deque()
        self.size = 0
        self.dropped_lines = 0

    def __call__(self, kind: int, text: str) -> None:
        self.pieces.append((kind, text))
        self.size += len(text)
        while self.size > self.CAP and len(self.pieces) > 1:
            _kind, old = self.pieces.popleft()
            self.size -= len(old)
            self.dropped_lines += max(1, old.count("\n"))


class ConsoleTee:
    def __init__(self, send: Callable[[int, str], None]) -> None:
        self._send = send
        self._pid = os.getpid()
        self._installed: list[tuple[Any, bool, Any, Any]] = []
        self.enabled = True

    def _wrapper(self, original: Any, kind: int) -> Any:
        def write(data: Any) -> Any:
            written = original(data)
            if self.enabled and not getattr(_inside, "busy", False) and os.getpid() == self._pid:
                _inside.busy = True
                try:
                    text = data if isinstance(data, str) else bytes(data).decode("utf-8", "replace")
                    if isinstance(written, int) and 0 <= written < len(text):
                        text = text[:written]
                    if text:
                        self._send(kind, text)  # looked up each time: redirect() changes it
                except Exception:
                    pass
                finally:
                    _inside.busy = False
            return written

        return write

    def redirect(self, send: Callable[[int, str], None]) -> None:
        """Hand what is written from now on to ``send`` instead (the early buffer's tee, taken
        over by the helper process's channel: nothing is lost in between)."""
        self._send = send

    def install(self) -> None:
        for kind, name in ((STDOUT, "stdout"), (STDERR, "stderr")):
            stream = getattr(sys, name, None)
            if stream is None:
                continue
            try:
                own = "write" in vars(stream)  # an instance attribute already (another tee)
            except TypeError:  # no __dict__: cannot be wrapped in place
                continue
            original = stream.write
            wrapper = self._wrapper(original, kind)
            try:
                stream.write = wrapper
            except (AttributeError, TypeError):
                continue
            self._installed.append((stream, own, original, wrapper))

    def uninstall(self) -> None:
        """Put the original writes back; where someone wrapped ours since, just go quiet."""
        self.enabled = False
        for stream, own, original, wrapper in reversed(self._installed):
            try:
                if vars(stream).get("write") is wrapper:
                    if own:
                        stream.write = original
                    else:
                        del stream.write
            except Exception:
                pass
        self._installed.clear()


def sending_now() -> bool:
    """True while the tee is handing text over (what is printed then is not copied again)."""
    return bool(getattr(_inside, "busy", False))
