"""The promise: pip install, add `swanlab_project` to the YAML, train. Real Axolotl 0.19.0."""
from __future__ import annotations

import pytest

from e2e_support import harness, messages, only_run

OFFLINE = {"SWANLAB_MODE": "offline"}


def assert_tracked(result, project: str, *, steps: int = 10):
    """Exit 0, one finished run whose loss series is the Trainer's own, with a config."""
    assert result.returncode == 0, result.describe()
    run = only_run(result.log_dir)
    assert run.project == project
    assert run.state == "finished", (run.state, run.error)
    expected = harness.trainer_losses(result.run_dir)
    assert len(expected) == steps
    assert run.series("train/loss") == expected
    assert run.config["framework"] == "axolotl"
    assert run.config["training"]["learning_rate"] == 0.001
    return run


def test_only_swanlab_project_is_enough(trainer):
    """No key, no mode: cloud is the default, so the run falls back to offline and says how to
    upload it later."""
    result = trainer.run(swanlab_project="only-project")
    run = assert_tracked(result, "only-project")
    lines = messages(result)
    assert any("SwanLab tracking enabled because swanlab_project is set" in l for l in lines)
    # Each fact once: the missing key when the config loads, the upload command at the end.
    assert len([l for l in lines if "no API key found" in l]) == 1, lines
    assert not [l for l in lines if "could not start" in l], lines
    ends = [l for l in lines if "upload it with:" in l]
    assert len(ends) == 1, lines
    folder = run.path.relative_to(result.run_dir)
    assert f"swanlab sync --project only-project --id {run.run_id} " in ends[0], ends
    assert ends[0].rstrip().endswith((str(folder), str(run.path))), ends
    # SwanLab's own lines (its banner, its sync hint without --id) stay in the helper's log.
    assert result.output.count("swanlab sync") == 1
    assert not [l for l in result.output.splitlines() if l.startswith("swanlab:")], result.output
    for key in ("train/learning_rate", "train/grad_norm", "train/epoch",
                "single_value/train_runtime"):
        assert run.series(key), f"{key} missing; have {sorted(run.scalars)}"


@pytest.mark.parametrize("launcher", ["axolotl", "module", "accelerate"])
def test_every_launch_path(trainer, launcher):
    """`axolotl train` (accelerate by default), `python -m axolotl.cli.train` and
    `accelerate launch -m axolotl.cli.train` (`--launcher python` is every other test)."""
    result = trainer.run(launcher=launcher, env=OFFLINE, swanlab_project=f"launch-{launcher}")
    assert_tracked(result, f"launch-{launcher}")
    enabled = [l for l in messages(result) if "tracking enabled" in l]
    assert len(enabled) == 1, messages(result)


def test_two_processes_make_one_run(trainer):
    """`axolotl train --launcher torchrun` with two processes. The swanlab keys come from the
    command line here: both processes torchrun starts get them (the other launchers:
    test_command_line_options.py)."""
    result = trainer.run(launcher="torchrun2", env={"ACCELERATE_USE_CPU": "true"},
                         extra_args=("--swanlab_project=ddp", "--swanlab_mode=offline"),
                         max_memory={"cpu": "8GiB"})
    assert result.returncode == 0, result.describe()
    run = only_run(result.log_dir)
    assert run.project == "ddp" and run.state == "finished"
    assert len(run.series("train/loss")) == 10
    assert run.config["parallel"]["world_size"] == 2
    lines = messages(result)
    for text in ("Distributed training detected (world_size=2)", "SwanLab mode: offline",
                 "Only rank 0 will initialize SwanLab",
                 "Other ranks will skip SwanLab to avoid conflicts"):
        assert sum(text in l for l in lines) == 1, (text, lines)


def test_switch_off_leaves_axolotl_alone(trainer):
    tracked = trainer.run(env=OFFLINE, swanlab_project="switch", name="on")
    untracked = trainer.run(env={**OFFLINE, "SWANLAB_AUTOPATCH": "0"},
                            swanlab_project="switch", name="off")
    assert untracked.returncode == 0, untracked.describe()
    assert not untracked.log_dir.exists()
    assert messages(untracked) == []
    # Axolotl trains exactly as it would without the package: same losses as the tracked run.
    assert harness.trainer_losses(untracked.run_dir) == harness.trainer_losses(tracked.run_dir)


@pytest.mark.parametrize("bad, message", [
    ({"use_swanlab": True}, "SwanLab enabled but 'swanlab_project' is not set."),
    ({"swanlab_project": "p", "swanlab_mode": "invalid-mode"},
     "Invalid swanlab_mode: 'invalid-mode'. Valid options: cloud, local, offline, disabled"),
    ({"swanlab_project": ""}, "swanlab_project cannot be an empty string."),
])
def test_invalid_config_stops_before_the_model_loads(trainer, bad, message):
    result = trainer.run(env=OFFLINE, **bad)
    assert result.returncode != 0
    errors = [l for l in result.output.splitlines() if "[swanlab-autopatch] ERROR:" in l]
    assert len(errors) == 1 and message in errors[0], result.describe()
    assert "Traceback" not in result.stderr or "swanlab_autopatch" not in result.stderr
    assert not (result.run_dir / "out").exists()  # nothing loaded, nothing written
    assert not (result.run_dir / "prepared").exists()
    assert not result.log_dir.exists()


def test_modes_disabled_creates_nothing(trainer):
    result = trainer.run(swanlab_project="off", swanlab_mode="disabled")
    assert result.returncode == 0, result.describe()
    assert not result.log_dir.exists()
    assert any("swanlab_mode is disabled" in l for l in messages(result))


def test_explicit_use_swanlab_false_is_respected(trainer):
    result = trainer.run(use_swanlab=False, swanlab_project="nope", swanlab_mode="offline")
    assert result.returncode == 0, result.describe()
    assert not result.log_dir.exists()
    assert any("use_swanlab is false" in l for l in messages(result))


def test_upstream_plugin_named_gives_exactly_one_run(trainer):
    """Axolotl 0.19 ships its own SwanLab plugin: listed in `plugins:`, it runs the show and
    this package stands down (no second run, no second callback)."""
    result = trainer.run(plugins=["axolotl.integrations.swanlab.SwanLabPlugin"],
                         use_swanlab=True, swanlab_project="upstream", swanlab_mode="offline")
    assert result.returncode == 0, result.describe()
    run = only_run(result.log_dir)
    assert run.project == "upstream"
    assert any("stands down" in l for l in messages(result))
    # Axolotl's own callback logs raw Trainer keys; ours would add train/loss.
    assert run.series("loss") and not run.series("train/loss")


def test_wandb_and_swanlab_warns_and_trains(trainer):
    result = trainer.run(env=OFFLINE, swanlab_project="two", wandb_project="w",
                         wandb_mode="disabled")
    assert_tracked(result, "two")
    warnings = [l for l in messages(result) if "Multiple logging tools enabled" in l]
    assert len(warnings) == 1 and "SwanLab, WandB" in warnings[0]
    assert "Expected overhead: ~3.0% per training step." in warnings[0]


def test_config_holds_what_the_spec_lists(trainer):
    result = trainer.run(env=OFFLINE, swanlab_project="cfg", swanlab_experiment_name="exp-1",
                         swanlab_description="what this run tries")
    run = assert_tracked(result, "cfg")
    assert run.name == "exp-1"
    assert run.description == "what this run tries"
    cfg = run.config
    model, training, parallel = cfg["model"], cfg["training"], cfg["parallel"]
    assert model["base_model"].endswith("/model")
    assert model["num_parameters"] > 100_000
    assert model["trainable_parameters"] == model["num_parameters"]
    assert model["model_config"]["num_hidden_layers"] == 2
    for key, value in {"micro_batch_size": 2, "gradient_accumulation_steps": 1, "max_steps": 10,
                       "sequence_len": 128, "optimizer": "adamw_torch", "lr_scheduler": "cosine",
                       "seed": 42, "sample_packing": False, "effective_batch_size": 2}.items():
        assert training[key] == value, (key, training)
    assert parallel["world_size"] == 1 and parallel["fsdp"] is False
    versions = cfg["versions"]
    assert versions["axolotl"] == "0.19.0" and versions["swanlab"] == "0.10.3"
    assert versions["swanlab_autopatch"] and versions["torch"].startswith("2.13.0")
    assert cfg["axolotl"]["swanlab_project"] == "cfg"
    assert cfg["trainer_args"]["logging_steps"] == 1
    texts = [m for m in run.media if m["key"] == "axolotl_config"]
    assert len(texts) == 1
