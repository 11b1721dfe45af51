"""Installing swanlab-autopatch never changes the SwanLab client a user has (0.8.0 or later).

A fresh venv gets a SwanLab client first (a wheel built here from the installed one, under the
version number of the case: the floor 0.8.0 or the next minor, tests/support/fake_swanlab.py),
then the package's wheel, with pip resolving the dependencies. The wheel folder pip may pick
from also holds the newest tested client (the installed one, under its own number): with an
upper bound on swanlab, pip would swap a next-minor client for it, as it did before. The other
dependencies come from this interpreter (tests/support/fresh_venv.py). `pip check` must be
clean afterwards.
"""
from __future__ import annotations

import pytest

from tests.support.fake_swanlab import NEXT_MINOR, build_tree, build_wheel, installed_swanlab
from tests.support.fresh_venv import fresh_venv, pip
from swanlab_autopatch.versions import installed

pytestmark = pytest.mark.packaging


@pytest.fixture(scope="module")
def clients(tmp_path_factory):
    """A wheel folder: the floor, the newest tested client and the next minor."""
    root = tmp_path_factory.mktemp("clients")
    for version in ("0.8.0", installed("swanlab"), NEXT_MINOR):
        build_wheel(build_tree(root / f"tree-{version}", version), root / "wheels")
    return root / "wheels"


@pytest.mark.parametrize("version", ["0.8.0", NEXT_MINOR])
def test_installing_the_package_leaves_the_client_in_place(tmp_path, clients, wheel, version):
    python = fresh_venv(tmp_path / "venv")
    pip(python, "install", "--no-index", "--find-links", str(clients), f"swanlab=={version}")
    done = pip(python, "install", "--no-index", "--find-links", str(clients), str(wheel))
    assert "Uninstalling swanlab-" not in done.stdout, done.stdout
    assert "Successfully installed swanlab-autopatch-" in done.stdout, done.stdout
    assert installed_swanlab(python).startswith(f"{version} {version} {tmp_path / 'venv'}")
    check = pip(python, "check", check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    # `pip install -U swanlab-autopatch` re-resolves the dependencies: still the same client.
    again = pip(python, "install", "--no-index", "--find-links", str(clients), "--upgrade",
                str(wheel))
    assert "Uninstalling swanlab-" not in again.stdout, again.stdout
    assert installed_swanlab(python).startswith(f"{version} {version} ")
