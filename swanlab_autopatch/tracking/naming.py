"""What a run is called and tagged when the config does not say: names that tell runs apart.

SwanLab draws default names and colours from Python's global ``random``, which the Trainer
seeds before the run starts, so every run of a config would get the same name and colour.
Here the name says what the run is (base model, method, adapter) plus a short random suffix,
and both the suffix and the colour come from a private generator seeded by the OS: the
training's own random state is never touched.
"""
from __future__ import annotations

import os
import random
import re
from pathlib import PurePosixPath
from typing import Any, Mapping, Optional

_rng = random.Random(os.urandom(16))  # never the global generator
_UNSAFE = re.compile(r"[^0-9A-Za-z._+-]+")


def model_short_name(cfg: Mapping[str, Any]) -> Optional[str]:
    """``Qwen/Qwen2.5-7B-Instruct`` -> ``Qwen2.5-7B-Instruct``; a local path -> its folder."""
    base = cfg.get("base_model")
    if not base:
        return None
    name = PurePosixPath(str(base).rstrip("/")).name
    name = _UNSAFE.sub("-", name).strip("-")
    return name[:64] or None


def method(cfg: Mapping[str, Any]) -> str:
    """The kind of training: the RL method (dpo, grpo, kto...) or sft."""
    rl = cfg.get("rl")
    value = getattr(rl, "value", rl)  # Axolotl's RLType enum
    return str(value).lower() if value else "sft"


def adapter(cfg: Mapping[str, Any]) -> str:
    value = cfg.get("adapter")
    return str(value).lower() if value else "full"


def default_name(cfg: Mapping[str, Any]) -> str:
    parts = [model_short_name(cfg), method(cfg)]
    if adapter(cfg) != "full":
        parts.append(adapter(cfg))
    suffix = "".join(_rng.choice("abcdefghijkmnpqrstuvwxyz23456789") for _ in range(4))
    return "-".join(p for p in parts if p) + "-" + suffix


def default_tags(cfg: Mapping[str, Any]) -> list[str]:
    """A few tags that describe the run, when the config gives none."""
    tags = [method(cfg), adapter(cfg)]
    short = model_short_name(cfg)
    if short:
        tags.append(short)
    return list(dict.fromkeys(tags))


def pick_color(palette: list[str]) -> Optional[str]:
    return _rng.choice(palette) if palette else None
