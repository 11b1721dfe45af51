"""Fault injection: the job is preempted, SIGTERM (what SLURM and Kubernetes send before they
kill a job) arrives as step 6 begins."""
import os
import signal

import wrapt


@wrapt.when_imported("transformers.trainer")
def _inject(module):
    def training_step(wrapped, instance, args, kwargs):
        if instance.state.global_step == 5 and not os.environ.get("INJECT_DONE"):
            os.environ["INJECT_DONE"] = "1"
            os.kill(os.getpid(), getattr(signal, os.environ.get("INJECT_SIGNAL", "SIGTERM")))
        return wrapped(*args, **kwargs)

    wrapt.wrap_function_wrapper(module, "Trainer.training_step", training_step)
