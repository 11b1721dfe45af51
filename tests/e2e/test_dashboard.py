"""The dashboard as a user sees it: two local runs with different learning rates under
`swanlab watch`, the experiment table screenshot in headless Chromium, and the hyperparameters
served as columns of their own (not inside a JSON blob)."""
from __future__ import annotations

import shutil
import subprocess

from test_modes_and_runs import swanlab_watch

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--virtual-time-budget=10000"]
COLUMNS = {"learning_rate", "micro_batch_size", "effective_batch_size", "max_steps",
           "sequence_len", "optimizer", "lr_scheduler", "method", "adapter", "base_model"}


def test_hyperparameters_are_columns_of_the_experiment_table(trainer, tmp_path):
    log_dir = tmp_path / "swanlog"
    for lr in (0.001, 0.0003):
        result = trainer.run(name=f"lr{lr}", swanlab_project="table", swanlab_mode="local",
                             learning_rate=lr, swanlab_log_dir=str(log_dir))
        assert result.returncode == 0, result.describe()
    with swanlab_watch(trainer, log_dir, tmp_path / "watch.log") as (base, answer):
        url = base.removesuffix("/api/v1")
        project = answer["data"]
        # What the table page is served: each hyperparameter a plain value per experiment.
        served = {e["name"]: e["config"] for e in project["experiments"]}
        assert len(served) == 2
        rates = sorted(cfg["learning_rate"]["value"] for cfg in served.values())
        assert rates == [0.0003, 0.001]
        for cfg in served.values():
            assert COLUMNS <= set(cfg), sorted(cfg)
            assert not any(isinstance(cfg[k]["value"], dict) for k in COLUMNS)
        # As a user sees it: the rendered page, and a screenshot of it.
        common = [CHROMIUM, *FLAGS, "--window-size=3400,700"]
        # (Chromium takes seconds here; the bound is for a loaded machine.)
        page = subprocess.run([*common, f"--user-data-dir={tmp_path / 'c1'}", "--dump-dom", url],
                              capture_output=True, text=True, timeout=300)
        dom = page.stdout
        assert "learning_rate" in dom and ">0.0003<" in dom and ">0.001<" in dom, \
            (page.returncode, page.stderr[-2000:], dom[-2000:])
        for name in served:
            assert name in dom
        shot = tmp_path / "experiment-table.png"
        taken = subprocess.run([*common, f"--user-data-dir={tmp_path / 'c2'}",
                                f"--screenshot={shot}", url], capture_output=True, text=True,
                               timeout=300)
        assert shot.is_file() and shot.stat().st_size > 20_000, \
            ("no screenshot", taken.returncode, taken.stderr[-2000:])
        print(f"\nscreenshot of the experiment table: {shot}")
