"""The swanlab_* settings model: types, normalisation, defaults, messages, env fallbacks.

Every table row is one rule of issue 3 / the integration document. Every error must be one
line, name the key, say how to fix it, and never echo a secret.
"""
from __future__ import annotations

import os
import string

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from pydantic import SecretStr

from swanlab_autopatch.config.settings import (KNOWN_KEYS, MODES, PLUGIN_KEYS, SECRET_KEYS, SPEC_KEYS,
                                        ParseResult, SwanLabConfigError, SwanLabSettings,
                                        closest_key, parse)

# The spec's three messages, verbatim (the implementation may add a fix after them).
MISSING_PROJECT = "SwanLab enabled but 'swanlab_project' is not set."
INVALID_MODE = ("Invalid swanlab_mode: 'invalid-mode'. Valid options: cloud, local, offline, "
                "disabled")
EMPTY_PROJECT = "swanlab_project cannot be an empty string."

CANARY = "sk-CANARY-7f3a9e1d"  # a secret value that must never be shown


def _parse(cfg, env=None):
    return parse(cfg, env={} if env is None else env)


def _error(cfg, env=None) -> SwanLabConfigError:
    with pytest.raises(SwanLabConfigError) as info:
        _parse(cfg, env)
    return info.value


def _assert_good_message(error: SwanLabConfigError, key: str) -> str:
    message = str(error)
    assert len(message.splitlines()) == 1 and "\r" not in message, f"not one line: {message!r}"
    assert error.key == key, (error.key, message)
    assert key in message, f"message does not name {key}: {message!r}"
    # says how to fix it: a config snippet, or an instruction
    assert "`" in message or any(w in message for w in ("Shorten", "remove", "Remove")), message
    return message


# -- the model and its defaults -----------------------------------------------------------------


def test_key_lists_match_the_issue():
    assert set(SPEC_KEYS) == {
        "use_swanlab", "swanlab_project", "swanlab_experiment_name", "swanlab_description",
        "swanlab_mode", "swanlab_workspace", "swanlab_api_key", "swanlab_web_host",
        "swanlab_api_host", "swanlab_log_model"}
    assert set(PLUGIN_KEYS) == {
        "swanlab_lark_webhook_url", "swanlab_lark_secret", "swanlab_log_completions",
        "swanlab_completion_log_interval", "swanlab_completion_max_buffer"}
    assert set(KNOWN_KEYS) == set(SwanLabSettings.model_fields)
    assert set(SECRET_KEYS) == {  # the notification channels' in tests/unit/test_notify_settings
        "swanlab_api_key", "swanlab_lark_secret", "swanlab_lark_webhook_url",
        "swanlab_dingtalk_webhook_url", "swanlab_dingtalk_secret", "swanlab_wecom_webhook_url",
        "swanlab_slack_webhook_url", "swanlab_discord_webhook_url", "swanlab_telegram_bot_token",
        "swanlab_bark_key", "swanlab_email_password"}
    assert MODES == ("cloud", "local", "offline", "disabled")


@pytest.mark.parametrize("key, default", [
    ("use_swanlab", None),  # unset: decided by parse (auto-enable), false when no project
    ("swanlab_project", None),
    ("swanlab_experiment_name", None),
    ("swanlab_description", None),
    ("swanlab_mode", "cloud"),
    ("swanlab_workspace", None),
    ("swanlab_api_key", None),
    ("swanlab_web_host", None),
    ("swanlab_api_host", None),
    ("swanlab_log_model", "false"),
    ("swanlab_log_dir", None),
    ("swanlab_tags", None),
    ("swanlab_group", None),
    ("swanlab_job_type", None),
    ("swanlab_lark_webhook_url", None),
    ("swanlab_lark_secret", None),
    ("swanlab_log_completions", True),
    ("swanlab_completion_log_interval", 100),
    ("swanlab_completion_max_buffer", 128),
    ("swanlab_watch", "false"),
    ("swanlab_watch_interval", None),  # the Trainer's logging_steps
])
def test_model_defaults(key, default):
    assert getattr(SwanLabSettings(), key) == default


def test_only_a_project_gives_every_default():
    result = _parse({"swanlab_project": "my-project"})
    s = result.settings
    assert result.auto_enabled and not result.explicitly_disabled
    assert s.use_swanlab is True and s.enabled and s.tracking
    assert s.swanlab_mode == "cloud"
    assert s.swanlab_log_model == "false"
    assert s.swanlab_log_completions is True
    assert s.swanlab_completion_log_interval == 100
    assert s.swanlab_completion_max_buffer == 128
    assert s.public_keys() == {
        "use_swanlab": True, "swanlab_project": "my-project", "swanlab_mode": "cloud",
        "swanlab_log_model": "false", "swanlab_log_completions": True,
        "swanlab_completion_log_interval": 100, "swanlab_completion_max_buffer": 128,
        "swanlab_notify_language": "en", "swanlab_alerts": True, "swanlab_alert_loss_spike": 3.0,
        "swanlab_alert_stall_minutes": 30.0,
        "swanlab_watch": "false"}
    assert result.typos == [] and result.from_env == {}


def test_a_config_without_swanlab_keys_is_off():
    result = _parse({"base_model": "x", "learning_rate": 1e-4})
    assert result.settings.use_swanlab is False and not result.settings.tracking
    assert result.given == {} and not result.auto_enabled


# -- normalisation -------------------------------------------------------------------------------


@pytest.mark.parametrize("key, raw, expected", [
    ("swanlab_mode", "cloud", "cloud"),
    ("swanlab_mode", "CLOUD", "cloud"),
    ("swanlab_mode", " Offline ", "offline"),
    ("swanlab_mode", "Local", "local"),
    ("swanlab_mode", "DISABLED", "disabled"),
    ("swanlab_mode", "online", "cloud"),  # SwanLab's own name for cloud
    ("swanlab_mode", "ONLINE", "cloud"),
    ("swanlab_mode", None, "cloud"),  # None -> unset -> default
    ("swanlab_project", 2024, "2024"),  # YAML reads `swanlab_project: 2024` as a number
    ("swanlab_project", 1.5, "1.5"),
    ("swanlab_project", "  my-proj  ", "my-proj"),
    ("swanlab_project", "a+b.c_d-E9", "a+b.c_d-E9"),
    ("swanlab_project", "p" * 100, "p" * 100),
    ("swanlab_experiment_name", 42, "42"),
    ("swanlab_experiment_name", "", None),
    ("swanlab_experiment_name", "   ", None),
    ("swanlab_experiment_name", "Qwen 2.5 / run #1 — 试验", "Qwen 2.5 / run #1 — 试验"),
    ("swanlab_experiment_name", "x" * 512, "x" * 512),
    ("swanlab_experiment_name", None, None),
    ("swanlab_description", "", None),
    ("swanlab_description", " \t ", None),
    ("swanlab_description", "line one\nline two", "line one\nline two"),
    ("swanlab_description", "d" * 1024, "d" * 1024),
    ("swanlab_workspace", "", None),
    ("swanlab_workspace", 123, "123"),
    ("swanlab_workspace", "my-team_2", "my-team_2"),
    ("swanlab_workspace", "w" * 25, "w" * 25),
    ("swanlab_api_host", "https://api.example.com/", "https://api.example.com"),
    ("swanlab_api_host", "swan.internal:8000", "swan.internal:8000"),
    ("swanlab_api_host", "", None),
    ("swanlab_web_host", "http://web.internal/", "http://web.internal"),
    ("swanlab_web_host", "  ", None),
    ("swanlab_log_dir", "./swanlog", "./swanlog"),
    ("swanlab_log_dir", "", None),
    ("swanlab_log_model", True, "end"),
    ("swanlab_log_model", False, "false"),
    ("swanlab_log_model", "false", "false"),
    ("swanlab_log_model", "END", "end"),
    ("swanlab_log_model", "true", "end"),
    ("swanlab_log_model", "checkpoint", "checkpoint"),
    ("swanlab_tags", ["baseline", " lora ", "baseline", ""], ("baseline", "lora")),
    ("swanlab_tags", "a, b ,c", ("a", "b", "c")),
    ("swanlab_tags", [2024, "x"], ("2024", "x")),
    ("swanlab_tags", "", None),
    ("swanlab_group", " lr-sweep ", "lr-sweep"),
    ("swanlab_job_type", "finetune", "finetune"),
    ("swanlab_log_completions", False, False),
    ("swanlab_completion_log_interval", 7, 7),
    ("swanlab_completion_max_buffer", 1, 1),
    ("swanlab_watch", False, "false"),
    ("swanlab_watch", True, "gradients"),  # wandb.watch's default
    ("swanlab_watch", " ALL ", "all"),
    ("swanlab_watch", "parameters", "parameters"),
    ("swanlab_watch_interval", 50, 50),
    ("use_swanlab", True, True),
])
def test_normalisation(key, raw, expected):
    cfg = {"swanlab_project": "p", key: raw} if key != "swanlab_project" else {key: raw}
    assert getattr(_parse(cfg).settings, key) == expected


@pytest.mark.parametrize("key", SECRET_KEYS)
@pytest.mark.parametrize("raw, expected", [("", None), ("   ", None), (None, None)])
def test_secret_normalisation(key, raw, expected):
    s = _parse({"swanlab_project": "p", key: raw}).settings
    assert s.secret(key) == expected
    assert isinstance(getattr(s, key), (SecretStr, type(None)))


@pytest.mark.parametrize("raw, expected", [("  abc  ", "abc"), (12345, "12345")])
def test_secret_text_is_stripped_and_numbers_become_text(raw, expected):
    # (each channel's secrets, which must have their channel's shape: test_notify_settings)
    s = _parse({"swanlab_project": "p", "swanlab_api_key": raw}).settings
    assert s.secret("swanlab_api_key") == expected


def test_none_values_count_as_absent():
    cfg = {key: None for key in KNOWN_KEYS}
    result = _parse(cfg)
    assert result.given == {}
    assert result.settings.use_swanlab is False and result.settings.swanlab_mode == "cloud"


# -- the spec's messages ------------------------------------------------------------------------


@pytest.mark.parametrize("cfg, key, spec_message", [
    ({"use_swanlab": True}, "swanlab_project", MISSING_PROJECT),
    ({"use_swanlab": True, "swanlab_mode": "offline"}, "swanlab_project", MISSING_PROJECT),
    ({"use_swanlab": True, "swanlab_project": None}, "swanlab_project", MISSING_PROJECT),
    ({"use_swanlab": True, "swanlab_project": "my-project", "swanlab_mode": "invalid-mode"},
     "swanlab_mode", INVALID_MODE),
    ({"swanlab_project": "my-project", "swanlab_mode": "invalid-mode"}, "swanlab_mode",
     INVALID_MODE),
    ({"use_swanlab": True, "swanlab_project": ""}, "swanlab_project", EMPTY_PROJECT),
    ({"swanlab_project": ""}, "swanlab_project", EMPTY_PROJECT),
    ({"swanlab_project": "   "}, "swanlab_project", EMPTY_PROJECT),
    ({"swanlab_project": "\t\n"}, "swanlab_project", EMPTY_PROJECT),
])
def test_spec_messages_verbatim(cfg, key, spec_message):
    error = _error(cfg)
    message = _assert_good_message(error, key)
    assert message.startswith(spec_message), message


def test_missing_project_says_how_to_fix():
    message = str(_error({"use_swanlab": True}))
    assert "swanlab_project: my-project" in message and "use_swanlab: false" in message


def test_invalid_mode_lists_the_options_and_shows_the_value():
    message = str(_error({"swanlab_project": "p", "swanlab_mode": "clould"}))
    assert message.startswith("Invalid swanlab_mode: 'clould'. Valid options: cloud, local, "
                              "offline, disabled")


# -- wrong types and SwanLab's own constraints --------------------------------------------------


@pytest.mark.parametrize("key, value, expected", [
    # wrong types
    ("swanlab_project", ["a", "b"], "swanlab_project must be text, got a list"),
    ("swanlab_project", True, "swanlab_project must be text, got a boolean"),
    ("swanlab_project", False, "swanlab_project must be text, got a boolean"),
    ("swanlab_project", {"name": "p"}, "swanlab_project must be text, got a mapping"),
    ("use_swanlab", "true", "use_swanlab must be true or false, got a string ('true')"),
    ("use_swanlab", "yes", "use_swanlab must be true or false, got a string"),
    ("use_swanlab", 1, "use_swanlab must be true or false, got a number (1)"),
    ("use_swanlab", [True], "use_swanlab must be true or false, got a list"),
    ("use_swanlab", {"on": True}, "use_swanlab must be true or false, got a mapping"),
    ("swanlab_log_model", "sometimes", "swanlab_log_model must be false, end (or true) or "
                                       "checkpoint"),
    ("swanlab_log_model", 3, "swanlab_log_model must be false, end (or true) or checkpoint"),
    ("swanlab_tags", {"a": 1}, "swanlab_tags must be a list of tags or comma-separated text"),
    ("swanlab_tags", [["nested"]], "swanlab_tags holds a list"),
    ("swanlab_tags", ["t" * 513], "is too long (at most 512 characters)"),
    ("swanlab_tags", [f"t{i}" for i in range(31)], "swanlab_tags has 31 tags"),
    ("swanlab_group", ["x"], "swanlab_group must be text, got a list"),
    ("swanlab_job_type", "j" * 513, "swanlab_job_type is 513 characters long"),
    ("swanlab_log_completions", 0, "swanlab_log_completions must be true or false"),
    ("swanlab_mode", 1, "Invalid swanlab_mode: '1'"),
    ("swanlab_mode", True, "Invalid swanlab_mode: 'True'"),
    ("swanlab_mode", ["cloud"], "Invalid swanlab_mode:"),
    ("swanlab_mode", {"cloud": 1}, "Invalid swanlab_mode:"),
    ("swanlab_mode", "", "Invalid swanlab_mode: ''"),
    ("swanlab_mode", "cloud-sync", "Invalid swanlab_mode: 'cloud-sync'"),
    ("swanlab_experiment_name", ["x"], "swanlab_experiment_name must be text, got a list"),
    ("swanlab_experiment_name", True, "swanlab_experiment_name must be text, got a boolean"),
    ("swanlab_description", {"a": 1}, "swanlab_description must be text, got a mapping"),
    ("swanlab_workspace", ["t"], "swanlab_workspace must be text, got a list"),
    ("swanlab_api_host", ["h"], "swanlab_api_host must be text, got a list"),
    ("swanlab_web_host", True, "swanlab_web_host must be text, got a boolean"),
    ("swanlab_log_dir", ["d"], "swanlab_log_dir must be text, got a list"),
    ("swanlab_api_key", ["k"], "swanlab_api_key must be text, got a list"),
    ("swanlab_api_key", True, "swanlab_api_key must be text, got a boolean"),
    ("swanlab_api_key", 1.5, "swanlab_api_key must be text, got a number"),
    ("swanlab_lark_secret", {"s": 1}, "swanlab_lark_secret must be text, got a mapping"),
    ("swanlab_lark_webhook_url", ["u"], "swanlab_lark_webhook_url must be text, got a list"),
    ("swanlab_completion_log_interval", 0, "swanlab_completion_log_interval must be a whole "
                                           "number of at least 1, got 0"),
    ("swanlab_completion_log_interval", -5, "swanlab_completion_log_interval must be a whole"),
    ("swanlab_completion_log_interval", 1.5, "swanlab_completion_log_interval must be a whole"),
    ("swanlab_completion_log_interval", "100", "swanlab_completion_log_interval must be a whole"),
    ("swanlab_completion_log_interval", True, "swanlab_completion_log_interval must be a whole"),
    ("swanlab_completion_max_buffer", 0, "swanlab_completion_max_buffer must be a whole"),
    ("swanlab_completion_max_buffer", [1], "swanlab_completion_max_buffer must be a whole"),
    ("swanlab_watch", "weights", "swanlab_watch must be false, gradients, parameters or all, "
                                 "got 'weights'"),
    ("swanlab_watch", 1, "swanlab_watch must be false, gradients, parameters or all"),
    ("swanlab_watch_interval", 0, "swanlab_watch_interval must be a whole number of at least 1"),
    ("swanlab_watch_interval", "10", "swanlab_watch_interval must be a whole number"),
    # SwanLab's own constraints (swanlab/sdk/internal/pkg/constraints)
    ("swanlab_project", "my project", "swanlab_project 'my project' is not a valid SwanLab "
                                      "project name"),
    ("swanlab_project", "team/project", "is not a valid SwanLab project name"),
    ("swanlab_project", "p" * 101, "is not a valid SwanLab project name"),
    ("swanlab_project", "项目", "is not a valid SwanLab project name"),
    ("swanlab_project", "a\x00b", "is not a valid SwanLab project name"),
    ("swanlab_project", "a\nb", "is not a valid SwanLab project name"),
    ("swanlab_workspace", "my team", "swanlab_workspace 'my team' is not a valid SwanLab "
                                     "workspace"),
    ("swanlab_workspace", "w" * 26, "is not a valid SwanLab workspace"),
    ("swanlab_workspace", "team.x", "is not a valid SwanLab workspace"),
    ("swanlab_experiment_name", "x" * 513, "swanlab_experiment_name is 513 characters long; "
                                           "SwanLab accepts at most 512"),
    ("swanlab_experiment_name", "a\x1bb", "swanlab_experiment_name contains control characters"),
    ("swanlab_description", "d" * 1025, "swanlab_description is 1025 characters long; "
                                        "SwanLab accepts at most 1024"),
    ("swanlab_api_host", "not a host", "swanlab_api_host 'not a host' is not a host address"),
    ("swanlab_web_host", "http://a b", "swanlab_web_host 'http://a b' is not a host address"),
])
def test_wrong_values(key, value, expected):
    cfg = {"swanlab_project": "p", key: value} if key != "swanlab_project" else {key: value}
    message = _assert_good_message(_error(cfg), key)
    if expected.startswith((key, "Invalid")):
        assert message.startswith(expected), message
    else:
        assert expected in message, message


def test_long_values_are_shortened_in_messages():
    message = str(_error({"swanlab_project": "x y" * 500}))
    assert len(message) < 400 and "..." in message


@pytest.mark.parametrize("value", ["a\nb", "cloud\r\nlocal", "x" * 5000, "\x00", "clo\u2028ud"])
def test_mode_message_is_one_line_whatever_the_value(value):
    message = _assert_good_message(_error({"swanlab_project": "p", "swanlab_mode": value}),
                                   "swanlab_mode")
    assert message.startswith("Invalid swanlab_mode: '")
    assert len(message) < 400
    assert not any(c in message for c in "\x00\u2028\r")


def test_a_huge_number_still_names_the_key():
    message = _assert_good_message(_error({"swanlab_project": 10 ** 5000}), "swanlab_project")
    assert len(message) < 400


@pytest.mark.parametrize("key", ["swanlab_api_host", "swanlab_web_host"])
def test_host_errors_do_not_show_url_credentials(key):
    message = str(_error({"swanlab_project": "p", key: f"https://user:{CANARY}@host x"}))
    assert CANARY not in message and key in message


# -- auto-enable and explicit use_swanlab: false ------------------------------------------------


@pytest.mark.parametrize("cfg, use, auto, off, tracking", [
    ({"swanlab_project": "p"}, True, True, False, True),
    ({"use_swanlab": True, "swanlab_project": "p"}, True, False, False, True),
    ({"use_swanlab": False, "swanlab_project": "p"}, False, False, True, False),
    ({"use_swanlab": False}, False, False, True, False),
    ({"use_swanlab": False, "swanlab_project": "p", "swanlab_mode": "offline"},
     False, False, True, False),
    ({"swanlab_project": "p", "swanlab_mode": "disabled"}, True, True, False, False),
    ({"swanlab_mode": "offline"}, False, False, False, False),  # no project: not enabled
    ({"swanlab_project": "p", "use_swanlab": None}, True, True, False, True),
])
def test_auto_enable_and_explicit_disable(cfg, use, auto, off, tracking):
    result = _parse(cfg)
    assert result.settings.use_swanlab is use
    assert result.auto_enabled is auto
    assert result.explicitly_disabled is off
    assert result.settings.tracking is tracking
    assert result.settings.public_keys()["use_swanlab"] is use


def test_explicit_false_ignores_the_environment():
    result = _parse({"use_swanlab": False, "swanlab_project": "p"},
                    env={"SWANLAB_MODE": "bogus", "SWANLAB_WORKSPACE": "team"})
    assert result.from_env == {} and result.settings.swanlab_workspace is None


# -- typos ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("typo, suggestion", [
    ("swanlab_projet", "swanlab_project"),
    ("swanlab_projects", "swanlab_project"),
    ("swanlab_mdoe", "swanlab_mode"),
    ("swanlab_api_keys", "swanlab_api_key"),
    ("swanlab_apikey", "swanlab_api_key"),
    ("swanlab_experiment", "swanlab_experiment_name"),
    ("swanlab_workspce", "swanlab_workspace"),
    ("swanlab_webhost", "swanlab_web_host"),
    ("swanlab_logdir", "swanlab_log_dir"),
    ("swanlab_log_models", "swanlab_log_model"),
    ("swanlab_completions_log_interval", "swanlab_completion_log_interval"),
    ("swanlab_lark_webhook", "swanlab_lark_webhook_url"),
    ("use_swanlabs", "use_swanlab"),
])
def test_typos_name_the_closest_valid_key(typo, suggestion):
    assert closest_key(typo) == suggestion
    result = _parse({"swanlab_project": "p", typo: "value"})
    assert result.typos == [(typo, suggestion)]
    assert typo not in result.settings.public_keys()


def test_a_typo_alone_does_not_enable_or_fail():
    result = _parse({"swanlab_projet": "p"})
    assert result.typos == [("swanlab_projet", "swanlab_project")]
    assert result.settings.use_swanlab is False


def test_known_keys_are_never_typos():
    result = _parse({key: None for key in KNOWN_KEYS} | {"swanlab_project": "p"})
    assert result.typos == []


# -- environment fallbacks -----------------------------------------------------------------------


@pytest.mark.parametrize("env, key, expected, var", [
    ({"SWANLAB_MODE": "offline"}, "swanlab_mode", "offline", "SWANLAB_MODE"),
    ({"SWANLAB_MODE": "LOCAL"}, "swanlab_mode", "local", "SWANLAB_MODE"),
    ({"SWANLAB_MODE": "'offline'"}, "swanlab_mode", "offline", "SWANLAB_MODE"),  # shell quotes
    ({"SWANLAB_WORKSPACE": "team"}, "swanlab_workspace", "team", "SWANLAB_WORKSPACE"),
    ({"SWANLAB_PROJECT_WORKSPACE": "team2"}, "swanlab_workspace", "team2",
     "SWANLAB_PROJECT_WORKSPACE"),
    ({"SWANLAB_API_HOST": "https://api.example.com"}, "swanlab_api_host",
     "https://api.example.com", "SWANLAB_API_HOST"),
    ({"SWANLAB_WEB_HOST": "https://web.example.com"}, "swanlab_web_host",
     "https://web.example.com", "SWANLAB_WEB_HOST"),
    ({"SWANLAB_LOG_DIR": "/data/swanlog"}, "swanlab_log_dir", "/data/swanlog", "SWANLAB_LOG_DIR"),
    ({"SWANLAB_LOGDIR": "/old/swanlog"}, "swanlab_log_dir", "/old/swanlog", "SWANLAB_LOGDIR"),
    ({"SWANLAB_EXP_NAME": "run-1"}, "swanlab_experiment_name", "run-1", "SWANLAB_EXP_NAME"),
    ({"SWANLAB_DESCRIPTION": "about"}, "swanlab_description", "about", "SWANLAB_DESCRIPTION"),
])
def test_environment_fills_what_the_yaml_leaves_out(env, key, expected, var):
    result = _parse({"swanlab_project": "p"}, env)
    assert getattr(result.settings, key) == expected
    assert result.from_env == {key: var}


@pytest.mark.parametrize("key, yaml_value, env", [
    ("swanlab_mode", "local", {"SWANLAB_MODE": "offline"}),
    ("swanlab_mode", "local", {"SWANLAB_MODE": "bogus"}),  # a bad env value the YAML overrides
    ("swanlab_workspace", "yaml-team", {"SWANLAB_WORKSPACE": "env-team"}),
    ("swanlab_api_host", "https://yaml.example.com", {"SWANLAB_API_HOST": "https://env.example"}),
    ("swanlab_web_host", "https://yaml.example.com", {"SWANLAB_WEB_HOST": "https://env.example"}),
    ("swanlab_log_dir", "/yaml/logs", {"SWANLAB_LOG_DIR": "/env/logs"}),
    ("swanlab_project", "yaml-proj", {"SWANLAB_PROJECT": "env-proj"}),
    ("swanlab_project", "yaml-proj", {"SWANLAB_PROJ_NAME": "env-proj"}),
])
def test_the_yaml_wins(key, yaml_value, env):
    result = _parse({"swanlab_project": "p", key: yaml_value}, env)
    assert getattr(result.settings, key) == yaml_value
    assert key not in result.from_env


@pytest.mark.parametrize("env, expected, var", [
    ({"SWANLAB_PROJECT": "env-proj"}, "env-proj", "SWANLAB_PROJECT"),  # plain string
    ({"SWANLAB_PROJ_NAME": "a", "SWANLAB_PROJECT": "b"}, "a", "SWANLAB_PROJ_NAME"),
    ({"SWANLAB_PROJECT_NAME": "c", "SWANLAB_PROJECT": "b"}, "c", "SWANLAB_PROJECT_NAME"),
])
def test_project_from_the_environment(env, expected, var):
    result = _parse({"use_swanlab": True}, env)
    assert result.settings.swanlab_project == expected
    assert result.from_env["swanlab_project"] == var


def test_swanlab_project_as_json_is_not_a_project_name():
    # SwanLab itself reads SWANLAB_PROJECT as a JSON model; that is not a project name.
    error = _error({"use_swanlab": True}, {"SWANLAB_PROJECT": '{"name": "x"}'})
    assert str(error).startswith(MISSING_PROJECT)


@pytest.mark.parametrize("env, key, start", [
    ({"SWANLAB_MODE": "bogus"}, "swanlab_mode", "Invalid swanlab_mode: 'bogus'. Valid options:"),
    ({"SWANLAB_WORKSPACE": "bad team"}, "swanlab_workspace", "swanlab_workspace 'bad team'"),
    ({"SWANLAB_API_HOST": "not a host"}, "swanlab_api_host", "swanlab_api_host 'not a host'"),
    ({"SWANLAB_WEB_HOST": "a b"}, "swanlab_web_host", "swanlab_web_host 'a b'"),
    ({"SWANLAB_EXP_NAME": "x" * 600}, "swanlab_experiment_name", "swanlab_experiment_name is"),
])
def test_a_bad_environment_value_names_the_variable(env, key, start):
    error = _error({"swanlab_project": "p"}, env)
    message = _assert_good_message(error, key)
    assert message.startswith(start), message
    (var,) = env
    assert f"environment variable {var}" in message


def test_a_bad_swanlab_project_variable_names_it():
    error = _error({"use_swanlab": True}, {"SWANLAB_PROJECT": "has space"})
    message = _assert_good_message(error, "swanlab_project")
    assert "environment variable SWANLAB_PROJECT" in message


def test_blank_environment_values_are_ignored():
    result = _parse({"swanlab_project": "p"}, {"SWANLAB_MODE": "  ", "SWANLAB_WORKSPACE": "''"})
    assert result.from_env == {} and result.settings.swanlab_mode == "cloud"


def test_parse_reads_os_environ_by_default(monkeypatch):
    monkeypatch.setenv("SWANLAB_MODE", "offline")
    assert parse({"swanlab_project": "p"}).settings.swanlab_mode == "offline"


# -- secrets ------------------------------------------------------------------------------------


SECRETS = {
    "swanlab_api_key": CANARY,
    "swanlab_lark_secret": CANARY + "-lark",
    "swanlab_lark_webhook_url": f"https://open.feishu.cn/open-apis/bot/v2/hook/{CANARY}",
}


def test_secrets_are_kept_for_login_but_never_shown():
    result = _parse({"swanlab_project": "p", **SECRETS})
    s = result.settings
    for key, value in SECRETS.items():
        assert s.secret(key) == value
    shown = [repr(s), str(s), s.model_dump_json(), repr(s.model_dump()), repr(result),
             str(result), repr(s.public_keys())]
    for text in shown:
        assert CANARY not in text, text
    assert not set(SECRET_KEYS) & set(s.public_keys())


@pytest.mark.parametrize("bad", [
    {"swanlab_mode": "invalid-mode"},
    {"swanlab_project": ""},
    {"swanlab_project": ["x"]},
    {"use_swanlab": "yes"},
    {"swanlab_workspace": "bad team"},
    {"swanlab_completion_max_buffer": 0},
    {"swanlab_api_key": [CANARY]},
    {"swanlab_api_key": {"key": CANARY}},
    {"swanlab_lark_secret": [CANARY]},
    {"swanlab_lark_webhook_url": {"url": CANARY}},
])
def test_no_error_message_shows_a_secret(bad):
    cfg = {"swanlab_project": "p", **SECRETS, **bad}
    error = _error(cfg)
    assert CANARY not in str(error) and CANARY not in repr(error)
    assert CANARY not in " ".join(str(a) for a in error.args)


def test_use_swanlab_true_without_project_does_not_show_secrets():
    error = _error({"use_swanlab": True, **SECRETS})
    assert str(error).startswith(MISSING_PROJECT) and CANARY not in str(error)


# -- property: any config either parses or fails with one clear line -----------------------------


TYPO_KEYS = ["swanlab_projet", "swanlab_mod", "use_swanlb_x", "swanlab_api_keys", "swanlab",
             "swanlab_", "swanlabproject", "use_swanlab_", "swanlab_Project"]
ENV_VARS = ["SWANLAB_MODE", "SWANLAB_WORKSPACE", "SWANLAB_API_HOST", "SWANLAB_WEB_HOST",
            "SWANLAB_LOG_DIR", "SWANLAB_PROJECT", "SWANLAB_PROJ_NAME", "SWANLAB_EXP_NAME"]

_texts = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=string.ascii_letters + string.digits + "-_+.", min_size=1, max_size=30),
    st.sampled_from(["", " ", "\t", "\n", "cloud", "CLOUD", "online", "offline", "local",
                     "disabled", "invalid-mode", "my-project", "项目", "é", "a\x00b", "\x1b[31m",
                     "https://api.example.com", "http://u:p@h", "true", "null", "🦎"]),
    st.text(min_size=90, max_size=600),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=20),
)
_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), _texts)
_values = st.one_of(_scalars, st.lists(_scalars, max_size=3),
                    st.dictionaries(st.text(max_size=5), _scalars, max_size=3))
_configs = st.dictionaries(st.sampled_from(list(KNOWN_KEYS) + TYPO_KEYS), _values, max_size=8)
_envs = st.dictionaries(st.sampled_from(ENV_VARS), _texts, max_size=3)

# 400 keeps the fast lane fast; raise it for a longer hunt (the count is printed either way).
PROPERTY_EXAMPLES = int(os.environ.get("SWANLAB_AUTOPATCH_PROPERTY_EXAMPLES", "400"))
SECRET_MARK = "XYZZY-secret-"
_seen = {"examples": 0, "ok": 0, "errors": 0}


@hsettings(max_examples=PROPERTY_EXAMPLES, deadline=None, database=None,
           suppress_health_check=[HealthCheck.too_slow])
@given(cfg=_configs, env=_envs)
def _property(cfg, env):
    _seen["examples"] += 1
    for key in SECRET_KEYS:  # mark every usable secret, to see that none is ever echoed
        if isinstance(cfg.get(key), str) and cfg[key].strip():
            cfg[key] = SECRET_MARK + cfg[key]
    try:
        result = parse(cfg, env=env)
    except SwanLabConfigError as error:  # anything else fails the test
        _seen["errors"] += 1
        message = str(error)
        assert len(message.splitlines()) == 1 and "\r" not in message, repr(message)
        assert error.key == "use_swanlab" or error.key.startswith("swanlab_"), error.key
        assert error.key in message, (error.key, message)
        assert SECRET_MARK not in message and SECRET_MARK not in repr(error)
        return
    _seen["ok"] += 1
    assert isinstance(result, ParseResult)
    s = result.settings
    assert s.swanlab_mode in MODES and isinstance(s.use_swanlab, bool)
    if s.use_swanlab:
        assert s.swanlab_project
    public = s.public_keys()
    assert not set(public) & set(SECRET_KEYS)
    assert SECRET_MARK not in repr(result) and SECRET_MARK not in repr(public)
    # the keys put back into Axolotl's cfg validate again, to the same values (Ray workers)
    again = parse(public, env={}).settings.public_keys()
    assert again == public


def test_property_any_config_parses_or_fails_with_one_clear_line(record_property):
    _seen.update(examples=0, ok=0, errors=0)
    _property()
    record_property("hypothesis_examples", _seen["examples"])
    print(f"\nhypothesis: {_seen['examples']} generated configs "
          f"({_seen['ok']} parsed, {_seen['errors']} rejected with SwanLabConfigError)")
    assert _seen["examples"] >= PROPERTY_EXAMPLES // 2
    assert _seen["ok"] > 0 and _seen["errors"] > 0
