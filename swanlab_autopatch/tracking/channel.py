"""The one-way pipe from the training process to the sidecar that owns the SwanLab run.

Frames: a 5-byte header (payload length, little-endian u32; kind, u8) and the payload.
Kinds: PICKLED (a pickled tuple such as ``("log", metrics, step)``), STDOUT and STDERR
(console text, UTF-8), METRICS (one Trainer log's numbers, packed: the names went once in a
schema message). Console text and metrics skip pickling: they come every step.

The writer never blocks the training: the pipe is non-blocking, whatever the kernel does not
take at once waits in a bounded backlog and goes out with the next frame; past the bound the
oldest console and metric frames are dropped (``dropped`` counts them). Every frame is written
when it is sent, so what a killed training had logged is in the kernel's pipe buffer for the
sidecar to read; the sidecar reads in ticks (sidecar_main.py), so a write rarely wakes it.
``drain`` (at the end of the run) is the only call that waits, and only up to a deadline.
"""
from __future__ import annotations

import array
import collections
import os
import pickle
import select
import struct
import time
from typing import Any, Iterator, Optional

PICKLED, STDOUT, STDERR, METRICS = 0, 1, 2, 3
# METRICS payload: schema id (u32), step (u64), then one double per metric of the schema
# (a ("schema", id, names) message, sent once per set of Trainer log keys).
METRICS_HEAD = struct.Struct("<IQ")
_HEADER = struct.Struct("<IB")
HEADER_SIZE = _HEADER.size
MAX_BACKLOG_BYTES = 64 * 1024 * 1024
_BATCH_BYTES = 60 * 1024  # a backlog goes out in writes of at most this much
PIPE_BYTES = 1 << 20  # asked of the kernel for the pipe (Linux F_SETPIPE_SZ; default 64 KiB)
KEEP = frozenset({"start", "finish", "config", "texts", "save", "schema"})  # never dropped


def encode(kind: int, payload: bytes) -> bytes:
    return _HEADER.pack(len(payload), kind) + payload


def pickled(message: tuple) -> bytes:
    return encode(PICKLED, pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


class Writer:
    """The training side of the pipe. Not thread-safe by itself: callers hold a lock."""

    def __init__(self, fd: int, max_backlog: int = MAX_BACKLOG_BYTES) -> None:
        self.fd = fd
        os.set_blocking(fd, False)
        try:  # room for a few seconds of logs while the sidecar sleeps between reads
            import fcntl

            fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_BYTES)
        except Exception:
            pass
        self._backlog: collections.deque[list] = collections.deque()  # [frame, offset, keep]
        self._backlog_bytes = 0
        self._max_backlog = max_backlog
        self.dropped = 0
        self.broken = False  # the reader is gone (EPIPE)

    def send(self, frame: bytes, keep: bool = False) -> None:
        if self.broken:
            return
        if not self._backlog:  # the common case: straight into the pipe
            try:
                written = os.write(self.fd, frame)
            except BlockingIOError:
                written = 0
            except (BrokenPipeError, OSError):
                self.broken = True
                return
            if written == len(frame):
                return
            self._backlog.append([frame, written, keep])
            self._backlog_bytes += len(frame) - written
            return
        self._backlog.append([frame, 0, keep])
        self._backlog_bytes += len(frame)
        self._trim()
        self.flush()

    def send_message(self, message: tuple) -> None:
        self.send(pickled(message), keep=message[0] in KEEP)

    def _trim(self) -> None:
        """Drop the oldest droppable frames (never the one half written) past the bound."""
        if self._backlog_bytes <= self._max_backlog:
            return
        kept: collections.deque[list] = collections.deque()
        for index, item in enumerate(self._backlog):
            frame, offset, keep = item
            if self._backlog_bytes > self._max_backlog and index > 0 and not keep:
                self._backlog_bytes -= len(frame)
                self.dropped += 1
                continue
            kept.append(item)
        self._backlog = kept

    def flush(self) -> bool:
        """Write what the pipe takes now, whole frames joined into few writes. True when the
        backlog is empty."""
        while self._backlog and not self.broken:
            head = self._backlog[0]
            if head[1] == 0 and len(self._backlog) > 1:  # join whole frames into one write
                batch, count, size, keep = [], 0, 0, False
                for frame, _offset, frame_keep in self._backlog:
                    if size and size + len(frame) > _BATCH_BYTES:
                        break
                    batch.append(frame)
                    size += len(frame)
                    count += 1
                    keep = keep or frame_keep
                if count > 1:
                    joined = b"".join(batch)
                    for _ in range(count):
                        self._backlog.popleft()
                    self._backlog.appendleft([joined, 0, keep])
                    head = self._backlog[0]
            frame, offset, _keep = head
            try:
                written = os.write(self.fd, memoryview(frame)[offset:])
            except BlockingIOError:
                return False
            except (BrokenPipeError, OSError):
                self.broken = True
                return False
            self._backlog_bytes -= written
            if offset + written < len(frame):
                head[1] = offset + written
                return False
            self._backlog.popleft()
        return not self._backlog

    @property
    def pending(self) -> int:
        return self._backlog_bytes

    def drain(self, deadline: float) -> bool:
        """Wait (until ``deadline``, a time.monotonic value) for the backlog to go out."""
        while not self.flush():
            if self.broken:
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            select.select([], [self.fd], [], min(left, 0.5))
        return True

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass


class Reader:
    """The sidecar side: frames from a blocking file descriptor, until end of file."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buffer = bytearray()

    def frames(self, chunk: int = 1 << 20, tick: float = 0.05) -> Iterator[tuple[int, Any]]:
        """(kind, payload) pairs: the unpickled tuple for PICKLED, text for console frames.
        A frame that cannot be decoded is skipped (kind -1, the error). After a read that
        emptied the pipe, wait ``tick`` seconds before the next: writes then land in the
        pipe without waking this process every time (a training logs every step)."""
        while True:
            try:
                data = os.read(self.fd, chunk)
            except InterruptedError:
                continue
            if not data:
                return
            self._buffer += data
            yield from self._complete()
            if len(data) < chunk and tick:
                time.sleep(tick)

    def _complete(self) -> Iterator[tuple[int, Any]]:
        view = self._buffer
        start = 0
        while len(view) - start >= HEADER_SIZE:
            length, kind = _HEADER.unpack_from(view, start)
            end = start + HEADER_SIZE + length
            if len(view) < end:
                break
            payload = bytes(view[start + HEADER_SIZE:end])
            start = end
            yield decode(kind, payload)
        del self._buffer[:start]


def decode(kind: int, payload: bytes) -> tuple[int, Any]:
    try:
        if kind == PICKLED:
            return kind, pickle.loads(payload)
        if kind == METRICS:
            schema, step = METRICS_HEAD.unpack_from(payload)
            values = array.array("d")
            values.frombytes(payload[METRICS_HEAD.size:])
            return kind, (schema, step, values.tolist())
        return kind, payload.decode("utf-8", errors="replace")
    except Exception as exc:  # one bad frame never stops the others
        return -1, exc


def read_status(fd: int) -> Optional[bytes]:
    """Non-blocking read of the sidecar's status pipe: bytes, b"" at end of file, None when
    nothing is there yet."""
    try:
        return os.read(fd, 4096)
    except BlockingIOError:
        return None
    except OSError:
        return b""
