"""The start-up activation, `doctor` and the config rules against a real Axolotl 0.19.0 install
(no training: Axolotl's own load_cfg, in one process per check)."""
from __future__ import annotations

import json
import subprocess
import textwrap

import pytest

from e2e_support import harness

CANARY = "canary-KEY-in-yaml-77d1e0"


@pytest.fixture(scope="module")
def axolotl019():
    from e2e_support import prepared

    return prepared(harness.DEFAULT_AXOLOTL)


def run_in(venv, code: str, cwd, env=None, timeout=600):
    return subprocess.run([harness.python_of(venv), "-c", textwrap.dedent(code)], cwd=cwd,
                          env=harness.training_env(venv, env, swanlab_root=cwd / ".sl"),
                          capture_output=True, text=True, timeout=timeout)


def test_nothing_is_imported_until_axolotl_is(axolotl019, tmp_path):
    venv, _ = axolotl019
    probe = run_in(venv, """
        import json, sys
        before = sorted(m for m in sys.modules if m.startswith(("wrapt", "swanlab")))
        import axolotl.cli.config, axolotl.core.builders.base
        from swanlab_autopatch.shim import patcher
        print(json.dumps({"before": before, "status": patcher.status(),
                          "wrapt": "wrapt" in sys.modules}))
    """, tmp_path)
    assert probe.returncode == 0, probe.stderr[-3000:]
    out = json.loads(probe.stdout.strip().splitlines()[-1])
    assert out["before"] == ["swanlab_autopatch", "swanlab_autopatch._startup"]
    assert out["wrapt"] is True
    assert out["status"]["axolotl"] == "0.19.0"
    assert set(out["status"]["wrapped"]) == {
        "axolotl.utils.config.validate_config", "axolotl.utils.config.normalize_config",
        "axolotl.cli.config.load_cfg",
        "axolotl.core.builders.base.TrainerBuilderBase.get_callbacks",
        "axolotl.core.builders.base.TrainerBuilderBase.get_post_trainer_create_callbacks"}
    assert out["status"]["missing"] == {}


def test_doctor_on_the_real_install(axolotl019, tmp_path):
    venv, _ = axolotl019
    result = subprocess.run([str(venv / "bin" / "swanlab-autopatch"), "doctor"], cwd=tmp_path,
                            env=harness.training_env(venv, {"SWANLAB_API_KEY": CANARY},
                                                     swanlab_root=tmp_path),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    text = result.stdout
    assert "swanlab_autopatch.pth" in text and "swanlab_autopatch.start" in text
    assert "axolotl            0.19.0" in text
    for target in ("axolotl.utils.config.validate_config", "axolotl.cli.config.load_cfg",
                   "axolotl.core.builders.base.TrainerBuilderBase.get_callbacks"):
        assert f"found    {target}" in text, text
    assert "API key: found in the SWANLAB_API_KEY environment variable" in text
    assert CANARY not in text + result.stderr
    assert "Everything needed is in place." in text

    off = subprocess.run([str(venv / "bin" / "swanlab-autopatch"), "doctor"], cwd=tmp_path,
                         env=harness.training_env(venv, {"SWANLAB_AUTOPATCH": "0"}),
                         capture_output=True, text=True, timeout=300)
    assert off.returncode == 1 and "SWANLAB_AUTOPATCH turns the package off" in off.stdout


def test_doctor_imports_nothing_heavy(axolotl019, tmp_path):
    """doctor reads Axolotl's and SwanLab's source files: it imports neither them nor torch,
    transformers, bitsandbytes or torchao (which also print warnings on stdout), and stdout is
    its report alone. (Its time is a benchmark row: benchmarks/doctor.py.)"""
    venv, _ = axolotl019
    result = subprocess.run([harness.python_of(venv), "-X", "importtime", "-m",
                             "swanlab_autopatch", "doctor"], cwd=tmp_path,
                            env=harness.training_env(venv, swanlab_root=tmp_path),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:")}
    assert "swanlab_autopatch.doctor" in imported  # the import trace is there
    heavy = {"torch", "transformers", "bitsandbytes", "torchao", "axolotl", "swanlab"}
    assert not heavy & imported, sorted(heavy & imported)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("swanlab-autopatch ") and lines[-1] == \
        "Everything needed is in place.", result.stdout
    assert not [l for l in lines if "WARNING" in l or l.startswith("[")], result.stdout


SCENARIOS = """
import contextlib, io, json, os, sys
from axolotl.cli.config import load_cfg

def load(path, env=None, **overrides):
    saved = dict(os.environ)
    os.environ.update(env or {})
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            cfg = load_cfg(path, **overrides)
        return {"cfg": {k: v for k, v in cfg.items() if "swanlab" in k},
                "keys": sorted(cfg), "messages": err.getvalue()}
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}", "messages": err.getvalue()}
    finally:
        os.environ.clear(); os.environ.update(saved)

results = {name: load(path, env, **over) for name, (path, env, over) in json.loads(sys.argv[1]).items()}
print("RESULTS=" + json.dumps(results))
"""


def test_load_cfg_rules_on_real_axolotl(axolotl019, tmp_path):
    venv, assets = axolotl019
    cfgs = {
        "only_project": dict(swanlab_project="real-cfg"),
        "cli_override": dict(),
        "no_project": dict(use_swanlab=True),
        "bad_mode": dict(swanlab_project="p", swanlab_mode="invalid-mode"),
        "empty_project": dict(swanlab_project=""),
        "list_project": dict(swanlab_project=["a", "b"]),
        "wandb": dict(swanlab_project="p", swanlab_mode="offline", wandb_project="w",
                      wandb_mode="disabled"),
        "api_key": dict(swanlab_project="p", swanlab_api_key=CANARY),
        "rank1": dict(swanlab_project="p", swanlab_mode="offline"),
        "rank0": dict(swanlab_project="p", swanlab_mode="offline"),
    }
    plan = {}
    for name, overrides in cfgs.items():
        path = harness.write_config(tmp_path / name / "cfg.yaml",
                                    harness.config_for(assets, tmp_path / name, **overrides))
        env = {"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2"} if name == "rank1" else \
            {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2"} if name == "rank0" else {}
        over = {"swanlab_project": "from-cli"} if name == "cli_override" else {}
        plan[name] = (str(path), env, over)
    script = tmp_path / "scenarios.py"
    script.write_text(SCENARIOS)
    proc = subprocess.run([harness.python_of(venv), str(script), json.dumps(plan)], cwd=tmp_path,
                          env=harness.training_env(venv, swanlab_root=tmp_path / ".sl"),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads(proc.stdout.split("RESULTS=", 1)[1])

    assert results["only_project"]["cfg"]["swanlab_project"] == "real-cfg"
    assert results["only_project"]["cfg"]["use_swanlab"] is True
    assert results["only_project"]["cfg"]["swanlab_mode"] == "cloud"
    assert "tracking enabled because swanlab_project is set" in results["only_project"]["messages"]
    assert results["cli_override"]["cfg"]["swanlab_project"] == "from-cli"
    assert results["no_project"]["error"].startswith(
        "SwanLabConfigError: SwanLab enabled but 'swanlab_project' is not set.")
    assert results["bad_mode"]["error"].startswith(
        "SwanLabConfigError: Invalid swanlab_mode: 'invalid-mode'. Valid options: cloud, local, "
        "offline, disabled")
    assert results["empty_project"]["error"].startswith(
        "SwanLabConfigError: swanlab_project cannot be an empty string.")
    assert results["list_project"]["error"].startswith(
        "SwanLabConfigError: swanlab_project must be text, got a list")
    assert "Multiple logging tools enabled: SwanLab, WandB" in results["wandb"]["messages"]
    assert "Expected overhead: ~3.0% per training step." in results["wandb"]["messages"]
    assert "swanlab_api_key" not in results["api_key"]["keys"]
    assert CANARY not in proc.stdout + proc.stderr
    assert results["rank1"]["messages"] == ""
    assert results["rank0"]["messages"].count("Distributed training detected (world_size=2)") == 1
