"""Other Axolotl releases: 0.21.0 (newest), 0.12.2 (transformers 4.x, no SwanLab plugin of its
own) and 0.9.2 (the old trainer-builder module, axolotl.core.trainer_builder); the oldest
SwanLab client (0.8.0) and the next minor before it ships (a fake)."""
from __future__ import annotations

import pytest

from e2e_support import harness, messages, only_run

OFFLINE = {"SWANLAB_MODE": "offline"}


@pytest.mark.parametrize("version", ["0.21.0", "0.12.2", "0.9.2"])
def test_swanlab_project_with_eval_table_and_watch_on_other_releases(trainer_for, version):
    """One line of ours (plus swanlab_watch), and Axolotl's own eval_table_size with evaluation
    during training: its predictions table is logged at each evaluation on every release."""
    result = trainer_for(version).run(env=OFFLINE, swanlab_project=f"v{version}".replace(".", "-"),
                                      val_set_size=0.125, eval_strategy="steps", eval_steps=5,
                                      eval_table_size=2, eval_max_new_tokens=8,
                                      swanlab_watch="gradients", logging_steps=2)
    assert result.returncode == 0, result.describe()
    run = only_run(result.log_dir)
    assert run.state == "finished"
    assert run.series("train/loss") == harness.trainer_losses(result.run_dir)
    assert run.config["versions"]["axolotl"] == version
    assert not any("WARNING" in l for l in messages(result)), messages(result)
    evaluated = [step for step, _ in run.series("eval/loss")]
    tables = sorted((m["step"], len(m["items"])) for m in run.media if m["key"] == "predictions")
    assert evaluated and tables == [(step, 1) for step in evaluated], (tables, evaluated)
    assert [s for s, _ in run.series("watch/grad_norm/layer_0")] == [2, 4, 6, 8, 10]
    assert not run.series("watch/param_norm/layer_0")  # gradients only


def test_upstream_plugin_on_0_21_gives_one_run(trainer_for):
    result = trainer_for("0.21.0").run(plugins=["axolotl.integrations.swanlab.SwanLabPlugin"],
                                      use_swanlab=True, swanlab_project="upstream-021",
                                      swanlab_mode="offline")
    assert result.returncode == 0, result.describe()
    run = only_run(result.log_dir)
    assert run.project == "upstream-021"
    assert any("stands down" in l for l in messages(result))
    assert not run.series("train/loss")


def test_old_rl_trainer_report_to_all_gives_one_run(trainer_for):
    """Axolotl up to 0.9 builds RL trainers without report_to, so transformers 4.x attaches
    every installed tracker, SwanLab's own callback included (which crashes on swanlab >= 0.8
    without a run). This package removes it: one run, one copy of each metric, exit 0."""
    trainer = trainer_for("0.9.2")
    datasets = [{"path": str(trainer.assets / "preference.jsonl"), "ds_type": "json",
                 "split": "train", "type": "chatml.default"}]
    result = trainer.run(env=OFFLINE, swanlab_project="old-dpo", rl="dpo", dataset=datasets,
                         chat_template="chatml", max_steps=4, save_steps=4,
                         warmup_steps=0)  # 0.9.2 + its TRL reject the computed float default
    assert result.returncode == 0, result.describe()
    run = only_run(result.log_dir)
    assert run.series("train/loss") == harness.trainer_losses(result.run_dir)
    removed = [l for l in messages(result) if "Removed" in l and "SwanLabCallback" in l]
    assert len(removed) == 1, messages(result)


def test_oldest_supported_swanlab_client(trainer_for, tmp_path):
    """SwanLab 0.8.0 (the first client of the sdk/ rewrite) next to Axolotl 0.19.0: a local
    run, and a cloud run against the SwanLab stand-in."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(harness.REPO) / "tools"))
    from swanlab_server import StandIn

    trainer = trainer_for("0.19.0-swanlab0.8.0")
    local = trainer.run(name="local", swanlab_project="old-client", swanlab_mode="local")
    assert local.returncode == 0, local.describe()
    run = only_run(local.log_dir)
    assert run.state == "finished"
    assert run.series("train/loss") == harness.trainer_losses(local.run_dir)
    assert run.config["versions"]["swanlab"] == "0.8.0"
    key = "old-client-key-0001"
    with StandIn(tmp_path / "store", api_keys=[key]) as server:
        cloud = trainer.run(name="cloud", env={"SWANLAB_API_KEY": key},
                            swanlab_project="old-client", swanlab_mode="cloud",
                            swanlab_api_host=server.url, swanlab_web_host=server.url)
        assert cloud.returncode == 0, cloud.describe()
        assert not any("could not start" in l for l in messages(cloud)), messages(cloud)
        (experiment,) = server.dump()["experiments"]
    assert experiment["project"] == "old-client"
    assert experiment["state"] == "FINISHED", experiment["state"]
    expected = harness.trainer_losses(cloud.run_dir)
    assert [tuple(p) for p in experiment["metrics"]["train/loss"]] == \
        [(s, float(v)) for s, v in expected]



def test_next_swanlab_minor_keeps_its_run(trainer, tmp_path):
    """The next SwanLab minor before it ships: the Axolotl venv's own client (0.10.3) copied
    under version 0.11.0 (tests/support/fake_swanlab.py) into a folder put on PYTHONPATH, so
    every process of the training (the launcher, the trainer, SwanLab's helper process) imports
    it ahead of site-packages and reads 0.11.0 from its dist-info. No new Axolotl venv. (The
    helper process inherits PYTHONPATH and, with the package installed, adds nothing in front
    of it: it gets the overlay's client too, which its banner in the run's folder shows.)"""
    import subprocess

    overlay = tmp_path / "overlay"
    built = subprocess.run([trainer.python(), "-m", "tests.support.fake_swanlab", "tree",
                            str(overlay)], cwd=harness.REPO, capture_output=True, text=True,
                           env=harness.training_env(trainer.venv), timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    result = trainer.run(env={"SWANLAB_MODE": "offline", "PYTHONPATH": str(overlay)},
                         swanlab_project="next-minor")
    assert result.returncode == 0, result.describe()
    run = only_run(result.log_dir)
    assert run.state == "finished"
    assert run.series("train/loss") == harness.trainer_losses(result.run_dir)
    assert run.config["versions"]["swanlab"] == "0.11.0"  # the training process's client
    # The helper's own client: SwanLab's banner is in the helper's log in the run's folder.
    helper_log = (run.path / "debug" / "swanlab-autopatch-helper.log").read_text()
    assert "Tracking run with swanlab version 0.11.0" in helper_log, helper_log[-2000:]
    # (a line of its own, though a progress bar the training draws may precede it on screen)
    assert result.output.count(
        "[swanlab-autopatch] INFO: SwanLab 0.11.0 is newer than the clients this "
        "swanlab-autopatch was tested with (0.8.0 to 0.10.x); expected to work.\n") == 1, \
        result.describe()
    assert not any("WARNING" in l for l in messages(result)), messages(result)
