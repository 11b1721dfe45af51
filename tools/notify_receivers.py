#!/usr/bin/env python3
"""Local stand-ins for the notification services SwanLab's senders talk to (stdlib only).

``WebhookReceiver``: one HTTP server on 127.0.0.1 for Lark, DingTalk, WeCom, Slack, Discord,
Bark and Telegram (the path says which: a first segment named after the channel, Bark's
``/push`` and Telegram's ``/bot<token>/<method>``; ``url(channel)`` gives the address to
configure). It records every request and answers as the service does: its success answer, its
own error answer for a bad signature (Lark and DingTalk, when ``secrets[channel]`` is set), and
per-channel faults in ``faults[channel]``:

  "500"     an HTTP 500 answer
  "refuse"  the service's own error answer (a wrong token, an unknown chat)
  "down"    the connection is closed without an answer
  "hang"    no answer until the receiver closes (or ``release()``)

``closed_address()`` gives an address where nothing listens (connection refused).

``SmtpReceiver``: a minimal SMTP server (socketserver; smtpd is gone in Python 3.12) with
STARTTLS (the test certificate in tools/notify_tls/: a client must trust ``CA_FILE``, e.g.
through ``SSL_CERT_FILE``) and AUTH PLAIN/LOGIN, recording every mail. Faults: "auth" (535),
"reject" (554 after DATA), "down", "hang".

By hand: ``python tools/notify_receivers.py`` prints each channel's address and every request.
"""
from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import hmac
import json
import socket
import socketserver
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional
from urllib.parse import parse_qs, urlsplit

TLS_DIR = Path(__file__).resolve().parent / "notify_tls"
CA_FILE = TLS_DIR / "ca.pem"
SERVER_PEM = TLS_DIR / "server.pem"
HANG_LIMIT = 120.0  # a hung answer ends by itself after this, whatever happens
CHANNELS = ("lark", "dingtalk", "wecom", "slack", "discord", "bark", "telegram")


def closed_address() -> str:
    """An http address on 127.0.0.1 where nothing listens (a service that is down)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _wait(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout:g} s: {what}")
        time.sleep(0.02)


class _Served:
    """A server answering on a thread of its own; a context manager that closes it."""

    _released: threading.Event  # set: every hung answer ends

    def _serve(self, server: socketserver.BaseServer, name: str) -> None:
        self._server = server
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True,
                         name=name).start()

    def release(self) -> None:
        """End every hung answer now."""
        self._released.set()

    def close(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# -- webhooks ------------------------------------------------------------------------------------


@dataclass
class Request:
    channel: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    fault: Optional[str]
    at: float = field(default_factory=time.time)

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body.decode("utf-8"))
        except ValueError:
            return None


# The services' own answers (from their documentation, see docs/notifications.md).
_REFUSALS = {
    "lark": (200, {"code": 19001, "msg": "param invalid: incoming webhook access token invalid",
                   "data": {}}),
    "dingtalk": (200, {"errcode": 300001, "errmsg": "token is not exist"}),
    "wecom": (200, {"errcode": 93000, "errmsg": "invalid webhook url"}),
    "slack": (403, "invalid_token"),
    "discord": (401, {"message": "Invalid Webhook Token", "code": 50027}),
    "bark": (400, {"code": 400, "message": "failed to get device token: device key is empty",
                   "timestamp": 0}),
    "telegram": (400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}),
}
_BAD_SIGNATURE = {
    "lark": (200, {"code": 19021, "msg": "sign match fail or timestamp is not within one hour "
                                         "from current time", "data": {}}),
    "dingtalk": (200, {"errcode": 310000, "errmsg": "sign not match"}),
}


def lark_signature(timestamp: str, secret: str) -> str:
    """Lark's: HMAC-SHA256 keyed with "<timestamp>\\n<secret>" over nothing, base64."""
    key = f"{timestamp}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


def dingtalk_signature(timestamp_ms: str, secret: str) -> str:
    """DingTalk's: HMAC-SHA256 keyed with the secret over "<timestamp ms>\\n<secret>", base64
    (sent URL-encoded in the query)."""
    mac = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


class WebhookReceiver(_Served):
    def __init__(self) -> None:
        self.faults: dict[str, Optional[str]] = {}
        self.secrets: dict[str, str] = {}  # channel -> signing secret to check
        self._requests: list[Request] = []
        self._lock = threading.Lock()
        self._released = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                receiver._handle(self)

            do_GET = do_POST

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self.base = f"http://127.0.0.1:{server.server_address[1]}"
        self._serve(server, "notify-receiver")

    def url(self, channel: str, token: str = "test-token") -> str:
        """The address to configure for a channel (Bark: the server; Telegram: the Bot API
        base, SWANLAB_AUTOPATCH_TELEGRAM_API)."""
        return {
            "lark": f"{self.base}/lark/open-apis/bot/v2/hook/{token}",
            "dingtalk": f"{self.base}/dingtalk/robot/send?access_token={token}",
            "wecom": f"{self.base}/wecom/cgi-bin/webhook/send?key={token}",
            "slack": f"{self.base}/slack/services/T000/B000/{token}",
            "discord": f"{self.base}/discord/api/webhooks/1234/{token}",
            "bark": self.base,  # SwanLab posts to <server>/push
            "telegram": self.base,  # SwanLab posts to <api>/bot<token>/sendMessage
        }[channel]

    def requests(self, channel: Optional[str] = None) -> list[Request]:
        with self._lock:
            return [r for r in self._requests if channel in (None, r.channel)]

    def wait_for(self, count: int, channel: Optional[str] = None,
                 timeout: float = 20.0) -> list[Request]:
        return _wait(lambda: len(self.requests(channel)) >= count and self.requests(channel),
                     timeout, f"{count} request(s) to {channel or 'any channel'}")

    # -- one request --------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        channel = parts.path.strip("/").split("/", 1)[0]
        if channel == "push":
            channel = "bark"
        elif channel.startswith("bot"):
            channel = "telegram"
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        fault = self.faults.get(channel)
        request = Request(channel=channel, method=handler.command, path=parts.path,
                          query={k: v[-1] for k, v in parse_qs(parts.query).items()},
                          headers={k.lower(): v for k, v in handler.headers.items()},
                          body=body, fault=fault)
        with self._lock:
            self._requests.append(request)
        if fault == "down":
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault == "hang":
            self._released.wait(HANG_LIMIT)
            handler.close_connection = True
            return
        if channel not in CHANNELS:
            status, answer = 404, {"error": "unknown channel"}
        elif fault == "500":
            status, answer = 500, "Internal Server Error"
        elif fault == "refuse":
            status, answer = _REFUSALS[channel]
        elif not self._signed(channel, request):
            status, answer = _BAD_SIGNATURE[channel]
        else:
            status, answer = self._success(channel, request)
        self._answer(handler, status, answer)

    def _signed(self, channel: str, request: Request) -> bool:
        secret = self.secrets.get(channel)
        if not secret:
            return True
        now = time.time()
        if channel == "lark":
            payload = request.json or {}
            timestamp = str(payload.get("timestamp", ""))
            fresh = timestamp.isdigit() and abs(now - int(timestamp)) < 3600
            return fresh and hmac.compare_digest(str(payload.get("sign", "")),
                                                 lark_signature(timestamp, secret))
        if channel == "dingtalk":
            timestamp = request.query.get("timestamp", "")
            fresh = timestamp.isdigit() and abs(now * 1000 - int(timestamp)) < 3_600_000
            return fresh and hmac.compare_digest(request.query.get("sign", ""),
                                                 dingtalk_signature(timestamp, secret))
        return True

    @staticmethod
    def _success(channel: str, request: Request) -> tuple[int, Any]:
        payload = request.json or {}
        if channel == "lark":
            return 200, {"StatusCode": 0, "StatusMessage": "success", "code": 0, "data": {},
                         "msg": "success"}
        if channel in ("dingtalk", "wecom"):
            return 200, {"errcode": 0, "errmsg": "ok"}
        if channel == "slack":
            return 200, "ok"
        if channel == "discord":
            return 204, None
        if channel == "bark":
            return 200, {"code": 200, "message": "success", "timestamp": int(time.time())}
        return 200, {"ok": True, "result": {"message_id": 1, "date": int(time.time()),
                                            "chat": {"id": payload.get("chat_id")},
                                            "text": payload.get("text")}}

    @staticmethod
    def _answer(handler: BaseHTTPRequestHandler, status: int, answer: Any) -> None:
        if answer is None:
            data, kind = b"", None
        elif isinstance(answer, str):
            data, kind = answer.encode(), "text/plain; charset=utf-8"
        else:
            data, kind = json.dumps(answer).encode(), "application/json; charset=utf-8"
        handler.send_response(status)
        if kind:
            handler.send_header("Content-Type", kind)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


# -- email ---------------------------------------------------------------------------------------


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    data: bytes
    login: Optional[tuple[str, str]]  # (user, password) the client logged in with
    tls: bool

    @property
    def message(self) -> email.message.EmailMessage:
        """The mail parsed (the wire's CRLF line ends read as newlines)."""
        return email.message_from_bytes(self.data.replace(b"\r\n", b"\n"),
                                        policy=email.policy.default)


class _SmtpSession(socketserver.StreamRequestHandler):
    server: "_SmtpServer"

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self) -> None:
        receiver = self.server.receiver
        fault = receiver.fault
        receiver.connections += 1
        if fault == "down":
            return  # closed at once, before the greeting
        if fault == "hang":
            receiver._released.wait(HANG_LIMIT)
            return
        self.tls, self.login, self.sender, self.recipients = False, None, None, []
        self.reply("220 127.0.0.1 ESMTP notify-receivers")
        while True:
            line = self.rfile.readline(65536)
            if not line:
                return
            verb, _, argument = line.decode("utf-8", "replace").strip().partition(" ")
            verb = verb.upper()
            if verb == "EHLO":
                features = ["250-127.0.0.1"]
                features.append("250-AUTH PLAIN LOGIN" if self.tls else "250-STARTTLS")
                self.reply("\r\n".join(features + ["250 8BITMIME"]))
            elif verb == "HELO":
                self.reply("250 127.0.0.1")
            elif verb == "STARTTLS" and not self.tls:
                self.reply("220 2.0.0 Ready to start TLS")
                self._start_tls()
            elif verb == "AUTH" and self.tls:
                self._auth(argument)
            elif verb == "MAIL":
                self.sender = argument.split(":", 1)[-1].strip().strip("<>").split(">")[0]
                self.recipients = []
                self.reply("250 2.1.0 OK" if self.login else "530 5.7.0 Authentication required")
            elif verb == "RCPT":
                self.recipients.append(argument.split(":", 1)[-1].strip().strip("<>"))
                self.reply("250 2.1.5 OK")
            elif verb == "DATA":
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                data = self._read_data()
                if receiver.fault == "reject":
                    self.reply("554 5.7.1 Message rejected")
                    continue
                receiver._record(Mail(self.sender or "", list(self.recipients), data,
                                      self.login, self.tls))
                self.reply("250 2.0.0 OK queued")
            elif verb in ("RSET", "NOOP"):
                self.reply("250 2.0.0 OK")
            elif verb == "QUIT":
                self.reply("221 2.0.0 Bye")
                return
            else:
                self.reply("502 5.5.2 Command not recognized")

    def _start_tls(self) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(SERVER_PEM)
        self.connection = context.wrap_socket(self.connection, server_side=True)
        self.rfile = self.connection.makefile("rb")
        self.wfile = self.connection.makefile("wb")
        self.tls = True

    def _auth(self, argument: str) -> None:
        mechanism, _, initial = argument.partition(" ")
        mechanism = mechanism.upper()
        if mechanism == "PLAIN":
            if not initial:
                self.reply("334 ")
                initial = self.rfile.readline().decode().strip()
            _, user, password = base64.b64decode(initial).decode().split("\0")
        elif mechanism == "LOGIN":
            self.reply("334 VXNlcm5hbWU6")
            user = base64.b64decode(self.rfile.readline().strip()).decode()
            self.reply("334 UGFzc3dvcmQ6")
            password = base64.b64decode(self.rfile.readline().strip()).decode()
        else:
            self.reply("504 5.5.4 Unrecognized authentication type")
            return
        users = self.server.receiver.users
        if self.server.receiver.fault == "auth" or (users is not None and
                                                    users.get(user) != password):
            self.reply("535 5.7.8 Authentication credentials invalid")
            return
        self.login = (user, password)
        self.reply("235 2.7.0 Authentication successful")

    def _read_data(self) -> bytes:
        lines = []
        while True:
            line = self.rfile.readline(1 << 20)
            if not line or line in (b".\r\n", b".\n"):
                break
            lines.append(line[1:] if line.startswith(b"..") else line)
        return b"".join(lines)


class _SmtpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    receiver: "SmtpReceiver"


class SmtpReceiver(_Served):
    def __init__(self, users: Optional[dict[str, str]] = None) -> None:
        self.users = users  # user -> password; None accepts any login
        self.fault: Optional[str] = None
        self.connections = 0
        self._mails: list[Mail] = []
        self._lock = threading.Lock()
        self._released = threading.Event()
        server = _SmtpServer(("127.0.0.1", 0), _SmtpSession)
        server.receiver = self
        self.host, self.port = server.server_address[:2]
        self._serve(server, "smtp-receiver")

    def _record(self, mail: Mail) -> None:
        with self._lock:
            self._mails.append(mail)

    def mails(self) -> list[Mail]:
        with self._lock:
            return list(self._mails)

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Mail]:
        return _wait(lambda: len(self.mails()) >= count and self.mails(), timeout,
                     f"{count} mail(s)")


def main() -> None:
    with WebhookReceiver() as hooks, SmtpReceiver() as smtp:
        for channel in CHANNELS:
            print(f"{channel:9} {hooks.url(channel)}")
        print(f"{'email':9} smtp {smtp.host}:{smtp.port} (STARTTLS; trust {CA_FILE})")
        seen = 0
        try:
            while True:
                time.sleep(0.5)
                for request in hooks.requests()[seen:]:
                    print(f"{request.channel}: {request.method} {request.path} "
                          f"{request.body[:300].decode('utf-8', 'replace')}")
                seen = len(hooks.requests())
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
