"""Definitions in an installed package, read from its source files without importing anything
(``doctor``): importing Axolotl loads torch and friends (seconds, and their warnings on
stdout), and importing SwanLab alone costs about a second.

A module's file is found the way the import system's path search finds it, from the
top-level package's own spec (looking a top-level name up does not run it); a name is then
looked up in the parsed module: a ``def``, a ``class``, an assignment or an import at module
level, following ``from X import name`` re-exports and, for ``Class.attr``, the class body,
``self.attr = ...`` in its methods and its base classes.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

_FOLLOW = 6  # re-exports and base classes followed at most this deep


def module_file(dotted: str) -> Optional[Path]:
    """The source file of a module (``pkg/mod.py`` or ``pkg/mod/__init__.py``), or None."""
    import importlib.machinery
    import importlib.util

    top, *rest = dotted.split(".")
    try:  # the path search only: no meta-path hook (ours arms on "axolotl") gets involved
        spec = importlib.machinery.PathFinder.find_spec(top) or importlib.util.find_spec(top)
    except Exception:
        return None
    if spec is None:
        return None
    if not rest:
        origin = spec.origin or ""
        return Path(origin) if origin.endswith(".py") else None
    folders = [Path(p) for p in (spec.submodule_search_locations or [])]
    for i, part in enumerate(rest):
        last = i == len(rest) - 1
        found: list[Path] = []
        for folder in folders:
            package = folder / part
            if last:
                for candidate in (package / "__init__.py", folder / f"{part}.py"):
                    if candidate.is_file():
                        return candidate
            elif package.is_dir():
                found.append(package)
        folders = found
    return None


@dataclass
class Found:
    node: Optional[ast.AST]  # the def, class or assignment; None when missing
    file: Optional[Path]
    detail: str = ""  # why it is missing

    @property
    def ok(self) -> bool:
        return self.node is not None


_Scope = Union[ast.Module, ast.ClassDef]


def _statements(body: list) -> list:
    """Statements of a module or class body, with those of if/try blocks (``if
    TYPE_CHECKING: ... else: ...``, ``try: import x except ...``) flattened in."""
    out = []
    for node in body:
        out.append(node)
        if isinstance(node, (ast.If, ast.Try)):
            for block in (node.body, node.orelse, getattr(node, "finalbody", []),
                          *[h.body for h in getattr(node, "handlers", [])]):
                out += _statements(block)
    return out


def _binding(scope: _Scope, name: str) -> Optional[ast.AST]:
    """The statement of a body that binds ``name`` (the last one wins, as at run time)."""
    found = None
    for node in _statements(scope.body):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.name == name:
                found = node
        elif isinstance(node, ast.Assign):
            if any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
                found = node
        elif isinstance(node, ast.AnnAssign):
            if isinstance(node.target, ast.Name) and node.target.id == name:
                found = node
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                bound = alias.asname or alias.name.split(".")[0]
                if bound == name:
                    found = node
    return found


def _parse(path: Path) -> Optional[ast.Module]:
    try:
        return ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return None


def _imported_from(node: ast.ImportFrom, module: str, path: Path, name: str) -> Optional[tuple]:
    """(module, name) that ``from ... import name`` in ``module`` refers to."""
    for alias in node.names:
        if (alias.asname or alias.name) == name:
            if node.level:
                package = module.split(".") if path.name == "__init__.py" \
                    else module.split(".")[:-1]
                base = package[:len(package) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            return source, alias.name
    return None


def find(module: str, attr: str) -> Found:
    """``attr`` ("name" or "Class.name") as defined for ``module`` in the installed source."""
    return _find(module, attr.split("."), _FOLLOW)


def _find(module: str, parts: list[str], depth: int) -> Found:
    path = module_file(module)
    if path is None:
        return Found(None, None, f"module {module} not found")
    tree = _parse(path)
    if tree is None:
        return Found(None, path, f"{path} cannot be read")
    node = _binding(tree, parts[0])
    stub = path.with_suffix(".pyi")
    if node is None and stub.is_file():  # generated code (protobuf) binds names at run time;
        tree = _parse(stub) or tree      # its stub declares them
        node = _binding(tree, parts[0])
        path = stub if node is not None else path
    if isinstance(node, ast.ImportFrom) and depth > 0:
        source = _imported_from(node, module, path, parts[0])
        if source is not None:
            origin, name = source
            inside = _find(origin, [name, *parts[1:]], depth - 1)
            submodule = f"{origin}.{name}"  # `from a import b` also imports a submodule a.b
            if not inside.ok and module_file(submodule) is not None:
                return Found(node, path) if len(parts) == 1 else \
                    _find(submodule, parts[1:], depth - 1)
            return inside
    if node is None:
        return Found(None, path, f"{parts[0]} is not defined in {path}")
    if len(parts) == 1:
        return Found(node, path)
    if not isinstance(node, ast.ClassDef):
        return Found(None, path, f"{parts[0]} in {path} is not a class")
    return _member(module, path, tree, node, parts[1], depth)


def _member(module: str, path: Path, tree: ast.Module, cls: ast.ClassDef, name: str,
            depth: int) -> Found:
    node = _binding(cls, name)
    if node is not None:
        return Found(node, path)
    for method in cls.body:  # an instance attribute: self.name = ... in a method
        if isinstance(method, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for sub in ast.walk(method):
                if isinstance(sub, ast.Attribute) and sub.attr == name and \
                        isinstance(sub.ctx, ast.Store) and isinstance(sub.value, ast.Name) and \
                        sub.value.id == "self":
                    return Found(sub, path)
    for base in cls.bases:  # inherited: bases named in this module or imported into it
        if depth <= 0 or not isinstance(base, ast.Name):
            continue
        owner = _binding(tree, base.id)
        if isinstance(owner, ast.ClassDef):
            found = _member(module, path, tree, owner, name, depth - 1)
        elif isinstance(owner, ast.ImportFrom):
            source = _imported_from(owner, module, path, base.id)
            found = _find(source[0], [source[1], name], depth - 1) if source else Found(None, path)
        else:
            continue
        if found.ok:
            return found
    return Found(None, path, f"{cls.name}.{name} is not defined in {path}")


def call_problem(node: ast.AST, positional: int, keywords: tuple[str, ...],
                 method: bool = False) -> Optional[str]:
    """None when a function defined by ``node`` accepts ``positional`` positional arguments
    plus ``keywords`` (the way this package calls it), else what does not fit."""
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return None  # not a plain def (an assignment, a decorator's product): cannot tell
    args = node.args
    ordered = [a.arg for a in args.posonlyargs + args.args][1 if method else 0:]
    posonly = len(args.posonlyargs) - (1 if method and args.posonlyargs else 0)
    required = len(ordered) - len(args.defaults)
    if positional > len(ordered) and args.vararg is None:
        return f"takes {len(ordered)} positional arguments, not {positional}"
    given = set(ordered[:positional])
    kwonly = [a.arg for a in args.kwonlyargs]
    for key in keywords:
        if key in ordered[posonly:] or key in kwonly:
            given.add(key)
        elif args.kwarg is None:
            return f"has no parameter {key}"
    missing = [n for n in ordered[:required] if n not in given]
    missing += [a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults)
                if d is None and a.arg not in given]
    if missing:
        return f"requires {', '.join(missing)}"
    return None
