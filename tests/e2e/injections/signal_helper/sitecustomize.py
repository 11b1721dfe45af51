"""Signals reach the helper process in the middle of training: SIGINT (a launcher forwarding
Ctrl-C to the whole step, `scancel --signal=INT`) at step 3, SIGHUP at step 4, SIGSTOP (a
blocked disk, a call stuck on a hanging server) at step 5; the test continues it once the
training has exited. The helper's pid is written to $HELPER_PID_FILE."""
import os
import signal

import wrapt


def _helper_pid():
    import sys

    run = sys.modules.get("swanlab_autopatch.tracking.run")
    proc = getattr(getattr(run, "_backend", None), "proc", None)
    return proc.pid if proc is not None else None


@wrapt.when_imported("transformers.trainer")
def _inject(module):
    def training_step(wrapped, instance, args, kwargs):
        step = instance.state.global_step
        pid = _helper_pid()
        if pid and step in (3, 4, 5):
            if step == 3:
                with open(os.environ["HELPER_PID_FILE"], "w") as handle:
                    handle.write(str(pid))
            os.kill(pid, {3: signal.SIGINT, 4: signal.SIGHUP, 5: signal.SIGSTOP}[step])
        return wrapped(*args, **kwargs)

    wrapt.wrap_function_wrapper(module, "Trainer.training_step", training_step)
