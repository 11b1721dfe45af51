"""The configuration logged into each run: what the spec lists, redacted, JSON-safe.

Groups: model, training, parallel, data (data_record.py), versions, plus the whole validated
Axolotl config and the Trainer's arguments, and where Axolotl pushes the model to the Hub
(``model_files.hub``). Everything goes through ``redact`` first.
"""
from __future__ import annotations

import enum
import json
import math
from pathlib import Path
from typing import Any, Mapping, Optional

from swanlab_autopatch import rank
from swanlab_autopatch.redact import redact, redact_yaml_text
from swanlab_autopatch.versions import versions_report

_MODEL_KEYS = ("base_model", "base_model_config", "model_type", "tokenizer_type", "adapter",
               "lora_model_dir", "lora_r", "lora_alpha", "lora_dropout", "lora_target_modules",
               "lora_target_linear", "load_in_8bit", "load_in_4bit", "chat_template")
_TRAINING_KEYS = ("rl", "learning_rate", "micro_batch_size", "eval_batch_size",
                  "gradient_accumulation_steps", "num_epochs", "max_steps", "sequence_len",
                  "optimizer", "optim_args", "adam_beta1", "adam_beta2", "adam_epsilon",
                  "lr_scheduler", "lr_scheduler_kwargs", "warmup_steps", "warmup_ratio",
                  "weight_decay", "max_grad_norm", "bf16", "fp16", "tf32", "sample_packing",
                  "seed", "gradient_checkpointing", "val_set_size", "logging_steps")
_ATTENTION_KEYS = ("attn_implementation", "flash_attention", "sdp_attention",
                   "xformers_attention", "flex_attention", "eager_attention")
_PARALLEL_KEYS = ("fsdp_version", "context_parallel_size", "tensor_parallel_size",
                  "dp_shard_size", "ddp", "device_map")


def json_safe(value: Any, depth: int = 0) -> Any:
    """Plain JSON types only; anything else becomes its text. Drops None values in dicts."""
    if depth > 12:
        return str(value)
    if isinstance(value, enum.Enum):  # Axolotl's own enums (rl: RLType.DPO) by their value
        value = value.value
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): json_safe(v, depth + 1) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple, set)):
        return [json_safe(v, depth + 1) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        try:
            return json_safe(value.item(), depth + 1)
        except Exception:
            pass
    return str(value)


def _pick(cfg: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: cfg.get(k) for k in keys if cfg.get(k) is not None}


def _attention(cfg: Mapping[str, Any]) -> Optional[str]:
    if cfg.get("attn_implementation"):
        return str(cfg.get("attn_implementation"))
    for key in _ATTENTION_KEYS[1:]:
        if cfg.get(key):
            return key.removesuffix("_attention")
    return None


def _parameter_counts(model: Any) -> dict[str, int]:
    try:
        params = list(model.parameters())
        total = sum(p.numel() for p in params)
        trainable = sum(p.numel() for p in params if p.requires_grad)
        return {"num_parameters": total, "trainable_parameters": trainable}
    except Exception:
        return {}


def _model_config(model: Any) -> Optional[dict]:
    try:
        return model.config.to_dict()
    except Exception:
        return None


def _trainer_args(args: Any) -> Optional[dict]:
    try:
        return args.to_dict()
    except Exception:
        return None


def build(cfg: Mapping[str, Any], args: Any = None, model: Any = None,
          trainer: Any = None) -> dict[str, Any]:
    """The run config for one training job."""
    where = rank.current()
    model_part = _pick(cfg, _MODEL_KEYS)
    if model is not None:
        model_part.update(_parameter_counts(model))
        model_part["model_config"] = _model_config(model)
        peft = getattr(model, "peft_config", None)
        if peft:
            model_part["peft_config"] = {k: getattr(v, "to_dict", lambda v=v: str(v))()
                                         for k, v in dict(peft).items()}
    training = _pick(cfg, _TRAINING_KEYS)
    training["attn_implementation"] = _attention(cfg)
    micro = cfg.get("micro_batch_size") or 0
    accum = cfg.get("gradient_accumulation_steps") or 1
    world = cfg.get("world_size") or where.world_size
    if micro:
        training["effective_batch_size"] = micro * accum * world
    parallel = _pick(cfg, _PARALLEL_KEYS)
    parallel["world_size"] = world
    parallel["fsdp"] = bool(cfg.get("fsdp") or cfg.get("fsdp_config"))
    parallel["deepspeed"] = cfg.get("deepspeed") if isinstance(cfg.get("deepspeed"), str) \
        else bool(cfg.get("deepspeed"))
    config = {
        **hyperparameters(cfg, training),
        "framework": "axolotl",
        "model": model_part,
        "training": training,
        "parallel": parallel,
        "data": _data(cfg, trainer),
        "versions": versions_report(),
        "axolotl": dict(cfg),
        "trainer_args": _trainer_args(args),
    }
    if cfg.get("hub_model_id"):  # the model's other home, whatever SwanLab keeps
        config["model_files"] = {"hub": {"repo": cfg.get("hub_model_id"),
                                         "revision": cfg.get("hub_revision"),
                                         "strategy": cfg.get("hub_strategy")}}
    return json_safe(redact(config))


def _data(cfg: Mapping[str, Any], trainer: Any) -> dict[str, Any]:
    from swanlab_autopatch.tracking import data_record

    try:
        return data_record.group(cfg, trainer)
    except Exception as exc:  # the rest of the config is worth more
        from swanlab_autopatch import log

        log.debug(f"data group failed: {exc!r}")
        return {}


# The values people sort and filter runs by, at the top level of the run config: dashboards
# show each top-level key as a column (a nested group shows as one JSON cell).
COLUMNS = ("learning_rate", "micro_batch_size", "effective_batch_size",
           "gradient_accumulation_steps", "num_epochs", "max_steps", "sequence_len", "lora_r",
           "lora_alpha", "optimizer", "lr_scheduler")


def hyperparameters(cfg: Mapping[str, Any], training: Mapping[str, Any]) -> dict[str, Any]:
    from swanlab_autopatch.tracking import naming

    picked = {"base_model": naming.model_short_name(cfg), "method": naming.method(cfg),
              "adapter": naming.adapter(cfg)}
    for key in COLUMNS:
        value = training.get(key, cfg.get(key))
        if value is not None:
            picked[key] = value
    return {k: v for k, v in picked.items() if v is not None}


def yaml_text(cfg: Mapping[str, Any]) -> Optional[str]:
    """The YAML file the run was started from, with secrets masked."""
    path = cfg.get("axolotl_config_path")
    if not path:
        return None
    try:
        return redact_yaml_text(Path(str(path)).read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None


def deepspeed_text(cfg: Mapping[str, Any], args: Any = None) -> Optional[str]:
    """The DeepSpeed configuration as text, when one is used."""
    value = cfg.get("deepspeed") or getattr(args, "deepspeed", None)
    if not value:
        return None
    if isinstance(value, Mapping):
        return json.dumps(redact(json_safe(value)), indent=2)
    try:
        return redact_yaml_text(Path(str(value)).read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None
