#!/usr/bin/env python3
"""Build and cache the virtual environments the tests, the demo and the benchmarks use.

Every environment is described once in ENVS below. Its folder name carries a hash of that
description, so a machine that already built an environment reuses it, and a change to the
description builds a new one. The cache lives outside the clone:
``$SWANLAB_AUTOPATCH_CACHE`` (default ``~/.cache/swanlab-autopatch``).

The project itself is never baked into a cached environment: callers install it on top
(``ensure_project``), because its code changes far more often than its dependencies.

Usage:
    python tools/venvs.py path NAME        print the folder of NAME, building it if needed
    python tools/venvs.py list             list the known environments and whether they exist
    python tools/venvs.py prune            delete cached environments no longer described here

Stdlib only: this runs with the machine's own python before anything is installed.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECIPE_VERSION = 3  # bump to rebuild every environment after a change to the build code itself

SWANLAB = "swanlab==0.10.3"
# Real Axolotl installs hold wrapt 1.17 (s3fs -> aiobotocore pins wrapt<2), so the fast lane
# runs half its Pythons on wrapt 1.x and half on 2.x; the Axolotl environments take whatever
# Axolotl's own dependencies resolve to.
WRAPT_1, WRAPT_2 = "wrapt==1.17.3", "wrapt==2.5.2"
# Ranges, not pins: old Axolotl releases pin packaging==23.2, which the newest pytest refuses.
TEST_TOOLS = ["pytest>=8.3,<10", "hypothesis>=6.100,<7", "pytest-timeout>=2.3,<3",
              "pytest-xdist>=3.6,<4"]
# transformers without torch is enough to unit-test the callback; matplotlib draws
# `compare --plot`; build, hatchling and editables build and install the project.
FAST_LANE = [SWANLAB, "pydantic>=2.7,<3", "packaging>=23", "pyyaml>=6", "transformers==4.57.6",
             "matplotlib==3.10.7", "build==1.6.1", "hatchling==1.33.0", "editables==0.5",
             *TEST_TOOLS]
# What the project needs next to a real Axolotl: its own runtime deps and the test tools.
# swanboard makes `local` mode write a dashboard database that `swanlab watch` serves.
ON_AXOLOTL = [SWANLAB, "swanboard==0.1.10b2", "matplotlib>=3.7", *TEST_TOOLS]

# Packages an old Axolotl release requires that are GPU-only or never imported on the CPU
# training path; leaving them out keeps the old environments installable here (see
# docs/axolotl-facts.md, "Old releases on a CPU machine").
OLD_AXOLOTL_DROP = re.compile(
    r"^(torch|triton|xformers|autoawq|liger-kernel|deepspeed|modal|gradio|trackio|lm[-_]eval|"
    r"gcsfs|adlfs|ocifs|s3fs|flash-attn|mamba-ssm|auto-gptq|vllm|fbgemm-gpu|torchao)\b",
    re.I,
)


def _fast(py: str, wrapt: str) -> dict:
    return {"python": py, "kind": "plain", "packages": [wrapt, *FAST_LANE]}


def _fast_variant(swanlab: str = SWANLAB, transformers: str = "transformers==4.57.6") -> dict:
    """The fast lane on Python 3.11 with another SwanLab client or transformers."""
    packages = [WRAPT_2, *(swanlab if p == SWANLAB else transformers if p.startswith(
        "transformers==") else p for p in FAST_LANE)]
    return {"python": "3.11", "kind": "plain", "packages": packages}


# The SwanLab clients the package supports, newest patch of each minor (the fast lane runs on
# each; the end-to-end lane trains once on the oldest release of all).
SWANLAB_MINORS = {"0.8": "swanlab==0.8.5", "0.9": "swanlab==0.9.8", "0.10": SWANLAB}
OLDEST_SWANLAB = "swanlab==0.8.0"
NEWEST_TRANSFORMERS = "transformers==5.24.0"


ENVS: dict[str, dict] = {
    "fast-py3.10": _fast("3.10", WRAPT_1),
    "fast-py3.11": _fast("3.11", WRAPT_2),
    "fast-py3.12": _fast("3.12", WRAPT_1),
    "fast-py3.13": _fast("3.13", WRAPT_2),
    "fast-swanlab0.8": _fast_variant(swanlab=SWANLAB_MINORS["0.8"]),
    "fast-swanlab0.9": _fast_variant(swanlab=SWANLAB_MINORS["0.9"]),
    "fast-transformers5": _fast_variant(transformers=NEWEST_TRANSFORMERS),
    "axolotl-0.19.0": {
        "python": "3.11", "kind": "axolotl", "axolotl": "0.19.0",
        "constraints": ["torch==2.13.0"], "pip_flags": [], "packages": ON_AXOLOTL,
    },
    # The oldest supported SwanLab client next to Axolotl 0.19.0 (one training per mode).
    "axolotl-0.19.0-swanlab0.8.0": {
        "python": "3.11", "kind": "axolotl", "axolotl": "0.19.0",
        "constraints": ["torch==2.13.0"], "pip_flags": [],
        "packages": [OLDEST_SWANLAB if p == SWANLAB else p for p in ON_AXOLOTL],
    },
    # Ray Train (`use_ray: true`) next to the same Axolotl, for the cluster tests.
    "axolotl-0.19.0-ray": {
        "python": "3.11", "kind": "axolotl", "axolotl": "0.19.0",
        "constraints": ["torch==2.13.0"], "pip_flags": [],
        "packages": [*ON_AXOLOTL, "ray[train]==2.60.0"],
    },
    # 0.20+ declare Requires-Python >=3.12, yet every pinned dependency still ships for 3.11
    # and no CPU torch exists for 3.12 here. numpy 2.5 would need building from source on 3.11.
    "axolotl-0.21.0": {
        "python": "3.11", "kind": "axolotl", "axolotl": "0.21.0",
        "constraints": ["torch==2.13.0", "numpy==2.3.5"],
        "pip_flags": ["--ignore-requires-python", "--prefer-binary"], "packages": ON_AXOLOTL,
    },
    # Releases before Axolotl had a SwanLab plugin of its own, with transformers 4.x.
    "axolotl-0.12.2": {
        "python": "3.11", "kind": "old-axolotl", "axolotl": "0.12.2",
        "constraints": ["torch==2.13.0"], "packages": ON_AXOLOTL,
    },
    # The old trainer-builder module path (axolotl.core.trainer_builder).
    "axolotl-0.9.2": {
        "python": "3.11", "kind": "old-axolotl", "axolotl": "0.9.2",
        "constraints": ["torch==2.13.0"], "packages": ON_AXOLOTL,
    },
}


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "swanlab-autopatch"
    return Path(os.environ.get("SWANLAB_AUTOPATCH_CACHE", default))


def env_hash(name: str) -> str:
    spec = {"name": name, "recipe": RECIPE_VERSION, **ENVS[name]}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def env_path(name: str) -> Path:
    return cache_dir() / "venvs" / f"{name}-{env_hash(name)}"


def find_python(version: str) -> str:
    """The interpreter for a major.minor version: pyenv's install if there is one, else
    pythonX.Y on PATH. (pyenv's shims answer on PATH for every version but fail for one that
    is not selected, so each candidate is tried before it is used.)"""
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [str(p) for p in sorted(pyenv_root.glob(f"versions/{version}.*/bin/python{version}"),
                                         reverse=True)]
    on_path = shutil.which(f"python{version}")
    if on_path:
        candidates.append(on_path)
    for cand in candidates:
        probe = subprocess.run([cand, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                               capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return cand
    raise SystemExit(f"venvs: no working Python {version} (looked in {pyenv_root} and on PATH)")


def _run(cmd: list[str], **kw) -> None:
    print("  $ " + " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, **kw)


def _pip(venv: Path, *args: str) -> None:
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
          "--disable-pip-version-check", *args])


def _write_constraints(folder: Path, lines: list[str]) -> Path:
    path = folder / "constraints.txt"
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def _build_plain(venv: Path, spec: dict) -> None:
    _pip(venv, *spec["packages"])


def _build_axolotl(venv: Path, spec: dict) -> None:
    # CPU torch first: any later resolution of plain `torch` would fetch a multi-GB CUDA build.
    _pip(venv, "torch==2.13.0")
    cons = _write_constraints(venv, spec["constraints"])
    _pip(venv, *spec["pip_flags"], "-c", str(cons), f"axolotl=={spec['axolotl']}",
         *spec["packages"])


def _requires_dist(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        text = zf.read(meta).decode()
    reqs = []
    for line in text.splitlines():
        if line.startswith("Requires-Dist:"):
            req = line.split(":", 1)[1].strip()
            if "extra ==" not in req:
                reqs.append(req)
    return reqs


def _build_old_axolotl(venv: Path, spec: dict) -> None:
    """PyPI has only sdists for these releases, whose setup.py pins a CUDA torch: build the
    wheel without dependencies, install a curated list of its requirements, then the wheel."""
    version = spec["axolotl"]
    _pip(venv, "torch==2.13.0")
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        _run([str(venv / "bin" / "python"), "-m", "pip", "wheel", "-q", "--no-deps",
              f"axolotl=={version}", "-w", str(tmpd)])
        wheel = next(tmpd.glob("axolotl-*.whl"))
        reqs = [r for r in _requires_dist(wheel) if not OLD_AXOLOTL_DROP.match(r)]
        # torchao's own pins for these releases do not import with torch 2.13.
        reqs.append("torchao==0.17.0")
        req_file = tmpd / "requirements.txt"
        req_file.write_text("\n".join(reqs) + "\n")
        cons = _write_constraints(venv, spec["constraints"])
        _pip(venv, "-c", str(cons), "-r", str(req_file), *spec["packages"])
        _pip(venv, "--no-deps", str(wheel))
    # Up to 0.9.x, cleanup_distributed() calls torch.cuda.synchronize() unconditionally and the
    # command exits 1 after a successful CPU run; 0.10 fixed this upstream.
    dist = next(venv.glob("lib/python*/site-packages/axolotl/utils/distributed.py"))
    text = dist.read_text()
    fixed = re.sub(r"^(\s*)torch\.cuda\.synchronize\(\)$",
                   r"\1if torch.cuda.is_available(): torch.cuda.synchronize()", text, flags=re.M)
    dist.write_text(fixed)


BUILDERS = {"plain": _build_plain, "axolotl": _build_axolotl, "old-axolotl": _build_old_axolotl}


def ensure(name: str) -> Path:
    if name not in ENVS:
        raise SystemExit(f"venvs: unknown environment {name!r}; known: {', '.join(ENVS)}")
    return build_once(env_path(name), lambda target: _build(name, target))


def build_once(target: Path, build) -> Path:
    """``build(target)`` unless ``target/.complete`` exists. Several processes may ask for the
    same folder at once: one builds under a file lock, the others wait and reuse it."""
    if (target / ".complete").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    import fcntl

    with open(target.with_name(target.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / ".complete").exists():
            build(target)
    return target


def _build(name: str, target: Path) -> Path:
    spec = ENVS[name]
    # A venv's scripts hard-code its folder, so it is built in place; `.complete` is written
    # last, and a folder without it (an interrupted build) is thrown away and built again.
    shutil.rmtree(target, ignore_errors=True)
    print(f"venvs: building {name} in {target} (once per machine)", file=sys.stderr)
    t0 = time.monotonic()
    _run([find_python(spec["python"]), "-m", "venv", str(target)])
    _pip(target, "-U", "pip")
    BUILDERS[spec["kind"]](target, spec)
    (target / ".complete").write_text(json.dumps({"name": name, **spec}, indent=1))
    print(f"venvs: {name} ready after {time.monotonic() - t0:.0f} s", file=sys.stderr)
    return target


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "path":
        for name in argv[1:]:
            print(ensure(name))
        return 0
    if argv == ["list"]:
        for name in ENVS:
            path = env_path(name)
            state = "ready" if (path / ".complete").exists() else "missing"
            print(f"{name:18} {state:8} {path}")
        return 0
    if argv == ["prune"]:
        keep = {env_path(n).name for n in ENVS}
        for folder in sorted((cache_dir() / "venvs").glob("*")):
            if folder.name not in keep:
                print(f"removing {folder}")
                shutil.rmtree(folder, ignore_errors=True)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
