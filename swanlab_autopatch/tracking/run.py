"""The SwanLab run of this training job, wherever it lives.

Normally in a sidecar process (sidecar.py): SwanLab's client, its threads and its console
emulator never run in the training process, which only hands each log to a pipe. The run lives
in this process (client.py) instead when the sidecar is switched off
(``SWANLAB_AUTOPATCH_SIDECAR=0``), when it cannot start, or when the user's code started a
SwanLab run of its own before training (that run is used, as before).

The callback and the trainer hooks only talk to this module. Nothing here raises.
"""
from __future__ import annotations

import sys
import threading
from typing import Any, Optional

from swanlab_autopatch import log
from swanlab_autopatch._startup import flag
from swanlab_autopatch.tracking import client
from swanlab_autopatch.tracking.request import StartRequest

_backend: Any = None  # the client module (in this process) or a sidecar.Sidecar
_lock = threading.RLock()


def sidecar_enabled() -> bool:
    return flag("SWANLAB_AUTOPATCH_SIDECAR", default=True)


def _user_run_active() -> bool:
    """The user's code started a SwanLab run in this process (never imports swanlab)."""
    return "swanlab" in sys.modules and client._swanlab_has_run()


def start(request: StartRequest) -> bool:
    """Start the run (or join the user's). True when there is a run to log into."""
    global _backend
    with _lock:
        if active():
            return True
        try:
            if sidecar_enabled() and not _user_run_active():
                from swanlab_autopatch.tracking.sidecar import Sidecar

                _backend = None
                car = Sidecar.launch(request, fallback=_fall_back)
                if car is not None:
                    if _backend is None:  # unless it died at once and the fallback took over
                        _backend = car
                    return active()
        except Exception as exc:  # contained: the in-process client is the way out
            log.warning(f"SwanLab's helper process could not start ({type(exc).__name__}: "
                        f"{exc}); SwanLab runs inside the training process instead.")
        _backend = client
        return client.start(request)


def _fall_back(request: StartRequest, replay: list[tuple]) -> None:
    """The sidecar died before its run started: run SwanLab here, with what it was sent."""
    global _backend
    with _lock:
        _backend = client
        if not client.start(request):
            return
        for message in replay:
            dispatch(client, message)


def dispatch(target: Any, message: tuple) -> None:
    """Apply one message of the sidecar protocol to a backend (the client module)."""
    kind = message[0]
    if kind == "log":
        target.log_metrics(message[1], message[2])
    elif kind == "texts":
        target.log_texts(message[1])
    elif kind == "config":
        target.update_config(message[1])
    elif kind == "call":
        target.call(message[1], message[2], message[3])
    elif kind == "table":
        target.log_table(message[1], message[2], message[3], message[4])
    elif kind == "save":
        target.save_files(message[1], message[2], message[3])
    elif kind == "finish":
        target.finish(message[1], message[2])


def active() -> bool:
    backend = _backend
    return backend is not None and backend.active()


def log_logs(logs: dict, step: int) -> None:
    """One Trainer log (the raw ``logs`` of ``on_log``) at a step."""
    backend = _backend
    if logs and backend is not None:
        backend.log_logs(logs, step)


def log_texts(texts: dict[str, tuple[str, Optional[str]]]) -> None:
    backend = _backend
    if texts and backend is not None:
        backend.log_texts(texts)


def update_config(values: dict[str, Any]) -> None:
    backend = _backend
    if values and backend is not None:
        backend.update_config(values)


def log_table(key: str, headers: list[str], rows: list[list], step: int) -> None:
    backend = _backend
    if rows and backend is not None:
        backend.log_table(key, headers, rows, step)


def save_files(base: str, names: list[str], what: str) -> None:
    backend = _backend
    if names and backend is not None:
        backend.save_files(base, names, what)


def finish(state: str = "success", error: Optional[str] = None) -> None:
    """End the run (bounded); repeatable."""
    backend = _backend
    if backend is not None:
        backend.finish(state, error)


def run_dir() -> Optional[str]:
    backend = _backend
    try:
        return str(backend.run_dir()) if backend is not None and backend.run_dir() else None
    except Exception:
        return None
