"""Run Python in a subprocess against the fake Axolotl layout of tests/fake_axolotl."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FAKE_AXOLOTL = REPO / "tests" / "fake_axolotl"


def fake_metadata(root: Path, version: str) -> Path:
    """A folder holding `axolotl-<version>.dist-info`, so importlib.metadata reports that
    version for the fake package (the old or the new module layout is chosen by version)."""
    folder = root / f"fake-axolotl-meta-{version}"
    info = folder / f"axolotl-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: axolotl\nVersion: {version}\n")
    return folder


def copy_fake_axolotl(dest: Path) -> Path:
    """A private copy of the fake Axolotl tree (to break on purpose); pass it to fake_env as
    ``axolotl_root``. Returns the folder that holds the ``axolotl`` package."""
    shutil.copytree(FAKE_AXOLOTL, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def fake_env(root: Path, version: str = "0.19.0", *, with_repo: bool = True,
             extra: dict | None = None, axolotl_root: Path | None = None) -> dict[str, str]:
    """An environment for a subprocess that sees the fake Axolotl (and, by default, this
    repository's package on PYTHONPATH, without its start-up file). ``axolotl_root`` replaces
    tests/fake_axolotl (see copy_fake_axolotl)."""
    env = dict(os.environ)
    for name in list(env):
        if name.startswith(("SWANLAB", "RANK", "LOCAL_RANK", "WORLD_SIZE", "SLURM_", "OMPI_")):
            env.pop(name)
    paths = [str(axolotl_root or FAKE_AXOLOTL), str(fake_metadata(root, version))]
    if with_repo:
        paths.append(str(REPO))
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra or {})
    return env


def run_python(code: str, env: dict[str, str], python: str | None = None, cwd: Path | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([python or sys.executable, "-c", code], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def run_interpreter(args: list[str], env: dict[str, str], python: str | None = None,
                    cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Like run_python, with any command line: ``["-S", "-c", code]``, ``["-m", module, ...]``."""
    return subprocess.run([python or sys.executable, *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)
