"""Other Axolotl releases: 0.21.0 (newest), 0.12.2 (transformers 4.x, no SwanLab plugin of its
own) and 0.9.2 (the old trainer-builder module, axolotl.core.trainer_builder)."""
from __future__ import annotations

import pytest

from e2e_support import harness, messages, only_run

OFFLINE = {"SWANLAB_MODE": "offline"}


@pytest.mark.parametrize("version", ["0.21.0", "0.12.2", "0.9.2"])
def test_only_swanlab_project_on_other_releases(trainer_for, version):
    result = trainer_for(version).run(env=OFFLINE, swanlab_project=f"v{version}".replace(".", "-"))
    assert result.returncode == 0, result.describe()
    run = only_run(result.log_dir)
    assert run.state == "finished"
    assert run.series("train/loss") == harness.trainer_losses(result.run_dir)
    assert run.config["versions"]["axolotl"] == version
    assert not any("WARNING" in l for l in messages(result)), messages(result)


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

