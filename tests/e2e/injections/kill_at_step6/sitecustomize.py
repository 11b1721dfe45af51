"""Fault injection: the process is killed (SIGKILL) in the middle of training, right as step 6
begins: nothing gets a moment to flush."""
import os
import signal

import wrapt


@wrapt.when_imported("transformers.trainer")
def _inject(module):
    def training_step(wrapped, instance, args, kwargs):
        if instance.state.global_step == 5:
            os.kill(os.getpid(), signal.SIGKILL)
        return wrapped(*args, **kwargs)

    wrapt.wrap_function_wrapper(module, "Trainer.training_step", training_step)
