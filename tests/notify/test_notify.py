"""The notification module (swanlab_autopatch/helper/notify.py) with the REAL SwanLab senders of
the installed client, against local stand-ins of every service (tools/notify_receivers.py):
each payload in its service's documented format (docs/notifications.md), signatures included,
the language kept, and a failing, refusing or hung channel costing one warning and a bounded
wait, nothing more."""
from __future__ import annotations

import base64
import hashlib
import hmac
import importlib.util
import json
import sys
import time
from pathlib import Path

import pytest

from swanlab_autopatch.config.channels import CHANNELS
from swanlab_autopatch.config.settings import parse
from swanlab_autopatch.helper import notify
from swanlab_autopatch.helper.alerts import AlertConfig, AlertRules

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("notify_receivers",
                                               REPO / "tools" / "notify_receivers.py")
receivers = importlib.util.module_from_spec(_spec)
sys.modules["notify_receivers"] = receivers
_spec.loader.exec_module(receivers)

pytestmark = pytest.mark.timeout(120)

TOKEN = "tokCANARY4d1e"  # the secret part of every webhook address
LARK_SECRET, DINGTALK_SECRET = "larkCANARY-s", "SECdingCANARY"
BOT_TOKEN = f"123456:{TOKEN}"
BARK_KEY = f"bark{TOKEN}"
PASSWORD = f"pw-{TOKEN}"
SECRETS = (TOKEN, LARK_SECRET, DINGTALK_SECRET)
TITLE, TEXT = "demo/gentle-tiger-13: non-finite train/loss at step 6", \
    "train/loss = NaN at step 6.\nRun: https://swanlab.cn/@me/demo/runs/abc"
RUN_URL = "https://swanlab.cn/@me/demo/runs/abc"
ALL = ("lark", "dingtalk", "wecom", "slack", "discord", "telegram", "bark", "email")


@pytest.fixture
def hooks(monkeypatch):
    with receivers.WebhookReceiver() as server:
        server.secrets.update(lark=LARK_SECRET, dingtalk=DINGTALK_SECRET)
        monkeypatch.setenv("SWANLAB_AUTOPATCH_TELEGRAM_API", server.url("telegram"))
        yield server


@pytest.fixture
def smtp(monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(receivers.CA_FILE))  # trust the test certificate
    with receivers.SmtpReceiver({"me@example.com": PASSWORD}) as server:
        yield server


def settings_for(hooks, smtp, channels=ALL, language="en", **overrides):
    every = {
        "lark": {"swanlab_lark_webhook_url": hooks.url("lark", TOKEN),
                 "swanlab_lark_secret": LARK_SECRET},
        "dingtalk": {"swanlab_dingtalk_webhook_url": hooks.url("dingtalk", TOKEN),
                     "swanlab_dingtalk_secret": DINGTALK_SECRET},
        "wecom": {"swanlab_wecom_webhook_url": hooks.url("wecom", TOKEN)},
        "slack": {"swanlab_slack_webhook_url": hooks.url("slack", TOKEN)},
        "discord": {"swanlab_discord_webhook_url": hooks.url("discord", TOKEN)},
        "telegram": {"swanlab_telegram_bot_token": BOT_TOKEN, "swanlab_telegram_chat_id": -42},
        "bark": {"swanlab_bark_key": BARK_KEY, "swanlab_bark_server": hooks.url("bark")},
        "email": {"swanlab_email_sender": "me@example.com", "swanlab_email_password": PASSWORD,
                  "swanlab_email_receiver": ["you@example.com", "ops@example.com"],
                  "swanlab_email_smtp_server": "127.0.0.1",
                  "swanlab_email_smtp_port": smtp.port if smtp else 587},
    }
    cfg = {"swanlab_project": "demo", "swanlab_notify_language": language}
    for name in channels:
        cfg.update(every[name])
    cfg.update(overrides)
    return parse(cfg, env={}).settings


def warnings_in(text: str) -> list[str]:
    return [line for line in text.splitlines() if "WARNING" in line]


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, text


# -- every channel, its documented format --------------------------------------------------------


def test_every_channel_gets_the_message_in_its_format(hooks, smtp, capfd):
    notifier = notify.Notifier(settings_for(hooks, smtp), timeout=20)
    assert notifier.channels == list(ALL)
    started = time.time()
    results = notifier.send(TITLE, TEXT, url=RUN_URL)
    assert results == {name: None for name in ALL}, results
    content = f"{TITLE}\n{TEXT}"

    # Lark custom bot: {"msg_type": "text", "content": {"text"}}, signed with timestamp + sign
    lark, = hooks.requests("lark")
    body = lark.json
    assert lark.method == "POST" and lark.path == f"/lark/open-apis/bot/v2/hook/{TOKEN}"
    assert body["msg_type"] == "text" and body["content"] == {"text": content}
    assert abs(int(body["timestamp"]) - started) < 60  # seconds
    key = f"{body['timestamp']}\n{LARK_SECRET}".encode()
    assert body["sign"] == base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()

    # DingTalk custom robot: {"msgtype": "text", "text": {"content"}}, timestamp (ms) and sign
    # (HMAC-SHA256 of "<timestamp>\n<secret>" keyed with the secret, base64) in the query
    ding, = hooks.requests("dingtalk")
    assert ding.json == {"msgtype": "text", "text": {"content": content}}
    assert ding.query["access_token"] == TOKEN
    stamp = ding.query["timestamp"]
    assert abs(int(stamp) / 1000 - started) < 60  # milliseconds
    mac = hmac.new(DINGTALK_SECRET.encode(), f"{stamp}\n{DINGTALK_SECRET}".encode(), hashlib.sha256)
    assert ding.query["sign"] == base64.b64encode(mac.digest()).decode()

    # WeCom group robot: {"msgtype": "text", "text": {"content"}}, the key in the query
    wecom, = hooks.requests("wecom")
    assert wecom.json == {"msgtype": "text", "text": {"content": content}}
    assert wecom.query == {"key": TOKEN}

    # Slack incoming webhook: {"text"}; Discord webhook: {"content"}
    assert hooks.requests("slack")[0].json == {"text": content}
    assert hooks.requests("discord")[0].json == {"content": content}
    for request in hooks.requests():
        if request.channel != "bark":
            assert request.headers["content-type"] == "application/json"

    # Telegram Bot API: POST /bot<token>/sendMessage {"chat_id", "text"}
    telegram, = hooks.requests("telegram")
    assert telegram.path == f"/bot{BOT_TOKEN}/sendMessage"
    assert telegram.json == {"chat_id": "-42", "text": content}

    # Bark: POST <server>/push, JSON with device_key, title, body (and a link to the run)
    bark, = hooks.requests("bark")
    assert bark.path == "/push" and bark.headers["content-type"].startswith("application/json")
    assert {k: bark.json[k] for k in ("device_key", "title", "body", "url")} == \
        {"device_key": BARK_KEY, "title": TITLE, "body": TEXT, "url": RUN_URL}
    assert bark.json["level"] == "active"

    # Email: STARTTLS, login, one mail to every receiver, plain text and HTML alternatives
    mail, = smtp.mails()
    assert mail.tls and mail.login == ("me@example.com", PASSWORD)
    assert mail.sender == "me@example.com"
    assert sorted(mail.recipients) == ["ops@example.com", "you@example.com"]
    message = mail.message
    assert message["Subject"] == TITLE and message["From"] == "me@example.com"
    assert message.get_body(("plain",)).get_content().strip() == content
    page = message.get_body(("html",)).get_content()
    assert "non-finite train/loss at step 6" in page and f'href="{RUN_URL}"' in page

    out, err = capfd.readouterr()
    assert warnings_in(out + err) == [] and "✅" not in out + err  # SwanLab prints nothing
    assert_no_secret(out + err)


def test_the_language_is_kept_on_every_channel(hooks, smtp):
    rules = AlertRules(AlertConfig(language="zh"))
    rules.on_start(0.0, name="温柔的老虎", project="demo", url=RUN_URL)
    alert, = rules.on_metrics(6, {"train/loss": float("nan")}, 6.0)
    assert "第 6 步" in alert.title
    notifier = notify.Notifier(settings_for(hooks, smtp, language="zh"), timeout=20)
    assert notifier.send(alert.title, alert.text, url=RUN_URL) == {n: None for n in ALL}
    content = f"{alert.title}\n{alert.text}"
    assert hooks.requests("slack")[0].json == {"text": content}
    assert hooks.requests("lark")[0].json["content"]["text"] == content
    assert hooks.requests("telegram")[0].json["text"] == content
    assert hooks.requests("bark")[0].json["title"] == alert.title
    mail, = smtp.mails()
    assert mail.message["Subject"] == alert.title  # encoded for SMTP, decoded here
    assert mail.message.get_body(("plain",)).get_content().strip() == content
    assert "查看实验" in mail.message.get_body(("html",)).get_content()


def test_long_texts_are_cut_to_what_every_service_takes(hooks):
    notifier = notify.Notifier(settings_for(hooks, None, channels=("wecom",)), timeout=20)
    notifier.send("t", "长" * 5000)
    content = hooks.requests("wecom")[0].json["text"]["content"]
    assert len(content.encode()) <= 2048 and content.endswith("...")  # WeCom's limit


# -- failures: one warning per channel, bounded -------------------------------------------------


@pytest.mark.parametrize("channel, fault, reason", [
    ("slack", "500", "the server answered HTTP 500"),
    ("discord", "down", "cannot connect"),
    ("slack", "refuse", "HTTP 403: invalid_token"),
    ("discord", "refuse", "HTTP 401: Invalid Webhook Token"),
    ("telegram", "refuse", "HTTP 400: Bad Request: chat not found"),
    ("bark", "refuse", "HTTP 400: failed to get device token"),
    ("lark", "refuse", "it refused the message (param invalid"),
    ("dingtalk", "refuse", "it refused the message (token is not exist)"),
    ("wecom", "refuse", "it refused the message (invalid webhook url)"),
    ("wecom", "500", "the server answered HTTP 500"),
])
def test_a_failing_channel_costs_one_warning(hooks, channel, fault, reason, capfd):
    others = ("slack", "wecom") if channel != "slack" else ("discord", "wecom")
    others = tuple(o for o in others if o != channel)
    notifier = notify.Notifier(settings_for(hooks, None, channels=(channel, *others)), timeout=20)
    hooks.faults[channel] = fault
    for _ in range(3):
        results = notifier.send(TITLE, TEXT)
        assert reason in (results[channel] or ""), results
        assert all(results[o] is None for o in others), results
    for other in others:
        assert len(hooks.requests(other)) == 3  # the others are untouched
    assert len(hooks.requests(channel)) == 3  # tried every time
    out, err = capfd.readouterr()
    label = next(c.label for c in CHANNELS if c.name == channel)
    assert warnings_in(out + err) == [
        f"[swanlab-autopatch] WARNING: {label} notification failed: {results[channel]}. "
        f"Training continues; later {label} failures are not reported."]
    assert "❌" not in out + err  # SwanLab's own error line (it quotes the address) never shows
    assert_no_secret(out + err)


def test_a_wrong_signing_secret_is_refused_by_lark_and_dingtalk(hooks, capfd):
    hooks.secrets.update(lark="another-secret", dingtalk="SECanother")
    notifier = notify.Notifier(settings_for(hooks, None, channels=("lark", "dingtalk")), timeout=20)
    results = notifier.send(TITLE, TEXT)
    assert "sign match fail" in results["lark"] and "sign not match" in results["dingtalk"]
    _, err = capfd.readouterr()
    assert len(warnings_in(err)) == 2
    assert_no_secret(err)


def test_a_service_that_is_down(hooks, capfd):
    url = f"{receivers.closed_address()}/slack/services/T/B/{TOKEN}"
    notifier = notify.Notifier(settings_for(hooks, None, channels=("slack",),
                                            swanlab_slack_webhook_url=url), timeout=20)
    assert "cannot connect" in notifier.send(TITLE, TEXT)["slack"]
    _, err = capfd.readouterr()
    assert len(warnings_in(err)) == 1
    assert_no_secret(err)


def test_a_hung_channel_costs_the_bound_and_is_skipped_while_it_hangs(hooks, capfd):
    notifier = notify.Notifier(settings_for(hooks, None, channels=("wecom", "slack")), timeout=1.0)
    hooks.faults["wecom"] = "hang"
    began = time.monotonic()
    results = notifier.send(TITLE, TEXT)
    waited = time.monotonic() - began
    # SwanLab's own request timeout is 10 s: returning well before it is the bound at work
    assert waited < 6, waited
    assert results == {"wecom": "no answer within 1 s", "slack": None}
    began = time.monotonic()
    results = notifier.send(TITLE, TEXT)  # still hung: skipped, not a second thread
    assert time.monotonic() - began < 6
    assert results == {"wecom": "still busy with an earlier message", "slack": None}
    assert len(hooks.requests("wecom")) == 1
    hooks.faults["wecom"] = None
    hooks.release()  # the hung answer ends: the channel works again
    receivers._wait(lambda: not notifier._channels[0].busy, 20, "the hung send to end")
    assert notifier.send(TITLE, TEXT) == {"wecom": None, "slack": None}
    _, err = capfd.readouterr()
    assert len(warnings_in(err)) == 1 and "WeCom notification failed" in err


@pytest.mark.parametrize("fault, reason", [
    ("auth", "the mail server refused the login (535)"),
    ("reject", "the mail server answered 554"),
    ("down", "the mail server closed the connection"),
])
def test_email_failures(hooks, smtp, fault, reason, capfd):
    smtp.fault = fault
    notifier = notify.Notifier(settings_for(hooks, smtp, channels=("email", "slack")), timeout=20)
    results = notifier.send(TITLE, TEXT)
    assert reason.lower() in (results["email"] or "").lower() and results["slack"] is None, results
    assert smtp.mails() == []
    _, err = capfd.readouterr()
    assert len(warnings_in(err)) == 1 and PASSWORD not in err


def test_email_without_the_servers_certificate_trusted(hooks, smtp, monkeypatch, tmp_path):
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "none.pem"))  # trusts nothing
    notifier = notify.Notifier(settings_for(hooks, smtp, channels=("email",)), timeout=20)
    assert notifier.send(TITLE, TEXT)["email"].startswith("TLS failed")
    assert smtp.mails() == []


# -- in the background, and a client without a channel ------------------------------------------


def test_post_returns_at_once_and_flush_waits_for_every_message_in_order(hooks):
    notifier = notify.Notifier(settings_for(hooks, None, channels=("slack", "discord")),
                               timeout=20)
    hooks.faults["discord"] = "hang"
    began = time.monotonic()
    for i in range(3):
        notifier.post(f"title {i}", f"text {i}")
    assert time.monotonic() - began < 1.0  # posting never waits for a channel
    hooks.release()
    hooks.faults["discord"] = None
    assert notifier.flush(timeout=60)
    assert [r.json["text"] for r in hooks.requests("slack")] == \
        [f"title {i}\ntext {i}" for i in range(3)]


def test_flush_is_bounded(hooks):
    notifier = notify.Notifier(settings_for(hooks, None, channels=("slack",)), timeout=5)
    hooks.faults["slack"] = "hang"
    notifier.post("t", "x")
    began = time.monotonic()
    assert notifier.flush(timeout=0.5) is False
    assert time.monotonic() - began < 4


def test_no_channel_configured_sends_nothing(hooks):
    notifier = notify.Notifier(parse({"swanlab_project": "p"}, env={}).settings)
    assert notifier.channels == [] and notifier.send("t", "x") == {}
    notifier.post("t", "x")
    assert notifier.flush(1) and hooks.requests() == []


def test_a_client_without_a_channel_costs_one_warning_and_the_others_work(hooks, monkeypatch,
                                                                          capfd):
    import swanlab.plugin

    monkeypatch.delattr(swanlab.plugin, "SlackCallback")
    notifier = notify.Notifier(settings_for(hooks, None, channels=("slack", "discord")), timeout=20)
    assert notifier.channels == ["discord"]
    assert notifier.send(TITLE, TEXT) == {"discord": None}
    _, err = capfd.readouterr()
    assert warnings_in(err) == [line for line in err.splitlines() if "Slack notifications are "
                                "unavailable with this SwanLab client" in line]
    assert len(warnings_in(err)) == 1 and "the other channels work" in err


def test_a_sender_that_no_longer_reports_through_swanlabs_console_is_not_used():
    def _send_notification(self, state, error):  # prints its own way: could leak a secret
        print(self, state, error)

    with pytest.raises(RuntimeError):
        notify._rebound(_send_notification)


def test_the_senders_print_nothing_even_on_success(hooks, capfd):
    """SwanLab's senders print "✅ ... sent successfully" and "❌ ... failed: <the address>"."""
    notifier = notify.Notifier(settings_for(hooks, None, channels=("slack", "telegram")),
                               timeout=20)
    notifier.send(TITLE, TEXT)
    hooks.faults["telegram"] = "500"
    notifier.send(TITLE, TEXT)
    out, err = capfd.readouterr()
    assert "✅" not in out + err and "❌" not in out + err and BOT_TOKEN not in out + err
    assert json.dumps(BOT_TOKEN) not in out + err
