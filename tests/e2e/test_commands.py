"""Other Axolotl commands that load a config: `evaluate` gets a run, `preprocess` never does."""
from __future__ import annotations

import subprocess

from e2e_support import harness, messages, only_run


def _axolotl(trainer, run_dir, command, cfg, *args):
    path = harness.write_config(run_dir / "cfg.yaml", cfg)
    return subprocess.run(["axolotl", command, str(path), *args], cwd=run_dir,
                          env=harness.training_env(trainer.venv, {"SWANLAB_MODE": "offline"},
                                                   swanlab_root=run_dir / ".sl"),
                          capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)


def test_preprocess_validates_but_starts_no_run(trainer, tmp_path):
    run_dir = tmp_path / "pre"
    run_dir.mkdir()
    proc = _axolotl(trainer, run_dir, "preprocess",
                    trainer.config(run_dir, swanlab_project="pre"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (run_dir / "prepared").exists()
    assert not (run_dir / "swanlog").exists()
    bad = _axolotl(trainer, run_dir, "preprocess",
                   trainer.config(run_dir, swanlab_project="pre", swanlab_mode="bogus"))
    assert bad.returncode != 0 and "Invalid swanlab_mode: 'bogus'" in bad.stderr


def test_evaluate_gets_one_finished_run(trainer, tmp_path):
    run_dir = tmp_path / "eval"
    run_dir.mkdir()
    proc = _axolotl(trainer, run_dir, "evaluate",
                    trainer.config(run_dir, swanlab_project="evaluate", val_set_size=0.25),
                    "--launcher", "python")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    run = only_run(run_dir / "swanlog")
    assert run.state == "finished", run.state
    assert run.series("eval/loss"), sorted(run.scalars)
    assert not run.series("train/loss")
    assert not [l for l in messages(harness.TrainResult([], 0, proc.stdout, proc.stderr, 0,
                                                        run_dir)) if "WARNING" in l]
