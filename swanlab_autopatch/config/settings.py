"""The ``swanlab_*`` keys: one model, their defaults, normalisation and the error messages.

Key names, defaults and the three spec messages come from the integration document; every
other message names the key and says how to fix it, on one line. Values that SwanLab itself
would reject later (a project name with spaces, a 26-character workspace) are refused here,
before Axolotl loads a model, instead of costing a tracked run after hours of loading.
"""
from __future__ import annotations

import difflib
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Optional, Union

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError, field_validator

from swanlab_autopatch.config import channels
from swanlab_autopatch.errors import SwanLabConfigError
from swanlab_autopatch.paths import LOG_DIR_VARS
from swanlab_autopatch.redact import clean_text

MODES = ("cloud", "local", "offline", "disabled")
Mode = Literal["cloud", "local", "offline", "disabled"]

# Every key of the spec, of Axolotl's own plugin (so its configs work unchanged) and the keys
# this package adds. Anything else that starts like these is a typo.
SPEC_KEYS = (
    "use_swanlab", "swanlab_project", "swanlab_experiment_name", "swanlab_description",
    "swanlab_mode", "swanlab_workspace", "swanlab_api_key", "swanlab_web_host",
    "swanlab_api_host", "swanlab_log_model",
)
PLUGIN_KEYS = (
    "swanlab_lark_webhook_url", "swanlab_lark_secret", "swanlab_log_completions",
    "swanlab_completion_log_interval", "swanlab_completion_max_buffer",
)
OWN_KEYS = ("swanlab_log_dir", "swanlab_tags", "swanlab_group", "swanlab_job_type",
            "swanlab_watch", "swanlab_watch_interval",
            # Set by this package on a Ray driver (the folder relative paths mean); not a key
            # users write.
            "swanlab_launch_dir",
            # Notification channels and alerts (config/channels.py).
            *channels.CHANNEL_KEYS, *channels.ALERT_KEYS)
# swanlab_log_model takes wandb_log_model's values (and the spec's booleans).
LOG_MODEL_VALUES = ("false", "end", "checkpoint")
WATCH_VALUES = ("false", "gradients", "parameters", "all")  # wandb_watch's values
MAX_TAGS, MAX_TAG_LENGTH = 30, 512  # SwanLab 0.9.3 and later (older ones: compat.clamp_tags)
KNOWN_KEYS = SPEC_KEYS + PLUGIN_KEYS + OWN_KEYS
SECRET_KEYS = ("swanlab_api_key", *channels.CHANNEL_SECRETS)
_SECRET_EXAMPLES = {
    "swanlab_api_key": "your-api-key (better: export SWANLAB_API_KEY=your-api-key)",
    **channels.EXAMPLES,
}

# SwanLab's own environment variables that fill keys the YAML leaves out (the YAML wins).
# For each key the first variable that is set is used.
ENV_FALLBACKS: dict[str, tuple[str, ...]] = {
    "swanlab_mode": ("SWANLAB_MODE",),
    "swanlab_project": ("SWANLAB_PROJ_NAME", "SWANLAB_PROJECT_NAME", "SWANLAB_PROJECT"),
    "swanlab_workspace": ("SWANLAB_WORKSPACE", "SWANLAB_PROJECT_WORKSPACE"),
    "swanlab_experiment_name": ("SWANLAB_EXP_NAME", "SWANLAB_EXPERIMENT_NAME"),
    "swanlab_description": ("SWANLAB_DESCRIPTION", "SWANLAB_EXPERIMENT_DESCRIPTION"),
    "swanlab_api_host": ("SWANLAB_API_HOST",),
    "swanlab_web_host": ("SWANLAB_WEB_HOST",),
    "swanlab_log_dir": LOG_DIR_VARS,
    "swanlab_tags": ("SWANLAB_TAGS", "SWANLAB_EXPERIMENT_TAGS"),
    "swanlab_group": ("SWANLAB_GROUP", "SWANLAB_EXPERIMENT_GROUP"),
    "swanlab_job_type": ("SWANLAB_JOB_TYPE", "SWANLAB_EXPERIMENT_JOB_TYPE"),
    **channels.CHANNEL_ENV,  # the Lark keys and every other channel's: SWANLAB_<KEY>
}

_PROJECT_RE = re.compile(r"^[0-9a-zA-Z_\-+.]{1,100}$")
_WORKSPACE_RE = re.compile(r"^[0-9a-zA-Z\-_]{1,25}$")
_HOST_RE = re.compile(r"^(https?://)?[^\s/:@]+(:\d{1,5})?(/\S*)?$", re.I)
_WEB_ADDRESS_RE = re.compile(r"^https?://[^\s/?#@]+(/\S*)?$", re.I)
_SERVER_RE = re.compile(r"^https?://[^\s/?#@]+/?$", re.I)  # scheme://host[:port], no path
_SMTP_HOST_RE = re.compile(r"^([a-z0-9.\-]+|[0-9a-f:]+)$", re.I)  # a name, IPv4 or IPv6
_EMAIL_RE = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")
_CHAT_ID_RE = re.compile(r"^(-?\d+|@[a-z]\w{3,})$", re.I)
_TELEGRAM_TOKEN_RE = re.compile(r"^\d+:[\w-]+$")


def _describe(value: Any) -> str:
    """A short, one-line picture of a value for a message (control characters escaped,
    credentials in URLs masked)."""
    try:
        text = repr(value)
    except Exception:  # e.g. an int too large to print
        text = f"<{type(value).__name__}>"
    text = clean_text(text)
    return text if len(text) <= 60 else text[:57] + "..."


def _shown(value: Any) -> str:
    """A value inside quotes of a message: printable text as typed, anything else escaped."""
    if not isinstance(value, str):
        return _describe(value)
    text = clean_text("".join(c if c.isprintable() else repr(c)[1:-1] for c in value))
    return text if len(text) <= 60 else text[:57] + "..."


def _type_name(value: Any) -> str:
    return {dict: "a mapping", list: "a list", tuple: "a list", bool: "a boolean",
            int: "a number", float: "a number", str: "a string"}.get(type(value), type(value).__name__)


def _as_text(key: str, value: Any, example: str) -> Optional[str]:
    """A string setting: numbers become text (YAML reads `swanlab_project: 2024` as a number),
    blank text counts as unset, anything else is refused."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"{key} must be text, got {_type_name(value)} ({_describe(value)}). "
                         f"Example: `{key}: {example}`")
    try:
        text = str(value).strip()
    except ValueError:  # an integer with thousands of digits
        raise ValueError(f"{key} must be text, got a number too large to use. "
                         f"Example: `{key}: {example}`") from None
    return text or None


def _as_bool(key: str, value: Any) -> Optional[bool]:
    if value is None or isinstance(value, bool):
        return value
    raise ValueError(f"{key} must be true or false, got {_type_name(value)} ({_describe(value)}). "
                     f"Example: `{key}: true`")


def _secret_shape(key: str, text: str) -> Optional[str]:
    """Why a secret value cannot be right (without quoting it), or None."""
    if key.endswith("_webhook_url") and not _WEB_ADDRESS_RE.match(text):
        return f"{key} is not a web address (it must start with https:// and name a host)"
    if key == "swanlab_dingtalk_secret" and not text.startswith("SEC"):
        return ("swanlab_dingtalk_secret is not a DingTalk signing secret (those start with SEC: "
                "the robot's security settings, 'Additional signature')")
    if key == "swanlab_telegram_bot_token" and not _TELEGRAM_TOKEN_RE.match(text):
        return (f"{key} is not a bot token (digits, a colon, then letters and digits, as "
                "@BotFather gives it)")
    if key == "swanlab_bark_key" and ("/" in text or ":" in text):
        return (f"{key} is the device key only, not an address (the part after "
                "https://api.day.app/; a self-hosted server goes in swanlab_bark_server)")
    return None


def _as_threshold(key: str, value: Any, default: float, above: float, example: str,
                  what: str) -> Any:
    """An alert threshold: a number above ``above``, false (off) or true (the default)."""
    if value is None or value is True:
        return default
    if value is False or (isinstance(value, str) and value.strip().lower() in ("false", "off")):
        return False
    number = value
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if isinstance(number, bool) or not isinstance(number, (int, float)) or \
            not math.isfinite(number) or number <= above:
        raise ValueError(f"{key} must be {what} or false (off), got {_describe(value)}. "
                         f"Example: `{key}: {example}`")
    return float(number)


def _as_choice(value: Any, values: tuple[str, ...], when_true: str) -> Optional[str]:
    """A W&B-style choice: false (or unset) is "false", true is ``when_true``, text is matched
    without case; None when the value is none of these."""
    if value is None or value is False:
        return "false"
    normalized = value.strip().lower() if isinstance(value, str) else value
    if value is True or normalized == "true":
        return when_true
    return normalized if normalized in values else None


def _as_count(key: str, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{key} must be a whole number of at least 1, got {_describe(value)}. "
                         f"Example: `{key}: 100`")
    return value


class SwanLabSettings(BaseModel):
    """The validated, normalised ``swanlab_*`` settings of one configuration."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    use_swanlab: Optional[bool] = None
    swanlab_project: Optional[str] = None
    swanlab_experiment_name: Optional[str] = None
    swanlab_description: Optional[str] = None
    swanlab_mode: Mode = "cloud"
    swanlab_workspace: Optional[str] = None
    swanlab_api_key: Optional[SecretStr] = None
    swanlab_web_host: Optional[str] = None
    swanlab_api_host: Optional[str] = None
    swanlab_log_model: Literal["false", "end", "checkpoint"] = "false"
    swanlab_log_dir: Optional[str] = None
    swanlab_tags: Optional[tuple[str, ...]] = None
    swanlab_group: Optional[str] = None
    swanlab_job_type: Optional[str] = None
    swanlab_launch_dir: Optional[str] = None
    swanlab_lark_webhook_url: Optional[SecretStr] = None
    swanlab_lark_secret: Optional[SecretStr] = None
    swanlab_log_completions: bool = True
    swanlab_completion_log_interval: int = 100
    swanlab_completion_max_buffer: int = 128
    # Notifications and alerts (config/channels.py: what each channel needs).
    swanlab_dingtalk_webhook_url: Optional[SecretStr] = None
    swanlab_dingtalk_secret: Optional[SecretStr] = None
    swanlab_wecom_webhook_url: Optional[SecretStr] = None
    swanlab_slack_webhook_url: Optional[SecretStr] = None
    swanlab_discord_webhook_url: Optional[SecretStr] = None
    swanlab_telegram_bot_token: Optional[SecretStr] = None
    swanlab_telegram_chat_id: Optional[str] = None
    swanlab_bark_key: Optional[SecretStr] = None
    swanlab_bark_server: Optional[str] = None
    swanlab_email_sender: Optional[str] = None
    swanlab_email_password: Optional[SecretStr] = None
    swanlab_email_receiver: Optional[str] = None  # one address, or several joined by ", "
    swanlab_email_smtp_server: Optional[str] = None  # None: SwanLab's sender's default
    swanlab_email_smtp_port: Optional[int] = None
    swanlab_notify_language: Literal["en", "zh"] = "en"
    swanlab_alerts: bool = True
    swanlab_alert_loss_spike: Union[Literal[False], float] = 3.0  # False: off
    swanlab_alert_stall_minutes: Union[Literal[False], float] = 30.0
    swanlab_watch: Literal["false", "gradients", "parameters", "all"] = "false"
    swanlab_watch_interval: Optional[int] = None  # None: the Trainer's logging_steps

    @field_validator("use_swanlab", "swanlab_log_completions", "swanlab_alerts", mode="before")
    @classmethod
    def _bools(cls, value: Any, info) -> Any:
        return _as_bool(info.field_name, value)

    @field_validator("swanlab_log_model", mode="before")
    @classmethod
    def _log_model(cls, value: Any) -> Any:
        choice = _as_choice(value, LOG_MODEL_VALUES, "end")  # true: the final model, as W&B
        if choice is None:
            raise ValueError(f"swanlab_log_model must be false, end (or true) or checkpoint, got "
                             f"{_describe(value)}. Example: `swanlab_log_model: end`")
        return choice

    @field_validator("swanlab_tags", mode="before")
    @classmethod
    def _tags(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, str):  # "a, b" as in SWANLAB_TAGS
            items: list = value.split(",")
        elif isinstance(value, (list, tuple)):
            items = list(value)
        else:
            raise ValueError(f"swanlab_tags must be a list of tags or comma-separated text, got "
                             f"{_type_name(value)} ({_describe(value)}). Example: "
                             "`swanlab_tags: [baseline, lora]`")
        tags = []
        for item in items:
            if isinstance(item, bool) or not isinstance(item, (str, int, float)):
                raise ValueError(f"swanlab_tags holds {_type_name(item)} ({_describe(item)}); "
                                 "each tag must be text. Example: `swanlab_tags: [baseline, lora]`")
            tag = str(item).strip()
            if not tag:
                continue
            if len(tag) > MAX_TAG_LENGTH or any(ord(c) < 32 for c in tag):
                raise ValueError(f"swanlab_tags: the tag {_describe(tag)} is too long (at most "
                                 f"{MAX_TAG_LENGTH} characters) or holds control characters. "
                                 "Shorten it.")
            if tag not in tags:
                tags.append(tag)
        if len(tags) > MAX_TAGS:
            raise ValueError(f"swanlab_tags has {len(tags)} tags; SwanLab accepts at most "
                             f"{MAX_TAGS}. Remove some.")
        return tuple(tags) or None

    @field_validator("swanlab_watch", mode="before")
    @classmethod
    def _watch(cls, value: Any) -> Any:
        choice = _as_choice(value, WATCH_VALUES, "gradients")  # true: wandb.watch's default
        if choice is None:
            raise ValueError(f"swanlab_watch must be false, gradients, parameters or all, got "
                             f"{_describe(value)}. Example: `swanlab_watch: all`")
        return choice

    @field_validator("swanlab_completion_log_interval", "swanlab_completion_max_buffer",
                     "swanlab_watch_interval", mode="before")
    @classmethod
    def _counts(cls, value: Any, info) -> Any:
        return _as_count(info.field_name, value)

    @field_validator("swanlab_project", mode="before")
    @classmethod
    def _project(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError("swanlab_project cannot be an empty string. Give the project a name "
                             "(`swanlab_project: my-project`) or remove the line.")
        text = _as_text("swanlab_project", value, "my-project")
        if text is not None and not _PROJECT_RE.match(text):
            raise ValueError(f"swanlab_project {_describe(text)} is not a valid SwanLab project "
                             "name: use 1 to 100 letters, digits, '_', '-', '+' or '.' "
                             "(no spaces). Example: `swanlab_project: my-project`")
        return text

    @field_validator("swanlab_workspace", mode="before")
    @classmethod
    def _workspace(cls, value: Any) -> Any:
        text = _as_text("swanlab_workspace", value, "my-team")
        if text is not None and not _WORKSPACE_RE.match(text):
            raise ValueError(f"swanlab_workspace {_describe(text)} is not a valid SwanLab "
                             "workspace: use 1 to 25 letters, digits, '-' or '_'. "
                             "Example: `swanlab_workspace: my-team`")
        return text

    @field_validator("swanlab_experiment_name", "swanlab_description", "swanlab_group",
                     "swanlab_job_type", mode="before")
    @classmethod
    def _free_text(cls, value: Any, info) -> Any:
        key = info.field_name
        limit = 1024 if key == "swanlab_description" else 512
        example = {"swanlab_experiment_name": "qwen-finetune-v1", "swanlab_group": "lr-sweep",
                   "swanlab_job_type": "finetune"}.get(key, "'what this run tries'")
        text = _as_text(key, value, example)
        if text is not None and len(text) > limit:
            raise ValueError(f"{key} is {len(text)} characters long; SwanLab accepts at most "
                             f"{limit}. Shorten it.")
        if text is not None and any(ord(c) < 32 and c not in "\n\t" for c in text):
            raise ValueError(f"{key} contains control characters; remove them.")
        return text

    @field_validator("swanlab_mode", mode="before")
    @classmethod
    def _mode(cls, value: Any) -> Any:
        if value is None:
            return "cloud"
        normalized = value.strip().lower() if isinstance(value, str) else value
        if normalized == "online":  # SwanLab's own name for cloud mode
            normalized = "cloud"
        if normalized not in MODES:
            raise ValueError(f"Invalid swanlab_mode: '{_shown(value)}'. Valid options: "
                             f"{', '.join(MODES)} (example: `swanlab_mode: offline`)")
        return normalized

    @field_validator("swanlab_api_host", "swanlab_web_host", mode="before")
    @classmethod
    def _host(cls, value: Any, info) -> Any:
        key = info.field_name
        text = _as_text(key, value, "https://swanlab.example.com")
        if text is not None and not _HOST_RE.match(text):
            raise ValueError(f"{key} {_describe(text)} is not a host address. "
                             f"Example: `{key}: https://swanlab.example.com`")
        return text.rstrip("/") if text else text

    @field_validator("swanlab_log_dir", "swanlab_launch_dir", mode="before")
    @classmethod
    def _paths(cls, value: Any, info) -> Any:
        return _as_text(info.field_name, value, "./swanlog")

    def resolve(self, path: Optional[str]) -> Optional[str]:
        """A relative path as the user meant it: against the launch folder on Ray workers
        (which run elsewhere), else unchanged."""
        if path and self.swanlab_launch_dir and not os.path.isabs(path):
            return os.path.join(self.swanlab_launch_dir, path)
        return path

    @field_validator(*SECRET_KEYS, mode="before")
    @classmethod
    def _secret(cls, value: Any, info) -> Any:
        if isinstance(value, SecretStr):
            return value
        # Never echo a secret back: the message names the type only.
        if value is not None and (isinstance(value, bool) or not isinstance(value, (str, int))):
            raise ValueError(f"{info.field_name} must be text, got {_type_name(value)}. "
                             f"Example: `{info.field_name}: {_SECRET_EXAMPLES[info.field_name]}`")
        try:
            text = str(value).strip() if value is not None else ""
        except ValueError:  # an integer with thousands of digits
            raise ValueError(f"{info.field_name} must be text, got a number too large to "
                             f"use. Example: `{info.field_name}: "
                             f"{_SECRET_EXAMPLES[info.field_name]}`") from None
        why = _secret_shape(info.field_name, text) if text else None
        if why:
            raise ValueError(f"{why}. Example: `{info.field_name}: "
                             f"{_SECRET_EXAMPLES[info.field_name]}`")
        return text or None

    @field_validator("swanlab_telegram_chat_id", mode="before")
    @classmethod
    def _chat_id(cls, value: Any, info) -> Any:
        text = _as_text(info.field_name, value, "123456789")  # YAML reads the id as a number
        if text is not None and not _CHAT_ID_RE.match(text):
            raise ValueError(f"swanlab_telegram_chat_id {_describe(text)} is not a chat id (a "
                             "number, negative for groups, or @channel_name). Example: "
                             "`swanlab_telegram_chat_id: 123456789`")
        return text

    @field_validator("swanlab_email_sender", "swanlab_email_receiver", mode="before")
    @classmethod
    def _addresses(cls, value: Any, info) -> Any:
        key = info.field_name
        several = key == "swanlab_email_receiver" and isinstance(value, (str, list, tuple))
        items = (value.split(",") if isinstance(value, str) else list(value)) if several \
            else [value]
        addresses = [a for a in (_as_text(key, item, "me@example.com") for item in items) if a]
        for address in addresses:
            if not _EMAIL_RE.match(address):
                raise ValueError(f"{key}: {_describe(address)} is not an email address. "
                                 f"Example: `{key}: me@example.com`")
        return ", ".join(addresses) or None

    @field_validator("swanlab_email_smtp_server", mode="before")
    @classmethod
    def _smtp_server(cls, value: Any) -> Any:
        text = _as_text("swanlab_email_smtp_server", value, "smtp.gmail.com")
        if text is not None and not _SMTP_HOST_RE.match(text):
            raise ValueError(f"swanlab_email_smtp_server {_describe(text)} is not a host name "
                             "(no scheme, no path; the port goes in swanlab_email_smtp_port). "
                             "Example: `swanlab_email_smtp_server: smtp.gmail.com`")
        return text

    @field_validator("swanlab_email_smtp_port", mode="before")
    @classmethod
    def _smtp_port(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().isdigit():  # from the environment
            value = int(value.strip())
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or not 1 <= value <= 65535):
            raise ValueError(f"swanlab_email_smtp_port must be a port number (1 to 65535), got "
                             f"{_describe(value)}. Example: `swanlab_email_smtp_port: 587` "
                             "(STARTTLS; 465 for SSL)")
        return value

    @field_validator("swanlab_bark_server", mode="before")
    @classmethod
    def _bark_server(cls, value: Any) -> Any:
        text = _as_text("swanlab_bark_server", value, "https://api.day.app")
        if text is not None and not _SERVER_RE.match(text):
            # Not quoted: a server address copied from the Bark app ends with the device key.
            raise ValueError("swanlab_bark_server is the Bark server's address only, without a "
                             "path (the device key goes in swanlab_bark_key). Example: "
                             "`swanlab_bark_server: https://api.day.app`")
        return text.rstrip("/") if text else text

    @field_validator("swanlab_notify_language", mode="before")
    @classmethod
    def _language(cls, value: Any) -> Any:
        normalized = value.strip().lower() if isinstance(value, str) else value
        if normalized is None:
            return "en"
        if normalized not in ("en", "zh"):
            raise ValueError(f"swanlab_notify_language must be en or zh, got "
                             f"{_describe(value)}. Example: `swanlab_notify_language: zh`")
        return normalized

    @field_validator("swanlab_alert_loss_spike", mode="before")
    @classmethod
    def _loss_spike(cls, value: Any) -> Any:
        return _as_threshold("swanlab_alert_loss_spike", value, 3.0, 1.0, "3",
                             "a factor above 1 (the loss against the median of its recent values)")

    @field_validator("swanlab_alert_stall_minutes", mode="before")
    @classmethod
    def _stall_minutes(cls, value: Any) -> Any:
        return _as_threshold("swanlab_alert_stall_minutes", value, 30.0, 0.0, "30",
                             "a number of minutes above 0 (fractions allowed)")

    # -- derived -------------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        return bool(self.use_swanlab)

    @property
    def tracking(self) -> bool:
        """Enabled and in a mode that writes something."""
        return self.enabled and self.swanlab_mode != "disabled"

    def secret(self, key: str) -> Optional[str]:
        value = getattr(self, key)
        return value.get_secret_value() if isinstance(value, SecretStr) else None

    def public_keys(self) -> dict[str, Any]:
        """The normalised keys to put back into Axolotl's validated cfg: no secrets, no unset
        values (Axolotl prints and saves that cfg). Tracking off: only ``use_swanlab: false``,
        since the other keys are ignored."""
        if not self.enabled:
            return {"use_swanlab": False}
        out = {}
        for key in KNOWN_KEYS:
            if key in SECRET_KEYS:
                continue
            value = getattr(self, key)
            if value is not None:
                out[key] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass
class ParseResult:
    """What parsing one configuration found, for the messages shown after loading."""

    settings: SwanLabSettings
    given: dict[str, Any]  # the swanlab keys as written in the YAML / CLI overrides
    from_env: dict[str, str] = field(default_factory=dict)  # key -> environment variable used
    typos: list[tuple[str, Optional[str]]] = field(default_factory=list)  # (key, suggestion)
    auto_enabled: bool = False
    explicitly_disabled: bool = False


def is_swanlab_key(key: Any) -> bool:
    return isinstance(key, str) and (key.startswith("swanlab") or key.startswith("use_swanlab"))


def given_keys(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The swanlab keys present in a raw config (None values count as absent)."""
    return {k: v for k, v in cfg.items() if is_swanlab_key(k) and v is not None}


def closest_key(key: str) -> Optional[str]:
    match = difflib.get_close_matches(key, KNOWN_KEYS, n=1, cutoff=0.6)
    return match[0] if match else None


def _error_from(exc: ValidationError) -> SwanLabConfigError:
    first = exc.errors()[0]
    key = str(first["loc"][0]) if first.get("loc") else "swanlab"
    message = first.get("msg", str(exc))
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    elif first.get("type") == "extra_forbidden":
        message = f"{key} is not a SwanLab setting."
    message = " ".join(message.splitlines())  # one line, whatever a validator produced
    if key not in message:
        message = f"{key}: {message}"
    return SwanLabConfigError(key, message)


def parse(cfg: Mapping[str, Any], env: Mapping[str, str] | None = None) -> ParseResult:
    """Validate and normalise the swanlab keys of a raw config; raise SwanLabConfigError."""
    env = os.environ if env is None else env
    raw = given_keys(cfg)
    # A misspelt key is worth a warning even when its value is empty.
    typos = [(k, closest_key(k)) for k in cfg if is_swanlab_key(k) and k not in KNOWN_KEYS]
    values = {k: v for k, v in raw.items() if k in KNOWN_KEYS}
    if raw.get("use_swanlab") is False:
        # Explicitly off: the other keys are ignored (and said to be), not validated.
        values = {"use_swanlab": False}
    # What the user wrote, for messages; secrets stay in the settings (SecretStr) only.
    given = {k: ("***" if k in SECRET_KEYS else v) for k, v in raw.items()}

    from_env: dict[str, str] = {}
    for key, names in ENV_FALLBACKS.items():
        if key in values or given.get("use_swanlab") is False:
            continue
        for name in names:
            raw = env.get(name, "").strip().strip("'\"")
            if raw and not (name == "SWANLAB_PROJECT" and raw.startswith("{")):
                values[key] = raw
                from_env[key] = name
                break

    try:
        settings = SwanLabSettings(**values)
    except ValidationError as exc:
        error = _error_from(exc)
        if error.key in from_env:  # the bad value came from the environment, say so
            error = SwanLabConfigError(error.key, f"{error} (value taken from environment "
                                                  f"variable {from_env[error.key]})")
        raise error from None

    auto_enabled = settings.use_swanlab is None and "swanlab_project" in given
    explicitly_disabled = given.get("use_swanlab") is False
    if settings.use_swanlab is None:
        settings = settings.model_copy(update={"use_swanlab": auto_enabled})
    if settings.use_swanlab and not settings.swanlab_project:
        raise SwanLabConfigError(
            "swanlab_project",
            "SwanLab enabled but 'swanlab_project' is not set. Add `swanlab_project: "
            "my-project` to the config, or set `use_swanlab: false`.")
    incomplete = channels.incomplete(settings) if settings.use_swanlab else None
    if incomplete:  # a secret without its webhook, a bot token without its chat...
        raise SwanLabConfigError(*incomplete)
    return ParseResult(settings=settings, given=given, from_env=from_env, typos=typos,
                       auto_enabled=auto_enabled, explicitly_disabled=explicitly_disabled)
