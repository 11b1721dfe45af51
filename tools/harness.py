"""Real Axolotl training on CPU, as the end-to-end tests, the demo and the benchmarks run it.

One place knows how to: get an Axolotl environment (tools/venvs.py), put this project into it,
build the tiny assets, write a training YAML, launch `axolotl train` the way a user would
(every launcher), and read the Trainer's own record of the losses.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

TOOLS = Path(__file__).resolve().parent
REPO = TOOLS.parent
sys.path.insert(0, str(TOOLS))
import venvs  # noqa: E402  (tools/ holds scripts, not a package)

# Axolotl release -> environment name in tools/venvs.py
AXOLOTL_ENVS = {"0.19.0": "axolotl-0.19.0", "0.21.0": "axolotl-0.21.0",
                "0.12.2": "axolotl-0.12.2", "0.9.2": "axolotl-0.9.2",
                "0.19.0-ray": "axolotl-0.19.0-ray",
                "0.19.0-swanlab0.8.0": "axolotl-0.19.0-swanlab0.8.0"}
DEFAULT_AXOLOTL = "0.19.0"

# Quiet, offline, and never hanging at exit: Axolotl's telemetry can block the process after
# training when there is no network, so it is always off here.
OFFLINE_ENV = {
    "AXOLOTL_DO_NOT_TRACK": "1", "DO_NOT_TRACK": "1", "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "WANDB_MODE": "disabled",
    "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}

# The training every scenario starts from: 10 optimizer steps of a 128k-parameter Llama.
BASE_CONFIG: dict[str, Any] = {
    "model_type": "AutoModelForCausalLM",
    "tokenizer_type": "AutoTokenizer",
    "val_set_size": 0,
    "sequence_len": 128,
    "sample_packing": False,
    "micro_batch_size": 2,
    "gradient_accumulation_steps": 1,
    "max_steps": 10,
    "num_epochs": 1,
    "optimizer": "adamw_torch",
    "lr_scheduler": "cosine",
    "learning_rate": 0.001,
    "bf16": False,
    "fp16": False,
    "tf32": False,
    "flash_attention": False,
    "gradient_checkpointing": False,
    "logging_steps": 1,
    # One checkpoint at the end: its trainer_state.json is the Trainer's own loss record.
    "save_strategy": "steps",
    "save_steps": 10,
    "seed": 42,
    "dataset_processes": 1,
    "dataset_num_proc": 1,
}


def cache_dir() -> Path:
    return venvs.cache_dir()


@contextmanager
def _locked(name: str):
    """One process at a time (parallel test workers share the cache and the venvs)."""
    import fcntl

    path = cache_dir() / "locks" / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def venv_for(version: str = DEFAULT_AXOLOTL) -> Path:
    """The Axolotl environment for a release, built on first use (minutes, once per machine)."""
    return venvs.ensure(AXOLOTL_ENVS[version])


def python_of(venv: Path) -> str:
    return str(venv / "bin" / "python")


def _source_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted((REPO / "swanlab_autopatch").rglob("*.py")) + sorted(
            (REPO / "startup").iterdir()) + [REPO / "pyproject.toml"]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def build_wheel() -> Path:
    """This project's wheel for the current source (built once per source version)."""
    with _locked("wheel"):
        return _build_wheel()


def _build_wheel() -> Path:
    out = cache_dir() / "wheels" / _source_hash()
    found = sorted(out.glob("swanlab_autopatch-*.whl"))
    if found:
        return found[-1]
    builder = venvs.ensure("fast-py3.11")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    subprocess.run([python_of(builder), "-m", "build", "--wheel", "--no-isolation",
                    "--outdir", str(tmp), str(REPO)], check=True, capture_output=True)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return sorted(out.glob("swanlab_autopatch-*.whl"))[-1]


def install_project(venv: Path) -> str:
    """Install the current source's wheel into an environment (no dependency changes).
    Returns the wheel's name. Skips the install when that exact wheel is already there."""
    wheel = build_wheel()
    with _locked(f"install-{venv.name}"):
        return _install(venv, wheel)


def _install(venv: Path, wheel: Path) -> str:
    marker = venv / ".swanlab-autopatch-wheel"
    if marker.exists() and marker.read_text() == str(wheel):
        return wheel.name
    subprocess.run([python_of(venv), "-m", "pip", "install", "-q", "--no-deps",
                    "--force-reinstall", "--disable-pip-version-check", str(wheel)],
                   check=True, capture_output=True)
    marker.write_text(str(wheel))
    return wheel.name


def assets_for(venv: Path) -> Path:
    """Tiny model, tokenizer and datasets built with this environment's transformers."""
    script = TOOLS / "tiny_assets.py"
    tag = hashlib.sha256(script.read_bytes() + venv.name.encode()).hexdigest()[:12]
    out = cache_dir() / "assets" / tag
    with _locked(f"assets-{tag}"):
        if not (out / "model" / "config.json").exists():
            shutil.rmtree(out, ignore_errors=True)
            subprocess.run([python_of(venv), str(script), str(out)], check=True,
                           capture_output=True, env=training_env(venv))
    return out


def training_env(venv: Path, extra: Optional[Mapping[str, str]] = None,
                 swanlab_root: Optional[Path] = None) -> dict[str, str]:
    """A clean environment for a training subprocess: the venv first on PATH, offline, no
    inherited SwanLab or distributed variables, SwanLab's global folder isolated."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SWANLAB", "WANDB", "RANK", "LOCAL_RANK", "WORLD_SIZE",
                                "MASTER_", "ACCELERATE_", "PYTHONPATH", "VIRTUAL_ENV"))}
    env.update(OFFLINE_ENV)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    if swanlab_root is not None:
        env["SWANLAB_ROOT"] = str(swanlab_root)
    env.update(extra or {})
    return env


def config_for(assets: Path, run_dir: Path, dataset: Any = "alpaca",
               **overrides: Any) -> dict[str, Any]:
    """A full training config; ``dataset`` is "alpaca", "chat" or a list of dataset entries;
    keys set to None in overrides are removed."""
    datasets = {
        "alpaca": [{"path": str(assets / "alpaca.jsonl"), "ds_type": "json", "type": "alpaca"}],
        "chat": [{"path": str(assets / "chat.jsonl"), "ds_type": "json", "type": "chat_template",
                  "field_messages": "messages", "roles_to_train": ["assistant"]}],
    }
    cfg = dict(BASE_CONFIG)
    chosen = datasets[dataset] if isinstance(dataset, str) else list(dataset)
    cfg.update(base_model=str(assets / "model"), datasets=chosen,
               dataset_prepared_path=str(run_dir / "prepared"), output_dir=str(run_dir / "out"))
    for key, value in overrides.items():
        if value is None:
            cfg.pop(key, None)
        else:
            cfg[key] = value
    return cfg


def write_config(path: Path, cfg: Mapping[str, Any]) -> Path:
    """Write YAML (JSON is valid YAML, and needs no PyYAML in the caller's Python)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(cfg), indent=2) + "\n", encoding="utf-8")
    return path


def launch_command(version: str, launcher: str, cfg_path: Path,
                   extra_args: tuple[str, ...] = ()) -> list[str]:
    """The command a user types, per launcher:
    axolotl (default `axolotl train`), python (`--launcher python` / `--no-accelerate` before
    0.12), module (`python -m axolotl.cli.train`), accelerate (`accelerate launch -m ...`),
    torchrun2 (two processes through `--launcher torchrun`)."""
    old_cli = tuple(int(p) for p in version.split(".")[:2]) < (0, 12)
    if launcher == "axolotl":
        return ["axolotl", "train", str(cfg_path), *extra_args]
    if launcher == "python":
        flag = ["--no-accelerate"] if old_cli else ["--launcher", "python"]
        return ["axolotl", "train", str(cfg_path), *flag, *extra_args]
    if launcher == "module":
        return ["python", "-m", "axolotl.cli.train", str(cfg_path), *extra_args]
    if launcher == "accelerate":
        return ["accelerate", "launch", "-m", "axolotl.cli.train", str(cfg_path), *extra_args]
    if launcher == "torchrun2":
        return ["axolotl", "train", str(cfg_path), "--launcher", "torchrun", *extra_args,
                "--", "--nproc_per_node", "2"]
    raise ValueError(f"unknown launcher {launcher!r}")


@dataclass
class TrainResult:
    command: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    run_dir: Path

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def log_dir(self) -> Path:
        return self.run_dir / "swanlog"

    def describe(self) -> str:
        tail = "\n".join(self.output.splitlines()[-60:])
        return f"$ {' '.join(self.command)}\nexit {self.returncode} after {self.seconds:.1f} s\n{tail}"


def run_training(venv: Path, version: str, run_dir: Path, cfg: Mapping[str, Any],
                 launcher: str = "python", env_extra: Optional[Mapping[str, str]] = None,
                 extra_args: tuple[str, ...] = (), timeout: float = 600) -> TrainResult:
    """Write the config into run_dir and train there (cwd = run_dir, so ./swanlog lands there)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg_path = write_config(run_dir / "cfg.yaml", cfg)
    command = launch_command(version, launcher, cfg_path, extra_args)
    env = training_env(venv, env_extra, swanlab_root=run_dir / ".swanlab-root")
    started = time.monotonic()
    try:
        proc = subprocess.run(command, cwd=run_dir, env=env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        code = -999
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = (exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")) + \
            f"\n[harness] TIMEOUT after {timeout} s"
    return TrainResult(command, code, out, err, time.monotonic() - started, run_dir)


def trainer_losses(run_dir: Path) -> list[tuple[int, float]]:
    """(step, loss) pairs from the Trainer's own record: the last checkpoint's
    trainer_state.json log_history."""
    states = sorted((run_dir / "out").glob("checkpoint-*/trainer_state.json"),
                    key=lambda p: int(p.parent.name.split("-")[-1]))
    if not states:
        raise FileNotFoundError(f"no checkpoint trainer_state.json under {run_dir / 'out'}")
    history = json.loads(states[-1].read_text())["log_history"]
    return [(int(entry["step"]), float(entry["loss"])) for entry in history if "loss" in entry]


def prepare(version: str = DEFAULT_AXOLOTL) -> tuple[Path, Path]:
    """Environment with this project installed, and its tiny assets."""
    venv = venv_for(version)
    install_project(venv)
    return venv, assets_for(venv)
