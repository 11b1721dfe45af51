"""Run a function right after a module finishes executing, before anyone can copy its names.

This is the post-import step wrapt offers (``register_post_import_hook``), done by this package
so that nothing of it stays behind: wrapt's own finder stays first in ``sys.meta_path`` for the
life of the process and is consulted on every later import. Ours watches a few module names,
and removes itself as soon as every one of them has been imported. wrapt still does the
wrapping itself.

Stdlib only; a callback that raises is the caller's to contain (``patcher._on_import`` never
raises), because an exception here would fail the user's import.
"""
from __future__ import annotations

import sys
import threading
from typing import Any, Callable

Callback = Callable[[Any], None]


class _Loader:
    """The module's own loader, plus the callback once the module body has run. Everything
    else (resources, ``get_source``...) is the original loader's."""

    def __init__(self, loader: Any, watcher: "ModuleWatcher") -> None:
        self._loader = loader
        self._watcher = watcher

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self._loader.exec_module(module)
        # The module keeps its real loader (importlib.resources and pkgutil look at it).
        module.__loader__ = self._loader
        spec = getattr(module, "__spec__", None)
        if spec is not None and spec.loader is self:
            spec.loader = self._loader
        self._watcher.imported(module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class ModuleWatcher:
    """A meta-path finder that never finds anything by itself: for a watched name it asks the
    finders behind it for the real spec and wraps the spec's loader."""

    def __init__(self, callback: Callback) -> None:
        self._callback = callback
        self._pending: set[str] = set()
        self._lock = threading.Lock()

    def watch(self, names: list[str]) -> None:
        """Call back for each name when it is imported (at once for an imported one)."""
        now = []
        with self._lock:
            for name in names:
                module = sys.modules.get(name)
                if module is not None:
                    now.append(module)
                else:
                    self._pending.add(name)
            if self._pending and self not in sys.meta_path:
                sys.meta_path.insert(0, self)
        for module in now:
            self._callback(module)

    @property
    def pending(self) -> frozenset[str]:
        return frozenset(self._pending)

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in self._pending:  # the common case: one set lookup per import
            return None
        spec = None
        for finder in list(sys.meta_path):
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec  # nothing we can hook (namespace package, legacy loader): as found
        spec.loader = _Loader(loader, self)
        return spec

    def imported(self, module: Any) -> None:
        with self._lock:
            self._pending.discard(module.__name__)
            if not self._pending:
                self._remove()
        self._callback(module)

    def _remove(self) -> None:
        try:
            sys.meta_path.remove(self)
        except ValueError:
            pass
