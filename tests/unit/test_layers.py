"""The layers stay apart: what loads when Axolotl is imported is light, the runs commands never
load the shim, and the configuration layer never loads the SwanLab client."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.fake import REPO

HEAVY = ("pydantic", "swanlab", "transformers", "torch")


def loaded_after(code: str) -> set[str]:
    probe = code + "\nimport json, sys; print(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True,
                          text=True, timeout=60, env={"PYTHONPATH": str(REPO), "PATH": ""})
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout.splitlines()[-1]))


def test_the_shim_layer_imports_nothing_heavy():
    modules = loaded_after("import swanlab_autopatch.shim.patcher, swanlab_autopatch.shim.wrappers,"
                           " swanlab_autopatch.shim.targets, swanlab_autopatch._startup")
    assert "swanlab_autopatch.shim.wrappers" in modules
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert heavy == [], heavy
    later = sorted(m for m in modules
                   if m.startswith(("swanlab_autopatch.config", "swanlab_autopatch.tracking")))
    assert later == [], later  # loaded by the wrappers only when a config is loaded
    # redact compiles its patterns on import (~2 ms): it loads with the first message only.
    assert "swanlab_autopatch.redact" not in modules


@pytest.mark.parametrize("module, forbidden", [
    ("swanlab_autopatch.runs.commands", ("swanlab_autopatch.shim", "swanlab_autopatch.tracking",
                                         "wrapt")),
    ("swanlab_autopatch.config.flow", ("swanlab_autopatch.tracking", "swanlab", "wrapt")),
    # The process boundary: the training side never loads the helper's code, and neither side
    # needs SwanLab to talk over the channel.
    ("swanlab_autopatch.tracking.helper_process", ("swanlab_autopatch.helper", "swanlab")),
    ("swanlab_autopatch.channel", ("swanlab_autopatch.tracking", "swanlab_autopatch.helper",
                                   "swanlab")),
    ("swanlab_autopatch.helper.main", ("swanlab_autopatch.tracking.helper_process",
                                       "swanlab_autopatch.tracking.callback", "transformers")),
    # The helper's rules are pure; its notifier loads SwanLab's senders only when it has a channel.
    ("swanlab_autopatch.helper.alerts", ("swanlab_autopatch.tracking", "swanlab", "pydantic")),
    ("swanlab_autopatch.helper.notify", ("swanlab_autopatch.tracking", "swanlab", "pydantic")),
])
def test_layers_do_not_reach_into_each_other(module, forbidden):
    modules = loaded_after(f"import {module}")
    wrong = sorted(m for m in modules if any(m == f or m.startswith(f + ".") for f in forbidden))
    assert wrong == [], wrong
