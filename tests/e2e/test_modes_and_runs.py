"""Modes, the spec's example configs, resuming, and an RL (DPO) trainer, on Axolotl 0.19.0."""
from __future__ import annotations

import json
import socket
import subprocess
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from e2e_support import harness, messages, only_run, wait_until
from swanlab_autopatch.runs.reader import find_runs


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


@contextmanager
def swanlab_watch(trainer, log_dir: Path, log: Path):
    """`swanlab watch` on a log folder: (its /api/v1 URL, the project it serves) once it
    answers (seconds on a quiet machine, longer on a busy one); stopped at the end."""
    port = free_port()
    with open(log, "wb") as out:
        watch = subprocess.Popen(
            [str(trainer.venv / "bin" / "swanlab"), "watch", str(log_dir), "--host",
             "127.0.0.1", "--port", str(port)], env=harness.training_env(trainer.venv),
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/api/v1"

    def project():
        assert watch.poll() is None, \
            f"swanlab watch exited {watch.returncode}:\n{log.read_text(errors='replace')[-3000:]}"
        return get_json(f"{base}/project")

    try:
        yield base, wait_until(project, 180, f"swanlab watch answering on {base}")
    finally:
        watch.terminate()
        watch.wait(timeout=60)


def test_local_mode_is_served_by_swanlab_watch(trainer, tmp_path):
    result = trainer.run(swanlab_project="local-run", swanlab_mode="local")
    assert result.returncode == 0, result.describe()
    run = only_run(result.log_dir)
    expected = harness.trainer_losses(result.run_dir)
    assert run.series("train/loss") == expected
    with swanlab_watch(trainer, result.log_dir, tmp_path / "watch.log") as (base, project):
        experiments = project["data"]["experiments"]
        assert len(experiments) == 1
        exp_id = experiments[0]["id"]
        tag = urllib.parse.quote("train/loss", safe="")
        series = get_json(f"{base}/experiment/{exp_id}/tag/{tag}")["data"]["list"]
        served = [(int(p["index"]), float(p["data"])) for p in series]
        assert served == expected


def test_offline_mode_writes_a_run_that_sync_accepts(trainer):
    result = trainer.run(swanlab_project="offline-run", swanlab_mode="offline")
    run = only_run(result.log_dir)
    assert run.series("train/loss") == harness.trainer_losses(result.run_dir)
    # `swanlab sync` is the upload command: without a key it must refuse for the key, not for
    # the folder (the network check comes after the folder is accepted).
    sync = subprocess.run([str(trainer.venv / "bin" / "swanlab"), "sync", str(run.path)],
                          env=harness.training_env(trainer.venv, swanlab_root=result.run_dir),
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    text = sync.stdout + sync.stderr
    assert sync.returncode != 0 and "login" in text.lower(), text


SPEC_EXAMPLES = {
    # Example 1: basic cloud sync (no key here: falls back to offline)
    "basic": dict(plugins=["axolotl.integrations.swanlab.SwanLabPlugin"], use_swanlab=True,
                  swanlab_project="llama-finetune", swanlab_experiment_name="llama-3-8b-instruct-v1",
                  swanlab_mode="cloud"),
    # Example 2: offline / local
    "local": dict(plugins=["axolotl.integrations.swanlab.SwanLabPlugin"], use_swanlab=True,
                  swanlab_project="local-experiments", swanlab_experiment_name="test-run-1",
                  swanlab_mode="local"),
    # Example 3: team workspace
    "workspace": dict(plugins=["axolotl.integrations.swanlab.SwanLabPlugin"], use_swanlab=True,
                      swanlab_project="research-project", swanlab_experiment_name="experiment-42",
                      swanlab_workspace="my-research-team", swanlab_mode="cloud"),
    # Example 4: private deployment
    "private": dict(plugins=["axolotl.integrations.swanlab.SwanLabPlugin"], use_swanlab=True,
                    swanlab_project="internal-project", swanlab_experiment_name="secure-training",
                    swanlab_mode="cloud", swanlab_web_host="https://swanlab.yourcompany.invalid",
                    swanlab_api_host="https://api.swanlab.yourcompany.invalid"),
    # The complete example (RVQ-Alpha), adapted to the tiny model
    "complete": dict(plugins=["axolotl.integrations.swanlab.SwanLabPlugin"], use_swanlab=True,
                     swanlab_project="RVQ-Alpha-Training",
                     swanlab_experiment_name="Qwen2.5-7B-MetaQA-Perturb-P020",
                     swanlab_description="Training on MetaQA and Perturbation datasets with "
                                         "NEW-RVQ encoding",
                     swanlab_mode="cloud", swanlab_workspace="single-cell-genomics",
                     num_epochs=2, learning_rate=2e-5, optimizer="adamw_torch"),
}


@pytest.mark.parametrize("version", ["0.12.2", "0.19.0"])
@pytest.mark.parametrize("name", sorted(SPEC_EXAMPLES))
def test_spec_examples(trainer_for, name, version):
    """The spec's examples, adapted to the tiny model. They name Axolotl's plugin: on 0.12.2,
    which has none, this package does the job and Axolotl does not complain about the missing
    plugin; on 0.19.0 the `plugins:` line is dropped (this package makes it unnecessary; with
    it, Axolotl's own plugin runs and this package stands down, tested elsewhere)."""
    example = dict(SPEC_EXAMPLES[name])
    if version != "0.12.2":
        example.pop("plugins")
    result = trainer_for(version).run(**example)
    assert result.returncode == 0, result.describe()
    assert "Failed to load plugin" not in result.output, result.describe()
    run = only_run(result.log_dir)
    assert run.project == example["swanlab_project"]
    assert run.name == example["swanlab_experiment_name"]
    assert run.series("train/loss") == harness.trainer_losses(result.run_dir)
    lines = messages(result)
    if "plugins" in example:
        assert any("has no SwanLab plugin of its own" in l for l in lines), lines
    if example["swanlab_mode"] == "cloud":  # no key here: kept offline, said once each
        assert len([l for l in lines if "no API key found" in l]) == 1, lines
        assert len([l for l in lines if "upload it with: swanlab sync" in l]) == 1, lines


def test_resume_from_checkpoint_continues_the_run(trainer, tmp_path):
    first = trainer.run(name="resume", env={"SWANLAB_MODE": "offline"}, swanlab_project="resume",
                        save_steps=5)
    assert first.returncode == 0, first.describe()
    original = only_run(first.log_dir)
    second = trainer.run(name="resume", env={"SWANLAB_MODE": "offline"},
                         swanlab_project="resume", save_steps=5, max_steps=15,
                         resume_from_checkpoint=str(first.run_dir / "out" / "checkpoint-10"))
    assert second.returncode == 0, second.describe()
    runs = find_runs(second.log_dir)
    assert len(runs) == 2
    assert {r.run_id for r in runs} == {original.run_id}
    resumed = next(r for r in runs if r.path != original.path)
    steps = [s for s, _ in resumed.series("train/loss")]
    assert steps == list(range(11, 16)), steps
    assert any(f"Resuming SwanLab run {original.run_id} from step 10" in l
               for l in messages(second)), messages(second)


def test_dpo_trainer_metrics_are_logged(trainer):
    datasets = [{"path": str(trainer.assets / "preference.jsonl"), "ds_type": "json",
                 "split": "train", "type": "chatml.default"}]
    result = trainer.run(env={"SWANLAB_MODE": "offline"}, swanlab_project="dpo", rl="dpo",
                         dataset=datasets, chat_template="chatml", max_steps=4, save_steps=4)
    assert result.returncode == 0, result.describe()
    run = only_run(result.log_dir)
    assert run.state == "finished"
    assert run.series("train/loss") == harness.trainer_losses(result.run_dir)
    rl_keys = [k for k in run.scalars if k.startswith(("train/rewards/", "train/logps/"))]
    assert rl_keys, sorted(run.scalars)
    assert run.config["training"]["rl"] == "dpo"
