"""The helper's way back to the training process: one line per event on the status pipe
("ready {json}", "say {json}", "failed reason", "done {json}"), read by an idle thread of the
training process (tracking/helper_process.py), which prints what is said in the training's own
output. Once the training has gone the pipe is broken and everything goes to the helper's own
log file only."""
from __future__ import annotations

import json
import logging
import os
import threading
from typing import Any

from swanlab_autopatch.channel import close_quietly


class StatusPipe:
    MAX_LINE = 4000  # below PIPE_BUF: a line is written whole or not at all

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._lock = threading.Lock()
        if fd >= 0:  # a stopped training reads nothing: never wait for it
            os.set_blocking(fd, False)

    @property
    def attached(self) -> bool:
        """The training process still reads what this says."""
        return self.fd >= 0

    def line(self, word: str, value: Any = None) -> bool:
        text = word if value is None else f"{word} {json.dumps(value, default=str)}"
        with self._lock:
            if self.fd < 0:
                return False
            data = text.replace("\n", " ").encode("utf-8", "replace")[:self.MAX_LINE] + b"\n"
            try:
                os.write(self.fd, data)
                return True
            except BlockingIOError:  # its reader is stopped or busy: this line is not said
                return False
            except OSError:  # the training has gone
                self.close()
                return False

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            close_quietly(fd)


class SayToTraining(logging.Handler):
    """The package's messages in the helper (already masked by ``log``) also go to the training
    process, which prints them where the user looks."""

    def __init__(self, status: StatusPipe) -> None:
        super().__init__(logging.INFO)
        self.status = status

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.status.line("say", {"level": record.levelno, "text": record.getMessage()})
        except Exception:
            pass
