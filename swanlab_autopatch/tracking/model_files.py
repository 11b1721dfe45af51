"""Which files `swanlab_log_model` stores with the run, and how big they are.

``end`` (and ``true``): the files of ``output_dir`` itself once training ends (the final model or
adapter, its config and tokenizer), not the checkpoint folders, not this package's run-id file
and not Axolotl's debug log. ``checkpoint``: each checkpoint folder when the Trainer saves it.
"""
from __future__ import annotations

import hashlib
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


def group_key(names: list[str]) -> str:
    """``final`` for the files of output_dir, ``checkpoint-<step>`` for a checkpoint's."""
    first = names[0].replace("\\", "/") if names else ""
    return first.split("/", 1)[0] if "/" in first else "final"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def manifest(base: str, names: list[str]) -> dict:
    """Where the files are and what they are: folder, and per file its size and SHA-256
    (streamed: a large model costs disk reads, not memory)."""
    files = {}
    for name in names:
        path = Path(base) / name
        if path.is_file():
            files[name] = {"size": path.stat().st_size, "sha256": _sha256(path)}
    return {"folder": str(Path(base).resolve()), "files": files}
