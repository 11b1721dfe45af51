"""Where runs are written by default: one definition for the run, the settings and the
`runs`/`compare` commands."""
from __future__ import annotations

import os
from typing import Mapping, Optional

# SwanLab's own variables for the log folder, in the order SwanLab reads them.
LOG_DIR_VARS = ("SWANLAB_LOG_DIR", "SWANLAB_LOGDIR")
DEFAULT_LOG_DIR = "swanlog"  # under the directory the training is started from


def default_log_dir(env: Optional[Mapping[str, str]] = None) -> str:
    """The log folder when the config names none: SwanLab's variables, else ./swanlog."""
    env = os.environ if env is None else env
    for name in LOG_DIR_VARS:
        value = env.get(name, "").strip()
        if value:
            return value
    return DEFAULT_LOG_DIR
