"""The run in its helper process, driven through the Trainer callback exactly as a training
does (tests/support/training_driver.py; no Axolotl here: the end-to-end lane does the same with
real `axolotl train`), with SwanLab's real client in the helper: the user's own swanlab calls, a
killed or terminated training, a helper that cannot start, dies before its run started or dies
in the middle, the console left as it was; and each lifecycle edge of issue 22 (a kept run
object after the end, a helper behind or stopped at the end, the training's outputs, SIGINT to
the helper, forks, the secrets on the command line)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from swanlab_autopatch.runs.reader import find_runs
from tests.support.driving import continue_helper, drive, send, settle

NO_HELPER = "import subprocess\n_real = subprocess.Popen\n" \
    "class Popen(_real):\n" \
    "    def __init__(self, args, *a, **k):\n" \
    "        if any('swanlab_autopatch.helper' in str(x) for x in args):\n" \
    "            raise OSError(11, 'Resource temporarily unavailable (injected)')\n" \
    "        super().__init__(args, *a, **k)\n" \
    "subprocess.Popen = Popen\n"
# In the helper itself: die before the run starts.
HELPER_DIES = "import os, sys\nif 'swanlab_autopatch.helper' in ' '.join(sys.orig_argv):\n" \
    "    os._exit(3)\n"


def losses(steps) -> list:
    return [(s, pytest.approx(10.0 / s)) for s in steps]


def helper_lines(driven) -> list[str]:
    return [x for x in driven.messages() if "helper process" in x]


def test_the_run_lives_in_the_helper_process(tmp_path):
    driven = drive(tmp_path, {"print": "line", "events": {"8": ["wait_ready"]}},
                   runtime_probe=True)
    run = settle(driven)
    assert driven.returncode == 0, driven.stderr
    report = driven.report
    assert report["backend"] == "HelperProcess"
    assert report["swanlab_loaded"] is False  # SwanLab's client never loads here
    assert [t for t in report["threads"] if "SwanLab" in t] == [], report["threads"]
    assert run.state == "finished"
    assert run.series("train/loss") == losses(range(1, 21))
    assert run.config["model"]["base_model"] == "tiny"
    # The console: every line once on the real stdout, and in the run's console record.
    printed = [x for x in driven.stdout.splitlines() if x.startswith("training line")]
    assert printed == [f"training line {i}" for i in range(1, 21)]
    assert [x for x in run.console if x.startswith("training line")] == printed
    # Metadata describes the training process, not the helper.
    runtime = run.metadata["runtime"]
    assert runtime["pid"] == report["pid"], runtime
    assert "swanlab_autopatch.helper" not in runtime["command"]
    assert "training_driver.py" in runtime["command"]
    # The helper's own output is in the run's folder, not on the training's terminal.
    assert (run.path / "debug" / "swanlab-autopatch-helper.log").exists()
    assert "swanlab:" not in driven.stdout + driven.stderr


def test_user_swanlab_calls_land_in_the_same_run(tmp_path):
    for name, first in (("imported-after", False), ("imported-before", True)):
        driven = drive(tmp_path / name, {"user": True, "import_first": first})
        run = settle(driven)
        assert driven.returncode == 0, driven.stderr
        assert run.series("user/value") == [(1, 1.5)]
        assert run.series("user/other") == [(2, 2.5)]
        assert run.config["user_key"] == "from-user"
        assert run.series("train/loss") == losses(range(1, 21))


def test_sigkilled_training_ends_crashed_with_every_point(tmp_path):
    driven = drive(tmp_path, {"events": {"12": ["kill_self"]}})
    run = settle(driven)
    assert driven.returncode == -9
    assert run.state == "crashed", run.state
    assert "ended without finishing" in (run.error or "")
    assert run.series("train/loss") == losses(range(1, 13))  # every point it sent


def test_sigterm_training_ends_aborted(tmp_path):
    driven = drive(tmp_path, {"events": {"7": ["term_self"]}})
    run = settle(driven)
    assert driven.returncode == -15  # the signal kept its meaning
    assert run.state == "aborted", run.state  # read from /proc before the parent collects it
    assert run.series("train/loss") == losses(range(1, 8))


def test_helper_that_cannot_start_falls_back_in_process(tmp_path):
    driven = drive(tmp_path, {}, inject=NO_HELPER)
    run = settle(driven)
    assert driven.returncode == 0, driven.stderr
    assert driven.report["backend"] == "module"  # tracking.client, in this process
    warnings = helper_lines(driven)
    assert len(warnings) == 1 and "could not be started" in warnings[0], driven.stderr
    assert run.state == "finished" and run.series("train/loss") == losses(range(1, 21))


def test_helper_dying_before_its_run_started_replays_in_process(tmp_path):
    driven = drive(tmp_path, {}, inject=HELPER_DIES)
    run = settle(driven)
    assert driven.returncode == 0, driven.stderr
    warnings = helper_lines(driven)
    assert len(warnings) == 1 and "before its run started" in warnings[0], driven.stderr
    assert run.state == "finished"
    assert run.series("train/loss") == losses(range(1, 21))


def test_helper_dead_before_the_first_log_loses_no_point(tmp_path):
    """The first log sends its schema, then its numbers: a helper already seen dead must not
    fall back between the two (the first point was lost that way on a busy machine)."""
    driven = drive(tmp_path, {"events": {"0": ["wait_helper_gone"]}}, inject=HELPER_DIES)
    run = settle(driven)
    assert driven.returncode == 0, driven.stderr
    # DIED_EARLY: the first log is what falls back (the case this test is for; the usual one).
    assert driven.report["helper_gone_seen"] in ("DIED_EARLY", "FALLEN_BACK"), driven.stderr
    assert run.state == "finished"
    assert run.series("train/loss") == losses(range(1, 21))


def test_helper_dying_mid_run_costs_tracking_not_training(tmp_path):
    driven = drive(tmp_path, {"events": {"5": ["wait_ready", "kill_helper"]}, "print": "line",
                              "steps": 3000})
    assert driven.returncode == 0, driven.stderr
    assert driven.stdout.count("training line") == 3000  # printing never failed
    warnings = helper_lines(driven)
    assert len(warnings) == 1 and "ended unexpectedly" in warnings[0], driven.stderr
    # One run: no second one started for the rest of the training.
    assert len(find_runs(driven.log_dir)) == 1


def test_the_whole_jobs_console_is_in_the_run(tmp_path):
    """From the config's loading (dataset preparation, model loading) to the model's saving
    after the Trainer: the lines before the run was up are handed over in order."""
    driven = drive(tmp_path, {"early_console": 50, "print": "line"})
    run = settle(driven)
    assert driven.returncode == 0, driven.stderr
    console = run.console
    loading = [x for x in console if x.startswith("loading the dataset")]
    assert loading == [f"loading the dataset {i}" for i in range(50)]
    assert "map: 49%|bar|" in console  # the progress bar as it ended, once
    assert not [x for x in console if x.startswith("map: 1%")]
    first_step = console.index("training line 1")
    assert console.index("loading the dataset 49") < first_step < console.index("saving the model")


def test_the_buffer_before_the_run_is_bounded_and_counts_what_it_drops():
    from swanlab_autopatch.tracking.console import EarlyLines

    lines = EarlyLines()
    for i in range(200_000):
        lines(1, f"line {i:06d} " + "x" * 40 + "\n")
    assert lines.size <= EarlyLines.CAP
    kept = [text for _, text in lines.pieces]
    assert kept[-1].startswith("line 199999")  # the newest kept, in order
    assert lines.dropped_lines + len(kept) == 200_000


# -- the lifecycle's edges (issue 22) -----------------------------------------------------------


def test_a_kept_run_object_used_after_the_end_writes_nowhere(tmp_path):
    """Defect 1: after the end, a user's kept run object wrote pickled frames into whatever
    file then had the pipe's descriptor number."""
    driven = drive(tmp_path, {"user": True, "after_end": ["kept_log"], "canaries": 16})
    run = settle(driven)
    assert driven.returncode == 0, driven.stderr
    canaries = sorted(driven.out.glob("canary*"))
    assert len(canaries) == 16
    assert {c.name: c.stat().st_size for c in canaries} == {c.name: 0 for c in canaries}
    after = [x for x in driven.messages() if "after the run ended" in x]
    assert len(after) >= 1 and all("WARNING" in x for x in after), driven.stderr
    assert len(after) == len(set(after))  # once per kind of call
    assert run.state == "finished" and "user/after_end" not in run.scalars


def test_a_helper_behind_at_the_end_finishes_every_point(tmp_path):
    """Defect 2: the end waited behind the data; past the bound the pipe was closed with the
    end still queued, and the run ended crashed with a fraction of its points."""
    steps = 40_000
    driven = drive(tmp_path, {"steps": steps, "print": "line"},
                   env={"SWANLAB_AUTOPATCH_FINISH_TIMEOUT": "1"})
    assert driven.returncode == 0, driven.stderr
    run = settle(driven, timeout=600)
    assert run.state == "finished", (run.state, run.error)
    assert run.series("train/loss") == losses(range(1, steps + 1))
    # The console lines printed before the end are in the run, too.
    lines = [x for x in run.console if x.startswith("training line")]
    assert lines == [f"training line {i}" for i in range(1, steps + 1)]
    assert not [x for x in driven.messages() if "dropped" in x], driven.stderr


def test_a_helper_stopped_during_training_finishes_every_point_later(tmp_path):
    """Defect 2, stalled: a helper stopped mid-training (a blocked disk, a hung server call)
    and continued after the training exited lost the tail and the end state."""
    driven = drive(tmp_path, {"steps": 2000, "events": {"10": ["wait_ready", "stop_helper"]}},
                   env={"SWANLAB_AUTOPATCH_FINISH_TIMEOUT": "1"}, on_exit=continue_helper)
    assert driven.returncode == 0, driven.stderr
    waiting = [x for x in driven.messages() if "still finishing" in x]
    assert len(waiting) == 1, driven.stderr
    log_file = waiting[0].rsplit(" to ", 1)[1].rstrip(".")
    run = settle(driven)
    assert run.state == "finished", (run.state, run.error)
    assert run.series("train/loss") == losses(range(1, 2001))
    assert Path(log_file).exists(), log_file  # the file it named is where the helper wrote


def test_the_training_outputs_close_with_the_training(tmp_path):
    """Defect 3: the helper inherited the training's stdout and stderr, so `| tee` and
    capture_output waited for it after the training had exited."""
    driven = drive(tmp_path, {"events": {"3": ["wait_ready", "stop_helper"]}},
                   env={"SWANLAB_AUTOPATCH_FINISH_TIMEOUT": "1"})
    try:
        assert driven.returncode is None or driven.returncode == 0
        assert driven.outputs_closed_within() < 2.0, driven.eof_at
        assert os.path.exists(f"/proc/{driven.report['helper_pid']}")  # still there, stopped
    finally:
        continue_helper(driven)
    assert settle(driven).state == "finished"


def test_sigint_and_sighup_to_the_helper_change_nothing(tmp_path):
    """Defect 4: SwanLab's init put its own SIGINT handler over the helper's ignore, so a
    SIGINT that reached the helper ended the run aborted while training went on."""
    driven = drive(tmp_path, {"steps": 200, "events": {
        "5": ["wait_ready", "int_helper"], "50": ["hup_helper"], "100": ["int_helper"]}})
    run = settle(driven)
    assert driven.returncode == 0, driven.stderr
    assert run.state == "finished", (run.state, run.error)
    assert run.series("train/loss") == losses(range(1, 201))


@pytest.mark.parametrize("moment", ["before", "after"])
def test_forked_children_never_touch_the_run(tmp_path, moment):
    """Defect 5: a forked child that exited normally before the run was up replayed into a
    run of its own and rewrote the resume file; children also read the status pipe."""
    events = ["fork_exit", "fork_os_exit", "fork_log"]
    plan = {"events": {"1": events} if moment == "before" else {"3": ["wait_ready", *events]}}
    driven = drive(tmp_path, plan)
    run = settle(driven)
    assert driven.returncode == 0, driven.stderr
    assert run.state == "finished"
    assert run.series("train/loss") == losses(range(1, 21))  # the child's -1.0 is not there
    assert "child/value" not in run.scalars
    saved = (driven.out / "model" / ".swanlab-autopatch-run.json").read_text()
    assert run.run_id in saved
    assert driven.stdout.count("child says hello") == 3


def test_the_command_line_reaches_swanlab_masked(tmp_path):
    """Defect 7: the training's command line went into SwanLab's metadata as it was, with a
    key given as a CLI override."""
    secret = "sk-cli-0123456789abcdef"
    driven = drive(tmp_path, {"argv": [f"--swanlab_api_key={secret}"],
                              "settings": {"swanlab_api_key": secret}}, runtime_probe=True)
    run = settle(driven)
    command = run.metadata["runtime"]["command"]
    assert "--swanlab_api_key=***" in command and secret not in command
    for path in run.path.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_a_dead_helper_is_collected_while_training_goes_on(tmp_path):
    """Defect 7: a helper that died mid-run stayed a zombie until the training exited."""
    driven = drive(tmp_path, {"steps": 400, "events": {
        "5": ["wait_ready", "kill_helper_nowait"], "6": ["check_reaped"]}})
    assert driven.returncode == 0, driven.stderr
    assert driven.report["helper_reaped"] is True


def test_helper_command_keeps_the_standard_library_first(monkeypatch):
    """Defect 7: the helper's PYTHONPATH put site-packages in front of the standard library."""
    import json

    from swanlab_autopatch.tracking import helper_process

    monkeypatch.delenv("PYTHONPATH", raising=False)
    command, env = helper_process._command()
    assert "PYTHONPATH" not in env  # nothing put in front of anything
    root = str(Path(helper_process.__file__).resolve().parents[2])
    # Run from this checkout, the package is not where a new interpreter looks: its folder is
    # appended to the path, after the standard library and site-packages.
    assert command[1] == "-c" and command[2].startswith(f"import sys, runpy; sys.path.append({root!r})")
    probe = subprocess.run([sys.executable, "-c", "import sys, json; print(json.dumps(sys.path))"],
                           env=env, capture_output=True, text=True, check=True)
    paths = json.loads(probe.stdout)
    first_site = next(i for i, p in enumerate(paths) if p.endswith("site-packages"))
    stdlib = next(i for i, p in enumerate(paths) if Path(p, "os.py").exists())
    assert stdlib < first_site, paths


def test_progress_bar_redraws_are_collapsed_before_swanlabs_emulator():
    from swanlab_autopatch.helper.console_record import MAX_PARTIAL, ConsoleLines

    fed = {1: [], 2: []}
    lines = ConsoleLines(lambda stream, text: fed[stream].append(text))
    for i in range(100):
        lines.add(2, f"\r{i:3d}%|bar|")
    lines.add(2, "\rdone|bar|\nnext line\n")
    assert fed[2] == ["done|bar|\nnext line\n"]
    lines.add(1, "Loading...\r")  # a line that ends with \r\n is kept, not redrawn away
    lines.add(1, "\n")
    lines.add(1, "partial ")
    lines.add(1, "\x1b[Acursor\rup")  # collapsed on every \r, escape codes or not
    lines.flush()
    assert fed[1] == ["Loading...\n", "up\n"]
    # An unfinished line stays bounded: redraws with escape codes collapse as they come...
    for i in range(10_000):
        lines.add(2, f"\r\x1b[32m{i:5d}\x1b[0m eval bar")
    assert len(lines._partial[2]) < 100
    # ...and a line that never ends is recorded once it reaches the cap.
    for _ in range(MAX_PARTIAL // 1000 + 2):
        lines.add(1, "x" * 1000)
    assert fed[1][-1] == "x" * (MAX_PARTIAL // 1000 + 1) * 1000 + "\n"
    assert len(lines._partial[1]) <= MAX_PARTIAL
