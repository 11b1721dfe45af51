"""The ``data`` group of the run config: what a run trained on, so two runs compare honestly.

Per dataset entry of the config its path/name, type and split; after Axolotl's preprocessing,
the rows and tokens (all, and those with a loss) of the datasets the Trainer holds, training and
evaluation; their fingerprint (Hugging Face datasets' own) and Axolotl's prepared-dataset hash
(its folder under ``dataset_prepared_path``, from Axolotl's own function, 0.10 and later); the
chat template's name and SHA-256 (its text goes to the run as a text record).

Counts come from the Arrow columns, vectorised, so a large dataset costs milliseconds before
training starts. They respect a split's row selection; Axolotl's own ``total_num_tokens`` (debug
log) sums the whole prepared table, so with ``val_set_size`` it equals train + eval here.
"""
from __future__ import annotations

import hashlib
from typing import Any, Mapping, Optional

from swanlab_autopatch import log

_ENTRY_KEYS = ("path", "name", "type", "split", "ds_type", "data_files", "revision")


def entries(datasets: Any) -> Optional[dict[str, dict]]:
    """Dataset entries keyed by position ("0", "1"...): dotted keys `compare` can show."""
    if not datasets:
        return None
    out = {}
    for i, entry in enumerate(datasets if isinstance(datasets, (list, tuple)) else [datasets]):
        if isinstance(entry, Mapping):
            out[str(i)] = {k: entry.get(k) for k in _ENTRY_KEYS if entry.get(k) is not None}
        else:
            out[str(i)] = {"path": str(entry)}
    return out


def _positions(dataset: Any) -> Any:
    """The rows of the underlying Arrow table a dataset selects (None: all of them)."""
    indices = getattr(dataset, "_indices", None)
    return indices.column(0) if indices is not None else None


def _column(dataset: Any, name: str) -> Any:
    table = getattr(dataset, "data", None)
    names = getattr(dataset, "column_names", None) or []
    return table.column(name) if table is not None and name in names else None


def counts(dataset: Any) -> dict[str, int]:
    """rows, tokens (input_ids) and supervised_tokens (labels other than -100)."""
    out: dict[str, int] = {}
    if dataset is None:
        return out
    try:
        out["rows"] = len(dataset)
    except TypeError:  # a streamed (iterable) dataset
        return {}
    try:
        import pyarrow as pa
        import pyarrow.compute as pc

        rows = _positions(dataset)
        ids = _column(dataset, "input_ids")
        if ids is not None:
            lengths = pc.list_value_length(ids)
            if rows is not None:
                lengths = pc.take(lengths, rows)
            out["tokens"] = int(pc.sum(lengths, min_count=0).as_py())
        labels = _column(dataset, "labels")
        if labels is not None and (pa.types.is_list(labels.type) or
                                   pa.types.is_large_list(labels.type)):
            if rows is not None:
                labels = pc.take(labels, rows)
            flat = pc.list_flatten(labels)
            out["supervised_tokens"] = int(pc.sum(pc.not_equal(flat, -100), min_count=0).as_py())
    except Exception as exc:  # counts are worth less than the run
        log.debug(f"data counts failed: {exc!r}")
    return out


def prepared_hash(cfg: Mapping[str, Any], tokenizer: Any) -> Optional[str]:
    """Axolotl's prepared-dataset hash (the folder name under dataset_prepared_path), from
    its own ``generate_dataset_hash_from_config`` (0.10 and later; inline code before)."""
    try:
        from axolotl.utils.data.shared import generate_dataset_hash_from_config
    except Exception:
        return None
    try:
        datasets = cfg.get("datasets")
        if not datasets or cfg.get("rl") or tokenizer is None:  # RL hashes other fields
            return None
        return str(generate_dataset_hash_from_config(cfg, datasets, tokenizer.name_or_path))
    except Exception as exc:
        log.debug(f"prepared-dataset hash failed: {exc!r}")
        return None


def chat_template(tokenizer: Any) -> Optional[str]:
    """The template the tokenizer renders chats with (a processor's own, or its tokenizer's)."""
    for holder in (tokenizer, getattr(tokenizer, "tokenizer", None)):
        text = getattr(holder, "chat_template", None)
        if isinstance(text, str) and text.strip():
            return text
    return None


def group(cfg: Mapping[str, Any], trainer: Any = None) -> dict[str, Any]:
    """The data group for one run (whatever can be known; never raises for a missing part)."""
    out: dict[str, Any] = {}
    for key in ("datasets", "test_datasets", "pretraining_dataset"):
        found = entries(cfg.get(key))
        if found:
            out[key] = found
    for key in ("val_set_size", "dataset_prepared_path", "sequence_len", "sample_packing"):
        if cfg.get(key) is not None:
            out[key] = cfg.get(key)
    tokenizer = None
    if trainer is not None:
        tokenizer = getattr(trainer, "processing_class", None) or getattr(trainer, "tokenizer",
                                                                           None)
        fingerprint = {}
        for part, dataset in (("train", getattr(trainer, "train_dataset", None)),
                              ("eval", getattr(trainer, "eval_dataset", None))):
            found = counts(dataset)
            if found:
                out[part] = found
            if getattr(dataset, "_fingerprint", None):
                fingerprint[part] = str(dataset._fingerprint)
        if fingerprint:
            out["fingerprint"] = fingerprint
    text_tokenizer = getattr(tokenizer, "tokenizer", tokenizer)
    hashed = prepared_hash(cfg, text_tokenizer)
    if hashed:
        out["prepared_hash"] = hashed
    template = chat_template(tokenizer)
    if template is not None or cfg.get("chat_template"):
        out["chat_template"] = {"name": cfg.get("chat_template")}
        if template is not None:
            out["chat_template"]["sha256"] = hashlib.sha256(template.encode()).hexdigest()
    return out
