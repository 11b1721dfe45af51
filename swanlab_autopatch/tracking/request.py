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
    """How long the end of training may wait for SwanLab (uploads in cloud mode)."""
    return seconds("SWANLAB_AUTOPATCH_FINISH_TIMEOUT", 60.0)


def upload_timeout() -> float:
    """How long the helper process, once the training has gone and waits for nobody, goes on
    finishing a cloud run's uploads (as long as they make progress: see UPLOAD_STALL)."""
    return seconds("SWANLAB_AUTOPATCH_UPLOAD_TIMEOUT", 1800.0)


# Uploads that make no progress for this long are given up on (the recovery command is printed).
UPLOAD_STALL = 300.0


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
    no_key_said: bool = False  # the training process warned of the missing key already
