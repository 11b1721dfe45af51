"""The data group of the run config, from the config alone (the counts, fingerprints and the
prepared-dataset hash need the Trainer's datasets: tests/e2e/test_watch_predictions_data.py)."""
from __future__ import annotations

import hashlib
from types import SimpleNamespace

from swanlab_autopatch.runs.commands import config_rows, flatten
from swanlab_autopatch.runs.reader import RunRecord
from swanlab_autopatch.tracking import data_record

CFG = {"datasets": [{"path": "tatsu-lab/alpaca", "type": "alpaca", "split": "train",
                     "shards": 10},
                    {"path": "data/chat.jsonl", "ds_type": "json", "type": "chat_template",
                     "field_messages": "messages"}],
       "val_set_size": 0.05, "sequence_len": 2048, "chat_template": "chatml"}


def test_entries_are_keyed_by_position_with_what_identifies_them():
    group = data_record.group(CFG)
    assert group["datasets"] == {
        "0": {"path": "tatsu-lab/alpaca", "type": "alpaca", "split": "train"},
        "1": {"path": "data/chat.jsonl", "type": "chat_template", "ds_type": "json"}}
    assert (group["val_set_size"], group["sequence_len"]) == (0.05, 2048)
    assert group["chat_template"] == {"name": "chatml"}  # no tokenizer: no text to hash
    assert "train" not in group and "prepared_hash" not in group  # no Trainer, no Axolotl


def test_the_chat_template_of_a_tokenizer_or_a_processor():
    template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    trainer = SimpleNamespace(processing_class=SimpleNamespace(chat_template=template),
                              train_dataset=None, eval_dataset=None)
    group = data_record.group(CFG, trainer)
    assert group["chat_template"]["sha256"] == hashlib.sha256(template.encode()).hexdigest()
    processor = SimpleNamespace(chat_template=None,
                                tokenizer=SimpleNamespace(chat_template=template))
    assert data_record.chat_template(processor) == template
    assert data_record.chat_template(SimpleNamespace(chat_template="  ")) is None


def test_compare_shows_a_changed_dataset_like_any_config_value():
    a = RunRecord(path=None, config={"data": data_record.group(CFG)})
    changed = {**CFG, "datasets": [CFG["datasets"][0], {**CFG["datasets"][1], "split": "test"}]}
    b = RunRecord(path=None, config={"data": data_record.group(changed)})
    differ = [row.key for row in config_rows([a, b]) if row.differs]
    assert differ == ["data.datasets.1.split"]
    assert "data.datasets.0.path" in flatten(a.config)


def test_a_streamed_dataset_has_no_counts():
    class Streamed:
        def __len__(self):
            raise TypeError("IterableDataset has no len")

    assert data_record.counts(Streamed()) == {}
    assert data_record.counts(None) == {}
