"""Fixtures of the packaging lane: the wheel, built once per session, installed into fresh
virtual environments the way users install it (see test_startup_install.py for the rationale)."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import fresh_venv
from tests.support.fake import REPO, fake_env, run_interpreter
from tests.support.fresh_venv import pip

# What the installed package and the fake Axolotl import, plus what builds the project.
RUNTIME_DEPS = ("wrapt", "swanlab", "pydantic", "packaging", "yaml")
BUILD_DEPS = ("build", "hatchling", "editables", "pip")
OWN_NAMES = ("swanlab_autopatch", "_swanlab_autopatch", "__editable__.swanlab_autopatch",
             "_editable_impl_swanlab_autopatch")


def _check_prerequisites() -> None:
    missing = [m for m in RUNTIME_DEPS + BUILD_DEPS if importlib.util.find_spec(m) is None]
    if missing:
        pytest.fail(f"the packaging tests need {', '.join(missing)} in the interpreter running "
                    f"pytest ({sys.executable}); use a fast venv: "
                    "`python3 tools/venvs.py path fast-py3.11`", pytrace=False)


def site_farm(dest: Path, *, without: tuple[str, ...] = ()) -> Path:
    """Everything in this interpreter's site-packages except this package (and the names in
    ``without``), for PYTHONPATH (tests/support/fresh_venv.py)."""
    return fresh_venv.site_farm(dest, without=OWN_NAMES + without)


@dataclass
class Install:
    """A fresh venv holding swanlab-autopatch (and nothing else) installed one way."""

    kind: str  # "wheel" or "editable"
    venv: Path
    python: Path
    purelib: Path
    deps: Path  # runtime dependencies, for PYTHONPATH
    root: Path  # scratch folder of this install (fake metadata, copies of the fake tree)
    wheel: Path | None
    installed: bool = False

    def install(self) -> None:
        if self.kind == "wheel":
            pip(self.python, "install", "--no-deps", "--no-index", str(self.wheel))
        else:
            # --no-build-isolation: the build backend (hatchling, editables) comes from deps.
            env = dict(os.environ, PYTHONPATH=str(self.deps))
            pip(self.python, "install", "--no-deps", "--no-index", "--no-build-isolation",
                "-e", str(REPO), env=env)
        self.installed = True

    def uninstall(self) -> subprocess.CompletedProcess:
        proc = pip(self.python, "uninstall", "-y", "swanlab-autopatch")
        self.installed = False
        return proc

    def env(self, version: str = "0.19.0", *, extra: dict | None = None,
            axolotl_root: Path | None = None, first: tuple[Path, ...] = (),
            deps: Path | None = None) -> dict[str, str]:
        """The subprocess environment: the fake Axolotl reporting ``version``, then the
        runtime dependencies; never this checkout (the package must come from the venv)."""
        env = fake_env(self.root, version, with_repo=False, extra=extra,
                       axolotl_root=axolotl_root)
        env["PYTHONPATH"] = os.pathsep.join([*map(str, first), env["PYTHONPATH"],
                                             str(deps or self.deps)])
        env.pop("VIRTUAL_ENV", None)
        env.pop("PYTHONHOME", None)
        return env

    def run(self, code: str, env: dict | None = None, *, flags: tuple[str, ...] = (),
            args: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
        return run_interpreter([*flags, "-c", code, *args], env or self.env(),
                               python=str(self.python), cwd=self.root, timeout=120)


@pytest.fixture(scope="session")
def deps(tmp_path_factory) -> Path:
    _check_prerequisites()
    return site_farm(tmp_path_factory.mktemp("deps") / "site")


@pytest.fixture(scope="session")
def deps_without_wrapt(tmp_path_factory) -> Path:
    return site_farm(tmp_path_factory.mktemp("deps-nowrapt") / "site", without=("wrapt",))


@pytest.fixture(scope="session")
def wheel(tmp_path_factory, deps) -> Path:
    out = tmp_path_factory.mktemp("dist")
    cmd = [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out),
           str(REPO)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"building the wheel failed:\n{proc.stdout}\n{proc.stderr}"
    wheels = list(out.glob("swanlab_autopatch-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="session", params=["wheel", "editable"])
def _install(request, tmp_path_factory, deps) -> Install:
    kind = request.param
    root = tmp_path_factory.mktemp(f"install-{kind}")
    venv = root / "venv"
    proc = subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c",
                              "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    made = Install(kind, venv, python, Path(purelib), deps, root,
                   request.getfixturevalue("wheel") if kind == "wheel" else None)
    made.install()
    return made


@pytest.fixture
def install(_install) -> Install:
    """The venv of one install kind, with the package installed (again, after a test that
    uninstalled it)."""
    if not _install.installed:
        _install.install()
    return _install
