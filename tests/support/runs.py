"""Reading back the run a test's tracking wrote."""
from __future__ import annotations

import time
from pathlib import Path

from swanlab_autopatch.runs.reader import find_runs


def settled_run(log_dir: Path, timeout: float = 60):
    """The one run, once its sidecar has written the finish record (it may outlive the
    training process by a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        runs = find_runs(log_dir) if log_dir.exists() else []
        if len(runs) == 1 and runs[0].state != "running":
            return runs[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no settled run in {log_dir}: {[(r.path, r.state) for r in runs]}")
        time.sleep(0.2)
