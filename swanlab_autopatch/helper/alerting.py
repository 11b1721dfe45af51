"""Alerts during the run, in the helper process: the rules (alerts.py) fed with what arrives on
the channel and the clock, each alert said three ways (one line in the training's output, a
text record in the run, a message on every configured channel: notify.py).

It lives in the helper because the helper outlives a hung, stopped or killed training: a
stall is noticed while the training is stopped, and a SIGKILLed training still gets its
"gone without an end" message. Nothing here may raise into the helper's loop.
"""
from __future__ import annotations

import time
from typing import Any, Mapping, Optional

from swanlab_autopatch import log
from swanlab_autopatch.helper.alerts import Alert, AlertConfig, AlertRules

TICK = 1.0  # seconds between two looks at the clock (the stall rule)
END_SEND_WAIT = 30.0  # longest wait for the end-of-run message once the run is finished
_TRAINER_PREFIXES = ("train/", "eval/")  # a Trainer log, not swanlab_watch's norms


class Alerting:
    def __init__(self, settings: Any, training_pid: int) -> None:
        from swanlab_autopatch.helper.notify import Notifier

        self.training_pid = training_pid
        self.rules = AlertRules(AlertConfig.from_settings(settings))
        self.notifier = Notifier(settings)
        self.url: Optional[str] = None
        self._next_tick = 0.0

    def started(self, info: Mapping[str, Any], project: Optional[str],
                config: Optional[Mapping[str, Any]] = None) -> None:
        self.url = info.get("url")
        self._guarded(self.rules.on_start, time.monotonic(), name=info.get("name"),
                      project=project, url=self.url, folder=info.get("dir"),
                      total_steps=total_steps(config or {}))

    def metrics(self, step: Optional[int], metrics: Mapping[str, Any]) -> None:
        if any(isinstance(k, str) and k.startswith(_TRAINER_PREFIXES) for k in metrics):
            self._guarded(self.rules.on_metrics, step, metrics, time.monotonic())

    def tick(self) -> None:
        now = time.monotonic()
        if now >= self._next_tick:
            self._next_tick = now + TICK
            self._guarded(self.rules.on_tick, now, alive(self.training_pid))

    def ended(self, state: str, error: Optional[str], killed_by: Optional[str]) -> None:
        """Before the run is finished, so the end record is in it; the message goes out in the
        background and ``flush`` waits for it."""
        if killed_by == "SIGKILL" or (state == "crashed" and killed_by == "unknown"):
            state, error, detail = "killed", None, None if killed_by == "unknown" else killed_by
        else:
            detail = killed_by if state == "aborted" else None
        self._guarded(self.rules.on_end, state, time.monotonic(), error=error, detail=detail)

    def flush(self) -> None:
        try:
            self.notifier.flush(END_SEND_WAIT)
        except Exception as exc:
            log.debug(f"notifications: {exc!r}")

    def _guarded(self, rule: Any, *args: Any, **kwargs: Any) -> None:
        try:
            for alert in rule(*args, **kwargs):
                self._say(alert)
        except Exception as exc:  # an alert never costs the run
            log.debug(f"alerts: {rule.__name__} failed: {exc!r}")

    def _say(self, alert: Alert) -> None:
        from swanlab_autopatch.tracking import client

        if alert.kind != "end":  # the end has its own line (tracking/run_messages.py)
            log.warning(alert.line)
        client.log_alert(alert.record_key, alert.title, alert.text, alert.step)
        self.notifier.post(alert.title, alert.text, self.url)


def total_steps(config: Mapping[str, Any]) -> Optional[int]:
    """The planned number of steps when the run's config says it (``max_steps``; an
    epoch-based training has none until the Trainer counts them)."""
    trainer = config.get("trainer_args") if isinstance(config.get("trainer_args"), Mapping) \
        else {}
    for value in (config.get("max_steps"), trainer.get("max_steps")):
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def alive(pid: int) -> bool:
    """The training process exists and has not exited (a stopped one is alive: its stall is
    what the stall alert is for)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            text = handle.read().decode("ascii", "replace")
        return text[text.rindex(")") + 2:].split()[0] not in ("Z", "X")
    except (OSError, ValueError, IndexError):
        return False
