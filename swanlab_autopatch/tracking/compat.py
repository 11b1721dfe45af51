"""Every difference between the SwanLab clients this package runs on (0.8.0 and later; tested
with 0.8.0 to 0.10.x), and every use of the client's internals, in one place.

The public API the rest of the package uses (``init``, ``login``, ``log``, ``finish``,
``Settings``, ``Text``, ``has_run``, ``get_run``, ``config``) is the same in all of them. The
internals (INTERNALS below: where SwanLab keeps its current run, its HTTP sessions, its
process probe, its console capture...) may move in any new client: each one is checked the
first time it is needed in a process (it is there, and it can be called the way this package
calls it). One that is missing or changed costs only the feature it serves, with one warning
naming it; tracking goes on. ``doctor`` checks the same table from the installed source.
The versions each internal was read in: docs/swanlab-client-facts.md.
"""
from __future__ import annotations

import os
import sys
from collections import namedtuple
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional

from swanlab_autopatch import log
from swanlab_autopatch.config.channels import CHANNELS

# The client minors the test lanes run (tools/venvs.py SWANLAB_MINORS; the release test fails
# when the index has a newer one), the oldest first. A newer client is expected to work.
TESTED_SWANLAB = ("0.8", "0.9", "0.10")
OLDEST_SWANLAB = "0.8.0"  # the sdk/ rewrite; the dependency floor


def swanlab_release() -> tuple[int, ...]:
    """The release numbers of the imported swanlab ((0,) when unknown)."""
    from swanlab_autopatch.versions import release

    try:
        import swanlab

        return release(str(swanlab.__version__))
    except Exception:
        return (0,)


def tested_range() -> str:
    """The tested clients, as people read them: "0.8.0 to 0.10.x"."""
    return f"{OLDEST_SWANLAB} to {TESTED_SWANLAB[-1]}.x"


def client_support(version: Optional[str]) -> str:
    """"tested", "newer" (than the tested clients: expected to work) or "older" (unsupported)."""
    from swanlab_autopatch.versions import release

    have = release(version or "0")[:2]
    if have < release(OLDEST_SWANLAB)[:2]:
        return "older"
    return "newer" if have > release(TESTED_SWANLAB[-1]) else "tested"


def announce_client() -> None:
    """One info line per process when the client is newer than the tested ones."""
    version = _client_version()
    if client_support(version) == "newer":
        log.info(f"SwanLab {version} is newer than the clients this swanlab-autopatch was tested "
                 f"with ({tested_range()}); expected to work.", once="swanlab-newer")


# -- the client's internals ---------------------------------------------------------------------


class Part(namedtuple("Part", "module attr call", defaults=(None,))):
    """One name inside the client. attr: "name" or "Class.name" (a method, a class attribute, a
    pydantic field, or an attribute the class's methods set on ``self``). call: None when it is
    only looked up or replaced, else (positional count, keyword names): how this package calls
    it (methods: without ``self``)."""

    __slots__ = ()

    @property
    def dotted(self) -> str:
        return f"{self.module}.{self.attr}"


class Internal(namedtuple("Internal", "key parts lost since", defaults=((0, 8),))):
    """A client internal and the one feature it serves. lost: what stops working without it
    (ends the warning's sentence). since: the first client that has it; the tested clients
    before it take another path, without a warning."""

    __slots__ = ()


_RUN = "swanlab.sdk.internal.run"
_PROBE = "swanlab.sdk.internal.probe_python"

INTERNALS: tuple[Internal, ...] = (
    Internal("current_run", (Part(_RUN, "_current_run"), Part(_RUN, "set_run", (1, ())),
                             Part(_RUN, "clear_run", (0, ()))),
             "your code's own swanlab.log / get_run / has_run calls during training do not "
             "reach the run (it lives in the helper process)"),
    Internal("active_config", (Part(f"{_RUN}.components.config", "_active_run_config"),),
             "your code's own swanlab.config changes during training do not reach the run"),
    Internal("settings", (Part("swanlab", "Settings.interactive"),
                          Part("swanlab", "Settings.api_host"),
                          Part("swanlab", "Settings.web_host")),
             "that setting is not passed to SwanLab (for api_host / web_host: set "
             "SWANLAB_API_HOST / SWANLAB_WEB_HOST instead of the swanlab_* keys)"),
    Internal("settings_key", (Part("swanlab", "Settings.api_key"),
                              Part("swanlab", "Settings.api_host")),
             "an API key kept only in swanlab.yaml, .env or a secrets folder is not found "
             "(SWANLAB_API_KEY, the config and `swanlab login` still are)"),
    Internal("preset_colors", (Part("swanlab.utils.experiment", "PRESET_COLORS"),),
             "runs get SwanLab's default colour (the same one for every run of a config)"),
    Internal("http_session", (
        Part("swanlab.sdk.internal.pkg.client.session", "create", (0, ("timeout", "default_retry"))),
        Part("swanlab.sdk.internal.core_python.client", "_default_client"),
        Part("swanlab.sdk.internal.pkg.client", "Client._session")),
        "the cloud login and run creation are bounded by SwanLab's own timeouts, not "
        "SWANLAB_AUTOPATCH_CONNECT_TIMEOUT (a server that stops answering can delay the start "
        "of the run by minutes)"),
    Internal("process_probe", (Part(f"{_PROBE}.environment.runtime", "get_pid", (0, ())),
                               Part(f"{_PROBE}.environment.runtime", "get_command", (0, ()))),
             "the run's metadata shows the helper process's pid and command line, not the "
             "training's"),
    Internal("process_monitor", (Part(f"{_PROBE}.hardware_vendor.cpu", "psutil"),
                                 Part(f"{_PROBE}.hardware_vendor.memory", "psutil")),
             "the run's process thread count and memory are the helper process's, not the "
             "training's"),
    Internal("run_atexit", (Part(_RUN, "Run._handle_atexit"),),
             "after a run that could not finish cleanly, SwanLab may try again at exit and "
             "print its own errors"),
    Internal("finish_thread", (Part(_RUN, "Run._is_main_thread"),
                               Part(_RUN, "Run._original_sigint_handler")),
             "after a cloud run, the Ctrl-C handler SwanLab installed stays in place",
             (0, 9, 1)),
    Internal("lark_url", (Part("swanlab.plugin", "LarkCallback._get_url", (0, ())),),
             "Lark messages of offline and local runs may not be sent"),
    # The helper's notifications (helper/notify.py): SwanLab's sender of each channel, called
    # with our message in place of SwanLab's own text.
    Internal("notification_sender",
             tuple(Part("swanlab.plugin", f"{c.swanlab_class}._send_notification", (2, ()))
                   for c in CHANNELS),
             "the end-of-run message and the alerts are not sent on the channels whose sender "
             "moved"),
    Internal("run_save", (Part(_RUN, "Run.save", (1, ("base_path", "policy"))),),
             "model files are not stored with the run (they stay in output_dir)"),
    Internal("console_capture", (
        Part(f"{_RUN}.components.terminal.capture", "StreamCapture.install", (0, ())),),
        "the run has no copy of the training's console output"),
    Internal("record", (Part("swanlab.proto.swanlab.record.v1.record_pb2", "Record"),),
             "`swanlab-autopatch runs` and `compare` cannot read run folders"),
    # The helper process (helper/main.py): console lines straight onto the run's event queue,
    # how far SwanLab's own console capture is behind, and whether uploads make progress.
    Internal("console_lines", (
        Part("swanlab.sdk.internal.bus", "LogEvent"),
        Part("swanlab.proto.swanlab.terminal.v1.log_pb2", "LogLevel"),
        Part(f"{_RUN}.components", "Components._emitter"),
        Part(f"{_RUN}.components.terminal", "TerminalProxy._max_log_length")),
        "the training's console lines go through SwanLab's own console capture (more CPU in "
        "the helper process)"),
    Internal("console_backlog", (
        Part(f"{_RUN}.components.terminal", "TerminalProxy._stdout_queue"),
        Part(f"{_RUN}.components.terminal", "TerminalProxy._stderr_queue")),
        "the helper process cannot pace the console for SwanLab's capture (a console flood "
        "takes more of its memory, and its last lines may miss the run)"),
    Internal("upload_progress", (Part(_RUN, "Run._core"),
                                 Part("swanlab.sdk.internal.core_python.sync",
                                      "CoreSyncPython.get_operation_stats", (0, ()))),
             "once the training has gone, the helper process gives a cloud run's uploads 5 "
             "minutes in all, not as long as they make progress"),
)
INTERNAL = {internal.key: internal for internal in INTERNALS}

_problems: dict[str, Optional[str]] = {}  # key -> None (usable) or what is wrong; per process
_EARLIER = "absent before"  # a tested client older than ``since``: no warning


def usable(key: str) -> bool:
    """Whether the internal ``key`` is there and fits in the imported client. Checked once per
    process; the first time it is not, one warning names it and says what is lost."""
    if key not in _problems:
        internal = INTERNAL[key]
        if swanlab_release() < internal.since:
            _problems[key] = f"{_EARLIER} {'.'.join(map(str, internal.since))}"
        else:
            _problems[key] = None
            for part in internal.parts:
                try:
                    wrong = part_problem(part)
                except Exception as exc:  # a check never raises into its caller
                    wrong = f"could not be checked ({type(exc).__name__})"
                if wrong:
                    _fail(key, f"{part.dotted} {wrong}")
                    break
    return _problems[key] is None


def problem(key: str) -> Optional[str]:
    """What is wrong with an internal in this process (after ``usable``), or None."""
    usable(key)
    return _problems[key]


def _fail(key: str, what: str) -> None:
    """Mark an internal unusable (a check at use found it behaves differently); one warning."""
    if _problems.get(key) and not _problems[key].startswith(_EARLIER):
        return
    _problems[key] = what
    version = _client_version()
    log.warning(f"SwanLab {version}: {what}, so {INTERNAL[key].lost}. Training and the rest "
                f"of tracking go on.", once=f"internal-{key}")


def _client_version() -> str:
    try:
        import swanlab

        return str(swanlab.__version__)
    except Exception:
        return "(version unknown)"


def part_problem(part: Part) -> Optional[str]:
    """None when the part is there and callable as this package calls it, else what is wrong
    ("is missing", "has changed (...)")."""
    import importlib
    import inspect

    try:
        owner: Any = importlib.import_module(part.module)
    except Exception as exc:
        return f"cannot be imported ({type(exc).__name__})"
    *path, name = part.attr.split(".")
    for step in path:
        owner = getattr(owner, step, None)
        if owner is None:
            return "is missing"
    if not _has(owner, name):
        return "is missing"
    if part.call is None:
        return None
    positional, keywords = part.call
    target = getattr(owner, name)
    if isinstance(owner, type) and \
            not isinstance(inspect.getattr_static(owner, name), (staticmethod, classmethod)):
        positional += 1  # self
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return None  # no signature to read (a builtin): assume it fits
    try:
        signature.bind(*[None] * positional, **dict.fromkeys(keywords))
    except TypeError as exc:
        return f"has changed ({exc})"
    return None


def _has(owner: Any, name: str) -> bool:
    if hasattr(owner, name):
        return True
    if not isinstance(owner, type):
        return False
    fields = getattr(owner, "model_fields", None)  # a pydantic model's fields
    if isinstance(fields, dict) and name in fields:
        return True
    import dis
    import inspect

    for klass in owner.__mro__:  # an attribute its methods set (self.name = ...)
        for value in vars(klass).values():
            code = getattr(inspect.unwrap(value), "__code__", None) if callable(value) else None
            if code is not None and name in code.co_names and any(
                    i.opname == "STORE_ATTR" and i.argval == name
                    for i in dis.get_instructions(code)):
                return True
    return False


def check_for_run(mode: str, saves_files: bool) -> None:
    """Right after ``init``: the internals the end of this run will need, checked now so that
    a warning shows when the run starts, not after the training."""
    usable("run_atexit")
    if mode == "online":
        usable("finish_thread")
    if saves_files:
        usable("run_save")


def clean_environment() -> None:
    """Remove the environment variables that break SwanLab or transformers' SwanLab callback;
    before swanlab is first imported in a process: 0.8.0 to 0.9.2 read their settings on import
    (and fail there), 0.9.3 and later in ``init``."""
    project = os.environ.get("SWANLAB_PROJECT")
    if project is not None and not project.strip().startswith("{"):
        # pydantic-settings reads SWANLAB_PROJECT as the nested project model: a plain
        # string makes swanlab.init fail. Its value was already used as a project fallback.
        os.environ.pop("SWANLAB_PROJECT", None)
        log.debug("removed SWANLAB_PROJECT from the environment (it breaks swanlab.init)")
    if os.environ.pop("SWANLAB_LOG_MODEL", None) is not None:
        log.debug("removed SWANLAB_LOG_MODEL (it crashes transformers' SwanLab callback)")


def client_has_histogram() -> bool:
    """Whether the installed client has ``swanlab.Histogram`` (none of 0.8.0 to 0.10.3 does).
    Asked in the training process, which must not import swanlab when the run lives in the
    helper process: there the package's ``__init__.py`` is read for the name instead."""
    module = sys.modules.get("swanlab")
    if module is not None:
        return hasattr(module, "Histogram")
    try:
        import importlib.util
        import re
        from pathlib import Path

        spec = importlib.util.find_spec("swanlab")
        text = Path(spec.origin).read_text(encoding="utf-8") if spec and spec.origin else ""
        return re.search(r"\bHistogram\b", text) is not None
    except Exception:
        return False


def histogram(counts: list, edges: list) -> Any:
    """A ``swanlab.Histogram`` from plain data: the counts of equal bins between two edges
    (built in the helper process from what the training sent). None where it cannot be."""
    import swanlab

    cls = getattr(swanlab, "Histogram", None)
    if cls is None:
        return None
    low, high = edges
    step = (high - low) / max(1, len(counts))
    bounds = [low + i * step for i in range(len(counts))] + [high]
    try:  # wandb's form, which SwanLab's pre-0.8 Histogram had too
        return cls(np_histogram=(counts, bounds))
    except TypeError:
        return None


def host_says_private() -> Optional[bool]:
    """Ask the host the run logged in to whether it is a private (self-hosted) deployment:
    ``GET /api/self_hosted/info``, what ``swanlab.Api().self_hosted`` reads (0.10.x), through
    the runtime client's session (0.8.0 to 0.10.x). True: it says ``enabled``; False: it
    answers, but not so (a 4xx from a host without the route, or ``enabled: false``); None:
    it could not be asked (no client, no answer, a server error)."""
    try:
        from swanlab.sdk.internal.core_python import client as runtime

        if not runtime.exists():
            return None
        try:  # 0.10 can keep a refusal out of the console; 0.8 and 0.9 log it
            answer = runtime.get("/self_hosted/info", retries=0, log_error=False)
        except TypeError:
            answer = runtime.get("/self_hosted/info", retries=0)
    except Exception as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        return False if isinstance(status, int) and 400 <= status < 500 else None
    data = getattr(answer, "data", None)
    return isinstance(data, dict) and data.get("enabled") is True


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
    if not usable("preset_colors"):
        return []
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
    if not usable("run_atexit"):
        return
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
    if not usable("http_session"):
        yield
        return
    try:
        from swanlab.sdk.internal.core_python import client as runtime
        from swanlab.sdk.internal.pkg.client import session as sessions

        original = sessions.create
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
    if not usable("settings_key"):
        return None
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
    """Make ``run`` the current run of SwanLab's module functions in this process. False (and
    nothing changed) when the user's code has a real run, or the internals differ."""
    if not usable("current_run"):
        return False
    try:
        import swanlab
        from swanlab.sdk.internal import run as run_module

        if getattr(run_module, "_current_run", None) is not None:
            return False  # a real run of the user's: leave it alone
        run_module.set_run(run)
        if swanlab.get_run() is not run:  # the module functions look elsewhere now
            run_module.clear_run()
            _fail("current_run", "swanlab.get_run() does not return the run given to "
                                 f"{_RUN}.set_run")
            return False
    except Exception as exc:
        _fail("current_run", f"{_RUN}.set_run failed ({type(exc).__name__}: {exc})")
        return False
    if usable("active_config"):
        try:
            from swanlab.sdk.internal.run.components import config as config_module

            config_module._active_run_config = run.config
        except Exception:
            pass
    return True


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


# -- starting and ending the run (client.py) ----------------------------------------------------


def make_settings(**fields: Any) -> Any:
    """``swanlab.Settings(**fields)``, leaving out the fields the client does not have (an
    unknown field is ignored by 0.8.0 to 0.10.x, but a newer client may refuse it)."""
    import swanlab

    if not usable("settings"):
        known = getattr(swanlab.Settings, "model_fields", None)
        fields = {k: v for k, v in fields.items() if isinstance(known, dict) and k in known}
    return swanlab.Settings(**fields)


def lark_callback(webhook_url: str, secret: Optional[str]) -> Any:
    """SwanLab's Lark callback for this run. 0.8.0 to 0.10.x fail to build a link for offline
    and local runs ("Invalid run path", in ``_get_url``) and then send nothing: the link is
    left out instead."""
    from swanlab.plugin import LarkCallback

    if not usable("lark_url"):
        return LarkCallback(webhook_url=webhook_url, secret=secret)

    class RunLarkCallback(LarkCallback):  # type: ignore[misc, valid-type]
        def _get_url(self):
            try:
                return super()._get_url()
            except Exception:
                return None

    return RunLarkCallback(webhook_url=webhook_url, secret=secret)


def finish_off_main_thread(run: Any) -> Callable[[], None]:
    """Prepare ``run`` to be finished in another thread. SwanLab restores its SIGINT handler
    at the end of ``finish``, which only works on the main thread; from 0.9.1 on it skips that
    when ``run._is_main_thread`` is False, so the handler is put back here, by the returned
    function, called on this thread once the finish is over. (0.8.0 to 0.9.0 always try, and
    their finish ends with a ValueError after the run is finished: their handler stays.)"""
    import threading

    if threading.current_thread() is not threading.main_thread() or \
            not usable("finish_thread") or not getattr(run, "_is_main_thread", False):
        return lambda: None
    original = getattr(run, "_original_sigint_handler", None)
    run._is_main_thread = False

    def restore() -> None:
        if original is not None:
            import signal

            signal.signal(signal.SIGINT, original)

    return restore


def can_save(run: Any) -> bool:
    """Whether ``run.save(path, base_path=..., policy="now")`` stores files with the run."""
    return usable("run_save") and hasattr(run, "save")


# -- the helper process: its console, and the run describes the training process ------------


def console_capture_installed(stream: Any) -> bool:
    """Whether SwanLab's console capture wraps ``write`` on ``stream`` (``sys.stdout`` or
    ``sys.stderr`` when the run started): 0.8.0 to 0.10.x replace the ``write`` attribute of
    the stream object itself (``StreamCapture.install``), which is how the helper process feeds
    them the training's console. One warning when it does not."""
    if not usable("console_capture"):
        return False
    try:
        installed = "write" in vars(stream)
    except TypeError:
        installed = False
    if not installed:
        _fail("console_capture", "its console capture did not wrap write() on sys.stdout / "
                                 "sys.stderr")
    return installed


def attribute_to_process(pid: int) -> None:
    """Make the run's process figures (hardware monitor: thread count, memory in use; the
    metadata's pid and command line) those of the training process ``pid``. SwanLab reads them
    with ``psutil.Process()`` (current process, through the ``psutil`` module) and the runtime
    probe's ``get_pid`` / ``get_command``. Only ever called inside the helper process, before
    the run starts (the probe reads them in ``init``)."""
    clean_environment()  # the checks below import swanlab
    if usable("process_monitor"):
        try:
            import psutil

            real = psutil.Process

            class TrainingProcess(real):  # type: ignore[misc, valid-type]
                def __init__(self, pid_: Optional[int] = None) -> None:
                    super().__init__(pid if pid_ is None else pid_)

            psutil.Process = TrainingProcess
        except Exception:
            pass
    if usable("process_probe"):
        try:
            from swanlab.sdk.internal.probe_python.environment import runtime

            command = _command_of(pid)  # masked: a key given as a CLI override is on it
            runtime.get_pid = lambda: pid
            if command:
                runtime.get_command = lambda: command
        except Exception:
            pass


# -- reading run folders (runs/reader.py) ---------------------------------------------------------


def record_class() -> Any:
    """SwanLab's protobuf ``Record`` (every record of a run file); raises what importing it
    raises."""
    from swanlab.proto.swanlab.record.v1.record_pb2 import Record

    return Record


def _command_of(pid: int) -> Optional[str]:
    from swanlab_autopatch.redact import mask

    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            parts = handle.read().decode("utf-8", "replace").split("\x00")
        return mask(" ".join(p for p in parts if p)) or None
    except OSError:
        return None


def mask_recorded_command() -> None:
    """The command line SwanLab saves in the run's metadata (and uploads in cloud mode) goes
    through the one mask: `axolotl train ... --swanlab_api_key=...` must not be kept. The
    runtime probe reads /proc/self/cmdline (sys.argv only off Linux), which Python cannot
    change, so its answer is masked instead (0.8.0 to 0.10.x: ``runtime.get_command``)."""
    if not usable("process_probe"):
        return
    try:
        from swanlab.sdk.internal.probe_python.environment import runtime

        from swanlab_autopatch.redact import mask

        current = runtime.get_command
        if getattr(current, "swanlab_autopatch_masked", False):
            return

        def masked() -> str:
            return mask(current())

        masked.swanlab_autopatch_masked = True  # type: ignore[attr-defined]
        runtime.get_command = masked
    except Exception:
        pass


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


# -- the helper process: how far behind SwanLab's own threads are ------------------------------
# 0.10: the run's terminal proxy queues captured text without a bound
# (run._components._terminal._stdout_queue / _stderr_queue, drained every 0.1 s by its worker
# thread), and its core counts uploaded records (run._core.get_operation_stats()).


def console_line_writer(run: Any) -> Optional[Any]:
    """A function that records one whole console line in the run the way SwanLab's terminal
    proxy does after its emulator (0.10: a ``LogEvent`` on the run's bounded event queue, the
    line cut at the proxy's ``_max_log_length``); None where the client differs, or records no
    console. The queue's ``put`` blocks when SwanLab is behind: the helper then reads less."""
    if not usable("console_lines"):
        return None
    try:
        from google.protobuf.timestamp_pb2 import Timestamp
        from swanlab.proto.swanlab.terminal.v1.log_pb2 import LogLevel
        from swanlab.sdk.internal.bus import LogEvent

        emitter = run._components._emitter
        limit = int(run._components._terminal._max_log_length)
        level = LogLevel.LOG_LEVEL_INFO
        if not callable(getattr(emitter, "emit", None)) or limit <= 0:
            return None
    except Exception:
        return None

    def write(line: str) -> None:
        stamp = Timestamp()
        stamp.GetCurrentTime()
        emitter.emit(LogEvent(line=line[:limit], level=level, timestamp=stamp))

    return write


def console_pending(run: Any) -> Optional[int]:
    """Pieces of console text SwanLab's capture holds and has not processed yet (None where
    the client keeps them elsewhere)."""
    if not usable("console_backlog"):
        return None
    try:
        terminal = run._components._terminal
        return terminal._stdout_queue.qsize() + terminal._stderr_queue.qsize()
    except Exception:
        return None


def upload_progress(run: Any) -> Optional[int]:
    """A number that grows while a cloud run's uploads make progress (None where unknown)."""
    if not usable("upload_progress"):
        return None
    try:
        response = run._core.get_operation_stats()
        if not response.success or not response.HasField("stats"):
            return None
        stats = response.stats
        return int(stats.uploaded_records) + int(stats.uploaded_size)
    except Exception:
        return None
