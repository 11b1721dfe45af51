"""Wrappers that pickle as what they wrap: "the attribute ``name`` of module ``module``".

wrapt's proxies refuse to be pickled. Ray pickles Axolotl's worker function together with the
module globals it uses (``normalize_config`` in ``axolotl.cli.train`` up to 0.17, which runs as
``__main__`` and is pickled by value), so a plain wrapper there makes every Ray training fail
before a worker starts. Pickled by reference instead, the worker imports the module again and
gets whatever is there: the wrapped function when the package is active, the original when not.
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, Callable

import wrapt


def resolve(module: str, attr: str) -> Any:
    """The object at ``module.attr`` (``attr`` may be ``Class.method``) in this process."""
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


class _PicklableBound(wrapt.BoundFunctionWrapper):
    """A wrapped method looked up on its class (``Class.method``) or an instance."""

    def __reduce_ex__(self, protocol: int) -> tuple:
        instance = getattr(self, "_self_instance", None)
        home = self._self_parent._self_home
        if instance is None:
            return resolve, home
        return getattr, (instance, home[1].rsplit(".", 1)[-1])


class PicklableFunctionWrapper(wrapt.FunctionWrapper):
    __bound_function_wrapper__ = _PicklableBound

    def __reduce_ex__(self, protocol: int) -> tuple:
        return resolve, self._self_home


def wrap(module: ModuleType, attr: str, wrapper: Callable) -> Any:
    """``wrapt.wrap_function_wrapper``, with a wrapper that pickles by reference."""
    def factory(wrapped: Any) -> Any:
        proxy = PicklableFunctionWrapper(wrapped, wrapper)
        proxy._self_home = (module.__name__, attr)
        return proxy

    return wrapt.wrap_object(module, attr, factory)
