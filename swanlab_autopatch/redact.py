"""One redaction helper for everything this package prints, logs to SwanLab or saves.

A value is secret when its key says so (api keys, tokens, secrets, passwords, webhook URLs) or
when it is a URL carrying credentials. Tokenizer settings such as ``pad_token`` or
``eos_token`` are not secrets and are kept.
"""
from __future__ import annotations

import re
from typing import Any

MASK = "***"

_SECRET_KEY = re.compile(
    r"(api_?key|apikey|secret|password|passwd|access_token|auth_token|hub_token|hf_token"
    r"|bearer|credential|private_key|webhook_url|webhook)$",
    re.IGNORECASE,
)
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<cred>[^/@\s]+)@", re.I)


def is_secret_key(key: Any) -> bool:
    return isinstance(key, str) and bool(_SECRET_KEY.search(key.strip()))


def redact_value(key: Any, value: Any) -> Any:
    if value is None or value == "" or isinstance(value, bool):
        return value
    if is_secret_key(key):
        return MASK
    if isinstance(value, str):
        return _URL_CREDENTIALS.sub(lambda m: f"{m.group('scheme')}{MASK}@", value)
    return value


def redact(obj: Any, _key: Any = None) -> Any:
    """A copy of a nested structure (dicts, lists) with every secret replaced by ``***``."""
    if isinstance(obj, dict):
        return {k: redact(v, k) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact(v, _key) for v in obj]
    return redact_value(_key, obj)


_YAML_LINE = re.compile(r"^(?P<head>\s*(?:-\s+)?(?P<key>[^\s:#'\"]+)\s*:\s*)(?P<value>\S.*?)\s*$")


def redact_yaml_text(text: str) -> str:
    """Mask secret values in YAML source text, keeping its layout and comments otherwise."""
    out = []
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        ending = line[len(body):]
        match = _YAML_LINE.match(body)
        if match and is_secret_key(match.group("key")):
            body = f"{match.group('head')}{MASK}"
        else:
            body = _URL_CREDENTIALS.sub(lambda m: f"{m.group('scheme')}{MASK}@", body)
        out.append(body + ending)
    return "".join(out)


def scrub_text(text: str, secrets: list[str]) -> str:
    """Replace known secret strings anywhere in a message (for errors that echo values)."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, MASK)
    return text
