"""swanlab_watch without torch: the groups parameter names fall into, the metric names and
extremes, the interval, and sharded setups that turn it off with one line. The norms themselves
are checked on real training (tests/e2e/test_watch_predictions_data.py, against a probe)."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from swanlab_autopatch.tracking import compat, watch
from swanlab_autopatch.tracking.watch import Groups, Watcher, groups_of, sharded_by_config


@pytest.mark.parametrize("name, unit, kind", [
    # a full fine-tune of a Llama-style model
    ("model.embed_tokens.weight", "embeddings", "embeddings"),
    ("model.layers.0.self_attn.q_proj.weight", "layer_0", "q_proj"),
    ("model.layers.11.mlp.down_proj.weight", "layer_11", "down_proj"),
    ("model.layers.3.input_layernorm.weight", "layer_3", "input_layernorm"),
    ("model.norm.weight", "norm", "norm"),
    ("lm_head.weight", "head", "head"),
    # LoRA through PEFT (adapter name "default")
    ("base_model.model.model.layers.2.self_attn.v_proj.lora_A.default.weight", "layer_2",
     "lora_A"),
    ("base_model.model.model.layers.2.mlp.up_proj.lora_B.default.weight", "layer_2", "lora_B"),
    ("base_model.model.model.layers.1.self_attn.q_proj.base_layer.weight", "layer_1", "q_proj"),
    ("base_model.model.model.embed_tokens.lora_embedding_A.default", "embeddings",
     "lora_embedding_A"),
    ("base_model.model.lm_head.modules_to_save.default.weight", "head", "head"),
    ("base_model.model.model.layers.0.self_attn.o_proj.lora_magnitude_vector.default.weight",
     "layer_0", "lora_magnitude_vector"),
    # GPT-2 and MoE layouts
    ("transformer.h.5.attn.c_attn.bias", "layer_5", "c_attn"),
    ("transformer.wte.weight", "embeddings", "embeddings"),
    ("model.layers.4.mlp.experts.gate_up_proj", "layer_4", "gate_up_proj"),
    ("model.layers.4.mlp.experts.0.w1.weight", "layer_4", "w1"),
    # a module called like a head inside a layer is not the head
    ("encoder.layer.0.output.dense.weight", "layer_0", "dense"),
])
def test_groups_of_parameter_names(name, unit, kind):
    assert groups_of(name) == (unit, kind)


def test_groups_metrics_names_and_extremes():
    names = [f"model.layers.{i}.self_attn.q_proj.lora_{m}.default.weight"
             for i in range(12) for m in "AB"] + ["model.embed_tokens.weight"]
    groups = Groups(names)
    assert groups.units[:2] == ["embeddings", "layer_00"] and groups.units[-1] == "layer_11"
    assert groups.kinds == ["embeddings", "lora_A", "lora_B"]
    units = [float(i) for i in range(len(groups.units))]  # embeddings 0.0, layer_00 1.0, ...
    present = [True] * len(units)
    present[groups.units.index("layer_11")] = False  # no gradient there this step
    out = groups.metrics("grad_norm", units, [7.0, 8.0, 9.0], present)
    assert out["watch/grad_norm/layer_00"] == 1.0
    assert "watch/grad_norm/layer_11" not in out
    assert (out["watch/grad_norm/lora_A"], out["watch/grad_norm/embeddings"]) == (8.0, 7.0)
    assert out["watch/grad_norm/largest"] == 11.0 and out["watch/grad_norm/smallest"] == 0.0
    assert not any(k.startswith("watch/grad_norm/layer_") and len(k.split("_")[-1]) != 2
                   for k in out)
    # the index lists map every parameter to its unit and kind
    assert groups.units[groups.unit_index[-1]] == "embeddings"
    assert groups.kinds[groups.kind_index[1]] == "lora_B"


@pytest.mark.parametrize("cfg, expected", [
    ({}, None),
    ({"fsdp": ["full_shard"]}, "FSDP"),
    ({"fsdp_config": {"fsdp_version": 2}}, "FSDP"),
    ({"fsdp_version": 2}, None),  # Axolotl 0.21's default, with or without FSDP
    ({"deepspeed": {"zero_optimization": {"stage": 3}}}, "DeepSpeed ZeRO-3"),
    ({"deepspeed": {"zero_optimization": {"stage": 2}}}, None),
    ({"deepspeed": "/nowhere/deepspeed_configs/zero3_bf16.json"}, "DeepSpeed ZeRO-3"),
    ({"deepspeed": "/nowhere/zero1.json"}, None),
])
def test_sharded_setups_are_recognised(cfg, expected):
    assert sharded_by_config(cfg) == expected


def test_deepspeed_file_is_read(tmp_path):
    path = tmp_path / "ds.json"
    path.write_text(json.dumps({"zero_optimization": {"stage": 3}}))
    assert sharded_by_config({"deepspeed": str(path)}) == "DeepSpeed ZeRO-3"


def test_sharded_parameters_turn_watch_off_with_one_line(capsys):
    watcher = Watcher("all", None, {"fsdp": ["full_shard"]})
    watcher.start(SimpleNamespace(logging_steps=1), SimpleNamespace(logging_steps=1))
    assert not watcher.due(1) and "sharded (FSDP)" in watcher.off
    lines = [l for l in capsys.readouterr().err.splitlines() if "swanlab_watch" in l]
    assert len(lines) == 1 and "train/grad_norm" in lines[0], lines


@pytest.mark.parametrize("interval, logging_steps, due, not_due", [
    (None, 5, [5, 10, 15], [1, 4, 6]),  # default: the Trainer's logging steps
    (3, 5, [3, 6, 9], [1, 5, 10]),
    (None, None, [500], [5, 50]),  # no logging steps known: the Trainer's default (500)
])
def test_interval(interval, logging_steps, due, not_due, monkeypatch):
    monkeypatch.setattr(compat, "client_has_histogram", lambda: False)
    watcher = Watcher("gradients", interval, {})
    assert not watcher.due(5)  # before train begin nothing is due
    watcher.start(SimpleNamespace(logging_steps=logging_steps),
                  SimpleNamespace(logging_steps=logging_steps))
    assert all(watcher.due(s) for s in due) and not any(watcher.due(s) for s in not_due)
    assert (watcher.grads, watcher.params) == (True, False)


def test_histograms_only_where_the_client_has_them(monkeypatch, tmp_path):
    # the installed clients (0.8 to 0.10.3) have no swanlab.Histogram, read without importing
    monkeypatch.delitem(__import__("sys").modules, "swanlab", raising=False)
    assert compat.client_has_histogram() is False
    assert "swanlab" not in __import__("sys").modules
    # a client that has one: read from its __init__.py, still without importing it
    package = tmp_path / "swanlab"
    package.mkdir()
    (package / "__init__.py").write_text("from .data import Histogram, Text\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert compat.client_has_histogram() is True
    assert "swanlab" not in __import__("sys").modules


def test_histogram_from_plain_data(monkeypatch):
    made = {}

    class Histogram:
        def __init__(self, np_histogram=None):
            made["args"] = np_histogram

    monkeypatch.setitem(__import__("sys").modules, "swanlab",
                        SimpleNamespace(Histogram=Histogram))
    assert isinstance(compat.histogram([1.0, 2.0, 3.0, 4.0], [0.0, 2.0]), Histogram)
    counts, bounds = made["args"]
    assert counts == [1.0, 2.0, 3.0, 4.0] and bounds == [0.0, 0.5, 1.0, 1.5, 2.0]
    monkeypatch.setitem(__import__("sys").modules, "swanlab", SimpleNamespace())
    assert compat.histogram([1.0], [0.0, 1.0]) is None


def test_watch_module_imports_no_torch():
    import sys

    assert "torch" not in sys.modules  # the fast lane has none; watch.py must load anyway
    assert watch.GRAD == "grad_norm"
