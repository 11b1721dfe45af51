"""The package's messages: one logger, one prefix, printed on global rank 0 only, and every
one of them masked for secrets (redact.mask) on its way out.

Axolotl configures logging for its own namespace; ours has its own stderr handler so a message
shows up whatever the host configured, and is never duplicated through the root logger.
"""
from __future__ import annotations

import logging
import sys

from swanlab_autopatch._startup import debug_on

PREFIX = "[swanlab-autopatch]"
_logger: logging.Logger | None = None
_said: set[str] = set()


_stream = None  # None: sys.stderr as it is when a message is written


class _Stderr(logging.StreamHandler):
    """Resolve sys.stderr at emit time: tests and tools swap it after we start."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = _stream or sys.stderr
        super().emit(record)


def write_to(stream) -> None:
    """Messages go to this stream from now on, whatever sys.stderr becomes (the helper
    process, whose sys.stderr feeds the run's console record)."""
    global _stream
    _stream = stream


def logger() -> logging.Logger:
    global _logger
    if _logger is None:
        log = logging.getLogger("swanlab_autopatch")
        if not any(isinstance(h, _Stderr) for h in log.handlers):
            handler = _Stderr()
            handler.setFormatter(logging.Formatter(f"{PREFIX} %(levelname)s: %(message)s"))
            log.addHandler(handler)
        log.propagate = False
        log.setLevel(logging.DEBUG if debug_on() else logging.INFO)
        _logger = log
    return _logger


def _on_rank_zero() -> bool:
    from swanlab_autopatch.rank import current

    return current().is_main


def say(level: int, message: str, *, once: str | None = None, all_ranks: bool = False) -> None:
    """Log a message on global rank 0 (other ranks get it at debug level).

    once: a key; a message with a key already said in this process is dropped.
    """
    if once is not None:
        if once in _said:
            return
        _said.add(once)
    if not all_ranks and level > logging.DEBUG and not _on_rank_zero():
        level = logging.DEBUG
    log = logger()
    if log.isEnabledFor(level):
        # redact compiles its patterns on import: loaded with the first message, not with
        # Axolotl (this module is imported on every `import axolotl`).
        from swanlab_autopatch.redact import mask

        log.log(level, mask(message))


def debug(message: str) -> None:
    say(logging.DEBUG, message)


def info(message: str, **kw) -> None:
    say(logging.INFO, message, **kw)


def warning(message: str, **kw) -> None:
    say(logging.WARNING, message, **kw)


def error(message: str, **kw) -> None:
    say(logging.ERROR, message, **kw)
