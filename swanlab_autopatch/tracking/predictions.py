"""``eval_table_size``: Axolotl's own "Predictions vs Ground Truth" table, in SwanLab.

Axolotl builds the table in ``LogPredictionCallback``, made by
``axolotl.utils.callbacks.log_prediction_callback_factory(trainer, tokenizer, logger)`` (the same
code in every release from 0.8.0 to 0.21.0), and wires it only for W&B, MLflow and Comet. Here
Axolotl's factory is called with the Trainer, the builder's tokenizer behind a recorder, and a
logger name no branch of it knows: its callback runs exactly as Axolotl wrote it (the eval
dataloader, ``trainer.prediction_step``, greedy ``model.generate`` with ``eval_max_new_tokens``,
rows until ``eval_table_size`` is passed at a batch boundary), and logs nothing itself. Its texts
are taken where Axolotl makes them, from the tokenizer: per batch it decodes the prompts, the
correct completions and the prediction_step tokens, encodes the prompts for ``generate``, then
decodes the generated tokens. The rows are read back in that order and checked (the encoded
prompts must be the decoded ones); anything else is one warning and no table.

One input is left out of what the recorder encodes for ``generate``: ``token_type_ids``, which
some tokenizers return and which ``generate`` refuses for models whose ``forward`` takes none
("model_kwargs are not used by the model"); there Axolotl's own W&B table fails.
"""
from __future__ import annotations

import time
from typing import Any, Optional

from transformers import TrainerCallback

from swanlab_autopatch import log
from swanlab_autopatch.tracking import run

KEY = "predictions"
HEADERS = ["step", "id", "Prompt", "Correct Completion", "Predicted Completion (model.generate)",
           "Predicted Completion (trainer.prediction_step)"]


class UnexpectedCalls(Exception):
    """Axolotl's callback used the tokenizer in another order than the one read here."""


class RecordingTokenizer:
    """The tokenizer, unchanged for its caller, noting the texts it decodes and encodes."""

    def __init__(self, tokenizer: Any, unused_inputs: tuple[str, ...] = ()) -> None:
        object.__setattr__(self, "_tokenizer", tokenizer)
        object.__setattr__(self, "_unused", unused_inputs)
        object.__setattr__(self, "calls", [])

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tokenizer, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._tokenizer, name, value)

    def batch_decode(self, *args: Any, **kwargs: Any) -> Any:
        texts = self._tokenizer.batch_decode(*args, **kwargs)
        self.calls.append(("decode", list(texts)))
        return texts

    def __call__(self, text: Any, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(("encode", list(text) if isinstance(text, (list, tuple)) else [text]))
        encoding = self._tokenizer(text, *args, **kwargs)
        for name in self._unused:
            if hasattr(encoding, "pop"):
                encoding.pop(name, None)
        return encoding

    def rows(self) -> list[list[str]]:
        """[prompt, correct completion, generated, prediction_step] per row, in order."""
        calls = self.calls
        kinds = [kind for kind, _ in calls]
        if kinds != ["decode", "decode", "decode", "encode", "decode"] * (len(calls) // 5):
            raise UnexpectedCalls(f"tokenizer calls {kinds[:10]}")
        rows: list[list[str]] = []
        for at in range(0, len(calls), 5):
            prompts, completions, steps, encoded, generated = (texts for _, texts in
                                                               calls[at:at + 5])
            if encoded != prompts or not len(prompts) == len(completions) == len(steps) \
                    == len(generated):
                raise UnexpectedCalls("the prompts given to generate are not the decoded ones")
            rows.extend([p, c, g, s] for p, c, g, s in zip(prompts, completions, generated,
                                                            steps))
        return rows


class PredictionTable(TrainerCallback):
    """Runs Axolotl's LogPredictionCallback at each evaluation and logs its rows."""

    def __init__(self, axolotl_callback: Any, recorder: RecordingTokenizer) -> None:
        self.inner = axolotl_callback
        self.recorder = recorder
        self.timed = False

    def on_evaluate(self, args, state, control, **kwargs):
        if not getattr(state, "is_world_process_zero", True) or not run.active():
            return None
        self.recorder.calls.clear()
        started = time.perf_counter()
        try:
            self.inner.on_evaluate(args, state, control, **kwargs)
            rows = self.recorder.rows()
        except Exception as exc:  # contained: the training never needed this table
            log.warning(f"eval_table_size: Axolotl's predictions table could not be built "
                        f"({type(exc).__name__}: {exc}); training goes on without it.",
                        once="predictions")
            return None
        finally:
            self.recorder.calls.clear()
        seconds = time.perf_counter() - started
        step = int(state.global_step)
        run.log_table(KEY, HEADERS, [[step, i, *row] for i, row in enumerate(rows)], step)
        log.debug(f"eval_table_size: {len(rows)} rows in {seconds:.2f} s at step {step}")
        if not self.timed:  # Axolotl's generation cost, which W&B users pay too
            self.timed = True
            log.info(f"eval_table_size: the predictions table ({len(rows)} rows, greedy "
                     f"model.generate) took {seconds:.1f} s at this evaluation; it is logged "
                     f"to SwanLab as '{KEY}' at every evaluation.")
        return None


def callback_for(trainer: Any, tokenizer: Any, cfg: Any) -> Optional[PredictionTable]:
    """The table's callback for a causal (non-RL) training with ``eval_table_size > 0``, as
    Axolotl's builder decides for W&B; None otherwise."""
    try:
        size = int(cfg.get("eval_table_size") or 0)
    except (TypeError, ValueError):
        return None
    if size <= 0 or cfg.get("rl") or tokenizer is None:
        return None
    try:
        from axolotl.utils.callbacks import log_prediction_callback_factory
    except ImportError:
        log.info("eval_table_size: this Axolotl has no LogPredictionCallback; no predictions "
                 "table is logged.")
        return None
    recorder = RecordingTokenizer(tokenizer, _unused_inputs(getattr(trainer, "model", None)))
    callback_class = log_prediction_callback_factory(trainer, recorder, "swanlab-autopatch")
    return PredictionTable(callback_class(cfg), recorder)


def _unused_inputs(model: Any) -> tuple[str, ...]:
    """Tokenizer outputs the model's forward does not name (token_type_ids for Llama-likes;
    GPT-2 names it). A PEFT model is asked about its base model."""
    try:
        import inspect

        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        accepted = inspect.signature(base.forward).parameters
        return () if "token_type_ids" in accepted else ("token_type_ids",)
    except Exception:
        return ()
