"""The patch permutation matrix (ddtrace style): every ordering of import, patch() and
unpatch() runs in a subprocess of its own against the fake Axolotl of tests/fake_axolotl.

The package comes from this checkout through PYTHONPATH (support.fake.fake_env), so no start-up
file runs for it: each case calls ``swanlab_autopatch.patch()`` itself. Should the interpreter
running the tests have the package installed as well, the prelude removes the trigger that the
installed start-up file armed, so only the explicit calls are under test.

Each case checks structure (which attributes hold our wrapt wrapper, how many layers, whether
the ``from``-imported copies are the same objects as the definitions) and behaviour (Axolotl's
schema drops ``swanlab_project`` unless our validate_config wrapper puts it back).

The wrapt major version is the running interpreter's: the fast venvs for Python 3.10 and 3.12
hold wrapt 1.17, those for 3.11 and 3.13 hold wrapt 2.5; the suite runs under each.
"""
from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from tests.support.fake import copy_fake_axolotl, FAKE_AXOLOTL, fake_env, run_interpreter, run_python

MARK = "@@RESULT "
WARNING = "[swanlab-autopatch] WARNING:"

# Every attribute that some layout wraps; which ones depends on the Axolotl version.
VALIDATE = "axolotl.utils.config.validate_config"
NORMALIZE = "axolotl.utils.config.normalize_config"
LOAD_CFG = "axolotl.cli.config.load_cfg"
PREPARE = "axolotl.cli.config.prepare_plugins"
NEW_CALLBACKS = "axolotl.core.builders.base.TrainerBuilderBase.get_callbacks"
NEW_POST = "axolotl.core.builders.base.TrainerBuilderBase.get_post_trainer_create_callbacks"
OLD_CALLBACKS = "axolotl.core.trainer_builder.TrainerBuilderBase.get_callbacks"
OLD_POST = "axolotl.core.trainer_builder.TrainerBuilderBase.get_post_trainer_create_callbacks"

NEW_LAYOUT = sorted([VALIDATE, NORMALIZE, LOAD_CFG, NEW_CALLBACKS, NEW_POST])  # 0.13.1 and later
OLD_LAYOUT = sorted([VALIDATE, NORMALIZE, LOAD_CFG, PREPARE, OLD_CALLBACKS, OLD_POST])  # <= 0.9
# 0.10 up to 0.13.0: the new builders module, prepare_plugins still wrapped
MID_LAYOUT = sorted([VALIDATE, NORMALIZE, LOAD_CFG, PREPARE, NEW_CALLBACKS, NEW_POST])

PRELUDE = r'''
import importlib, json, sys

# Only explicit patch()/unpatch() calls are under test: drop a trigger armed by an installed
# start-up file, if the interpreter running the tests has one.
sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "AxolotlTrigger"]

import swanlab_autopatch

MODULES = ["axolotl.utils.config", "axolotl.cli.config", "axolotl.cli.train",
           "axolotl.core.builders.base", "axolotl.core.trainer_builder"]
DEFINITIONS = [
    ("axolotl.utils.config", "validate_config"),
    ("axolotl.utils.config", "normalize_config"),
    ("axolotl.cli.config", "load_cfg"),
    ("axolotl.cli.config", "prepare_plugins"),
    ("axolotl.core.builders.base", "TrainerBuilderBase.get_callbacks"),
    ("axolotl.core.builders.base", "TrainerBuilderBase.get_post_trainer_create_callbacks"),
    ("axolotl.core.trainer_builder", "TrainerBuilderBase.get_callbacks"),
    ("axolotl.core.trainer_builder", "TrainerBuilderBase.get_post_trainer_create_callbacks"),
]
# The copies Axolotl makes with `from ... import name`, and the definition each copies.
ALIASES = {
    ("axolotl.cli.config", "validate_config"): ("axolotl.utils.config", "validate_config"),
    ("axolotl.cli.config", "normalize_config"): ("axolotl.utils.config", "normalize_config"),
    ("axolotl.cli.train", "load_cfg"): ("axolotl.cli.config", "load_cfg"),
    ("axolotl.cli.train", "validate_config"): ("axolotl.utils.config", "validate_config"),
    ("axolotl.cli.train", "normalize_config"): ("axolotl.utils.config", "normalize_config"),
}


def import_all():
    for name in MODULES:
        importlib.import_module(name)


def lookup(module, attr):
    """The object stored at module.attr (for a method: the class __dict__ entry)."""
    owner = sys.modules[module]
    *path, name = attr.split(".")
    for part in path:
        owner = getattr(owner, part)
    return vars(owner)[name]


def layers(obj):
    """How many of our wrappers are stacked around obj."""
    count = 0
    while hasattr(obj, "_self_wrapper"):
        if getattr(obj._self_wrapper, "__module__", None) == "swanlab_autopatch.shim.wrappers":
            count += 1
        obj = obj.__wrapped__
    return count


def snapshot():
    """{dotted name: current object} of every definition site and every alias."""
    import_all()
    sites = list(DEFINITIONS) + list(ALIASES)
    return {f"{m}.{a}": lookup(m, a) for m, a in sites}


def keeps_swanlab_key():
    """Behaviour: Axolotl's schema drops unknown keys; our wrapper puts swanlab_* back.
    Called through the copy in axolotl.cli.config, which is what load_cfg calls."""
    import axolotl.cli.config as cli_config
    from axolotl.utils.dict import DictDefault

    raw = DictDefault(swanlab_project="perm", swanlab_mode="disabled", learning_rate=1e-4)
    return "swanlab_project" in cli_config.validate_config(raw)


def state():
    import_all()
    objs = {f"{m}.{a}": lookup(m, a) for m, a in DEFINITIONS}
    return {
        "wrapped": sorted(k for k, v in objs.items() if layers(v) >= 1),
        "double": sorted(k for k, v in objs.items() if layers(v) > 1),
        "alias_mismatch": sorted(f"{m}.{a}" for (m, a), (dm, da) in ALIASES.items()
                                 if lookup(m, a) is not lookup(dm, da)),
        "keeps_swanlab_key": keeps_swanlab_key(),
        "is_patched": swanlab_autopatch.is_patched(),
    }


def same_as(saved):
    """The names whose current object is not the saved one."""
    now = snapshot()
    return sorted(k for k in saved if now[k] is not saved[k])


def report(**values):
    print("@@RESULT " + json.dumps(values, default=repr), flush=True)
'''


def run_case(tmp_path: Path, body: str, version: str = "0.19.0", extra: dict | None = None):
    """Run PRELUDE + body in a fresh interpreter; returns (reports, warning lines)."""
    env = fake_env(tmp_path, version, extra=extra)
    proc = run_python(PRELUDE + textwrap.dedent(body), env, cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, f"case failed:\n{proc.stdout}\n{proc.stderr}"
    reports = [json.loads(line[len(MARK):]) for line in proc.stdout.splitlines()
               if line.startswith(MARK)]
    assert reports, f"the case reported nothing:\n{proc.stdout}\n{proc.stderr}"
    return reports, [line for line in proc.stderr.splitlines() if WARNING in line]


def assert_patched(st: dict, layout: list[str]) -> None:
    assert st["wrapped"] == layout
    assert st["double"] == []
    assert st["alias_mismatch"] == []
    assert st["keeps_swanlab_key"] is True
    assert st["is_patched"] is True


def assert_clean(st: dict) -> None:
    assert st["wrapped"] == []
    assert st["alias_mismatch"] == []
    assert st["keeps_swanlab_key"] is False
    assert st["is_patched"] is False


# -- orderings ------------------------------------------------------------------------------

@pytest.mark.parametrize("version,layout", [("0.19.0", NEW_LAYOUT), ("0.9.2", OLD_LAYOUT)])
def test_import_then_patch(tmp_path, version, layout):
    (first, after), warnings = run_case(tmp_path, """
        import_all()
        report(returned=None, **state())
        returned = swanlab_autopatch.patch()
        from swanlab_autopatch.shim import patcher
        report(returned=returned, aliases=patcher.status()["aliases"], **state())
    """, version)
    assert_clean(first)
    assert after["returned"] is True
    assert_patched(after, layout)
    # The late patch reached the copies made by `from ... import` before it ran.
    assert "axolotl.cli.config.validate_config" in after["aliases"]
    assert "axolotl.cli.train.load_cfg" in after["aliases"]
    assert warnings == []


@pytest.mark.parametrize("version,layout", [("0.19.0", NEW_LAYOUT), ("0.9.2", OLD_LAYOUT)])
def test_patch_then_import(tmp_path, version, layout):
    (result,), warnings = run_case(tmp_path, """
        assert not any(m == "axolotl" or m.startswith("axolotl.") for m in sys.modules)
        returned = swanlab_autopatch.patch()
        from swanlab_autopatch.shim import patcher
        st = state()
        report(returned=returned, aliases=patcher.status()["aliases"], **st)
    """, version)
    assert result["returned"] is True
    assert_patched(result, layout)
    # The post-import hooks wrapped each definition before anyone copied it: no alias fix-up.
    assert result["aliases"] == []
    assert warnings == []


@pytest.mark.parametrize("when", ["before_import", "after_import"])
def test_patch_twice_does_not_double_wrap(tmp_path, when):
    (result,), warnings = run_case(tmp_path, f"""
        if {when == "after_import"!r}:
            import_all()
        a = swanlab_autopatch.patch()
        b = swanlab_autopatch.patch()
        import_all()
        c = swanlab_autopatch.patch()  # once more with everything imported
        import axolotl.utils.config as u
        inner = u.validate_config.__wrapped__
        report(returns=[a, b, c], inner_is_wrapper=hasattr(inner, "_self_wrapper"),
               inner_is_function=type(inner).__name__ == "function", **state())
    """)
    assert result["returns"] == [True, True, True]
    assert_patched(result, NEW_LAYOUT)
    assert result["inner_is_wrapper"] is False
    assert result["inner_is_function"] is True
    assert warnings == []


@pytest.mark.parametrize("when", ["before_import", "after_import"])
def test_patch_unpatch_patch(tmp_path, when):
    reports, warnings = run_case(tmp_path, f"""
        if {when == "after_import"!r}:
            import_all()
        swanlab_autopatch.patch()
        swanlab_autopatch.unpatch()
        if {when == "after_import"!r}:
            report(step="unpatched", **state())
        returned = swanlab_autopatch.patch()
        report(step="patched again", returned=returned, **state())
        swanlab_autopatch.unpatch()
        report(step="unpatched again", **state())
    """)
    if when == "after_import":
        assert_clean(reports.pop(0))
    again, unpatched = reports
    assert again["returned"] is True
    assert_patched(again, NEW_LAYOUT)
    assert_clean(unpatched)
    assert warnings == []


def test_unpatch_without_patch(tmp_path):
    (before, after), warnings = run_case(tmp_path, """
        swanlab_autopatch.unpatch()  # nothing to undo, before any import
        import_all()
        saved = snapshot()
        swanlab_autopatch.unpatch()  # and after the import
        report(wrapt_loaded="wrapt" in sys.modules, changed=same_as(saved))
        report(**state())
    """)
    assert before["wrapt_loaded"] is False  # unpatch() alone needs no wrapt
    assert before["changed"] == []
    assert_clean(after)
    assert warnings == []


def test_import_patch_unpatch_restores_the_original_objects(tmp_path):
    (result,), warnings = run_case(tmp_path, """
        saved = snapshot()  # every definition and alias, before patching
        swanlab_autopatch.patch()
        patched_changed = same_as(saved)
        swanlab_autopatch.unpatch()
        from swanlab_autopatch.shim import patcher
        report(patched_changed=patched_changed, changed=same_as(saved),
               status=patcher.status(), **state())
    """)
    assert len(result["patched_changed"]) == len(NEW_LAYOUT) + 5  # the definitions + 5 copies
    assert result["changed"] == []
    assert_clean(result)
    assert result["status"]["wrapped"] == [] and result["status"]["aliases"] == []
    assert warnings == []


def test_patch_import_unpatch_restores_the_original_objects(tmp_path):
    (result,), warnings = run_case(tmp_path, """
        swanlab_autopatch.patch()
        import_all()
        # The objects Axolotl defined are the ones our wrappers hold.
        originals = {k: v.__wrapped__ for k, v in snapshot().items() if layers(v)}
        swanlab_autopatch.unpatch()
        now = snapshot()
        report(wrapped_sites=sorted(originals),
               not_restored=sorted(k for k, v in originals.items() if now[k] is not v),
               **state())
    """)
    # Definitions and the `from` copies made while the wrappers were in place.
    assert len(result["wrapped_sites"]) == len(NEW_LAYOUT) + 5
    assert result["not_restored"] == []
    assert_clean(result)
    assert warnings == []


def test_startup_init_after_axolotl_was_imported(tmp_path):
    """The start-up hook run late (a sitecustomize after an import): it activates at once,
    and must reach the `from` copies like a late patch() does."""
    (result,), warnings = run_case(tmp_path, """
        import_all()
        from swanlab_autopatch import _startup
        _startup.init()
        _startup.init()
        report(triggers=sum(type(f).__name__ == "AxolotlTrigger" for f in sys.meta_path),
               **state())
    """)
    assert result["triggers"] == 0  # nothing left to wait for
    assert_patched(result, NEW_LAYOUT)
    assert warnings == []


# -- late patch() and `python -m axolotl.cli.train` ---------------------------------------

LATE_PLUGIN = '''
"""Loaded by the fake Axolotl's prepare_plugins while `python -m axolotl.cli.train` runs:
the module-level `from` imports of __main__ have already copied the originals."""
import json
import sys

import swanlab_autopatch
from swanlab_autopatch.shim import patcher

main = sys.modules["__main__"]
before = {name: hasattr(getattr(main, name), "_self_wrapper")
          for name in ("load_cfg", "validate_config", "normalize_config")}
returned = swanlab_autopatch.patch()
import axolotl.cli.config as cli_config
import axolotl.utils.config as utils_config
print("@@RESULT " + json.dumps({
    "main_spec": getattr(main.__spec__, "name", None),
    "train_imported": "axolotl.cli.train" in sys.modules,
    "returned": returned,
    "before": before,
    "main_load_cfg": main.load_cfg is cli_config.load_cfg,
    "main_validate_config": main.validate_config is utils_config.validate_config,
    "main_normalize_config": main.normalize_config is utils_config.normalize_config,
    "aliases": patcher.status()["aliases"],
}), flush=True)


class LatePatchPlugin:
    pass
'''


def test_late_patch_reaches_main_under_python_m(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "late_patch_plugin.py").write_text(LATE_PLUGIN)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("base_model: tiny\nlearning_rate: 0.0001\nswanlab_project: late\n"
                   "swanlab_mode: disabled\nplugins:\n  - late_patch_plugin.LatePatchPlugin\n")
    env = fake_env(tmp_path, "0.19.0")
    env["PYTHONPATH"] += os.pathsep + str(plugins)
    proc = run_interpreter(["-m", "axolotl.cli.train", str(cfg)], env, cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next((x for x in proc.stdout.splitlines() if x.startswith(MARK)), None)
    assert line, f"the plugin did not run:\n{proc.stdout}\n{proc.stderr}"
    result = json.loads(line[len(MARK):])
    assert result["main_spec"] == "axolotl.cli.train"
    assert result["train_imported"] is False  # only __main__ holds the CLI module
    assert result["returned"] is True
    assert result["before"] == {"load_cfg": False, "validate_config": False,
                                "normalize_config": False}
    assert result["main_load_cfg"] and result["main_validate_config"]
    assert result["main_normalize_config"]
    assert {"__main__.load_cfg", "__main__.validate_config",
            "__main__.normalize_config"} <= set(result["aliases"])
    # load_cfg was already running; its next call, validate_config, went through our wrapper,
    # which put the swanlab keys back into the config Axolotl printed.
    printed = proc.stdout.split("config:\n", 1)[1].split(MARK)[0]
    assert json.loads(printed)["swanlab_project"] == "late"
    assert WARNING not in proc.stderr


def test_python_m_train_unpatched_drops_the_keys(tmp_path):
    """The control for the test above: the same run without patch() loses the keys."""
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("base_model: tiny\nswanlab_project: late\nswanlab_mode: disabled\n")
    env = fake_env(tmp_path, "0.19.0")
    proc = run_interpreter(["-m", "axolotl.cli.train", str(cfg)], env, cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    printed = json.loads(proc.stdout.split("config:\n", 1)[1])
    assert "swanlab_project" not in printed and printed["base_model"] == "tiny"


# -- versions and layouts ------------------------------------------------------------------

@pytest.mark.parametrize("version,layout", [
    ("0.9.2", OLD_LAYOUT), ("0.10.0", MID_LAYOUT), ("0.19.0", NEW_LAYOUT),
])
def test_layout_by_version(tmp_path, version, layout):
    (result,), warnings = run_case(tmp_path, """
        returned = swanlab_autopatch.patch()
        from swanlab_autopatch.shim import patcher
        st = state()
        report(returned=returned, status=patcher.status(), **st)
    """, version)
    assert result["returned"] is True
    assert_patched(result, layout)
    assert result["status"]["wrapped"] == layout
    assert result["status"]["missing"] == {}
    assert result["status"]["axolotl"] == version
    if OLD_CALLBACKS in layout:
        assert not any(name.startswith("axolotl.core.builders.") for name in result["wrapped"])
    else:
        assert not any(name.startswith("axolotl.core.trainer_builder.")
                       for name in result["wrapped"])
    assert warnings == []


@pytest.mark.parametrize("version", ["0.7.0", "0.6.0"])
def test_unsupported_version_patches_nothing_with_one_warning(tmp_path, version):
    (result,), warnings = run_case(tmp_path, """
        a = swanlab_autopatch.patch()
        import_all()
        b = swanlab_autopatch.patch()  # a second call must not warn again
        report(returns=[a, b], **state())
    """, version)
    assert result["returns"] == [False, False]
    assert_clean(result)
    assert len(warnings) == 1, warnings
    assert version in warnings[0] and "SWANLAB_AUTOPATCH_FORCE" in warnings[0]


@pytest.mark.parametrize("version,force,layout", [
    ("0.7.0", "1", OLD_LAYOUT),  # below the range: the oldest layout
    ("0.5.2", "yes", OLD_LAYOUT),
])
def test_unsupported_version_with_force_patches(tmp_path, version, layout, force):
    (result,), warnings = run_case(tmp_path, """
        returned = swanlab_autopatch.patch()
        report(returned=returned, **state())
    """, version, extra={"SWANLAB_AUTOPATCH_FORCE": force})
    assert result["returned"] is True
    assert_patched(result, layout)
    # one warning says the version is outside the range and that patching was forced
    assert len(warnings) == 1 and "SWANLAB_AUTOPATCH_FORCE is set" in warnings[0], warnings


# -- error containment ---------------------------------------------------------------------

def test_axolotl_exception_passes_through_unchanged(tmp_path):
    (unpatched, patched), warnings = run_case(tmp_path, """
        import traceback
        import axolotl.cli.config as cli_config

        def attempt():
            try:
                cli_config.load_cfg({"learning_rate": "boom", "swanlab_project": "p",
                                     "swanlab_mode": "disabled"})
            except BaseException as exc:
                frames = traceback.extract_tb(exc.__traceback__)
                return {"type": f"{type(exc).__module__}.{type(exc).__qualname__}",
                        "message": str(exc), "args": list(exc.args),
                        "raised_in": frames[-1].name}
            return None

        report(**attempt())
        swanlab_autopatch.patch()
        assert hasattr(cli_config.validate_config, "_self_wrapper")
        report(**attempt())
    """)
    assert unpatched == {"type": "builtins.ValueError",
                         "message": "axolotl's own validation error",
                         "args": ["axolotl's own validation error"],
                         "raised_in": "validate_config"}
    assert patched == unpatched
    assert warnings == []


def test_wrapper_failure_returns_the_original_result_with_one_warning(tmp_path):
    (result,), warnings = run_case(tmp_path, """
        import axolotl.utils.config as utils_config
        from axolotl.utils.dict import DictDefault
        from swanlab_autopatch.config import flow as config_flow

        def broken(cfg):
            raise RuntimeError("our own bug")

        swanlab_autopatch.patch()
        config_flow.before_validate = broken
        raw = {"learning_rate": 1e-4, "base_model": "tiny", "swanlab_project": "p"}
        expected = utils_config.validate_config.__wrapped__(DictDefault(raw))
        got = [utils_config.validate_config(DictDefault(raw)) for _ in range(2)]
        report(expected=expected, got=got, types=[type(g).__name__ for g in got])
    """)
    assert result["got"] == [result["expected"]] * 2
    assert result["expected"] == {"learning_rate": 1e-4, "base_model": "tiny"}
    assert result["types"] == ["DictDefault", "DictDefault"]
    assert len(warnings) == 1, warnings
    assert "validate_config" in warnings[0] and "RuntimeError: our own bug" in warnings[0]


def test_failing_hook_does_not_break_the_import(tmp_path):
    (result,), warnings = run_case(tmp_path, """
        from swanlab_autopatch.shim import patcher

        def broken(target, module):
            raise RuntimeError("hook bug")

        patcher._apply = broken
        swanlab_autopatch.patch()
        import axolotl.cli.train  # imports utils.config and cli.config: both hooks fire
        report(imported="axolotl.cli.train" in sys.modules, **state())
    """)
    assert result["imported"] is True
    assert result["wrapped"] == []
    hook_warnings = [w for w in warnings if "hook bug" in w]
    assert len(hook_warnings) >= 1 and len(warnings) == len(hook_warnings), warnings


def test_fake_axolotl_is_the_one_imported(tmp_path):
    """Guard for the whole module: the subprocesses import the fake, not a real Axolotl."""
    (result,), _ = run_case(tmp_path, """
        import axolotl
        from importlib import metadata
        report(file=axolotl.__file__, version=metadata.version("axolotl"))
    """, "0.9.2")
    assert Path(result["file"]).is_relative_to(FAKE_AXOLOTL)
    assert result["version"] == "0.9.2"


def _site(root: Path, *dist_infos: str, package: bool = True) -> Path:
    root.mkdir(parents=True)
    if package:
        (root / "axolotl").mkdir()
    for name in dist_infos:
        (root / name).mkdir()
    return root


@pytest.mark.parametrize("entries,expected", [
    # a regular install: the dist-info folder next to the package
    ([("site", ["axolotl-0.19.0.dist-info", "axolotl_contribs_lgpl-0.1.dist-info"], True)],
     "0.19.0"),
    # an earlier path entry without the package is passed over, as import does
    ([("other", ["axolotl-0.8.0.dist-info"], False),
      ("site", ["Axolotl-0.21.0.dist-info"], True)], "0.21.0"),
    # a source tree first (editable install): unsure, importlib.metadata decides
    ([("src", [], True), ("site", ["axolotl-0.19.0.dist-info"], True)], None),
    # two metadata folders next to one package: unsure
    ([("site", ["axolotl-0.18.0.dist-info", "axolotl-0.19.0.dist-info"], True)], None),
    ([("site", [], False)], None),
])
def test_axolotl_version_from_the_dist_info_folder_name(tmp_path, monkeypatch, entries, expected):
    from swanlab_autopatch import versions

    paths = [str(_site(tmp_path / name, *infos, package=package))
             for name, infos, package in entries]
    monkeypatch.setattr("sys.path", [str(tmp_path / "missing"), *paths])
    assert versions._version_from_dist_info("axolotl") == expected


def test_axolotl_version_falls_back_to_package_metadata(tmp_path, monkeypatch):
    from swanlab_autopatch import versions

    monkeypatch.setattr(versions, "_version_from_dist_info", lambda dist: None)
    monkeypatch.setattr(versions, "installed", lambda dist: "0.12.2")
    assert versions.axolotl_version() == "0.12.2"


def test_wrapped_functions_pickle_by_reference(tmp_path):
    """Ray pickles Axolotl's worker function with the globals it uses (normalize_config up to
    0.17): a wrapper must pickle as "that attribute of that module", never fail."""
    (result,), warnings = run_case(tmp_path, """
        import pickle, subprocess
        swanlab_autopatch.patch()
        import_all()
        import axolotl.utils.config as u
        from axolotl.core.builders.base import TrainerBuilderBase
        data = pickle.dumps([u.normalize_config, u.validate_config])
        same = pickle.loads(data)
        # A process without the package active gets Axolotl's own functions back.
        code = ("import pickle, sys, types; objs = pickle.loads(sys.stdin.buffer.read()); "
                "print([type(o).__name__ for o in objs])")
        other = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True)
        report(same=[a is b for a, b in zip(same, [u.normalize_config, u.validate_config])],
               other=other.stdout.decode().strip(), err=other.stderr.decode()[-300:],
               method=pickle.loads(pickle.dumps(TrainerBuilderBase.get_callbacks)) ==
               TrainerBuilderBase.get_callbacks)
    """)
    assert result["same"] == [True, True]
    assert result["other"] == "['function', 'function']", result["err"]
    assert result["method"] is True
    assert warnings == []


# -- an Axolotl newer than every tested release -------------------------------------------------

NEWER = "0.22.0"


def _newer_case(tmp_path, root=None):
    code = PRELUDE + textwrap.dedent("""
        returned = swanlab_autopatch.patch()
        from swanlab_autopatch.shim import patcher
        import_all()
        status = patcher.status()
        report(returned=returned, missing=status["missing"], wrapped=status["wrapped"])
    """)
    proc = run_python(code, fake_env(tmp_path, NEWER, axolotl_root=root), cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    (result,) = [json.loads(x[len(MARK):]) for x in proc.stdout.splitlines() if x.startswith(MARK)]
    ours = [x for x in proc.stderr.splitlines() if "[swanlab-autopatch]" in x]
    return result, ours


def test_newer_axolotl_is_patched_with_the_newest_layout_and_says_so(tmp_path):
    result, lines = _newer_case(tmp_path)
    assert result["returned"] is True
    assert result["wrapped"] == NEW_LAYOUT
    assert len(lines) == 1 and "INFO" in lines[0], lines
    assert f"Axolotl {NEWER} is newer than the releases" in lines[0]
    assert "0.21.0" in lines[0] and "checks each target" in lines[0]


def test_newer_axolotl_with_a_missing_target_patches_the_rest(tmp_path):
    root = copy_fake_axolotl(tmp_path / "fake")
    template = root / "axolotl" / "core" / "_builder_template.py"
    template.write_text(template.read_text().replace(
        "def get_post_trainer_create_callbacks(", "def get_post_trainer_create_callbacks_v2("))
    result, lines = _newer_case(tmp_path, root)
    assert result["wrapped"] == sorted(set(NEW_LAYOUT) - {NEW_POST})
    warnings = [x for x in lines if "WARNING" in x]
    assert len(warnings) == 1, lines
    assert "get_post_trainer_create_callbacks was not found" in warnings[0]
    assert "consequence: duplicate SwanLab callbacks" in warnings[0]


def test_newer_axolotl_with_a_changed_signature_leaves_that_target_alone(tmp_path):
    root = copy_fake_axolotl(tmp_path / "fake")
    utils = root / "axolotl" / "utils" / "config" / "__init__.py"
    text = utils.read_text()
    assert "def normalize_config(cfg):\n" in text
    utils.write_text(text.replace("def normalize_config(cfg):\n",
                                  "def normalize_config(config):\n    cfg = config\n"))
    result, lines = _newer_case(tmp_path, root)
    assert result["wrapped"] == sorted(set(NEW_LAYOUT) - {NORMALIZE})
    assert NORMALIZE in result["missing"]
    warnings = [x for x in lines if "WARNING" in x]
    assert len(warnings) == 1 and "normalize_config changed" in warnings[0], warnings
    assert "start with config, not cfg" in warnings[0]
    assert "it is left alone, consequence:" in warnings[0]

