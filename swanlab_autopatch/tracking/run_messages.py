"""The lines that tell a user where their run is: one when it is up, one at the end of a run
that is not on a server. Printed by the training process (the helper process's own output goes
to a file), each fact once."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from swanlab_autopatch import log


def report_start(info: Optional[dict]) -> None:
    """A cloud run's address; a local run's `swanlab watch` command. (An offline run's folder
    and upload command come once, at the end.)"""
    if not info:
        return
    name = info.get("name") or info.get("id")
    if info.get("mode") == "online" and info.get("url"):
        log.info(f"SwanLab run {name}: {info['url']}")
    elif info.get("mode") == "local" and info.get("dir"):
        log.info(f"SwanLab run {name} is in {info['dir']}; look at it with: swanlab watch "
                 f"{_quoted(str(Path(info['dir']).parent))}")


def report_end(outcome: Optional[dict]) -> None:
    """For a run that is not on a server (offline, local, a cloud fallback): its folder and the
    one complete upload command."""
    if not outcome or not outcome.get("sync"):
        return
    name = outcome.get("name") or outcome.get("id")
    where = "on this machine (local mode)" if outcome.get("mode") == "local" else "offline"
    log.info(f"SwanLab run {name} is kept {where}; upload it with: {outcome['sync']}")


def _quoted(text: str) -> str:
    import shlex

    return shlex.quote(text)
