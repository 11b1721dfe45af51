"""The names transformers' tracker integrations give Trainer log keys, and which log values are
numbers. No transformers import: the sidecar and the pipe's fast path use it too."""
from __future__ import annotations

import functools
from typing import Any, Mapping, Optional

# Summary values the Trainer logs once at the end; transformers' tracker callbacks file
# them under single_value/ instead of drawing a one-point chart.
SINGLE_VALUES = frozenset({"train_runtime", "train_samples_per_second", "train_steps_per_second",
                           "train_loss", "total_flos"})


def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:  # numpy / torch scalars
        try:
            item = value.item()
        except Exception:
            return None
        return item if isinstance(item, (int, float)) and not isinstance(item, bool) else None
    return None


@functools.lru_cache(maxsize=4096)  # the same few keys come back every step
def metric_name(key: str) -> str:
    """The name transformers' tracker integrations give a Trainer log key."""
    if key in SINGLE_VALUES:
        return f"single_value/{key}"
    if key.startswith("eval_"):
        return "eval/" + key[len("eval_"):]
    if key.startswith("test_"):
        return "test/" + key[len("test_"):]
    return "train/" + key


def to_metrics(logs: Mapping[str, Any]) -> dict[str, float]:
    """Numeric log values under their tracker names; anything else is skipped."""
    out = {}
    for key, value in (logs or {}).items():
        if type(value) is float or type(value) is int:  # the common case, checked cheaply
            number = value
        else:
            number = _number(value)
            if number is None:
                continue
        if isinstance(key, str) and key:
            out[metric_name(key)] = number
    return out
