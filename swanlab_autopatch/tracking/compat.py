"""Every difference between the SwanLab client versions this package supports (0.8.0 to
0.10.x), and every use of the client's internals, in one place. Each function says which
versions it covers and degrades to doing nothing (never raising) where the client differs.

The public API the rest of the package uses (``init``, ``login``, ``log``, ``finish``,
``Settings``, ``Text``, ``has_run``, ``get_run``) is the same in all of them.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Any, Iterator, Optional

def swanlab_release() -> tuple[int, ...]:
    """The release numbers of the imported swanlab ((0,) when unknown)."""
    from swanlab_autopatch.versions import release

    try:
        import swanlab

        return release(str(swanlab.__version__))
    except Exception:
        return (0,)


def clamp_tags(tags: Optional[list[str]]) -> Optional[list[str]]:
    """Tags within the client's limits: a tag outside them makes ``init`` fail. 0.8.0 to 0.9.2
    accept 50 tags of at most 20 characters, 0.9.3 and later 30 of at most 512 (the settings
    check those)."""
    if not tags:
        return None
    length = 20 if swanlab_release() < (0, 9, 3) else 512
    return [tag[:length] for tag in tags][:30]


def preset_colors() -> list[str]:
    """SwanLab's own run colours (``swanlab.utils.experiment.PRESET_COLORS``, 0.8.0 on)."""
    try:
        from swanlab.utils.experiment import PRESET_COLORS

        return list(PRESET_COLORS)
    except Exception:
        return []


def sync_command(folder: str, run_id: Optional[str], host: Optional[str],
                 workspace: Optional[str], project: Optional[str]) -> str:
    """`swanlab sync` with everything it must not guess. 0.8.0 to 0.9.2 let a saved login
    override ``--host``; the SWANLAB_API_HOST variable wins in every version, so the host goes
    there on those."""
    import shlex

    parts = ["swanlab", "sync"]
    prefix = ""
    if host:
        if swanlab_release() < (0, 9, 3):
            prefix = f"SWANLAB_API_HOST={shlex.quote(host)} "
        else:
            parts += ["--host", host]
    if workspace:
        parts += ["--workspace", workspace]
    if project:
        parts += ["--project", project]
    if run_id:
        parts += ["--id", run_id]
    parts.append(folder)
    return prefix + " ".join(shlex.quote(p) for p in parts)


def forget_atexit(run: Any) -> None:
    """SwanLab registers ``Run._handle_atexit`` (0.8.0 on) to finish the run at exit; after our
    own finish (done, failed or given up), it must not run again and print its own errors."""
    try:
        import atexit

        atexit.unregister(run._handle_atexit)
    except Exception:
        pass


def login_kwargs() -> dict[str, Any]:
    """0.8.0 to 0.9.5 keep the online client after `finish()`, so a second job's login would
    do nothing without ``relogin`` (accepted by every version)."""
    return {"relogin": True, "save": False}


@contextmanager
def bounded_requests(seconds: float) -> Iterator[None]:
    """Inside the block, every HTTP call SwanLab makes (the login, and ``init``'s project and
    experiment calls) gives up after ``seconds``, without retrying. 0.8.0 to 0.10.x make their
    sessions with ``swanlab.sdk.internal.pkg.client.session.create(timeout=60,
    default_retry=5)`` (and retry with backoff), so a server that accepts connections and stops
    answering costs ~35 s for the login and minutes for each call of ``init``. The runtime
    client's session (``core_python.client._default_client``, kept for the run's uploads) gets
    SwanLab's own timeout and retries back at the end of the block. Does nothing where the
    client differs."""
    try:
        import inspect

        from swanlab.sdk.internal.core_python import client as runtime
        from swanlab.sdk.internal.pkg.client import session as sessions

        original = sessions.create
        if not {"timeout", "default_retry"} <= set(inspect.signature(original).parameters):
            raise TypeError("session.create differs")
    except Exception:
        yield
        return
    limit = max(0.5, float(seconds))

    def bounded(timeout: Any = 60, default_retry: int = 5) -> Any:
        return original(timeout=limit, default_retry=0)

    def arm(make: Any) -> None:
        session = getattr(getattr(runtime, "_default_client", None), "_session", None)
        if session is not None:
            for prefix, adapter in make().adapters.items():
                session.mount(prefix, adapter)

    try:
        sessions.create = bounded
        arm(bounded)
    except Exception:
        sessions.create = original
        yield
        return
    try:
        yield
    finally:
        sessions.create = original
        try:
            arm(original)
        except Exception:
            pass


def settings_api_key(api_host: str, normalize: Any) -> Optional[str]:
    """The key SwanLab's own settings find (./swanlab.yaml, .env, /etc/swanlab, the secrets
    folder, the environment, a saved login) for ``api_host``. The public ``swanlab.Settings()``
    reads the same sources in every version (the internal ``create_settings`` only exists from
    0.9.3 on)."""
    try:
        import swanlab

        found = swanlab.Settings()
        key = getattr(found, "api_key", None)
        if key is None or normalize(str(getattr(found, "api_host", ""))) != api_host:
            return None
        return key.get_secret_value() if hasattr(key, "get_secret_value") else str(key)
    except Exception:
        return None


# -- the run as user code in the training process sees it (remote_run.py) ---------------------
# SwanLab's module functions (`swanlab.log`, `has_run`, `get_run`) look up the current run in
# `swanlab.sdk.internal.run._current_run` (set_run / clear_run), and `swanlab.config` forwards
# to `...run.components.config._active_run_config`: the same names in 0.8.0 to 0.10.3.


def install_run(run: Any) -> bool:
    try:
        from swanlab.sdk.internal import run as run_module
        from swanlab.sdk.internal.run.components import config as config_module

        if getattr(run_module, "_current_run", None) is not None:
            return False  # a real run of the user's: leave it alone
        run_module.set_run(run)
        config_module._active_run_config = run.config
        return True
    except Exception:
        return False


def remove_run(run: Any) -> None:
    if "swanlab.sdk.internal.run" not in sys.modules:  # never imported: nothing to undo
        return
    try:
        from swanlab.sdk.internal import run as run_module
        from swanlab.sdk.internal.run.components import config as config_module

        if getattr(run_module, "_current_run", None) is run:
            run_module.clear_run()
        if getattr(config_module, "_active_run_config", None) is run.config:
            config_module._active_run_config = None
    except Exception:
        pass


# -- the sidecar: the run describes the training process, not the sidecar ---------------------


def attribute_to_process(pid: int) -> None:
    """Make the run's process figures (hardware monitor: thread count, memory in use; the
    metadata's pid and command line) those of the training process ``pid``. SwanLab reads them
    with ``psutil.Process()`` (current process) and the runtime probe's ``get_pid`` /
    ``get_command``, in every supported version. Only ever called inside the sidecar."""
    try:
        import psutil

        real = psutil.Process

        class TrainingProcess(real):  # type: ignore[misc, valid-type]
            def __init__(self, pid_: Optional[int] = None) -> None:
                super().__init__(pid if pid_ is None else pid_)

        psutil.Process = TrainingProcess
    except Exception:
        pass
    try:
        from swanlab.sdk.internal.probe_python.environment import runtime

        command = _command_of(pid)
        runtime.get_pid = lambda: pid
        if command:
            runtime.get_command = lambda: command
    except Exception:
        pass


def _command_of(pid: int) -> Optional[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            parts = handle.read().decode("utf-8", "replace").split("\x00")
        return " ".join(p for p in parts if p) or None
    except OSError:
        return None


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
