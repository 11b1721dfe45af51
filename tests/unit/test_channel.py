"""The channel between the training and its helper process: frames, a backlog that never blocks
and stays bounded (dropping is O(1) and counted), the spill file that continues the stream, and
descriptors above FD_SETSIZE (defect 6 of issue 22)."""
from __future__ import annotations

import collections
import os
import resource
import struct

import pytest

from swanlab_autopatch import channel


class CountingDeque(collections.deque):
    """Counts every element the backlog's code touches (iteration and pops)."""

    touched = 0

    def __iter__(self):
        for item in super().__iter__():
            CountingDeque.touched += 1
            yield item

    def popleft(self):
        CountingDeque.touched += 1
        return super().popleft()


def _full_writer(max_backlog: int) -> tuple[channel.Writer, int]:
    read_end, write_end = os.pipe()
    writer = channel.Writer(write_end, max_backlog=max_backlog)
    writer._queue = CountingDeque(writer._queue)
    writer._pinned = CountingDeque(writer._pinned)
    while writer.flush() and not writer.pending:  # fill the pipe itself first
        writer.send(channel.encode(channel.STDOUT, b"x" * 4096))
    return writer, read_end


def metrics_frame(step: int, values: int = 3) -> bytes:
    return channel.packed_metrics(channel.metrics_packer(values), 0, step, [1.0] * values)


def test_dropping_from_a_full_backlog_touches_one_frame_per_drop():
    writer, read_end = _full_writer(max_backlog=10_000_000)
    frame = metrics_frame(1)
    while writer.pending < 10_000_000 - 2 * len(frame):
        writer.send(frame)
    queued = len(writer._queue)
    assert queued > 200_000  # a big backlog: the old code rebuilt all of it on every send
    CountingDeque.touched = 0
    for _ in range(1000):
        writer.send(frame)
    assert writer.dropped.points > 0
    assert CountingDeque.touched < 5 * 1000, CountingDeque.touched  # not ~ 1000 x 200,000
    assert writer.pending <= 10_000_000
    os.close(read_end)
    writer.close()


def test_kept_frames_survive_and_keep_their_order(tmp_path):
    writer, read_end = _full_writer(max_backlog=20_000)
    schema = channel.pickled(("schema", 7, ["a"]))
    for step in range(1, 2001):
        writer.send(metrics_frame(step))
        if step == 500:
            writer.send(schema, keep=True)
    assert writer.dropped.points > 0
    reader = channel.Reader(read_end)
    writer.spill(str(tmp_path / "spill"))
    writer.close()
    while not reader.eof:
        reader.read(1.0)
    frames = list(reader.frames()) + list(reader.read_file(str(tmp_path / "spill")))
    kinds = [kind for kind, _ in frames]
    assert kinds.count(channel.PICKLED) == 1  # the schema message, never dropped
    at = kinds.index(channel.PICKLED)
    before = [v[1] for k, v in frames[:at] if k == channel.METRICS]
    after = [v[1] for k, v in frames[at + 1:] if k == channel.METRICS]
    assert all(step <= 500 for step in before) and all(step > 500 for step in after)
    steps = before + after
    assert steps == sorted(steps) and steps[-1] == 2000  # the newest kept, in order
    assert len(steps) + writer.dropped.points // 3 == 2000  # every metric frame counted


def test_the_spill_file_continues_a_frame_cut_in_the_pipe(tmp_path):
    read_end, write_end = os.pipe()
    writer = channel.Writer(write_end)
    reader = channel.Reader(read_end)
    big = channel.encode(channel.STDOUT, b"y" * (3 << 20))  # more than the pipe holds
    writer.send(big)
    writer.send(metrics_frame(9))
    assert writer.pending  # part of the big frame is in the pipe, the rest waits
    reader.read(1.0)
    writer.spill(str(tmp_path / "spill"))
    writer.close()
    while not reader.eof:
        reader.read(1.0)
    frames = list(reader.frames()) + list(reader.read_file(str(tmp_path / "spill")))
    assert [kind for kind, _ in frames] == [channel.STDOUT, channel.METRICS]
    assert frames[0][1] == "y" * (3 << 20) and frames[1][1][1] == 9


def test_close_is_once_and_sends_after_it_write_nothing(tmp_path):
    read_end, write_end = os.pipe()
    writer = channel.Writer(write_end)
    writer.close()
    reused = os.open(tmp_path / "canary", os.O_WRONLY | os.O_CREAT)  # likely the same number
    writer.send(metrics_frame(1))
    writer.flush()
    writer.close()  # a second close must not close the canary's descriptor
    os.write(reused, b"mine")
    os.close(reused)
    os.close(read_end)
    assert (tmp_path / "canary").read_bytes() == b"mine"


def test_descriptors_above_fd_setsize_work():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1100:
        if hard != resource.RLIM_INFINITY and hard < 1100:
            pytest.fail(f"the test needs 1100 descriptors; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (1100 if hard == resource.RLIM_INFINITY
                                                    else min(hard, 4096), hard))
    read_end, write_end = os.pipe()
    high_read, high_write = os.dup2(read_end, 1050), os.dup2(write_end, 1051)
    for fd in (read_end, write_end):
        os.close(fd)
    try:
        writer = channel.Writer(high_write)
        reader = channel.Reader(high_read)
        for step in range(100_000):  # more than the pipe holds: drain has to wait
            writer.send(metrics_frame(step))
        got = 0
        import threading

        def read_all() -> None:
            nonlocal got
            while not reader.eof:
                reader.read(0.5)
                got += sum(1 for _ in reader.frames())

        thread = threading.Thread(target=read_all)
        thread.start()
        import time

        assert writer.drain(time.monotonic() + 120)
        writer.close()
        thread.join(120)
        assert got == 100_000
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_dropped_counts_name_what_was_lost():
    dropped = channel.Dropped()
    dropped.count(metrics_frame(1, values=4))
    dropped.count(channel.encode(channel.STDERR, b"a\nb\nc"))
    dropped.count(channel.pickled(("call", "log", ({"x": 1},), {})))
    assert (dropped.points, dropped.lines, dropped.records) == (4, 2, 1)
    assert dropped.describe() == "4 metric values, 2 console lines, 1 other record"
    assert struct.calcsize("<IQ4d") == len(metrics_frame(1, values=4)) - channel.HEADER_SIZE
