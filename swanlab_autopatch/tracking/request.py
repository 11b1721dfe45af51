"""What a run needs before SwanLab is touched, and the bounds on waiting for SwanLab (shared by
the training process and the sidecar that owns the run)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from swanlab_autopatch._startup import seconds
from swanlab_autopatch.config.settings import SwanLabSettings

RUN_ID_FILE = ".swanlab-autopatch-run.json"  # in output_dir, to resume the run with training


def connect_timeout() -> float:
    """How long cloud mode may take to log in before falling back to offline."""
    return seconds("SWANLAB_AUTOPATCH_CONNECT_TIMEOUT", 20.0)


def finish_timeout() -> float:
    """How long the end of a run may wait for SwanLab (uploads in cloud mode)."""
    return seconds("SWANLAB_AUTOPATCH_FINISH_TIMEOUT", 60.0)


@dataclass
class StartRequest:
    """Everything a run needs, decided in the training process."""

    settings: SwanLabSettings
    config: dict
    output_dir: Optional[str] = None
    resuming: bool = False
    resume_step: int = 0
    name: Optional[str] = None  # the run's name when the config gives none (naming.py)
    tags: Optional[list[str]] = None  # the config's tags, else naming.default_tags
