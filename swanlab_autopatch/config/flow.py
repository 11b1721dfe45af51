"""What happens to the swanlab keys between the YAML and the Trainer.

The wrappers call in here; nothing here knows about wrapt. Data flows one way: the raw keys
are parsed once (before Axolotl's schema drops them), the normalised public keys are put back
into the validated cfg, the secrets stay in this process's memory for login, and the messages
are shown once per loaded config.
"""
from __future__ import annotations

import atexit
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, MutableMapping, Optional

from swanlab_autopatch import log, rank
from swanlab_autopatch.config import checks, command_line, credentials
from swanlab_autopatch.redact import mask, redact_yaml_text, register_secret
from swanlab_autopatch.versions import module_available
from swanlab_autopatch.errors import SwanLabConfigError
from swanlab_autopatch.config.settings import (ENV_FALLBACKS, SECRET_KEYS, ParseResult,
                                               given_keys, parse)


@dataclass
class Record:
    """One parsed configuration, remembered for the builder and the messages."""

    result: Optional[ParseResult]  # None when the config has no swanlab keys
    stand_down: bool = False  # Axolotl's own plugin handles this run
    dropped_plugin: Optional[str] = None  # a `plugins:` entry removed because it cannot load
    announced: bool = False


@dataclass
class _Slot:
    """What this process remembers between the wrappers: one configuration at a time, held by
    identity (the objects themselves, compared with ``is``; an ``id()`` could be reused once
    Python frees the object)."""

    record: Optional[Record] = None  # the latest validated configuration's record
    validated: Any = None  # the cfg object that record belongs to
    # Axolotl's prepare_plugins runs before validate_config on the same raw cfg: a `plugins:`
    # entry removed there is kept here so the validate step can still report it.
    raw: Any = None
    dropped: Optional[str] = None


_slot = _Slot()


def record_for(cfg: Any) -> Optional[Record]:
    """The record of a validated cfg (by identity), else the latest one when the cfg carries
    the same project (a copy made by user code), else None."""
    record = _slot.record
    if record is None or cfg is None:
        return None
    if cfg is _slot.validated:
        return record
    if record.result is not None and \
            cfg.get("swanlab_project") == record.result.settings.swanlab_project:
        return record
    return None


def _upstream_state(cfg: MutableMapping[str, Any]) -> tuple[bool, Optional[str]]:
    """(stand down, entry to drop) for a raw cfg that may name Axolotl's own plugin."""
    entry = checks.named_upstream_plugin(cfg)
    if entry is None:
        return False, None
    if checks.upstream_plugin_available():
        return True, None
    return False, entry


def _drop(cfg: MutableMapping[str, Any], entry: str) -> None:
    plugins = cfg.get("plugins")
    if isinstance(plugins, str):
        plugins = [plugins]
    cfg["plugins"] = [p for p in plugins if p != entry]
    _slot.raw, _slot.dropped = cfg, entry


def drop_unloadable_plugin(cfg: MutableMapping[str, Any]) -> Optional[str]:
    """Remove a `plugins:` entry naming Axolotl's SwanLab plugin where this Axolotl has none,
    so Axolotl neither fails nor complains; this package does the job instead."""
    stand_down, entry = _upstream_state(cfg)
    if entry is None or stand_down:
        return None
    _drop(cfg, entry)
    return entry


def before_validate(cfg: MutableMapping[str, Any]) -> Record:
    """Parse the raw swanlab keys (raises SwanLabConfigError on bad input). The question of
    Axolotl's own plugin is decided here once and kept in the record. The keys given on the
    `axolotl` command line join the raw config first, exactly as YAML keys."""
    command_line.apply(cfg)
    stand_down, entry = _upstream_state(cfg)
    if stand_down:
        return Record(result=None, stand_down=True)
    if entry is not None:  # a config that skipped prepare_plugins (an API user, Ray workers)
        _drop(cfg, entry)
    dropped = _slot.dropped if _slot.raw is cfg else None
    _slot.raw, _slot.dropped = None, None
    if not given_keys(cfg):
        return Record(result=None, dropped_plugin=dropped)
    result = parse(cfg)
    credentials.register_known_secrets(result.settings)
    if result.settings.tracking and not module_available("swanlab"):
        raise SwanLabConfigError(
            "swanlab", "SwanLab is not installed, but the config asks for SwanLab tracking. "
            "Install it with `pip install swanlab`, or remove the swanlab_* keys.")
    return Record(result=result, dropped_plugin=dropped)


def after_validate(record: Record, validated: MutableMapping[str, Any]) -> None:
    """Put the normalised keys back into Axolotl's validated cfg, without any secret."""
    if record.stand_down:
        # Axolotl's plugin keeps the keys; keep the key out of the printed cfg and hand it to
        # SwanLab the way SwanLab really reads it (its init ignores an api_key argument).
        key = validated.pop("swanlab_api_key", None) if hasattr(validated, "pop") else None
        register_secret(key)
        if key and not os.environ.get("SWANLAB_API_KEY"):
            os.environ["SWANLAB_API_KEY"] = str(key)
    elif record.result is not None:
        for secret in SECRET_KEYS:
            validated.pop(secret, None)
        validated.update(record.result.settings.public_keys())
        settings = record.result.settings
        _point_at_redacted_yaml(validated, [settings.secret(k) for k in SECRET_KEYS])
    _slot.record, _slot.validated = record, validated


def _point_at_redacted_yaml(validated: MutableMapping[str, Any], secrets: list) -> None:
    """Axolotl copies the YAML file's text into the model card (output_dir/README.md, which
    may be pushed to the Hub) and uploads it to other trackers. When the file holds one of our
    secrets, point axolotl_config_path at a private redacted copy instead, as Axolotl itself
    does with a temporary file when it is given a dict."""
    secrets = [s for s in secrets if s]
    path = validated.get("axolotl_config_path")
    if not secrets or not path:
        return
    try:
        text = Path(str(path)).read_text(encoding="utf-8")
    except (OSError, ValueError):
        return
    if not any(secret in text for secret in secrets):
        return
    clean = mask(redact_yaml_text(text))
    handle, copy = tempfile.mkstemp(prefix="axolotl-config-redacted-", suffix=Path(path).suffix)
    with os.fdopen(handle, "w", encoding="utf-8") as out:  # mkstemp: readable by us only
        out.write(clean)
    atexit.register(_remove_quietly, copy)
    validated["axolotl_config_path"] = copy
    log.debug(f"axolotl_config_path points at a redacted copy of {path}")


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def ensure_parsed(cfg: MutableMapping[str, Any]) -> None:
    """For configs that reach normalize_config without our validate wrapper (Ray workers):
    parse what they carry so the builder finds settings."""
    if record_for(cfg) is None and (given_keys(cfg) or command_line.given()):
        record = before_validate(cfg)
        after_validate(record, cfg)


def _prepare_ray_driver(cfg: MutableMapping[str, Any], settings: Any) -> rank.RankInfo:
    """On the Ray driver (it loads the config; the workers get it as a dict and run in Ray's
    own folders): paths are resolved against the folder the user launched from, and the YAML's
    secrets, which never enter the config sent to Ray, reach the workers Ray starts from here
    through the environment they inherit. Returns the job's rank picture (world = workers)."""
    cfg.setdefault("swanlab_launch_dir", os.getcwd())
    exported = []
    for key in SECRET_KEYS:  # the API key and every notification channel's secrets
        variable = ENV_FALLBACKS.get(key, ("SWANLAB_API_KEY",))[0]
        value = settings.secret(key)
        if value and not os.environ.get(variable):
            os.environ[variable] = value
            exported.append(key)
    if exported and os.environ.get("RAY_ADDRESS"):
        log.warning(f"{', '.join(exported)} from the config cannot reach the workers of an "
                    "existing Ray cluster (RAY_ADDRESS is set): set SWANLAB_API_KEY (and the "
                    "notification variables, SWANLAB_<KEY>) in the cluster's environment "
                    "instead.")
    try:
        workers = max(int(cfg.get("ray_num_workers") or 1), 1)
    except (TypeError, ValueError):
        workers = 1
    return rank.RankInfo(rank=0, world_size=workers, source="ray_num_workers")


# SwanLab's public cloud keeps no run.save files (docs/swanlab-client-facts.md).
_WHERE_FILES_GO = (": stored where the host keeps files (a private deployment; offline and local "
                   "runs record them for `swanlab sync`); on SwanLab's public cloud, which does "
                   "not, their path, size and SHA-256 are recorded in the run config instead.")


def tracks_here(cfg: Any) -> bool:
    """This process will track the run of this config: tracking on, not left to Axolotl's own
    plugin, global rank 0."""
    record = record_for(cfg)
    if record is None or record.stand_down or record.result is None:
        return False
    return record.result.settings.tracking and rank.current().is_main


def announce(cfg: MutableMapping[str, Any]) -> None:
    """The messages of a loaded config, once per load, on global rank 0."""
    record = record_for(cfg)
    if record is None or record.announced:
        return
    record.announced = True
    if record.stand_down:
        log.info("Axolotl's own SwanLab plugin is listed in `plugins:`; swanlab-autopatch stands "
                 "down for this run (no second run, no second callback).")
        return
    result = record.result
    if record.dropped_plugin:
        tracked = result is not None and result.settings.tracking
        log.info(f"This Axolotl has no SwanLab plugin of its own: the `plugins:` entry "
                 f"'{record.dropped_plugin}' is ignored"
                 + (" and swanlab-autopatch tracks the run." if tracked else "."))
    if result is None:
        return
    for key, suggestion in result.typos:
        hint = f" Did you mean '{suggestion}'?" if suggestion else ""
        log.warning(f"Unknown SwanLab key '{key}' is ignored.{hint}")
    settings = result.settings
    if result.explicitly_disabled:
        others = [k for k in result.given if k != "use_swanlab"]
        if others:
            log.info("use_swanlab is false: SwanLab tracking is off and the other swanlab_* "
                     f"keys ({', '.join(others)}) are ignored.")
        return
    if not settings.enabled:
        return
    if result.auto_enabled:
        log.info("SwanLab tracking enabled because swanlab_project is set "
                 "(use_swanlab: true is implied).")
    for key, var in result.from_env.items():
        log.info(f"{key} taken from the environment variable {var}.")
    if settings.swanlab_mode == "disabled":
        log.info("swanlab_mode is disabled: nothing is tracked and nothing is written.")
        return
    if settings.swanlab_mode == "cloud" and credentials.find_api_key(settings)[0] is None:
        maybe = credentials.other_key_sources()
        if maybe:
            log.info(f"No SwanLab API key in the config, the environment or a saved login; "
                     f"SwanLab may find one in {', '.join(maybe)} when the run starts.")
        else:
            from swanlab_autopatch.paths import default_log_dir

            log.warning(credentials.no_key_warning(
                settings.resolve(settings.swanlab_log_dir) or f"./{default_log_dir()}"))
    if settings.swanlab_log_model == "end":
        log.info("swanlab_log_model: end: the final model files of output_dir go to the run "
                 "when training ends" + _WHERE_FILES_GO)
    elif settings.swanlab_log_model == "checkpoint":
        log.info("swanlab_log_model: checkpoint: each checkpoint folder goes to the run when it "
                 "is saved" + _WHERE_FILES_GO)
    if settings.swanlab_lark_webhook_url and not settings.swanlab_lark_secret:
        log.warning("The Lark webhook has no secret configured (swanlab_lark_secret); anyone "
                    "with the URL can post to the group. Set a signing secret in Lark.")
    for level, message in checks.multi_logger_messages(checks.active_loggers(cfg, True)):
        getattr(log, level)(message)
    where = rank.current()
    if cfg.get("use_ray"):
        where = _prepare_ray_driver(cfg, settings)
    if where.distributed:
        if where.is_main:
            log.info(f"Distributed training detected (world_size={where.world_size})")
            log.info(f"SwanLab mode: {settings.swanlab_mode}")
            log.info("Only rank 0 will initialize SwanLab")
            log.info("Other ranks will skip SwanLab to avoid conflicts")
        else:
            log.debug(f"rank {where.rank} of {where.world_size}: SwanLab is left to rank 0")
