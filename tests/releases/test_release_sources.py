"""Check swanlab_autopatch.shim.targets against the source of every Axolotl release it claims.

For every release in ``targets.AXOLOTL_RELEASES`` the release's archive is downloaded once
(``pip download --no-deps``, never installed or imported) into
``$SWANLAB_AUTOPATCH_CACHE/releases`` (default ``~/.cache/swanlab-autopatch/releases``) and its
``axolotl/**.py`` files are read with ``ast`` (see release_archive.py). A failed download fails
the test; nothing is skipped.

test_targets_resolve[<release>]
    For every row ``targets.targets_for(release)`` returns: the module exists (a ``.py`` file
    or a package ``__init__.py``); the attribute is *defined* there (a module-level ``def``,
    or ``Class.method`` where the method may come from a base class with a simple name defined
    in the same module; a name the module merely re-imports does not count, since the wrapper
    must sit on the defining module); the first positional parameters equal ``row.params``;
    every later parameter has a default or is ``*args``/``**kwargs`` (the wrappers call
    through with ``(*args, **kwargs)``). For ``Class.method`` rows, every subclass in the
    release (matched by base-class name, transitively) that overrides the method must call
    ``super().method(...)``, or the wrapper on the base method never runs for it (today the
    causal, RL and PPO builders all do). All problems of a release go into one message.

test_importers_covered[<release>]
    Looks at every ``from M import NAME`` in the release (module level, inside functions or
    classes, and entries of lazy-import tables behind a module ``__getattr__``, which 0.18+
    ``axolotl.cli.train`` uses) where NAME is the attribute of a *function* row of the table
    (any row, any version: validate_config, normalize_config, load_cfg, prepare_plugins). The
    import is followed through module-level from-imports (and lazy tables) of the release to
    the ``def`` it reaches. Then:

    * covered: the definition is a row that applies to this release (``M`` may be the row's
      module or any module re-exporting it: ``from axolotl.cli.config import validate_config``
      reaches ``axolotl.utils.config.validate_config``);
    * listed, not failed ("not wrapped, same name"): a definition that is no row of the table,
      e.g. ``axolotl.utils.config.prepare_plugins`` (called by ``cli.config.prepare_plugins``
      in 0.20+; a different function from the ``axolotl.cli.config`` one the table wraps) or
      ``axolotl.integrations.nebius.runner.validate_config``; and a row the table deliberately
      stops wrapping with no replacement row (``cli.config.prepare_plugins`` from
      ``UPSTREAM_PLUGIN_SINCE`` on);
    * FAILED, layout move missed: the definition is a row whose range excludes this release
      while another row with the same key applies to it (the table says the function moved,
      yet the release still defines it at the old place and imports it from there), or its
      module is a module of the table that no row applying to this release uses (a module the
      table believes is gone from this release);
    * FAILED, blind spot: an import from inside ``axolotl`` that cannot be followed to a
      function definition (module absent from the archive, name not bound, bound by something
      other than a ``def``, cycle, or a module that does not parse), because then the test
      cannot tell whether the wrapper is reached. Imports from packages outside Axolotl are
      listed only.

    The per-release list is printed (``pytest -rP`` or ``-s`` shows it) and put into the
    failure message.

test_called_functions_resolve[<release>]
    The Axolotl functions this package *calls* (not wraps), from CALLED below: defined at
    module level in the module named, with those leading parameters, in every release of
    their range. For ``log_prediction_callback_factory`` also the order in which its callback
    uses the tokenizer (``tracking/predictions.py`` reads the table's rows back from it):
    three ``tokenizer.batch_decode``, one ``tokenizer(...)``, one ``tokenizer.batch_decode``.

test_index_has_no_unlisted_release
    Asks the package index (``pip index versions axolotl --pre --ignore-requires-python``) for
    Axolotl's releases. A final release >= 0.8.0 inside ``SUPPORTED_AXOLOTL`` that is missing
    from ``AXOLOTL_RELEASES`` fails the test (add it and rerun); so does a listed release the
    index does not have. Final releases above the supported range raise a warning naming them.
    Dev and pre-releases are ignored.

test_release_list_and_table_agree
    ``AXOLOTL_RELEASES`` is sorted, unique and inside ``SUPPORTED_AXOLOTL``; every row of the
    table applies to at least one listed release; in every release each key has at most one
    row and every required key exactly one.
"""
from __future__ import annotations

import ast
import sys
import warnings
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

sys.path.insert(0, str(Path(__file__).resolve().parent))
import release_archive as ra  # noqa: E402

from swanlab_autopatch.shim import targets as table  # noqa: E402

RELEASES = list(table.AXOLOTL_RELEASES)
FUNCTION_NAMES = {t.attr for t in table.TARGETS if "." not in t.attr}
FIRST_RELEASE_CHECKED = Version("0.8.0")


class UnsupportedAxolotlRelease(UserWarning):
    """The index has an Axolotl release above SUPPORTED_AXOLOTL."""


def _release(version: str) -> ra.Release:
    try:
        return ra.release(version)
    except ra.ReleaseError as exc:
        pytest.fail(f"axolotl=={version}: {exc}", pytrace=False)


def _defined_where(rel: ra.Release, name: str) -> list[str]:
    """Modules of the release with a module-level def or class of ``name`` (for hints)."""
    hits = []
    for module in sorted(rel.sources):
        text = rel.sources[module]
        if f"def {name}(" not in text and f"class {name}" not in text:
            continue
        try:
            binding = ra.module_binding(rel, module, name)
        except SyntaxError:
            continue
        if binding is not None and binding.kind in ("def", "class"):
            hits.append(module)
    return hits


def _check_target(rel: ra.Release, target: table.Target) -> list[str]:
    where = f"{target.key}: {target.dotted} (versions {target.versions})"
    head = target.attr.split(".")[0]
    if not rel.has_module(target.module):
        elsewhere = _defined_where(rel, head)
        return [f"{where}: module {target.module} is not in the release"
                + (f"; {head} is defined in {', '.join(elsewhere)}" if elsewhere else "")]
    try:
        rel.tree(target.module)
    except SyntaxError as exc:
        return [f"{where}: {rel.files[target.module]} does not parse here: {exc}"]
    parts = target.attr.split(".")
    if len(parts) == 1:
        binding = ra.module_binding(rel, target.module, parts[0])
        if binding is None or binding.kind != "def":
            if binding is None:
                what = "is not bound at module level"
            elif binding.kind == "import" and binding.source:
                res = ra.resolve(rel, binding.source, binding.source_name or parts[0])
                what = (f"is only imported there (from {binding.source}; it resolves to "
                        f"{res}): wrap the defining module instead")
            else:
                what = f"is bound by a {binding.kind} statement, not a def"
            elsewhere = [m for m in _defined_where(rel, parts[0]) if m != target.module]
            return [f"{where}: {parts[0]} {what}"
                    + (f"; defined in {', '.join(elsewhere)}" if elsewhere else "")]
        func = binding.node
    elif len(parts) == 2:
        func, _owner, notes = ra.find_method(rel, target.module, parts[0], parts[1])
        if func is None:
            elsewhere = [m for m in _defined_where(rel, parts[0]) if m != target.module]
            return [f"{where}: {target.attr} not found ({'; '.join(notes)})"
                    + (f"; class {parts[0]} is defined in {', '.join(elsewhere)}"
                       if elsewhere else "")]
        bypass = ra.overrides_without_super(rel, parts[0], parts[1])
        if bypass:
            return [f"{where}: overridden without a super().{parts[1]}() call (the wrapper on "
                    f"the base method never runs there) in {', '.join(bypass)}"]
    else:
        return [f"{where}: attribute paths deeper than Class.method are not supported"]
    return [f"{where}: {problem}" for problem in ra.check_signature(func, target.params)]


@pytest.mark.parametrize("version", RELEASES)
def test_targets_resolve(version: str) -> None:
    rel = _release(version)
    rows = table.targets_for(version)
    assert rows, f"no row of the table applies to axolotl {version}"
    problems = [p for target in rows for p in _check_target(rel, target)]
    assert not problems, (
        f"axolotl {version} ({rel.archive.name}) disagrees with swanlab_autopatch/shim/targets.py:\n  "
        + "\n  ".join(problems))


# Axolotl functions this package calls: (module, function, leading parameters, releases, user).
CALLED = (
    ("axolotl.utils.callbacks", "log_prediction_callback_factory",
     ("trainer", "tokenizer", "logger"), ">=0.8.0", "tracking/predictions.py (eval_table_size)"),
    ("axolotl.utils.data.shared", "generate_dataset_hash_from_config",
     ("cfg", "cfg_datasets", "tokenizer_name"), ">=0.10.0",
     "tracking/data_record.py (data.prepared_hash)"),
)
TOKENIZER_USE = ["decode", "decode", "decode", "encode", "decode"]


def _tokenizer_use(func: ast.AST) -> list[str]:
    """How a function's body calls ``tokenizer``, in source order."""
    calls = sorted((n for n in ast.walk(func) if isinstance(n, ast.Call)),
                   key=lambda n: (n.lineno, n.col_offset))
    use = []
    for call in calls:
        if isinstance(call.func, ast.Name) and call.func.id == "tokenizer":
            use.append("encode")
        elif isinstance(call.func, ast.Attribute) and call.func.attr == "batch_decode" and \
                isinstance(call.func.value, ast.Name) and call.func.value.id == "tokenizer":
            use.append("decode")
    return use


@pytest.mark.parametrize("version", RELEASES)
def test_called_functions_resolve(version: str) -> None:
    rel = _release(version)
    problems = []
    for module, name, params, versions, user in CALLED:
        if Version(version) not in SpecifierSet(versions):
            continue
        binding = ra.module_binding(rel, module, name) if rel.has_module(module) else None
        if binding is None or binding.kind != "def":
            problems.append(f"{module}.{name} (used by {user}) is not defined there")
            continue
        problems += [f"{module}.{name}: {p}" for p in ra.check_signature(binding.node, params)]
        if name == "log_prediction_callback_factory" and \
                _tokenizer_use(binding.node) != TOKENIZER_USE:
            problems.append(f"{module}.{name} uses the tokenizer as {_tokenizer_use(binding.node)}"
                            f", {user} reads rows from {TOKENIZER_USE}")
    assert not problems, f"axolotl {version}:\n  " + "\n  ".join(problems)


def _classify(version: str, imp: ra.FromImport, res: ra.Resolution,
              applicable: list[table.Target]) -> tuple[str, str]:
    """("covered" | "listed" | "fail", why) for one import; see the module docstring."""
    if res.kind == "external":
        return "listed", f"defined outside Axolotl ({res})"
    if res.kind != "def":
        return "fail", (f"blind spot: cannot follow it to a function definition ({res}); "
                        f"teach release_archive.resolve the new pattern or fix the table")
    here = {(t.module, t.attr) for t in applicable}
    if (res.module, res.name) in here:
        return "covered", f"reaches {res.dotted}, wrapped for {version}"
    same_def = [t for t in table.TARGETS if (t.module, t.attr) == (res.module, res.name)]
    if same_def:
        keys = {t.key for t in same_def}
        moved_to = [t for t in applicable if t.key in keys]
        ranges = ", ".join(sorted({t.versions for t in same_def}))
        if moved_to:
            return "fail", (
                f"layout move missed: it reaches {res.dotted} (a row for {ranges}), but for "
                f"{version} the table wraps {', '.join(t.dotted for t in moved_to)}; this "
                f"release still defines and imports the old one")
        return "listed", (f"reaches {res.dotted}, which the table wraps only for {ranges} "
                          f"(deliberately not wrapped in {version})")
    table_modules = {t.module for t in table.TARGETS}
    used_here = {t.module for t in applicable}
    if res.module in table_modules and res.module not in used_here:
        ranges = ", ".join(sorted({t.versions for t in table.TARGETS
                                   if t.module == res.module}))
        return "fail", (
            f"layout move missed: it reaches {res.dotted}, in a module the table uses only for "
            f"{ranges}, yet {version} still has it and imports {res.name} from there")
    return "listed", f"not wrapped, same name: reaches {res.dotted}, which is no row of the table"


@pytest.mark.parametrize("version", RELEASES)
def test_importers_covered(version: str) -> None:
    rel = _release(version)
    applicable = table.targets_for(version)
    imports, unparsable = ra.from_imports(rel, FUNCTION_NAMES)
    lines: dict[str, list[str]] = {"fail": [], "listed": [], "covered": []}
    for module in unparsable:
        lines["fail"].append(f"{module} mentions a wrapped name but does not parse here")
    for imp in imports:
        res = ra.resolve(rel, imp.source, imp.name)
        verdict, why = _classify(version, imp, res, applicable)
        lines[verdict].append(f"{imp}: {why}")
    report = [f"axolotl {version}: {len(imports)} imports of {sorted(FUNCTION_NAMES)}"]
    for verdict in ("fail", "listed", "covered"):
        if lines[verdict]:
            report.append(f"{verdict} ({len(lines[verdict])}):")
            report.extend(f"  {line}" for line in lines[verdict])
    print("\n".join(report))
    assert not lines["fail"], "\n".join(report)


def test_index_has_no_unlisted_release() -> None:
    try:
        on_index = ra.index_versions()
    except ra.ReleaseError as exc:
        pytest.fail(str(exc), pytrace=False)
    supported = SpecifierSet(table.SUPPORTED_AXOLOTL)
    listed = {Version(v) for v in RELEASES}
    final = sorted(v for v in on_index if not (v.is_prerelease or v.is_devrelease))
    missing = [v for v in final if v >= FIRST_RELEASE_CHECKED and v in supported
               and v not in listed]
    vanished = sorted(v for v in listed if v not in set(on_index))
    newest_supported = max(listed)
    above = [v for v in final if v not in supported and v > newest_supported]
    if above:
        warnings.warn(UnsupportedAxolotlRelease(
            f"the package index has Axolotl {', '.join(map(str, above))}, above "
            f"SUPPORTED_AXOLOTL {table.SUPPORTED_AXOLOTL!r}: check the layout and widen the "
            f"range (and AXOLOTL_RELEASES) in swanlab_autopatch/shim/targets.py"))
    problems = []
    if missing:
        problems.append(
            f"Axolotl {', '.join(map(str, missing))} on the package index lies inside "
            f"SUPPORTED_AXOLOTL {table.SUPPORTED_AXOLOTL!r} but is missing from "
            f"AXOLOTL_RELEASES: add it to swanlab_autopatch/shim/targets.py and rerun "
            f"tests/releases")
    if vanished:
        problems.append(
            f"AXOLOTL_RELEASES lists {', '.join(map(str, vanished))}, which the package index "
            f"does not list (yanked or a typo?)")
    assert not problems, "\n".join(problems)


def test_release_list_and_table_agree() -> None:
    versions = [Version(v) for v in RELEASES]
    problems = []
    if versions != sorted(set(versions)):
        problems.append(f"AXOLOTL_RELEASES is not sorted and unique: {RELEASES}")
    supported = SpecifierSet(table.SUPPORTED_AXOLOTL, prereleases=True)
    outside = [v for v in RELEASES if Version(v) not in supported]
    if outside:
        problems.append(f"AXOLOTL_RELEASES has releases outside SUPPORTED_AXOLOTL: {outside}")
    for target in table.TARGETS:
        if not any(target in table.targets_for(v) for v in RELEASES):
            problems.append(f"row {target.key} {target.dotted} ({target.versions}) applies to "
                            f"no listed release")
    required = {t.key for t in table.TARGETS if t.required}
    for version in RELEASES:
        keys = [t.key for t in table.targets_for(version)]
        doubled = sorted({k for k in keys if keys.count(k) > 1})
        if doubled:
            problems.append(f"{version}: more than one row applies for {doubled}")
        absent = sorted(required - set(keys))
        if absent:
            problems.append(f"{version}: no row applies for the required {absent}")
    assert not problems, "\n".join(problems)


def test_index_has_no_untested_swanlab_minor() -> None:
    """A SwanLab client minor on the index that the fast lane does not run fails here, so the
    tested list (tools/venvs.py SWANLAB_MINORS, compat.TESTED_SWANLAB) grows within a day of a
    release. (Users get the new client at once: the dependency has no upper bound, and the
    client's internals are checked as they are used.)"""
    import sys as _sys

    _sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
    import venvs

    try:
        on_index = ra.index_versions("swanlab")
    except ra.ReleaseError as exc:
        pytest.fail(str(exc), pytrace=False)
    tested = set(venvs.SWANLAB_MINORS)
    minors = {f"{v.major}.{v.minor}" for v in on_index
              if not (v.is_prerelease or v.is_devrelease) and v >= Version("0.8")}
    untested = sorted(minors - tested, key=Version)
    assert not untested, (
        f"swanlab {', '.join(untested)} is on the package index but not in the tested clients "
        f"(tools/venvs.py SWANLAB_MINORS): add its newest patch there and its minor to "
        f"TESTED_SWANLAB in swanlab_autopatch/tracking/compat.py, then run the fast lane on it")
    newest = {m: max(v for v in on_index if f"{v.major}.{v.minor}" == m
                     and not (v.is_prerelease or v.is_devrelease)) for m in tested}
    stale = {m: str(newest[m]) for m, pin in venvs.SWANLAB_MINORS.items()
             if pin != f"swanlab=={newest[m]}"}
    assert not stale, f"the fast lane does not run the newest patch of these minors: {stale}"

