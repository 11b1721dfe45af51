"""The package against each SwanLab client the fast lane runs (0.8.x, 0.9.x, 0.10.x and a fake of
the next minor; scripts/test.sh runs this folder once per client, not once per Python).

A SwanLab client that moved or changed one of the internals this package uses
(tracking/compat.py INTERNALS) costs that one feature, with exactly one warning naming it, and
the training is tracked all the same.

Each fake is the installed client copied under the next minor's version (0.11.0) with ONE
internal renamed or changed everywhere in the client (tests/support/fake_swanlab.py), put on
PYTHONPATH ahead of site-packages. A real tracking then runs in a subprocess, driven through the
Trainer callback as tests/unit/test_sidecar.py does (the run in its helper process, offline, or
cloud against the SwanLab stand-in), and is read back from disk.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from swanlab_autopatch.runs.reader import find_runs
from swanlab_autopatch.tracking import compat
from swanlab_autopatch.versions import installed, release
from tests.support.fake import REPO
from tests.support.runs import settled_run
from tests.support.fake_swanlab import NEXT_MINOR, build_tree, lacking

WARNING = "[swanlab-autopatch] WARNING:"
NEWER = f"SwanLab {NEXT_MINOR} is newer than the clients this swanlab-autopatch was tested with"
PROBES = ("HARDWARE", "RUNTIME", "REQUIREMENTS", "CONDA", "GIT", "MONITOR")
KEY = "sk-internals-test-0123456789abcdef"

TRACKING = r'''
import json, os, sys
from types import SimpleNamespace

p = json.loads(os.environ["T_ARGS"])
if p.get("user"):
    import swanlab  # the user's code uses SwanLab too
from swanlab_autopatch.tracking.callback import SwanLabAutopatchCallback
from swanlab_autopatch.config.settings import parse
from swanlab_autopatch.tracking import run

result = parse({"swanlab_project": "internals", "swanlab_log_dir": p["log_dir"], **p["keys"]},
               env={})
cfg = {"base_model": "tiny", "output_dir": p["out"], **result.settings.public_keys()}
args = SimpleNamespace(output_dir=p["out"], to_dict=lambda: {"learning_rate": 0.001})
state, control = SimpleNamespace(is_world_process_zero=True, global_step=0), SimpleNamespace()
callback = SwanLabAutopatchCallback(result.settings, cfg)
callback.on_train_begin(args, state, control)
report = {"backend": type(run._backend).__name__, "pid": os.getpid()}
if p.get("user"):
    report["user_has_run"] = swanlab.has_run()
    if report["user_has_run"]:
        swanlab.log({"user/value": 1.5}, step=1)
        swanlab.config["user_key"] = "from-user"
for step in range(1, 6):
    state.global_step = step
    callback.on_log(args, state, control, logs={"loss": 10.0 / step})
    print(f"training line {step}", flush=True)
if p.get("save"):
    os.makedirs(p["out"], exist_ok=True)
    with open(os.path.join(p["out"], "weights.bin"), "wb") as handle:
        handle.write(b"0" * 1000)
    run.save_files(p["out"], ["weights.bin"], "the model files")
callback.on_train_end(args, state, control)
print("RESULT:" + json.dumps(report), flush=True)
'''

# One internal at a time: how the fake changes it (glob, old, new: a whole-word replacement in
# every matching file of the client), what the tracking does, and the name the warning gives.
RUN = "sdk/internal/run/__init__.py"
TERMINAL = "sdk/internal/run/components/terminal/__init__.py"
CASES = {
    "current_run": dict(edits=[(RUN, "_current_run", "_the_run")], user=True,
                        names="swanlab.sdk.internal.run._current_run"),
    "active_config": dict(
        edits=[("sdk/internal/run/components/config/__init__.py", "_active_run_config",
                "_run_config_now")],
        user=True, names="swanlab.sdk.internal.run.components.config._active_run_config"),
    "settings": dict(edits=[("**/*.py", "interactive", "prompting")],
                     names="swanlab.Settings.interactive"),
    "settings_key": dict(edits=[("sdk/internal/settings/__init__.py", "api_key", "secret_key")],
                         cloud=True, key=False, names="swanlab.Settings.api_key",
                         also=["SwanLab cloud mode could not start (no API key"]),
    "preset_colors": dict(edits=[("utils/experiment/__init__.py", "PRESET_COLORS", "RUN_COLORS")],
                          names="swanlab.utils.experiment.PRESET_COLORS"),
    "http_session": dict(edits=[("**/*.py", "default_retry", "retries")], cloud=True,
                         names="swanlab.sdk.internal.pkg.client.session.create has changed"),
    "process_probe": dict(edits=[("**/*.py", "get_command", "get_cmdline")], runtime=True,
                          names="swanlab.sdk.internal.probe_python.environment.runtime."
                                "get_command"),
    "process_monitor": dict(
        edits=[("sdk/internal/probe_python/hardware_vendor/cpu.py", "psutil.", "ps_util."),
               ("sdk/internal/probe_python/hardware_vendor/cpu.py", "import psutil",
                "import psutil as ps_util")],
        names="swanlab.sdk.internal.probe_python.hardware_vendor.cpu.psutil"),
    "run_atexit": dict(edits=[(RUN, "_handle_atexit", "_on_exit")],
                       names="swanlab.sdk.internal.run.Run._handle_atexit"),
    "finish_thread": dict(edits=[(RUN, "_is_main_thread", "_on_main_thread")], cloud=True,
                          names="swanlab.sdk.internal.run.Run._is_main_thread"),
    # The helper sends notifications with SwanLab's senders (helper/notify.py): a client whose
    # senders moved costs those channels, with one warning.
    "notification_sender": dict(
        edits=[("plugin/**/*.py", "_send_notification", "_deliver")],
        keys={"swanlab_lark_webhook_url": "http://127.0.0.1:9/hook",
              "swanlab_slack_webhook_url": "http://127.0.0.1:9/slack"},
        names="swanlab.plugin.LarkCallback._send_notification"),
    # SwanLab's own Lark callback is used only by a run kept in the training process.
    "lark_url": dict(edits=[("plugin/**/*.py", "_get_url", "_run_link")], inprocess=True,
                     keys={"swanlab_lark_webhook_url": "http://127.0.0.1:9/hook"},
                     names="swanlab.plugin.LarkCallback._get_url"),
    "run_save": dict(edits=[(RUN, "base_path", "root")], save=True,
                     keys={"swanlab_log_model": "checkpoint"},
                     names="swanlab.sdk.internal.run.Run.save has changed"),
    # The helper process: without the direct way onto the event queue, console lines go
    # through SwanLab's own capture; without its queues as well, they are not paced.
    "console_lines": dict(edits=[(TERMINAL, "_max_log_length", "_line_limit")],
                          names="TerminalProxy._max_log_length"),
    "console_backlog": dict(edits=[(TERMINAL, "_max_log_length", "_line_limit"),
                                   (TERMINAL, "_stdout_queue", "_out_queue")],
                            names="TerminalProxy._stdout_queue",
                            also=["TerminalProxy._max_log_length"]),
    "upload_progress": dict(edits=[("**/*.py", "get_operation_stats", "get_op_stats")],
                            cloud=True, names="get_operation_stats"),
}


def test_every_internal_has_a_case():
    # console_capture: test_console_capture_that_no_longer_wraps_write; record: the reader's
    # own test (test_reader.py, a missing Record class).
    assert set(CASES) | {"console_capture", "record"} == set(compat.INTERNAL)


def _standin():
    spec = importlib.util.spec_from_file_location("swanlab_server",
                                                  REPO / "tools" / "swanlab_server.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("swanlab_server", module)
    spec.loader.exec_module(module)
    return module.StandIn


def _edits_for(key: str, edits: list) -> list:
    return [] if key in lacking() else edits  # nothing to take out


def _about_lacking(line: str) -> bool:
    return any(p.dotted in line for key in lacking() for p in compat.INTERNAL[key].parts)


def track(tmp: Path, fake: Path | None, *, keys: dict | None = None, env: dict | None = None,
          runtime: bool = False, script: str = TRACKING, **params) -> dict:
    tmp.mkdir(parents=True, exist_ok=True)
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("SWANLAB", "RANK", "LOCAL_RANK", "WORLD_SIZE"))}
    base.update({"PYTHONPATH": os.pathsep.join([str(p) for p in (fake, REPO) if p]),
                 "HOME": str(tmp),
                 "SWANLAB_ROOT": str(tmp / ".swanlab"),
                 **{f"SWANLAB_PROBE_{name}": "false" for name in PROBES
                    if not (runtime and name == "RUNTIME")},
                 "T_ARGS": json.dumps({"log_dir": str(tmp / "swanlog"), "out": str(tmp / "out"),
                                       "keys": keys or {"swanlab_mode": "offline"}, **params})})
    base.update(env or {})
    proc = subprocess.run([sys.executable, "-c", script], env=base, cwd=tmp,
                          capture_output=True, text=True, timeout=180)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT:")]
    report = json.loads(lines[0][len("RESULT:"):]) if lines else {}
    output = proc.stdout + proc.stderr
    return {"proc": proc, "report": report, "output": output,
            "warnings": [x for x in output.splitlines() if WARNING in x]}


@pytest.mark.parametrize("key", sorted(CASES))
def test_one_internal_changed_costs_one_feature_with_one_warning(tmp_path, key):
    case = CASES[key]
    fake = build_tree(tmp_path / "fake", NEXT_MINOR, _edits_for(key, case["edits"]))
    keys = {"swanlab_mode": "offline", **case.get("keys", {})}
    run_kwargs = dict(user=case.get("user", False), save=case.get("save", False),
                      runtime=case.get("runtime", False))
    server = None
    if case.get("cloud"):
        server = _standin()(tmp_path / "store", api_keys=[KEY]).start()
        keys.update(swanlab_mode="cloud", swanlab_api_host=server.url,
                    swanlab_web_host=server.url)
    try:
        env = {"SWANLAB_API_KEY": KEY} if case.get("cloud") and case.get("key", True) else {}
        if case.get("inprocess"):
            env["SWANLAB_AUTOPATCH_SIDECAR"] = "0"
        out = track(tmp_path, fake, keys=keys, env=env, **run_kwargs)
        proc = out["proc"]
        assert proc.returncode == 0, out["output"][-3000:]
        backend = "module" if case.get("inprocess") else "HelperProcess"  # tracking.client
        assert out["report"]["backend"] == backend, out["report"]
        ours = [w for w in out["warnings"] if case["names"] in w]
        assert len(ours) == 1, out["output"][-3000:]
        others = [w for w in out["warnings"] if w not in ours and not _about_lacking(w)]
        assert len(others) == len(case.get("also", [])), out["output"][-3000:]
        assert all(any(text in w for w in others) for text in case.get("also", [])), others
        assert out["output"].count(NEWER) == 1, out["output"][-3000:]
        run = settled_run(tmp_path / "swanlog")
        assert run.state == "finished", (run.state, out["output"][-3000:])
        assert [s for s, _ in run.series("train/loss")] == [1, 2, 3, 4, 5]
        printed = [x for x in proc.stdout.splitlines() if x.startswith("training line")]
        assert printed == [f"training line {i}" for i in range(1, 6)]
        if server is not None and "also" not in case:  # the cloud run itself, on the server
            (experiment,) = server.dump()["experiments"]
            assert experiment["state"] == "FINISHED", experiment["state"]
            assert len(experiment["metrics"]["train/loss"]) == 5
    finally:
        if server is not None:
            server.stop()
    # What is lost is that one feature, and only it.
    report = out["report"]
    if key == "current_run":
        assert report["user_has_run"] is False
    if key == "active_config":
        assert report["user_has_run"] is True
        assert run.series("user/value") == [(1, 1.5)] and "user_key" not in run.config
    if key == "process_probe":
        assert run.metadata["runtime"]["pid"] != report["pid"]  # the helper's, as warned
    if key == "run_save":
        assert not list((run.path / "files").rglob("weights.bin"))
    if key in ("console_lines", "console_backlog"):  # through SwanLab's own capture instead
        assert [x for x in run.console if x.startswith("training line")] == printed


def test_swanlab_project_in_the_environment_costs_nothing(tmp_path):
    """SWANLAB_PROJECT=<plain text> (as transformers' docs suggest) makes 0.8.0 to 0.9.2 fail
    on import: the helper process removes it before its first import of swanlab (checking the
    process probe), so the run still describes the training process, without a warning."""
    out = track(tmp_path, None, runtime=True, env={"SWANLAB_PROJECT": "from-the-environment"})
    assert out["proc"].returncode == 0, out["output"][-3000:]
    assert out["warnings"] == [], out["output"][-3000:]
    run = settled_run(tmp_path / "swanlog")
    assert run.state == "finished"
    assert run.metadata["runtime"]["pid"] == out["report"]["pid"]


CONSOLE = r'''
import json, os, sys
from swanlab_autopatch.config.settings import parse
from swanlab_autopatch.tracking import client, compat
from swanlab_autopatch.tracking.request import StartRequest

class Stream:  # like the helper process's own sys.stdout (an object SwanLab can wrap)
    def __init__(self, real): self.real = real
    def write(self, text): return self.real.write(text)
    def flush(self): self.real.flush()
    def isatty(self): return False

p = json.loads(os.environ["T_ARGS"])
sys.stdout = Stream(sys.stdout)
settings = parse({"swanlab_project": "console", "swanlab_mode": "offline",
                  "swanlab_log_dir": p["log_dir"]}, env={}).settings
started = client.start(StartRequest(settings=settings, config={}))
installed = compat.console_capture_installed(sys.stdout)
client.finish()
sys.stdout = sys.stdout.real
print("RESULT:" + json.dumps({"started": started, "installed": installed}))
'''


def test_console_capture_that_no_longer_wraps_write(tmp_path):
    """The helper process feeds the training's console through SwanLab's capture, which must
    wrap ``write`` on the ``sys.stdout`` object it finds (compat.console_capture_installed)."""
    real = track(tmp_path / "real", build_tree(tmp_path / "real-client"), script=CONSOLE)
    fake = build_tree(tmp_path / "fake", edits=[(
        "sdk/internal/run/components/terminal/capture.py", "stream.write = self._make_wrapper()",
        "self._unused = self._make_wrapper()")])
    changed = track(tmp_path / "changed", fake, script=CONSOLE)
    for out in (real, changed):
        assert out["proc"].returncode == 0, out["output"][-3000:]
    assert real["report"] == {"started": True, "installed": True}, real["output"][-3000:]
    assert real["warnings"] == []
    assert changed["report"] == {"started": True, "installed": False}
    assert len(changed["warnings"]) == 1, changed["output"]
    assert "its console capture did not wrap write()" in changed["warnings"][0]
    assert "the run has no copy of the training's console output" in changed["warnings"][0]


def test_a_client_the_helper_cannot_import_never_fails_the_training(tmp_path):
    fake = build_tree(tmp_path / "fake", edits=[(
        "__init__.py", "from swanlab.converter.mlf.sync import sync_mlflow",
        "raise ImportError('this client cannot be imported (a test fake)')")])
    out = track(tmp_path, fake)
    assert out["proc"].returncode == 0, out["output"][-3000:]
    printed = [x for x in out["proc"].stdout.splitlines() if x.startswith("training line")]
    assert printed == [f"training line {i}" for i in range(1, 6)]
    assert len(out["warnings"]) == 1, out["output"]  # as today: one warning, tracking off
    assert "cannot be imported" in out["warnings"][0], out["warnings"]
    assert not (tmp_path / "swanlog").exists() or find_runs(tmp_path / "swanlog") == []


# -- the checks themselves, in this process, on the installed client -----------------------------


def test_the_installed_client_has_every_internal_and_doctor_reads_the_same():
    """The table's claims hold for the client of this lane (0.8.5, 0.9.8, 0.10.3 or the fake
    next minor), checked live (import) and from the source (doctor), which must agree."""
    from swanlab_autopatch import doctor

    version = installed("swanlab")
    for internal in compat.INTERNALS:
        static = doctor.check_internal(internal, version)
        if release(version) < internal.since:
            assert static.state == "not in this version", static
            continue
        assert [(p.dotted, compat.part_problem(p)) for p in internal.parts] == \
            [(p.dotted, None) for p in internal.parts]
        assert static.state == "found", static


def _removable_parts():
    import importlib

    for internal in compat.INTERNALS:
        for part in internal.parts:
            owner = importlib.import_module(part.module)
            *path, name = part.attr.split(".")
            for step in path:
                owner = getattr(owner, step)
            if name in vars(owner):  # not an instance attribute or a pydantic field
                yield pytest.param(internal.key, part, id=part.dotted)


@pytest.mark.parametrize("key, part", list(_removable_parts()))
def test_a_missing_or_changed_part_makes_one_warning(monkeypatch, capsys, key, part):
    import importlib

    from swanlab_autopatch import log

    monkeypatch.setattr(compat, "_problems", {})
    monkeypatch.setattr(log, "_said", set())
    owner = importlib.import_module(part.module)
    for step in part.attr.split(".")[:-1]:
        owner = getattr(owner, step)
    name = part.attr.split(".")[-1]
    if part.call is None:
        monkeypatch.delattr(owner, name)
        expected = f"{part.dotted} is missing"
    else:
        def changed(first, second, *, required): ...

        monkeypatch.setattr(owner, name, changed)
        expected = f"{part.dotted} has changed ("
    assert compat.usable(key) is False
    assert compat.usable(key) is False  # still: and no second warning
    warnings = [x for x in capsys.readouterr().err.splitlines() if WARNING in x]
    assert len(warnings) == 1 and expected in warnings[0], warnings
    assert compat.INTERNAL[key].lost in warnings[0]


def test_features_without_their_internal_do_nothing(monkeypatch):
    import swanlab.utils.experiment as experiment

    monkeypatch.setattr(compat, "_problems", {})
    assert compat.preset_colors()  # SwanLab's palette
    monkeypatch.delattr(experiment, "PRESET_COLORS")
    monkeypatch.setattr(compat, "_problems", {})
    assert compat.preset_colors() == []
    monkeypatch.setattr(compat, "_problems", {"http_session": "is missing"})
    with compat.bounded_requests(0.5):  # no bound, and nothing patched
        from swanlab.sdk.internal.pkg.client import session

        assert session.create.__name__ == "create"


@pytest.mark.parametrize("version, support", [
    ("0.7.20", "older"), ("0.8.0", "tested"), ("0.9.8", "tested"), ("0.10.99", "tested"),
    ("0.11.0", "newer"), ("0.11.0rc1", "newer"), ("1.0.0", "newer")])
def test_client_support(version, support):
    assert compat.client_support(version) == support


def test_a_newer_client_gets_one_info_line(monkeypatch, capsys):
    import swanlab

    from swanlab_autopatch import log

    monkeypatch.setattr(log, "_said", set())
    monkeypatch.setattr(swanlab, "__version__", "0.10.9")
    compat.announce_client()
    assert "newer" not in capsys.readouterr().err
    monkeypatch.setattr(swanlab, "__version__", "0.11.2")
    compat.announce_client()
    compat.announce_client()
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["[swanlab-autopatch] INFO: SwanLab 0.11.2 is newer than the clients this "
                     "swanlab-autopatch was tested with (0.8.0 to 0.10.x); expected to work."]
