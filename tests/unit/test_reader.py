"""swanlab_autopatch.runs.reader against run folders written by the real SwanLab package.

Every run is produced by `swanlab` itself (offline or local mode) in a subprocess, so its
global state, excepthook and atexit handlers never touch pytest. Damaged runs are copies of
a real run with the data file cut, overwritten or extended.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from swanlab_autopatch.runs.reader import (DecoderUnavailable, RunReadError, RunRecord, find_runs,
                                      goal, higher_is_better, read_run)

# ---------------------------------------------------------------------------------------------
# Producers: a JSON spec in, SwanLab run folders out.

PRODUCER = textwrap.dedent(r'''
    import json, os, signal, sys, time
    import swanlab

    with open(sys.argv[1], encoding="utf-8") as fp:
        spec = json.load(fp)
    for run in spec["runs"]:
        swanlab.init(project=run["project"], name=run.get("name"),
                     description=run.get("description"), tags=run.get("tags"),
                     mode=run.get("mode", "offline"),
                     log_dir=run.get("log_dir") or spec["log_dir"],
                     config=run.get("config"))
        steps = sorted({step for points in run["metrics"].values() for step, _ in points})
        for step in steps:
            row = {key: value for key, points in run["metrics"].items()
                   for s, value in points if s == step}
            swanlab.log(row, step=step)
        if run.get("text"):
            swanlab.log({"notes": swanlab.Text(run["text"], caption=run.get("caption", "a caption"))},
                        step=1)
        end = run.get("end", "finish")
        if end == "finish":
            swanlab.finish()
        elif end == "abort":
            swanlab.finish(state="aborted")
        elif end == "crash":
            raise RuntimeError("boom " + run["name"])
        elif end == "kill":
            # SIGKILL once SwanLab's writer thread has handed points to the file (how long that
            # takes depends on how busy the machine is): the test reads the written prefix.
            from pathlib import Path
            from swanlab_autopatch.runs.reader import read_run

            folder = next(Path(spec["log_dir"]).glob(f"run-*-{swanlab.get_run().id}"))
            deadline = time.monotonic() + 120
            while True:
                try:
                    if read_run(folder).scalars.get("train/loss"):
                        break
                except Exception:  # the file is being written: try again
                    pass
                if time.monotonic() > deadline:
                    sys.exit(f"no train/loss point reached the file in {folder} within 120 s")
                time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGKILL)
''')


def producer_env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWANLAB")}
    env.update({
        "SWANLAB_ROOT": str(root / "swanlab-root"),  # nothing goes to ~/.swanlab
        "SWANLAB_AUTOPATCH": "0",
        "SWANLAB_PROBE_REQUIREMENTS": "false", "SWANLAB_PROBE_HARDWARE": "false",
        "SWANLAB_PROBE_GIT": "false", "SWANLAB_PROBE_MONITOR": "false",
        "PYTHONUNBUFFERED": "1",
        # the reader, for "kill"
        "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]),
                                                    os.environ.get("PYTHONPATH")])),
    })
    return env


def start_producer(root: Path, log_dir: Path, runs: list[dict], env_extra=None):
    env = producer_env(root)
    env.update(env_extra or {})
    spec = root / f"spec-{log_dir.name}.json"
    spec.write_text(json.dumps({"log_dir": str(log_dir), "runs": runs}), encoding="utf-8")
    return subprocess.Popen([sys.executable, "-c", PRODUCER, str(spec)], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait(proc, expect_rc) -> str:
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == expect_rc, f"producer exited {proc.returncode}:\n{out}"
    return out


def curve(n: int, scale: float = 1.0, start: int = 1) -> list[list]:
    """Values that are exact binary fractions and shuffled-looking ones alike."""
    return [[s, scale / s + (s % 3) * 0.125] for s in range(start, start + n)]


def as_points(points) -> list[tuple[int, float]]:
    return [(int(s), float(v)) for s, v in points]


FINISHED = {
    "project": "reader-proj", "name": "exp-finished", "description": "a finished run",
    "tags": ["t1", "t2"],
    "config": {"learning_rate": 0.0002, "lora": {"r": 8, "alpha": 16}, "model": "tiny",
               "layers": [1, 2, 3], "flag": True},
    "metrics": {"train/loss": curve(40, 2.0), "eval/loss": curve(4, 3.0, start=10),
                "eval/acc": [[10, 0.5], [20, 0.75], [30, 0.75], [40, 0.625]],
                "train/learning_rate": [[s, 0.0002 * (1 - s / 50)] for s in range(1, 41)]},
    "text": "hello from the text media",
}
ABORTED = {"project": "reader-proj", "name": "exp-aborted", "config": {"learning_rate": 0.1},
           "metrics": {"train/loss": [[1, 4.0], [2, float("nan")], [3, 3.5], [4, 3.5],
                                      [5, 3.75]]},
           "end": "abort"}
CRASHED = {"project": "reader-proj", "name": "exp-crashed", "config": {"learning_rate": 0.3},
           "metrics": {"train/loss": curve(25, 1.5)}, "end": "crash"}
# 1500 x 2 scalars (> 150 KiB: records straddle 32 KiB blocks, FIRST + LAST chunks) and one
# media record with a 70 000-character caption (longer than two blocks: FIRST, MIDDLE, LAST).
BIG = {"project": "reader-proj", "name": "exp-big", "config": {"learning_rate": 0.01},
       "metrics": {"train/loss": curve(1500, 5.0), "train/grad_norm": curve(1500, 0.5)},
       "text": "short body", "caption": "0123456789" * 7000}
KILLED = {"project": "reader-proj", "name": "exp-killed", "config": {"learning_rate": 0.02},
          "metrics": {"train/loss": curve(800, 7.0)}, "end": "kill"}
LOCAL = {"project": "reader-local", "name": "exp-local", "mode": "local",
         "config": {"learning_rate": 0.05}, "metrics": {"train/loss": curve(30, 1.0)}}


@pytest.fixture(scope="module")
def produced(tmp_path_factory):
    """Log folders written by real SwanLab: produced once, in parallel subprocesses."""
    root = tmp_path_factory.mktemp("swanruns")
    dirs = {name: root / name for name in ("main", "crash", "kill", "local")}
    # Three processes (importing swanlab is the slow part): crashing and being killed each
    # end a process; the other runs share one, one after another. Local mode works without
    # swanboard (SwanLab logs an error about the dashboard and carries on).
    local = dict(LOCAL, log_dir=str(dirs["local"]))
    procs = {
        "main": start_producer(root, dirs["main"], [FINISHED, ABORTED, BIG, local]),
        "crash": start_producer(root, dirs["crash"], [CRASHED]),
        "kill": start_producer(root, dirs["kill"], [KILLED]),
    }
    outputs = {"main": wait(procs["main"], 0), "crash": wait(procs["crash"], 1),
               "kill": wait(procs["kill"], -9)}
    assert "boom exp-crashed" in outputs["crash"]
    return root, dirs


def run_folder(log_dir: Path, name: str) -> Path:
    """The run folder whose start record has experiment name `name`."""
    for folder in sorted(log_dir.glob("run-*")):
        if read_run(folder).name == name:
            return folder
    raise AssertionError(f"no run {name} in {log_dir}")


@pytest.fixture(scope="module")
def finished_dir(produced) -> Path:
    return run_folder(produced[1]["main"], "exp-finished")


def copy_run(src: Path, dest_root: Path) -> tuple[Path, Path]:
    dest = dest_root / src.name
    shutil.copytree(src, dest)
    return dest, next(dest.glob("run-*.swanlab"))


def chunk_offsets(data: bytes) -> list[tuple[int, int, int]]:
    """(offset, length, type) of every chunk, walking the framing independently of the
    reader: 7-byte file header, 32 KiB blocks, zero-padded tails shorter than 7 bytes."""
    out, pos = [], 7
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:
            pos += 32768 - pos % 32768
            continue
        _crc, length, ctype = struct.unpack_from("<IHB", data, pos)
        out.append((pos, length, ctype))
        pos += 7 + length
    return out


def assert_prefix(got: list, expected: list) -> None:
    assert got, "nothing was read"
    assert got == expected[:len(got)]


# ---------------------------------------------------------------------------------------------
# Complete runs


def test_finished_run_reads_back_exactly(finished_dir):
    run = read_run(finished_dir)
    assert isinstance(run, RunRecord)
    assert run.path == finished_dir
    assert run.project == "reader-proj"
    assert run.name == "exp-finished"
    assert run.description == "a finished run"
    assert run.tags == ["t1", "t2"]
    assert run.state == "finished"
    assert run.error is None
    assert run.problems == []
    assert finished_dir.name.endswith("-" + run.run_id)
    assert run.data_file.name == f"run-{run.run_id}.swanlab"
    assert run.scalars == {k: as_points(v) for k, v in FINISHED["metrics"].items()}
    assert run.config == FINISHED["config"]
    assert list(run.config) == list(FINISHED["config"])  # insertion order kept (`sort`)
    assert run.steps == 40
    assert run.started_at is not None and run.finished_at is not None
    assert run.started_at.tzinfo is not None
    assert run.finished_at >= run.started_at
    assert run.duration == pytest.approx((run.finished_at - run.started_at).total_seconds())
    assert 0 <= run.duration < 120


def test_finished_run_series_last_best(finished_dir):
    run = read_run(finished_dir)
    loss = as_points(FINISHED["metrics"]["train/loss"])
    assert run.series("train/loss") == loss
    assert run.series("not/logged") == []
    assert run.last("train/loss") == loss[-1]
    assert run.last("not/logged") is None and run.best("not/logged") is None
    assert run.best("train/loss") == min(loss, key=lambda p: p[1])
    # accuracy is maximised; of the two 0.75s the earlier step wins
    assert run.best("eval/acc") == (20, 0.75)
    assert run.best("eval/acc", maximize=False) == (10, 0.5)
    assert run.best("eval/loss") == min(as_points(FINISHED["metrics"]["eval/loss"]),
                                        key=lambda p: p[1])


def test_text_media_is_listed_with_its_content(finished_dir):
    run = read_run(finished_dir)
    assert len(run.media) == 1
    media = run.media[0]
    assert (media["key"], media["type"], media["step"]) == ("notes", "text", 1)
    assert media["text"] == FINISHED["text"]
    assert media["items"][0]["caption"] == "a caption"
    assert media["items"][0]["path"].is_file()


def test_read_run_accepts_the_data_file_itself(finished_dir):
    data_file = next(finished_dir.glob("run-*.swanlab"))
    run = read_run(data_file)
    assert run.path == finished_dir
    assert run.scalars["train/loss"] == as_points(FINISHED["metrics"]["train/loss"])


def test_aborted_run_and_nan_values(produced):
    run = read_run(run_folder(produced[1]["main"], "exp-aborted"))
    assert run.state == "aborted"
    assert run.problems == []
    points = run.series("train/loss")
    assert [s for s, _ in points] == [1, 2, 3, 4, 5]
    assert math.isnan(points[1][1])
    assert [v for _, v in points if not math.isnan(v)] == [4.0, 3.5, 3.5, 3.75]
    assert run.best("train/loss") == (3, 3.5)  # NaN ignored, earliest of the tie
    assert run.last("train/loss") == (5, 3.75)


def test_records_split_across_blocks(produced):
    run_dir = run_folder(produced[1]["main"], "exp-big")
    data = next(run_dir.glob("run-*.swanlab")).read_bytes()
    assert len(data) > 4 * 32768
    types = {ctype for _, _, ctype in chunk_offsets(data)}
    assert types == {1, 2, 3, 4}, f"not every chunk type is exercised: {types}"
    run = read_run(run_dir)
    assert run.problems == []
    assert run.state == "finished"
    assert run.scalars == {k: as_points(v) for k, v in BIG["metrics"].items()}
    assert run.steps == 1500
    (media,) = run.media
    assert media["items"][0]["caption"] == BIG["caption"]
    assert media["text"] == "short body"


def test_crashed_run_has_state_and_traceback(produced):
    (folder,) = produced[1]["crash"].glob("run-*")
    run = read_run(folder)
    assert run.state == "crashed"
    assert "Traceback" in run.error and "RuntimeError: boom exp-crashed" in run.error
    assert run.scalars == {"train/loss": as_points(CRASHED["metrics"]["train/loss"])}
    assert run.config == CRASHED["config"]
    assert run.problems == []


def test_killed_run_keeps_the_written_prefix(produced):
    (folder,) = produced[1]["kill"].glob("run-*")
    run = read_run(folder)
    assert run.state == "running"
    assert run.finished_at is None
    assert run.name == "exp-killed"
    assert set(run.scalars) == {"train/loss"}
    assert_prefix(run.scalars["train/loss"], as_points(KILLED["metrics"]["train/loss"]))
    assert run.steps == len(run.scalars["train/loss"])
    # the writer process is gone: the reader says so (and, if the file was cut mid-record,
    # says that too)
    assert any("has exited" in p for p in run.problems), run.problems
    data = next(folder.glob("run-*.swanlab")).read_bytes()
    offset, length, ctype = chunk_offsets(data)[-1]
    cut_mid_record = offset + 7 + length != len(data) or ctype in (2, 3)
    assert cut_mid_record == any("middle of a record" in p for p in run.problems)
    assert run.duration is not None and run.duration >= 0


def test_local_mode_run(produced):
    log_dir = produced[1]["local"]
    (folder,) = log_dir.glob("run-*")
    assert (folder / "logs").is_dir()  # local mode's extra JSONL copy: really local mode
    run = read_run(folder)
    assert run.state == "finished"
    assert run.project == "reader-local"
    assert run.scalars == {"train/loss": as_points(LOCAL["metrics"]["train/loss"])}
    assert all(key.startswith("__swanlab__.") for key in run.system)
    assert run.config == LOCAL["config"]


# ---------------------------------------------------------------------------------------------
# Damaged files


@pytest.mark.parametrize("into_header", [False, True], ids=["mid-payload", "mid-chunk-header"])
def test_truncated_mid_record(finished_dir, tmp_path, into_header):
    folder, data_file = copy_run(finished_dir, tmp_path)
    data = data_file.read_bytes()
    chunks = chunk_offsets(data)
    offset, length, _ = chunks[len(chunks) // 2]
    cut = offset + (3 if into_header else 7 + length // 2)
    data_file.write_bytes(data[:cut])

    run = read_run(folder)
    assert run.state == "running"
    assert any("middle of a record" in p and f"byte {offset}" in p for p in run.problems), \
        run.problems
    assert run.records == len(chunks) // 2  # every record before the cut (all FULL here)
    expected = {k: as_points(v) for k, v in FINISHED["metrics"].items()}
    assert run.scalars, "the prefix was lost"
    for key, points in run.scalars.items():
        assert_prefix(points, expected[key])
    assert run.config == FINISHED["config"]  # the side files are still read
    assert run.name == "exp-finished"


def test_garbage_appended_keeps_everything_before_it(finished_dir, tmp_path):
    folder, data_file = copy_run(finished_dir, tmp_path)
    with open(data_file, "ab") as fp:
        fp.write(b"\x99" * 40 + b"this is not a swanlab record")
    run = read_run(folder)
    assert run.state == "finished"
    assert run.scalars == {k: as_points(v) for k, v in FINISHED["metrics"].items()}
    assert len(run.problems) == 1 and "unreadable data" in run.problems[0]


def test_flipped_byte_stops_at_the_checksum(finished_dir, tmp_path):
    folder, data_file = copy_run(finished_dir, tmp_path)
    data = bytearray(data_file.read_bytes())
    chunks = chunk_offsets(bytes(data))
    offset, length, _ = chunks[20]
    data[offset + 7 + length // 2] ^= 0xFF
    data_file.write_bytes(bytes(data))
    run = read_run(folder)
    assert run.state == "running"  # the finish record lies beyond the damage
    assert any("checksum" in p and f"byte {offset}" in p for p in run.problems), run.problems
    assert run.records == 20
    for key, points in run.scalars.items():
        assert_prefix(points, as_points(FINISHED["metrics"][key]))


def test_not_a_swanlab_data_file(finished_dir, tmp_path):
    folder, data_file = copy_run(finished_dir, tmp_path)
    data_file.write_bytes(b"PK\x03\x04 certainly not a SwanLab file" * 10)
    run = read_run(folder)
    assert run.state == "unknown"
    assert run.scalars == {}
    assert any("not a SwanLab data file" in p for p in run.problems)
    assert run.config == FINISHED["config"]


def test_unknown_format_version(finished_dir, tmp_path):
    folder, data_file = copy_run(finished_dir, tmp_path)
    data = bytearray(data_file.read_bytes())
    data[6] = 9
    data_file.write_bytes(bytes(data))
    run = read_run(folder)
    assert run.state == "unknown"
    assert any("version 9" in p for p in run.problems), run.problems


def test_empty_data_file_and_bad_config(finished_dir, tmp_path):
    folder, data_file = copy_run(finished_dir, tmp_path)
    data_file.write_bytes(b"")
    (folder / "files" / "config.yaml").write_text("learning_rate: [unclosed\n")
    run = read_run(folder)
    assert run.state == "running"
    assert run.scalars == {} and run.config == {}
    assert any("is empty" in p for p in run.problems)
    assert any("config.yaml unreadable" in p for p in run.problems)


def test_decoder_unavailable_names_the_swanlab_version(finished_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "swanlab.proto.swanlab.record.v1.record_pb2", None)
    with pytest.raises(DecoderUnavailable, match=r"swanlab 0\.8\.0 or later"):
        read_run(finished_dir)


def test_not_a_run_raises(tmp_path):
    with pytest.raises(RunReadError, match="no such file"):
        read_run(tmp_path / "missing")
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "notes.txt").write_text("hi")
    with pytest.raises(RunReadError, match="not a SwanLab run"):
        read_run(plain)
    with pytest.raises(RunReadError, match="not a SwanLab run"):
        read_run(plain / "notes.txt")
    with pytest.raises(RunReadError):
        find_runs(tmp_path / "missing")


# ---------------------------------------------------------------------------------------------
# find_runs


def test_find_runs_newest_first_with_damaged_runs(produced, finished_dir, tmp_path):
    log_dir = tmp_path / "swanlog"
    shutil.copytree(produced[1]["main"], log_dir)
    for extra in ("crash", "kill"):
        for folder in produced[1][extra].glob("run-*"):
            shutil.copytree(folder, log_dir / folder.name)
    broken = log_dir / "run-20000101_000000-brokenid"
    broken.mkdir()  # a run folder with nothing in it (killed during init)
    (log_dir / "not-a-run").mkdir()
    (log_dir / "stray.txt").write_text("x")

    runs = find_runs(log_dir)
    names = [r.name for r in runs]
    assert sorted(filter(None, names)) == sorted(
        ["exp-finished", "exp-aborted", "exp-big", "exp-crashed", "exp-killed"])
    assert len(runs) == 6
    assert runs[-1].path == broken  # dated 2000: the oldest
    assert runs[-1].run_id == "brokenid"
    assert runs[-1].state == "unknown" and runs[-1].problems
    times = [r.started_at for r in runs]
    assert times == sorted(times, reverse=True)
    by_name = {r.name: r for r in runs}
    assert by_name["exp-crashed"].state == "crashed"
    assert by_name["exp-killed"].state == "running"
    assert by_name["exp-finished"].scalars["train/loss"] == \
        as_points(FINISHED["metrics"]["train/loss"])


def test_find_runs_on_a_run_folder_reads_that_run(finished_dir):
    (run,) = find_runs(finished_dir)
    assert run.name == "exp-finished"


# ---------------------------------------------------------------------------------------------
# The best() rule


@pytest.mark.parametrize("key,expected", [
    ("train/loss", False), ("eval/loss", False), ("loss", False), ("eval/perplexity", False),
    ("train/grad_norm", False), ("single_value/train_runtime", False),
    ("gradient_accumulation_steps", False),
    ("eval/acc", True), ("eval/accuracy", True), ("rewards/accuracies", True),
    ("train/reward", True), ("eval/f1", True), ("eval/rouge1", True), ("bleu_score", True),
])
def test_higher_is_better(key, expected):
    assert higher_is_better(key) is expected


@pytest.mark.parametrize("key,expected", [
    ("train/loss", "min"), ("eval/runtime", "min"), ("train/memory/max_active (GiB)", "min"),
    ("eval/accuracy", "max"),
    # Throughput: more per second is better.
    ("train/tokens/train_per_sec_per_gpu", "max"), ("eval/samples_per_second", "max"),
    ("single_value/train_steps_per_second", "max"), ("throughput", "max"), ("tokens/s", "max"),
    # Schedules and counts of what was done: no better direction.
    ("train/learning_rate", None), ("learning_rate", None), ("train/epoch", None),
    ("single_value/total_flos", None), ("train/tokens/total", None),
    ("train/tokens/trainable", None),
])
def test_goal(key, expected):
    assert goal(key) == expected
