"""One redaction helper for everything this package prints, logs to SwanLab or saves.

A value is secret when its key says so (api keys, tokens, secrets, passwords, credentials,
webhook URLs), and everything below such a key is secret too. Under any other key a string is
still cleaned: credentials in URLs (``https://user:pass@host``), secret query parameters
(``?access_token=...``) and whole webhook URLs (Lark/Feishu, Slack, Discord, DingTalk, WeCom,
Telegram's bot URLs: the secret is part of the address). Tokenizer settings such as
``pad_token`` or ``eos_token``, and counts such as ``max_tokens``, are not secrets and are kept.
"""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

MASK = "***"

_SECRET_KEY = re.compile(
    r"(api_?keys?|apikey|secret|secret_?key|access_?key|password|passwd|passphrase"
    r"|(^|[_\-.])token|credentials?|authorization|bearer|private_?key|webhook_url|webhook"
    r"|bark_?key|device_?key)$",
    re.IGNORECASE,
)
# `<name>_token` keys that hold a tokenizer's special token, not a credential.
_TOKENIZER_TOKENS = re.compile(
    r"^(pad|eos|bos|unk|sep|cls|mask|eot|eom|eod|im_start|im_end|image|video|audio|boi|eoi"
    r"|boa|eoa|start|end|begin|think|think_start|think_end|tool|tool_call|fim_prefix"
    r"|fim_middle|fim_suffix|fim_pad|additional_special|special|default|placeholder"
    r"|chat_template_eos|vision_start|vision_end)_token$",
    re.IGNORECASE,
)
_URL = re.compile(r"[a-z][a-z0-9+.\-]*://[^\s'\"<>`]+", re.IGNORECASE)
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<cred>[^/@\s]+)@", re.I)
_SECRET_QUERY = re.compile(
    r"(?P<name>[?&;](?:[a-z0-9_\-]*token|[a-z0-9_\-]*key|[a-z0-9_\-]*secret|sig|signature"
    r"|password|passwd|auth|x-amz-signature|x-amz-credential|x-amz-security-token)=)"
    r"(?P<value>[^&;#\s'\"]+)", re.IGNORECASE)
_HOOK_WORDS = frozenset({"hook", "hooks", "webhook", "webhooks"})
_BOT_TOKEN_PATH = re.compile(r"/bot\d+:[\w-]+")  # Telegram's Bot API: the token is in the path


def is_secret_key(key: Any) -> bool:
    if not isinstance(key, str):
        return False
    name = key.strip()
    return bool(_SECRET_KEY.search(name)) and not _TOKENIZER_TOKENS.match(name)


def _is_webhook(url: str) -> bool:
    try:
        parts = urlsplit(url)
        labels = (parts.hostname or "").split(".")
    except ValueError:
        return False
    segments = [s.lower() for s in parts.path.split("/") if s]
    return bool(_HOOK_WORDS & {label.lower() for label in labels}) or \
        bool(_HOOK_WORDS & set(segments)) or "/robot/send" in parts.path.lower() or \
        bool(_BOT_TOKEN_PATH.search(parts.path))


def _clean_url(match: re.Match) -> str:
    url = match.group(0)
    if _is_webhook(url):
        return MASK
    url = _URL_CREDENTIALS.sub(lambda m: f"{m.group('scheme')}{MASK}@", url)
    return _SECRET_QUERY.sub(lambda m: f"{m.group('name')}{MASK}", url)


def clean_text(text: str) -> str:
    """Mask the secret parts of every URL in a piece of text."""
    if "://" not in text:
        return text
    return _URL.sub(_clean_url, text)


def redact_value(key: Any, value: Any) -> Any:
    if value is None or value == "" or isinstance(value, bool):
        return value
    if is_secret_key(key):
        return MASK
    if isinstance(value, str):
        return clean_text(value)
    return value


def redact(obj: Any, _key: Any = None, _inside_secret: bool = False) -> Any:
    """A copy of a nested structure (dicts, lists) with every secret replaced by ``***``."""
    secret = _inside_secret or is_secret_key(_key)
    if isinstance(obj, dict):
        return {k: redact(v, k, secret) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact(v, _key, secret) for v in obj]
    if secret and not (obj is None or obj == "" or isinstance(obj, bool)):
        return MASK
    return redact_value(_key, obj)


# -- YAML source text --------------------------------------------------------------------------

_YAML_KEY = re.compile(
    r"^(?P<head>(?P<indent>[ \t]*)(?:-[ \t]+)?(?P<q>[\"']?)(?P<key>[^\s:#'\"]+)(?P=q)[ \t]*:)"
    r"(?P<rest>(?:[ \t].*)?)$")
_FLOW_PAIR = re.compile(
    r"(?P<pre>[{,][ \t]*(?P<q>[\"']?)(?P<key>[^\s:#'\",{}\[\]]+)(?P=q)[ \t]*:[ \t]*)"
    r"(?P<value>\"[^\"]*\"|'[^']*'|[^,}\s][^,}]*?)(?=[ \t]*[,}])")


def _split_comment(rest: str) -> tuple[str, str, str]:
    """(leading space, value, trailing comment with its space) of a YAML value."""
    stripped = rest.lstrip(" \t")
    lead = rest[:len(rest) - len(stripped)]
    if stripped[:1] in ("'", '"'):
        quote, i = stripped[0], 1
        while i < len(stripped):
            if stripped[i] == quote:
                if quote == "'" and stripped[i + 1:i + 2] == "'":
                    i += 2
                    continue
                break
            if quote == '"' and stripped[i] == "\\":
                i += 1
            i += 1
        value, tail = stripped[:i + 1], stripped[i + 1:]
        return lead, value, tail
    comment = re.search(r"[ \t]#", stripped)
    if comment:
        value = stripped[:comment.start()].rstrip(" \t")
        return lead, value, stripped[len(value):]
    return lead, stripped, ""


def _indent_width(text: str) -> int:
    return len(text) - len(text.lstrip(" \t"))


def redact_yaml_text(text: str) -> str:
    """Mask secret values in YAML source text, keeping its layout and comments otherwise.

    Handles ``key: value  # comment``, quoted keys and values, list items, flow mappings
    (``{api_key: x}``), and block values under a secret key (``|``/``>`` scalars and nested
    lines), whose every line is masked."""
    out = []
    block_indent = None  # inside the block value of a secret key: the key's indentation
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        ending = line[len(body):]
        if block_indent is not None:
            if not body.strip():
                out.append(line)
                continue
            if _indent_width(body) > block_indent:
                out.append(body[:_indent_width(body)] + MASK + ending)
                continue
            block_indent = None
        match = _YAML_KEY.match(body)
        if match and is_secret_key(match.group("key")):
            lead, value, tail = _split_comment(match.group("rest"))
            if not value or value[:1] in ("|", ">"):
                block_indent = len(match.group("indent"))
            if value:
                body = f"{match.group('head')}{lead or ' '}{MASK}{clean_text(tail)}"
            out.append(body + ending)
            continue
        body = _FLOW_PAIR.sub(
            lambda m: m.group("pre") + (MASK if is_secret_key(m.group("key"))
                                        else m.group("value")), body)
        out.append(clean_text(body) + ending)
    return "".join(out)


# -- the one choke point for text that leaves this package --------------------------------------

_registered: set[str] = set()
_SHORTEST = 4  # shorter values would mask ordinary words


def register_secret(*values: object) -> None:
    """Remember secret values (the config's, a saved login's) so that ``mask`` hides them
    wherever they turn up. The config layer calls this once per configuration."""
    for value in values:
        if isinstance(value, str) and len(value.strip()) >= _SHORTEST:
            _registered.add(value.strip())


def _environment_secrets() -> set[str]:
    import os

    return {value.strip() for name, value in os.environ.items()
            if len(value.strip()) >= _SHORTEST and is_secret_key(name)}


def mask(text: object) -> str:
    """Every line this package prints or logs, and every error text it hands to SwanLab, goes
    through here: each secret the process knows (registered ones, secret-named environment
    variables such as SWANLAB_API_KEY) becomes ``***``, and so do credentials inside URLs."""
    try:
        out = str(text)
        for secret in sorted(_registered | _environment_secrets(), key=len, reverse=True):
            out = out.replace(secret, MASK)
        return clean_text(out)
    except Exception:  # never let a message through unchecked
        return "<message withheld: it could not be checked for secrets>"
