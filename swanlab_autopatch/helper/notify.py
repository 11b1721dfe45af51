"""Messages on every notification channel the settings configure, sent by SwanLab's own senders.

SwanLab's senders (``swanlab/plugin/notification/``, the same eight in 0.8.0 to 0.10.3; see
docs/notifications.md) are run callbacks: they build SwanLab's end-of-run text, send it on a
shared pool, and on failure print SwanLab's own error line, which quotes the failed request's
address (the webhook URL or the Telegram token: a secret). Here, for each message, a fresh
sender is built whose text builders return our message, and its send method is run with two
names of its module replaced: ``safe``, whose ``block`` would swallow the error, lets it reach
us, and ``console``, which would print, turns the channel's refusal into an exception. So the
endpoint, payload, signature and client are SwanLab's; what is printed is ours: one masked
warning per failing channel, nothing for a working one.

``send`` never raises and never waits longer than its bound (``SWANLAB_AUTOPATCH_NOTIFY_TIMEOUT``,
15 s): each channel sends on its own daemon thread, and a channel still busy with an earlier
message (a hung webhook) is skipped, so threads never pile up. ``post`` queues a message for
a background thread (in order) and returns at once; ``flush`` waits for the queue, bounded.
"""
from __future__ import annotations

import collections
import contextlib
import html
import json
import os
import threading
import time
import types
from dataclasses import dataclass
from typing import Any, Callable, Optional

from swanlab_autopatch import log
from swanlab_autopatch._startup import seconds
from swanlab_autopatch.config import channels
from swanlab_autopatch.redact import mask, register_secret

MAX_TEXT_BYTES = 2000  # WeCom takes at most 2048 bytes of text, the smallest of the channels
MAX_QUEUED = 32  # messages waiting for `post`'s thread; the oldest is dropped past it
TELEGRAM_API = "https://api.telegram.org"


def notify_timeout() -> float:
    """How long ``send`` waits for the channels."""
    return seconds("SWANLAB_AUTOPATCH_NOTIFY_TIMEOUT", 15.0)


def telegram_api() -> str:
    """The Bot API server: Telegram's, or a self-hosted one (``telegram-bot-api``; the tests
    point it at a local receiver). SwanLab's sender has Telegram's address built in."""
    return os.environ.get("SWANLAB_AUTOPATCH_TELEGRAM_API", "").strip().rstrip("/") or TELEGRAM_API


@dataclass(frozen=True)
class Message:
    title: str
    text: str
    url: Optional[str] = None  # the run's page: a link on Bark and in the email


class Refused(Exception):
    """The channel answered but did not take the message (its answer, in its words)."""


class _Console:
    """Stands in for SwanLab's console in its send methods: silent on success; its failure
    report (``warning``: the channel's own error code and message) becomes an exception."""

    def info(self, *args: Any, **kwargs: Any) -> None:
        pass

    debug = info

    def warning(self, *args: Any, **kwargs: Any) -> None:
        text = " ".join(str(a) for a in args)
        raise Refused(text.split("failed: ", 1)[-1])  # "❌ LarkBot sending failed: <why>"

    error = trace = warning


class _Safe:
    """Stands in for SwanLab's ``safe`` module: its ``block`` swallows the error and prints it
    with the request's address; ours lets the error through to ``_Channel.deliver``."""

    @staticmethod
    def block(*args: Any, **kwargs: Any) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()


def _rebound(function: Callable) -> Callable:
    """SwanLab's send method with our console and safe in place of its module's."""
    code = function.__code__
    if not {"console", "safe"} <= set(code.co_names):
        # A sender that reports some other way could print a secret: not used.
        raise RuntimeError("its sender no longer reports through console and safe")
    env = dict(function.__globals__, console=_Console(), safe=_Safe())
    return types.FunctionType(code, env, function.__name__, function.__defaults__,
                              function.__closure__)


def _clamp(text: str) -> str:
    data = text.encode("utf-8")
    if len(data) <= MAX_TEXT_BYTES:
        return text
    return data[:MAX_TEXT_BYTES - 3].decode("utf-8", "ignore") + "..."


_LINK = {"en": "Open the run", "zh": "查看实验"}


class _MessageTexts:
    """Mixed into a SwanLab sender: its text builders return one message."""

    message: Message
    language: str

    def _build_content(self, state: Any, error: Any) -> str:  # every sender's text
        return _clamp(f"{self.message.title}\n{self.message.text}")

    def _build_subject(self, error: Any) -> str:  # EmailCallback
        return self.message.title

    def _build_html(self, error: Any) -> str:  # EmailCallback: the text/html alternative
        link = ""
        if self.message.url:
            link = (f'<p><a href="{html.escape(self.message.url, quote=True)}">'
                    f'{_LINK.get(self.language, _LINK["en"])}</a></p>')
        return (f'<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>'
                f"<h3>{html.escape(self.message.title)}</h3>"
                f'<p style="white-space:pre-wrap">{html.escape(self.message.text)}</p>{link}'
                f"</body></html>")

    def _build_payload(self, error: Any) -> dict:  # BarkCallback: SwanLab's fields, our texts
        payload = super()._build_payload(None)  # type: ignore[misc]
        payload.pop("subtitle", None)
        payload.update(title=self.message.title, body=_clamp(self.message.text))
        if self.message.url:
            payload["url"] = self.message.url
        return payload


def _arguments(name: str, settings: Any) -> dict:
    """The SwanLab sender's constructor arguments for a channel (None: SwanLab's default)."""
    secret, language = settings.secret, settings.swanlab_notify_language
    if name in ("lark", "dingtalk", "wecom", "slack", "discord"):
        arguments = {"webhook_url": secret(f"swanlab_{name}_webhook_url"), "language": language}
        if name in ("lark", "dingtalk"):
            arguments["secret"] = secret(f"swanlab_{name}_secret")
        return arguments
    if name == "telegram":
        return {"bot_token": secret("swanlab_telegram_bot_token"),
                "chat_id": settings.swanlab_telegram_chat_id, "language": language}
    if name == "bark":
        return {"key": secret("swanlab_bark_key"), "url": settings.swanlab_bark_server,
                "language": language}
    return {"sender_email": settings.swanlab_email_sender,  # email
            "receiver_email": settings.swanlab_email_receiver,
            "password": secret("swanlab_email_password"),
            "smtp_server": settings.swanlab_email_smtp_server,
            "port": settings.swanlab_email_smtp_port, "language": language}


class _Channel:
    """One configured channel: builds SwanLab's sender per message and runs its send."""

    def __init__(self, channel: channels.Channel, settings: Any) -> None:
        import swanlab.plugin

        base = getattr(swanlab.plugin, channel.swanlab_class)
        self.name, self.label = channel.name, channel.label
        self._class = type(f"Autopatch{base.__name__}", (_MessageTexts, base), {})
        self._send = _rebound(base._send_notification)
        self._arguments = {k: v for k, v in _arguments(channel.name, settings).items()
                           if v is not None}
        self.busy = False  # a send of this channel is under way (possibly hung)
        self.failures = 0

    def deliver(self, message: Message) -> None:
        """Send one message; raises whatever the channel's failure was."""
        sender = self._class(**self._arguments)
        sender.message = message
        if self.name == "telegram" and telegram_api() != TELEGRAM_API:
            sender._api_url = sender._api_url.replace(TELEGRAM_API, telegram_api(), 1)
        self._send(sender, "notification", None)


def _reason(exc: BaseException) -> str:
    """Why a channel failed, in words that never quote its address or credentials."""
    if isinstance(exc, Refused):
        return f"it refused the message ({mask(exc)})"
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if status:
        return f"the server answered HTTP {status}{_answer_detail(response)}"
    import smtplib
    import ssl

    if isinstance(exc, ssl.SSLError):  # before ValueError: a failed verification is both
        return f"TLS failed ({getattr(exc, 'reason', None) or type(exc).__name__})"
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return f"the mail server refused the login ({exc.smtp_code})"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"the mail server answered {exc.smtp_code}"
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return "the mail server closed the connection"
    if isinstance(exc, json.JSONDecodeError) or type(exc).__name__ == "JSONDecodeError":
        return "the answer was not the channel's (not JSON)"
    try:
        import requests

        if isinstance(exc, requests.Timeout):
            return "the server did not answer in time"
        if isinstance(exc, requests.ConnectionError):
            return "cannot connect (refused, unreachable, or the connection was dropped)"
    except ImportError:
        pass
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}"
    return type(exc).__name__


def _answer_detail(response: Any) -> str:
    """The service's own words from an error answer (Slack: "invalid_token", Telegram:
    "Bad Request: chat not found"), short and masked; empty when there are none."""
    try:
        text = response.text.strip()
        try:
            answer = json.loads(text)
            text = next((str(answer[k]) for k in ("description", "message", "msg", "errmsg",
                                                  "error") if isinstance(answer, dict)
                         and answer.get(k)), "")
        except ValueError:
            pass
        text = " ".join(text.split())
        if not text or "<" in text:  # nothing, or an HTML error page
            return ""
        return f": {mask(text if len(text) <= 120 else text[:117] + '...')}"
    except Exception:
        return ""


def _senders_usable() -> bool:
    from swanlab_autopatch.tracking import compat  # only with a channel (it reads the client)

    return compat.usable("notification_sender")


class Notifier:
    """Every channel the settings configure. ``send``/``post`` never raise."""

    def __init__(self, settings: Any, *, timeout: Optional[float] = None) -> None:
        self.timeout = notify_timeout() if timeout is None else timeout
        self._channels: list[_Channel] = []
        configured = channels.configured(settings)
        # A sender that moved in this client is named once, in compat's warning.
        senders_named = bool(configured) and not _senders_usable()
        for channel in configured:
            register_secret(*(settings.secret(k) for k in channel.secrets))
            try:
                self._channels.append(_Channel(channel, settings))
            except Exception as exc:
                if not senders_named:
                    log.warning(f"{channel.label} notifications are unavailable with this "
                                f"SwanLab client ({_version()}: {type(exc).__name__}: {exc}); "
                                "the other channels work.")
        self._queue: collections.deque[Message] = collections.deque()
        self._pending = 0
        self._dropped = 0
        self._wake = threading.Condition()
        self._worker: Optional[threading.Thread] = None

    @property
    def channels(self) -> list[str]:
        return [c.name for c in self._channels]

    def send(self, title: str, text: str, url: Optional[str] = None) -> dict[str, Optional[str]]:
        """Send one message on every channel at once, waiting at most ``timeout`` seconds.
        Returns channel -> None (sent) or why not."""
        try:
            return self._send(Message(title, text, url))
        except Exception as exc:  # never the caller's problem
            log.debug(f"notifications failed: {exc!r}")
            return {}

    def _send(self, message: Message) -> dict[str, Optional[str]]:
        deadline = time.monotonic() + self.timeout
        results: dict[str, Optional[str]] = {}
        running = []
        for channel in self._channels:
            if channel.busy:
                results[channel.name] = "still busy with an earlier message"
                continue
            channel.busy = True
            outcome: dict[str, str] = {}
            thread = threading.Thread(target=self._deliver, args=(channel, message, outcome),
                                      name=f"swanlab-autopatch-notify-{channel.name}",
                                      daemon=True)
            thread.start()
            running.append((channel, thread, outcome))
        for channel, thread, outcome in running:
            thread.join(max(0.0, deadline - time.monotonic()))
            results[channel.name] = (f"no answer within {self.timeout:g} s" if thread.is_alive()
                                     else outcome.get("error"))
        for channel in self._channels:
            if results.get(channel.name):
                self._failed(channel, results[channel.name])
        return results

    @staticmethod
    def _deliver(channel: _Channel, message: Message, outcome: dict) -> None:
        try:
            channel.deliver(message)
        except Exception as exc:
            outcome["error"] = _reason(exc)
        finally:
            channel.busy = False

    @staticmethod
    def _failed(channel: _Channel, reason: str) -> None:
        channel.failures += 1
        if channel.failures == 1:
            log.warning(f"{channel.label} notification failed: {reason}. Training continues; "
                        f"later {channel.label} failures are not reported.")
        else:
            log.debug(f"{channel.label} notification failed again: {reason}")

    # -- in the background ---------------------------------------------------------------------

    def post(self, title: str, text: str, url: Optional[str] = None) -> None:
        """Queue a message for the background sender and return at once."""
        if not self._channels:
            return
        with self._wake:
            if len(self._queue) >= MAX_QUEUED:
                self._queue.popleft()
                self._pending -= 1
                self._dropped += 1
                log.debug(f"notification queue full: {self._dropped} message(s) dropped")
            self._queue.append(Message(title, text, url))
            self._pending += 1
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, daemon=True,
                                                name="swanlab-autopatch-notify")
                self._worker.start()
            self._wake.notify_all()

    def _work(self) -> None:
        while True:
            with self._wake:
                while not self._queue:
                    self._wake.wait()
                message = self._queue.popleft()
            try:
                self._send(message)
            except Exception as exc:
                log.debug(f"notifications failed: {exc!r}")
            with self._wake:
                self._pending -= 1
                self._wake.notify_all()

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait until every posted message was sent (or given up on); True when done."""
        deadline = time.monotonic() + (self.timeout + 1 if timeout is None else timeout)
        with self._wake:
            while self._pending > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._wake.wait(left)
        return True


def _version() -> str:
    try:
        from importlib.metadata import version

        return f"swanlab {version('swanlab')}"
    except Exception:
        return "swanlab"
