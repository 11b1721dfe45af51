"""Fault injection: SwanLab is not installed (the path finder no longer sees it)."""
import importlib.machinery

_find_spec = importlib.machinery.PathFinder.find_spec.__func__


def _hide_swanlab(cls, fullname, path=None, target=None):
    if fullname == "swanlab" or fullname.startswith(("swanlab.", "swanboard")):
        return None
    return _find_spec(cls, fullname, path, target)


importlib.machinery.PathFinder.find_spec = classmethod(_hide_swanlab)
