"""The notification channels SwanLab's client ships, and the ``swanlab_*`` keys each one needs.

One table for the settings (which keys exist, which are secret, their environment variables,
which keys must come together) and for the helper process's senders (helper/notify.py). SwanLab
0.8.0 to 0.10.3 ship the same eight senders in ``swanlab/plugin/notification/`` (see
docs/notifications.md). No import of pydantic or SwanLab here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional


@dataclass(frozen=True)
class Channel:
    name: str  # short name, used in messages and in notify.py
    label: str  # as users know it
    swanlab_class: str  # the sender in swanlab.plugin
    required: tuple[str, ...]  # keys the channel needs once any of its keys is given
    optional: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()

    @property
    def keys(self) -> tuple[str, ...]:
        return self.required + self.optional


CHANNELS = (
    Channel("lark", "Lark (Feishu)", "LarkCallback", ("swanlab_lark_webhook_url",),
            ("swanlab_lark_secret",), secrets=("swanlab_lark_webhook_url", "swanlab_lark_secret")),
    Channel("dingtalk", "DingTalk", "DingTalkCallback", ("swanlab_dingtalk_webhook_url",),
            ("swanlab_dingtalk_secret",),
            secrets=("swanlab_dingtalk_webhook_url", "swanlab_dingtalk_secret")),
    Channel("wecom", "WeCom", "WeComCallback", ("swanlab_wecom_webhook_url",),
            secrets=("swanlab_wecom_webhook_url",)),
    Channel("slack", "Slack", "SlackCallback", ("swanlab_slack_webhook_url",),
            secrets=("swanlab_slack_webhook_url",)),
    Channel("discord", "Discord", "DiscordCallback", ("swanlab_discord_webhook_url",),
            secrets=("swanlab_discord_webhook_url",)),
    Channel("telegram", "Telegram", "TelegramCallback",
            ("swanlab_telegram_bot_token", "swanlab_telegram_chat_id"),
            secrets=("swanlab_telegram_bot_token",)),
    Channel("bark", "Bark", "BarkCallback", ("swanlab_bark_key",), ("swanlab_bark_server",),
            secrets=("swanlab_bark_key",)),
    Channel("email", "Email", "EmailCallback",
            ("swanlab_email_sender", "swanlab_email_password", "swanlab_email_receiver"),
            ("swanlab_email_smtp_server", "swanlab_email_smtp_port"),
            secrets=("swanlab_email_password",)),
)
ALERT_KEYS = ("swanlab_notify_language", "swanlab_alerts", "swanlab_alert_loss_spike",
              "swanlab_alert_stall_minutes")
# Lark's keys come from Axolotl's own plugin (settings.PLUGIN_KEYS); these are this package's.
CHANNEL_KEYS = tuple(k for c in CHANNELS if c.name != "lark" for k in c.keys)
CHANNEL_SECRETS = tuple(k for c in CHANNELS for k in c.secrets)
# SwanLab reads no variable for its senders: SWANLAB_<KEY> as for the Lark keys (none of these
# names collides with a SwanLab setting: `SWANLAB_<field>_<sub>` nests only under its own
# fields: project, experiment, run, terminal, integration, core, probe).
CHANNEL_ENV = {key: ("SWANLAB_" + key[len("swanlab_"):].upper(),)
               for key in (*(k for c in CHANNELS for k in c.keys), "swanlab_notify_language")}

EXAMPLES = {
    "swanlab_lark_webhook_url": "https://open.feishu.cn/open-apis/bot/v2/hook/...",
    "swanlab_lark_secret": "your-signing-secret",
    "swanlab_dingtalk_webhook_url": "https://oapi.dingtalk.com/robot/send?access_token=...",
    "swanlab_dingtalk_secret": "SEC...",
    "swanlab_wecom_webhook_url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...",
    "swanlab_slack_webhook_url": "https://hooks.slack.com/services/...",
    "swanlab_discord_webhook_url": "https://discord.com/api/webhooks/...",
    "swanlab_telegram_bot_token": "123456789:AAH...",
    "swanlab_telegram_chat_id": "123456789",
    "swanlab_bark_key": "your-device-key",
    "swanlab_bark_server": "https://api.day.app",
    "swanlab_email_sender": "me@example.com",
    "swanlab_email_password": "your-app-password",
    "swanlab_email_receiver": "me@example.com",
    "swanlab_email_smtp_server": "smtp.gmail.com",
    "swanlab_email_smtp_port": "587",
}


def configured(settings: Any) -> list[Channel]:
    """The channels a validated settings object turns on."""
    return [c for c in CHANNELS if all(getattr(settings, k) is not None for k in c.required)]


def incomplete(settings: Any) -> Optional[tuple[str, str]]:
    """(key, message) for the first channel given only in part, else None: a secret without
    its webhook, a bot token without its chat, an email without its receiver."""
    for channel in CHANNELS:
        given = [k for k in channel.keys if getattr(settings, k) is not None]
        missing = [k for k in channel.required if getattr(settings, k) is None]
        if given and missing:
            key = missing[0]
            return key, (f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} set but "
                         f"{key} is not: {channel.label} notifications need it. Add "
                         f"`{key}: {EXAMPLES[key]}`, or remove {', '.join(given)}.")
    return None
