"""`swanlab-autopatch runs` and `compare` on runs produced by real Axolotl trainings."""
from __future__ import annotations

import json
import subprocess

from e2e_support import harness
from swanlab_autopatch.runs.reader import find_runs
from swanlab_autopatch.runs.commands import plot_figure

PNG = b"\x89PNG\r\n\x1a\n"


def test_runs_and_compare_on_real_trainings(trainer, tmp_path):
    """Two trainings of one YAML that differ only in the learning rate (Axolotl's own
    `--learning-rate` override), both on the dataset `axolotl preprocess` prepared: a training
    that prepares it itself records other token totals (`total_num_tokens`) than one that
    loads it, and that would be a real second difference."""
    root = tmp_path / "lr"
    cfg = trainer.config(root, swanlab_project="compare", swanlab_mode="offline", max_steps=4,
                         save_steps=4, val_set_size=0.1, eval_steps=2)
    env = harness.training_env(trainer.venv, swanlab_root=root / ".swanlab-root")
    cfg_path = harness.write_config(root / "cfg.yaml", cfg)
    prepared = subprocess.run(["axolotl", "preprocess", str(cfg_path)], cwd=root, env=env,
                              capture_output=True, text=True, timeout=600,
                              stdin=subprocess.DEVNULL)
    assert prepared.returncode == 0, prepared.stderr[-3000:]
    losses = {}
    for lr, args in ((0.001, ()), (0.002, ("--learning-rate=0.002",))):
        result = harness.run_training(trainer.venv, trainer.version, root, cfg,
                                      extra_args=args)
        assert result.returncode == 0, result.describe()
        losses[lr] = harness.trainer_losses(root)
    log_dir = root / "swanlog"
    cli = str(trainer.venv / "bin" / "swanlab-autopatch")

    listed = subprocess.run([cli, "runs", str(log_dir), "--json"], capture_output=True,
                            text=True, env=env, timeout=120)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    runs = {run.config["learning_rate"]: run for run in find_runs(log_dir)}
    assert sorted(runs) == [0.001, 0.002]
    assert len(rows) == 2
    for row in rows:
        lr = next(lr for lr, run in runs.items() if run.run_id == row["id"])
        assert row["state"] == "finished" and row["steps"] == 4
        assert row["last_loss"] == {"step": 4, "value": losses[lr][-1][1]}
        best = min(losses[lr], key=lambda p: p[1])
        assert row["best_loss"] == {"step": best[0], "value": best[1]}
    ids = [runs[0.001].run_id, runs[0.002].run_id]

    text = subprocess.run([cli, "compare", *ids, "--log-dir", str(log_dir)],
                          capture_output=True, text=True, env=env, timeout=180)
    assert text.returncode == 0, text.stderr
    print(text.stdout)  # the example of docs/runs-and-compare.md (pytest -s shows it)
    config = text.stdout.split("\n\n")[1].splitlines()
    assert config[0].startswith("Config: 1 differs, ") and config[0].endswith(
        " the same (secrets masked)"), config
    assert config[2].split() == ["learning_rate", "0.001", "0.002"] and len(config) == 3
    shown = [line.split(" (")[0].strip() for line in text.stdout.splitlines()
             if line.startswith("  ") and line.rstrip().endswith(("better)", "direction)"))]
    assert shown == ["train/loss", "eval/loss", "train/learning_rate"], text.stdout
    assert "more logged: --all shows them, --metric NAME picks one)" in text.stdout

    png = tmp_path / "compare.png"
    compared = subprocess.run([cli, "compare", *ids, "--log-dir", str(log_dir), "--json",
                               "--plot", str(png)], capture_output=True, text=True, env=env,
                              timeout=180)
    assert compared.returncode == 0, compared.stderr
    report = json.loads(compared.stdout)
    assert report["config_differences"] == {"learning_rate": [0.001, 0.002]}
    assert report["config_copies"]["learning_rate"] == [
        "learning_rate", "training.learning_rate", "axolotl.learning_rate",
        "trainer_args.learning_rate"]
    assert list(report["metrics"]) == ["train/loss", "eval/loss", "train/learning_rate"]
    assert "train/tokens/train_per_sec_per_gpu" in report["other_metrics"]
    assert png.read_bytes()[:8] == PNG

    ordered = [runs[0.001], runs[0.002]]
    figure = plot_figure(ordered, ["train/loss", "eval/loss"])
    for axes, key in zip(figure.axes, ("train/loss", "eval/loss")):
        lines = axes.get_lines()
        assert len(lines) == 2
        for line, run in zip(lines, ordered):
            steps, values = line.get_data()
            assert list(zip(map(int, steps), map(float, values))) == run.series(key)
