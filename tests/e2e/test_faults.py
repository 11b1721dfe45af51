"""Whatever goes wrong around SwanLab, the training completes and keeps its metrics.

Each fault is injected for real into a real `axolotl train` (a refusing port, a server that
never answers, a missing package, a changed Axolotl layout, an unwritable folder, a crash, a
SIGKILL, a broken wrapt), through a sitecustomize.py on PYTHONPATH where code is needed.
"""
from __future__ import annotations

import re
import socket
import threading
from pathlib import Path

from e2e_support import AT_ONCE, harness, messages, only_run, settled_run

INJECTIONS = Path(__file__).resolve().parent / "injections"
OFFLINE = {"SWANLAB_MODE": "offline"}


def inject(name: str, **env: str) -> dict[str, str]:
    return {"PYTHONPATH": str(INJECTIONS / name), **env}


def fallback_seconds(result) -> float:
    lines = [l for l in messages(result) if "cloud mode could not start" in l]
    assert len(lines) == 1, messages(result)
    ends = [l for l in messages(result) if "upload it with: swanlab sync " in l]
    assert len(ends) == 1, messages(result)
    return float(re.search(r"gave up after ([0-9.]+) s", lines[0]).group(1))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the block ends: connections refused


def assert_all_steps(result):
    run = only_run(result.log_dir)
    assert run.state == "finished", (run.state, run.error)
    assert run.series("train/loss") == harness.trainer_losses(result.run_dir)
    return run


def test_cloud_with_refusing_port_falls_back_to_offline(trainer):
    port = closed_port()
    result = trainer.run(env={"SWANLAB_API_KEY": "test-key-refused"}, swanlab_project="refused",
                         swanlab_mode="cloud", swanlab_api_host=f"http://127.0.0.1:{port}")
    assert result.returncode == 0, result.describe()
    assert_all_steps(result)
    waited = fallback_seconds(result)
    print(f"\nextra delay before the offline fallback (refused port): {waited:.1f} s")
    assert waited < AT_ONCE, waited


def test_cloud_with_silent_server_falls_back_within_the_bound(trainer):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)  # the kernel completes handshakes; nobody ever answers
    accepted = []
    stop = threading.Event()

    def hold() -> None:
        server.settimeout(0.5)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    try:
        port = server.getsockname()[1]
        result = trainer.run(env={"SWANLAB_API_KEY": "test-key-silent",
                                  "SWANLAB_AUTOPATCH_CONNECT_TIMEOUT": "8"},
                             swanlab_project="silent", swanlab_mode="cloud",
                             swanlab_api_host=f"http://127.0.0.1:{port}")
    finally:
        stop.set()
        holder.join()
        for conn in accepted:
            conn.close()
        server.close()
    assert result.returncode == 0, result.describe()
    assert_all_steps(result)
    waited = fallback_seconds(result)
    print(f"\nextra delay before the offline fallback (silent server): {waited:.1f} s")
    assert accepted, "the fake server never saw a connection"
    assert 7 <= waited <= 12, waited


def test_missing_swanlab_is_a_clear_error_before_the_model_loads(trainer):
    result = trainer.run(env=inject("no_swanlab", **OFFLINE), swanlab_project="needs-swanlab")
    assert result.returncode != 0
    errors = [l for l in result.output.splitlines() if "[swanlab-autopatch] ERROR:" in l]
    assert len(errors) == 1 and "SwanLab is not installed" in errors[0], result.describe()
    assert "pip install swanlab" in errors[0]
    assert not (result.run_dir / "out").exists() and not result.log_dir.exists()

    untouched = trainer.run(env=inject("no_swanlab", SWANLAB_AUTOPATCH="0"),
                            swanlab_project="needs-swanlab")
    assert untouched.returncode == 0, untouched.describe()
    assert harness.trainer_losses(untouched.run_dir)
    assert messages(untouched) == []


def test_missing_patch_target_trains_untracked_with_one_warning(trainer):
    result = trainer.run(env=inject("missing_target", **OFFLINE), swanlab_project="moved")
    assert result.returncode == 0, result.describe()
    assert len(harness.trainer_losses(result.run_dir)) == 10
    assert not result.log_dir.exists()
    warnings = [l for l in messages(result) if "was not found" in l]
    assert len(warnings) == 1, messages(result)
    assert "TrainerBuilderBase.get_callbacks_renamed" in warnings[0]
    assert "SwanLab tracking is off for this run" in warnings[0]


def test_unwritable_log_folder_warns_and_keeps_the_metrics(trainer, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the log folder should be")
    result = trainer.run(env=OFFLINE, swanlab_project="unwritable",
                         swanlab_log_dir=str(blocker / "swanlog"))
    assert result.returncode == 0, result.describe()
    warnings = [l for l in messages(result) if "cannot be written" in l]
    assert len(warnings) == 1, messages(result)
    fallback = Path(re.search(r"recorded in (\S+) instead", warnings[0]).group(1))
    run = only_run(fallback)
    assert run.series("train/loss") == harness.trainer_losses(result.run_dir)


def test_crash_reaches_the_user_unchanged_and_marks_the_run(trainer):
    result = trainer.run(env=inject("crash_at_step6", **OFFLINE), swanlab_project="crash")
    assert result.returncode != 0
    assert "RuntimeError: injected failure at step 6" in result.stderr
    run = only_run(result.log_dir)
    assert run.state == "crashed"
    assert "injected failure at step 6" in (run.error or "")
    assert [step for step, _ in run.series("train/loss")] == [1, 2, 3, 4, 5]


def test_sigkilled_training_ends_crashed_with_every_point(trainer):
    """SIGKILL (what the OOM killer and a scheduler's last resort send): the training gets no
    chance to do anything; the sidecar reads what it was sent to the end, keeps every point
    and marks the run crashed instead of leaving it "running" forever."""
    result = trainer.run(env=inject("kill_at_step6", **OFFLINE), swanlab_project="killed")
    assert result.returncode == -9, result.describe()
    run = settled_run(result.log_dir)
    assert run.state == "crashed", (run.state, run.error)
    assert "ended without finishing the run" in run.error, run.error
    assert [step for step, _ in run.series("train/loss")] == [1, 2, 3, 4, 5]
    reference = trainer.run(env=OFFLINE, swanlab_project="reference")
    assert run.series("train/loss") == harness.trainer_losses(reference.run_dir)[:5]


def test_broken_wrapt_costs_tracking_not_training(trainer):
    result = trainer.run(env=inject("broken_wrapt", **OFFLINE), swanlab_project="no-wrapt")
    assert result.returncode == 0, result.describe()
    assert len(harness.trainer_losses(result.run_dir)) == 10
    warnings = [l for l in result.output.splitlines() if "could not activate" in l]
    assert len(warnings) == 1, result.describe()
    assert "wrapt is broken" in warnings[0]
    assert not result.log_dir.exists()


def test_sidecar_that_cannot_start_tracks_in_process_with_one_warning(trainer):
    """fork/exec of the helper process fails: one warning naming the reason, and SwanLab keeps
    the run in the training process instead, with every step, finished."""
    result = trainer.run(env=inject("no_sidecar", **OFFLINE), swanlab_project="no-sidecar")
    assert result.returncode == 0, result.describe()
    warnings = [l for l in messages(result) if "helper process could not be started" in l]
    assert len(warnings) == 1, messages(result)
    assert "Resource temporarily unavailable" in warnings[0], warnings
    assert_all_steps(result)
