"""Applies and reverts the target table with wrapt.

- Activation watches the target modules (post_import.ModuleWatcher): each module's targets are
  wrapped the moment it finishes executing, before any ``from X import f`` elsewhere copies
  the original; a module already imported is wrapped at once. The watcher leaves
  ``sys.meta_path`` as soon as every target module has been imported.
- Failures are per target: a missing module or attribute costs that target (one warning),
  never the import of Axolotl. A hook that raised inside wrapt would make the import fail,
  so nothing escapes ``_on_import``.
- Handles are kept, so ``deactivate`` restores the originals; a watched module imported after
  ``deactivate`` is left alone (the hook checks ``_active``).
- Activating after Axolotl was imported also replaces the copies that modules made with
  ``from ... import name`` (including ``__main__`` under ``python -m axolotl.cli.train``).
"""
from __future__ import annotations

import os
import sys
import threading
from collections import namedtuple
from types import ModuleType
from typing import Any, Optional

from swanlab_autopatch import log
from swanlab_autopatch.shim import targets
from swanlab_autopatch._startup import flag
from swanlab_autopatch.versions import axolotl_version, version_in


# (target, module, handle: the wrapt FunctionWrapper now in place, original). A namedtuple,
# not a dataclass: this module is imported while Axolotl imports, where each ms counts.
Applied = namedtuple("Applied", "target module handle original")


_lock = threading.RLock()
_active = False
_version: Optional[str] = None
_watcher: Optional[Any] = None  # post_import.ModuleWatcher, created on first activation
_applied: dict[tuple[str, str], Applied] = {}
_aliases: list[tuple[ModuleType, str, Any, Any]] = []  # (module, name, original, handle)
_missing: dict[tuple[str, str], str] = {}  # (module, attr) -> reason


def _forced() -> bool:
    return flag("SWANLAB_AUTOPATCH_FORCE")


def supported(version: Optional[str]) -> bool:
    return version is None or version_in(version, targets.SUPPORTED_AXOLOTL)


def current_targets() -> list[targets.Target]:
    version = _version
    if version is not None and not supported(version) and _forced():
        # Forced below the range: the layout of the oldest release (the table's rows start
        # there, so an older version would match none).
        version = targets.AXOLOTL_RELEASES[0]
    return targets.targets_for(version)


def activate(reason: str = "startup", late: bool = False) -> bool:
    """Register the hooks for the installed Axolotl. Returns False when nothing is patched."""
    global _active, _version
    with _lock:
        try:
            _version = axolotl_version()
            if not supported(_version) and not _forced():
                log.warning(f"Axolotl {_version} is outside the supported range "
                            f"({targets.SUPPORTED_AXOLOTL}): swanlab-autopatch patches nothing "
                            "and training runs untracked. Set SWANLAB_AUTOPATCH_FORCE=1 to try "
                            "anyway.", once="unsupported")
                return False
            if not supported(_version):
                log.warning(f"Axolotl {_version} is outside the supported range "
                            f"({targets.SUPPORTED_AXOLOTL}); SWANLAB_AUTOPATCH_FORCE is set, so "
                            "swanlab-autopatch tries the nearest known layout.", once="forced")
            if _version is None:
                log.debug("Axolotl's version is unknown (no package metadata): using the newest "
                          "layout")
            elif supported(_version) and not targets.tested(_version):
                log.info(f"Axolotl {_version} is newer than the releases this swanlab-autopatch "
                         f"was tested with ({targets.AXOLOTL_RELEASES[0]} to "
                         f"{targets.AXOLOTL_RELEASES[-1]}): it patches the newest layout and "
                         "checks each target as it loads.", once="newer")
            import wrapt  # noqa: F401  (a broken wrapt is reported here, as an activation failure)

            _active = True
            log.debug(f"activating ({reason}) for Axolotl {_version}")
            global _watcher
            if _watcher is None:
                from swanlab_autopatch.shim.post_import import ModuleWatcher

                _watcher = ModuleWatcher(_on_import)
            # Imported modules are wrapped at once (never twice: _apply checks), the others
            # when they are imported.
            _watcher.watch(targets.modules_of(current_targets()))
            if late:
                _replace_aliases()
            return True
        except Exception as exc:
            message = (f"could not activate ({type(exc).__name__}: {exc}); SwanLab tracking is "
                       "off in this process. Run `swanlab-autopatch doctor` for details.")
            # Worker processes that import Axolotl again inherit the mark and stay quiet, so
            # a job says it once.
            if os.environ.get("SWANLAB_AUTOPATCH_ACTIVATION_FAILED"):
                log.debug(message)
            else:
                os.environ["SWANLAB_AUTOPATCH_ACTIVATION_FAILED"] = "1"
                log.warning(message, once="activate-failed")
            return False


def _on_import(module: ModuleType) -> None:
    """Post-import hook: must never raise (that would fail the user's import)."""
    try:
        if not _active:
            return
        with _lock:
            for target in current_targets():
                if target.module == module.__name__:
                    _apply(target, module)
    except Exception as exc:
        try:
            log.warning(f"could not patch {getattr(module, '__name__', module)} "
                        f"({type(exc).__name__}: {exc})", once=f"hook-{module}")
        except Exception:
            pass


def _chain(obj: Any, limit: int = 64) -> list[Any]:
    """obj and every wrapt wrapper below it (wrapt 1.x has no wrapper_chain)."""
    links = []
    while obj is not None and len(links) < limit:
        links.append(obj)
        if not hasattr(obj, "_self_wrapper"):  # not a wrapt FunctionWrapper: the end
            break
        obj = getattr(obj, "__wrapped__", None)
    return links


def _ours(obj: Any, wrapper_fn: Any) -> Any:
    """Our wrapper in the chain of wrappers around obj, if there is one."""
    for link in _chain(obj):
        if getattr(link, "_self_wrapper", None) is wrapper_fn:
            return link
    return None


def _unwrap(applied: Applied) -> None:
    """Remove our wrapper; wrapt >= 2.5 can also splice it out from under another wrapper."""
    import wrapt

    if hasattr(wrapt, "unwrap_object"):
        wrapt.unwrap_object(applied.module, applied.target.attr, applied.handle, missing_ok=True)
        return
    parent, name, current = wrapt.resolve_path(applied.module, applied.target.attr)
    if current is applied.handle:
        setattr(parent, name, applied.handle.__wrapped__)
    else:
        log.warning(f"{applied.target.dotted} was wrapped again by someone else; leaving it.")


def _apply(target: targets.Target, module: ModuleType) -> None:
    import wrapt

    from swanlab_autopatch.shim import wrappers

    key = (target.module, target.attr)
    wrapper_fn = getattr(wrappers, target.wrapper)
    try:
        _parent, _name, original = wrapt.resolve_path(module, target.attr)
    except Exception as exc:
        _skip(target, f"{type(exc).__name__}: {exc}",
              f"was not found ({type(exc).__name__});", "missing")
        return
    if _ours(original, wrapper_fn) is not None:  # never double-wrap
        return
    if not targets.tested(_version):
        changed = _signature_problem(original, target.params)
        if changed:
            _skip(target, changed, f"changed ({changed}); it is left alone,", "changed")
            return
    from swanlab_autopatch.shim import picklable

    handle = picklable.wrap(module, target.attr, wrapper_fn)
    _applied[key] = Applied(target, module, handle, original)
    _missing.pop(key, None)
    log.debug(f"wrapped {target.dotted}")


def _skip(target: targets.Target, reason: str, what: str, kind: str) -> None:
    """One warning for a target this Axolotl does not have as the table says."""
    _missing[(target.module, target.attr)] = reason
    consequence = ("SwanLab tracking is off for this run" if target.required
                   else f"consequence: {target.purpose}")
    log.warning(f"Axolotl {_version}: patch target {target.dotted} {what} {consequence}. "
                "Training itself is unaffected.", once=f"{kind}-{target.dotted}")


def _signature_problem(func: Any, leading: tuple) -> Optional[str]:
    """None when ``func`` takes ``leading`` as its first parameters (what the wrapper relies
    on), else what differs. Reads the code object: no `inspect` import on this path."""
    if not leading:
        return None
    for _ in range(16):  # through functools.wraps decorators to the function itself
        inner = getattr(func, "__wrapped__", None)
        if inner is None:
            break
        func = inner
    code = getattr(func, "__code__", None)
    if code is None:
        return f"{type(func).__name__} is not a function"
    names = code.co_varnames[:code.co_argcount]
    if tuple(names[:len(leading)]) != tuple(leading):
        return f"its parameters start with {', '.join(names) or 'nothing'}, not {', '.join(leading)}"
    return None


def _copies(applied: Applied, value: Any) -> list[tuple[ModuleType, str]]:
    """The (module, name) pairs outside the defining module that hold ``value``: the copies
    made by ``from module import func`` in Axolotl's modules and ``__main__``."""
    found = []
    if "." in applied.target.attr:  # methods are looked up on the class: no copies
        return found
    for name, mod in list(sys.modules.items()):
        if mod is None or not (name == "__main__" or name.startswith("axolotl")):
            continue
        if mod is applied.module:
            continue
        try:
            items = list(vars(mod).items())
        except TypeError:  # an odd object in sys.modules without a __dict__
            continue
        for attr, held in items:
            if held is value:
                found.append((mod, attr))
    return found


def _replace_aliases() -> None:
    """Point the copies made by ``from module import func`` at our wrappers."""
    for applied in list(_applied.values()):
        for mod, attr in _copies(applied, applied.original):
            setattr(mod, attr, applied.handle)
            _aliases.append((mod, attr, applied.original, applied.handle))


def deactivate() -> None:
    """Restore every original and the copies we replaced; later imports stay untouched."""
    global _active
    with _lock:
        _active = False
        for mod, attr, original, handle in reversed(_aliases):
            if vars(mod).get(attr) is handle:
                setattr(mod, attr, original)
        _aliases.clear()
        for (module_name, attr), applied in list(_applied.items()):
            try:
                # Copies bound while the wrapper was in place (imports after patching).
                for mod, name in _copies(applied, applied.handle):
                    setattr(mod, name, applied.original)
                _unwrap(applied)
            except Exception as exc:
                log.warning(f"could not restore {module_name}.{attr}: {exc!r}")
        _applied.clear()


def is_patched() -> bool:
    import wrapt

    with _lock:
        for applied in _applied.values():
            try:
                current = wrapt.resolve_path(applied.module, applied.target.attr)[2]
                if any(link is applied.handle for link in _chain(current)):
                    return True
            except Exception:
                continue
        return False


def status() -> dict[str, Any]:
    """What the patcher did in this process (for doctor and tests)."""
    return {
        "active": _active,
        "axolotl": _version,
        "wrapped": sorted(f"{m}.{a}" for m, a in _applied),
        "missing": {f"{m}.{a}": why for (m, a), why in _missing.items()},
        "aliases": sorted(f"{m.__name__}.{a}" for m, a, _o, _h in _aliases),
        "watching": sorted(_watcher.pending) if _watcher is not None else [],
    }
