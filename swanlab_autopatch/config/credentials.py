"""Where SwanLab's credentials and hosts come from: the API key (config, environment, a saved
`swanlab login`, SwanLab's own files) and the normalised API host. No network call here."""
from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Mapping, Optional
from urllib.parse import urlsplit

from swanlab_autopatch.redact import register_secret
from swanlab_autopatch.config.settings import SwanLabSettings

DEFAULT_API_HOST = "https://api.swanlab.cn"


def normalize_host(host: Optional[str]) -> Optional[str]:
    """``scheme://host[:port]`` as SwanLab stores it (https by default, no path)."""
    if not host:
        return None
    text = host.strip()
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    return f"{parts.scheme}://{parts.netloc}".rstrip("/").lower()


def _netrc_files(env: Mapping[str, str]) -> list[Path]:
    root = env.get("SWANLAB_ROOT") or env.get("SWANLAB_SAVE_DIR") or str(Path.home() / ".swanlab")
    return [Path.cwd() / ".swanlab" / ".netrc", Path(root) / ".netrc"]


def _saved_login(api_host: str, env: Mapping[str, str]) -> Optional[tuple[str, Path]]:
    for path in _netrc_files(env):
        try:
            if not path.is_file():
                continue
            entries = netrc.netrc(str(path)).hosts
        except (OSError, netrc.NetrcParseError):
            continue
        for machine, (_login, _account, password) in entries.items():
            if password and normalize_host(machine.removesuffix("/api")) == api_host:
                return password, path
    return None


def find_api_key(settings: SwanLabSettings, env: Mapping[str, str] | None = None
                 ) -> tuple[Optional[str], str]:
    """The API key SwanLab would use and where it comes from, without any network call
    (see _find_api_key); whatever is found is registered for masking."""
    key, source = _find_api_key(settings, env)
    register_secret(key, *_saved_keys(os.environ if env is None else env))
    return key, source


def register_known_secrets(settings: SwanLabSettings,
                           env: Mapping[str, str] | None = None) -> None:
    """Tell the one mask (redact.mask) every secret this job knows: the config's and every
    saved login's, whether or not they end up used."""
    from swanlab_autopatch.config.settings import SECRET_KEYS

    register_secret(*(settings.secret(k) for k in SECRET_KEYS),
                    *_saved_keys(os.environ if env is None else env))


def _saved_keys(env: Mapping[str, str]) -> list[str]:
    """Every key a saved login holds, used or not: masked wherever it would turn up."""
    keys = []
    for path in _netrc_files(env):
        try:
            if path.is_file():
                keys += [password for _l, _a, password in netrc.netrc(str(path)).hosts.values()
                         if password]
        except (OSError, netrc.NetrcParseError):
            continue
    return keys


def _find_api_key(settings: SwanLabSettings, env: Mapping[str, str] | None = None
                  ) -> tuple[Optional[str], str]:
    """The API key SwanLab would use and where it comes from, without any network call.

    Order: ``swanlab_api_key`` in the config, ``SWANLAB_API_KEY``, a saved ``swanlab login``
    for the same API host. SwanLab's own other sources (swanlab.yaml, .env, the secrets folder)
    need the client to read them: tracking.compat.settings_api_key, at run start. Returns
    (None, "") when there is none.
    """
    env = os.environ if env is None else env
    key = settings.secret("swanlab_api_key")
    if key:
        return key, "swanlab_api_key in the config"
    key = env.get("SWANLAB_API_KEY", "").strip().strip("'\"")
    if key:
        return key, "the SWANLAB_API_KEY environment variable"
    api_host = normalize_host(settings.swanlab_api_host) or DEFAULT_API_HOST
    saved = _saved_login(api_host, env)
    if saved:
        return saved[0], f"a saved `swanlab login` ({saved[1]})"
    return None, ""


def other_key_sources() -> list[str]:
    """Files where SwanLab may find a key that only SwanLab itself can read (checked without
    importing it, so the config path stays light)."""
    found = [name for name in ("swanlab.yaml", "swanlab.yml") if Path(name).is_file()]
    try:
        if Path(".env").is_file() and "SWANLAB_API_KEY" in Path(".env").read_text(errors="ignore"):
            found.append(".env")
    except OSError:
        pass
    if os.environ.get("SWANLAB_SECRETS_DIR"):
        found.append("$SWANLAB_SECRETS_DIR")
    return found


NO_KEY = "no API key"
_no_key_said = False  # this process told the user already, when its config was loaded


def no_key_warning(log_dir: str) -> str:
    """The spec's warning, with where the run goes instead and the ways out, on one line."""
    global _no_key_said
    _no_key_said = True
    return (f"SwanLab cloud mode enabled but no API key found; this run stays offline in "
            f"{log_dir}. Fix: export SWANLAB_API_KEY=<key>, `swanlab login`, "
            f"`swanlab_api_key: <key>` or swanlab_mode: local.")


def no_key_said() -> bool:
    return _no_key_said
