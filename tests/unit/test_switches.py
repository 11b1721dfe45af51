"""The one rule every on/off environment switch of this package follows, and durations."""
from __future__ import annotations

import pytest

from swanlab_autopatch import _startup


@pytest.mark.parametrize("value, default, expected", [
    ("1", False, True), ("true", False, True), ("YES", False, True), (" On ", False, True),
    ("0", True, False), ("false", True, False), ("No", True, False), ("OFF", True, False),
    ("", False, False), ("", True, True), ("2", False, False), ("2", True, True),
    ("maybe", False, False), ("maybe", True, True),
])
def test_flag_rule(monkeypatch, value, default, expected):
    monkeypatch.setenv("SWANLAB_AUTOPATCH_TEST_FLAG", value)
    assert _startup.flag("SWANLAB_AUTOPATCH_TEST_FLAG", default) is expected


def test_unset_flag_is_the_default(monkeypatch):
    monkeypatch.delenv("SWANLAB_AUTOPATCH_TEST_FLAG", raising=False)
    assert _startup.flag("SWANLAB_AUTOPATCH_TEST_FLAG") is False
    assert _startup.flag("SWANLAB_AUTOPATCH_TEST_FLAG", True) is True


@pytest.mark.parametrize("name", ["SWANLAB_AUTOPATCH_DEBUG", "SWANLAB_AUTOPATCH_FORCE"])
def test_debug_and_force_read_two_the_same_way(monkeypatch, name):
    """SWANLAB_AUTOPATCH_FORCE=2 and SWANLAB_AUTOPATCH_DEBUG=2 used to mean opposite things."""
    from swanlab_autopatch.shim import patcher

    monkeypatch.setenv(name, "2")
    reader = _startup.debug_on if name.endswith("DEBUG") else patcher._forced
    assert reader() is False
    monkeypatch.setenv(name, "yes")
    assert reader() is True


@pytest.mark.parametrize("value, expected", [("", 20.0), ("5", 5.0), ("0", 0.1), ("x", 20.0),
                                             ("2.5", 2.5)])
def test_seconds(monkeypatch, value, expected):
    monkeypatch.setenv("SWANLAB_AUTOPATCH_TEST_SECONDS", value)
    if value == "":
        monkeypatch.delenv("SWANLAB_AUTOPATCH_TEST_SECONDS")
    assert _startup.seconds("SWANLAB_AUTOPATCH_TEST_SECONDS", 20.0) == expected
