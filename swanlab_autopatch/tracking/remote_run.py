"""The SwanLab run as the user's code sees it in the training process while the real run lives
in the sidecar: ``swanlab.log(...)``, ``swanlab.get_run()``, ``swanlab.has_run()``,
``swanlab.config[...] = ...`` and the ``log_*`` methods keep working and land in the same run.

A ``RemoteRun`` is put where SwanLab keeps its current run (compat.install_run), so SwanLab's
own module functions reach it; each call is forwarded through the pipe as
``("call", method, args, kwargs)`` and replayed on the real run. Values that cannot be pickled
are dropped with one warning. Properties such as ``id`` and ``dir`` come from the sidecar once
its run has started (a bounded wait).
"""
from __future__ import annotations

from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

# Run methods forwarded as they are called (the Run API of swanlab 0.8 to 0.10).
FORWARDED = frozenset({
    "log", "log_text", "log_image", "log_audio", "log_video", "log_echarts", "log_html",
    "log_object3d", "log_molecule", "async_log", "define_metric", "save",
})


class RemoteConfig(MutableMapping):
    """``run.config`` / ``swanlab.config``: a local copy for reading, every change forwarded."""

    def __init__(self, send: Callable[[dict], None], initial: Optional[dict] = None) -> None:
        object.__setattr__(self, "_send", send)
        object.__setattr__(self, "_data", dict(initial or {}))

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[key] = value
        self._send({key: value})

    def __delitem__(self, key: str) -> None:
        del self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def update(self, other: Any = None, **kwargs: Any) -> None:  # one message, not one per key
        values = dict(other or {}, **kwargs)
        if values:
            self._data.update(values)
            self._send(values)

    def get_config(self) -> dict:
        return dict(self._data)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __repr__(self) -> str:
        return repr(self._data)


class RemoteRun:
    """Stands for the sidecar's run in the training process."""

    def __init__(self, forward: Callable[[str, tuple, dict], None],
                 update_config: Callable[[dict], None], end: Callable[[str, Optional[str]], None],
                 info: Callable[[], dict], alive: Callable[[], bool],
                 config: Optional[dict] = None) -> None:
        self._forward = forward
        self._end = end
        self._info = info
        self._alive = alive
        self.config = RemoteConfig(update_config, config)

    # -- what SwanLab's module functions look at ----------------------------------------

    @property
    def alive(self) -> bool:
        """Until the run ends, whoever ends it (a kept object stays, and says so)."""
        return self._alive()

    def finish(self, state: str = "success", error: Optional[str] = None) -> None:
        """The user's code ends the run: it ends for this package too, as it would in-process."""
        self._end(state, error)

    def __getattr__(self, name: str) -> Any:
        if name in FORWARDED:
            def method(*args: Any, **kwargs: Any) -> None:
                # After the end the helper process's channel is closed: the call is refused
                # there, with one warning, and nothing is written anywhere.
                self._forward(name, args, kwargs)

            method.__name__ = name
            return method
        raise AttributeError(name)

    # -- properties the sidecar reports -------------------------------------------------

    def _get(self, key: str) -> Any:
        return (self._info() or {}).get(key)

    @property
    def id(self) -> Optional[str]:
        return self._get("id")

    @property
    def name(self) -> Optional[str]:
        return self._get("name")

    @property
    def mode(self) -> Optional[str]:
        return self._get("mode")

    @property
    def dir(self) -> Optional[Path]:
        folder = self._get("dir")
        return Path(folder) if folder else None

    @property
    def url(self) -> str:
        url = self._get("url")
        if not url:
            raise ValueError("The run has no URL: it is not a cloud run.")
        return url
