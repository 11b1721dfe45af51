"""Fault injection: the process is killed (SIGKILL) in the middle of training (step 6),
after giving SwanLab's writer a moment to flush what was logged so far."""
import os
import signal
import time

import wrapt


@wrapt.when_imported("transformers.trainer")
def _inject(module):
    def training_step(wrapped, instance, args, kwargs):
        if instance.state.global_step == 5:
            time.sleep(3)
            os.kill(os.getpid(), signal.SIGKILL)
        return wrapped(*args, **kwargs)

    wrapt.wrap_function_wrapper(module, "Trainer.training_step", training_step)
