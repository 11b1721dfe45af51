"""The swanlab_* keys as options of Axolotl's own command line (config/command_line.py).

In-process: the click options (forms, types, what the command callback still sees), the
hand-over to the training processes, the masking of secrets in argv, the check that stops a
run whose swanlab option never reached the config, and the merge before validation.
In subprocesses: `axolotl train` of the fake Axolotl (tests/fake_axolotl/axolotl/cli/main.py,
patched from a sitecustomize.py), on its python and accelerate-like launchers, and with the
patch target renamed (the one clear error instead of a silent drop). The real releases are
the end-to-end lane's (tests/e2e/test_command_line_options.py).
"""
from __future__ import annotations

import json
import os
import sys

import click
import pytest

from swanlab_autopatch.config import command_line, flow, settings
from swanlab_autopatch.errors import SwanLabConfigError
from tests.support.fake import copy_fake_axolotl, fake_env, run_interpreter

CANARY = "sk-CANARY-cli-4d2a"
AXOLOTL = "/venv/bin/axolotl"


@pytest.fixture(autouse=True)
def _clean(monkeypatch):
    monkeypatch.delenv(command_line.ENV, raising=False)
    monkeypatch.setattr(sys, "argv", ["pytest"])


def test_every_key_a_user_writes_is_an_option():
    assert set(command_line.KEYS) == set(settings.KNOWN_KEYS) - {"swanlab_launch_dir"}
    assert set(command_line.SECRET_KEYS) == set(settings.SECRET_KEYS)


def command(seen: dict):
    """A click command shaped like Axolotl's `train` (the config argument, a --cloud option,
    **kwargs), with the swanlab options added as the patched decorator adds them."""
    @click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
    @click.argument("config")
    @click.option("--cloud", default=None)
    @command_line.with_options
    def train(config, cloud=None, **kwargs):
        seen.update(kwargs, config=config, cloud=cloud)

    return train


def invoke(args: list[str]) -> dict:
    seen: dict = {}
    command(seen).main(["cfg.yaml", *args], standalone_mode=False)
    return seen


def handed_over() -> dict:
    return json.loads(os.environ[command_line.ENV])


def test_both_spellings_and_every_kind_of_value():
    seen = invoke(["--swanlab_project=demo", "--swanlab-mode", "offline", "--use_swanlab",
                   "--swanlab_tags=a, b", "--swanlab-tags", "c", "--swanlab_log_completions=false",
                   "--swanlab_completion_log_interval", "5", "--swanlab_description=x, y 1e5",
                   "--learning_rate=0.1"])
    assert seen == {"config": "cfg.yaml", "cloud": None}  # Axolotl never sees them
    assert handed_over() == {
        "swanlab_project": "demo", "swanlab_mode": "offline", "use_swanlab": True,
        "swanlab_tags": ["a", "b", "c"], "swanlab_log_completions": False,
        "swanlab_completion_log_interval": 5, "swanlab_description": "x, y 1e5"}
    # What the YAML would give: the settings parse these values unchanged.
    parsed = settings.parse(handed_over(), env={}).settings
    assert parsed.swanlab_tags == ("a", "b", "c") and parsed.swanlab_log_completions is False
    assert parsed.swanlab_description == "x, y 1e5"


def test_empty_tags_are_given_but_empty():
    invoke(["--swanlab_project=demo", "--swanlab_tags="])
    assert handed_over()["swanlab_tags"] == []


@pytest.mark.parametrize("args, message", [
    (["--use_swanlab=maybe"], "'maybe' is not a valid boolean"),
    (["--swanlab_completion_max_buffer=many"], "'many' is not a valid integer"),
])
def test_a_value_click_cannot_read_is_a_usage_error(args, message):
    with pytest.raises(click.BadParameter, match=message):
        invoke(args)
    assert command_line.ENV not in os.environ


def test_no_option_clears_what_a_parent_command_handed_over(monkeypatch):
    monkeypatch.setenv(command_line.ENV, json.dumps({"swanlab_project": "parent"}))
    invoke([])
    assert command_line.ENV not in os.environ
    assert command_line.given() == {}


def test_cloud_runs_cannot_take_them():
    with pytest.raises(click.UsageError, match="--swanlab_project: Axolotl does not pass"):
        invoke(["--cloud", "cloud.yaml", "--swanlab_project=demo"])


def test_secrets_leave_argv(monkeypatch):
    argv = [AXOLOTL, "train", "cfg.yaml", f"--swanlab_api_key={CANARY}",
            "--swanlab-lark-secret", CANARY, f"--swanlab_lark_webhook_url=https://h/{CANARY}",
            "--swanlab_project", "demo"]
    monkeypatch.setattr(sys, "argv", argv)
    invoke(argv[3:])
    assert sys.argv == [AXOLOTL, "train", "cfg.yaml", "--swanlab_api_key=***",
                        "--swanlab-lark-secret", "***", "--swanlab_lark_webhook_url=***",
                        "--swanlab_project", "demo"]
    assert handed_over()["swanlab_api_key"] == CANARY


@pytest.mark.parametrize("argv, cfg, expected", [
    # Reached the config: nothing to say.
    ([AXOLOTL, "train", "c.yaml", "--swanlab_project=x"], {"swanlab_project": "x"}, None),
    ([AXOLOTL, "train", "c.yaml", "--swanlab_tags="], {"swanlab_tags": []}, None),
    # Not Axolotl's command line: a user's own script may have its own --swanlab options.
    (["train.py", "--swanlab_project=x"], {}, None),
    ([AXOLOTL, "train", "c.yaml", "--swanlab_project=x"], {},
     "--swanlab_project was given on the command line but did not reach the config (Axolotl "),
    (["/v/axolotl/cli/train.py", "c.yaml", "--swanlab-mode", "offline"], {"strict": True},
     "--swanlab-mode was given on the command line but did not reach the config (`strict: "
     "true` in the YAML keeps out command-line keys that the YAML does not have). Put "
     "`swanlab_mode: ...` into the YAML instead."),
    ([AXOLOTL, "train", "c.yaml", "--swanlab_projct=x"], {"swanlab_projct": None},
     "--swanlab_projct on the command line is not a SwanLab option. Did you mean "
     "--swanlab_project?"),
    ([AXOLOTL, "train", "c.yaml", "--no-use-swanlab"], {},
     "--no-use-swanlab is not an option; write --use_swanlab=false instead."),
])
def test_an_option_that_did_not_reach_the_config(argv, cfg, expected):
    problem = command_line.stray(argv, cfg)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None and problem[1].startswith(expected), problem


def test_the_command_line_beats_the_yaml_before_validation(monkeypatch):
    monkeypatch.setenv(command_line.ENV, json.dumps(
        {"swanlab_project": "from-cli", "swanlab_mode": "offline", "swanlab_api_key": CANARY}))
    monkeypatch.setattr(sys, "argv", [AXOLOTL, "train", "c.yaml", "--swanlab_project=from-cli",
                                      "--swanlab_mode=offline", f"--swanlab_api_key={CANARY}"])
    cfg = {"swanlab_project": "from-yaml", "swanlab_experiment_name": "yaml-name"}
    record = flow.before_validate(cfg)
    chosen = record.result.settings
    assert (chosen.swanlab_project, chosen.swanlab_mode) == ("from-cli", "offline")
    assert chosen.swanlab_experiment_name == "yaml-name" and record.result.auto_enabled
    assert chosen.secret("swanlab_api_key") == CANARY
    assert CANARY not in " ".join(sys.argv)


def test_a_bad_value_on_the_command_line_gets_the_yaml_message(monkeypatch):
    monkeypatch.setenv(command_line.ENV, json.dumps({"swanlab_project": "x",
                                                     "swanlab_mode": "everywhere"}))
    with pytest.raises(SwanLabConfigError, match=r"^Invalid swanlab_mode: 'everywhere'\."):
        flow.before_validate({})


def test_a_lost_option_stops_before_validation(monkeypatch):
    monkeypatch.setattr(sys, "argv", [AXOLOTL, "train", "c.yaml", "--swanlab_project=x"])
    with pytest.raises(SwanLabConfigError, match="did not reach the config") as caught:
        flow.before_validate({"base_model": "m"})
    assert caught.value.key == "swanlab_project"


# -- `axolotl train` of the fake Axolotl, in subprocesses ---------------------------------------


def fake_axolotl_train(tmp_path, args: list[str], axolotl_root=None):
    """`axolotl train cfg.yaml ARGS` of the fake Axolotl 0.19.0 with the package patched in
    every interpreter (sitecustomize.py), as the start-up file does after `pip install`."""
    boot = tmp_path / "boot"
    boot.mkdir(exist_ok=True)
    (boot / "sitecustomize.py").write_text("import swanlab_autopatch\nswanlab_autopatch.patch()\n")
    script = boot / "axolotl"  # argv[0] as the console script has it
    script.write_text("from axolotl.cli.main import cli\ncli()\n")
    config = tmp_path / "cfg.yaml"
    config.write_text("base_model: tiny\nlearning_rate: 0.001\n")
    env = fake_env(tmp_path, "0.19.0", axolotl_root=axolotl_root)
    env["PYTHONPATH"] = os.pathsep.join([str(boot), env["PYTHONPATH"]])
    return run_interpreter([str(script), "train", str(config), *args], env, cwd=tmp_path)


def printed_configs(stdout: str) -> list[dict]:
    """The validated configs the fake load_cfg printed (`config:` and its JSON)."""
    configs, decoder = [], json.JSONDecoder()
    for part in stdout.split("config:\n")[1:]:
        configs.append(decoder.raw_decode(part)[0])
    return configs


@pytest.mark.parametrize("launcher", ["python", "accelerate"])
def test_fake_axolotl_train_takes_them_on_each_launcher(tmp_path, launcher):
    proc = fake_axolotl_train(tmp_path, ["--launcher", launcher, "--swanlab_project=cli-proj",
                                         "--swanlab-mode", "offline", "--learning-rate=0.01",
                                         f"--swanlab_api_key={CANARY}"])
    assert proc.returncode == 0, proc.stderr
    [cfg] = printed_configs(proc.stdout)
    assert cfg["swanlab_project"] == "cli-proj" and cfg["swanlab_mode"] == "offline"
    assert cfg["use_swanlab"] is True and "swanlab_api_key" not in cfg
    assert CANARY not in proc.stdout + proc.stderr


def test_fake_axolotl_help_lists_both_spellings(tmp_path):
    proc = fake_axolotl_train(tmp_path, ["--help"])
    assert proc.returncode == 0, proc.stderr
    assert "--swanlab-project, --swanlab_project" in proc.stdout
    assert "--use-swanlab, --use_swanlab" in proc.stdout


def test_an_axolotl_without_the_target_stops_with_one_clear_error(tmp_path):
    root = copy_fake_axolotl(tmp_path / "renamed")
    args = root / "axolotl" / "cli" / "utils" / "args.py"
    args.write_text(args.read_text().replace("def add_options_from_config_options(",
                                             "def add_options_from_config_options_v2("))
    for name in ("__init__.py", "../main.py"):
        path = args.parent / name
        path.write_text(path.read_text().replace("add_options_from_config_options",
                                                 "add_options_from_config_options_v2"))
    proc = fake_axolotl_train(tmp_path, ["--launcher", "python", "--swanlab_project=x"],
                              axolotl_root=root)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert printed_configs(proc.stdout) == []  # stopped before the config was loaded
    errors = [line for line in proc.stderr.splitlines() if "ERROR" in line]
    assert errors == ["[swanlab-autopatch] ERROR: --swanlab_project was given on the command "
                      "line but did not reach the config (Axolotl 0.19.0 did not pass it on). "
                      "Put `swanlab_project: ...` into the YAML instead."], proc.stderr
    assert "add_options_from_config_options was not found" in proc.stderr
