"""The helper process's lifecycle on real `axolotl train` (issue 22): the training's outputs
close with the training while a slow server is still being uploaded to, a run object kept by
user code and used while Axolotl saves the model writes nowhere, and signals that reach the
helper (SIGINT, SIGHUP, SIGSTOP until after the training exited) cost nothing."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from e2e_support import harness, messages, settled_run
from swanlab_server import StandIn  # tools/ is on sys.path (e2e_support)
from tests.support.driving import watch

INJECTIONS = Path(__file__).resolve().parent / "injections"
KEY = "canary-lifecycle-key-5d81c3a0e7"


def inject(name: str, **env: str) -> dict[str, str]:
    return {"PYTHONPATH": str(INJECTIONS / name), **env}


def test_piped_output_closes_with_the_training_and_the_slow_server_gets_every_point(
        trainer, tmp_path):
    """`axolotl train cfg.yaml | cat` in cloud mode, every server answer 0.3 s late: the pipe
    ends within 2 s of the training process, which waits its 2 s for the helper and leaves it
    uploading; the server then receives every point and the end of the run."""
    with StandIn(tmp_path / "store", api_keys=[KEY]) as server:
        server.set_faults(delay=0.3)
        run_dir = tmp_path / "piped"
        run_dir.mkdir()
        cfg = trainer.config(run_dir, swanlab_project="piped", swanlab_mode="cloud",
                             swanlab_api_host=server.url, swanlab_web_host=server.url)
        cfg_path = harness.write_config(run_dir / "cfg.yaml", cfg)
        env = harness.training_env(trainer.venv, {"SWANLAB_API_KEY": KEY,
                                                  "SWANLAB_AUTOPATCH_FINISH_TIMEOUT": "2"},
                                   swanlab_root=run_dir / ".swanlab-root")
        piped = watch(harness.launch_command(trainer.version, "axolotl", cfg_path), run_dir,
                      env, timeout=600)
        piped.proc.wait(timeout=60)
        assert piped.returncode == 0, piped.stderr[-4000:]
        assert piped.outputs_closed_within() < 2.0, piped.eof_at
        expected = harness.trainer_losses(run_dir)
        deadline = time.monotonic() + 300
        while True:
            experiments = server.dump()["experiments"]
            loss = [(int(s), float(v)) for s, v in
                    (experiments[0]["metrics"].get("train/loss", []) if experiments else [])]
            if experiments and experiments[0]["state"] == "FINISHED" and loss == expected:
                break
            assert time.monotonic() < deadline, (
                f"the server has {len(loss)} of {len(expected)} loss points, state "
                f"{experiments[0]['state'] if experiments else None} after 300 s")
            time.sleep(0.5)
        assert len(experiments) == 1


def test_a_run_object_kept_by_user_code_changes_no_byte_of_the_saved_model(trainer):
    """A thread keeps `swanlab.get_run()` from the first step and logs through it until the
    process exits, through the end of the run and Axolotl's saving of the model: the model
    files are byte for byte those of the same training without it, and the user is told once
    that the calls after the end are ignored."""
    common = dict(swanlab_project="kept", swanlab_mode="offline")
    plain = trainer.run(name="plain", **common)
    kept = trainer.run(name="kept", env=inject("kept_run_after_end"), **common)
    assert plain.returncode == 0, plain.describe()
    assert kept.returncode == 0, kept.describe()
    names = sorted(p.name for p in (plain.run_dir / "out").iterdir()
                   if p.suffix == ".safetensors" or p.name.endswith("config.json")
                   or p.name.startswith("tokenizer"))
    assert any(n.endswith(".safetensors") for n in names), names
    for name in names:
        assert (kept.run_dir / "out" / name).read_bytes() == \
            (plain.run_dir / "out" / name).read_bytes(), name
    after = [x for x in messages(kept) if "after the run ended" in x]
    assert len(after) == 1, messages(kept)
    run = settled_run(kept.log_dir)
    assert run.state == "finished"
    assert run.series("train/loss") == harness.trainer_losses(kept.run_dir)
    assert run.series("user/kept"), "the kept object's logs during training are in the run"


def test_sigint_sighup_and_sigstop_to_the_helper_cost_no_point(trainer, tmp_path):
    """SIGINT at step 3 and SIGHUP at step 4 are ignored; SIGSTOP at step 5 holds the helper
    until after the training has exited (which waits its 3 s and goes); continued, the helper
    finishes the run with every point."""
    pid_file = tmp_path / "helper.pid"
    result = trainer.run(env=inject("signal_helper", HELPER_PID_FILE=str(pid_file),
                                    SWANLAB_AUTOPATCH_FINISH_TIMEOUT="3"),
                         swanlab_project="signals", swanlab_mode="offline", timeout=300)
    assert result.returncode == 0, result.describe()
    helper = int(pid_file.read_text())
    with open(f"/proc/{helper}/stat") as stat:  # still there, stopped, after the training
        assert stat.read().rsplit(")", 1)[1].split()[0] == "T"
    still = [x for x in messages(result) if "still finishing" in x]
    assert len(still) == 1, messages(result)
    os.kill(helper, signal.SIGCONT)
    run = settled_run(result.log_dir, timeout=120)
    assert run.state == "finished", (run.state, run.error)
    assert run.series("train/loss") == harness.trainer_losses(result.run_dir)
