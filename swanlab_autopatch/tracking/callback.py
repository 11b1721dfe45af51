"""The Trainer callback: starts the run on global rank 0, logs every metric, ends the run.

Imported only from the trainer-builder wrapper, when transformers is already loaded.
"""
from __future__ import annotations

import weakref
from typing import Any, MutableMapping, Optional

from transformers import TrainerCallback

from swanlab_autopatch import log
from swanlab_autopatch.tracking import data_record, model_files, naming, run, run_config
from swanlab_autopatch.tracking.completions import CompletionTable
from swanlab_autopatch.config import credentials
from swanlab_autopatch.config.settings import SwanLabSettings
from swanlab_autopatch.tracking.request import StartRequest
from swanlab_autopatch.tracking.watch import Watcher

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
        self.end_pending = False  # the training ended; the run ends with the job
        self.watch = Watcher(settings.swanlab_watch, settings.swanlab_watch_interval, cfg) \
            if settings.swanlab_watch != "false" else None

    def bind_trainer(self, trainer: Any) -> None:
        self._trainer = weakref.ref(trainer)

    def trainer(self) -> Any:
        return self._trainer() if self._trainer is not None else None

    # -- run lifecycle -----------------------------------------------------------------

    def _ensure_run(self, args: Any, state: Any, model: Any, resuming: bool = False) -> bool:
        if not getattr(state, "is_world_process_zero", True):
            return False
        if run.active():
            from swanlab_autopatch.tracking import trainer_hooks

            if not trainer_hooks.end_earlier_jobs(self):  # the run is this training's own
                return True
        if self._start_attempted:  # its run ended (the user finished it, SwanLab died...)
            return False
        self._start_attempted = True
        try:
            config = run_config.build(self.cfg, args=args, model=model, trainer=self.trainer())
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
            tags=list(settings.swanlab_tags or naming.default_tags(self.cfg)),
            no_key_said=credentials.no_key_said())
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
            trainer = self.trainer()
            template = data_record.chat_template(getattr(trainer, "processing_class", None) or
                                                 getattr(trainer, "tokenizer", None))
            if template:
                texts["chat_template"] = (template, "Chat template (tokenizer)")
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
            if self.watch is not None:
                self.watch.start(args, state)
        except Exception as exc:
            log.warning(f"SwanLab callback failed at train begin: {exc!r}", once="cb-begin")

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        """swanlab_watch: the gradients after clipping, before the optimizer step. Off the
        interval this is one comparison (no tensor touched)."""
        watch = self.watch
        if watch is None or not watch.due(state.global_step + 1):
            return
        try:
            if getattr(state, "is_world_process_zero", True) and run.active():
                step = state.global_step + 1  # the step the Trainer is completing
                metrics, histograms = watch.measure(model, step)
                run.log_metrics(metrics, step)
                run.log_histograms(histograms, step)
        except Exception as exc:
            self.watch = None
            log.warning(f"swanlab_watch failed ({type(exc).__name__}: {exc}); training goes on "
                        "without it.", once="cb-watch")

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
            if run.active():
                # The job is not over: Axolotl saves the final model after trainer.train()
                # returns. The run (and its console record) ends when Axolotl's train() returns
                # (trainer_hooks.after_training), or at exit.
                self.end_pending = True
                from swanlab_autopatch.tracking import trainer_hooks

                trainer_hooks.finish_after_training(self)
        except Exception as exc:
            log.warning(f"SwanLab callback failed at train end: {exc!r}", once="cb-end")

    def end_of_job(self) -> None:
        """After the training's job: with log_model "end", the final model or adapter files;
        then the end of the run."""
        if not self.end_pending:
            return
        self.end_pending = False
        try:
            if self.settings.swanlab_log_model == "end" and self.output_dir and run.active():
                names = model_files.final_files(self.output_dir)
                if names:
                    run.save_files(self.output_dir, names, model_files.describe(
                        self.output_dir, names, "the final model files of output_dir"))
        finally:
            run.finish("success")

