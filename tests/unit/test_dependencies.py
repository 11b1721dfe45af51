"""The dependencies say exactly what is used and what is tested."""
from __future__ import annotations

import re
import sys
from pathlib import Path

from tests.support.fake import REPO

sys.path.insert(0, str(REPO / "tools"))
import venvs  # noqa: E402

IMPORT_NAMES = {"wrapt": "wrapt", "swanlab": "swanlab", "pydantic": "pydantic"}


def runtime_dependencies() -> dict[str, str]:
    text = (REPO / "pyproject.toml").read_text()
    block = re.search(r"^dependencies = \[(.*?)^\]", text, re.S | re.M).group(1)
    deps = re.findall(r'"([A-Za-z0-9_.-]+)([^"]*)"', block)
    return {name.lower(): spec for name, spec in deps}


def test_every_runtime_dependency_is_imported_by_the_package():
    source = "\n".join(p.read_text() for p in (REPO / "swanlab_autopatch").rglob("*.py"))
    deps = runtime_dependencies()
    assert set(deps) == set(IMPORT_NAMES), deps
    for dist, module in IMPORT_NAMES.items():
        assert re.search(rf"^\s*(import|from) {module}\b", source, re.M), dist
    assert "packaging" not in deps  # nothing imports it at run time


def test_swanlab_has_a_floor_and_no_upper_bound():
    """Installing the package never replaces a client of 0.8.0 or later (the packaging test
    tests/packaging/test_swanlab_next.py installs it next to a newer one)."""
    assert runtime_dependencies()["swanlab"] == ">=0.8"


def test_the_tested_clients_are_the_ones_the_lanes_run():
    from swanlab_autopatch.tracking import compat

    def key(minor: str) -> tuple:
        return tuple(map(int, minor.split(".")))

    assert list(compat.TESTED_SWANLAB) == sorted(venvs.SWANLAB_MINORS, key=key)
    assert venvs.OLDEST_SWANLAB == f"swanlab=={compat.OLDEST_SWANLAB}"
    assert compat.OLDEST_SWANLAB.startswith(compat.TESTED_SWANLAB[0] + ".")
    for minor_version, pin in venvs.SWANLAB_MINORS.items():
        assert pin.startswith(f"swanlab=={minor_version}."), pin
