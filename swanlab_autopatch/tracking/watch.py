"""swanlab_watch: how the gradients and weights of the trainable parameters move, as scalars.

W&B's ``wandb_watch`` logs a histogram per parameter; with hundreds of parameters that is
unreadable and costly. Here the L2 norms are grouped twice: per unit of the model (each decoder
layer, the embeddings, the head, other top-level modules) and per kind of parameter (``q_proj``,
``gate_proj``, ``lora_A``, ``lora_B``, ``embeddings``, ``head``, ``input_layernorm``...), logged
as ``watch/grad_norm/<group>`` and ``watch/param_norm/<group>``, plus the largest and smallest
unit (``.../largest``, ``.../smallest``). A histogram per kind is added only where the installed
SwanLab client has ``swanlab.Histogram`` (none up to 0.10.3 does).

When: in ``on_pre_optimizer_step`` (the gradients after clipping, before the optimizer uses
them, and the weights they were computed at), only on the interval's steps, labelled with the
step the Trainer is completing (the step its ``train/grad_norm`` is logged at). Other steps cost
one integer comparison: no tensor is touched, so no device sync. A measured step reads every
norm back in one transfer per device.

Sharded parameters (FSDP, DeepSpeed ZeRO-3) hold only a shard on rank 0, and a global norm
would need a collective on every rank, where this package runs nothing: one info line says so
and nothing is logged. The grouping (``groups_of``) needs no torch and is unit-tested.
"""
from __future__ import annotations

import re
from typing import Any, Mapping, Optional

from swanlab_autopatch import log

GRAD, PARAM = "grad_norm", "param_norm"
HIST_BINS = 64

_LAYER = re.compile(r"(?:^|\.)(?:layers|layer|h|blocks|block)\.(\d+)(?:\.|$)")
_LORA = re.compile(r"(?:^|\.)(lora_A|lora_B|lora_embedding_A|lora_embedding_B|"
                   r"lora_magnitude_vector)(?:\.|$)")
_EMBEDDINGS = {"embed_tokens", "wte", "wpe", "word_embeddings", "embed_in", "embed_positions",
               "position_embeddings", "token_type_embeddings", "embeddings", "tok_embeddings"}
_HEADS = {"lm_head", "embed_out", "score", "classifier", "output", "head"}
# Wrapper and adapter names in parameter paths (PEFT, torch.compile, checkpointing).
_WRAPPERS = {"default", "base_layer", "modules_to_save", "original_module", "_orig_mod",
             "_checkpoint_wrapped_module", "weight", "bias"}


def groups_of(name: str) -> tuple[str, str]:
    """(unit, kind) of a parameter name. Units: ``layer_<i>`` or a top-level module
    (``embeddings``, ``head``, ``norm``...); kinds: the module the parameter belongs to
    (``q_proj``, ``input_layernorm``...), or the LoRA matrix (``lora_A``, ``lora_B``)."""
    parts = name.split(".")
    lora = _LORA.search(name)
    layer = _LAYER.search(name)
    if any(p in _EMBEDDINGS for p in parts):
        module = "embeddings"
    else:
        named = [p for p in parts if p not in _WRAPPERS and not p.isdigit()
                 and not (lora and p == lora.group(1))]
        module = named[-1] if named else name
        if module in _HEADS and not layer:
            module = "head"
    unit = f"layer_{int(layer.group(1))}" if layer else module
    return unit, (lora.group(1) if lora else module)


class Groups:
    """The trainable parameters of a model in their groups (built once per model)."""

    def __init__(self, names: list[str]) -> None:
        pairs = [groups_of(n) for n in names]
        layers = sorted({int(u[6:]) for u, _ in pairs if u.startswith("layer_")})
        width = len(str(layers[-1])) if layers else 1
        rename = {f"layer_{i}": f"layer_{i:0{width}d}" for i in layers}  # sorts in dashboards
        self.units = sorted({rename.get(u, u) for u, _ in pairs})
        self.kinds = sorted({k for _, k in pairs})
        unit_at = {u: i for i, u in enumerate(self.units)}
        kind_at = {k: i for i, k in enumerate(self.kinds)}
        self.unit_index = [unit_at[rename.get(u, u)] for u, _ in pairs]
        self.kind_index = [kind_at[k] for _, k in pairs]

    def metrics(self, what: str, unit_norms: list[float], kind_norms: list[float],
                present: Optional[list[bool]] = None) -> dict[str, float]:
        """``watch/<what>/<group>`` for the layer units and the kinds, and the extremes over
        the units (units whose parameters had no gradient are left out)."""
        out: dict[str, float] = {}
        units = [(u, v) for i, (u, v) in enumerate(zip(self.units, unit_norms))
                 if present is None or present[i]]
        for unit, value in units:
            if unit.startswith("layer_"):
                out[f"watch/{what}/{unit}"] = value
        for kind, value in zip(self.kinds, kind_norms):
            out[f"watch/{what}/{kind}"] = value
        if units:
            out[f"watch/{what}/largest"] = max(v for _, v in units)
            out[f"watch/{what}/smallest"] = min(v for _, v in units)
        return out


def sharded_by_config(cfg: Mapping[str, Any]) -> Optional[str]:
    """FSDP or DeepSpeed ZeRO-3 in the Axolotl config (None when neither)."""
    if cfg.get("fsdp") or cfg.get("fsdp_config"):  # (0.21 sets fsdp_version: 2 always)
        return "FSDP"
    deepspeed = cfg.get("deepspeed")
    if not deepspeed:
        return None
    if isinstance(deepspeed, str):
        try:
            import json

            with open(deepspeed, encoding="utf-8") as handle:
                deepspeed = json.load(handle)
        except (OSError, ValueError):
            return "DeepSpeed ZeRO-3" if "zero3" in str(deepspeed).lower() else None
    stage = (deepspeed.get("zero_optimization") or {}).get("stage") \
        if isinstance(deepspeed, Mapping) else None
    return "DeepSpeed ZeRO-3" if stage == 3 else None


def _sharded_parameter(name: str, param: Any) -> bool:
    return ("_fsdp_wrapped_module" in name or "_flat_param" in name or hasattr(param, "ds_numel")
            or type(param).__name__ == "DTensor")


class Watcher:
    """Measures a model at the interval's steps and hands the values to the run."""

    def __init__(self, mode: str, interval: Optional[int], cfg: Mapping[str, Any]) -> None:
        self.grads = mode in ("gradients", "all")
        self.params = mode in ("parameters", "all")
        self.interval = interval or 0  # 0: resolved at train begin (logging_steps)
        self.off: Optional[str] = None  # why nothing is measured (said once)
        sharded = sharded_by_config(cfg)
        if sharded:
            self._stop(f"the parameters are sharded ({sharded}): rank 0 holds only its shard, "
                       "so per-group norms are not available")
        self._model_id: Optional[int] = None
        self._params: list = []
        self._groups: Optional[Groups] = None
        self._parts: list[str] = []
        self._norms: Any = None
        self.histograms = False
        self._no_grad_said = False

    def start(self, args: Any, state: Any) -> None:
        """The interval, once the Trainer knows its logging steps (a ratio made absolute)."""
        if not self.interval:
            steps = getattr(state, "logging_steps", None) or getattr(args, "logging_steps", None)
            self.interval = max(1, int(steps or 500))
        from swanlab_autopatch.tracking import compat

        self.histograms = compat.client_has_histogram()

    def due(self, step: int) -> bool:
        return self.off is None and self.interval > 0 and step % self.interval == 0

    def _stop(self, why: str) -> None:
        self.off = why
        log.info(f"swanlab_watch: {why}; the watch/ charts are not logged (the global gradient "
                 "norm is train/grad_norm).")

    def _bind(self, model: Any) -> bool:
        if self._model_id == id(model):
            return bool(self._params)
        self._model_id = id(model)
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        if any(_sharded_parameter(n, p) for n, p in named):
            self._stop("the parameters are sharded (FSDP or DeepSpeed ZeRO-3): rank 0 holds "
                       "only its shard, so per-group norms are not available")
            return False
        self._params = [p for _, p in named]
        if not named:
            return False
        from swanlab_autopatch.tracking import watch_norms

        groups = self._groups = Groups([n for n, _ in named])
        width = len(groups.units) + len(groups.kinds)
        # One block of bins per measured thing (gradients, weights): units, then kinds.
        self._parts = [what for what, on in ((GRAD, self.grads), (PARAM, self.params)) if on]
        bins = [(at + u, at + len(groups.units) + k) for at in
                range(0, width * len(self._parts), width)
                for u, k in zip(groups.unit_index, groups.kind_index)]
        devices = [p.device for p in self._params] * len(self._parts)
        self._norms = watch_norms.BinnedNorms(bins, width * len(self._parts), devices)
        return True

    def measure(self, model: Any, step: int) -> tuple[dict[str, float], dict[str, tuple]]:
        """Scalars and (where the client draws them) histograms for one step."""
        if model is None or not self._bind(model):
            return {}, {}
        groups = self._groups
        tensors: list = []
        for what in self._parts:
            tensors += [p.grad for p in self._params] if what == GRAD else self._params
        if GRAD in self._parts and all(p.grad is None for p in self._params) and \
                not self._no_grad_said:
            self._no_grad_said = True
            log.info("swanlab_watch: the gradients are not on the parameters at the optimizer "
                     "step (DeepSpeed keeps them in its own buffers): watch/grad_norm is not "
                     "available; watch/param_norm is.")
        norms, present = self._norms(tensors)
        metrics: dict[str, float] = {}
        hists: dict[str, tuple] = {}
        n_units, count = len(groups.units), len(self._params)
        width = n_units + len(groups.kinds)
        for block, what in enumerate(self._parts):
            at = block * width
            if not any(present[at:at + n_units]):
                continue  # no gradient anywhere (DeepSpeed): nothing to say
            metrics.update(groups.metrics(what, norms[at:at + n_units],
                                          norms[at + n_units:at + width],
                                          present[at:at + n_units]))
            if self.histograms:
                from swanlab_autopatch.tracking import watch_norms

                hists.update(watch_norms.histograms(
                    what, tensors[block * count:(block + 1) * count], groups.kind_index,
                    groups.kinds, HIST_BINS))
        return metrics, hists
