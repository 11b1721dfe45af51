"""Fake SwanLab clients, built from the one installed in this interpreter: its code under
another version number ("the next minor", 0.11.0 while the newest release is 0.10.x), and
optionally one internal removed or changed. Nothing is downloaded or committed: the package
and its dist-info are copied from site-packages, the version is rewritten in the two places
SwanLab and pip read it (``swanlab/package.json``, ``METADATA`` and the dist-info's name).

- ``build_tree(dest, version, edits)``: a folder holding ``swanlab/`` and its dist-info, to put
  on PYTHONPATH ahead of site-packages (unit tests, the end-to-end lane).
- ``build_wheel(tree, out)``: the same as a wheel pip installs (the packaging test).
- ``python -m tests.support.fake_swanlab venv DEST``: a fresh venv holding the fake next minor
  (the package's wheel installed and removed next to it, ``pip check`` clean), whose Python
  the fast lane then runs the unit tests with (scripts/test.sh).
"""
from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

from tests.support.fresh_venv import fresh_venv, pip

REPO = Path(__file__).resolve().parents[2]
NEXT_MINOR = "0.11.0"  # keep above the newest minor of tools/venvs.py SWANLAB_MINORS


def _installed() -> tuple[Path, Path, str]:
    """(folder of the swanlab package, its dist-info, its version) in this interpreter."""
    dist = metadata.distribution("swanlab")
    site = Path(str(dist.locate_file("")))
    infos = [p for p in site.glob("swanlab-*.dist-info")
             if p.name.lower() == f"swanlab-{dist.version}.dist-info".lower()]
    package = site / "swanlab"
    if len(infos) != 1 or not (package / "__init__.py").is_file():
        raise RuntimeError(f"no single swanlab {dist.version} install in {site}")
    return package, infos[0], dist.version


def build_tree(dest: Path, version: str = NEXT_MINOR,
               edits: list[tuple[str, str, str]] = ()) -> Path:
    """Copy the installed client into ``dest`` as ``version``. ``edits``: (glob of files in the
    package, old text, new text); the old text is replaced as a whole word wherever it is in
    the matching files (a rename stays consistent across the client), and must be found at
    least once, so a fake never silently stops being the change it claims to be."""
    package, info, old_version = _installed()
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(package, dest / "swanlab", ignore=shutil.ignore_patterns("__pycache__"))
    new_info = dest / f"swanlab-{version}.dist-info"
    shutil.copytree(info, new_info, ignore=shutil.ignore_patterns("INSTALLER", "REQUESTED",
                                                                   "direct_url.json"))
    meta = new_info / "METADATA"
    meta.write_text(meta.read_text(encoding="utf-8").replace(
        f"\nVersion: {old_version}\n", f"\nVersion: {version}\n", 1), encoding="utf-8")
    package_json = dest / "swanlab" / "package.json"
    data = json.loads(package_json.read_text(encoding="utf-8"))
    data["version"] = version
    package_json.write_text(json.dumps(data), encoding="utf-8")
    for pattern, old, new in edits:
        edge = [r"\b" if re.match(r"\w", c) else "" for c in (old[0], old[-1])]
        word = re.compile(edge[0] + re.escape(old) + edge[1])
        hits = 0
        for path in sorted((dest / "swanlab").glob(pattern)):
            text, count = word.subn(lambda _match: new, path.read_text(encoding="utf-8"))
            if count:
                path.write_text(text, encoding="utf-8")
                hits += count
        if not hits:
            raise AssertionError(f"the fake's edit does not apply: {old!r} is in no file "
                                 f"swanlab/{pattern} of swanlab {old_version}")
    _write_record(dest, new_info)
    return dest


def lacking() -> set[str]:
    """The internals (tracking/compat.py) the installed client lacks by design, being older
    than their ``since``: a fake built from it lacks them too, and says so when it uses them."""
    from swanlab_autopatch.tracking import compat
    from swanlab_autopatch.versions import release

    have = release(_installed()[2])
    return {i.key for i in compat.INTERNALS if have < i.since}


def _write_record(root: Path, info: Path) -> None:
    rows = []
    for path in sorted(p for top in (root / "swanlab", info) for p in top.rglob("*")
                       if p.is_file()):
        relative = path.relative_to(root).as_posix()
        if path.name == "RECORD" and path.parent == info:
            continue
        digest = base64.urlsafe_b64encode(hashlib.sha256(path.read_bytes()).digest())
        rows.append((relative, f"sha256={digest.rstrip(b'=').decode()}", str(path.stat().st_size)))
    rows.append((f"{info.name}/RECORD", "", ""))
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    (info / "RECORD").write_text(out.getvalue(), encoding="utf-8")


def version_of(tree: Path) -> str:
    (info,) = tree.glob("swanlab-*.dist-info")
    return info.name[len("swanlab-"):-len(".dist-info")]


def build_wheel(tree: Path, out: Path) -> Path:
    """A wheel of a tree made by build_tree (pure Python, like SwanLab's own)."""
    out.mkdir(parents=True, exist_ok=True)
    wheel = out / f"swanlab-{version_of(tree)}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in tree.rglob("*") if p.is_file()):
            archive.write(path, path.relative_to(tree).as_posix())
    return wheel


def installed_swanlab(python: Path) -> str:
    code = "from importlib.metadata import version; import swanlab; " \
           "print(version('swanlab'), swanlab.__version__, swanlab.__file__)"
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def project_wheel(out: Path) -> Path:
    proc = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir",
                           str(out), str(REPO)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"building the wheel failed:\n{proc.stdout}\n{proc.stderr}"
    (wheel,) = out.glob("swanlab_autopatch-*.whl")
    return wheel


def main(argv: list[str]) -> int:
    """``venv DEST``: the fast lane's environment on the fake next minor (see the docstring);
    ``tree DEST``: the fake next minor as a folder for PYTHONPATH, built from the client of
    the Python that runs this (the end-to-end lane builds it from an Axolotl venv's)."""
    if len(argv) != 2 or argv[0] not in ("venv", "tree"):
        print("usage: python -m tests.support.fake_swanlab venv|tree DEST", file=sys.stderr)
        return 2
    dest = Path(argv[1]).resolve()
    shutil.rmtree(dest, ignore_errors=True)
    if argv[0] == "tree":
        build_tree(dest, NEXT_MINOR)
        print(dest)
        return 0
    tree = build_tree(dest / "fake", NEXT_MINOR)
    wheels = dest / "wheels"
    build_wheel(tree, wheels)
    project = project_wheel(dest / "dist")
    python = fresh_venv(dest / "venv")
    pip(python, "install", "--no-index", "--find-links", str(wheels), f"swanlab=={NEXT_MINOR}")
    pip(python, "install", "--no-index", "--find-links", str(wheels), str(project))
    pip(python, "check")
    pip(python, "uninstall", "-y", "swanlab-autopatch")  # the unit tests use the checkout
    seen = installed_swanlab(python)
    assert seen.startswith(f"{NEXT_MINOR} {NEXT_MINOR} {dest / 'venv'}"), seen
    print(python)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
