"""`doctor` as data (examine) and as text (render), against the fake Axolotl layouts."""
from __future__ import annotations

import json
import os

import pytest

from swanlab_autopatch import doctor
from swanlab_autopatch.tracking import compat
from swanlab_autopatch.versions import installed
from tests.support.fake import fake_env, run_python
from tests.support.fake_swanlab import NEXT_MINOR, build_tree, lacking

EXAMINE = ("import dataclasses, json; from swanlab_autopatch import doctor; "
           "r = doctor.examine(); d = dataclasses.asdict(r); d['ok'] = r.ok; print(json.dumps(d))")


# doctor reads source, so the fake Axolotl here defines every target statically (the shared
# fake of tests/fake_axolotl builds its classes in a factory).
BUILDER = """
class TrainerBuilderBase:
    def get_callbacks(self):
        return []

    def get_post_trainer_create_callbacks(self, trainer):
        return []
"""
MODULES = {
    "__init__.py": "",
    "utils/__init__.py": "",
    "utils/config/__init__.py": "def validate_config(cfg):\n    return cfg\n\n\n"
                                "def normalize_config(cfg):\n    pass\n",
    "cli/__init__.py": "",
    "cli/config.py": "def load_cfg(config):\n    pass\n\n\ndef prepare_plugins(cfg):\n    pass\n",
    "cli/utils/__init__.py": "def add_options_from_config(config_class):\n    pass\n",
    "cli/utils/args.py": "def add_options_from_config(config_class):\n    pass\n\n\n"
                         "def add_options_from_config_options(options):\n    pass\n",
    "core/__init__.py": "",
    "core/builders/__init__.py": "",
    "core/builders/base.py": BUILDER,
    "core/trainer_builder.py": BUILDER,
    "train.py": "def train(cfg, dataset_meta):\n    pass\n",
    "utils/callbacks/__init__.py": "",
    "utils/callbacks/generation.py": "class SFTGenerationCallback:\n"
                                     "    def _log_samples(self, samples, step):\n        pass\n",
}


def static_axolotl(root, drop=None):
    for name, text in MODULES.items():
        path = root / "axolotl" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.replace(drop, drop + "_renamed") if drop else text)
    return root


def examine(tmp_path, version="0.19.0", drop=None, first=None, **kw) -> dict:
    root = static_axolotl(tmp_path / "axolotl-src", drop)
    env = fake_env(tmp_path, version, axolotl_root=root, **kw)
    if first:  # ahead of everything (a fake SwanLab client)
        env["PYTHONPATH"] = f"{first}{os.pathsep}{env['PYTHONPATH']}"
    proc = run_python(EXAMINE, env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


@pytest.mark.parametrize("version, builder", [("0.19.0", "axolotl.core.builders.base"),
                                              ("0.9.2", "axolotl.core.trainer_builder")])
def test_targets_of_each_layout_are_found(tmp_path, version, builder):
    report = examine(tmp_path, version, extra={"SWANLAB_API_KEY": "doctor-CANARY-1"})
    states = {t["dotted"]: t["state"] for t in report["targets"]}
    assert states[f"{builder}.TrainerBuilderBase.get_callbacks"] == "found"
    assert states["axolotl.utils.config.validate_config"] == "found"
    assert report["versions"]["axolotl"] == version
    assert report["api_key_source"] == "the SWANLAB_API_KEY environment variable"
    assert report["effective_mode"] == "cloud"
    # Not installed from a wheel here, so the start-up file is the one problem.
    assert [p for p in report["problems"] if "start-up file" not in p] == []


def test_missing_required_target_is_a_problem(tmp_path):
    report = examine(tmp_path, drop="def get_callbacks")
    missing = [t for t in report["targets"] if t["state"] != "found"]
    assert [t["dotted"] for t in missing] == [
        "axolotl.core.builders.base.TrainerBuilderBase.get_callbacks"]
    assert "get_callbacks is not defined" in missing[0]["detail"]
    assert any("required target" in p for p in report["problems"])
    assert report["ok"] is False


def test_switched_off_and_cloud_without_key(tmp_path):
    report = examine(tmp_path, extra={"SWANLAB_AUTOPATCH": "off", "SWANLAB_ROOT": str(tmp_path)})
    assert report["switched_off"] is True and report["switch_value"] == "off"
    assert "SWANLAB_AUTOPATCH turns the package off in this environment" in report["problems"]
    assert report["api_key_source"] is None
    assert report["effective_mode"] == "offline (cloud without a key)"


def test_render_is_what_the_report_says():
    report = doctor.DoctorReport(
        version="9.9", python="3.11.7", executable="/py", startup_files=["/sp/swanlab_autopatch.pth"],
        versions={"axolotl": "0.19.0", "swanlab": "0.10.3"}, supported_range=">=0.8.0",
        targets=[doctor.TargetCheck("m.f", True, "found", "/m.py"),
                 doctor.TargetCheck("m.g", False, "missing", "g not defined")],
        api_key_source="a saved `swanlab login` (/x)", mode="cloud", mode_origin="default",
        effective_mode="cloud", api_host="https://api.swanlab.cn")
    text = doctor.render(report)
    assert "  found    m.f [required]" in text
    assert "  missing  m.g [optional]\n           g not defined" in text
    assert "API key: found in a saved `swanlab login` (/x)" in text
    assert text.endswith("Everything needed is in place.")
    report.problems.append("something")
    assert doctor.render(report).endswith("Problems:\n  - something")


def test_newer_axolotl_is_expected_to_work_and_checked(tmp_path):
    report = examine(tmp_path, "0.22.0", drop=None)
    assert report["axolotl_support"].startswith("newer than the tested releases")
    assert all(t["state"] == "found" for t in report["targets"]), report["targets"]
    expected = {"tested": "supported and tested (0.8.0 to 0.10.x)",
                "newer": "newer than the tested clients (0.8.0 to 0.10.x): expected to work"}
    assert report["swanlab_support"] == expected[compat.client_support(installed("swanlab"))]
    text = doctor.render(doctor.DoctorReport(
        version="1", python="3", executable="x", versions={"axolotl": "0.22.0"},
        axolotl_support=report["axolotl_support"]))
    assert "axolotl            0.22.0  (newer than the tested releases" in text


def test_a_changed_signature_is_reported(tmp_path):
    root = static_axolotl(tmp_path / "src")
    config = root / "axolotl" / "utils" / "config" / "__init__.py"
    config.write_text(config.read_text().replace("def validate_config(cfg)",
                                                 "def validate_config(config)"))
    proc = run_python(EXAMINE, fake_env(tmp_path, "0.22.0", axolotl_root=root), cwd=tmp_path)
    report = json.loads(proc.stdout.splitlines()[-1])
    (changed,) = [t for t in report["targets"] if t["state"] == "changed"]
    assert changed["dotted"] == "axolotl.utils.config.validate_config"
    assert "parameters start with config, not cfg" in changed["detail"]
    assert any("validate_config is changed" in p for p in report["problems"])


def test_swanlab_internals_are_checked_in_the_clients_source(tmp_path):
    """A client newer than the tested ones that moved one internal: doctor says it is expected
    to work, names the internal and what is lost; it is not a problem (tracking works)."""
    fake = build_tree(tmp_path / "client", NEXT_MINOR,
                      [("sdk/internal/run/__init__.py", "_current_run", "_the_run")])
    report = examine(tmp_path, first=fake)
    assert report["versions"]["swanlab"] == NEXT_MINOR
    assert report["swanlab_support"] == \
        "newer than the tested clients (0.8.0 to 0.10.x): expected to work"
    gone = [c for c in report["internals"] if c["state"] != "found"]
    # (and those the client it was built from lacks by design: 0.8.x has no finish_thread)
    assert [(c["key"], c["state"], c["dotted"]) for c in gone] == \
        [("current_run", "missing", "swanlab.sdk.internal.run._current_run")] + \
        [(i.key, "missing", i.parts[0].dotted) for i in compat.INTERNALS if i.key in lacking()]
    assert len(report["internals"]) == len(compat.INTERNALS)
    assert [p for p in report["problems"] if "start-up file" not in p] == []
    text = doctor.render(doctor.DoctorReport(version="1", python="3", executable="x",
                                             versions={"swanlab": NEXT_MINOR}, internals=[
        doctor.InternalCheck(**c) for c in report["internals"]]))
    found = len(compat.INTERNALS) - len(gone)
    assert f"client internals used (checked in its source): {found} found, {len(gone)} not " \
           "found or changed" in text
    assert "    missing swanlab.sdk.internal.run._current_run: _current_run is not defined" in text
    assert f"      so {compat.INTERNAL['current_run'].lost}; tracking goes on" in text
