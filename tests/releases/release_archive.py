"""Download Axolotl release archives once and read their Python sources with ``ast``.

Nothing here installs or imports Axolotl. An archive is fetched with
``python -m pip download --no-deps`` into ``$SWANLAB_AUTOPATCH_CACHE/releases`` (default
``~/.cache/swanlab-autopatch/releases``) and found there again by its file name, so a second run
does no network access. Wheels are read as zip files; the releases that exist only as sdists on
the index (0.8 to 0.12) are read from the ``.tar.gz`` (``<name>-<version>/src/axolotl/...``).

The analysis helpers at the bottom answer the questions tests/releases/test_release_sources.py
asks: where a module-level name or a ``Class.method`` is defined, what its parameters are, and
which definition a ``from M import NAME`` reaches when followed through the release's modules.
"""
from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path, PurePosixPath

from packaging.utils import (InvalidSdistFilename, InvalidWheelFilename, parse_sdist_filename,
                             parse_wheel_filename)
from packaging.version import InvalidVersion, Version

DIST = "axolotl"
TOP_PACKAGE = "axolotl"


class ReleaseError(Exception):
    """A release could not be downloaded or read; the message says what to do about it."""


# --------------------------------------------------------------------------------------------
# The cache and the download
# --------------------------------------------------------------------------------------------

def cache_dir() -> Path:
    """``$SWANLAB_AUTOPATCH_CACHE/releases`` (default ``~/.cache/swanlab-autopatch/releases``)."""
    root = os.environ.get("SWANLAB_AUTOPATCH_CACHE") or str(
        Path.home() / ".cache" / "swanlab-autopatch")
    return Path(root).expanduser() / "releases"


def _archive_version(path: Path) -> tuple[Version, str] | None:
    """(version, "wheel" | "sdist") for an Axolotl archive file name, else None."""
    name = path.name
    try:
        if name.endswith(".whl"):
            dist, version, _build, _tags = parse_wheel_filename(name)
            kind = "wheel"
        elif name.endswith(".tar.gz"):
            dist, version = parse_sdist_filename(name)
            kind = "sdist"
        else:
            return None
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return None
    return (version, kind) if dist == DIST else None


def cached_archive(version: str, folder: Path | None = None) -> Path | None:
    """The cached archive of ``version`` (a wheel in preference to an sdist), or None."""
    folder = folder or cache_dir()
    if not folder.is_dir():
        return None
    wanted = Version(version)
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        parsed = _archive_version(path)
        if parsed and parsed[0] == wanted and path.is_file() and path.stat().st_size > 0:
            found.setdefault(parsed[1], path)
    return found.get("wheel") or found.get("sdist")


def _pip(args: list[str], dest: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "--no-input", "-d", str(dest), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def _tail(text: str, lines: int = 12) -> str:
    # The extra file:// indexes on this machine print harmless "Location ... is ignored" lines.
    kept = [line for line in text.splitlines() if "is ignored: it is neither" not in line]
    return "\n".join(kept[-lines:])


def download(version: str, folder: Path | None = None) -> Path:
    """Return the archive of ``axolotl==version``, downloading it into the cache if needed.

    Tries, in order: a wheel for Python 3.12 (0.20+ declare Requires-Python >=3.12); the sdist
    without build isolation; the sdist with build isolation (pip prepares an sdist's metadata
    even for ``download``, and the old ``setuptools`` of a test venv may lack ``bdist_wheel``).
    Raises ReleaseError with pip's output when every attempt fails.
    """
    folder = folder or cache_dir()
    hit = cached_archive(version, folder)
    if hit is not None:
        return hit
    folder.mkdir(parents=True, exist_ok=True)
    spec = f"{DIST}=={version}"
    attempts = [
        ("wheel", ["--only-binary=:all:", "--python-version", "3.12", spec]),
        ("sdist, no build isolation",
         ["--no-binary=axolotl", "--no-build-isolation", "--ignore-requires-python", spec]),
        ("sdist, build isolation", ["--no-binary=axolotl", "--ignore-requires-python", spec]),
    ]
    report = []
    for label, args in attempts:
        # Download into a private folder and move the file in, so a crash or a parallel run
        # never leaves a partial archive under the name the cache looks for.
        with tempfile.TemporaryDirectory(prefix="dl-", dir=folder) as tmp:
            try:
                proc = _pip(args, Path(tmp))
            except (OSError, subprocess.TimeoutExpired) as exc:
                report.append(f"--- {label}: {exc}")
                continue
            got = [p for p in Path(tmp).iterdir() if _archive_version(p)]
            if proc.returncode == 0 and got:
                target = folder / got[0].name
                os.replace(got[0], target)
                return target
            report.append(f"--- {label} (exit {proc.returncode}):\n"
                          f"{_tail(proc.stdout + proc.stderr)}")
    raise ReleaseError(
        f"could not download {spec} into {folder} with `{sys.executable} -m pip download "
        f"--no-deps`; the network must reach the package index (or put the archive into that "
        f"folder by hand).\n" + "\n".join(report))


def index_versions(dist: str = DIST) -> list[Version]:
    """Every release of a distribution (Axolotl by default) the package index lists
    (pre-releases included; the caller filters), via ``pip index versions --pre
    --ignore-requires-python``."""
    cmd = [sys.executable, "-m", "pip", "index", "versions", dist, "--pre",
           "--ignore-requires-python", "--disable-pip-version-check", "--no-input"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ReleaseError(f"`{' '.join(cmd)}` failed: {exc}") from exc
    for line in proc.stdout.splitlines():
        if line.strip().startswith("Available versions:"):
            raw = line.split(":", 1)[1]
            versions = []
            for item in raw.split(","):
                try:
                    versions.append(Version(item.strip()))
                except InvalidVersion:
                    continue
            if versions:
                return versions
    raise ReleaseError(f"`{' '.join(cmd)}` listed no versions (exit {proc.returncode}); the "
                       f"network must reach the package index.\n{_tail(proc.stdout + proc.stderr)}")


# --------------------------------------------------------------------------------------------
# Reading an archive
# --------------------------------------------------------------------------------------------

def _module_name(parts: tuple[str, ...]) -> str | None:
    """``("axolotl", "cli", "config.py")`` -> ``axolotl.cli.config``; packages drop __init__."""
    if not parts or parts[0] != TOP_PACKAGE or not parts[-1].endswith(".py"):
        return None
    stem = parts[-1][:-3]
    names = list(parts[:-1]) if stem == "__init__" else [*parts[:-1], stem]
    if not all(n.isidentifier() for n in names):
        return None
    return ".".join(names)


def _sdist_parts(name: str) -> tuple[str, ...] | None:
    """The package-relative parts of an sdist member: ``axolotl-0.8.0/src/axolotl/x.py``."""
    parts = PurePosixPath(name).parts
    if len(parts) < 3:
        return None
    rest = parts[1:]  # drop the "<name>-<version>" folder
    if rest[0] == "src":
        rest = rest[1:]
    return tuple(rest) if rest and rest[0] == TOP_PACKAGE else None


@dataclass
class Release:
    """The Python sources of one Axolotl release, keyed by dotted module name."""

    version: str
    archive: Path
    files: dict[str, str]  # module name -> path inside the archive
    sources: dict[str, str]  # module name -> source text
    _trees: dict[str, ast.Module] = field(default_factory=dict, repr=False)
    memo: dict = field(default_factory=dict, repr=False)  # results of costly look-ups

    def has_module(self, module: str) -> bool:
        return module in self.sources

    def is_package(self, module: str) -> bool:
        return self.files.get(module, "").endswith("__init__.py")

    def tree(self, module: str) -> ast.Module:
        if module not in self._trees:
            self._trees[module] = ast.parse(self.sources[module], filename=self.files[module])
        return self._trees[module]


def read_release(version: str, archive: Path) -> Release:
    """Read every ``axolotl/**.py`` of a wheel or an sdist into memory (no extraction)."""
    files: dict[str, str] = {}
    sources: dict[str, str] = {}

    def add(parts: tuple[str, ...] | None, member: str, data: bytes) -> None:
        module = _module_name(parts) if parts else None
        if module is None:
            return
        files[module] = member
        sources[module] = data.decode("utf-8", errors="replace")

    try:
        if archive.name.endswith(".whl"):
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    parts = PurePosixPath(info.filename).parts
                    if parts and parts[0] == TOP_PACKAGE and info.filename.endswith(".py"):
                        add(tuple(parts), info.filename, zf.read(info))
        else:
            # Stream mode: members are read in order, never seeking back in the gzip stream.
            with tarfile.open(archive, "r|gz") as tf:
                for member in tf:
                    if not (member.isfile() and member.name.endswith(".py")):
                        continue
                    parts = _sdist_parts(member.name)
                    if parts:
                        fh = tf.extractfile(member)
                        if fh is not None:
                            add(parts, member.name, fh.read())
    except (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
        raise ReleaseError(f"cannot read {archive}: {exc}; delete it and rerun to download it "
                           f"again") from exc
    if TOP_PACKAGE not in sources:
        raise ReleaseError(f"{archive} holds no {TOP_PACKAGE}/__init__.py; delete it and rerun")
    return Release(version, archive, files, sources)


@lru_cache(maxsize=None)
def release(version: str) -> Release:
    """The downloaded (or cached) and parsed sources of ``axolotl==version``."""
    return read_release(version, download(version))


# --------------------------------------------------------------------------------------------
# Analysis
# --------------------------------------------------------------------------------------------

FuncDef = (ast.FunctionDef, ast.AsyncFunctionDef)
_BLOCKS = (ast.stmt, ast.excepthandler, ast.match_case)
_TRY_NODES = tuple(t for t in (getattr(ast, "Try", None), getattr(ast, "TryStar", None)) if t)


def _flat_body(body: list[ast.stmt]):
    """Statements of a module or class body, looking into if/try/with blocks (not into defs)."""
    for node in body:
        yield node
        if isinstance(node, ast.If):
            yield from _flat_body(node.body)
            yield from _flat_body(node.orelse)
        elif isinstance(node, _TRY_NODES):
            yield from _flat_body(node.body)
            for handler in node.handlers:
                yield from _flat_body(handler.body)
            yield from _flat_body(node.orelse)
            yield from _flat_body(node.finalbody)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            yield from _flat_body(node.body)


def absolute_import(module: str, is_package: bool, node: ast.ImportFrom) -> str | None:
    """The absolute module an ImportFrom names, resolving ``from . import`` forms."""
    if not node.level:
        return node.module
    package = module.split(".") if is_package else module.split(".")[:-1]
    if node.level - 1 > len(package):
        return None
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base) or None


def lazy_table(rel: Release, module: str) -> dict[str, tuple[str, int]]:
    """The lazy-import table of a module: ``{name: (absolute module, line)}``.

    From 0.18 some modules (``axolotl.cli.train`` among them) bind names on first access
    through a module-level ``__getattr__`` built from a dict literal such as
    ``_LAZY_IMPORTS = {"load_cfg": "axolotl.cli.config"}`` (``make_lazy_getattr``), which does
    ``getattr(importlib.import_module(value, __name__), name)``: a deferred
    ``from value import name``. A table counts when a module-level ``__getattr__`` (a def or an
    assignment) refers to the name the dict literal is assigned to.
    """
    tree = rel.tree(module)
    getattr_nodes = []
    dicts: dict[str, ast.Dict] = {}
    for node in _flat_body(tree.body):
        if isinstance(node, FuncDef) and node.name == "__getattr__":
            getattr_nodes.append(node)
        elif isinstance(node, ast.Assign):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            if "__getattr__" in names:
                getattr_nodes.append(node.value)
            if isinstance(node.value, ast.Dict):
                for name in names:
                    dicts[name] = node.value
    referenced = {n.id for g in getattr_nodes for n in ast.walk(g) if isinstance(n, ast.Name)}
    table: dict[str, tuple[str, int]] = {}
    for name, literal in dicts.items():
        if name not in referenced:
            continue
        for key, value in zip(literal.keys, literal.values):
            if (isinstance(key, ast.Constant) and isinstance(key.value, str)
                    and isinstance(value, ast.Constant) and isinstance(value.value, str)):
                try:
                    target = importlib.util.resolve_name(value.value, module)
                except (ImportError, ValueError):
                    continue
                table[key.value] = (target, key.lineno)
    return table


@dataclass(frozen=True)
class Binding:
    """How a module binds a name at module level.

    kind: "def" (function), "class", "import" (a from-import, or an entry of a lazy-import
    table: ``source``, ``source_name``), "other" (assignment, plain import and the like).
    """

    kind: str
    node: ast.AST | None = None
    source: str | None = None
    source_name: str | None = None


def module_binding(rel: Release, module: str, name: str) -> Binding | None:
    """The last module-level binding of ``name`` in ``module``, else its lazy-import table
    entry (a module ``__getattr__`` only runs for names the module does not bind), else None."""
    found: Binding | None = None
    for node in _flat_body(rel.tree(module).body):
        if isinstance(node, FuncDef) and node.name == name:
            found = Binding("def", node)
        elif isinstance(node, ast.ClassDef) and node.name == name:
            found = Binding("class", node)
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    src = absolute_import(module, rel.is_package(module), node)
                    found = Binding("import", node, src, alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if (alias.asname or alias.name.split(".")[0]) == name:
                    found = Binding("other", node)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for sub in ast.walk(target):
                    if isinstance(sub, ast.Name) and sub.id == name:
                        found = Binding("other", node)
    if found is None:
        lazy = lazy_table(rel, module).get(name)
        if lazy:
            found = Binding("import", None, lazy[0], name)
    return found


def find_method(rel: Release, module: str, cls_name: str, method: str,
                _seen: frozenset = frozenset()) -> tuple[ast.AST | None, str, list[str]]:
    """Find ``cls_name.method`` in ``module``, following base classes with simple names that
    are classes defined in the same module (depth first, in base order).

    Returns (function node or None, the class that defines it, notes on what was searched).
    """
    binding = module_binding(rel, module, cls_name)
    if binding is None or binding.kind != "class":
        if binding is None:
            what = "not bound at module level"
        elif binding.kind == "import":
            what = f"imported from {binding.source}, not defined here"
        else:
            what = f"bound by a {binding.kind} statement, not a class definition"
        return None, cls_name, [f"class {cls_name} is {what}"]
    cls = binding.node
    assert isinstance(cls, ast.ClassDef)
    for node in _flat_body(cls.body):
        if isinstance(node, FuncDef) and node.name == method:
            return node, cls_name, []
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and any(
                isinstance(t, ast.Name) and t.id == method
                for t in (node.targets if isinstance(node, ast.Assign) else [node.target])):
            return None, cls_name, [f"{cls_name}.{method} is assigned, not defined by def"]
    notes: list[str] = []
    for base in cls.bases:
        if isinstance(base, ast.Name) and base.id not in _seen and base.id != cls_name:
            found, owner, sub = find_method(rel, module, base.id, method, _seen | {cls_name})
            if found is not None:
                return found, owner, []
            notes.extend(sub)
        else:
            notes.append(f"base {ast.unparse(base)} of {cls_name} not followed")
    notes.append(f"{cls_name} defines no {method}")
    return None, cls_name, notes


def check_signature(func: ast.AST, leading: tuple[str, ...]) -> list[str]:
    """Problems with ``func``'s parameters: its first positional names must be ``leading``,
    and every later parameter must have a default or be ``*args``/``**kwargs``."""
    assert isinstance(func, FuncDef)
    a = func.args
    positional = [*a.posonlyargs, *a.args]
    names = [p.arg for p in positional]
    shown = f"def {func.name}({ast.unparse(a)})"
    if tuple(names[: len(leading)]) != tuple(leading):
        return [f"leading parameters are {tuple(names[:len(leading)])}, the table says "
                f"{tuple(leading)}: {shown}"]
    problems = []
    first_default = len(positional) - len(a.defaults)
    for index in range(len(leading), len(positional)):
        if index < first_default:
            problems.append(f"parameter {positional[index].arg!r} after the leading ones has no "
                            f"default: {shown}")
    for param, default in zip(a.kwonlyargs, a.kw_defaults):
        if default is None:
            problems.append(f"keyword-only parameter {param.arg!r} has no default: {shown}")
    return problems


@dataclass(frozen=True)
class FromImport:
    """``from source import name`` found in ``importer``.

    scope: "module", the dotted name of the enclosing function or class, or "lazy" for an
    entry of a module's lazy-import table.
    """

    importer: str
    source: str
    name: str
    scope: str
    line: int

    def __str__(self) -> str:
        where = "module level" if self.scope == "module" else (
            "lazy __getattr__ table" if self.scope == "lazy" else f"inside {self.scope}")
        return (f"{self.importer}:{self.line} ({where}): from {self.source} import "
                f"{self.name}")


def from_imports(rel: Release, names: set[str]) -> tuple[list[FromImport], list[str]]:
    """Every ``from M import NAME`` of one of ``names`` in the release's modules, at module
    level or nested in functions and classes, plus lazy-import table entries.

    Only modules whose text mentions one of the names are parsed (an import must spell the
    name out). Returns (imports, modules that mention a name but do not parse here).
    """
    found: list[FromImport] = []
    unparsable: list[str] = []

    def visit(module: str, node: ast.AST, scope: list[str]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ImportFrom):
                src = absolute_import(module, rel.is_package(module), child)
                for alias in child.names:
                    if alias.name in names:
                        found.append(FromImport(module, src or "." * child.level,
                                                alias.name, ".".join(scope) or "module",
                                                child.lineno))
            elif isinstance(child, (*FuncDef, ast.ClassDef)):
                visit(module, child, [*scope, child.name])
            elif isinstance(child, _BLOCKS):  # statements hold imports, expressions don't
                visit(module, child, scope)

    for module in sorted(rel.sources):
        if not any(name in rel.sources[module] for name in names):
            continue
        try:
            tree = rel.tree(module)
        except SyntaxError as exc:
            unparsable.append(f"{module}: {exc}")
            continue
        visit(module, tree, [])
        for name, (source, line) in sorted(lazy_table(rel, module).items()):
            if name in names:
                found.append(FromImport(module, source, name, "lazy", line))
    return found, unparsable


@dataclass(frozen=True)
class Resolution:
    """Where a from-import chain ends.

    kind: "def" (a function definition at ``module``.``name``), "class", "other" (bound by
    something that is not a function definition), "missing" (the module binds no such name),
    "absent" (an ``axolotl`` module the release does not contain), "external" (a module
    outside Axolotl), "cycle", "unparsable".
    chain: the modules passed through, the import's source first.
    """

    kind: str
    module: str
    name: str
    chain: tuple[str, ...]

    @property
    def dotted(self) -> str:
        return f"{self.module}.{self.name}"

    def __str__(self) -> str:
        via = " -> ".join(f"{m}" for m in self.chain)
        return f"{self.kind} {self.dotted} (via {via})"


def resolve(rel: Release, module: str, name: str) -> Resolution:
    """Follow ``from module import name`` through module-level from-imports (and lazy-import
    tables) of the release's modules to where ``name`` is defined."""
    chain: list[str] = []
    seen: set[tuple[str, str]] = set()
    while True:
        chain.append(module)
        if (module, name) in seen:
            return Resolution("cycle", module, name, tuple(chain))
        seen.add((module, name))
        if not rel.has_module(module):
            top = module.split(".")[0]
            kind = "absent" if top == TOP_PACKAGE else "external"
            return Resolution(kind, module, name, tuple(chain))
        try:
            binding = module_binding(rel, module, name)
        except SyntaxError:
            return Resolution("unparsable", module, name, tuple(chain))
        if binding is None:
            return Resolution("missing", module, name, tuple(chain))
        if binding.kind == "import" and binding.source:
            module, name = binding.source, binding.source_name or name
            continue
        return Resolution(binding.kind, module, name, tuple(chain))


def _base_names(cls: ast.ClassDef) -> set[str]:
    """The simple names of a class's bases (``Foo`` and ``mod.Foo`` both give ``Foo``)."""
    names = set()
    for base in cls.bases:
        if isinstance(base, ast.Name):
            names.add(base.id)
        elif isinstance(base, ast.Attribute):
            names.add(base.attr)
    return names


def subclasses(rel: Release, cls_name: str) -> list[tuple[str, ast.ClassDef]]:
    """(module, class) of every class in the release deriving from ``cls_name``, matched by
    base-class name, transitively. Only modules whose text has a ``class X(... Name`` line for
    a name of the family are parsed."""
    key = ("subclasses", cls_name)
    if key in rel.memo:
        return rel.memo[key]
    family = {cls_name}
    found: dict[tuple[str, str, int], tuple[str, ast.ClassDef]] = {}
    scanned: set[tuple[str, str]] = set()
    frontier = {cls_name}
    while frontier:
        pattern = re.compile(r"class\s+\w+\s*\([^)]*\b(?:%s)\b" % "|".join(map(re.escape,
                                                                                sorted(frontier))))
        new: set[str] = set()
        for module in sorted(rel.sources):
            if not pattern.search(rel.sources[module]):
                continue
            try:
                tree = rel.tree(module)
            except SyntaxError:
                continue
            for node in ast.walk(tree):
                if (isinstance(node, ast.ClassDef) and node.name != cls_name
                        and _base_names(node) & frontier
                        and (module, node.name) not in scanned):
                    scanned.add((module, node.name))
                    found[(module, node.name, node.lineno)] = (module, node)
                    if node.name not in family:
                        family.add(node.name)
                        new.add(node.name)
        frontier = new
    result = list(found.values())
    rel.memo[key] = result
    return result


def overrides_without_super(rel: Release, cls_name: str, method: str) -> list[str]:
    """Subclasses of ``cls_name`` anywhere in the release that override ``method`` without
    calling ``super().method(...)`` (or ``super(X, self).method``): a wrapper on the base
    method never runs for them."""
    found = []
    for module, node in subclasses(rel, cls_name):
        for item in node.body:
            if isinstance(item, FuncDef) and item.name == method:
                calls_super = any(
                    isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                    and call.func.attr == method and isinstance(call.func.value, ast.Call)
                    and isinstance(call.func.value.func, ast.Name)
                    and call.func.value.func.id == "super"
                    for call in ast.walk(item))
                if not calls_super:
                    found.append(f"{module}.{node.name}.{method} (line {item.lineno})")
    return sorted(set(found))
