"""Explicit opt-in for environments that do not process .pth files.

Put this folder first on PYTHONPATH (or copy this file into a folder that is):

    export PYTHONPATH=/path/to/sitecustomize_example${PYTHONPATH:+:$PYTHONPATH}

It arms the same trigger as the installed start-up file (the call is idempotent, so having
both is harmless) and then runs the sitecustomize that this file shadows, if there is one.
"""
import os
import sys


def _arm():
    try:
        from swanlab_autopatch import _startup

        _startup.init()
    except Exception:  # start-up must never fail because of the tracker
        pass


def _chain_to_the_next_sitecustomize():
    """Import the sitecustomize found after this folder on sys.path, so a site's own
    customisation (or another tool's) still runs."""
    here = os.path.dirname(os.path.abspath(__file__))
    saved_path = list(sys.path)
    this_module = sys.modules.pop("sitecustomize", None)
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    try:
        import sitecustomize  # noqa: F401  (the next one, if any)
    except ModuleNotFoundError as exc:
        if exc.name != "sitecustomize":  # the other file's own import failed: say so
            sys.stderr.write(f"Error in the chained sitecustomize: {exc!r}\n")
    except Exception as exc:  # the other file's problem: report it as site would
        sys.stderr.write(f"Error in the chained sitecustomize: {exc!r}\n")
    finally:
        sys.path[:] = saved_path
        if this_module is not None and "sitecustomize" not in sys.modules:
            sys.modules["sitecustomize"] = this_module


_arm()
_chain_to_the_next_sitecustomize()
