"""The SwanLab client driven in this process: start the run (with a fallback), log, finish
(with a bound). The sidecar process runs this for the training; the training process runs it
itself only when the sidecar cannot start or the user's code started a run of its own.

SwanLab's client has sharp edges (see docs/swanlab-client-facts.md): cloud mode without a
key raises or prompts, an unreachable server costs 15 to 75 s, ``finish()`` can wait forever
for uploads, a second ``init`` raises. Everything here is bounded and contained: a failure
costs tracking, never the training.
"""
from __future__ import annotations

import atexit
import json
import os
import socket
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Optional

from swanlab_autopatch import log
from swanlab_autopatch.config import credentials
from swanlab_autopatch.paths import default_log_dir
from swanlab_autopatch.redact import mask, register_secret
from swanlab_autopatch.tracking import compat, model_files, naming
from swanlab_autopatch.config.settings import SwanLabSettings
from swanlab_autopatch.tracking.request import (RUN_ID_FILE, UPLOAD_STALL, StartRequest,
                                                connect_timeout, finish_timeout, upload_timeout)

# SwanLab's name for the spec's `cloud` mode.
_SWANLAB_MODE = {"cloud": "online", "local": "local", "offline": "offline", "disabled": "disabled"}


class _State:
    run: Any = None  # the swanlab Run we started
    borrowed: bool = False  # a run the user's code started: log into it, never finish it
    finished: bool = False
    atexit_registered: bool = False
    color: Optional[str] = None  # the colour given to the run (kept for a resume)
    settings: Optional[SwanLabSettings] = None
    files_kept: Optional[tuple] = None  # does the host keep run.save files (_files_kept)
    pid: int = 0  # the process that started the run
    notifies_itself: bool = False  # the helper process sends the notifications (alerting.py)


_state = _State()
_lock = threading.RLock()


def active() -> bool:
    """True while this package has a run to log into."""
    if _state.finished:
        return False
    if _state.borrowed:
        return _swanlab_has_run()
    return _state.run is not None


def _swanlab_has_run() -> bool:
    try:
        import swanlab

        return bool(swanlab.has_run())
    except Exception:
        return False


def notifications_sent_elsewhere() -> None:
    """The helper process sends every channel's messages itself: no SwanLab callback."""
    _state.notifies_itself = True


def run_info() -> Optional[dict]:
    """What the training process may need to know of the run we started."""
    run = _state.run
    if run is None:
        return None
    info = {"id": getattr(run, "id", None), "name": getattr(run, "name", None),
            "mode": getattr(run, "mode", None), "dir": str(run_dir() or "")}
    try:
        info["url"] = run.url if info["mode"] == "online" else None
    except Exception:
        info["url"] = None
    return info


def current_run() -> Any:
    """The swanlab Run this module started (None before, or for a borrowed run)."""
    return _state.run


def outcome(state: str, uploaded: bool) -> dict:
    """How the run ended, for the one line at the end of training (run_messages.py): the
    folder and the complete upload command of a run that is not on a server."""
    run = _state.run
    info = run_info() or {}
    mode = info.get("mode")
    info.update(state=state, uploaded=bool(uploaded and mode == "online"))
    if run is not None and mode in ("offline", "local"):
        info["sync"] = sync_command(run)
    return info


def run_dir() -> Optional[Path]:
    try:
        return Path(_state.run.dir) if _state.run is not None else None
    except Exception:
        return None


def _answers(host: str, budget: float) -> Optional[str]:
    """None when the API host answers HTTP within ``budget`` seconds (any status), else why
    not. A refused port is known at once; a server that accepts and never answers costs the
    budget, not SwanLab's ~75 s of retries."""
    request = urllib.request.Request(f"{host}/api", method="GET",
                                     headers={"User-Agent": "swanlab-autopatch"})
    try:
        with urllib.request.urlopen(request, timeout=budget):
            return None
    except urllib.error.HTTPError:  # an answer, even if an error status
        return None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, (socket.timeout, TimeoutError)) or "timed out" in str(reason):
            return f"{host} did not answer within {budget:.0f} s"
        return f"cannot reach {host} ({getattr(reason, 'strerror', None) or reason})"


def _login(key: str, api_host: Optional[str], budget: float) -> Optional[str]:
    """Log in to SwanLab. Returns None on success, else the reason it could not."""
    import swanlab

    host = credentials.normalize_host(api_host) or credentials.DEFAULT_API_HOST
    deadline = time.monotonic() + budget  # the probe, the login and init share it
    unreachable = _answers(host, budget)
    if unreachable:
        return unreachable
    try:  # the server answers: SwanLab's own login, one bounded attempt
        with compat.bounded_requests(_left(deadline)):
            swanlab.login(api_key=key, host=api_host,
                          timeout=max(1, int(min(10.0, _left(deadline)))),
                          **compat.login_kwargs())
        return None
    except Exception as exc:
        return f"login failed ({type(exc).__name__}: wrong API key, or {host} refused or " \
               f"did not answer the login)"


def _left(deadline: float) -> float:
    """Seconds left before a deadline (at least one: a last call gets a chance)."""
    return max(1.0, deadline - time.monotonic())


def _swanlab_settings(settings: SwanLabSettings) -> Any:
    hosts = {}
    if settings.swanlab_api_host:
        hosts["api_host"] = credentials.normalize_host(settings.swanlab_api_host)
    if settings.swanlab_web_host:
        hosts["web_host"] = credentials.normalize_host(settings.swanlab_web_host)
    # Never an interactive prompt: a training job has nobody at the keyboard.
    return compat.make_settings(interactive=False, **hosts)


def _callbacks(settings: SwanLabSettings) -> list:
    """SwanLab lifecycle callbacks: Lark at the end of the run, only for a run kept in the
    training process (the helper process sends on every channel itself: helper/alerting.py)."""
    url = settings.secret("swanlab_lark_webhook_url")
    if not url or _state.notifies_itself:
        return []
    try:
        return [compat.lark_callback(url, settings.secret("swanlab_lark_secret"))]
    except Exception as exc:
        log.warning(f"Lark notifications are unavailable in this SwanLab version "
                    f"({type(exc).__name__}); training continues without them.")
        return []


def _previous_run(output_dir: Optional[str], settings: SwanLabSettings) -> Optional[dict]:
    if not output_dir:
        return None
    path = Path(output_dir) / RUN_ID_FILE
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if saved.get("project") != settings.swanlab_project:
        return None
    return saved


def _save_run_id(output_dir: Optional[str], settings: SwanLabSettings, run: Any) -> None:
    if not output_dir:
        return
    try:
        path = Path(output_dir)
        path.mkdir(parents=True, exist_ok=True)
        (path / RUN_ID_FILE).write_text(json.dumps({
            "run_id": run.id, "project": settings.swanlab_project, "mode": run.mode,
            "run_dir": str(Path(run.dir).resolve()), "name": getattr(run, "name", None),
            "color": _state.color,
        }, indent=1))
    except Exception as exc:
        log.debug(f"could not save the run id for resuming: {exc!r}")


def _init(swanlab: Any, request: StartRequest, mode: str, log_dir: Optional[str],
          previous: Optional[dict]) -> Any:
    s = request.settings
    previous = previous or {}
    # A resumed run keeps the name and colour it had; a new one gets its own (naming.py).
    name = s.swanlab_experiment_name or previous.get("name") or request.name
    color = previous.get("color") or naming.pick_color(compat.preset_colors())
    _state.color = color
    kwargs: dict[str, Any] = dict(
        project=s.swanlab_project, workspace=s.swanlab_workspace,
        name=name, description=s.swanlab_description, color=color,
        tags=compat.clamp_tags(request.tags), group=s.swanlab_group, job_type=s.swanlab_job_type,
        mode=mode, config=request.config, settings=_swanlab_settings(s),
        callbacks=_callbacks(s),
    )
    if log_dir:
        kwargs["log_dir"] = log_dir
    if previous.get("run_id"):
        kwargs.update(id=previous["run_id"], resume="allow")
    return swanlab.init(**{k: v for k, v in kwargs.items() if v is not None})


def _run_folders(log_dir: Optional[str]) -> set:
    try:
        return {p for p in Path(log_dir or default_log_dir()).iterdir() if p.is_dir()}
    except OSError:
        return set()


def _writable_log_dir(log_dir: Optional[str]) -> Optional[str]:
    """The configured log folder if it can be written, else a fresh temporary one."""
    target = Path(log_dir or default_log_dir())
    try:
        target.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=target, prefix=".write-test-", delete=True)
        probe.close()
        return log_dir
    except OSError as exc:
        fallback = tempfile.mkdtemp(prefix="swanlog-")
        log.warning(f"The SwanLab log folder {target} cannot be written ({exc.strerror or exc}); "
                    f"this run is recorded in {fallback} instead.")
        return fallback


def start(request: StartRequest) -> bool:
    """Start (or join) the run on this process. Returns True when there is a run to log to.
    Never raises."""
    with _lock:
        if active():
            return True
        try:
            return _start(request)
        except Exception as exc:
            log.warning(f"SwanLab could not start ({type(exc).__name__}: {exc}); training "
                        "continues without tracking.")
            return False


def _start(request: StartRequest) -> bool:
    compat.clean_environment()  # before the first import of swanlab
    import swanlab

    compat.announce_client()
    compat.mask_recorded_command()  # in-process runs: a key on the command line stays out
    settings = request.settings
    _state.finished, _state.files_kept = False, None
    if swanlab.has_run():
        _state.borrowed, _state.run = True, None
        log.info("A SwanLab run is already active in this process (started by your code); "
                 "metrics and config go to that run.")
        try:
            swanlab.config.update(request.config)
        except Exception as exc:
            log.debug(f"config update on the borrowed run failed: {exc!r}")
        return True
    mode = _SWANLAB_MODE[settings.swanlab_mode]
    fallback_reason = None
    attempt_started = time.monotonic()
    if mode == "online":
        key, _source = credentials.find_api_key(settings)
        if key is None:  # swanlab.yaml, .env, the secrets folder: only the client reads them
            host = credentials.normalize_host(settings.swanlab_api_host) or \
                credentials.DEFAULT_API_HOST
            key = compat.settings_api_key(host, credentials.normalize_host)
            register_secret(key)
        if key is None:
            fallback_reason = credentials.NO_KEY
        else:
            fallback_reason = _login(key, settings.swanlab_api_host, connect_timeout())
        if fallback_reason:
            mode = "offline"
    # What the cloud attempt cost (not the offline start after it, which takes longer on a
    # busy machine but is no waiting for the server).
    waited = time.monotonic() - attempt_started
    if mode == "local":
        _check_dashboard()
    # On a Ray worker the default ./swanlog means the folder the job was launched from.
    configured = settings.swanlab_log_dir or \
        (default_log_dir() if settings.swanlab_launch_dir else None)
    log_dir = _writable_log_dir(settings.resolve(configured))

    previous = _previous_run(request.output_dir, settings) if request.resuming else None
    resume_id = previous.get("run_id") if previous else None
    folders_before = _run_folders(log_dir) if mode == "online" else set()
    try:
        if mode == "online":  # its project and experiment calls share the login's deadline
            with compat.bounded_requests(_left(attempt_started + connect_timeout())):
                run = _init(swanlab, request, mode, log_dir, previous)
        else:
            run = _init(swanlab, request, mode, log_dir, previous)
    except Exception as exc:
        if mode != "online":
            raise
        for folder in _run_folders(log_dir) - folders_before:  # the failed init's empty folder
            try:
                folder.rmdir()
            except OSError:
                pass
        fallback_reason = f"swanlab.init failed ({type(exc).__name__}: the server refused or did " \
                          f"not answer creating the run within {connect_timeout():.0f} s)"
        waited = time.monotonic() - attempt_started
        mode = "offline"
        run = _init(swanlab, request, mode, log_dir, previous)
    _state.run, _state.borrowed, _state.settings = run, False, settings
    _state.pid = os.getpid()
    compat.check_for_run(mode, saves_files=settings.swanlab_log_model != "false")
    if fallback_reason == credentials.NO_KEY and request.no_key_said:
        log.debug(f"no API key: the run is offline in {run.dir}")
    elif fallback_reason:  # the upload command comes at the end of training (run_messages)
        tried = "" if fallback_reason == credentials.NO_KEY else f"; gave up after {waited:.1f} s"
        log.warning(f"SwanLab cloud mode could not start ({fallback_reason}{tried}): the run "
                    f"is kept offline in {run.dir}.")
    if resume_id:
        where = ("the same cloud run" if mode == "online" else
                 f"a new local folder with the same run id (upload each folder into the one "
                 f"run with `{sync_command(run, folder='<folder>')}`; the earlier folder is "
                 f"{previous.get('run_dir')})")
        log.info(f"Resuming SwanLab run {resume_id} from step {request.resume_step}: "
                 f"metrics continue in {where}.")
    elif request.resuming:
        log.info("Training resumes from a checkpoint, but no earlier SwanLab run was found in "
                 "output_dir: a new run is started.")
    _save_run_id(request.output_dir, settings, run)
    if not _state.atexit_registered:
        atexit.register(_finish_at_exit)
        _state.atexit_registered = True
    return True


def sync_command(run: Any, folder: Optional[str] = None) -> str:
    """The upload command for a run folder, complete as printed: the same host (a private
    deployment), workspace, project and run id (so a later resume and a second upload continue
    the one experiment; `swanlab sync` would otherwise invent a new id). Never the key: a job
    has it in SWANLAB_API_KEY or a saved login."""
    settings = _state.settings
    host = credentials.normalize_host(settings.swanlab_api_host) if settings else None
    if host == credentials.DEFAULT_API_HOST:
        host = None
    return compat.sync_command(
        folder or str(run.dir), run_id=getattr(run, "id", None), host=host,
        workspace=settings.swanlab_workspace if settings else None,
        project=settings.swanlab_project if settings else None)


def _check_dashboard() -> None:
    from swanlab_autopatch.versions import module_available

    if not module_available("swanboard"):
        log.info("swanlab_mode is local but the dashboard is not installed, so `swanlab watch` "
                 "cannot show this run. Install it with: pip install 'swanlab-autopatch[dashboard]'")


def log_metrics(metrics: dict[str, float], step: int) -> None:
    """Log numeric metrics at a step. Never raises."""
    if not metrics or not active():
        return
    try:
        import swanlab

        swanlab.log(metrics, step=step)
    except Exception as exc:
        log.warning(f"SwanLab could not log metrics ({type(exc).__name__}: {exc}); training "
                    "continues.", once="log-metrics")


def log_logs(logs: dict, step: int) -> None:
    """One Trainer log at a step, under transformers' metric names."""
    from swanlab_autopatch.tracking.metric_names import to_metrics

    log_metrics(to_metrics(logs), step)


def log_histograms(histograms: dict[str, tuple], step: int) -> None:
    """Histograms sent as plain data (key -> (counts, [low, high])), where the client has
    ``swanlab.Histogram``. Never raises."""
    if not histograms or not active():
        return
    try:
        import swanlab

        items = {key: compat.histogram(counts, edges)
                 for key, (counts, edges) in histograms.items()}
        items = {key: item for key, item in items.items() if item is not None}
        if items:
            swanlab.log(items, step=step)
    except Exception as exc:
        log.warning(f"SwanLab could not log histograms ({type(exc).__name__}: {exc}); training "
                    "continues.", once="log-histograms")


def log_texts(texts: dict[str, tuple[str, Optional[str]]]) -> None:
    """Texts (the YAML, the DeepSpeed config) as SwanLab text items: key -> (text, caption)."""
    if not texts or not active():
        return
    try:
        import swanlab

        swanlab.log({key: swanlab.Text(text, caption=caption)
                     for key, (text, caption) in texts.items()})
    except Exception as exc:
        log.debug(f"text log failed: {exc!r}")


def log_alert(key: str, title: str, text: str, step: Optional[int]) -> None:
    """An alert as a text record of the run (SwanLab 0.8-0.10 have no alert facility).
    Never raises."""
    if not active():
        return
    try:
        import swanlab

        record = {key: swanlab.Text(text, caption=title)}
        swanlab.log(record, step=step) if step is not None else swanlab.log(record)
    except Exception as exc:
        log.debug(f"alert record failed: {exc!r}")


def call(name: str, args: tuple, kwargs: dict) -> None:
    """A call the user's code made on the run in the training process (``swanlab.log``,
    ``run.log_text``...), replayed on the real run. Never raises."""
    if not active():
        return
    try:
        import swanlab

        getattr(swanlab.get_run(), name)(*args, **kwargs)
    except Exception as exc:
        log.warning(f"SwanLab could not replay your code's swanlab.{name}(...) "
                    f"({type(exc).__name__}: {exc}); training continues.", once=f"call-{name}")


def log_table(key: str, headers: list[str], rows: list[list], step: int) -> None:
    """A table (RL completions, generated samples) at a step: SwanLab's ECharts table, the
    richest type every supported client has; a text table where it cannot be built."""
    if not rows or not active():
        return
    try:
        import swanlab

        try:
            item: Any = swanlab.echarts.Table().add(headers, rows)
        except Exception:
            lines = [" | ".join(headers)] + [" | ".join(str(v) for v in row) for row in rows]
            item = swanlab.Text("\n".join(lines))
        swanlab.log({key: item}, step=step)
    except Exception as exc:
        log.warning(f"SwanLab could not log the table {key} ({type(exc).__name__}: {exc}); "
                    "training continues.", once=f"table-{key}")


def save_files(base: str, names: list[str], what: str) -> None:
    """Store files with the run (model files, checkpoints) where the host keeps them: uploaded
    by SwanLab's own background transport to a private deployment, recorded for `swanlab sync`
    offline. SwanLab's public cloud keeps no files (docs/swanlab-client-facts.md): there, each
    file's path, size and SHA-256 go into the run config (``model_files``) instead. The line
    printed says which happened. Never raises."""
    if not names or not active():
        return
    run = _state.run
    if run is None or not compat.can_save(run):  # (compat warned once)
        return
    key = model_files.group_key(names)
    try:
        kept, host, why = _files_kept() if run.mode == "online" else (True, None, "")
        if kept is False:
            _record_files(key, base, names, stored=False, host=host)
            log.info(f"swanlab_log_model: {what} NOT stored with the run: {why}. Recorded "
                     f"instead in the run config under model_files.{key}: each file's path, "
                     f"size and SHA-256 (the files stay in {base}).")
            return
        for name in names:
            run.save(str(Path(base) / name), base_path=base, policy="now")
        if kept is None:
            _record_files(key, base, names, stored=None, host=host)
            log.info(f"SwanLab uploads {what} to {host}, which could not be asked whether it "
                     f"keeps files ({why}); each file's path, size and SHA-256 are also in the "
                     f"run config under model_files.{key}.")
        elif run.mode == "online":
            log.info(f"SwanLab uploads {what} to {host}, a private deployment, which stores "
                     "them with the run.")
        else:
            log.info(f"SwanLab stores {what} with the run (recorded for `swanlab sync`: keep "
                     "the files where they are).")
    except Exception as exc:
        log.warning(f"SwanLab could not store {what} ({type(exc).__name__}: {exc}); training "
                    "continues.", once=f"save-{what}")


# The API hosts of SwanLab's public cloud, which stores no run.save files.
PUBLIC_CLOUD_API_HOSTS = frozenset({credentials.DEFAULT_API_HOST})


def _files_kept() -> tuple[Optional[bool], str, str]:
    """(whether the online run's host keeps run.save files, the host, why), asked once per
    run: the public cloud by its address, any other host by its own answer."""
    if _state.files_kept is not None:
        return _state.files_kept
    settings = _state.settings
    host = credentials.normalize_host(settings.swanlab_api_host if settings else None) or \
        credentials.DEFAULT_API_HOST
    if host in PUBLIC_CLOUD_API_HOSTS:
        answer = (False, host, f"SwanLab's public cloud ({host}) does not store files "
                               "(run.save is for private deployments)")
    else:
        private = compat.host_says_private()
        why = {True: "", False: f"{host} says it is not a private SwanLab deployment "
                                "(/api/self_hosted/info), and only those store files",
               None: "/api/self_hosted/info did not answer"}[private]
        answer = (private, host, why)
    _state.files_kept = answer
    return answer


def _record_files(key: str, base: str, names: list[str], stored: Optional[bool],
                  host: Optional[str]) -> None:
    """The files' manifest under ``model_files.<key>`` in the run config (hashed here, in the
    helper process when there is one: never in the training loop)."""
    import swanlab

    entry = model_files.manifest(base, names)
    entry.update(stored=stored, host=host)
    current = swanlab.config.get("model_files")
    recorded = dict(current) if isinstance(current, dict) else {}
    recorded[key] = entry
    swanlab.config.update({"model_files": recorded})


def update_config(values: dict[str, Any]) -> None:
    if not values or not active():
        return
    try:
        import swanlab

        swanlab.config.update(values)
    except Exception as exc:
        log.debug(f"config update failed: {exc!r}")


def finish(state: str = "success", error: Optional[str] = None, patient: bool = False) -> bool:
    """End the run we started. The training process waits at most ``finish_timeout()``
    seconds; the helper process, which blocks nobody, is ``patient``: it waits for a cloud
    run's uploads as long as they make progress (``upload_timeout()``). Repeatable; never
    raises; a run started by the user's own code is left to them. False when the uploads
    were given up on."""
    with _lock:
        if _state.finished or _state.run is None:
            _state.finished = _state.finished or _state.borrowed
            return True
        run, _state.finished = _state.run, True
    error = mask(error) if error else error  # a traceback may quote a secret
    try:
        if run.mode == "online":
            return _finish_bounded(run, state, error, patient)
        # local files only: no network to wait for, and main-thread signal handling
        run.finish(state=state, error=error)
    except Exception as exc:
        compat.forget_atexit(run)  # not once more at exit, with SwanLab's own unmasked report
        log.warning(f"SwanLab could not finish the run cleanly ({type(exc).__name__}: {exc}); "
                    f"its data is in {run_dir()}.")
    return True


def _wait_for_uploads(done: threading.Event, run: Any, patient: bool) -> tuple[bool, float]:
    """(finished, seconds waited). Patient: until no upload progress for UPLOAD_STALL seconds
    or upload_timeout(); else finish_timeout()."""
    started = time.monotonic()
    if not patient:
        return done.wait(finish_timeout()), finish_timeout()
    deadline = started + upload_timeout()
    last, moved = compat.upload_progress(run), started
    while not done.wait(min(5.0, max(0.0, deadline - time.monotonic()))):
        now = time.monotonic()
        progress = compat.upload_progress(run)
        if progress is not None and progress != last:
            last, moved = progress, now
        if now >= deadline or now - moved >= UPLOAD_STALL:
            return False, now - started
    return True, time.monotonic() - started


def _finish_bounded(run: Any, state: str, error: Optional[str], patient: bool) -> bool:
    restore_sigint = compat.finish_off_main_thread(run)  # SwanLab's part that needs this thread
    done = threading.Event()

    def work() -> None:
        try:
            run.finish(state=state, error=error)
        except Exception as exc:
            log.debug(f"finish raised: {exc!r}")
        finally:
            done.set()

    threading.Thread(target=work, name="swanlab-autopatch-finish", daemon=True).start()
    completed, waited = _wait_for_uploads(done, run, patient)
    restore_sigint()
    if not completed:
        compat.forget_atexit(run)
        log.warning(f"SwanLab did not finish uploading within {waited:.0f} s; training is done "
                    f"and the local copy is complete in {run.dir}. Upload the rest with: "
                    f"{sync_command(run)}")
    return completed


def _finish_at_exit() -> None:
    """The process ends without on_train_end (evaluate, a crash caught by user code); never in
    a forked child, whose copy of the run is not its own."""
    if os.getpid() == _state.pid:
        finish("success")
