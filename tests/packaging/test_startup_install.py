"""The start-up mechanism, installed the way users install it.

The wheel is built once per session (``python -m build --wheel --no-isolation``) and installed
into a FRESH virtual environment (``python -m venv``); a second fresh venv gets an editable
install (``pip install -e <repo> --no-build-isolation``). Everything is then checked in
subprocesses of that venv's own interpreter, where site processes the installed
``swanlab_autopatch.pth`` exactly as it would for a user.

Speed, and why it does not weaken the test:
- Only the package goes into the fresh venv (``--no-deps``). Its runtime dependencies
  (wrapt, swanlab, pydantic, packaging) and the fake Axolotl's (yaml) come from the
  interpreter running pytest (a fast venv of the same Python version): a folder of symlinks
  to its site-packages, minus anything named swanlab_autopatch, is put on PYTHONPATH in the
  subprocess environment. PYTHONPATH entries are not site dirs, so their .pth files are never
  processed: the only start-up file that runs is the fresh venv's own. Installing the
  dependencies from the index into every new venv would take minutes.
- The venvs are created ``--without-pip`` and pytest's own pip installs into them with
  ``pip --python <venv python>`` (pip re-runs itself under that interpreter, so files land as
  the venv's own pip would put them); ensurepip would cost seconds per venv.
- One venv per install kind per session; a test that uninstalls reinstalls lazily.

The fake Axolotl (tests/fake_axolotl) mirrors the real module paths; its version comes from a
dist-info folder on PYTHONPATH (tests/support/fake.py), which selects the old or new layout.
"""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest

from tests.support.fake import REPO, copy_fake_axolotl, run_interpreter

pytestmark = pytest.mark.packaging

WARNING = "[swanlab-autopatch] WARNING:"
MARK = "@@RESULT "

PTH_LINE = ("import swanlab_autopatch._startup as _swanlab_autopatch_startup; "
            "_swanlab_autopatch_startup.init()")
START_ENTRY = "swanlab_autopatch._startup:init"

NEW_LAYOUT = sorted([
    "axolotl.cli.config.load_cfg",
    "axolotl.core.builders.base.TrainerBuilderBase.get_callbacks",
    "axolotl.core.builders.base.TrainerBuilderBase.get_post_trainer_create_callbacks",
    "axolotl.utils.config.normalize_config",
    "axolotl.utils.config.validate_config",
])
OLD_LAYOUT = sorted([
    "axolotl.cli.config.load_cfg",
    "axolotl.cli.config.prepare_plugins",
    "axolotl.core.trainer_builder.TrainerBuilderBase.get_callbacks",
    "axolotl.core.trainer_builder.TrainerBuilderBase.get_post_trainer_create_callbacks",
    "axolotl.utils.config.normalize_config",
    "axolotl.utils.config.validate_config",
])

# Inspects the fake Axolotl after `import axolotl.cli.train` without importing wrapt itself.
PROBE = r'''
import json, sys
sys.dont_write_bytecode = True
triggers_before = sum(type(f).__name__ == "AxolotlTrigger" for f in sys.meta_path)
import axolotl.cli.train, axolotl.core.builders.base, axolotl.core.trainer_builder
import axolotl.cli.config as cli_config, axolotl.utils.config as utils_config

def ours(obj):
    return getattr(getattr(obj, "_self_wrapper", None), "__module__", None) == \
        "swanlab_autopatch.shim.wrappers"

def layers(obj):
    n = 0
    while hasattr(obj, "_self_wrapper"):
        n += ours(obj)
        obj = obj.__wrapped__
    return n

patcher = sys.modules.get("swanlab_autopatch.shim.patcher")
result = {
    "triggers_before": triggers_before,
    "triggers_after": sum(type(f).__name__ == "AxolotlTrigger" for f in sys.meta_path),
    "status": patcher.status() if patcher else None,
    "validate_is_ours": ours(utils_config.validate_config),
    "validate_layers": layers(utils_config.validate_config),
    "alias_identical": cli_config.validate_config is utils_config.validate_config
        and axolotl.cli.train.load_cfg is cli_config.load_cfg,
    "wrapt_loaded": "wrapt" in sys.modules,
    "patcher_loaded": patcher is not None,
    "package_file": getattr(sys.modules.get("swanlab_autopatch"), "__file__", None),
}
'''


def probe(install, env=None, then: str = "") -> tuple[dict, list[str], str]:
    proc = install.run(PROBE + then + '\nprint("@@RESULT " + json.dumps(result))', env)
    assert proc.returncode == 0, f"python failed:\n{proc.stdout}\n{proc.stderr}"
    line = next(x for x in proc.stdout.splitlines() if x.startswith(MARK))
    warnings = [x for x in proc.stderr.splitlines() if WARNING in x]
    return json.loads(line[len(MARK):]), warnings, proc.stderr


def test_both_startup_files_are_installed_at_the_top_of_purelib(install, wheel):
    pth = install.purelib / "swanlab_autopatch.pth"
    start = install.purelib / "swanlab_autopatch.start"
    assert pth.is_file() and start.is_file(), sorted(p.name for p in install.purelib.iterdir())
    # The .pth: one import line. The .start (PEP 829, Python 3.15+): one entry point.
    assert pth.read_text().splitlines() == [PTH_LINE]
    entries = [x.strip() for x in start.read_text().splitlines()
               if x.strip() and not x.lstrip().startswith("#")]
    assert entries == [START_ENTRY]
    # Exactly what the repository ships, byte for byte.
    assert pth.read_bytes() == (REPO / "startup" / "swanlab_autopatch.pth").read_bytes()
    assert start.read_bytes() == (REPO / "startup" / "swanlab_autopatch.start").read_bytes()
    # site processes .pth files in sorted order: ours must come after any path file that
    # makes the package importable (the editable install's).
    path_files = [p.name for p in install.purelib.glob("*.pth") if p.name != pth.name]
    assert all(name < pth.name for name in path_files), path_files
    with zipfile.ZipFile(wheel) as zf:  # and the wheel carries them at its root
        names = zf.namelist()
    assert "swanlab_autopatch.pth" in names and "swanlab_autopatch.start" in names


def test_the_start_entry_point_resolves(install):
    proc = install.run("import pkgutil, swanlab_autopatch._startup as s; "
                       f"print(pkgutil.resolve_name({START_ENTRY!r}) is s.init)")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "True\n", "")


def test_the_package_comes_from_the_venv(install):
    proc = install.run("import swanlab_autopatch as s, importlib.metadata as m; "
                       "print(s.__file__); print(m.version('swanlab-autopatch') == s.__version__)")
    assert proc.returncode == 0, proc.stderr
    file, same_version = proc.stdout.splitlines()
    assert same_version == "True"
    home = install.purelib if install.kind == "wheel" else REPO
    assert Path(file).is_relative_to(home), file


def test_startup_imports_no_wrapt(install):
    proc = install.run("import sys; print('wrapt' in sys.modules)")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "False\n", "")


def test_startup_loads_only_the_tiny_startup_module(install):
    proc = install.run("import sys; print(sorted(m for m in sys.modules "
                       "if m.startswith(('swanlab','wrapt'))))")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "['swanlab_autopatch', 'swanlab_autopatch._startup']\n"
    assert proc.stderr == ""
    # ... and it armed exactly one trigger (so the result above is not vacuous).
    proc = install.run("import sys; print(sum(type(f).__name__ == 'AxolotlTrigger' "
                       "for f in sys.meta_path))")
    assert proc.stdout == "1\n", proc.stderr


@pytest.mark.parametrize("version,layout", [("0.19.0", NEW_LAYOUT), ("0.9.2", OLD_LAYOUT)])
def test_importing_axolotl_wraps_the_targets(install, version, layout):
    result, warnings, stderr = probe(install, install.env(version))
    assert result["triggers_before"] == 1
    assert result["triggers_after"] == 0  # the trigger removed itself
    assert result["status"]["active"] is True
    assert result["status"]["wrapped"] == layout
    assert result["status"]["missing"] == {}
    assert result["status"]["aliases"] == []  # hooks ran before any `from` copy was made
    assert result["validate_is_ours"] is True and result["validate_layers"] == 1
    assert result["alias_identical"] is True
    assert warnings == [] and "Traceback" not in stderr


def test_python_m_axolotl_cli_train_keeps_the_swanlab_keys(install):
    """The user's command: the trigger fires while runpy imports the package, before
    __main__ copies load_cfg, so validate_config's wrapper puts the swanlab keys back."""
    cfg = install.root / "cfg.yaml"
    cfg.write_text("base_model: tiny\nlearning_rate: 0.0001\nswanlab_project: pkg-test\n"
                   "swanlab_mode: disabled\n")
    proc = run_interpreter(["-m", "axolotl.cli.train", str(cfg)], install.env(),
                           python=str(install.python), cwd=install.root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout.split("config:\n", 1)[1])["swanlab_project"] == "pkg-test"
    assert WARNING not in proc.stderr
    # And the control: switched off, Axolotl's schema drops the keys.
    proc = run_interpreter(["-m", "axolotl.cli.train", str(cfg)],
                           install.env(extra={"SWANLAB_AUTOPATCH": "0"}),
                           python=str(install.python), cwd=install.root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "swanlab_project" not in json.loads(proc.stdout.split("config:\n", 1)[1])


@pytest.mark.parametrize("value", ["0", "false", "FALSE", "No", "off", " Off "])
def test_switch_off(install, value):
    result, warnings, stderr = probe(install, install.env(extra={"SWANLAB_AUTOPATCH": value}))
    assert result["triggers_before"] == 0
    assert result["patcher_loaded"] is False
    assert result["wrapt_loaded"] is False
    assert result["validate_is_ours"] is False and result["validate_layers"] == 0
    assert stderr == ""


def test_dash_S_is_inert(install):
    proc = install.run(PROBE + 'print("@@RESULT " + json.dumps(result)); '
                       'print(sorted(m for m in sys.modules if m.startswith("swanlab")))',
                       flags=("-S",))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.splitlines()[0][len(MARK):])
    assert proc.stdout.splitlines()[1] == "[]"  # no swanlab_autopatch module loaded
    assert result["triggers_before"] == 0 and result["validate_is_ours"] is False
    assert proc.stderr == ""


def test_missing_target_costs_only_that_target(install, tmp_path):
    tree = copy_fake_axolotl(tmp_path / "broken-axolotl")
    base = tree / "axolotl" / "core" / "builders" / "base.py"
    base.write_text(base.read_text() + "\ndel TrainerBuilderBase.get_callbacks  # on purpose\n")
    missing = "axolotl.core.builders.base.TrainerBuilderBase.get_callbacks"
    result, warnings, stderr = probe(
        install, install.env(axolotl_root=tree),
        then="\nresult['load_cfg'] = cli_config.load_cfg({'base_model': 'tiny'})['base_model']")
    assert result["load_cfg"] == "tiny"  # Axolotl still imports and works
    assert result["status"]["wrapped"] == [t for t in NEW_LAYOUT if t != missing]
    assert list(result["status"]["missing"]) == [missing]
    assert len(warnings) == 1, stderr
    assert missing in warnings[0]
    assert "Traceback" not in stderr


def test_unsupported_axolotl_warns_once_and_wraps_nothing(install):
    result, warnings, stderr = probe(install, install.env("0.7.0"))
    assert result["status"]["wrapped"] == [] and result["validate_is_ours"] is False
    assert result["wrapt_loaded"] is False  # gated before wrapt is imported
    assert len(warnings) == 1 and "0.7.0" in warnings[0], stderr


def test_init_is_idempotent(install):
    """CPython processes a venv's .pth files twice (cpython#75723); init() called again, or
    the site dir processed once more, must neither arm a second trigger nor hook twice."""
    counter = install.purelib / "zz_count_pth_runs.pth"
    counter.write_text("import sys; sys.__dict__.setdefault('_pth_runs', []).append(1)\n")
    code = PROBE.replace("import axolotl.cli.train", r'''
import site, swanlab_autopatch._startup as startup
pth_runs = len(sys._pth_runs)
startup.init(); startup.init()
site.addsitedir(%r)  # every .pth of the venv once more
triggers_again = sum(type(f).__name__ == "AxolotlTrigger" for f in sys.meta_path)
from swanlab_autopatch.shim import post_import
calls = []
_watch = post_import.ModuleWatcher.watch
def counting(self, names):
    calls.extend(n for n in names if n not in sys.modules and n not in self.pending)
    return _watch(self, names)
post_import.ModuleWatcher.watch = counting
import axolotl.cli.train''' % str(install.purelib), 1)
    code += r'''
startup.init()
patcher.activate()
site.addsitedir(%r)
result.update(pth_runs=pth_runs, triggers_again=triggers_again, hook_registrations=calls,
              watchers_left=sum(type(f).__name__ == "ModuleWatcher" for f in sys.meta_path),
              watching=patcher.status()["watching"],
              layers_after=layers(utils_config.validate_config),
              wrapped_after=patcher.status()["wrapped"])
''' % str(install.purelib)
    try:
        proc = install.run(code + '\nprint("@@RESULT " + json.dumps(result))',
                           install.env(extra={"SWANLAB_AUTOPATCH_DEBUG": "1"}))
    finally:
        counter.unlink()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(next(x for x in proc.stdout.splitlines() if x.startswith(MARK))[len(MARK):])
    assert result["pth_runs"] >= 2  # the start-up file did run more than once
    assert result["triggers_again"] == 1
    assert proc.stderr.count("trigger armed") == 1
    # Every target module of the layout is watched once, the optional ones (imported only for
    # some configs) included.
    assert sorted(result["hook_registrations"]) == sorted(
        ["axolotl.utils.config", "axolotl.cli.config", "axolotl.cli.utils.args",
         "axolotl.core.builders.base", "axolotl.train", "axolotl.utils.callbacks.generation"])
    # One watcher, waiting only for the modules not imported yet (it leaves sys.meta_path once
    # they are); here the two imported only by training with some configs, and the command
    # line's option builders (imported by `axolotl train`, not by `axolotl.cli.train` itself).
    assert result["watchers_left"] == 1
    assert result["watching"] == ["axolotl.cli.utils.args", "axolotl.train",
                                  "axolotl.utils.callbacks.generation"]
    assert result["validate_layers"] == 1 and result["layers_after"] == 1
    assert result["wrapped_after"] == NEW_LAYOUT
    assert WARNING not in proc.stderr


BROKEN_WRAPT = 'raise ImportError("wrapt is broken on purpose")\n'


@pytest.mark.parametrize("how", ["broken", "missing"])
def test_without_a_working_wrapt_python_and_axolotl_still_work(install, tmp_path, how,
                                                               deps_without_wrapt):
    if how == "broken":
        shadow = tmp_path / "shadow"
        shadow.mkdir()
        (shadow / "wrapt.py").write_text(BROKEN_WRAPT)
        env = install.env(first=(shadow,))
    else:
        env = install.env(deps=deps_without_wrapt)
    # The interpreter starts as usual: the start-up file never imports wrapt.
    proc = install.run("print('started')", env)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "started\n", "")
    # Axolotl imports and runs; one line says the package could not activate.
    result, warnings, stderr = probe(
        install, env,
        then="\nresult['load_cfg'] = cli_config.load_cfg({'base_model': 'tiny'})['base_model']")
    assert result["load_cfg"] == "tiny"
    assert result["validate_is_ours"] is False
    assert len(warnings) == 1, stderr
    assert "could not activate" in warnings[0]
    assert "Traceback" not in stderr


def test_uninstall_removes_both_startup_files(install):
    pth = install.purelib / "swanlab_autopatch.pth"
    start = install.purelib / "swanlab_autopatch.start"
    assert pth.exists() and start.exists()
    install.uninstall()
    assert not pth.exists() and not start.exists()
    # (pip also removes site-packages itself when nothing else is left in it)
    left = sorted(p.name for p in install.purelib.glob("*swanlab*"))
    assert left == [], left
    proc = install.run("import sys; print(sorted(m for m in sys.modules "
                       "if m.startswith('swanlab')))")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "[]\n", "")
    assert not os.path.exists(install.purelib / "swanlab_autopatch")
