"""What happens to the swanlab_* keys between the YAML and the Trainer, on the fake Axolotl.

Every scenario runs in a process of its own, against the fake Axolotl of tests/fake_axolotl
with the module layout of a given release (0.19.0: axolotl.core.builders.base; 0.9.2:
axolotl.core.trainer_builder; 0.12.2: before Axolotl had its own SwanLab plugin). The startup
file is not installed there, so each process calls swanlab_autopatch.patch() first.

To stay fast, the `load_cfg` scenarios of one layout share a parent process that patches and
imports once, then forks one child per scenario (the child has the fresh state of a process
that never loaded a config: no record, no message said, no plugin registered). The
`python -m axolotl.cli.train cfg.yaml` scenarios are real separate interpreters that patch from
a sitecustomize.py. Only the scenarios that the selected tests use are run, in parallel, once.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.version import Version

from swanlab_autopatch.config import checks, credentials
from tests.support.fake import FAKE_AXOLOTL, fake_env

PREFIX = "[swanlab-autopatch]"
CANARY = "sk-CANARY-0c9d41"
LARK_SECRET = "lark-CANARY-77aa"
WEBHOOK = "https://open.feishu.cn/open-apis/bot/v2/hook/hook-CANARY-3b1f"
SECRETS = (CANARY, LARK_SECRET, "hook-CANARY-3b1f")

MISSING_PROJECT = "SwanLab enabled but 'swanlab_project' is not set."
INVALID_MODE = ("Invalid swanlab_mode: 'invalid-mode'. Valid options: cloud, local, offline, "
                "disabled")
EMPTY_PROJECT = "swanlab_project cannot be an empty string."
NO_KEY = "SwanLab cloud mode enabled but no API key found"
AUTO = "SwanLab tracking enabled because swanlab_project is set"
DISTRIBUTED = [
    "INFO: Distributed training detected (world_size=2)",
    "INFO: SwanLab mode: offline",
    "INFO: Only rank 0 will initialize SwanLab",
    "INFO: Other ranks will skip SwanLab to avoid conflicts",
]
UPSTREAM = "axolotl.integrations.swanlab.SwanLabPlugin"
OTHER_PLUGIN = "axolotl.integrations.cut_cross_entropy.CutCrossEntropyPlugin"
NETRC = "machine {host}\n\tlogin https://swanlab.cn\n\tpassword netrc-key-123456\n"

# One parent per layout: patch, import, then fork one child per scenario (load_cfg, then the
# trainer builder of the layout when asked, then a JSON summary on stdout).
ZYGOTE = r"""
import importlib, json, os, sys, traceback
import swanlab_autopatch
assert swanlab_autopatch.patch() is True
from axolotl.cli.config import load_cfg
from swanlab_autopatch.errors import SwanLabConfigError
jobs = json.loads(os.environ["T_JOBS"])
if any(job["preload"] for job in jobs):
    import swanlab_autopatch.tracking.callback  # the real transformers, imported once for all children
    for job in jobs:
        importlib.import_module(job["builder_module"])
assert "swanlab" not in sys.modules
sys.stdout.flush(); sys.stderr.flush()

def child(job):
    for fd, path in ((1, job["stdout"]), (2, job["stderr"])):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
    os.chdir(job["cwd"])
    os.environ.update(job["env"])
    out = {}
    try:
        for _ in range(job["loads"]):
            cfg = load_cfg(job["config"], **job["overrides"])
    except SwanLabConfigError as error:
        out["error"], out["error_key"] = str(error), error.key
    else:
        out["cfg"] = dict(cfg)
        if job["build"]:
            layout = importlib.import_module(job["builder_module"])
            callbacks = layout.HFCausalTrainerBuilder(cfg).get_callbacks()
            out["callbacks"] = [c if isinstance(c, str) else type(c).__name__ for c in callbacks]
    from axolotl.integrations.base import PluginManager
    out["plugins_loaded"] = sorted(PluginManager.get_instance().plugins)
    out["swanlab_imported"] = "swanlab" in sys.modules
    out["torch_imported"] = "torch" in sys.modules
    sys.stdout.write("RESULT:" + json.dumps(out, default=str) + "\n")

pids = {}
for job in jobs:
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            child(job)
        except BaseException:
            traceback.print_exc()
            code = 3
        finally:
            sys.stdout.flush(); sys.stderr.flush()
            os._exit(code)
    pids[pid] = job["name"]
codes = {}
for pid, name in pids.items():
    codes[name] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
print("CODES:" + json.dumps(codes))
"""

SITECUSTOMIZE = "import swanlab_autopatch\nswanlab_autopatch.patch()\n"

UPSTREAM_PLUGIN_MODULE = '''\
"""A stand-in for Axolotl's own SwanLab plugin (0.13.1 and later)."""


class SwanLabPlugin:
    def __init__(self):
        print("upstream SwanLabPlugin registered")
'''


@dataclass
class Scenario:
    yaml: str
    version: str = "0.19.0"
    env: dict = field(default_factory=dict)
    overrides: dict = field(default_factory=dict)
    build: bool = False
    kind: str = "load"  # "load": the driver; "train": python -m axolotl.cli.train cfg.yaml
    upstream: bool = False  # a fake Axolotl copy that has axolotl.integrations.swanlab
    files: dict = field(default_factory=dict)  # extra files, relative to the scenario folder
    loads: int = 1


def _project(extra: str = "") -> str:
    return "swanlab_project: my-project\n" + textwrap.dedent(extra)


_BOOM = "learning_rate: boom\n"  # the fake Axolotl's own validation fails on this
INVALID = {
    "no_project": ("use_swanlab: true\n", "swanlab_project", MISSING_PROJECT),
    "bad_mode": ("use_swanlab: true\nswanlab_project: my-project\nswanlab_mode: invalid-mode\n",
                 "swanlab_mode", INVALID_MODE),
    "empty_project": ('use_swanlab: true\nswanlab_project: ""\n', "swanlab_project",
                      EMPTY_PROJECT),
    "blank_project": ('swanlab_project: "   "\n', "swanlab_project", EMPTY_PROJECT),
    "list_project": ("swanlab_project: [a, b]\n", "swanlab_project",
                     "swanlab_project must be text, got a list"),
    "string_use_swanlab": ("use_swanlab: 'yes'\nswanlab_project: p\n", "use_swanlab",
                           "use_swanlab must be true or false, got a string"),
    "project_with_space": ("swanlab_project: my project\n", "swanlab_project",
                           "swanlab_project 'my project' is not a valid SwanLab project name"),
}

SCENARIOS: dict[str, Scenario] = {
    # -- the keys survive validation, normalised ----------------------------------------------
    "only_project_new": Scenario(_project(), "0.19.0", build=True),
    "only_project_old": Scenario(_project(), "0.9.2", build=True),
    "no_swanlab_keys": Scenario("base_model: tiny\nuse_wandb: true\n", build=True),
    "normalised": Scenario(
        "swanlab_project: 2024\nswanlab_mode: ONLINE\nswanlab_experiment_name: 42\n"
        "swanlab_description: '   '\nswanlab_workspace: ''\nswanlab_completion_log_interval: 5\n"
        "swanlab_log_completions: false\n"),
    "cli_override": Scenario("base_model: tiny\n",
                             overrides={"swanlab_project": "from-cli", "swanlab_mode": "OFFLINE"}),
    "cli_override_wins": Scenario("swanlab_project: from-yaml\nswanlab_mode: offline\n",
                                  overrides={"swanlab_project": "from-cli"}),
    "twice": Scenario(_project("swanlab_mode: offline\n"), loads=2),
    # -- other trackers ---------------------------------------------------------------------
    "wandb": Scenario(_project("use_wandb: true\nwandb_project: my-project\n"
                               "swanlab_mode: offline\n")),
    "wandb_project_only": Scenario(_project("wandb_project: w\nswanlab_mode: offline\n")),
    "three": Scenario(_project("use_wandb: true\nwandb_project: w\nuse_mlflow: true\n"
                               "mlflow_tracking_uri: http://localhost:5000\n"
                               "swanlab_mode: offline\n")),
    "three_derived": Scenario(_project("mlflow_experiment_name: e\ncomet_project_name: c\n"
                                       "swanlab_mode: offline\n")),
    "wandb_off": Scenario(_project("use_wandb: false\nswanlab_mode: offline\n")),
    # -- secrets ----------------------------------------------------------------------------
    "secrets": Scenario(_project(f"swanlab_api_key: {CANARY}\nswanlab_lark_secret: "
                                 f"{LARK_SECRET}\nswanlab_lark_webhook_url: {WEBHOOK}\n"),
                        build=True),
    "secrets_invalid": Scenario(f"swanlab_api_key: {CANARY}\nswanlab_project: p\n"
                                "swanlab_mode: bogus\n", kind="train",
                                env={"SWANLAB_AUTOPATCH_DEBUG": "1"}),
    # -- the API key check (no network) -----------------------------------------------------
    "no_key": Scenario(_project()),
    "key_env": Scenario(_project(), env={"SWANLAB_API_KEY": "env-key-123456"}),
    "netrc_root": Scenario(_project(), files={
        "home/.swanlab/.netrc": NETRC.format(host="https://api.swanlab.cn")}),
    "netrc_cwd": Scenario(_project(), files={
        "work/.swanlab/.netrc": NETRC.format(host="https://api.swanlab.cn")}),
    "netrc_other_host": Scenario(_project("swanlab_api_host: https://swan.internal:8000\n"),
                                 files={"home/.swanlab/.netrc":
                                        NETRC.format(host="https://api.swanlab.cn")}),
    "netrc_private_host": Scenario(_project("swanlab_api_host: swan.internal:8000/api\n"),
                                   files={"home/.swanlab/.netrc":
                                          NETRC.format(host="https://swan.internal:8000")}),
    "local_mode_no_key": Scenario(_project("swanlab_mode: local\n")),
    # -- ranks ------------------------------------------------------------------------------
    "rank1": Scenario(_project("wandb_project: w\nuse_mlflow: true\nswanlab_projet: typo\n"
                               "swanlab_log_model: true\n"),
                      env={"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}, build=True),
    "rank1_debug": Scenario(_project(), env={"RANK": "1", "WORLD_SIZE": "2",
                                             "SWANLAB_AUTOPATCH_DEBUG": "1"}),
    "rank_before_local_rank": Scenario(_project("wandb_project: w\n"),
                                       env={"RANK": "1", "LOCAL_RANK": "0", "WORLD_SIZE": "2"}),
    "slurm_rank1": Scenario(_project("wandb_project: w\n"),
                            env={"SLURM_PROCID": "1", "SLURM_NTASKS": "2"}),
    "rank0": Scenario(_project("swanlab_mode: offline\n"), env={"RANK": "0", "WORLD_SIZE": "2",
                                                                "LOCAL_RANK": "0"}, build=True),
    # -- Axolotl's own plugin ---------------------------------------------------------------
    "upstream_available": Scenario(
        f"plugins:\n  - {UPSTREAM}\nuse_swanlab: true\nswanlab_project: my-project\n"
        f"swanlab_api_key: {CANARY}\n", "0.19.0", upstream=True, build=True),
    "upstream_missing": Scenario(
        f"plugins:\n  - {UPSTREAM}\n  - {OTHER_PLUGIN}\nuse_swanlab: true\n"
        "swanlab_project: my-project\nswanlab_mode: offline\n", "0.12.2", build=True),
    "upstream_missing_old_layout": Scenario(
        f"plugins: [{UPSTREAM}]\nswanlab_project: my-project\nswanlab_mode: offline\n",
        "0.9.2", build=True),
    "upstream_missing_short_name": Scenario(
        "plugins: [swanlab.SwanLabPlugin]\nswanlab_project: p\nswanlab_mode: offline\n",
        "0.12.2"),
    "upstream_missing_colon_name": Scenario(
        "plugins: ['axolotl.integrations.swanlab:SwanLabPlugin']\nswanlab_project: p\n"
        "swanlab_mode: offline\n", "0.12.2"),
    "upstream_missing_but_off": Scenario(
        f"plugins: [{UPSTREAM}]\nuse_swanlab: false\nswanlab_project: p\n", "0.12.2",
        build=True),
    # -- off, disabled, log_model, typos, environment ---------------------------------------
    "use_swanlab_false": Scenario("use_swanlab: false\nswanlab_project: my-project\n"
                                  "swanlab_mode: cloud\nwandb_project: w\n", build=True),
    "disabled_mode": Scenario(_project("swanlab_mode: disabled\n"), build=True),
    "log_model": Scenario(_project("swanlab_log_model: true\nswanlab_mode: offline\n")),
    "typo": Scenario(_project("swanlab_projet: other\nswanlab_mode: offline\n")),
    "typo_alone": Scenario("swanlab_mdoe: offline\n", build=True),
    "env_mode": Scenario(_project(), env={"SWANLAB_MODE": "offline",
                                          "SWANLAB_WORKSPACE": "team"}),
    "env_bad_mode": Scenario(_project(), env={"SWANLAB_MODE": "sometimes"}, kind="train"),
    "axolotl_error_control": Scenario(_project("swanlab_mode: offline\n") + _BOOM, kind="train"),
}
TRAIN_INVALID = ("no_project", "bad_mode", "empty_project")
for _name, (_yaml, _key, _message) in INVALID.items():
    SCENARIOS[f"invalid_load_{_name}"] = Scenario(_yaml + _BOOM, "0.19.0")
    if _name in TRAIN_INVALID:
        SCENARIOS[f"invalid_{_name}"] = Scenario(_yaml + _BOOM, "0.19.0", kind="train")
SCENARIOS["invalid_load_cli_override"] = Scenario(_project(),
                                                  overrides={"swanlab_mode": "bogus"})
SCENARIOS["invalid_load_no_project_old"] = Scenario(INVALID["no_project"][0] + _BOOM, "0.9.2")
SCENARIOS["invalid_train_old_layout"] = Scenario(INVALID["empty_project"][0] + _BOOM, "0.9.2",
                                                 kind="train")


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str
    result: dict

    @property
    def lines(self) -> list[str]:
        """Our stderr lines, without the prefix."""
        return [line[len(PREFIX) + 1:] for line in self.stderr.splitlines()
                if line.startswith(PREFIX)]

    def at(self, level: str) -> list[str]:
        return [line[len(level) + 2:] for line in self.lines if line.startswith(level + ":")]

    @property
    def cfg(self) -> dict:
        assert "cfg" in self.result, (self.result, self.stderr)
        return self.result["cfg"]


def _upstream_root(base: Path) -> Path:
    """A copy of the fake Axolotl that also has axolotl.integrations.swanlab."""
    root = base / "fake-axolotl-with-plugin"
    if not root.exists():
        shutil.copytree(FAKE_AXOLOTL, root, ignore=shutil.ignore_patterns("__pycache__"))
        plugin = root / "axolotl" / "integrations" / "swanlab"
        plugin.mkdir()
        (plugin / "__init__.py").write_text(UPSTREAM_PLUGIN_MODULE)
    return root


def _prepare(name: str, scenario: Scenario, base: Path) -> tuple[Path, Path, dict]:
    """The scenario's folder (work = cwd, home = HOME), its config file and environment."""
    folder = base / name
    work, home = folder / "work", folder / "home"
    for path in (work, home / ".swanlab"):
        path.mkdir(parents=True)
    for rel, text in scenario.files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    config = work / "cfg.yaml"
    config.write_text(scenario.yaml)
    env = {"HOME": str(home), "SWANLAB_ROOT": str(home / ".swanlab"), **scenario.env}
    return folder, config, env


def _base_env(base: Path, scenario: Scenario, extra: dict) -> dict:
    env = fake_env(base / "meta", scenario.version, extra=extra)
    if scenario.upstream:
        paths = env["PYTHONPATH"].split(os.pathsep)
        paths[paths.index(str(FAKE_AXOLOTL))] = str(_upstream_root(base))
        env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def _result(stdout: str) -> dict:
    for line in stdout.splitlines():
        if line.startswith("RESULT:"):
            return json.loads(line[len("RESULT:"):])
    return {}


def _run_train(name: str, scenario: Scenario, base: Path) -> dict[str, Outcome]:
    """`python -m axolotl.cli.train cfg.yaml` in a fresh interpreter."""
    folder, config, extra = _prepare(name, scenario, base)
    env = _base_env(base, scenario, extra)
    boot = folder / "boot"
    boot.mkdir()
    (boot / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env["PYTHONPATH"] = os.pathsep.join([str(boot), env["PYTHONPATH"]])
    proc = subprocess.run([sys.executable, "-m", "axolotl.cli.train", str(config)], env=env,
                          cwd=folder / "work", capture_output=True, text=True, timeout=180)
    return {name: Outcome(proc.returncode, proc.stdout, proc.stderr, _result(proc.stdout))}


def _run_group(names: list[str], base: Path) -> dict[str, Outcome]:
    """The load_cfg scenarios of one layout: one parent, one forked child each."""
    first = SCENARIOS[names[0]]
    jobs = []
    for name in names:
        scenario = SCENARIOS[name]
        folder, config, env = _prepare(name, scenario, base)
        env.pop("SWANLAB_AUTOPATCH_DEBUG", None)  # read by the parent (group key)
        jobs.append({
            "name": name, "config": str(config), "overrides": scenario.overrides,
            "build": scenario.build, "loads": scenario.loads, "env": env,
            # import transformers once in the parent where a callback is expected
            "preload": scenario.build and not scenario.upstream,
            "cwd": str(folder / "work"), "stdout": str(folder / "stdout"),
            "stderr": str(folder / "stderr"),
            "builder_module": ("axolotl.core.builders.base"
                               if Version(scenario.version) >= Version("0.10")
                               else "axolotl.core.trainer_builder")})
    env = _base_env(base, first, {"T_JOBS": json.dumps(jobs),
                                  **{k: v for k, v in first.env.items()
                                     if k == "SWANLAB_AUTOPATCH_DEBUG"}})
    proc = subprocess.run([sys.executable, "-c", ZYGOTE], env=env, capture_output=True,
                          text=True, timeout=180)
    codes = {}
    for line in proc.stdout.splitlines():
        if line.startswith("CODES:"):
            codes = json.loads(line[len("CODES:"):])
    assert proc.returncode == 0 and len(codes) == len(names), (proc.stdout, proc.stderr)
    outcomes = {}
    for job in jobs:
        stdout = Path(job["stdout"]).read_text()
        stderr = Path(job["stderr"]).read_text()
        outcome = Outcome(codes[job["name"]], stdout, stderr, _result(stdout))
        assert outcome.returncode == 0 and outcome.result, (job["name"], stdout, stderr)
        outcomes[job["name"]] = outcome
    return outcomes


def _group_key(scenario: Scenario) -> tuple:
    return (scenario.version, scenario.upstream,
            scenario.env.get("SWANLAB_AUTOPATCH_DEBUG", ""))


@pytest.fixture(scope="module")
def outcomes(request, tmp_path_factory) -> dict[str, Outcome]:
    """Run every scenario the selected tests of this module use, in parallel."""
    wanted = []
    for item in request.session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if item.module is request.module and params.get("scenario") in SCENARIOS:
            if params["scenario"] not in wanted:
                wanted.append(params["scenario"])
    base = tmp_path_factory.mktemp("flow")
    _upstream_root(base)
    groups: dict[tuple, list[str]] = {}
    tasks = []
    for name in wanted:
        if SCENARIOS[name].kind == "train":
            tasks.append((_run_train, name, SCENARIOS[name], base))
        else:
            groups.setdefault(_group_key(SCENARIOS[name]), []).append(name)
    tasks += [(_run_group, names, base) for names in groups.values()]
    found: dict[str, Outcome] = {}
    with ThreadPoolExecutor(max_workers=max(4, os.cpu_count() or 2)) as pool:
        for result in pool.map(lambda task: task[0](*task[1:]), tasks):
            found.update(result)
    return found


@pytest.fixture
def out(outcomes, scenario) -> Outcome:
    return outcomes[scenario]


def _only(scenarios):
    return pytest.mark.parametrize("scenario", scenarios)


# -- the keys survive Axolotl's validation ---------------------------------------------------

DEFAULT_KEYS = {"use_swanlab": True, "swanlab_project": "my-project", "swanlab_mode": "cloud",
                "swanlab_log_model": "false", "swanlab_log_completions": True,
                "swanlab_completion_log_interval": 100, "swanlab_completion_max_buffer": 128,
                "swanlab_notify_language": "en", "swanlab_alerts": True,
                "swanlab_alert_loss_spike": 3.0, "swanlab_alert_stall_minutes": 30.0,
                "swanlab_watch": "false"}


@_only(["only_project_new", "only_project_old"])
def test_only_a_project_survives_validation_with_defaults(out):
    swanlab = {k: v for k, v in out.cfg.items() if "swanlab" in k}
    assert swanlab == DEFAULT_KEYS
    assert '"swanlab_project": "my-project"' in out.stdout  # Axolotl prints the validated cfg
    assert out.at("INFO") == [AUTO + " (use_swanlab: true is implied)."]
    assert [w for w in out.at("WARNING") if w.startswith(NO_KEY)] == out.at("WARNING")
    assert len(out.at("WARNING")) == 1
    assert out.result["callbacks"].count("SwanLabAutopatchCallback") == 1
    assert "causal-extra" in out.result["callbacks"]  # the original builder result is kept
    assert not out.result["swanlab_imported"] and not out.result["torch_imported"]


@_only(["no_swanlab_keys"])
def test_a_config_without_swanlab_keys_is_untouched(out):
    assert out.lines == []
    assert not any("swanlab" in k for k in out.cfg)
    assert out.result["callbacks"] == ["causal-extra"]


@_only(["normalised"])
def test_values_are_normalised(out):
    swanlab = {k: v for k, v in out.cfg.items() if "swanlab" in k}
    assert swanlab == {**DEFAULT_KEYS, "swanlab_project": "2024", "swanlab_experiment_name": "42",
                       "swanlab_completion_log_interval": 5, "swanlab_log_completions": False}


@_only(["cli_override"])
def test_cli_overrides_survive(out):
    assert out.cfg["swanlab_project"] == "from-cli"
    assert out.cfg["swanlab_mode"] == "offline"
    assert out.cfg["use_swanlab"] is True
    assert out.at("INFO") == [AUTO + " (use_swanlab: true is implied)."]


@_only(["cli_override_wins"])
def test_cli_override_beats_the_yaml(out):
    assert out.cfg["swanlab_project"] == "from-cli"


@_only(["twice"])
def test_messages_once_per_load(out):
    assert out.at("INFO") == [AUTO + " (use_swanlab: true is implied)."] * 2


# -- invalid values stop the run before anything else ------------------------------------------


@pytest.mark.parametrize("scenario, key, message", [
    (f"invalid_{name}", INVALID[name][1], INVALID[name][2]) for name in TRAIN_INVALID
] + [("invalid_train_old_layout", "swanlab_project", EMPTY_PROJECT)])
def test_invalid_value_stops_train_with_one_line(out, key, message):
    assert out.returncode != 0
    ours = [line for line in out.stderr.splitlines() if line.startswith(f"{PREFIX} ERROR:")]
    assert len(ours) == 1, out.stderr
    assert ours[0].startswith(f"{PREFIX} ERROR: {message}"), ours[0]
    assert key in ours[0]
    assert "Traceback" not in out.stderr and "swanlab_autopatch" not in out.stderr, out.stderr
    # before Axolotl's own validation (learning_rate: boom) and before plugins... the config
    # was never printed, and the plugin entry caused no load failure
    assert "axolotl's own validation error" not in out.stderr
    assert "config:" not in out.stdout
    assert out.stderr.strip() == ours[0], out.stderr


@pytest.mark.parametrize("scenario, key, message", [
    (f"invalid_load_{name}", key, message) for name, (_y, key, message) in INVALID.items()
] + [("invalid_load_no_project_old", "swanlab_project", MISSING_PROJECT),
      ("invalid_load_cli_override", "swanlab_mode",
       "Invalid swanlab_mode: 'bogus'. Valid options")])
def test_invalid_value_raises_swanlab_config_error(out, key, message):
    assert out.result["error_key"] == key
    assert out.result["error"].startswith(message)
    assert "config:" not in out.stdout  # load_cfg never got as far as printing the cfg
    assert "axolotl's own validation error" not in out.stderr


@_only(["axolotl_error_control"])
def test_axolotl_errors_keep_their_traceback(out):
    """Control for the tests above: without a swanlab error, Axolotl's own error surfaces,
    with its traceback; our hook only shortens SwanLabConfigError."""
    assert out.returncode != 0
    assert "Traceback" in out.stderr and "axolotl's own validation error" in out.stderr
    assert f"{PREFIX} ERROR" not in out.stderr


@_only(["env_bad_mode"])
def test_bad_environment_value_names_the_variable(out):
    assert out.returncode != 0
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith(f"{PREFIX} ERROR: Invalid swanlab_mode: 'sometimes'. Valid options: "
                           "cloud, local, offline, disabled")
    assert "SWANLAB_MODE" in line


# -- other trackers ------------------------------------------------------------------------------


@_only(["wandb", "wandb_project_only"])
def test_two_loggers_warn(out):
    (warning,) = out.at("WARNING")
    assert warning.startswith("Multiple logging tools enabled: SwanLab, WandB")
    assert "Expected overhead: ~3.0% per training step." in warning
    assert out.at("ERROR") == []
    assert "cfg" in out.result  # training goes on


@_only(["three", "three_derived"])
def test_three_loggers_are_an_error_level_line(out):
    assert out.at("WARNING") == []
    (error,) = out.at("ERROR")
    assert error.startswith("3 logging tools enabled simultaneously!")
    assert "~4.5%" in error
    assert "STRONGLY RECOMMEND: Disable all but ONE logging tool" in error
    names = "SwanLab, WandB, MLflow" if out.cfg.get("use_wandb") else "SwanLab, MLflow, Comet"
    assert names in error
    assert "cfg" in out.result and out.returncode == 0  # training goes on


@_only(["wandb_off"])
def test_a_disabled_tracker_does_not_count(out):
    assert out.at("WARNING") == [] and out.at("ERROR") == []


@pytest.mark.parametrize("cfg, names", [
    ({}, ["SwanLab"]),
    ({"use_wandb": True}, ["SwanLab", "WandB"]),
    ({"wandb_project": "w"}, ["SwanLab", "WandB"]),
    ({"use_wandb": False, "wandb_project": None}, ["SwanLab"]),
    ({"use_mlflow": True}, ["SwanLab", "MLflow"]),
    ({"mlflow_experiment_name": "e"}, ["SwanLab", "MLflow"]),
    ({"use_comet": True}, ["SwanLab", "Comet"]),
    ({"comet_project_name": "c"}, ["SwanLab", "Comet"]),
    ({"use_tensorboard": True}, ["SwanLab", "TensorBoard"]),
    ({"use_trackio": True}, ["SwanLab", "Trackio"]),
    ({"trackio_project_name": "t"}, ["SwanLab", "Trackio"]),
    ({"use_wandb": True, "use_mlflow": True, "use_comet": True, "use_tensorboard": True},
     ["SwanLab", "WandB", "MLflow", "Comet", "TensorBoard"]),
])
def test_active_loggers(cfg, names):
    assert checks.active_loggers(cfg, True) == names


@pytest.mark.parametrize("count, level, overhead", [
    (1, None, None), (2, "warning", "~3.0%"), (3, "error", "~4.5%"), (4, "error", "~6.0%"),
    (6, "error", "~9.0%"),
])
def test_overhead_messages(count, level, overhead):
    names = ["SwanLab", "WandB", "MLflow", "Comet", "TensorBoard", "Trackio"][:count]
    messages = checks.multi_logger_messages(names)
    if level is None:
        assert messages == []
        return
    ((got_level, message),) = messages
    assert got_level == level and f"Expected overhead: {overhead} per training step." in message
    assert "\n" not in message
    if level == "error":
        assert message.startswith(f"{count} logging tools enabled simultaneously!")


# -- secrets -----------------------------------------------------------------------------------


@_only(["secrets", "secrets_invalid", "upstream_available"])
def test_secrets_appear_nowhere(out):
    for secret in SECRETS:
        assert secret not in out.stdout and secret not in out.stderr
        assert secret not in json.dumps(out.result)
    if out.result.get("cfg") is not None:
        assert not {"swanlab_api_key", "swanlab_lark_secret",
                    "swanlab_lark_webhook_url"} & set(out.cfg)


@_only(["secrets"])
def test_a_key_in_the_yaml_counts_as_a_key(out):
    assert not any(w.startswith(NO_KEY) for w in out.at("WARNING"))
    assert out.result["callbacks"].count("SwanLabAutopatchCallback") == 1


@_only(["secrets_invalid"])
def test_rejected_config_with_a_key_shows_no_key_even_in_debug(out):
    assert out.returncode != 0
    assert out.at("DEBUG") and out.at("ERROR")  # debug output on, and the error line
    assert out.at("ERROR")[0].startswith("Invalid swanlab_mode: 'bogus'")


# -- API key check ------------------------------------------------------------------------------


@_only(["no_key", "netrc_other_host"])
def test_cloud_mode_without_a_key_warns_with_four_ways_out(out):
    (warning,) = [w for w in out.at("WARNING") if w.startswith(NO_KEY)]
    for way in ("export SWANLAB_API_KEY=", "swanlab_api_key: <key>", "swanlab login",
                "swanlab_mode: local"):
        assert way in warning, way
    assert "stays offline in ./swanlog" in warning and len(warning) <= 200, warning
    assert out.returncode == 0


@_only(["key_env", "netrc_root", "netrc_cwd", "netrc_private_host", "local_mode_no_key"])
def test_no_warning_with_a_key_or_outside_cloud_mode(out):
    assert not any(w.startswith(NO_KEY) for w in out.at("WARNING")), out.stderr
    assert "netrc-key-123456" not in out.stderr + out.stdout


@pytest.mark.parametrize("machine, api_host, found", [
    ("https://api.swanlab.cn", None, True),
    ("https://api.swanlab.cn/api", None, True),  # legacy entries carry /api
    ("api.swanlab.cn", None, True),
    ("https://api.swanlab.cn", "https://swan.internal", False),
    ("https://swan.internal", "swan.internal/api", True),
    ("http://swan.internal:8000", "http://swan.internal:8000", True),
    ("http://swan.internal:8000", "https://swan.internal:8000", False),
])
def test_saved_login_must_match_the_api_host(tmp_path, monkeypatch, machine, api_host, found):
    from swanlab_autopatch.config.settings import parse

    monkeypatch.chdir(tmp_path)
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / ".netrc").write_text(NETRC.format(host=machine))
    cfg = {"swanlab_project": "p", **({"swanlab_api_host": api_host} if api_host else {})}
    settings = parse(cfg, env={}).settings
    key, source = credentials.find_api_key(settings, env={"SWANLAB_ROOT": str(tmp_path / "root")})
    assert (key == "netrc-key-123456") is found
    assert (key is None) is (not found) and ("netrc-key" not in source)


def test_key_lookup_order():
    from swanlab_autopatch.config.settings import parse

    settings = parse({"swanlab_project": "p", "swanlab_api_key": "cfg-key"}, env={}).settings
    assert credentials.find_api_key(settings, env={"SWANLAB_API_KEY": "env-key"}) == (
        "cfg-key", "swanlab_api_key in the config")
    settings = parse({"swanlab_project": "p"}, env={}).settings
    assert credentials.find_api_key(settings, env={"SWANLAB_API_KEY": "'env-key'",
                                              "SWANLAB_ROOT": "/nonexistent"}) == (
        "env-key", "the SWANLAB_API_KEY environment variable")


# -- ranks --------------------------------------------------------------------------------------


@_only(["rank1", "rank_before_local_rank", "slurm_rank1"])
def test_other_ranks_print_nothing(out):
    assert out.lines == [], out.stderr
    assert PREFIX not in out.stderr
    assert out.cfg["swanlab_project"] == "my-project"  # the keys still survive on every rank
    if "callbacks" in out.result:
        assert "SwanLabAutopatchCallback" not in out.result["callbacks"]
    assert not out.result["swanlab_imported"] and not out.result["torch_imported"]


@_only(["rank1_debug"])
def test_other_ranks_only_debug(out):
    assert out.lines and all(line.startswith("DEBUG:") for line in out.lines), out.lines
    assert any("rank 1 of 2" in line for line in out.lines)


@_only(["rank0"])
def test_rank_zero_prints_the_distributed_lines_once(out):
    infos = [f"INFO: {line}" for line in out.at("INFO")]
    assert [line for line in infos if line in DISTRIBUTED] == DISTRIBUTED
    assert out.lines == [f"INFO: {AUTO} (use_swanlab: true is implied)."] + DISTRIBUTED
    assert out.result["callbacks"].count("SwanLabAutopatchCallback") == 1


# -- Axolotl's own plugin ----------------------------------------------------------------------


@_only(["upstream_available"])
def test_stand_down_when_axolotl_has_its_own_plugin(out):
    assert out.lines == ["INFO: Axolotl's own SwanLab plugin is listed in `plugins:`; "
                         "swanlab-autopatch stands down for this run (no second run, no second "
                         "callback)."]
    assert "upstream SwanLabPlugin registered" in out.stdout
    assert out.result["plugins_loaded"] == [UPSTREAM]
    assert "SwanLabAutopatchCallback" not in out.result["callbacks"]


@_only(["upstream_missing", "upstream_missing_old_layout", "upstream_missing_short_name",
        "upstream_missing_colon_name"])
def test_named_but_missing_plugin_is_replaced(out):
    assert "Failed to load plugin" not in out.stdout.replace(
        f"Failed to load plugin {OTHER_PLUGIN}", "")
    assert "swanlab" not in " ".join(out.result["plugins_loaded"]).lower()
    assert not any("swanlab" in str(p).lower() for p in out.cfg.get("plugins") or [])
    (info,) = [line for line in out.at("INFO") if "no SwanLab plugin of its own" in line]
    assert "swanlab-autopatch tracks the run" in info
    if "callbacks" in out.result:
        assert out.result["callbacks"].count("SwanLabAutopatchCallback") == 1


@_only(["upstream_missing_but_off"])
def test_missing_plugin_with_use_swanlab_false(out):
    assert out.lines == [
        f"INFO: This Axolotl has no SwanLab plugin of its own: the `plugins:` entry '{UPSTREAM}' "
        "is ignored.",
        "INFO: use_swanlab is false: SwanLab tracking is off and the other swanlab_* keys "
        "(swanlab_project) are ignored."]
    assert "Failed to load plugin" not in out.stdout
    assert "SwanLabAutopatchCallback" not in out.result["callbacks"]


@_only(["upstream_missing"])
def test_other_plugins_are_left_to_axolotl(out):
    assert out.cfg["plugins"] == [OTHER_PLUGIN]
    assert f"Failed to load plugin {OTHER_PLUGIN}" in out.stdout  # Axolotl did load plugins


# -- off, disabled, log_model, typos, environment ------------------------------------------------


@_only(["use_swanlab_false"])
def test_use_swanlab_false_is_respected(out):
    assert out.lines == ["INFO: use_swanlab is false: SwanLab tracking is off and the other "
                         "swanlab_* keys (swanlab_project, swanlab_mode) are ignored."]
    assert out.cfg["use_swanlab"] is False
    assert "SwanLabAutopatchCallback" not in out.result["callbacks"]


@_only(["disabled_mode"])
def test_disabled_mode_tracks_nothing(out):
    assert out.at("INFO")[-1] == ("swanlab_mode is disabled: nothing is tracked and nothing is "
                                  "written.")
    assert out.at("WARNING") == []
    assert "SwanLabAutopatchCallback" not in out.result["callbacks"]


@_only(["log_model"])
def test_log_model_says_what_is_stored(out):
    assert any(line.startswith("swanlab_log_model: end: the final model files")
               for line in out.at("INFO"))
    assert out.cfg["swanlab_log_model"] == "end"


@_only(["typo"])
def test_typo_warns_with_the_closest_key(out):
    assert out.at("WARNING") == ["Unknown SwanLab key 'swanlab_projet' is ignored. Did you mean "
                                 "'swanlab_project'?"]
    assert out.cfg["swanlab_project"] == "my-project" and "swanlab_projet" not in out.cfg


@_only(["typo_alone"])
def test_typo_alone_warns_and_tracks_nothing(out):
    assert out.lines == ["WARNING: Unknown SwanLab key 'swanlab_mdoe' is ignored. Did you mean "
                         "'swanlab_mode'?"]
    assert "SwanLabAutopatchCallback" not in out.result["callbacks"]


@_only(["env_mode"])
def test_environment_fills_in_and_says_so(out):
    assert out.cfg["swanlab_mode"] == "offline" and out.cfg["swanlab_workspace"] == "team"
    infos = out.at("INFO")
    assert "swanlab_mode taken from the environment variable SWANLAB_MODE." in infos
    assert "swanlab_workspace taken from the environment variable SWANLAB_WORKSPACE." in infos
    assert not any(w.startswith(NO_KEY) for w in out.at("WARNING"))


# -- the state kept between wrappers -------------------------------------------------------------


def test_records_are_held_by_identity_not_id(monkeypatch):
    """A record belongs to the validated cfg object itself: another object (even one that
    reuses a freed object's id) without the same project gets nothing."""
    from swanlab_autopatch.config import flow as config_flow

    monkeypatch.setattr(config_flow, "_slot", config_flow._Slot())
    raw = {"swanlab_project": "ident", "swanlab_mode": "offline"}
    record = config_flow.before_validate(raw)
    validated = {"base_model": "m"}
    config_flow.after_validate(record, validated)
    assert config_flow.record_for(validated) is record
    stranger = {"base_model": "m"}  # equal content, no project: not this run's cfg
    assert config_flow.record_for(stranger) is None
    copy = dict(validated)  # a copy made by user code keeps the project key
    assert config_flow.record_for(copy) is record
    assert config_flow._slot.validated is validated  # kept alive, so its id cannot be reused


def test_upstream_plugin_question_is_decided_once(monkeypatch):
    from swanlab_autopatch.config import flow as config_flow

    monkeypatch.setattr(config_flow, "_slot", config_flow._Slot())
    calls = []
    monkeypatch.setattr(checks, "upstream_plugin_available", lambda: calls.append(1) or False)
    raw = {"plugins": [UPSTREAM, OTHER_PLUGIN], "swanlab_project": "p", "swanlab_mode": "offline"}
    assert config_flow.drop_unloadable_plugin(raw) == UPSTREAM  # prepare_plugins
    record = config_flow.before_validate(raw)  # validate_config, same raw cfg
    assert record.dropped_plugin == UPSTREAM
    assert raw["plugins"] == [OTHER_PLUGIN]
    assert len(calls) == 1, "before_validate asked again after prepare_plugins decided"
    assert config_flow._slot.raw is None  # the memo is used once

    calls.clear()  # a config that never went through prepare_plugins (an API user)
    raw = {"plugins": [UPSTREAM], "swanlab_project": "p", "swanlab_mode": "offline"}
    record = config_flow.before_validate(raw)
    assert record.dropped_plugin == UPSTREAM and raw["plugins"] == []
    assert len(calls) == 1, calls
