"""The end-to-end lane: real `axolotl train` subprocesses on a tiny local model (CPU).

Every test trains in its own folder and reads the SwanLab run back from disk with the
project's reader. The Axolotl environments come from tools/venvs.py (built once per machine);
a missing environment is built, never skipped.
"""
from __future__ import annotations

import pytest

from e2e_support import Trainer, harness


def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.e2e)


@pytest.fixture
def trainer(tmp_path) -> Trainer:
    return Trainer(tmp_path, harness.DEFAULT_AXOLOTL)


@pytest.fixture
def trainer_for(tmp_path):
    def make(version: str) -> Trainer:
        return Trainer(tmp_path / version, version)

    return make
