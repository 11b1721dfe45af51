"""eval_table_size: reading Axolotl's LogPredictionCallback's rows back from its tokenizer calls
(a fake tokenizer and a stand-in for Axolotl's callback that calls it in Axolotl's order). The
real callback runs in tests/e2e (test_watch_predictions_data.py and test_versions.py)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from swanlab_autopatch.tracking import predictions, run
from swanlab_autopatch.tracking.predictions import (HEADERS, PredictionTable, RecordingTokenizer,
                                                     UnexpectedCalls)


class Tokenizer:
    pad_token_id = 0
    eos_token_id = 2

    def batch_decode(self, ids, skip_special_tokens=False):
        return [" ".join(f"t{i}" for i in row) for row in ids]

    def __call__(self, texts, padding=False, return_tensors=None):
        return {"input_ids": [[len(t)] for t in texts]}


class AxolotlLike:
    """What LogPredictionCallback does with the tokenizer, per batch (0.8.0 to 0.21.0)."""

    def __init__(self, tokenizer, batches, swap_prompts=False):
        self.tokenizer, self.batches, self.swap = tokenizer, batches, swap_prompts

    def on_evaluate(self, args, state, control, train_dataloader=None, eval_dataloader=None,
                    **kwargs):
        for prompts, completions, steps, generated in self.batches:
            prompt_texts = self.tokenizer.batch_decode(prompts, skip_special_tokens=True)
            self.tokenizer.batch_decode(completions, skip_special_tokens=True)
            self.tokenizer.batch_decode(steps, skip_special_tokens=True)
            self.tokenizer(prompt_texts[::-1] if self.swap else prompt_texts, padding=True,
                           return_tensors="pt")
            self.tokenizer.batch_decode(generated, skip_special_tokens=True)
        return control


BATCHES = [([[1], [2]], [[11], [12]], [[21], [22]], [[31], [32]]),
           ([[3], [4]], [[13], [14]], [[23], [24]], [[33], [34]])]


@pytest.fixture
def logged(monkeypatch):
    from swanlab_autopatch import log

    monkeypatch.setattr(log, "_said", set())  # "once" messages, per test
    tables = []
    monkeypatch.setattr(run, "active", lambda: True)
    monkeypatch.setattr(run, "log_table", lambda *a: tables.append(a))
    return tables


def test_rows_in_axolotl_order_with_step_and_id(logged, capsys):
    recorder = RecordingTokenizer(Tokenizer())
    table = PredictionTable(AxolotlLike(recorder, BATCHES), recorder)
    state = SimpleNamespace(is_world_process_zero=True, global_step=5)
    assert table.on_evaluate(None, state, SimpleNamespace(), eval_dataloader=[]) is None
    (key, headers, rows, step), = logged
    assert (key, headers, step) == ("predictions", HEADERS, 5)
    assert rows == [[5, 0, "t1", "t11", "t31", "t21"], [5, 1, "t2", "t12", "t32", "t22"],
                    [5, 2, "t3", "t13", "t33", "t23"], [5, 3, "t4", "t14", "t34", "t24"]]
    assert recorder.calls == []  # nothing kept between evaluations
    state.global_step = 10
    table.on_evaluate(None, state, SimpleNamespace())
    assert [t[3] for t in logged] == [5, 10] and logged[1][2][0][:2] == [10, 0]
    said = [l for l in capsys.readouterr().err.splitlines() if "eval_table_size" in l]
    assert len(said) == 1 and "(4 rows" in said[0]  # the cost, said once


def test_the_recorder_is_the_tokenizer_for_everything_else():
    tokenizer = Tokenizer()
    recorder = RecordingTokenizer(tokenizer)
    assert (recorder.pad_token_id, recorder.eos_token_id) == (0, 2)
    recorder.padding_side = "left"
    assert tokenizer.padding_side == "left"
    assert recorder(["ab"])["input_ids"] == [[2]] and recorder.calls == [("encode", ["ab"])]


@pytest.mark.parametrize("change", ["order", "prompts"])
def test_other_tokenizer_use_gives_one_warning_and_no_table(logged, capsys, change):
    recorder = RecordingTokenizer(Tokenizer())
    inner = AxolotlLike(recorder, BATCHES, swap_prompts=change == "prompts")
    if change == "order":
        inner.on_evaluate = lambda *a, **k: recorder.batch_decode([[1]])
    table = PredictionTable(inner, recorder)
    state = SimpleNamespace(is_world_process_zero=True, global_step=5)
    table.on_evaluate(None, state, SimpleNamespace())
    table.on_evaluate(None, state, SimpleNamespace())
    assert logged == []
    warnings = [l for l in capsys.readouterr().err.splitlines() if "WARNING" in l]
    assert len(warnings) == 1 and "UnexpectedCalls" in warnings[0], warnings


def test_rows_refuses_a_partial_batch():
    recorder = RecordingTokenizer(Tokenizer())
    recorder.batch_decode([[1]])
    with pytest.raises(UnexpectedCalls):
        recorder.rows()


def test_an_error_in_axolotls_callback_is_contained(logged, capsys):
    recorder = RecordingTokenizer(Tokenizer())

    class Broken:
        def on_evaluate(self, *a, **k):
            raise RuntimeError("generate failed")

    table = PredictionTable(Broken(), recorder)
    table.on_evaluate(None, SimpleNamespace(is_world_process_zero=True, global_step=1),
                      SimpleNamespace())
    assert logged == [] and "generate failed" in capsys.readouterr().err


def test_nothing_runs_off_rank_zero_or_without_a_run(logged, monkeypatch):
    calls = []
    inner = SimpleNamespace(on_evaluate=lambda *a, **k: calls.append(1))
    table = PredictionTable(inner, RecordingTokenizer(Tokenizer()))
    table.on_evaluate(None, SimpleNamespace(is_world_process_zero=False, global_step=1), None)
    monkeypatch.setattr(run, "active", lambda: False)
    table.on_evaluate(None, SimpleNamespace(is_world_process_zero=True, global_step=1), None)
    assert calls == [] and logged == []  # no generation cost without a run to log to


@pytest.mark.parametrize("cfg", [{"eval_table_size": 0}, {}, {"eval_table_size": None},
                                 {"eval_table_size": 2, "rl": "dpo"}])
def test_no_table_unless_asked_on_a_causal_training(cfg):
    assert predictions.callback_for(object(), Tokenizer(), cfg) is None


def test_token_type_ids_are_kept_from_generate_when_the_model_does_not_name_them():
    class Encoding(dict):
        pass

    class TypedTokenizer(Tokenizer):
        def __call__(self, texts, **kwargs):
            return Encoding(input_ids=[[1]], attention_mask=[[1]], token_type_ids=[[0]])

    class Llama:
        def forward(self, input_ids=None, attention_mask=None, **kwargs):
            pass

    class Gpt2:
        def forward(self, input_ids=None, token_type_ids=None, **kwargs):
            pass

    class Peft:
        def get_base_model(self):
            return Llama()

        def forward(self, *args, **kwargs):
            pass

    for model, kept in ((Llama(), False), (Peft(), False), (Gpt2(), True)):
        recorder = RecordingTokenizer(TypedTokenizer(), predictions._unused_inputs(model))
        assert ("token_type_ids" in recorder(["x"])) is kept
