"""Read SwanLab run folders from disk, without the dashboard and without a network.

One reader for the ``runs`` / ``compare`` commands and for the tests. It understands the run
folders SwanLab 0.8 - 0.10 writes in ``offline`` and ``local`` mode (and the local copy an
``online`` run keeps)::

    <log_dir>/run-<YYYYmmdd_HHMMSS>-<id>/
        run-<id>.swanlab        the data: every start/finish/scalar/media/console record
        files/config.yaml       the config, ``key: {desc, sort, value}`` per top-level key
        files/swanlab-metadata.json
        media/<type>/<file>     media payloads referenced by media records

The data file is decoded here: a 7-byte header (``b":SWL"``, magic ``0xE1D6`` as LE u16,
format version byte ``2``), then LevelDB-log framing: 32 KiB blocks; each chunk has a 7-byte
header (CRC-32 LE u32 of the type byte followed by the data, length LE u16, type FULL=1
FIRST=2 MIDDLE=3 LAST=4); a block tail shorter than 7 bytes is zero padding. Each assembled
payload is one protobuf ``swanlab.record.v1.Record``, parsed with SwanLab's own generated class.

Reading stops at the first truncated or corrupt record; everything before it is kept and the
reason is added to ``RunRecord.problems``. SwanLab writes without flushing each record, so a
killed process normally leaves a file that ends part-way through a record.
"""
from __future__ import annotations

import json
import math
import os
import re
import socket
import struct
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Optional, Union

__all__ = [
    "RunRecord", "RunReadError", "DecoderUnavailable", "read_run", "find_runs",
    "higher_is_better", "FORMAT_VERSION",
]

FILE_IDENT = b":SWL"
FILE_MAGIC = 0xE1D6
FORMAT_VERSION = 2          # written by SwanLab 0.8.0 and every release since, up to 0.10.x
FILE_HEADER_LEN = 7
BLOCK_LEN = 32 * 1024
CHUNK_HEADER_LEN = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
# The checksum of a chunk is CRC-32 over its type byte followed by its data.
_CRC_SEED = {t: zlib.crc32(bytes([t])) for t in (FULL, FIRST, MIDDLE, LAST)}

SUPPORTED_SWANLAB = "swanlab 0.8.0 or later"
SYSTEM_PREFIX = "__swanlab__."      # hardware monitor metrics (cpu, memory, gpu ...)
_RUN_STATES = {0: "running", 1: "finished", 2: "crashed", 3: "aborted"}
_FOLDER_NAME = re.compile(r"^run-(?P<time>\d{8}_\d{6})-(?P<id>.+)$")
_TEXT_PREVIEW_BYTES = 64 * 1024

# best(): keys with one of these words (split on non-alphanumerics) are maximised, every other
# key is minimised (loss, perplexity, runtime ...).
_HIGHER_IS_BETTER = frozenset({
    "acc", "accuracy", "accuracies", "reward", "rewards", "score", "scores", "f1", "bleu",
    "rouge", "rouge1", "rouge2", "rougel", "rougelsum", "precision", "recall", "auc",
    "exact", "em", "win", "winrate", "pass@1", "pass@k",
})


# Rates: more work per unit of time is better (`train/tokens/train_per_sec_per_gpu`,
# `eval/samples_per_second`, `throughput`, `tokens/s`).
_THROUGHPUT = re.compile(r"per_?sec|per_?second|per_s\b|throughput"
                         r"|\b(it|toks?|tokens?|samples?|steps?)/s(ec)?\b")
# Values with no better direction: schedules and counts of what was done.
_NO_BETTER = re.compile(r"(^|[/._])(learning_rate|lr|epoch|total_flos|flos|global_step|step)$"
                        r"|tokens/(total|trainable)$|(^|[/._])num_tokens$")


class RunReadError(Exception):
    """The path is not a SwanLab run folder (or does not exist)."""


class DecoderUnavailable(RuntimeError):
    """SwanLab's protobuf ``Record`` class cannot be imported."""


def higher_is_better(key: str) -> bool:
    """Whether ``best(key)`` takes the maximum: the key has a word such as acc, accuracy,
    reward(s), score, f1, bleu, rouge, precision, recall or auc, or it is a throughput
    (`*per_sec*`, `*per_second*`, `*throughput*`, tokens per second). Everything else is
    minimised (loss, ppl, runtime, grad_norm ...)."""
    lowered = key.lower()
    if _THROUGHPUT.search(lowered):
        return True
    words = re.split(r"[^a-z0-9@]+", lowered)
    return any(word in _HIGHER_IS_BETTER for word in words)


def goal(key: str) -> Optional[str]:
    """"max", "min", or None for a value that follows a schedule or counts what was done
    (learning rate, epoch, FLOPs, token counts): no run is better for having more of it."""
    if _NO_BETTER.search(key.lower()):
        return None
    return "max" if higher_is_better(key) else "min"


@dataclass
class RunRecord:
    path: Path
    run_id: Optional[str] = None
    project: Optional[str] = None
    name: Optional[str] = None
    description: Optional[str] = None
    # "finished" | "crashed" | "aborted" | "running" (no finish record: still running or
    # killed) | "unknown" (the data file is missing or is not a readable SwanLab file).
    state: str = "running"
    started_at: Optional[datetime] = None
    finished_at: Optional[datetime] = None
    error: Optional[str] = None
    scalars: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    media: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # Extras beyond the core fields.
    tags: list[str] = field(default_factory=list)
    group: Optional[str] = None
    job_type: Optional[str] = None
    color: Optional[str] = None
    saves: list[dict] = field(default_factory=list)  # files stored with the run (run.save)
    system: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # __swanlab__.*
    data_file: Optional[Path] = None
    records: int = 0                 # records decoded from the data file
    console_lines: int = 0           # captured stdout/stderr lines
    console: list[str] = field(default_factory=list)  # their text, in order
    last_seen_at: Optional[datetime] = None   # newest timestamp found in any record
    metadata: dict = field(default_factory=dict)  # files/swanlab-metadata.json

    def series(self, key: str) -> list[tuple[int, float]]:
        """Every (step, value) logged under ``key``, in file order ([] if never logged)."""
        if key in self.scalars:
            return list(self.scalars[key])
        return list(self.system.get(key, []))

    def last(self, key: str) -> Optional[tuple[int, float]]:
        """The last (step, value) written for ``key`` (file order), or None."""
        points = self.scalars.get(key) or self.system.get(key)
        return points[-1] if points else None

    def best(self, key: str, maximize: Optional[bool] = None) -> Optional[tuple[int, float]]:
        """The best (step, value) of ``key``: the minimum, or the maximum when
        ``higher_is_better(key)`` (or ``maximize=True``). NaN is ignored; on a tie the
        earliest point in the file wins. None if the key has no finite-or-infinite number."""
        if maximize is None:
            maximize = higher_is_better(key)
        best: Optional[tuple[int, float]] = None
        for step, value in self.series(key):
            if math.isnan(value):
                continue
            if best is None or (value > best[1] if maximize else value < best[1]):
                best = (step, value)
        return best

    @property
    def steps(self) -> int:
        """The highest step of any logged metric (system monitor metrics excluded); 0 if none."""
        return max((step for points in self.scalars.values() for step, _ in points), default=0)

    @property
    def duration(self) -> Optional[float]:
        """Seconds from start to finish; for a run without a finish record, to the newest
        record in the file (so: how long it ran, as far as the file shows)."""
        end = self.finished_at or self.last_seen_at
        if self.started_at is None or end is None:
            return None
        return max(0.0, (end - self.started_at).total_seconds())

    def label(self) -> str:
        """A short human name: ``name (id)``, or whatever of the two is known."""
        if self.name and self.run_id:
            return f"{self.name} ({self.run_id})"
        return self.name or self.run_id or self.path.name


# -- the data file ------------------------------------------------------------------------


class _Stop(Exception):
    """Reading the data file stops here; ``str()`` is the problem to report."""


def _record_class():
    from swanlab_autopatch.tracking import compat

    try:
        Record = compat.record_class()
    except Exception as exc:  # ImportError, or protobuf runtime/version errors
        try:
            from importlib.metadata import version

            found = f"swanlab {version('swanlab')} is installed"
        except Exception:
            found = "swanlab is not installed"
        raise DecoderUnavailable(
            f"reading SwanLab run files needs {SUPPORTED_SWANLAB} (its protobuf Record "
            f"class swanlab.proto.swanlab.record.v1.record_pb2); {found} "
            f"({type(exc).__name__}: {exc})") from exc
    return Record


def _payloads(fp) -> Iterator[tuple[int, bytes]]:
    """(offset, payload) for each complete record after the file header.

    Raises _Stop at the first truncated or corrupt chunk."""
    fp.seek(0)  # block boundaries count from the start of the file, header included
    block_start = 0
    first_block = True
    pending: Optional[bytearray] = None
    pending_at = 0
    while True:
        block = fp.read(BLOCK_LEN)
        if not block:
            break
        pos = FILE_HEADER_LEN if first_block else 0
        first_block = False
        while pos < len(block):
            at = block_start + pos
            if BLOCK_LEN - pos < CHUNK_HEADER_LEN:
                break  # zero padding at the end of a block
            if len(block) - pos < CHUNK_HEADER_LEN:
                raise _Stop(f"file ends in the middle of a record at byte {at} "
                            "(run killed, or the file was cut short)")
            checksum, length, ctype = struct.unpack_from("<IHB", block, pos)
            if ctype not in _CRC_SEED:
                raise _Stop(f"unreadable data at byte {at} (not a record: chunk type "
                            f"{ctype}); the file is damaged from there on")
            end = pos + CHUNK_HEADER_LEN + length
            if end > BLOCK_LEN:
                raise _Stop(f"unreadable data at byte {at} (chunk length {length} runs past "
                            "its 32 KiB block); the file is damaged from there on")
            if end > len(block):
                raise _Stop(f"file ends in the middle of a record at byte {at} "
                            "(run killed, or the file was cut short)")
            data = block[pos + CHUNK_HEADER_LEN:end]
            if zlib.crc32(data, _CRC_SEED[ctype]) != checksum:
                raise _Stop(f"unreadable data at byte {at} (checksum mismatch); "
                            "the file is damaged from there on")
            pos = end
            if ctype == FULL:
                if pending is not None:
                    raise _Stop(f"unreadable data at byte {pending_at} (a split record "
                                "is never completed)")
                yield at, bytes(data)
            elif ctype == FIRST:
                if pending is not None:
                    raise _Stop(f"unreadable data at byte {pending_at} (a split record "
                                "is never completed)")
                pending, pending_at = bytearray(data), at
            else:
                if pending is None:
                    raise _Stop(f"unreadable data at byte {at} (the continuation of a "
                                "record that never started)")
                pending += data
                if ctype == LAST:
                    yield pending_at, bytes(pending)
                    pending = None
        block_start += len(block)
        if len(block) < BLOCK_LEN:
            break
    if pending is not None:
        raise _Stop(f"file ends in the middle of a record at byte {pending_at} "
                    "(run killed, or the file was cut short)")


def _timestamp(ts) -> Optional[datetime]:
    if ts is None or (ts.seconds == 0 and ts.nanos == 0):
        return None
    return datetime.fromtimestamp(ts.seconds + ts.nanos / 1e9, tz=timezone.utc)


def _enum_name(message, field_name: str, number: int) -> str:
    try:
        value = message.DESCRIPTOR.fields_by_name[field_name].enum_type.values_by_number[number]
        return value.name
    except Exception:
        return str(number)


def _read_data_file(run: RunRecord, data_file: Path) -> None:
    try:
        fp = open(data_file, "rb")
    except OSError as exc:
        run.state = "unknown"
        run.problems.append(f"cannot open {data_file.name}: {exc.strerror or exc}")
        return
    with fp:
        header = fp.read(FILE_HEADER_LEN)
        if not header:
            run.problems.append(f"{data_file.name} is empty (the run had only just started, "
                                "or was killed at once)")
            return
        if len(header) < FILE_HEADER_LEN or header[:4] != FILE_IDENT:
            run.state = "unknown"
            run.problems.append(f"{data_file.name} is not a SwanLab data file "
                                "(its header is not ':SWL')")
            return
        _, magic, version = struct.unpack("<4sHB", header)
        if magic != FILE_MAGIC:
            run.state = "unknown"
            run.problems.append(f"{data_file.name} is not a SwanLab data file "
                                f"(magic {magic:#06x}, expected {FILE_MAGIC:#06x})")
            return
        if version != FORMAT_VERSION:
            run.state = "unknown"
            run.problems.append(
                f"{data_file.name} uses data format version {version}; this reader knows "
                f"version {FORMAT_VERSION} (written by {SUPPORTED_SWANLAB})")
            return
        record = _record_class()()  # reused: ParseFromString clears it first
        media_index: Optional[dict[str, Path]] = None
        latest = 0.0  # newest timestamp seen, as POSIX seconds

        def seen(ts) -> None:
            nonlocal latest
            when = ts.seconds + ts.nanos * 1e-9
            if when > latest:
                latest = when

        try:
            for offset, payload in _payloads(fp):
                try:
                    record.ParseFromString(payload)
                except Exception:
                    raise _Stop(f"unreadable data at byte {offset} (not a SwanLab record); "
                                "the file is damaged from there on") from None
                run.records += 1
                kind = record.WhichOneof("record_type")
                if kind == "scalar":
                    s = record.scalar
                    key = s.key
                    target = run.system if key.startswith(SYSTEM_PREFIX) else run.scalars
                    points = target.get(key)
                    if points is None:
                        points = target[key] = []
                    points.append((s.step, s.value.number))
                    seen(s.timestamp)
                elif kind == "media":
                    if media_index is None:
                        media_index = _media_index(run.path)
                    run.media.append(_media(record.media, media_index))
                    seen(record.media.timestamp)
                elif kind == "log":
                    run.console_lines += 1
                    run.console.append(record.log.line)
                    seen(record.log.timestamp)
                elif kind == "start":
                    st = record.start
                    if run.started_at is None:  # a resumed run may add another start
                        run.started_at = _timestamp(st.started_at)
                    run.run_id = st.id or run.run_id
                    run.project = st.project or run.project
                    run.name = st.name or run.name
                    run.description = st.description or run.description
                    run.tags = list(st.tags) or run.tags
                    run.group = st.group or run.group
                    run.job_type = st.job_type or run.job_type
                    run.color = st.color or run.color
                    if run.finished_at is not None:  # started again after a finish: resumed
                        run.state, run.finished_at, run.error = "running", None, None
                elif kind == "finish":
                    fin = record.finish
                    run.state = _RUN_STATES.get(
                        fin.state, _enum_name(fin, "state", fin.state).lower())
                    run.finished_at = _timestamp(fin.finished_at)
                    run.error = fin.error or None
                    seen(fin.finished_at)
                elif kind == "save":
                    sv = record.save
                    run.saves.append({"name": sv.name, "source": sv.source_path,
                                      "target": sv.target_path,
                                      "policy": _enum_name(sv, "policy", sv.policy)
                                      if isinstance(sv.policy, int) else str(sv.policy),
                                      "type": _enum_name(sv, "type", sv.type)
                                      if isinstance(sv.type, int) else str(sv.type)})
                if record.HasField("timestamp"):
                    seen(record.timestamp)
                # column records and kinds newer than this reader are not needed.
        except _Stop as stop:
            kept = f"; kept the {run.records} records before it" if run.records else ""
            run.problems.append(f"{stop}{kept}")
        except OSError as exc:
            run.problems.append(f"reading {data_file.name} failed: {exc.strerror or exc}")
        if latest:
            run.last_seen_at = datetime.fromtimestamp(latest, tz=timezone.utc)


def _media_index(run_dir: Path) -> dict[str, Path]:
    index: dict[str, Path] = {}
    media_dir = run_dir / "media"
    if media_dir.is_dir():
        for root, _dirs, files in os.walk(media_dir):
            for name in files:
                index.setdefault(name, Path(root) / name)
    return index


def _media(rec, index: dict[str, Path]) -> dict:
    kind = _enum_name(rec, "type", rec.type).replace("COLUMN_TYPE_", "").lower()
    items = []
    for item in rec.value.items:
        entry: dict[str, Any] = {"filename": item.filename, "caption": item.caption,
                                 "size": int(item.size)}
        path = index.get(item.filename)
        entry["path"] = path
        if kind == "text" and path is not None and item.size <= _TEXT_PREVIEW_BYTES:
            try:
                entry["text"] = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                pass
        items.append(entry)
    out: dict[str, Any] = {"key": rec.key, "type": kind, "step": int(rec.step), "items": items}
    if kind == "text":
        texts = [i["text"] for i in items if "text" in i]
        if texts:
            out["text"] = texts[0] if len(texts) == 1 else texts
    return out


# -- the side files -------------------------------------------------------------------------


def _read_config(run: RunRecord) -> None:
    path = run.path / "files" / "config.yaml"
    if not path.exists():
        if run.data_file is not None and run.state != "unknown":
            run.problems.append("files/config.yaml is missing")
        return
    try:
        import yaml

        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except Exception as exc:
        detail = str(exc).strip().splitlines()
        reason = f"{type(exc).__name__}: {detail[0]}" if detail else type(exc).__name__
        run.problems.append(f"files/config.yaml unreadable ({reason})")
        return
    if loaded is None:
        return
    if not isinstance(loaded, dict):
        run.problems.append("files/config.yaml unreadable (not a mapping)")
        return

    def order(item):
        value = item[1]
        sort = value.get("sort") if isinstance(value, dict) else None
        return (0, sort) if isinstance(sort, int) else (1, 0)

    for key, value in sorted(loaded.items(), key=order):
        if isinstance(value, dict) and "value" in value:
            value = value["value"]
        run.config[str(key)] = value


def _read_metadata(run: RunRecord) -> None:
    path = run.path / "files" / "swanlab-metadata.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if isinstance(data, dict):
        run.metadata = data


def _writer_gone(run: RunRecord) -> Optional[str]:
    """For a run without a finish record: a note if the process that wrote it is gone."""
    runtime = run.metadata.get("runtime") if isinstance(run.metadata, dict) else None
    if not isinstance(runtime, dict):
        return None
    pid, host = runtime.get("pid"), runtime.get("hostname")
    if not isinstance(pid, int) or pid <= 0 or not host or host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return (f"no finish record, and its process (pid {pid} on this host) has exited: "
                "the run was killed or died without finishing")
    except OSError:
        return None  # exists but not ours (EPERM), or a platform without signals
    return None


# -- public API -------------------------------------------------------------------------------


def _folder_time(name: str) -> Optional[datetime]:
    match = _FOLDER_NAME.match(name)
    if not match:
        return None
    try:
        return datetime.strptime(match.group("time"), "%Y%m%d_%H%M%S").astimezone()
    except ValueError:
        return None


def _locate(path: Union[str, os.PathLike]) -> tuple[Path, Optional[Path]]:
    """(run folder, data file or None); RunReadError when this is not a run at all."""
    p = Path(path)
    if not p.exists():
        raise RunReadError(f"{p}: no such file or folder")
    if p.is_file():
        if p.name.startswith("run-") and p.name.endswith(".swanlab"):
            return p.parent, p
        raise RunReadError(f"{p} is not a SwanLab run folder or run-<id>.swanlab file")
    candidates = sorted(c for c in p.glob("run-*.swanlab") if c.is_file())
    if candidates:
        match = _FOLDER_NAME.match(p.name)
        if match:
            for c in candidates:
                if c.name == f"run-{match.group('id')}.swanlab":
                    return p, c
        return p, candidates[0]
    if _FOLDER_NAME.match(p.name) or (p / "files" / "config.yaml").is_file() \
            or (p / "files" / "swanlab-metadata.json").is_file():
        return p, None
    raise RunReadError(f"{p} is not a SwanLab run folder (no run-<id>.swanlab file in it)")


def read_run(path: Union[str, os.PathLike]) -> RunRecord:
    """Read one run folder (or its ``run-<id>.swanlab`` file).

    Never raises for a damaged run: whatever could be read is returned, with ``problems``
    saying what is wrong. Raises RunReadError only when ``path`` is not a SwanLab run, and
    DecoderUnavailable when SwanLab's protobuf classes cannot be imported."""
    folder, data_file = _locate(path)
    run = RunRecord(path=folder, data_file=data_file)
    match = _FOLDER_NAME.match(folder.name)
    if data_file is not None:
        run.run_id = data_file.name[len("run-"):-len(".swanlab")] or None
    elif match:
        run.run_id = match.group("id")
    _read_metadata(run)
    if data_file is None:
        run.state = "unknown"
        run.problems.append("no run-<id>.swanlab data file in the folder")
    else:
        _read_data_file(run, data_file)
    if len(list(folder.glob("run-*.swanlab"))) > 1:
        run.problems.append(f"several run-*.swanlab files in the folder; read {data_file.name}")
    if run.started_at is None:
        run.started_at = _folder_time(folder.name)
    _read_config(run)
    if run.state == "running" and data_file is not None:
        note = _writer_gone(run)
        if note:
            run.problems.append(note)
    return run


def _sort_time(run: RunRecord) -> float:
    when = run.started_at or _folder_time(run.path.name)
    if when is not None:
        return when.timestamp()
    try:
        return run.path.stat().st_mtime
    except OSError:
        return 0.0


def find_runs(log_dir: Union[str, os.PathLike]) -> list[RunRecord]:
    """Every run folder under ``log_dir`` (``run-*`` folders, and any folder holding a
    ``run-*.swanlab`` file), newest first. A damaged run is still listed, with ``problems``.
    ``log_dir`` may also be one run folder. RunReadError if ``log_dir`` is not a folder."""
    root = Path(log_dir)
    if not root.is_dir():
        raise RunReadError(f"{root}: no such folder")
    if any(root.glob("run-*.swanlab")):
        return [read_run(root)]
    runs = []
    for child in sorted(root.iterdir()):
        try:
            if not child.is_dir():
                continue
            if not (child.name.startswith("run-") or any(child.glob("run-*.swanlab"))):
                continue
        except OSError:
            continue
        try:
            runs.append(read_run(child))
        except RunReadError as exc:
            runs.append(RunRecord(path=child, state="unknown", problems=[str(exc)]))
    runs.sort(key=_sort_time, reverse=True)
    return runs
