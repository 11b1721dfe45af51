"""`axolotl train cfg.yaml --swanlab_project=x ...`: the swanlab keys as options of Axolotl's own
command line, on each e2e release and on the default launcher (accelerate) and the in-process
one (`--launcher python`, `--no-accelerate` before 0.12). The YAML holds no swanlab key at all.
(torchrun: test_training.test_two_processes_make_one_run gives its keys the same way.)
"""
from __future__ import annotations

import json

import pytest

from e2e_support import messages, only_run

CANARY = "sk-CANARY-clioptions-5e1b"


@pytest.mark.parametrize("launcher", ["axolotl", "python"])
@pytest.mark.parametrize("version", ["0.9.2", "0.12.2", "0.19.0", "0.21.0"])
def test_swanlab_options_on_axolotl_train(trainer_for, tmp_path, version, launcher):
    trainer = trainer_for(version)
    log_dir = tmp_path / "cli-runs"
    options = ("--swanlab_project=cli-options", "--swanlab_mode=offline",
               f"--swanlab-log-dir={log_dir}", "--swanlab_experiment_name", "from-the-cli",
               # Values `fire` would turn into a tuple and a float on the accelerate path.
               "--swanlab_description=lr 1e-3, two steps", "--swanlab_group=1e5",
               "--swanlab_tags=cli,e2e", "--swanlab-tags", "more",
               "--swanlab_log_completions=false", "--swanlab_completion_log_interval=7",
               f"--swanlab_api_key={CANARY}")
    result = trainer.run(launcher=launcher, extra_args=options, max_steps=2)
    written = json.loads((result.run_dir / "cfg.yaml").read_text())
    assert not [key for key in written if "swanlab" in key], written
    assert result.returncode == 0, result.describe()

    run = only_run(log_dir)
    assert (run.project, run.name, run.state) == ("cli-options", "from-the-cli", "finished")
    assert run.description == "lr 1e-3, two steps" and run.group == "1e5"
    assert run.tags == ["cli", "e2e", "more"]
    assert [step for step, _ in run.series("train/loss")] == [1, 2]
    keys = {k: v for k, v in run.config["axolotl"].items() if "swanlab" in k}
    assert keys["swanlab_mode"] == "offline" and keys["use_swanlab"] is True
    assert keys["swanlab_log_completions"] is False
    assert keys["swanlab_completion_log_interval"] == 7
    assert "swanlab_api_key" not in keys
    enabled = [line for line in messages(result) if "tracking enabled" in line]
    assert len(enabled) == 1, messages(result)

    # The key typed on the command line is nowhere: output, run folder (SwanLab's metadata
    # records the command line), Axolotl's output folder.
    assert CANARY not in result.output
    leaks = [str(path) for path in tmp_path.rglob("*")
             if path.is_file() and CANARY.encode() in path.read_bytes()]
    assert leaks == []
    command = run.metadata["runtime"]["command"]
    assert "--swanlab_api_key=***" in command or "--swanlab" not in command, command
