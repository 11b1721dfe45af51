"""RL completions as SwanLab tables: prompt, completion, each reward function's value and the
advantage, as TRL's GRPO-family trainers keep them.

TRL keeps the latest generation batch in bounded deques on the trainer (``_logs`` from TRL
0.18 on, with advantages; ``_textual_logs`` in 0.17, without), gathered from every process,
and fills them before the log call our ``on_log`` sees. Rows are collected every logging step
that carries rewards (so the end-of-training summary does not repeat the last batch; a batch
seen twice, with gradient accumulation or several iterations per generation, is skipped), at
most ``max_rows`` kept, and logged every ``interval`` steps and at the end.
"""
from __future__ import annotations

import collections
import math
from typing import Any, Mapping, Optional

_STORES = ("_logs", "_textual_logs")


def _store(trainer: Any) -> Optional[Mapping[str, Any]]:
    for attr in _STORES:
        store = getattr(trainer, attr, None)
        if isinstance(store, Mapping) and "prompt" in store and "completion" in store:
            return store
    return None


def _rollout_log(logs: Mapping[str, Any]) -> bool:
    return any(k in ("reward", "eval_reward") or k.startswith(("rewards/", "eval_rewards/"))
               for k in logs)


def _cell(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (int, float, str)) or value is None:
        return value
    if isinstance(value, list) and value and isinstance(value[-1], Mapping):
        return str(value[-1].get("content", value))  # a conversation: its last message
    return str(value)


class CompletionTable:
    def __init__(self, interval: int, max_rows: int) -> None:
        self.interval = interval
        self.rows: collections.deque = collections.deque(maxlen=max_rows)
        self.headers: list[str] = []
        self._seen: Any = None
        self._last_logged = 0

    def collect(self, trainer: Any, logs: Mapping[str, Any], step: int) -> bool:
        """Take the trainer's latest batch. True when it is time to log the table."""
        if not logs or not _rollout_log(logs):
            return False
        store = _store(trainer)
        if store is None:
            return False
        columns = {"prompt": list(store["prompt"]), "completion": list(store["completion"])}
        for name, values in dict(store.get("rewards") or {}).items():
            columns[f"reward/{name}"] = list(values)
        if "advantages" in store:
            columns["advantage"] = list(store["advantages"])
        count = len(columns["completion"])
        columns = {k: v[-count:] for k, v in columns.items() if len(v) >= count}
        fingerprint = (count, hash(tuple(map(str, columns["completion"]))))
        if count and fingerprint != self._seen:
            self._seen = fingerprint
            headers = ["step", *columns]
            if headers != self.headers:  # another trainer shape: start a new table
                self.headers, self.rows = headers, collections.deque(maxlen=self.rows.maxlen)
            for values in zip(*columns.values()):
                self.rows.append([step, *map(_cell, values)])
        return step - self._last_logged >= self.interval and bool(self.rows)

    def take(self, step: int) -> tuple[list[str], list[list]]:
        self._last_logged = step
        rows, self.rows = list(self.rows), collections.deque(maxlen=self.rows.maxlen)
        return self.headers, rows
