"""sitecustomize_example/ arms the trigger and still runs the sitecustomize it shadows."""
from __future__ import annotations

import os

from support.fake import REPO, fake_env, run_python

EXAMPLE = REPO / "sitecustomize_example"
PROBE = ("import sys; from swanlab_autopatch import _startup; "
         "print('armed', _startup.is_armed()); "
         "print('other', getattr(sys, '_other_sitecustomize_ran', False)); "
         "print('trigger', any(type(f).__name__ == 'AxolotlTrigger' for f in sys.meta_path))")


def _env(tmp_path, *first, extra=None):
    env = fake_env(tmp_path, extra=extra)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, first), env["PYTHONPATH"]])
    return env


def test_arms_the_trigger_and_chains_to_the_shadowed_sitecustomize(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "sitecustomize.py").write_text("import sys\nsys._other_sitecustomize_ran = True\n")
    result = run_python(PROBE, _env(tmp_path, EXAMPLE, other))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:3] == ["armed True", "other True", "trigger True"]
    assert result.stderr == ""


def test_without_another_sitecustomize_it_just_arms(tmp_path):
    result = run_python(PROBE, _env(tmp_path, EXAMPLE))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:3] == ["armed True", "other False", "trigger True"]


def test_a_broken_shadowed_sitecustomize_is_reported_not_hidden(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "sitecustomize.py").write_text("import module_that_does_not_exist_xyz\n")
    result = run_python(PROBE, _env(tmp_path, EXAMPLE, other))
    assert result.returncode == 0
    assert "module_that_does_not_exist_xyz" in result.stderr
    assert result.stdout.startswith("armed True")


def test_switch_off_is_respected(tmp_path):
    result = run_python(PROBE, _env(tmp_path, EXAMPLE, extra={"SWANLAB_AUTOPATCH": "off"}))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:3] == ["armed False", "other False", "trigger False"]
