"""SwanLab experiment tracking for unmodified Axolotl installs.

Installing the package is enough: a start-up file arms a trigger that activates the patches
when Axolotl is imported. The functions below are for people who activate by hand (for
example where ``.pth`` files are not processed) and for tests.

This module must stay import-free: the start-up file imports it in every Python process.
"""

__version__ = "0.3.0"
__all__ = ["__version__", "patch", "unpatch", "is_patched"]


def patch():
    """Activate the patches now. Works before or after Axolotl was imported; safe to repeat.

    Returns True when Axolotl's targets are (or will be, on import) wrapped.
    """
    from swanlab_autopatch.shim import patcher

    return patcher.activate(reason="patch()", late=True)


def unpatch():
    """Restore every original Axolotl function and stop reacting to later imports."""
    from swanlab_autopatch.shim import patcher

    patcher.deactivate()


def is_patched():
    """True when at least one Axolotl target is currently wrapped by this package."""
    from swanlab_autopatch.shim import patcher

    return patcher.is_patched()
