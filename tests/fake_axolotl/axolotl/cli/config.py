"""Mirrors axolotl/cli/config.py: load_cfg calls the module globals it imported."""
import json
import os

import yaml

from axolotl.integrations.base import PluginManager
from axolotl.utils.config import normalize_config, validate_config
from axolotl.utils.dict import DictDefault


def prepare_plugins(cfg):
    manager = PluginManager.get_instance()
    for name in cfg.get("plugins") or []:
        manager.register(name)


def load_cfg(config, **kwargs):
    if isinstance(config, dict):
        cfg = DictDefault(config)
    else:
        with open(config, encoding="utf-8") as handle:
            cfg = DictDefault(yaml.safe_load(handle))
        cfg.axolotl_config_path = str(config)
    for key, value in kwargs.items():  # CLI overrides, as fire passes them
        cfg[key] = value
    prepare_plugins(cfg)
    cfg = validate_config(cfg, capabilities={"n_gpu": int(os.environ.get("WORLD_SIZE", 1))})
    normalize_config(cfg)
    if cfg.wandb_project:
        cfg.use_wandb = True
    if cfg.mlflow_experiment_name:
        cfg.use_mlflow = True
    print("config:\n" + json.dumps(cfg, default=str, indent=2))
    return cfg
