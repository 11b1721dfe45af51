"""The SwanLab run of this training job, wherever it lives.

Normally in a helper process (helper_process.py): SwanLab's client, its threads and its console
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
from swanlab_autopatch.tracking import client, run_messages
from swanlab_autopatch.tracking.request import StartRequest

_backend: Any = None  # the client module (in this process) or a HelperProcess
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
                from swanlab_autopatch.tracking.helper_process import HelperProcess

                _backend = None
                helper = HelperProcess.launch(request, fallback=_fall_back)
                if helper is not None:
                    if _backend is None:  # unless it died at once and the fallback took over
                        _backend = helper
                    return active()
        except Exception as exc:  # contained: the in-process client is the way out
            log.warning(f"SwanLab's helper process could not start ({type(exc).__name__}: "
                        f"{exc}); SwanLab runs inside the training process instead.")
        _backend = client
        try:
            from swanlab_autopatch.tracking.helper_process import release_early_console

            release_early_console()
        except Exception:
            pass
        return _start_here(request)


def _start_here(request: StartRequest) -> bool:
    started = client.start(request)
    if started:
        run_messages.report_start(client.run_info())
    return started


def _fall_back(request: StartRequest, replay: list[tuple]) -> None:
    """The helper process ended before its run started: run SwanLab here, with what it was
    sent (the end of the run among it, maybe)."""
    global _backend
    with _lock:
        _backend = client
        if not _start_here(request):
            return
        for message in replay:
            if message[0] == "finish":
                _finish_here(message[1], message[2])
            else:
                dispatch(client, message)


def _finish_here(state: str, error: Optional[str]) -> None:
    if client.active():
        uploaded = client.finish(state, error)
        run_messages.report_end(client.outcome(state, uploaded))


def dispatch(target: Any, message: tuple) -> None:
    """Apply one message of the channel's protocol to a backend (the client module)."""
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
    elif kind == "histograms":
        target.log_histograms(message[1], message[2])


def active() -> bool:
    backend = _backend
    return backend is not None and backend.active()


def log_logs(logs: dict, step: int) -> None:
    """One Trainer log (the raw ``logs`` of ``on_log``) at a step."""
    backend = _backend
    if logs and backend is not None:
        backend.log_logs(logs, step)


def log_metrics(metrics: dict[str, float], step: int) -> None:
    """Numbers under their final names (swanlab_watch's norms), not a Trainer log."""
    if metrics:
        _forward(("log", metrics, step))


def log_histograms(histograms: dict[str, tuple], step: int) -> None:
    """Histograms as plain data, key -> (counts, [low, high]); the SwanLab object is built
    where the run lives (swanlab is never imported here on the sidecar path)."""
    if histograms:
        _forward(("histograms", histograms, step))


def _forward(message: tuple) -> None:
    """A message of the protocol above to the backend, whichever it is."""
    backend = _backend
    if backend is client:
        dispatch(client, message)
    elif backend is not None:
        backend.send(message)


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
    if backend is client:
        _finish_here(state, error)
    elif backend is not None:
        backend.finish(state, error)


def run_dir() -> Optional[str]:
    backend = _backend
    try:
        return str(backend.run_dir()) if backend is not None and backend.run_dir() else None
    except Exception:
        return None
