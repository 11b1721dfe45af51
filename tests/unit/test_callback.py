"""The Trainer callback: metric names as transformers' tracker integrations give them, and one
real SwanLab run (offline, in a temporary folder) driven through the Trainer events."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from transformers import TrainerCallback
from transformers.integrations.integration_utils import rewrite_logs

from swanlab_autopatch.tracking.callback import SwanLabAutopatchCallback
from swanlab_autopatch.tracking.metric_names import SINGLE_VALUES, metric_name, to_metrics
from swanlab_autopatch.runs.reader import find_runs
from tests.support.fake import REPO

CANARY = "hf_CANARY_9d8e7f"
PROBES = ("HARDWARE", "RUNTIME", "REQUIREMENTS", "CONDA", "GIT", "MONITOR")

# -- names ---------------------------------------------------------------------------------------


def test_the_callback_is_a_transformers_callback():
    assert issubclass(SwanLabAutopatchCallback, TrainerCallback)


# The summary keys transformers' SwanLabCallback / WandbCallback file under single_value/.
TRANSFORMERS_SINGLE_VALUES = {"train_runtime", "train_samples_per_second",
                              "train_steps_per_second", "train_loss", "total_flos"}


def test_single_values_are_those_of_transformers():
    assert set(SINGLE_VALUES) == TRANSFORMERS_SINGLE_VALUES


@pytest.mark.parametrize("key", [
    "loss", "learning_rate", "grad_norm", "epoch", "eval_loss", "eval_runtime",
    "eval_samples_per_second", "eval_steps_per_second", "eval_accuracy", "test_loss",
    "test_bleu", "memory/max_active (GiB)", "tokens_per_second_per_gpu", "rewards/chosen",
    "logps/rejected", "eval_rewards/margins", "num_tokens", "evaluation", "tester", "e",
])
def test_names_match_transformers_rewrite_logs(key):
    (expected,) = rewrite_logs({key: 1.0})
    assert metric_name(key) == expected


@pytest.mark.parametrize("key", sorted(TRANSFORMERS_SINGLE_VALUES))
def test_summary_values_are_single_values(key):
    assert metric_name(key) == f"single_value/{key}"


def test_to_metrics_on_a_realistic_trainer_log():
    logs = {
        "loss": 1.25,
        "learning_rate": 2e-05,
        "grad_norm": np.float32(0.5),
        "epoch": 0.5,
        "eval_loss": np.float64(0.75),
        "eval_runtime": 1.5,
        "eval_samples_per_second": 10,
        "train_runtime": 12.5,
        "train_samples_per_second": 3.2,
        "train_steps_per_second": 0.4,
        "total_flos": 1234567890.0,
        "train_loss": 1.1,
        "num_tokens": np.int64(4096),
        "loss_0d": np.array(3.0),
        "note": "a string",
        "missing": None,
        "nested": [1.0, 2.0],
        "mapping": {"a": 1.0},
        "flag": True,
        "np_flag": np.bool_(True),
        "vector": np.array([1.0, 2.0]),
        "": 1.0,
    }
    metrics = to_metrics(logs)
    assert metrics == {
        "train/loss": 1.25,
        "train/learning_rate": 2e-05,
        "train/grad_norm": 0.5,
        "train/epoch": 0.5,
        "eval/loss": 0.75,
        "eval/runtime": 1.5,
        "eval/samples_per_second": 10,
        "single_value/train_runtime": 12.5,
        "single_value/train_samples_per_second": 3.2,
        "single_value/train_steps_per_second": 0.4,
        "single_value/total_flos": 1234567890.0,
        "single_value/train_loss": 1.1,
        "train/num_tokens": 4096,
        "train/loss_0d": 3.0,
    }
    assert all(type(v) in (int, float) or isinstance(v, (np.floating, np.integer))
               for v in metrics.values())
    assert to_metrics({}) == {} and to_metrics(None) == {}


# -- a real run, driven like the Trainer drives it ----------------------------------------------

PRODUCER = r'''
import json, os, sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from swanlab_autopatch.tracking.callback import SwanLabAutopatchCallback
from swanlab_autopatch.config.settings import parse
from swanlab_autopatch.tracking import run

p = json.loads(os.environ["T_ARGS"])
result = parse({"swanlab_project": "cb-test", "swanlab_experiment_name": "exp-1",
                "swanlab_mode": "offline", "swanlab_log_dir": p["log_dir"],
                "swanlab_api_key": p["canary"]}, env={})
cfg = {"base_model": "tiny-model", "learning_rate": 0.001, "micro_batch_size": 2,
       "gradient_accumulation_steps": 4, "output_dir": p["output_dir"],
       "axolotl_config_path": p["yaml"], "hub_token": p["canary"],
       "wandb_api_key": p["canary"], "special_tokens": {"pad_token": "<|pad|>"},
       **result.settings.public_keys()}


class Args:
    output_dir = p["output_dir"]

    def to_dict(self):
        return {"learning_rate": 0.001, "hub_token": p["canary"], "output_dir": p["output_dir"]}


state = SimpleNamespace(is_world_process_zero=p["zero"], global_step=0)
callback = SwanLabAutopatchCallback(result.settings, cfg)
args, control = Args(), SimpleNamespace()
callback.on_train_begin(args, state, control)
for step in (1, 2, 3):
    state.global_step = step
    callback.on_log(args, state, control, logs={
        "loss": 2.0 / step, "learning_rate": 1e-3 * step, "grad_norm": np.float32(step),
        "epoch": step / 3, "note": "text is skipped", "missing": None})
callback.on_log(args, state, control, logs={"eval_loss": 0.9, "eval_runtime": 0.5})
# swanlab_watch's path: numbers under their final names; histograms as plain data (dropped
# by a client without swanlab.Histogram, as every supported one is)
run.log_metrics({"watch/grad_norm/layer_0": 0.25, "watch/grad_norm/lora_B": 0.5}, 3)
run.log_histograms({"watch/grad_hist/lora_B": ([1.0, 3.0], [-0.5, 0.5])}, 3)
callback.on_save(args, state, control)
callback.on_log(args, state, control, logs={"train_runtime": 12.5, "train_loss": 1.1,
                                            "total_flos": 1e9})
callback.on_train_end(args, state, control)
after_train_end = run.active()  # the run goes on with the job (Axolotl saves the model)
from swanlab_autopatch.tracking import trainer_hooks
trainer_hooks.after_training()  # Axolotl's train() returned
print("RESULT:" + json.dumps({"swanlab_imported": "swanlab" in sys.modules,
                              "active_after_train_end": after_train_end,
                              "active": run.active(),
                              "run_dir": str(run.run_dir()) if run.run_dir() else None}))
'''

CONFIG_YAML = textwrap.dedent(f"""\
    base_model: tiny-model  # the model
    swanlab_project: cb-test
    swanlab_api_key: {CANARY}
    hub_token: "{CANARY}"
    special_tokens:
      pad_token: "<|pad|>"
    """)


def _produce(tmp: Path, zero: bool, sidecar: bool = True) -> dict:
    tmp.mkdir(parents=True)
    (tmp / "home").mkdir()
    yaml_path = tmp / "cfg.yaml"
    yaml_path.write_text(CONFIG_YAML)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SWANLAB", "RANK", "LOCAL_RANK", "WORLD_SIZE"))}
    env.update({
        "PYTHONPATH": str(REPO), "HOME": str(tmp / "home"),
        "SWANLAB_ROOT": str(tmp / "home" / ".swanlab"),
        "SWANLAB_PROJECT": "plain-string-project",  # breaks swanlab.init unless handled
        # SwanLab's environment probes (pip freeze, git, hardware) only cost time here
        **{f"SWANLAB_PROBE_{name}": "false" for name in PROBES},
        "T_ARGS": json.dumps({"log_dir": str(tmp / "swanlog"), "output_dir": str(tmp / "out"),
                              "yaml": str(yaml_path), "canary": CANARY, "zero": zero}),
    })
    if not zero:
        env.update(RANK="1", WORLD_SIZE="2")
    if not sidecar:
        env["SWANLAB_AUTOPATCH_SIDECAR"] = "0"
    proc = subprocess.run([sys.executable, "-c", PRODUCER], env=env, cwd=tmp,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("RESULT:")]
    return {"tmp": tmp, "proc": proc, **json.loads(line[len("RESULT:"):])}


@pytest.fixture(scope="module", params=["sidecar", "in-process"])
def produced(request, tmp_path_factory) -> dict:
    """The same Trainer events with the run in the sidecar process (the default) and in the
    training process (SWANLAB_AUTOPATCH_SIDECAR=0, also the fallback)."""
    base = tmp_path_factory.mktemp("callback")
    sidecar = request.param == "sidecar"
    with ThreadPoolExecutor(max_workers=2) as pool:
        zero = pool.submit(_produce, base / "rank0", True, sidecar)
        other = pool.submit(_produce, base / "rank1", False, sidecar)
        return {"zero": zero.result(), "other": other.result(), "sidecar": sidecar}


def test_rank_zero_records_one_finished_run(produced):
    out = produced["zero"]
    assert out["active_after_train_end"]  # the job goes on after the Trainer: the run too
    assert not out["active"]  # finished when Axolotl's train() returned
    # With the sidecar, SwanLab's client never even loads in the training process.
    assert out["swanlab_imported"] is (not produced["sidecar"])
    (run,) = find_runs(out["tmp"] / "swanlog")
    assert run.path == Path(out["run_dir"])
    assert run.state == "finished", run.problems
    assert run.project == "cb-test" and run.name == "exp-1"
    assert not run.problems


def test_rank_zero_metrics(produced):
    (run,) = find_runs(produced["zero"]["tmp"] / "swanlog")
    assert run.scalars["train/loss"] == [(1, 2.0), (2, 1.0), (3, pytest.approx(2 / 3))]
    assert run.scalars["train/learning_rate"] == [
        (1, pytest.approx(1e-3)), (2, pytest.approx(2e-3)), (3, pytest.approx(3e-3))]
    assert run.scalars["train/grad_norm"] == [(1, 1.0), (2, 2.0), (3, 3.0)]
    assert [s for s, _ in run.scalars["train/epoch"]] == [1, 2, 3]
    assert run.scalars["eval/loss"] == [(3, 0.9)]
    assert run.scalars["eval/runtime"] == [(3, 0.5)]
    assert run.scalars["single_value/train_runtime"] == [(3, 12.5)]
    assert run.scalars["single_value/train_loss"] == [(3, 1.1)]
    assert run.scalars["single_value/total_flos"] == [(3, 1e9)]
    assert run.scalars["watch/grad_norm/layer_0"] == [(3, 0.25)]
    assert run.scalars["watch/grad_norm/lora_B"] == [(3, 0.5)]
    assert set(run.scalars) == {
        "train/loss", "train/learning_rate", "train/grad_norm", "train/epoch", "eval/loss",
        "eval/runtime", "single_value/train_runtime", "single_value/train_loss",
        "single_value/total_flos", "watch/grad_norm/layer_0", "watch/grad_norm/lora_B"}
    assert not [m for m in run.media if m["key"].startswith("watch/")]


def test_rank_zero_config_is_logged_and_redacted(produced):
    (run,) = find_runs(produced["zero"]["tmp"] / "swanlog")
    config = run.config
    assert config["framework"] == "axolotl"
    assert config["model"]["base_model"] == "tiny-model"
    assert config["training"]["learning_rate"] == 0.001
    assert config["training"]["effective_batch_size"] == 8
    assert config["axolotl"]["swanlab_project"] == "cb-test"
    assert config["axolotl"]["special_tokens"] == {"pad_token": "<|pad|>"}
    assert config["axolotl"]["hub_token"] == "***"
    assert config["axolotl"]["wandb_api_key"] == "***"
    assert "swanlab_api_key" not in config["axolotl"]
    assert config["trainer_args"]["hub_token"] == "***"
    assert config.get("last_checkpoint_step") == 3  # on_save
    # the YAML file, logged as text, is redacted but keeps its comments
    texts = [m for m in run.media if m["key"] == "axolotl_config"]
    assert texts and "***" in texts[0]["text"] and "# the model" in texts[0]["text"]


def test_no_secret_in_any_file_of_the_run(produced):
    out = produced["zero"]
    files = [p for p in (out["tmp"] / "swanlog").rglob("*") if p.is_file()]
    assert len(files) >= 3
    for path in files:
        assert CANARY.encode() not in path.read_bytes(), path
    assert CANARY not in out["proc"].stdout + out["proc"].stderr


def test_other_ranks_never_touch_swanlab(produced):
    out = produced["other"]
    assert out["swanlab_imported"] is False
    assert out["run_dir"] is None and out["active"] is False
    log_dir = out["tmp"] / "swanlog"
    assert not log_dir.exists() or not any(log_dir.iterdir())
    assert not (out["tmp"] / "out").exists()
    assert "[swanlab-autopatch]" not in out["proc"].stderr
