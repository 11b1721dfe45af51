"""Fault injection: the training stops itself (SIGSTOP: from outside, a hung collective or a
dead node looks like this) as step 4 begins. A watcher it starts first continues it once the
helper process has said it sees no progress (its log in the run's folder under ./swanlog), or
after 300 s at most, so the test never hangs."""
import os
import signal
import subprocess
import sys

import wrapt

WATCHER = r"""
import glob, os, signal, sys, time
parent, deadline = int(sys.argv[1]), time.monotonic() + 300
while time.monotonic() < deadline:
    seen = False
    for path in glob.glob("swanlog/*/debug/swanlab-autopatch-helper.log"):
        try:
            seen = seen or "no progress for" in open(path, errors="replace").read()
        except OSError:
            pass
    if seen:
        break
    time.sleep(0.1)
os.kill(parent, signal.SIGCONT)
"""


@wrapt.when_imported("transformers.trainer")
def _inject(module):
    def training_step(wrapped, instance, args, kwargs):
        if instance.state.global_step == 3 and not os.environ.get("_STOPPED_ONCE"):
            os.environ["_STOPPED_ONCE"] = "1"
            subprocess.Popen([sys.executable, "-c", WATCHER, str(os.getpid())],
                             env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
            os.kill(os.getpid(), signal.SIGSTOP)
        return wrapped(*args, **kwargs)

    wrapt.wrap_function_wrapper(module, "Trainer.training_step", training_step)
