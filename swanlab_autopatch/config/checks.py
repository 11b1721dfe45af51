"""Checks on a configuration that warn but never stop training: other trackers and Axolotl's
own SwanLab plugin. (Where the API key and hosts come from is credentials.py.)"""
from __future__ import annotations

from typing import Any, Mapping, Optional

# The names under which a config can list Axolotl's own plugin (0.8+ also retries a name
# with the `axolotl.integrations.` prefix; 0.21 accepts `module:Class`).
UPSTREAM_PLUGIN_NAMES = frozenset({
    "axolotl.integrations.swanlab.SwanLabPlugin",
    "axolotl.integrations.swanlab:SwanLabPlugin",
    "swanlab.SwanLabPlugin",
    "swanlab:SwanLabPlugin",
    "integrations.swanlab.SwanLabPlugin",
})
OVERHEAD_PER_LOGGER = 1.5  # percent per training step, as the integration document quotes


def named_upstream_plugin(cfg: Mapping[str, Any]) -> Optional[str]:
    """The entry of ``plugins:`` that names Axolotl's SwanLab plugin, if any."""
    plugins = cfg.get("plugins") or []
    if isinstance(plugins, str):
        plugins = [plugins]
    for entry in plugins:
        if isinstance(entry, str) and entry.strip() in UPSTREAM_PLUGIN_NAMES:
            return entry
    return None


def upstream_plugin_available() -> bool:
    """True when the installed Axolotl ships its own SwanLab plugin (0.13.1 and later)."""
    from swanlab_autopatch.versions import module_available

    return module_available("axolotl.integrations.swanlab")


def _on(cfg: Mapping[str, Any], *keys: str) -> bool:
    return any(bool(cfg.get(k)) for k in keys)


def active_loggers(cfg: Mapping[str, Any], swanlab: bool) -> list[str]:
    """Every experiment tracker the final config turns on, derived the way Axolotl's
    setup_*_env_vars derive their flags (a project name alone turns a tracker on)."""
    names = []
    if swanlab:
        names.append("SwanLab")
    if _on(cfg, "use_wandb", "wandb_project"):
        names.append("WandB")
    if _on(cfg, "use_mlflow", "mlflow_experiment_name"):
        names.append("MLflow")
    if _on(cfg, "use_comet", "comet_project_name"):
        names.append("Comet")
    if _on(cfg, "use_tensorboard"):
        names.append("TensorBoard")
    if _on(cfg, "use_trackio", "trackio_project_name"):
        names.append("Trackio")
    return names


def multi_logger_messages(names: list[str]) -> list[tuple[str, str]]:
    """(level, message) pairs for the overhead warning; empty for one tracker or none."""
    count = len(names)
    if count < 2:
        return []
    overhead = f"~{count * OVERHEAD_PER_LOGGER:.1f}%"
    listed = ", ".join(names)
    if count == 2:
        return [("warning",
                 f"Multiple logging tools enabled: {listed}. Expected overhead: {overhead} per "
                 "training step. For production runs keep one tracker: remove the other "
                 "trackers' keys (a project key such as wandb_project turns its tracker on "
                 "by itself).")]
    return [("error",
             f"{count} logging tools enabled simultaneously! ({listed}) Expected overhead: "
             f"{overhead} per training step. STRONGLY RECOMMEND: Disable all but ONE logging "
             "tool.")]
