"""A plugin or user callback keeps ``swanlab.get_run()`` and goes on logging through it after
training, while Axolotl saves the model: a thread logs through the kept object every half
millisecond from the first training step until the process exits."""
import threading
import time

import wrapt

_started = False


def _log_forever(run):
    i = 0
    while True:
        i += 1
        try:
            run.log({"user/kept": float(i)}, step=i)
        except Exception:
            pass
        time.sleep(0.0005)


@wrapt.when_imported("transformers.trainer")
def _inject(module):
    def training_step(wrapped, instance, args, kwargs):
        global _started
        if not _started:
            import swanlab

            if swanlab.has_run():
                _started = True
                threading.Thread(target=_log_forever, args=(swanlab.get_run(),),
                                 daemon=True).start()
        return wrapped(*args, **kwargs)

    wrapt.wrap_function_wrapper(module, "Trainer.training_step", training_step)
