"""Fault injection: errors whose text quotes every kind of secret the job knows (the YAML's
API key, Lark webhook and secret, a secret from the environment, a saved login's key, a host
with credentials), raised where this package calls SwanLab and in a Trainer event.
INJECT_FAIL=init: swanlab.init raises; INJECT_FAIL=run: swanlab.log and Run.finish raise, and
the package's own on_log step raises once."""
import json
import os

import wrapt

_SECRETS = json.loads(os.environ["INJECT_SECRETS"])
_MESSAGE = "leaking " + " | ".join(_SECRETS)


def _raise(wrapped, instance, args, kwargs):
    raise RuntimeError(_MESSAGE)


_once = []


def _raise_once(wrapped, instance, args, kwargs):
    if not _once:
        _once.append(1)
        raise RuntimeError(_MESSAGE)
    return wrapped(*args, **kwargs)


@wrapt.when_imported("swanlab")
def _swanlab(module):
    if os.environ.get("INJECT_FAIL") == "init":
        wrapt.wrap_function_wrapper(module, "init", _raise)
    else:
        wrapt.wrap_function_wrapper(module, "log", _raise)
        wrapt.wrap_function_wrapper(module.Run, "finish", _raise)


@wrapt.when_imported("swanlab_autopatch.tracking.run")
def _on_log_step(module):  # what the callback's on_log calls for every Trainer log
    if os.environ.get("INJECT_FAIL") != "init":
        wrapt.wrap_function_wrapper(module, "log_logs", _raise_once)
