"""The swanlab_* keys as options of Axolotl's own command line: `axolotl train cfg.yaml
--swanlab_project=x --swanlab_mode=offline`, on every launcher.

Axolotl builds the options of `axolotl train` (and of its other config commands) from its
config schema, which has no swanlab keys: releases before 0.12 refuse them ("No such option"),
later ones hand them to the launcher (accelerate: "unrecognized arguments") or, with
`--launcher python`, drop them. The patch table wraps the function that builds those options
(see docs/axolotl-facts.md); the decorator it returns also adds one option per key here.

How the values reach training: not as arguments of the command Axolotl builds for accelerate
or torchrun. There, `fire` parses every value again (`a, b` becomes a tuple, `1e5` a float),
releases before 0.12 drop a false boolean, and a secret would sit in the command line of every
process. The launcher puts them, as JSON, into one environment variable that every process it
starts inherits; the config flow merges them into the raw config before validation, where they
count exactly as YAML keys (the command line wins over the YAML, as Axolotl's overrides do).

Imported while Axolotl builds its commands: stdlib only at module level (click, which Axolotl
has already imported there, is imported inside ``with_options``; pydantic never).
"""
from __future__ import annotations

import json
import os
import re
import sys
from typing import Any, Callable, MutableMapping, Optional

ENV = "SWANLAB_AUTOPATCH_COMMAND_LINE"

TEXT, FLAG, COUNT, TAGS, SECRET = "text", "flag", "count", "tags", "secret"

# (key, kind, help). Every key a user writes in the YAML (config/settings.py KNOWN_KEYS, minus
# swanlab_launch_dir, which this package sets itself).
OPTIONS: tuple[tuple[str, str, str], ...] = (
    ("use_swanlab", FLAG, "SwanLab tracking on or off (=false); on by default with "
                          "--swanlab_project"),
    ("swanlab_project", TEXT, "SwanLab project (turns tracking on)"),
    ("swanlab_experiment_name", TEXT, "SwanLab run name"),
    ("swanlab_description", TEXT, "SwanLab run description"),
    ("swanlab_mode", TEXT, "cloud, local, offline or disabled"),
    ("swanlab_workspace", TEXT, "SwanLab team workspace"),
    ("swanlab_api_key", SECRET, "SwanLab API key (better: SWANLAB_API_KEY or swanlab login)"),
    ("swanlab_web_host", TEXT, "web address of a private SwanLab"),
    ("swanlab_api_host", TEXT, "API address of a private SwanLab"),
    ("swanlab_log_model", TEXT, "false, end or checkpoint"),
    ("swanlab_lark_webhook_url", SECRET, "Lark group-bot webhook"),
    ("swanlab_lark_secret", SECRET, "the Lark webhook's signing secret"),
    ("swanlab_log_completions", FLAG, "log RL completion tables (=false: off)"),
    ("swanlab_completion_log_interval", COUNT, "steps between completion tables"),
    ("swanlab_completion_max_buffer", COUNT, "rows per completion table"),
    ("swanlab_log_dir", TEXT, "folder of the SwanLab run folders (default ./swanlog)"),
    ("swanlab_tags", TAGS, "run tags, comma-separated or repeated"),
    ("swanlab_group", TEXT, "SwanLab run group"),
    ("swanlab_job_type", TEXT, "SwanLab job type"),
    ("swanlab_watch", TEXT, "gradient and weight norms: false, gradients, parameters or all"),
    ("swanlab_watch_interval", COUNT, "steps between watch norms (default logging_steps)"),
    # Alerts and notification channels (README "Alerts and notifications").
    ("swanlab_alerts", FLAG, "alerts during the run (=false: only the end-of-run message)"),
    ("swanlab_alert_loss_spike", TEXT, "loss spike factor over the recent median, or false"),
    ("swanlab_alert_stall_minutes", TEXT, "minutes without a Trainer log before an alert, "
                                          "or false"),
    ("swanlab_notify_language", TEXT, "en or zh"),
    ("swanlab_dingtalk_webhook_url", SECRET, "DingTalk robot webhook"),
    ("swanlab_dingtalk_secret", SECRET, "the DingTalk webhook's SEC... signing secret"),
    ("swanlab_wecom_webhook_url", SECRET, "WeCom robot webhook"),
    ("swanlab_slack_webhook_url", SECRET, "Slack incoming webhook"),
    ("swanlab_discord_webhook_url", SECRET, "Discord webhook"),
    ("swanlab_telegram_bot_token", SECRET, "Telegram bot token"),
    ("swanlab_telegram_chat_id", TEXT, "Telegram chat id (a number, or @channel)"),
    ("swanlab_bark_key", SECRET, "Bark device key"),
    ("swanlab_bark_server", TEXT, "Bark server (default https://api.day.app)"),
    ("swanlab_email_sender", TEXT, "e-mail address the notifications come from"),
    ("swanlab_email_password", SECRET, "the sender's (app) password"),
    ("swanlab_email_receiver", TEXT, "e-mail address(es) to notify, comma-separated"),
    ("swanlab_email_smtp_server", TEXT, "SMTP host (default smtp.gmail.com)"),
    ("swanlab_email_smtp_port", COUNT, "SMTP port (default 587)"),
)
KEYS = tuple(key for key, _kind, _help in OPTIONS)
SECRET_KEYS = tuple(key for key, kind, _help in OPTIONS if kind == SECRET)

# An option naming a swanlab key: `--swanlab_project=x`, `--swanlab-project x`, `--use-swanlab`.
_TOKEN = re.compile(r"^--(?P<name>(?:no[-_])?(?:use[-_]swanlab|swanlab)[-_A-Za-z0-9]*)"
                    r"(?P<eq>=)?(?P<value>.*)$", re.S)


def option_names(key: str) -> tuple[str, str]:
    """`--swanlab-project` (Axolotl's own style) and `--swanlab_project` (the YAML key's)."""
    return f"--{key.replace('_', '-')}", f"--{key}"


def with_options(function: Callable) -> Callable:
    """A click command callback with one option per swanlab key. Called, it takes its own
    values out of the keyword arguments (Axolotl never sees them), hands them to the
    processes the command starts (``export``) and masks secrets in sys.argv."""
    import functools

    import click

    @functools.wraps(function)
    def command(*args: Any, **kwargs: Any) -> Any:
        given = {key: value for key, value in
                 ((key, _plain(key, kwargs.pop(key, None))) for key in KEYS)
                 if value is not None}
        if given and kwargs.get("cloud"):
            raise click.UsageError(
                f"--{next(iter(given))}: Axolotl does not pass command-line config options on "
                "to a --cloud run; put the swanlab_* keys into the YAML instead.")
        export(given)
        scrub_argv(sys.argv)
        return function(*args, **kwargs)

    for key, kind, text in reversed(OPTIONS):
        names = (*option_names(key), key)
        if kind == FLAG:
            # `--use_swanlab` alone means true; `--use_swanlab=false` says no.
            option = click.option(*names, type=click.BOOL, is_flag=False, flag_value=True,
                                  default=None, help=text)
        elif kind == COUNT:
            option = click.option(*names, type=click.INT, default=None, help=text)
        elif kind == TAGS:
            option = click.option(*names, multiple=True, help=text)
        else:
            option = click.option(*names, default=None, help=text)
        command = option(command)
    return command


def _plain(key: str, value: Any) -> Any:
    """The value as the YAML would hold it: tags as a list (split on commas, as SWANLAB_TAGS
    is; `--swanlab_tags=` gives an empty one), secrets registered for masking at once."""
    if value is None or value == ():  # not given (click's default for a repeatable option)
        return None
    if isinstance(value, (list, tuple)):
        tags = [tag.strip() for item in value for tag in str(item).split(",")]
        return [tag for tag in tags if tag]
    if key in SECRET_KEYS:
        from swanlab_autopatch.redact import register_secret

        register_secret(value)
    return value


def export(given: dict[str, Any]) -> None:
    """Hand the keys to every process this one starts; none given clears what a parent
    `axolotl` command may have left, so a nested command gets only its own."""
    if given:
        os.environ[ENV] = json.dumps(given)
    else:
        os.environ.pop(ENV, None)


def given() -> dict[str, Any]:
    """The keys given on the `axolotl` command line that started this process (or {})."""
    raw = os.environ.get(ENV)
    if not raw:
        return {}
    try:
        values = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(values, dict):
        return {}
    return {k: v for k, v in values.items() if k in KEYS}


def scrub_argv(argv: list) -> None:
    """Replace the value of every secret option in argv (in place) by `***`: SwanLab records
    the command line in the run's metadata (and uploads it in cloud mode)."""
    secret_names = {n for key in SECRET_KEYS for n in option_names(key)}
    hide_next = False
    for i, token in enumerate(argv):
        if hide_next:
            argv[i], hide_next = "***", False
            continue
        if not isinstance(token, str) or not token.startswith("--"):
            continue
        name, eq, _value = token.partition("=")
        if name in secret_names:
            if eq:
                argv[i] = f"{name}=***"
            else:
                hide_next = True


def from_axolotl_cli(argv: list) -> bool:
    """Whether this process is Axolotl's command line: `axolotl ...`, or a launcher's child
    running `-m axolotl.cli.<command>` (argv[0] is then the module's file)."""
    if not argv or not isinstance(argv[0], str):
        return False
    first = argv[0].replace("\\", "/")
    return os.path.basename(first) == "axolotl" or "/axolotl/cli/" in first


def options_in(argv: list) -> list[tuple[str, str]]:
    """(token, key) for every option in argv that names a swanlab key."""
    found = []
    for token in argv[1:]:
        match = _TOKEN.match(token) if isinstance(token, str) else None
        if match:
            found.append((token.partition("=")[0], match.group("name").replace("-", "_")))
    return found


def stray(argv: list, cfg: MutableMapping[str, Any]) -> Optional[tuple[str, str]]:
    """(key, message) for the first swanlab option on Axolotl's command line that did not
    reach the config, else None. A dropped option would leave a run untracked without a word."""
    if not from_axolotl_cli(argv):
        return None
    from swanlab_autopatch.config.settings import closest_key

    for token, key in options_in(argv):
        if key.startswith("no_") and key[3:] in KEYS:
            return key[3:], (f"{token} is not an option; write {option_names(key[3:])[1]}=false "
                             "instead.")
        if key not in KEYS:
            suggestion = closest_key(key)
            hint = f" Did you mean --{suggestion}?" if suggestion else ""
            return key, f"{token} on the command line is not a SwanLab option.{hint}"
        if cfg.get(key) is None:
            if cfg.get("strict"):
                why = ("`strict: true` in the YAML keeps out command-line keys that the YAML "
                       "does not have")
            else:
                from swanlab_autopatch.versions import axolotl_version

                why = f"Axolotl {axolotl_version() or '(unknown version)'} did not pass it on"
            return key, (f"{token} was given on the command line but did not reach the config "
                         f"({why}). Put `{key}: ...` into the YAML instead.")
    return None


def apply(cfg: MutableMapping[str, Any]) -> None:
    """Before a raw config is validated: the keys of the `axolotl` command line go in (over
    the YAML's), secrets leave sys.argv, and an option that got lost stops the run."""
    cfg.update(given())
    scrub_argv(sys.argv)
    problem = stray(sys.argv, cfg)
    if problem is not None:
        from swanlab_autopatch.errors import SwanLabConfigError

        raise SwanLabConfigError(*problem)
