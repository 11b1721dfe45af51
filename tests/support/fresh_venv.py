"""Fresh virtual environments for the packaging tests, quick to make: no pip of their own
(this interpreter's pip installs into them with ``pip --python``), and this interpreter's
packages made visible through a folder of symlinks instead of being installed again."""
from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path


def site_farm(dest: Path, *, without: tuple[str, ...] = ()) -> Path:
    """A folder of symlinks to everything in this interpreter's site-packages except the
    names starting with ``without``. On PYTHONPATH (or in a venv's .pth) it provides the
    packages to another interpreter of the same Python version; its .pth files never run."""
    dest.mkdir(parents=True)
    for folder in dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]):
        for entry in Path(folder).iterdir():
            if entry.name.startswith(without) or entry.suffix == ".pth":
                continue
            if not (dest / entry.name).exists():
                (dest / entry.name).symlink_to(entry)
    return dest


def pip(python: Path, *args: str, env: dict | None = None,
        check: bool = True) -> subprocess.CompletedProcess:
    """This interpreter's pip acting on another environment (``pip --python``): the files land
    exactly as that venv's own pip would put them, without ensurepip's seconds per venv."""
    cmd = [sys.executable, "-m", "pip", "--python", str(python), "--disable-pip-version-check",
           "--no-input", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def fresh_venv(dest: Path) -> Path:
    """A new venv (no pip of its own) whose site-packages holds nothing but a .pth line adding
    a farm of this interpreter's packages, minus SwanLab and this project: what pip finds
    installed there is this interpreter's set, and SwanLab is whatever goes into the venv."""
    proc = subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(dest)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    python = dest / "bin" / "python"
    purelib = Path(subprocess.run([str(python), "-c",
                                   "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    farm = site_farm(dest / "farm", without=("swanlab", "_swanlab_autopatch",
                                             "__editable__.swanlab_autopatch",
                                             "_editable_impl_swanlab_autopatch"))
    (purelib / "_farm.pth").write_text(f"{farm}\n")
    return python
