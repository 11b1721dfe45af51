"""The thin wrapt wrappers named in the target table.

Each one calls the original exactly once and returns its result untouched. Our own work runs
before or after it inside ``contained``: an error of ours becomes one warning and the original
behaviour goes on. Two kinds of exception pass through on purpose: anything Axolotl raises
(it is never caught here), and SwanLabConfigError, which stops a run whose swanlab_* values are
wrong before any model is loaded.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Any, Iterator

from swanlab_autopatch import log
from swanlab_autopatch.errors import SwanLabConfigError

# config_flow (pydantic), trainer_hooks and redact are imported inside the wrappers: this
# module loads when Axolotl is imported, and a process that never loads a config (`axolotl
# --help`, inference) should not pay for them.

_excepthook_installed = False


def _config_error_hook(previous: Any) -> Any:
    def hook(exc_type: Any, exc: BaseException, tb: Any) -> None:
        if isinstance(exc, SwanLabConfigError):
            # The user's fix is in the message; a traceback through Axolotl would bury it.
            from swanlab_autopatch.redact import mask

            sys.stderr.write(f"{log.PREFIX} ERROR: {mask(str(exc))}\n")
            return
        previous(exc_type, exc, tb)

    return hook


def _reject(error: SwanLabConfigError) -> None:
    """Stop the run with the one-line message (uncaught, it prints without a traceback)."""
    global _excepthook_installed
    if not _excepthook_installed:
        sys.excepthook = _config_error_hook(sys.excepthook)
        _excepthook_installed = True
    log.debug(f"rejecting the config: {error}")
    raise error.with_traceback(None)


@contextmanager
def contained(where: str) -> Iterator[None]:
    try:
        yield
    except SwanLabConfigError:
        raise
    except Exception as exc:
        try:  # log masks any secret the message quotes
            log.warning(f"internal error in {where} ({type(exc).__name__}: {exc}); training goes "
                        "on without this step. Please report it with `swanlab-autopatch doctor` "
                        "output.", once=f"internal-{where}")
        except Exception:
            pass


def _first(args: tuple, kwargs: dict, name: str) -> Any:
    return args[0] if args else kwargs.get(name)


def around_validate_config(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    cfg = _first(args, kwargs, "cfg")
    record = None
    try:
        with contained("validate_config"):
            from swanlab_autopatch.config import flow as config_flow

            record = config_flow.before_validate(cfg)
    except SwanLabConfigError as error:
        _reject(error)
    validated = wrapped(*args, **kwargs)
    if record is not None and validated is not None:
        with contained("validate_config"):
            config_flow.after_validate(record, validated)
    return validated


def around_normalize_config(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    cfg = _first(args, kwargs, "cfg")
    try:
        with contained("normalize_config"):
            from swanlab_autopatch.config import flow as config_flow

            config_flow.ensure_parsed(cfg)
    except SwanLabConfigError as error:
        _reject(error)
    return wrapped(*args, **kwargs)


def around_load_cfg(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    cfg = wrapped(*args, **kwargs)
    with contained("load_cfg"):
        from swanlab_autopatch.config import flow as config_flow

        config_flow.announce(cfg)
        if config_flow.tracks_here(cfg):  # the run's console starts here, not at train begin
            from swanlab_autopatch.tracking import helper_process

            helper_process.capture_console_early()
    return cfg


def around_prepare_plugins(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    cfg = _first(args, kwargs, "cfg")
    with contained("prepare_plugins"):
        from swanlab_autopatch.config import flow as config_flow

        if cfg is not None:
            config_flow.drop_unloadable_plugin(cfg)
    return wrapped(*args, **kwargs)


def around_get_callbacks(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    callbacks = wrapped(*args, **kwargs)
    with contained("get_callbacks"):
        from swanlab_autopatch.tracking import trainer_hooks

        callback = trainer_hooks.callback_for(instance)
        if callback is not None and isinstance(callbacks, list):
            callbacks.append(callback)
    return callbacks


def around_post_trainer_create(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    callbacks = wrapped(*args, **kwargs)
    with contained("get_post_trainer_create_callbacks"):
        from swanlab_autopatch.tracking import trainer_hooks

        trainer = _first(args, kwargs, "trainer")
        if trainer is not None:
            trainer_hooks.after_trainer(trainer, builder=instance)
    return callbacks


def around_train(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    try:
        result = wrapped(*args, **kwargs)
    except BaseException as exc:  # after the Trainer, saving the model failed (or was stopped)
        with contained("train"):
            from swanlab_autopatch.tracking import trainer_hooks

            trainer_hooks.job_failed(exc)
        raise
    with contained("train"):
        from swanlab_autopatch.tracking import trainer_hooks

        trainer_hooks.after_training()
    return result


def around_log_samples(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    result = wrapped(*args, **kwargs)
    with contained("log_samples"):
        from swanlab_autopatch.tracking import trainer_hooks

        samples = args[0] if args else kwargs.get("samples")
        step = args[1] if len(args) > 1 else kwargs.get("step")
        trainer_hooks.log_samples(samples, step)
    return result


def around_config_options(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    """Axolotl's builder of its config options (add_options_from_config and the precomputed
    variant) returns a decorator for a click command: ours adds the swanlab options too."""
    decorator = wrapped(*args, **kwargs)

    def with_swanlab_options(function: Any) -> Any:
        decorated = decorator(function)
        with contained("command-line options"):
            from swanlab_autopatch.config import command_line

            decorated = command_line.with_options(decorated)
        return decorated

    return with_swanlab_options
