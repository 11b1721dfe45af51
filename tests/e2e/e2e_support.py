"""Helpers of the end-to-end lane (imported by its conftest and tests)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
import harness  # noqa: E402

from swanlab_autopatch.runs.reader import find_runs  # noqa: E402

_prepared: dict[str, tuple[Path, Path]] = {}

# "At once": a cloud start that fails outright (a refused port, a wrong key) costs well under a
# second on a quiet machine. The bound leaves a loaded machine room and still catches what it
# guards against: SwanLab's own retries, 15 to 75 s.
AT_ONCE = 10.0


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


def wait_until(predicate, timeout: float, what: str, interval: float = 0.2):
    """predicate()'s first truthy value; fails naming ``what`` (and the last value, or the
    last connection error the predicate raised) when none comes within ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = predicate()
        except OSError as exc:  # e.g. a server that does not listen yet
            value, last = None, f"{type(exc).__name__}: {exc}"
        else:
            last = repr(value)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout:.0f} s (last: {last})")
        time.sleep(interval)


def settled_run(log_dir: Path, timeout: float = 180):
    """The single run once it has a finish record: after a killed training, or a finish that
    outlasted its bound, the sidecar finishes the run a moment later (longer on a busy
    machine), and a helper held before its run was up (stopped, slow to start on a busy
    machine) creates the run folder only then. Fails when there is no run, or it is still
    "running", after ``timeout`` seconds, and at once when there is more than one run."""
    def finished():
        if not log_dir.exists() or not find_runs(log_dir):
            return None  # not created yet
        run = only_run(log_dir)
        return run if run.state != "running" else None

    return wait_until(finished, timeout, f"a finish record in the run under {log_dir}")


def messages(result: harness.TrainResult) -> list[str]:
    """This package's lines in a training's output."""
    return [line for line in result.output.splitlines() if "[swanlab-autopatch]" in line]


def tables(run, key: str) -> list[dict]:
    """The ECharts tables a run logged under a key: [{"step", "headers", "rows"}], by step."""
    found = []
    for media in run.media:
        if media["key"] != key:
            continue
        for item in media["items"]:
            data = json.loads(Path(item["path"]).read_text())
            headers = [c["field"] for c in data["colDefs"]]
            rows = [[row.get(h) for h in headers] for row in data["rowData"]]
            found.append({"step": media["step"], "headers": headers, "rows": rows})
    return sorted(found, key=lambda t: t["step"])
