"""Helpers of the end-to-end lane (imported by its conftest and tests)."""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
import harness  # noqa: E402

from swanlab_autopatch.runs.reader import find_runs  # noqa: E402

_prepared: dict[str, tuple[Path, Path]] = {}


def prepared(version: str) -> tuple[Path, Path]:
    """(venv, assets) for an Axolotl release, with this project installed."""
    if version not in _prepared:
        _prepared[version] = harness.prepare(version)
    return _prepared[version]


class Trainer:
    """Runs trainings for one test, each in its own sub-folder of the test's tmp_path."""

    def __init__(self, root: Path, version: str):
        self.root = root
        self.version = version
        self.venv, self.assets = prepared(version)
        self.count = 0

    def config(self, run_dir: Path, **overrides):
        return harness.config_for(self.assets, run_dir, **overrides)

    def run(self, *, launcher: str = "python", env: dict | None = None, name: str | None = None,
            extra_args: tuple[str, ...] = (), timeout: float = 600, dataset: str = "alpaca",
            **overrides) -> harness.TrainResult:
        self.count += 1
        run_dir = self.root / (name or f"run{self.count}")
        cfg = self.config(run_dir, dataset=dataset, **overrides)
        return harness.run_training(self.venv, self.version, run_dir, cfg, launcher=launcher,
                                    env_extra=env, extra_args=extra_args, timeout=timeout)

    def python(self) -> str:
        return harness.python_of(self.venv)


def only_run(log_dir: Path):
    """The single run under a log folder (fails with the list when there are more or none)."""
    runs = find_runs(log_dir) if log_dir.exists() else []
    assert len(runs) == 1, f"expected exactly one SwanLab run in {log_dir}, found {len(runs)}: " \
                           f"{[str(r.path) for r in runs]}"
    return runs[0]


def settled_run(log_dir: Path, timeout: float = 60):
    """The single run once it has a finish record: after a killed training, its sidecar
    finishes the run a moment later."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        run = only_run(log_dir)
        if run.state != "running" or time.monotonic() > deadline:
            return run
        time.sleep(0.2)


def messages(result: harness.TrainResult) -> list[str]:
    """This package's lines in a training's output."""
    return [line for line in result.output.splitlines() if "[swanlab-autopatch]" in line]
