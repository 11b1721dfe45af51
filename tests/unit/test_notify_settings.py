"""The notification and alert keys: every channel SwanLab ships, configured in the YAML or the
environment, checked before the model loads (one line naming the key and the fix, never a
secret), the secrets masked and kept out of the run config."""
from __future__ import annotations

import os

import pytest

from swanlab_autopatch.config import channels, credentials
from swanlab_autopatch.config.settings import (ENV_FALLBACKS, SECRET_KEYS, SwanLabConfigError,
                                               SwanLabSettings, parse)
from swanlab_autopatch.redact import MASK, is_secret_key, mask, redact, redact_yaml_text

CANARY = "CANARYx7f3a9e1d"  # inside every secret below: must never be shown

# A complete, valid configuration of each channel (secrets hold the canary).
CHANNEL_CONFIGS = {
    "lark": {"swanlab_lark_webhook_url": f"https://open.feishu.cn/open-apis/bot/v2/hook/{CANARY}",
             "swanlab_lark_secret": f"lark-{CANARY}"},
    "dingtalk": {"swanlab_dingtalk_webhook_url":
                 f"https://oapi.dingtalk.com/robot/send?access_token={CANARY}",
                 "swanlab_dingtalk_secret": f"SEC{CANARY}"},
    "wecom": {"swanlab_wecom_webhook_url":
              f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={CANARY}"},
    "slack": {"swanlab_slack_webhook_url": f"https://hooks.slack.com/services/T0/B0/{CANARY}"},
    "discord": {"swanlab_discord_webhook_url": f"https://discord.com/api/webhooks/1/{CANARY}"},
    "telegram": {"swanlab_telegram_bot_token": f"123456:{CANARY}",
                 "swanlab_telegram_chat_id": -1001234},
    "bark": {"swanlab_bark_key": CANARY, "swanlab_bark_server": "https://bark.example.com/"},
    "email": {"swanlab_email_sender": "me@example.com", "swanlab_email_password": CANARY,
              "swanlab_email_receiver": "you@example.com",
              "swanlab_email_smtp_server": "smtp.example.com", "swanlab_email_smtp_port": 465},
}
ALL_CHANNELS = {k: v for cfg in CHANNEL_CONFIGS.values() for k, v in cfg.items()}


def _parse(cfg, env=None):
    return parse({"swanlab_project": "p", **cfg}, env={} if env is None else env)


def _error(cfg, env=None) -> SwanLabConfigError:
    with pytest.raises(SwanLabConfigError) as info:
        _parse(cfg, env)
    error = info.value
    message = str(error)
    assert len(message.splitlines()) == 1, message
    assert error.key in message and "`" in message, message  # names the key, shows the fix
    assert CANARY not in message and CANARY not in repr(error), message
    return error


def test_the_channel_table_covers_every_swanlab_sender():
    import swanlab.plugin as plugin

    assert {c.swanlab_class for c in channels.CHANNELS} == {
        name for name in plugin.__all__ if name.endswith("Callback") and name != "WXWorkCallback"}
    for channel in channels.CHANNELS:
        assert set(channel.secrets) <= set(channel.keys)
        assert set(channel.keys) <= set(SwanLabSettings.model_fields)
    assert set(channels.CHANNEL_SECRETS) <= set(SECRET_KEYS)


def test_defaults_turn_alerts_on_and_no_channel():
    s = _parse({}).settings
    assert channels.configured(s) == []
    assert (s.swanlab_notify_language, s.swanlab_alerts, s.swanlab_alert_loss_spike,
            s.swanlab_alert_stall_minutes) == ("en", True, 3.0, 30.0)


@pytest.mark.parametrize("name", CHANNEL_CONFIGS)
def test_each_channel_alone(name):
    s = _parse(CHANNEL_CONFIGS[name]).settings
    assert [c.name for c in channels.configured(s)] == [name]


def test_every_channel_at_once_and_their_normalised_values():
    s = _parse(ALL_CHANNELS).settings
    assert [c.name for c in channels.configured(s)] == [c.name for c in channels.CHANNELS]
    assert s.swanlab_telegram_chat_id == "-1001234"  # YAML reads it as a number
    assert s.swanlab_bark_server == "https://bark.example.com"
    assert s.swanlab_email_smtp_port == 465
    for key in SECRET_KEYS:
        if key != "swanlab_api_key":
            assert CANARY in s.secret(key)
    shown = [repr(s), str(s), s.model_dump_json(), repr(s.public_keys())]
    assert not any(CANARY in text for text in shown)
    assert not set(SECRET_KEYS) & set(s.public_keys())
    # what is not secret is part of the run's config
    assert s.public_keys()["swanlab_email_receiver"] == "you@example.com"


@pytest.mark.parametrize("raw, expected", [
    (["a@x.org", " b@y.org "], "a@x.org, b@y.org"),
    ("a@x.org,b@y.org", "a@x.org, b@y.org"),
    ("  a@x.org ", "a@x.org"),
])
def test_several_receivers(raw, expected):
    cfg = {**CHANNEL_CONFIGS["email"], "swanlab_email_receiver": raw}
    assert _parse(cfg).settings.swanlab_email_receiver == expected


@pytest.mark.parametrize("key, raw, expected", [
    ("swanlab_notify_language", "ZH", "zh"),
    ("swanlab_notify_language", " en ", "en"),
    ("swanlab_alerts", False, False),
    ("swanlab_alert_loss_spike", False, False),
    ("swanlab_alert_loss_spike", "off", False),
    ("swanlab_alert_loss_spike", True, 3.0),
    ("swanlab_alert_loss_spike", 5, 5.0),
    ("swanlab_alert_loss_spike", "2.5", 2.5),
    ("swanlab_alert_stall_minutes", 0.05, 0.05),  # fractions: a few seconds, for tests
    ("swanlab_alert_stall_minutes", 120, 120.0),
    ("swanlab_alert_stall_minutes", False, False),
    ("swanlab_alert_stall_minutes", "false", False),
])
def test_alert_keys(key, raw, expected):
    assert getattr(_parse({key: raw}).settings, key) == expected


@pytest.mark.parametrize("key, raw, words", [
    ("swanlab_notify_language", "fr", "en or zh"),
    ("swanlab_notify_language", 1, "en or zh"),
    ("swanlab_alerts", "yes", "true or false"),
    ("swanlab_alert_loss_spike", 1, "above 1"),
    ("swanlab_alert_loss_spike", 0.5, "above 1"),
    ("swanlab_alert_loss_spike", float("nan"), "above 1"),
    ("swanlab_alert_loss_spike", "big", "above 1"),
    ("swanlab_alert_stall_minutes", 0, "above 0"),
    ("swanlab_alert_stall_minutes", -5, "above 0"),
    ("swanlab_alert_stall_minutes", float("inf"), "above 0"),
    ("swanlab_alert_stall_minutes", [30], "above 0"),
    ("swanlab_telegram_chat_id", "my chat", "not a chat id"),
    ("swanlab_email_sender", "me-at-example.com", "not an email address"),
    ("swanlab_email_receiver", ["ok@example.com", "nope"], "not an email address"),
    ("swanlab_email_smtp_server", "smtps://smtp.example.com", "not a host name"),
    ("swanlab_email_smtp_server", "smtp.example.com:587", "not a host name"),
    ("swanlab_email_smtp_port", 70000, "port number"),
    ("swanlab_email_smtp_port", "smtp", "port number"),
    ("swanlab_email_smtp_port", True, "port number"),
    ("swanlab_bark_server", "api.day.app", "address only"),
])
def test_malformed_values_stop_with_one_line(key, raw, words):
    error = _error({**ALL_CHANNELS, key: raw})
    assert error.key == key and words in str(error), str(error)


@pytest.mark.parametrize("key, raw, words", [
    ("swanlab_slack_webhook_url", f"hooks.slack.com/services/{CANARY}", "not a web address"),
    ("swanlab_discord_webhook_url", f"discord webhook {CANARY}", "not a web address"),
    ("swanlab_wecom_webhook_url", f"ftp://qyapi.weixin.qq.com/{CANARY}", "not a web address"),
    ("swanlab_lark_webhook_url", f"https:///{CANARY}", "not a web address"),
    ("swanlab_dingtalk_webhook_url", f"oapi.dingtalk.com?access_token={CANARY}",
     "not a web address"),
    # SwanLab's DingTalk sender signs only secrets that start with SEC: sent unsigned otherwise
    ("swanlab_dingtalk_secret", CANARY, "start with SEC"),
    ("swanlab_telegram_bot_token", CANARY, "not a bot token"),
    ("swanlab_telegram_bot_token", f"https://api.telegram.org/bot1:{CANARY}", "not a bot token"),
    # the address the Bark app shows ends with the device key
    ("swanlab_bark_key", f"https://api.day.app/{CANARY}", "device key only"),
    ("swanlab_bark_server", f"https://api.day.app/{CANARY}", "without a path"),
    ("swanlab_email_password", [CANARY], "must be text"),
    ("swanlab_slack_webhook_url", {"url": CANARY}, "must be text"),
])
def test_malformed_secrets_are_never_echoed(key, raw, words):
    error = _error({**ALL_CHANNELS, key: raw})
    assert error.key == key and words in str(error), str(error)


@pytest.mark.parametrize("given, missing", [
    (["swanlab_telegram_bot_token"], "swanlab_telegram_chat_id"),
    (["swanlab_telegram_chat_id"], "swanlab_telegram_bot_token"),
    (["swanlab_email_sender", "swanlab_email_password"], "swanlab_email_receiver"),
    (["swanlab_email_receiver"], "swanlab_email_sender"),
    (["swanlab_email_smtp_server"], "swanlab_email_sender"),
    (["swanlab_dingtalk_secret"], "swanlab_dingtalk_webhook_url"),
    (["swanlab_lark_secret"], "swanlab_lark_webhook_url"),
    (["swanlab_bark_server"], "swanlab_bark_key"),
])
def test_a_channel_given_in_part_names_what_is_missing(given, missing):
    error = _error({k: ALL_CHANNELS[k] for k in given})
    assert error.key == missing
    assert all(k in str(error) for k in given), str(error)


def test_channels_are_not_checked_when_tracking_is_off():
    result = parse({"use_swanlab": False, "swanlab_telegram_bot_token": "x"}, env={})
    assert result.settings.use_swanlab is False


# -- environment fallbacks -----------------------------------------------------------------------


def test_every_channel_key_has_a_swanlab_variable():
    for channel in channels.CHANNELS:
        for key in channel.keys:
            assert ENV_FALLBACKS[key] == ("SWANLAB_" + key[len("swanlab_"):].upper(),)
    assert ENV_FALLBACKS["swanlab_notify_language"] == ("SWANLAB_NOTIFY_LANGUAGE",)


def test_channels_from_the_environment():
    env = {ENV_FALLBACKS[k][0]: str(v) for k, v in ALL_CHANNELS.items()}
    env["SWANLAB_NOTIFY_LANGUAGE"] = "zh"
    result = _parse({}, env)
    s = result.settings
    assert [c.name for c in channels.configured(s)] == [c.name for c in channels.CHANNELS]
    assert s.swanlab_email_smtp_port == 465 and s.swanlab_notify_language == "zh"
    assert result.from_env["swanlab_slack_webhook_url"] == "SWANLAB_SLACK_WEBHOOK_URL"


def test_the_yaml_beats_the_environment_and_pairs_mix():
    env = {"SWANLAB_TELEGRAM_BOT_TOKEN": f"99:{CANARY}", "SWANLAB_TELEGRAM_CHAT_ID": "1"}
    s = _parse({"swanlab_telegram_chat_id": 42}, env).settings
    assert s.swanlab_telegram_chat_id == "42" and s.secret("swanlab_telegram_bot_token")


def test_a_bad_value_from_the_environment_says_so():
    error = _error({}, {"SWANLAB_SLACK_WEBHOOK_URL": f"not-a-url-{CANARY}"})
    assert "SWANLAB_SLACK_WEBHOOK_URL" in str(error)


# -- secrets: masked everywhere ------------------------------------------------------------------


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_every_secret_key_is_a_secret_name(key):
    assert is_secret_key(key) and is_secret_key(ENV_FALLBACKS.get(key, ("SWANLAB_API_KEY",))[0])
    assert redact({key: "x-value"}) == {key: MASK}
    assert CANARY not in redact_yaml_text(f"{key}: {CANARY}\n")


def test_not_secret_channel_keys_stay_readable():
    for key in ("swanlab_telegram_chat_id", "swanlab_email_sender", "swanlab_email_receiver",
                "swanlab_bark_server", "swanlab_email_smtp_server", "swanlab_email_smtp_port"):
        assert not is_secret_key(key), key


def test_telegram_bot_urls_are_masked_in_any_text():
    text = f"POST https://api.telegram.org/bot123456:{CANARY}/sendMessage failed"
    assert CANARY not in mask(text) and MASK in mask(text)


def test_every_channel_secret_is_registered_for_the_mask():
    s = _parse(ALL_CHANNELS).settings
    credentials.register_known_secrets(s, env={"SWANLAB_ROOT": "/nonexistent"})
    for key in channels.CHANNEL_SECRETS:
        assert CANARY not in mask(f"oops: {s.secret(key)}"), key


def test_a_ray_driver_hands_every_secret_to_its_workers(monkeypatch):
    from swanlab_autopatch.config import flow

    environ = {"PATH": os.environ.get("PATH", "")}  # the driver exports into this copy
    monkeypatch.setattr(os, "environ", environ)
    s = _parse(ALL_CHANNELS).settings
    flow._prepare_ray_driver({}, s)
    for key in channels.CHANNEL_SECRETS:
        assert environ[ENV_FALLBACKS[key][0]] == s.secret(key), key
