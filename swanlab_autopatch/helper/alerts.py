"""What is worth telling the user during a run, decided from the metrics as they arrive and
the clock. Pure: no I/O, no SwanLab, no clock of its own, so every rule is unit-tested with
made-up times.

The helper process drives it (``now`` is ``time.monotonic()``):

    rules = AlertRules(AlertConfig.from_settings(settings))
    rules.on_start(now, name=..., project=..., url=..., folder=..., total_steps=...)
    rules.on_metrics(step, metrics, now)     # every Trainer log, under tracker names
    rules.on_tick(now, training_alive)       # every few seconds
    rules.on_end(state, now, error=..., detail=...)

Each returns a list of ``Alert`` (kind, title, text, step, level) to print as one line, record
in the run and send on every channel. The rules: a non-finite loss or gradient norm; a loss
spike (above ``loss_spike`` times the median of the recent window); a stall (no Trainer log
for ``stall_minutes`` while the training process is alive) and its "resumed" counterpart; and
the end of the run, once (finished, crashed, aborted, or killed: gone without an end). Each
kind of alert fires at most once per condition and per ``quiet_steps`` steps.
"""
from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass
from typing import Any, Mapping, Optional

LOSS, GRAD_NORM, EVAL_LOSS = "train/loss", "train/grad_norm", "eval/loss"  # metric_names
WATCHED_FINITE = (LOSS, GRAD_NORM, EVAL_LOSS)
END_STATES = ("finished", "crashed", "aborted", "killed")
_STATE_ALIASES = {"success": "finished", "finish": "finished", "error": "crashed"}
MAX_ERROR_CHARS = 300


@dataclass(frozen=True)
class Alert:
    kind: str  # nonfinite, loss_spike, stall, resumed, end
    title: str
    text: str  # several lines
    step: Optional[int]  # the step it is about (the last logged one for stall and end)
    level: str = "warning"  # "info" for a run that finished normally

    @property
    def record_key(self) -> str:
        """Where the run records it as text (SwanLab 0.8-0.10 have no alert facility)."""
        return f"alerts/{self.kind}"

    @property
    def line(self) -> str:
        """The alert on one line, for the training's output."""
        return f"{self.title}: " + " ".join(part.strip() for part in self.text.splitlines()
                                            if part.strip())


@dataclass(frozen=True)
class AlertConfig:
    alerts: bool = True  # False: only the end-of-run message
    loss_spike: Optional[float] = 3.0  # None: no spike alerts
    stall_minutes: Optional[float] = 30.0  # None: no stall alerts
    language: str = "en"
    quiet_steps: int = 100  # at most one alert of a kind per this many steps
    window: int = 20  # recent train/loss values a spike is measured against
    min_window: int = 5  # values needed before a spike is judged

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> "AlertConfig":
        return cls(alerts=settings.swanlab_alerts,
                   loss_spike=settings.swanlab_alert_loss_spike or None,
                   stall_minutes=settings.swanlab_alert_stall_minutes or None,
                   language=settings.swanlab_notify_language, **overrides)


class AlertRules:
    def __init__(self, config: AlertConfig) -> None:
        self.config = config
        self._texts = _TEXTS.get(config.language, _TEXTS["en"])
        self._run = self._texts["run"]
        self._where = ""
        self._total: Optional[int] = None
        self._started_at: Optional[float] = None
        self._last_log_at: Optional[float] = None
        self._step: Optional[int] = None  # the last logged step
        self._loss: Optional[tuple[float, int]] = None  # the last train/loss and its step
        self._best_eval: Optional[tuple[float, int]] = None
        self._window: deque[float] = deque(maxlen=config.window)
        self._bad: set[str] = set()  # watched metrics non-finite at their last log
        self._last_alert: dict[str, int] = {}  # kind -> step of its last alert
        self._stalled = False
        self._ended = False

    # -- the helper's calls ----------------------------------------------------------------

    def on_start(self, now: float, *, name: Optional[str] = None, project: Optional[str] = None,
                 url: Optional[str] = None, folder: Optional[str] = None,
                 total_steps: Optional[int] = None) -> list[Alert]:
        """Training began (the run is up): the clock of the stall rule and the duration start."""
        self._started_at = self._last_log_at = now
        if name:
            self._run = f"{project}/{name}" if project else name
        self._where = (self._texts["url"].format(url=url) if url else
                       self._texts["folder"].format(folder=folder) if folder else "")
        self._total = total_steps if total_steps and total_steps > 0 else None
        return []

    def on_metrics(self, step: Optional[int], metrics: Mapping[str, Any],
                   now: float) -> list[Alert]:
        """One Trainer log (tracker names: train/loss, train/grad_norm, eval/loss...)."""
        if self._ended:
            return []
        alerts = []
        if self._stalled:
            self._stalled = False
            if self.config.alerts:
                alerts.append(self._resumed(step, now))
        self._last_log_at = now
        if step is not None:
            self._step = step
        values = {k: float(metrics[k]) for k in WATCHED_FINITE if _is_number(metrics.get(k))}
        alerts += self._nonfinite(step, values)
        alerts += self._spike(step, values.get(LOSS))
        if LOSS in values and math.isfinite(values[LOSS]):
            self._loss = (values[LOSS], step)
        if EVAL_LOSS in values and math.isfinite(values[EVAL_LOSS]) and \
                (self._best_eval is None or values[EVAL_LOSS] < self._best_eval[0]):
            self._best_eval = (values[EVAL_LOSS], step)
        return alerts if self.config.alerts else []

    def on_tick(self, now: float, training_alive: bool) -> list[Alert]:
        """The clock: a stall while the training process is alive (a hang, a stopped process)."""
        minutes = self.config.stall_minutes
        if (self._ended or self._stalled or not self.config.alerts or minutes is None
                or self._last_log_at is None or not training_alive):
            return []
        quiet = now - self._last_log_at
        if quiet < minutes * 60:
            return []
        self._stalled = True
        t = self._texts
        since = (t["since_step"].format(step=self._step) if self._step is not None
                 else t["since_start"])
        return [self._alert("stall", t["stall_title"].format(duration=self._duration(quiet)),
                            t["stall"].format(duration=self._duration(quiet), since=since,
                                              minutes=f"{minutes:g}"), self._step)]

    def on_end(self, state: str, now: float, *, error: Optional[str] = None,
               detail: Optional[str] = None) -> list[Alert]:
        """The end of the run, once: finished, crashed (``error``: the traceback or its last
        line), aborted (stopped by a signal: ``detail`` such as "SIGTERM"), or killed (the
        training process gone without an end: SIGKILL, out of memory)."""
        if self._ended:
            return []
        self._ended = True
        state = _STATE_ALIASES.get(state, state)
        state = state if state in END_STATES else "crashed"
        t = self._texts
        started = self._started_at if self._started_at is not None else now
        at = (t["at_step"].format(step=self._step) if self._step is not None
              else t["before_first_step"])
        steps = (t["no_steps"] if self._step is None else
                 t["steps_of"].format(step=self._step, total=self._total) if self._total
                 else t["steps"].format(step=self._step))
        error = _last_line(error)
        template = t["end_crashed_plain"] if state == "crashed" and not error else t[f"end_{state}"]
        lines = [template.format(at=at, steps=steps, duration=self._duration(now - started),
                                 detail=f" ({detail})" if detail else "", error=error)]
        if self._loss is not None:
            lines.append(t["last_loss"].format(value=_number(self._loss[0]), step=self._loss[1]))
        if self._best_eval is not None:
            lines.append(t["best_eval"].format(value=_number(self._best_eval[0]),
                                               step=self._best_eval[1]))
        return [self._alert("end", t[f"title_{state}"].format(run=self._run), "\n".join(lines),
                            self._step, level="info" if state == "finished" else "warning")]

    # -- the rules ---------------------------------------------------------------------------

    def _nonfinite(self, step: Optional[int], values: dict[str, float]) -> list[Alert]:
        newly = []
        for name, value in values.items():
            if math.isfinite(value):
                self._bad.discard(name)
            elif name not in self._bad:
                self._bad.add(name)
                newly.append(name)
        if not newly or not self._allowed("nonfinite", step):
            return []
        t = self._texts
        bad = [n for n in WATCHED_FINITE if n in values and not math.isfinite(values[n])]
        pairs = ", ".join(f"{n} = {_number(values[n])}" for n in bad)
        text = t["nonfinite"].format(pairs=pairs, at=self._at(step))
        if bad == [GRAD_NORM]:
            text += "\n" + t["grad_norm_only"]
        return [self._alert("nonfinite", t["nonfinite_title"].format(
            names=", ".join(bad), at=self._at(step)), text, step)]

    def _spike(self, step: Optional[int], loss: Optional[float]) -> list[Alert]:
        factor = self.config.loss_spike
        if loss is None or not math.isfinite(loss):
            return []
        alerts = []
        if factor is not None and len(self._window) >= self.config.min_window:
            median = statistics.median(self._window)
            if median > 0 and loss > factor * median and self._allowed("loss_spike", step):
                t = self._texts
                alerts.append(self._alert(
                    "loss_spike", t["spike_title"].format(at=self._at(step)),
                    t["spike"].format(value=_number(loss), at=self._at(step),
                                      ratio=f"{loss / median:.1f}", median=_number(median),
                                      count=len(self._window), factor=f"{factor:g}"), step))
        self._window.append(loss)
        return alerts

    def _resumed(self, step: Optional[int], now: float) -> Alert:
        t = self._texts
        quiet = self._duration(now - (self._last_log_at or now))
        return self._alert("resumed", t["resumed_title"].format(at=self._at(step)),
                           t["resumed"].format(at=self._at(step), duration=quiet), step)

    # -- helpers -------------------------------------------------------------------------------

    def _allowed(self, kind: str, step: Optional[int]) -> bool:
        """At most one alert of a kind per ``quiet_steps`` steps."""
        last = self._last_alert.get(kind)
        if last is not None and step is not None and step - last < self.config.quiet_steps:
            return False
        if step is not None:
            self._last_alert[kind] = step
        return True

    def _alert(self, kind: str, title: str, text: str, step: Optional[int],
               level: str = "warning") -> Alert:
        title = f"{self._run}: {title}" if kind != "end" else title
        if self._where:
            text += "\n" + self._where
        return Alert(kind=kind, title=title, text=text, step=step, level=level)

    def _at(self, step: Optional[int]) -> str:
        return self._texts["step"].format(step=step) if step is not None else self._texts["now"]

    def _duration(self, seconds: float) -> str:
        t, total = self._texts, max(0, int(round(seconds)))
        hours, rest = divmod(total, 3600)
        minutes, secs = divmod(rest, 60)
        if hours:
            return t["hours"].format(h=hours, m=minutes)
        if minutes:
            return t["minutes"].format(m=minutes, s=secs) if minutes < 10 \
                else t["minutes_only"].format(m=minutes)
        return t["seconds"].format(s=secs)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.4g}"


def _last_line(error: Optional[str]) -> str:
    """The exception's line of a traceback (its last non-empty line), kept short."""
    lines = [line.strip() for line in (error or "").splitlines() if line.strip()]
    if not lines:
        return ""
    line = lines[-1]
    return line if len(line) <= MAX_ERROR_CHARS else line[:MAX_ERROR_CHARS - 3] + "..."


_TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "run": "SwanLab run",
        "url": "Run: {url}",
        "folder": "Run folder: {folder}",
        "step": "step {step}",
        "now": "the latest log",
        "nonfinite_title": "non-finite {names} at {at}",
        "nonfinite": "{pairs} at {at}. Training goes on, but the weights are probably "
                     "diverging: check the learning rate, the warmup and this step's data.",
        "grad_norm_only": "Only the gradient norm: with fp16 mixed precision an occasional "
                          "inf is the loss scaler skipping a step; a problem when it repeats.",
        "spike_title": "loss spike at {at}",
        "spike": "train/loss {value} at {at} is {ratio}x the median ({median}) of the last "
                 "{count} logged values (alert above {factor}x: swanlab_alert_loss_spike).",
        "stall_title": "no progress for {duration}",
        "stall": "No Trainer log for {duration} ({since}), and the training process is still "
                 "there. It may be stuck (a dead node or collective, a full disk, a stopped "
                 "process) or in a long evaluation or save. Alert after "
                 "swanlab_alert_stall_minutes = {minutes}.",
        "since_step": "the last one was at step {step}",
        "since_start": "none since training started",
        "resumed_title": "progress resumed at {at}",
        "resumed": "Trainer logs are back at {at}, after {duration} without one.",
        "title_finished": "{run} finished",
        "title_crashed": "{run} crashed",
        "title_aborted": "{run} was stopped",
        "title_killed": "{run} was killed",
        "end_finished": "Training finished: {steps} in {duration}.",
        "end_crashed": "Training crashed {at} after {duration}: {error}",
        "end_crashed_plain": "Training crashed {at} after {duration}.",
        "end_aborted": "Training was stopped{detail} {at} after {duration}.",
        "end_killed": "The training process ended without finishing{detail} {at} after "
                      "{duration}: killed (SIGKILL, out of memory, the scheduler) or crashed "
                      "hard. Everything logged until then is kept.",
        "at_step": "at step {step}",
        "before_first_step": "before its first logged step",
        "steps": "{step} steps",
        "steps_of": "{step} of {total} steps",
        "no_steps": "no step logged",
        "last_loss": "Last train/loss: {value} (step {step}).",
        "best_eval": "Best eval/loss: {value} (step {step}).",
        "hours": "{h} h {m:02d} min",
        "minutes": "{m} min {s} s",
        "minutes_only": "{m} min",
        "seconds": "{s} s",
    },
    "zh": {
        "run": "SwanLab 实验",
        "url": "实验：{url}",
        "folder": "实验目录：{folder}",
        "step": "第 {step} 步",
        "now": "最新日志",
        "nonfinite_title": "{at}出现非有限值 {names}",
        "nonfinite": "{at}：{pairs}。训练仍在继续，但权重很可能正在发散：请检查学习率、预热和该步的数据。",
        "grad_norm_only": "只有梯度范数异常：使用 fp16 混合精度时，损失缩放器偶尔跳过一步会出现 inf；反复出现才是问题。",
        "spike_title": "{at}损失突增",
        "spike": "{at}的 train/loss 为 {value}，是最近 {count} 个记录值中位数（{median}）的 {ratio} 倍"
                 "（超过 {factor} 倍即告警：swanlab_alert_loss_spike）。",
        "stall_title": "已 {duration} 没有进展",
        "stall": "已 {duration} 没有收到 Trainer 日志（{since}），而训练进程仍在。它可能卡住了（节点或集合通信失效、"
                 "磁盘已满、进程被暂停），也可能正在进行较长的评估或保存。告警阈值："
                 "swanlab_alert_stall_minutes = {minutes}。",
        "since_step": "最后一次在第 {step} 步",
        "since_start": "训练开始后还没有",
        "resumed_title": "{at}恢复进展",
        "resumed": "{at}重新收到 Trainer 日志，此前 {duration} 没有日志。",
        "title_finished": "{run} 已完成",
        "title_crashed": "{run} 已崩溃",
        "title_aborted": "{run} 已被停止",
        "title_killed": "{run} 已被终止",
        "end_finished": "训练已完成：{steps}，用时 {duration}。",
        "end_crashed": "训练{at}崩溃，用时 {duration}：{error}",
        "end_crashed_plain": "训练{at}崩溃，用时 {duration}。",
        "end_aborted": "训练{at}被停止{detail}，用时 {duration}。",
        "end_killed": "训练进程{at}未正常结束就退出了{detail}，用时 {duration}：被强制终止（SIGKILL、内存不足或调度器）"
                      "或严重崩溃。此前记录的数据都已保留。",
        "at_step": "在第 {step} 步",
        "before_first_step": "在记录第一步之前",
        "steps": "共 {step} 步",
        "steps_of": "{step}/{total} 步",
        "no_steps": "没有记录任何一步",
        "last_loss": "最后的 train/loss：{value}（第 {step} 步）。",
        "best_eval": "最佳 eval/loss：{value}（第 {step} 步）。",
        "hours": "{h} 小时 {m:02d} 分",
        "minutes": "{m} 分 {s} 秒",
        "minutes_only": "{m} 分",
        "seconds": "{s} 秒",
    },
}
