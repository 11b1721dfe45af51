"""Everything a run produces, in SwanLab: GRPO completions, Axolotl's generated samples, model
files, tags, group and job type, names that tell runs apart. Real Axolotl 0.19.0 on CPU."""
from __future__ import annotations

from pathlib import Path

from e2e_support import harness, messages, only_run, tables

OFFLINE = {"SWANLAB_MODE": "offline"}
RL = Path(__file__).resolve().parent / "rl"


def test_grpo_completions_are_tables_with_rewards_and_advantages(trainer):
    dataset = [{"path": str(trainer.assets / "alpaca.jsonl"), "ds_type": "json",
                "type": "grpo_rewards.transform"}]
    result = trainer.run(
        env={**OFFLINE, "PYTHONPATH": str(RL)}, swanlab_project="grpo", rl="grpo",
        dataset=dataset, chat_template="tokenizer_default", micro_batch_size=4, max_steps=4,
        save_steps=4, warmup_steps=0, swanlab_completion_log_interval=2,
        swanlab_completion_max_buffer=6,
        trl={"use_vllm": False, "beta": 0.0, "num_generations": 4, "max_completion_length": 8,
             "reward_funcs": ["grpo_rewards.contains_answer", "grpo_rewards.brevity"]})
    assert result.returncode == 0, result.describe()
    run = only_run(result.log_dir)
    assert run.state == "finished"
    assert run.series("train/reward"), sorted(run.scalars)
    logged = tables(run, "completions")
    assert [t["step"] for t in logged] == [2, 4], logged
    for t in logged:
        assert t["headers"] == ["step", "prompt", "completion", "reward/contains_answer",
                                "reward/brevity", "advantage"], t["headers"]
        assert 1 <= len(t["rows"]) <= 6  # swanlab_completion_max_buffer
        for row in t["rows"]:
            assert row[0] <= t["step"] and isinstance(row[2], str)
            assert isinstance(row[4], float) and isinstance(row[5], float)
    # The brevity reward is the completion's own length: the rows are the real ones.
    row = logged[-1]["rows"][-1]
    assert abs(row[4] + len(row[2]) / 50.0) < 1e-6, row


def test_generated_samples_and_final_model_files(trainer):
    result = trainer.run(env=OFFLINE, swanlab_project="samples", val_set_size=0.125,
                         eval_strategy="steps", eval_steps=5, generate_samples=True,
                         num_generation_samples=2, generation_max_new_tokens=8,
                         swanlab_log_model="end")
    assert result.returncode == 0, result.describe()
    run = only_run(result.log_dir)
    assert run.state == "finished"
    samples = tables(run, "samples")
    # Axolotl generates at every evaluation: the first one (step 0), then every eval_steps.
    assert [t["step"] for t in samples] == [0, 5, 10], samples
    assert all(t["headers"] == ["step", "prompt", "generated"] and len(t["rows"]) == 2
               for t in samples)
    out = result.run_dir / "out"
    stored = {Path(s["name"]).name for s in run.saves}
    assert {"model.safetensors", "config.json"} <= stored, run.saves
    assert not any(s["name"].startswith("checkpoint-") for s in run.saves)
    assert all(Path(s["source"]).resolve().parent == out.resolve()
               for s in run.saves if Path(s["name"]).name == "model.safetensors")
    said = [line for line in messages(result) if "stores the final model files" in line]
    assert len(said) == 1 and " MB)" in said[0], messages(result)


def test_checkpoints_tags_group_job_type(trainer):
    result = trainer.run(env={**OFFLINE, "SWANLAB_GROUP": "from-env"}, swanlab_project="ckpt",
                         save_steps=5, swanlab_log_model="checkpoint",
                         swanlab_tags="baseline, lora-free", swanlab_job_type="finetune")
    assert result.returncode == 0, result.describe()
    run = only_run(result.log_dir)
    names = {s["name"] for s in run.saves}
    for step in (5, 10):
        assert f"checkpoint-{step}/model.safetensors" in names, names
        assert f"checkpoint-{step}/trainer_state.json" in names
    assert run.tags == ["baseline", "lora-free"]
    assert (run.group, run.job_type) == ("from-env", "finetune")


def test_runs_of_one_config_tell_themselves_apart(trainer):
    first = trainer.run(env=OFFLINE, swanlab_project="apart", name="a")
    second = trainer.run(env=OFFLINE, swanlab_project="apart", name="b")
    a, b = only_run(first.log_dir), only_run(second.log_dir)
    assert a.name != b.name
    assert a.name.startswith("model-sft-") and b.name.startswith("model-sft-")
    assert a.tags == ["sft", "full", "model"]
    assert a.color and b.color
    # Same seed, same losses: the names did not come out of the training's random state.
    assert harness.trainer_losses(first.run_dir) == harness.trainer_losses(second.run_dir)
    assert a.series("train/loss") == b.series("train/loss")
