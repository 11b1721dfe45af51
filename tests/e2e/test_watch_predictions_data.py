"""What W&B users of Axolotl see, in SwanLab: the predictions table of eval_table_size,
swanlab_watch's gradient and weight norms, honest model files on both kinds of host, and the
data a run trained on. Real Axolotl 0.19.0 on CPU; a probe (injections/watch_probe) computes in
the training process, by its own plain means, what the charts and the table must show.

Three trainings: a LoRA run with evaluation (table, watch at every step, data group of two
datasets), a full fine-tune against the SwanLab stand-in as a private deployment (watch at the
logging steps, model files stored), and a short one against the stand-in as the public cloud
(model files recorded, not stored).
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

from e2e_support import messages, only_run, tables
from swanlab_server import StandIn  # tools/ is on sys.path (e2e_support)

PROBE = Path(__file__).resolve().parent / "injections" / "watch_probe"
KEY = "canary-watch-key-5d0c2b7e91"
LORA_CPU = dict(adapter="lora", lora_r=4, lora_alpha=8, lora_dropout=0.0,
                lora_target_linear=True, lora_mlp_kernel=False, lora_qkv_kernel=False,
                lora_o_kernel=False)
TABLE_HEADERS = ["step", "id", "Prompt", "Correct Completion",
                 "Predicted Completion (model.generate)",
                 "Predicted Completion (trainer.prediction_step)"]


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-9)


def probe_env(run_dir_name: str, trainer, **extra) -> tuple[dict, Path]:
    out = trainer.root / f"{run_dir_name}-probe.json"
    return {"PYTHONPATH": str(PROBE), "PROBE_OUT": str(out), **extra}, out


def axolotl_debug(result, name: str) -> int:
    """A count Axolotl prints in its own debug log (`total_num_tokens: 4_566`)."""
    found = re.findall(rf"\] {name}: ([\d_]+)", result.output)
    assert found, f"Axolotl did not log {name}:\n{result.describe()}"
    return int(found[-1].replace("_", ""))


def test_lora_with_eval_table_watch_every_step_and_two_datasets(trainer):
    datasets = [
        {"path": str(trainer.assets / "alpaca.jsonl"), "ds_type": "json", "type": "alpaca"},
        {"path": str(trainer.assets / "chat.jsonl"), "ds_type": "json", "type": "chat_template",
         "field_messages": "messages", "roles_to_train": ["assistant"], "split": "train"},
    ]
    env, probe_out = probe_env("lora", trainer, SWANLAB_MODE="offline", AXOLOTL_LOG_LEVEL="DEBUG")
    result = trainer.run(name="lora", env=env, dataset=datasets, chat_template="chatml",
                         swanlab_project="watch", **LORA_CPU, val_set_size=0.125,
                         eval_strategy="steps", eval_steps=5, eval_table_size=2,
                         eval_max_new_tokens=8, swanlab_watch="all", swanlab_watch_interval=1)
    assert result.returncode == 0, result.describe()
    run = only_run(result.log_dir)
    probe = json.loads(probe_out.read_text())
    assert run.state == "finished"

    # The predictions table: at every evaluation, Axolotl's columns, the eval rows' prompts.
    logged = tables(run, "predictions")
    eval_steps = [step for step, _ in run.series("eval/loss")]
    assert eval_steps and [t["step"] for t in logged] == eval_steps, (logged, eval_steps)
    for t in logged:
        assert t["headers"] == TABLE_HEADERS
        rows = t["rows"]
        # Axolotl's rule: whole batches (micro_batch_size 2) until eval_table_size is passed
        assert len(rows) == 4 and [r[1] for r in rows] == [0, 1, 2, 3], rows
        assert all(r[0] == t["step"] for r in rows)
        assert [r[2] for r in rows] == probe["prompts"][:4], (rows, probe["prompts"])
        assert all(isinstance(r[3], str) and r[3] for r in rows)  # the correct completion
        assert all(isinstance(r[4], str) and r[5] is not None for r in rows)
    assert any(r[4].strip() for t in logged for r in t["rows"]), logged  # generated text
    said = [line for line in messages(result) if line.startswith("[swanlab-autopatch] INFO: "
                                                                  "eval_table_size:")]
    assert len(said) == 1 and "took" in said[0], messages(result)

    # swanlab_watch: all at interval 1: every step, equal to the probe's own sums.
    steps = list(range(1, 11))
    for what in ("grad_norm", "param_norm"):
        for group in ("layer_0", "lora_A", "lora_B"):
            series = run.series(f"watch/{what}/{group}")
            assert [s for s, _ in series] == steps, (what, group, series)
            expected = probe[what][group]
            assert all(close(v, expected[str(s)]) for s, v in series), (series, expected)
        assert run.series(f"watch/{what}/largest") and run.series(f"watch/{what}/smallest")
        assert all(small <= big for (_, small), (_, big) in
                   zip(run.series(f"watch/{what}/smallest"), run.series(f"watch/{what}/largest")))
    lora_b = [v for _, v in run.series("watch/param_norm/lora_B")]
    assert lora_b[0] == 0.0 and all(v > 0 for v in lora_b[1:]), lora_b  # zero, then moving
    assert len(set(lora_b[1:])) == len(lora_b) - 1
    assert not run.series("watch/grad_norm/q_proj")  # frozen base weights are not watched

    # The data group: two entries; counts that add up to Axolotl's own (whole prepared set).
    data = run.config["data"]
    assert data["datasets"]["0"] == {"path": datasets[0]["path"], "type": "alpaca",
                                     "ds_type": "json"}
    assert data["datasets"]["1"]["type"] == "chat_template"
    assert data["datasets"]["1"]["split"] == "train"
    train, evaluation = data["train"], data["eval"]
    assert train["rows"] + evaluation["rows"] == 128 and evaluation["rows"] == 16
    assert train["tokens"] + evaluation["tokens"] == axolotl_debug(result, "total_num_tokens")
    assert train["supervised_tokens"] + evaluation["supervised_tokens"] == \
        axolotl_debug(result, "total_supervised_tokens")
    prepared = [p.name for p in (result.run_dir / "prepared").iterdir() if p.is_dir()]
    assert data["prepared_hash"] in prepared, (data["prepared_hash"], prepared)
    assert data["fingerprint"]["train"] != data["fingerprint"]["eval"]
    (template,) = [m for m in run.media if m["key"] == "chat_template"]
    assert "<|im_start|>" in template["text"]  # chatml
    assert data["chat_template"] == {
        "name": "chatml", "sha256": hashlib.sha256(template["text"].encode()).hexdigest()}


def _model_files_run(trainer, name: str, public_cloud: bool, **overrides):
    with StandIn(trainer.root / f"{name}-store", api_keys=[KEY], public_cloud=public_cloud) as s:
        env, probe_out = probe_env(name, trainer, SWANLAB_API_KEY=KEY)
        result = trainer.run(name=name, env=env, swanlab_project="files", swanlab_mode="cloud",
                             swanlab_api_host=s.url, swanlab_web_host=s.url,
                             swanlab_log_model="end", **overrides)
        (experiment,) = s.dump()["experiments"]
    assert result.returncode == 0, result.describe()
    return result, experiment, probe_out


def test_full_finetune_watch_at_logging_steps_and_files_stored_on_a_private_deployment(trainer):
    result, experiment, probe_out = _model_files_run(
        trainer, "private", public_cloud=False, logging_steps=2, swanlab_watch="all")
    assert experiment["state"] == "FINISHED"
    probe = json.loads(probe_out.read_text())
    metrics = experiment["metrics"]
    for what in ("grad_norm", "param_norm"):
        for group in ("layer_0", "q_proj", "embeddings"):
            series = metrics[f"watch/{what}/{group}"]
            assert [s for s, _ in series] == [2, 4, 6, 8, 10], series  # logging_steps only
            assert all(close(float(v), probe[what][group][str(s)]) for s, v in series)
    # The model files reached the deployment, and the line says so.
    out = result.run_dir / "out"
    stored = {f["name"]: f for f in experiment["files"]}
    assert stored["model.safetensors"]["state"] == "UPLOADED"
    assert stored["model.safetensors"]["content_matches_md5"]
    assert stored["model.safetensors"]["size"] == (out / "model.safetensors").stat().st_size
    said = [line for line in messages(result) if "model files of output_dir (" in line]
    assert len(said) == 1 and "a private deployment, which stores them" in said[0], said
    assert "model_files" not in experiment["config"]


def test_model_files_recorded_not_stored_on_the_public_cloud(trainer):
    result, experiment, _ = _model_files_run(trainer, "public", public_cloud=True, max_steps=2,
                                             save_steps=2)
    assert experiment["state"] == "FINISHED"
    assert experiment["files"] == []  # nothing was even offered
    out = (result.run_dir / "out").resolve()
    final = experiment["config"]["model_files"]["final"]
    assert final["stored"] is False and final["folder"] == str(out)
    model = out / "model.safetensors"
    assert final["files"]["model.safetensors"] == {
        "size": model.stat().st_size, "sha256": hashlib.sha256(model.read_bytes()).hexdigest()}
    assert set(final["files"]) == {p.name for p in out.iterdir() if p.is_file()
                                   and p.name not in ("debug.log", ".swanlab-autopatch-run.json")}
    said = [line for line in messages(result) if "model files of output_dir (" in line]
    assert len(said) == 1 and "NOT stored" in said[0] and "model_files.final" in said[0], said
    # the local copy of the run has the same record
    assert only_run(result.log_dir).config["model_files"]["final"]["stored"] is False
