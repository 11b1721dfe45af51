"""What happens around Axolotl's trainer builder: add our callback, remove duplicates, mark
crashes. Called from the wrappers; knows nothing of wrapt."""
from __future__ import annotations

import functools
import traceback
from typing import Any

from swanlab_autopatch import log, rank
from swanlab_autopatch.config import flow as config_flow
from swanlab_autopatch.tracking import run

_MARK = "_swanlab_autopatch_train"


def _upstream_registered() -> bool:
    """Axolotl's own plugin got registered anyway (e.g. by user code): leave the run to it."""
    try:
        from axolotl.integrations.base import PluginManager

        plugins = getattr(PluginManager.get_instance(), "plugins", {}) or {}
        return any("swanlab" in str(name).lower() and "SwanLabPlugin" in str(name)
                   for name in plugins)
    except Exception:
        return False


def callback_for(builder: Any) -> Any:
    """Our callback for this builder's trainer, or None when this run is not ours to track."""
    cfg = getattr(builder, "cfg", None)
    record = config_flow.record_for(cfg)
    if record is None or record.stand_down or record.result is None:
        return None
    settings = record.result.settings
    if not settings.tracking:
        return None
    if not rank.current().is_main:  # other ranks never touch SwanLab
        return None
    if _upstream_registered():
        log.info("Axolotl's own SwanLab plugin is registered; swanlab-autopatch adds no callback.")
        return None
    from swanlab_autopatch.tracking.callback import SwanLabAutopatchCallback

    return SwanLabAutopatchCallback(settings, cfg)


def _is_foreign_swanlab_callback(callback: Any) -> bool:
    cls = type(callback)
    return "swanlab" in cls.__name__.lower() and cls.__name__ != "SwanLabAutopatchCallback"


def after_trainer(trainer: Any, builder: Any = None) -> None:
    """Once the Trainer exists: drop other SwanLab callbacks next to ours, add Axolotl's
    predictions table when eval_table_size asks for it, and make a crash in trainer.train()
    end the run as crashed (the exception itself goes on unchanged)."""
    handler = getattr(trainer, "callback_handler", None)
    callbacks = list(getattr(handler, "callbacks", []) or [])
    ours = [cb for cb in callbacks if type(cb).__name__ == "SwanLabAutopatchCallback"]
    if not ours:
        return
    for cb in ours:
        cb.bind_trainer(trainer)  # TRL keeps its completions on the trainer
    _add_predictions(trainer, builder, ours[0].cfg)
    for cb in callbacks:
        if _is_foreign_swanlab_callback(cb):
            # e.g. transformers' SwanLabCallback from report_to="all" (Axolotl <= 0.9 RL
            # trainers): it would crash on swanlab >= 0.8 or log every metric twice.
            trainer.remove_callback(cb)
            log.info(f"Removed {type(cb).__module__}.{type(cb).__name__} from the Trainer: "
                     "swanlab-autopatch already logs this run.")
    _mark_crashes(trainer)


def _add_predictions(trainer: Any, builder: Any, cfg: Any) -> None:
    try:
        from swanlab_autopatch.tracking import predictions

        table = predictions.callback_for(trainer, getattr(builder, "tokenizer", None), cfg)
        if table is not None:
            trainer.add_callback(table)
    except Exception as exc:  # the rest of after_trainer still runs
        log.warning(f"eval_table_size: the predictions table could not be set up "
                    f"({type(exc).__name__}: {exc}); training goes on without it.")


def _mark_crashes(trainer: Any) -> None:
    original = getattr(trainer, "train", None)
    if original is None or getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def train(*args: Any, **kwargs: Any) -> Any:
        try:
            return original(*args, **kwargs)
        except BaseException as exc:
            try:
                # Ctrl-C, or a signal handler that exits (Axolotl's own SIGINT handler saves
                # the model and calls sys.exit): the run was stopped, not broken.
                stopped = isinstance(exc, (KeyboardInterrupt, SystemExit))
                state = "aborted" if stopped else "crashed"
                run.finish(state, "".join(traceback.format_exception(exc)))
            except Exception:
                pass
            raise

    setattr(train, _MARK, True)
    trainer.train = train


# -- after Axolotl's train(): the final model is on disk -------------------------------------

_waiting: list = []  # callbacks whose training ended; their run ends with the job
_exit_registered = False


def finish_after_training(callback: Any) -> None:
    """The training ended: its run, with the console, goes on until Axolotl's train() has
    saved the model and returns (the train target), or until the process exits."""
    global _exit_registered
    if callback not in _waiting:
        _waiting.append(callback)
    if not _exit_registered:
        import atexit

        atexit.register(after_training)
        _exit_registered = True


def after_training() -> None:
    """Axolotl's train() returned (or the process ends): store the final model, end the run."""
    while _waiting:
        callback = _waiting.pop(0)
        try:
            callback.end_of_job()
        except Exception as exc:
            log.warning(f"SwanLab could not end the run cleanly ({type(exc).__name__}: "
                        f"{exc}); training is done.", once="end-of-job")


def end_earlier_jobs(callback: Any) -> bool:
    """A new training in the same process while an earlier one's run waits for its job to end:
    that run ends now. True when one did."""
    earlier = [c for c in _waiting if c is not callback]
    if earlier:
        after_training()
    return bool(earlier)


def job_failed(exc: BaseException) -> None:
    """Axolotl's train() raised after the Trainer had ended (saving the model failed, or a
    signal stopped it): the runs waiting for the job end crashed, or aborted."""
    if not _waiting:
        return
    _waiting.clear()
    stopped = isinstance(exc, (KeyboardInterrupt, SystemExit))
    run.finish("aborted" if stopped else "crashed", "".join(traceback.format_exception(exc)))


# -- Axolotl's generated samples (generate_samples) ---------------------------------------------


def log_samples(samples: Any, step: Any) -> None:
    """SFTGenerationCallback's samples (prompt, generated text) as a table at their step."""
    if not rank.current().is_main or not run.active() or not samples:
        return
    rows = []
    for sample in samples:
        if isinstance(sample, dict):
            rows.append([int(step), str(sample.get("prompt", "")),
                         str(sample.get("generated", ""))])
    run.log_table("samples", ["step", "prompt", "generated"], rows, int(step))

