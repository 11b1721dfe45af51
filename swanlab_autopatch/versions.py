"""Installed versions of Axolotl and friends, read from package metadata without importing them."""
from __future__ import annotations

import re


def installed(dist: str) -> str | None:
    """The installed version of a distribution, or None when it is not installed."""
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None
    except Exception:  # broken metadata must not break the caller
        return None


def module_available(name: str) -> bool:
    """Whether a module can be imported, without importing it (only its parent packages).
    Any failure to look it up counts as "not available"."""
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except Exception:  # a missing parent (ModuleNotFoundError), a broken package, a bad name
        return False


def release(version: str) -> tuple[int, ...]:
    """The release numbers of a version ("0.9.1.post1" -> (0, 9, 1); "0.13.0.dev0" ->
    (0, 13, 0)). Pre-, post- and dev-release parts are ignored: they count as their series."""
    parts = []
    for piece in version.strip().lstrip("vV").split("."):
        digits = re.match(r"\d+", piece)
        if not digits:
            break
        parts.append(int(digits.group()))
        if digits.group() != piece:  # "0rc1", "1a2": the release part ends here
            break
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


_OPERATORS = {
    ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
    "<": lambda a, b: a < b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
}


def version_in(version: str, specifier: str) -> bool:
    """True when ``version`` satisfies a comma-separated specifier such as ">=0.8.0,<0.22".
    Own code rather than `packaging`: it runs when Axolotl is imported, where every
    millisecond is paid by every Axolotl process, and the table only needs these operators."""
    have = release(version)
    for clause in filter(None, (c.strip() for c in specifier.split(","))):
        match = re.fullmatch(r"(>=|<=|==|!=|>|<)\s*(\S+)", clause)
        if not match:
            raise ValueError(f"unsupported version specifier {clause!r}")
        if not _OPERATORS[match.group(1)](have, release(match.group(2))):
            return False
    return True


def axolotl_version() -> str | None:
    return _version_from_dist_info("axolotl") or installed("axolotl")


def _version_from_dist_info(dist: str) -> str | None:
    """The version in the name of the ``{dist}-{version}.dist-info`` folder next to the package
    that ``import`` finds first on sys.path (a regular install). This runs on every Axolotl
    import, where ``importlib.metadata.version`` costs 5 to 10 ms (it scans and parses the
    metadata of every distribution). None when unsure (an editable or source install, two
    folders): the caller then asks importlib.metadata."""
    import os
    import sys

    prefix = dist.lower() + "-"
    for entry in sys.path:
        folder = entry or "."
        if not os.path.isdir(os.path.join(folder, dist)):
            continue
        try:
            names = os.listdir(folder)
        except OSError:
            return None
        found = [n for n in names if n.lower().startswith(prefix) and n.endswith(".dist-info")]
        if len(found) == 1:
            return found[0][len(prefix):-len(".dist-info")] or None
        return None
    return None


def versions_report() -> dict[str, str | None]:
    """The versions worth knowing when something goes wrong (logged into each run, too)."""
    from swanlab_autopatch import __version__

    report = {"swanlab_autopatch": __version__}
    for dist in ("axolotl", "transformers", "torch", "swanlab", "wrapt", "trl", "peft",
                 "accelerate"):
        report[dist] = installed(dist)
    return report
