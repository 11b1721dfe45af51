"""Default run names, tags and colours: they tell runs apart, and never touch the training's
own random state."""
from __future__ import annotations

import random

from swanlab_autopatch.tracking import naming, run_config


def test_names_are_meaningful_and_distinct():
    cfg = {"base_model": "Qwen/Qwen2.5-0.5B-Instruct", "adapter": "lora", "rl": "dpo"}
    names = {naming.default_name(cfg) for _ in range(50)}
    assert len(names) == 50
    assert all(n.startswith("Qwen2.5-0.5B-Instruct-dpo-lora-") for n in names)
    assert naming.default_name({"base_model": "/models/llama/"}).startswith("llama-sft-")


def test_the_global_random_state_is_untouched():
    random.seed(42)
    expected = [random.random() for _ in range(3)]
    random.seed(42)
    naming.default_name({"base_model": "m"})
    naming.pick_color(["#111111", "#222222"])
    assert [random.random() for _ in range(3)] == expected


def test_default_tags_describe_the_run():
    assert naming.default_tags({"base_model": "org/tiny", "adapter": "qlora", "rl": "grpo"}) == [
        "grpo", "qlora", "tiny"]
    assert naming.default_tags({}) == ["sft", "full"]


def test_axolotl_enum_method():
    import enum

    class RLType(str, enum.Enum):
        DPO = "dpo"

    assert naming.method({"rl": RLType.DPO}) == "dpo"


def test_hyperparameters_are_top_level_columns():
    cfg = {"base_model": "org/tiny-llama", "learning_rate": 2e-4, "micro_batch_size": 2,
           "gradient_accumulation_steps": 4, "lora_r": 8, "lora_alpha": 16, "adapter": "lora",
           "optimizer": "adamw_torch", "lr_scheduler": "cosine", "sequence_len": 128,
           "num_epochs": 1, "max_steps": 10}
    config = run_config.build(cfg)
    for key, value in {"base_model": "tiny-llama", "method": "sft", "adapter": "lora",
                       "learning_rate": 2e-4, "effective_batch_size": 8, "lora_r": 8,
                       "lora_alpha": 16, "optimizer": "adamw_torch", "max_steps": 10}.items():
        assert config[key] == value, key
    assert not isinstance(config["learning_rate"], dict)
    assert config["training"]["learning_rate"] == 2e-4  # the groups stay too
