"""Installed versions of Axolotl and friends, read from package metadata without importing them."""
from __future__ import annotations


def installed(dist: str) -> str | None:
    """The installed version of a distribution, or None when it is not installed."""
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None
    except Exception:  # broken metadata must not break the caller
        return None


def version_in(version: str, specifier: str) -> bool:
    """True when ``version`` satisfies a PEP 440 specifier such as ``">=0.8.0,<0.22"``."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    # Pre-releases of a supported series (0.13.0.dev0) count as that series.
    return SpecifierSet(specifier, prereleases=True).contains(Version(version))


def axolotl_version() -> str | None:
    return installed("axolotl")


def versions_report() -> dict[str, str | None]:
    """The versions worth knowing when something goes wrong (logged into each run, too)."""
    from swanlab_autopatch import __version__

    report = {"swanlab_autopatch": __version__}
    for dist in ("axolotl", "transformers", "torch", "swanlab", "wrapt", "trl", "peft",
                 "accelerate"):
        report[dist] = installed(dist)
    return report
