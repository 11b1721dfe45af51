"""The Trainer callback: starts the run on global rank 0, logs every metric, ends the run.

Imported only from the trainer-builder wrapper, when transformers is already loaded.
"""
from __future__ import annotations

import weakref
from typing import Any, MutableMapping, Optional

from transformers import TrainerCallback

from swanlab_autopatch import log
from swanlab_autopatch.tracking import model_files, naming, run, run_config
from swanlab_autopatch.tracking.completions import CompletionTable
from swanlab_autopatch.config.settings import SwanLabSettings
from swanlab_autopatch.tracking.request import StartRequest

class SwanLabAutopatchCallback(TrainerCallback):
    """Logs one Axolotl training job to one SwanLab run."""

    def __init__(self, settings: SwanLabSettings, cfg: MutableMapping[str, Any]):
        self.settings = settings
        self.cfg = cfg
        self._media_logged = False
        self._start_attempted = False  # one training job, one run: never a second start
        self._trainer: Any = None  # a weak reference, set once the Trainer exists
        self.completions = CompletionTable(settings.swanlab_completion_log_interval,
                                           settings.swanlab_completion_max_buffer) \
            if settings.swanlab_log_completions else None
        self.output_dir: Optional[str] = None
        self.final_save_pending = False  # log_model "end": after Axolotl saves the model

    def bind_trainer(self, trainer: Any) -> None:
        self._trainer = weakref.ref(trainer)

    # -- run lifecycle -----------------------------------------------------------------

    def _ensure_run(self, args: Any, state: Any, model: Any, resuming: bool = False) -> bool:
        if not getattr(state, "is_world_process_zero", True):
            return False
        if run.active():
            return True
        if self._start_attempted:  # its run ended (the user finished it, SwanLab died...)
            return False
        self._start_attempted = True
        try:
            config = run_config.build(self.cfg, args=args, model=model)
        except Exception as exc:  # the run is worth more than a complete config
            log.debug(f"config build failed: {exc!r}")
            config = {"framework": "axolotl"}
        settings = self.settings
        request = StartRequest(
            settings=settings, config=config,
            output_dir=settings.resolve(getattr(args, "output_dir", None) or
                                        self.cfg.get("output_dir")),
            resuming=resuming, resume_step=int(getattr(state, "global_step", 0) or 0),
            name=settings.swanlab_experiment_name or naming.default_name(self.cfg),
            tags=list(settings.swanlab_tags or naming.default_tags(self.cfg)))
        self.output_dir = request.output_dir
        started = run.start(request)
        if started and not self._media_logged:
            self._media_logged = True
            self._log_texts(args)
        return started

    def _log_texts(self, args: Any) -> None:
        try:
            texts = {}
            text = run_config.yaml_text(self.cfg)
            if text:
                texts["axolotl_config"] = (text, "Axolotl config (redacted)")
            ds_text = run_config.deepspeed_text(self.cfg, args)
            if ds_text:
                texts["deepspeed_config"] = (ds_text, "DeepSpeed config")
            run.log_texts(texts)
        except Exception as exc:
            log.debug(f"config text logging failed: {exc!r}")

    def _resuming(self, state: Any) -> bool:
        return bool(self.cfg.get("resume_from_checkpoint")) or \
            int(getattr(state, "global_step", 0) or 0) > 0

    # -- Trainer events (each contained: the Trainer never sees our errors) ----------------

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        try:
            self._ensure_run(args, state, model, resuming=self._resuming(state))
        except Exception as exc:
            log.warning(f"SwanLab callback failed at train begin: {exc!r}", once="cb-begin")

    def on_log(self, args, state, control, logs=None, model=None, **kwargs):
        try:
            if logs and (run.active() or self._ensure_run(args, state, model)):
                step = int(state.global_step)
                run.log_logs(logs, step)
                if self.completions is not None and self._trainer is not None:
                    trainer = self._trainer()
                    if trainer is not None and self.completions.collect(trainer, logs, step):
                        self._log_completions(step)
        except Exception as exc:
            log.warning(f"SwanLab callback failed to log: {exc!r}", once="cb-log")

    def _log_completions(self, step: int) -> None:
        headers, rows = self.completions.take(step)
        run.log_table("completions", headers, rows, step)

    def on_save(self, args, state, control, **kwargs):
        try:
            if getattr(state, "is_world_process_zero", True) and run.active():
                step = int(state.global_step)
                run.update_config({"last_checkpoint_step": step})
                if self.settings.swanlab_log_model == "checkpoint" and self.output_dir:
                    folder, names = model_files.checkpoint_files(self.output_dir, step)
                    if names:
                        run.save_files(self.output_dir, names,
                                       model_files.describe(self.output_dir, names, folder))
        except Exception as exc:
            log.debug(f"on_save failed: {exc!r}")

    def on_train_end(self, args, state, control, **kwargs):
        try:
            if not getattr(state, "is_world_process_zero", True):
                return
            if self.completions is not None and self.completions.rows:
                self._log_completions(int(state.global_step))
            if self.settings.swanlab_log_model == "end" and run.active():
                # Axolotl saves the final model after trainer.train() returns: the run ends
                # once those files are stored (trainer_hooks.after_training, or at exit).
                self.final_save_pending = True
                trainer_hooks_pending(self)
                return
            run.finish("success")
        except Exception as exc:
            log.warning(f"SwanLab callback failed at train end: {exc!r}", once="cb-end")

    def store_final_model(self) -> None:
        """log_model "end": the final model or adapter files, then the end of the run."""
        if not self.final_save_pending:
            return
        self.final_save_pending = False
        try:
            if self.output_dir:
                names = model_files.final_files(self.output_dir)
                if names:
                    run.save_files(self.output_dir, names, model_files.describe(
                        self.output_dir, names, "the final model files of output_dir"))
        finally:
            run.finish("success")


def trainer_hooks_pending(callback: SwanLabAutopatchCallback) -> None:
    from swanlab_autopatch.tracking import trainer_hooks

    trainer_hooks.finish_after_training(callback)

