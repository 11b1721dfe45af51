"""Interpreter start-up hook, run from ``swanlab_autopatch.pth`` (``.start`` on Python 3.15+).

It runs in every Python process of the environment, so it does almost nothing: it checks the
``SWANLAB_AUTOPATCH`` switch and puts a tiny finder in front of ``sys.meta_path`` that waits for
the first ``import axolotl``. Only then is the real work (wrapt, the patch table) imported.

Rules for this module: no imports at module level, nothing heavy at all (``os`` and ``sys`` are
already loaded when site runs), never raise, never print unless ``SWANLAB_AUTOPATCH_DEBUG`` is set.
"""

_ON_VALUES = ("1", "true", "yes", "on")
_OFF_VALUES = ("0", "false", "no", "off")
_armed = False  # CPython runs a venv's .pth files twice (cpython#75723): arm only once.


def flag(name, default=False):
    """The one rule for every on/off environment switch of this package: 1, true, yes, on
    (any case) mean on; 0, false, no, off mean off; unset, empty or anything else: ``default``.
    Defined here because this module is loaded in every process anyway."""
    import os

    value = os.environ.get(name, "").strip().lower()
    if value in _ON_VALUES:
        return True
    if value in _OFF_VALUES:
        return False
    return default


def seconds(name, default):
    """A duration switch in seconds (at least 0.1); ``default`` when unset or not a number."""
    import os

    try:
        return max(float(os.environ.get(name, default)), 0.1)
    except ValueError:
        return default


def disabled_by_env():
    """True when ``SWANLAB_AUTOPATCH`` turns the package off (0, false, no, off; any case)."""
    return not flag("SWANLAB_AUTOPATCH", default=True)


def debug_on():
    return flag("SWANLAB_AUTOPATCH_DEBUG")


def _write(level, message):
    import sys

    try:  # even these lines go through the one secret mask (imported only when one is said)
        from swanlab_autopatch.redact import mask

        message = mask(message)
    except Exception:
        message = "<message withheld: it could not be checked for secrets>"
    try:
        sys.stderr.write(f"[swanlab-autopatch] {level}: {message}\n")
    except Exception:
        pass


def debug(message):
    """Write one line to stderr, only when ``SWANLAB_AUTOPATCH_DEBUG`` is on."""
    if debug_on():
        _write("debug", message)


def warn(message):
    """One warning line on stderr, for failures a user must hear about even without debug."""
    _write("WARNING", message)


class AxolotlTrigger:
    """A meta-path finder that never finds anything: it notices the first ``axolotl`` import,
    removes itself and activates the patches before Axolotl's own modules execute."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "axolotl" and not fullname.startswith("axolotl."):
            return None
        import sys

        try:
            sys.meta_path.remove(self)
        except ValueError:  # already removed by a concurrent import
            return None
        try:
            from swanlab_autopatch.shim import patcher

            patcher.activate(reason="startup")
        except Exception as exc:  # the user's import of axolotl must go on regardless
            warn(f"could not activate ({type(exc).__name__}: {exc}); SwanLab tracking is off "
                 "in this process. Run `swanlab-autopatch doctor` for details.")
        return None


def init():
    """Arm the trigger once per process. Called by the startup file; safe to call again."""
    global _armed
    try:
        if _armed:
            return
        _armed = True
        if disabled_by_env():
            debug("SWANLAB_AUTOPATCH is off: nothing armed")
            return
        import sys

        if "axolotl" in sys.modules:  # started late (e.g. sitecustomize after an import)
            from swanlab_autopatch.shim import patcher

            # late: Axolotl's modules may already hold `from` copies of the originals.
            patcher.activate(reason="startup", late=True)
            return
        sys.meta_path.insert(0, AxolotlTrigger())
        debug("trigger armed")
    except Exception as exc:  # start-up must never fail because of this package
        try:
            debug(f"startup failed: {exc!r}")
        except Exception:
            pass


def is_armed():
    """True when the startup hook ran in this process and the switch did not turn it off."""
    return _armed and not disabled_by_env()
