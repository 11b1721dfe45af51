import os

from axolotl.utils.dict import DictDefault

# The schema knows these keys; like pydantic's extra="ignore", everything else is dropped.
SCHEMA = {"base_model", "learning_rate", "micro_batch_size", "gradient_accumulation_steps",
          "num_epochs", "max_steps", "output_dir", "plugins", "use_wandb", "wandb_project",
          "use_mlflow", "mlflow_experiment_name", "use_comet", "comet_project_name",
          "use_tensorboard", "sequence_len", "axolotl_config_path", "strict", "seed"}


def validate_config(cfg, capabilities=None, env_capabilities=None):
    if cfg.get("learning_rate") == "boom":
        raise ValueError("axolotl's own validation error")
    return DictDefault({k: v for k, v in cfg.items() if k in SCHEMA and v is not None})


def normalize_config(cfg):
    cfg.world_size = int(os.environ.get("WORLD_SIZE", "1"))
    cfg.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cfg.batch_size = (cfg.micro_batch_size or 1) * (cfg.gradient_accumulation_steps or 1)


def prepare_plugins(cfg):
    return None
