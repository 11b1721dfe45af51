"""Which files `swanlab_log_model` stores with the run, and how big they are.

``end`` (and ``true``): the files of ``output_dir`` itself once training ends (the final model or
adapter, its config and tokenizer), not the checkpoint folders, not this package's run-id file
and not Axolotl's debug log. ``checkpoint``: each checkpoint folder when the Trainer saves it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

SKIPPED = frozenset({".swanlab-autopatch-run.json", "debug.log"})


def final_files(output_dir: str) -> list[str]:
    folder = Path(output_dir)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_file() and p.name not in SKIPPED)


def checkpoint_files(output_dir: str, step: int) -> tuple[Optional[str], list[str]]:
    folder = Path(output_dir) / f"checkpoint-{step}"
    if not folder.is_dir():
        return None, []
    names = sorted(str(p.relative_to(output_dir)) for p in folder.rglob("*") if p.is_file())
    return folder.name, names


def describe(base: str, names: list[str], what: str) -> str:
    size = sum((Path(base) / n).stat().st_size for n in names if (Path(base) / n).is_file())
    return f"{what} ({len(names)} files, {size / 1e6:.1f} MB)"
