"""The one-way channel from the training process to its helper process (the process that owns
the SwanLab run). Both sides import this module; nothing here imports SwanLab.

A byte stream of frames: a 5-byte header (payload length, little-endian u32; kind, u8) and the
payload. Kinds: PICKLED (a pickled tuple such as ``("config", values)``), STDOUT and STDERR
(console text, UTF-8), METRICS (one Trainer log's numbers, packed under a schema: the names go
once, in a ``("schema", id, names)`` message). Console text and metrics skip pickling: they come
every step.

The stream goes through a pipe and, at the end of the run, possibly a spill file: the training
never waits for the helper. Whatever the pipe does not take at once waits in a bounded backlog
(``Writer``); past the bound the oldest console, metric and user-call frames are dropped, and
counted. When the training ends, what is still in the backlog is written to the spill file,
which continues the byte stream exactly where the pipe stopped, and the pipe is closed: the
helper reads the pipe to its end, then the spill file (``Reader``).
"""
from __future__ import annotations

import array
import collections
import os
import pickle
import selectors
import struct
import time
from typing import Any, Iterator, Optional

PICKLED, STDOUT, STDERR, METRICS = 0, 1, 2, 3
_HEADER = struct.Struct("<IB")
HEADER_SIZE = _HEADER.size
# METRICS payload: schema id (u32), step (u64), then one double per name of the schema.
METRICS_HEAD = struct.Struct("<IQ")
MAX_BACKLOG_BYTES = 64 * 1024 * 1024
_BATCH_BYTES = 60 * 1024  # a backlog goes out in writes of at most this much
PIPE_BYTES = 1 << 20  # asked of the kernel for the pipe (Linux F_SETPIPE_SZ; default 64 KiB)
# Messages never dropped from a full backlog: the run's identity, its end and what later
# frames depend on (schemas), and what is sent once (config, texts, files).
KEEP = frozenset({"start", "finish", "config", "texts", "save", "schema"})


def encode(kind: int, payload: bytes) -> bytes:
    return _HEADER.pack(len(payload), kind) + payload


def pickled(message: tuple) -> bytes:
    return encode(PICKLED, pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


def packed_metrics(packer: struct.Struct, schema: int, step: int, values: list) -> bytes:
    """A METRICS frame; ``packer`` is ``metrics_packer(len(values))``."""
    return encode(METRICS, packer.pack(schema, step, *values))


def metrics_packer(count: int) -> struct.Struct:
    return struct.Struct(f"<IQ{count}d")


class Dropped:
    """What a full backlog had to drop, by kind (the end of the run reports it)."""

    def __init__(self) -> None:
        self.points = 0  # metric values of Trainer logs
        self.lines = 0  # console lines
        self.records = 0  # anything else: tables, the calls of the user's own code

    def count(self, frame: bytes) -> None:
        length, kind = _HEADER.unpack_from(frame)
        if kind == METRICS:
            self.points += max(0, (length - METRICS_HEAD.size) // 8)
        elif kind in (STDOUT, STDERR):
            self.lines += max(1, frame.count(b"\n", HEADER_SIZE))
        else:
            self.records += 1

    def __bool__(self) -> bool:
        return bool(self.points or self.lines or self.records)

    def describe(self) -> str:
        parts = [(self.points, "metric value"), (self.lines, "console line"),
                 (self.records, "other record")]
        return ", ".join(f"{n} {word}{'s' if n != 1 else ''}" for n, word in parts if n)


class Writer:
    """The training side of the pipe. Not thread-safe by itself: callers hold a lock.

    The backlog is three parts, in stream order: ``_head`` (a frame, or a batch of frames,
    partly in the pipe already), ``_pinned`` (frames that must not be dropped and were in front
    of dropped ones) and ``_queue``. Trimming pops from the front of the queue only, so each
    frame is looked at once: dropping is O(1) per frame, whatever the backlog holds."""

    def __init__(self, fd: int, max_backlog: int = MAX_BACKLOG_BYTES) -> None:
        self.fd = fd
        os.set_blocking(fd, False)
        try:  # room for a few seconds of logs while the helper sleeps between reads
            import fcntl

            fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_BYTES)
        except Exception:
            pass
        self._head: Optional[bytes] = None
        self._offset = 0  # bytes of _head already in the pipe
        self._pinned: collections.deque[bytes] = collections.deque()
        self._queue: collections.deque[tuple[bytes, bool]] = collections.deque()
        self._bytes = 0  # what waits, all three parts
        self._max_backlog = max_backlog
        self.dropped = Dropped()
        self.broken = False  # the reader is gone (EPIPE)

    @property
    def pending(self) -> int:
        return self._bytes

    def send(self, frame: bytes, keep: bool = False) -> None:
        """Hand a frame over; never blocks. What the pipe does not take waits in the backlog."""
        if self.broken or self.fd < 0:
            return
        if self._bytes == 0:  # the common case: straight into the pipe
            written = self._write(frame)
            if written == len(frame) or self.broken:
                return
            self._head, self._offset = frame, written
            self._bytes = len(frame) - written
            return
        self._queue.append((frame, keep))
        self._bytes += len(frame)
        if self._bytes > self._max_backlog:
            self._trim()
        self.flush()

    def _write(self, data: Any) -> int:
        try:
            return os.write(self.fd, data)
        except BlockingIOError:
            return 0
        except OSError:  # EPIPE: the helper is gone; EBADF: closed under us
            self.broken = True
            return 0

    def _trim(self) -> None:
        while self._bytes > self._max_backlog and self._queue:
            frame, keep = self._queue.popleft()
            if keep:
                self._pinned.append(frame)
                continue
            self._bytes -= len(frame)
            self.dropped.count(frame)

    def _next_batch(self) -> Optional[bytes]:
        """The next frames (pinned first) joined into one write of at most _BATCH_BYTES."""
        batch: list[bytes] = []
        size = 0
        for source in (self._pinned, self._queue):
            while source:
                frame = source[0] if source is self._pinned else source[0][0]
                if batch and size + len(frame) > _BATCH_BYTES:
                    return b"".join(batch)
                source.popleft()
                batch.append(frame)
                size += len(frame)
        return b"".join(batch) if batch else None

    def flush(self) -> bool:
        """Write what the pipe takes now. True when nothing waits any more."""
        while not self.broken and self.fd >= 0:
            if self._head is None:
                self._head, self._offset = self._next_batch(), 0
                if self._head is None:
                    return True
            written = self._write(memoryview(self._head)[self._offset:])
            self._bytes -= written
            self._offset += written
            if self._offset < len(self._head):
                return False
            self._head = None
        return self._bytes == 0

    def drain(self, deadline: float) -> bool:
        """Wait, until ``deadline`` (time.monotonic), for the backlog to go out."""
        if self.flush():
            return True
        with selectors.DefaultSelector() as selector:  # no FD_SETSIZE limit, unlike select()
            selector.register(self.fd, selectors.EVENT_WRITE)
            while not self.flush():
                left = deadline - time.monotonic()
                if self.broken or left <= 0:
                    return False
                selector.select(min(left, 0.5))
        return True

    def spill(self, path: str) -> int:
        """Write the whole backlog to ``path`` (the continuation of the stream) and forget it.
        Returns the bytes written; raises OSError when the file cannot be written."""
        if self._bytes == 0:
            return 0
        with open(path, "wb") as out:
            if self._head is not None:
                out.write(memoryview(self._head)[self._offset:])
            out.writelines(self._pinned)
            out.writelines(frame for frame, _keep in self._queue)
        written, self._bytes = self._bytes, 0
        self._head, self._offset = None, 0
        self._pinned.clear()
        self._queue.clear()
        return written

    def discard(self) -> None:
        """Forget the backlog, counting it as dropped (the helper is gone)."""
        if self._head is not None:  # a frame cut in the pipe is lost too
            for frame in _split(self._head):
                self.dropped.count(frame)
        for frame in self._pinned:
            self.dropped.count(frame)
        for frame, _keep in self._queue:
            self.dropped.count(frame)
        self._head, self._offset, self._bytes = None, 0, 0
        self._pinned.clear()
        self._queue.clear()

    def close(self) -> None:
        """Close the pipe's end, exactly once; later sends do nothing."""
        fd, self.fd = self.fd, -1
        if fd >= 0:
            close_quietly(fd)


def close_quietly(fd: int) -> None:
    """Close a descriptor this package owns; one already gone is no error."""
    try:
        os.close(fd)
    except OSError:
        pass


def _split(data: bytes) -> Iterator[bytes]:
    """The whole frames of a joined batch."""
    start = 0
    while len(data) - start >= HEADER_SIZE:
        length, _kind = _HEADER.unpack_from(data, start)
        end = start + HEADER_SIZE + length
        yield data[start:end]
        start = end


class Reader:
    """The helper's side: frames from the pipe (non-blocking, with a timeout), then from the
    spill file the training may have left; the two are one byte stream."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        os.set_blocking(fd, False)
        self._buffer = bytearray()
        self.eof = False
        self._selector = selectors.DefaultSelector()
        self._selector.register(fd, selectors.EVENT_READ)

    def read(self, timeout: float, chunk: int = 1 << 20) -> int:
        """Read what the pipe has, waiting at most ``timeout`` seconds for something. Returns
        the bytes read (0 on timeout); sets ``eof`` at the end of the pipe."""
        if self.eof:
            return 0
        try:
            data = os.read(self.fd, chunk)
        except BlockingIOError:
            self._selector.select(timeout)
            try:
                data = os.read(self.fd, chunk)
            except (BlockingIOError, InterruptedError):
                return 0
        except InterruptedError:
            return 0
        if not data:
            self.eof = True
            self._selector.close()
            return 0
        self._buffer += data
        return len(data)

    def read_file(self, path: str, chunk: int = 1 << 20) -> Iterator[tuple[int, Any]]:
        """The frames of a spill file, continuing the stream (call once the pipe ended)."""
        with open(path, "rb") as source:
            while True:
                data = source.read(chunk)
                if not data:
                    return
                self._buffer += data
                yield from self.frames()

    def frames(self) -> Iterator[tuple[int, Any]]:
        """The complete frames read so far, decoded (see ``decode``)."""
        view = self._buffer
        start = 0
        try:
            while len(view) - start >= HEADER_SIZE:
                length, kind = _HEADER.unpack_from(view, start)
                end = start + HEADER_SIZE + length
                if len(view) < end:
                    break
                payload = bytes(view[start + HEADER_SIZE:end])
                start = end
                yield decode(kind, payload)
        finally:
            del self._buffer[:start]

    @property
    def partial(self) -> int:
        """Bytes of an incomplete frame at the end of what was read (a stream cut short)."""
        return len(self._buffer)


def decode(kind: int, payload: bytes) -> tuple[int, Any]:
    """(kind, value): the unpickled tuple for PICKLED, (schema, step, values) for METRICS, text
    for console frames; (-1, the error) for a frame that cannot be decoded."""
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


class Decoder:
    """Turns decoded frames into the messages ``tracking.run.dispatch`` applies: packed metrics
    become ``("log", {name: value}, step)`` under the schema sent before them."""

    def __init__(self) -> None:
        self._schemas: dict[int, list[str]] = {}

    def message(self, kind: int, value: Any) -> Optional[tuple]:
        """The message of a frame; None for console text, schemas and undecodable frames."""
        if kind == PICKLED:
            if value and value[0] == "schema":
                self._schemas[value[1]] = list(value[2])
                return None
            return value
        if kind == METRICS:
            schema, step, values = value
            names = self._schemas.get(schema)
            if names is None or len(names) != len(values):
                return None
            return ("log", dict(zip(names, values)), step)
        return None
