"""The package's own post-import step: callbacks at the end of a module's execution, the real
loader kept, and nothing left in sys.meta_path once every watched module was imported."""
from __future__ import annotations

import json
import textwrap

from tests.support.fake import run_python

PROBE = textwrap.dedent("""
    import importlib.resources, json, sys
    from swanlab_autopatch.shim.post_import import ModuleWatcher
    seen = []
    def callback(module):
        seen.append((module.__name__, getattr(module, "VALUE", None)))
        module.VALUE = "wrapped"
    watcher = ModuleWatcher(callback)
    watcher.watch(["pkg.first", "pkg.second"])
    in_path = watcher in sys.meta_path
    import pkg.user  # does `from pkg.first import VALUE` at import time
    after_first = watcher in sys.meta_path
    import pkg.second
    import pkg.first as first
    out = dict(seen=seen, in_path=in_path, after_first=after_first,
               after_all=watcher in sys.meta_path, copy=pkg.user.VALUE,
               loader=type(first.__loader__).__name__,
               spec_loader=type(first.__spec__.loader).__name__,
               resource=importlib.resources.files("pkg").joinpath("data.txt").read_text(),
               again=[])
    watcher2 = ModuleWatcher(lambda m: out["again"].append(m.__name__))
    watcher2.watch(["pkg.first"])  # already imported: called at once, nothing inserted
    out["watcher2_in_path"] = watcher2 in sys.meta_path
    print(json.dumps(out))
""")


def test_watcher(tmp_path):
    pkg = tmp_path / "src" / "pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "data.txt").write_text("payload")
    (pkg / "first.py").write_text("VALUE = 'original'\n")
    (pkg / "second.py").write_text("VALUE = 2\n")
    (pkg / "user.py").write_text("from pkg.first import VALUE\n")
    from tests.support.fake import REPO

    proc = run_python(PROBE, {"PYTHONPATH": f"{tmp_path / 'src'}:{REPO}", "PATH": ""})
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["seen"] == [["pkg.first", "original"], ["pkg.second", 2]]
    assert out["copy"] == "wrapped"  # the hook ran before `from pkg.first import VALUE` copied it
    assert out["in_path"] and out["after_first"] and not out["after_all"]
    assert out["loader"] == out["spec_loader"] == "SourceFileLoader"
    assert out["resource"] == "payload"
    assert out["again"] == ["pkg.first"] and out["watcher2_in_path"] is False
