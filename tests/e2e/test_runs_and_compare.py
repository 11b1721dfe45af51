"""`swanlab-autopatch runs` and `compare` on runs produced by real Axolotl trainings."""
from __future__ import annotations

import json
import subprocess

from e2e_support import harness
from swanlab_autopatch.runs.reader import find_runs
from swanlab_autopatch.runs.commands import plot_figure


def test_runs_and_compare_on_real_trainings(trainer, tmp_path):
    log_dir = tmp_path / "shared-swanlog"
    results = {}
    for lr in (0.001, 0.002):
        name = f"lr{lr}"
        results[name] = trainer.run(name=name, swanlab_project="compare", swanlab_mode="offline",
                                    swanlab_experiment_name=name, learning_rate=lr,
                                    swanlab_log_dir=str(log_dir))
        assert results[name].returncode == 0, results[name].describe()
    cli = str(trainer.venv / "bin" / "swanlab-autopatch")
    env = harness.training_env(trainer.venv)

    listed = subprocess.run([cli, "runs", str(log_dir), "--json"], capture_output=True,
                            text=True, env=env, timeout=120)
    assert listed.returncode == 0, listed.stderr
    table = {row["name"]: row for row in json.loads(listed.stdout)}
    assert set(table) == {"lr0.001", "lr0.002"}
    for name, result in results.items():
        losses = harness.trainer_losses(result.run_dir)
        row = table[name]
        assert row["state"] == "finished" and row["steps"] == 10
        assert row["last_loss"] == {"step": 10, "value": losses[-1][1]}
        best = min(losses, key=lambda p: p[1])
        assert row["best_loss"] == {"step": best[0], "value": best[1]}

    text = subprocess.run([cli, "runs", str(log_dir)], capture_output=True, text=True, env=env,
                          timeout=120)
    assert text.returncode == 0 and "lr0.001" in text.stdout and "finished" in text.stdout

    png = tmp_path / "compare.png"
    ids = [row["id"] for row in table.values()]
    compared = subprocess.run([cli, "compare", *ids, "--log-dir", str(log_dir), "--json",
                               "--plot", str(png)], capture_output=True, text=True, env=env,
                              timeout=180)
    assert compared.returncode == 0, compared.stderr
    report = json.loads(compared.stdout)
    differing = report["config_differences"]
    assert "training.learning_rate" in differing, sorted(differing)
    assert sorted(differing["training.learning_rate"]) == [0.001, 0.002]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    runs = sorted(find_runs(log_dir), key=lambda r: r.name)
    figure = plot_figure(runs, ["train/loss"])
    lines = figure.axes[0].get_lines()
    assert len(lines) == 2
    for line, run in zip(lines, runs):
        steps, values = line.get_data()
        assert list(zip(map(int, steps), map(float, values))) == run.series("train/loss")
