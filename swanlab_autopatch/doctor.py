"""`swanlab-autopatch doctor`: examine an installation (``examine`` returns a report, tested
as data) and print it (``render``). Nothing here imports Axolotl, torch or SwanLab: the patch
targets and the SwanLab internals this package uses are checked by reading their source files
(sources.py), which takes well under a second where importing them takes many."""
from __future__ import annotations

import ast
import os
import site
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

STARTUP_FILES = ("swanlab_autopatch.pth", "swanlab_autopatch.start")


@dataclass
class TargetCheck:
    dotted: str
    required: bool
    state: str  # found | missing | unknown
    detail: str = ""


@dataclass
class InternalCheck:
    key: str
    state: str  # found | missing | changed | not in this version
    dotted: str = ""  # the part missing or changed
    detail: str = ""
    lost: str = ""  # what does not work without it


@dataclass
class DoctorReport:
    version: str
    python: str
    executable: str
    startup_files: list[str] = field(default_factory=list)
    switch_value: Optional[str] = None  # SWANLAB_AUTOPATCH as set (None when unset)
    switched_off: bool = False
    armed: bool = False
    versions: dict[str, Optional[str]] = field(default_factory=dict)
    supported_range: str = ""
    axolotl_support: str = ""  # tested / newer than tested (expected to work) / not supported
    swanlab_support: str = ""
    targets: list[TargetCheck] = field(default_factory=list)
    internals: list[InternalCheck] = field(default_factory=list)
    api_key_source: Optional[str] = None  # where a key was found; never the key
    mode: Optional[str] = None
    mode_origin: str = ""
    effective_mode: Optional[str] = None
    api_host: Optional[str] = None
    environment_problem: Optional[str] = None
    dashboard: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def startup_files() -> list[Path]:
    """The installed start-up files on this interpreter's site-packages folders."""
    folders = list(site.getsitepackages()) + [site.getusersitepackages()]
    found = []
    for folder in dict.fromkeys(folders):
        for name in STARTUP_FILES:
            path = Path(folder) / name
            if path.is_file():
                found.append(path)
    return found


def check_target(target) -> TargetCheck:
    """One target in the installed Axolotl, from its source (nothing is imported)."""
    from swanlab_autopatch import sources

    need = bool(target.required)
    found = sources.find(target.module, target.attr)
    if found.file is None:
        return TargetCheck(target.dotted, need, "missing", found.detail)
    if not found.ok:
        state = "unknown" if "cannot be read" in found.detail else "missing"
        return TargetCheck(target.dotted, need, state, found.detail)
    match = found.node
    params = getattr(target, "params", ())
    if params and isinstance(match, (ast.FunctionDef, ast.AsyncFunctionDef)):
        names = [a.arg for a in match.args.posonlyargs + match.args.args]
        if names[:len(params)] != list(params):
            return TargetCheck(target.dotted, need, "changed",
                               f"parameters start with {', '.join(names) or 'nothing'}, "
                               f"not {', '.join(params)}")
    return TargetCheck(target.dotted, need, "found", str(found.file))


def check_internal(internal, version: Optional[str]) -> InternalCheck:
    """One SwanLab internal of tracking/compat.py in the installed client, from its source."""
    from swanlab_autopatch import sources
    from swanlab_autopatch.versions import release

    if release(version or "0") < internal.since:
        return InternalCheck(internal.key, "not in this version", lost=internal.lost)
    for part in internal.parts:
        found = sources.find(part.module, part.attr)
        if not found.ok:
            return InternalCheck(internal.key, "missing", part.dotted, found.detail, internal.lost)
        wrong = part.call and sources.call_problem(found.node, *part.call,
                                                   method="." in part.attr)
        if wrong:
            return InternalCheck(internal.key, "changed", part.dotted, wrong, internal.lost)
    return InternalCheck(internal.key, "found")


def _startup_part(report: DoctorReport) -> None:
    from swanlab_autopatch import _startup

    report.startup_files = [str(p) for p in startup_files()]
    if not any(p.endswith(".pth") for p in report.startup_files):
        report.problems.append("the start-up file swanlab_autopatch.pth is not in "
                               "site-packages (reinstall, or use sitecustomize_example/)")
    report.switch_value = os.environ.get("SWANLAB_AUTOPATCH")
    report.switched_off = _startup.disabled_by_env()
    report.armed = _startup.is_armed()
    if report.switched_off:
        report.problems.append("SWANLAB_AUTOPATCH turns the package off in this environment")


def _axolotl_part(report: DoctorReport) -> None:
    from swanlab_autopatch.shim import targets
    from swanlab_autopatch.versions import version_in

    report.supported_range = targets.SUPPORTED_AXOLOTL
    axolotl = report.versions.get("axolotl")
    if not axolotl:
        report.problems.append("Axolotl is not installed")
        return
    tested = f"{targets.AXOLOTL_RELEASES[0]} to {targets.AXOLOTL_RELEASES[-1]}"
    if not version_in(axolotl, targets.SUPPORTED_AXOLOTL):
        report.axolotl_support = "not supported: nothing is patched"
        report.problems.append(f"Axolotl {axolotl} is outside the supported range")
    elif targets.tested(axolotl):
        report.axolotl_support = f"supported and tested (releases {tested})"
    else:
        report.axolotl_support = (f"newer than the tested releases ({tested}): expected to work, "
                                  "each target is checked as it loads")
    for target in targets.targets_for(axolotl):
        check = check_target(target)
        report.targets.append(check)
        if check.state != "found" and check.required:
            report.problems.append(f"required target {check.dotted} is {check.state}")


def _swanlab_part(report: DoctorReport) -> None:
    from swanlab_autopatch.config import credentials
    from swanlab_autopatch.errors import SwanLabConfigError
    from swanlab_autopatch.config.settings import parse
    from swanlab_autopatch.versions import module_available

    report.dashboard = module_available("swanboard")
    report.swanlab_support = swanlab_support(report.versions.get("swanlab"))
    try:
        result = parse({"use_swanlab": True, "swanlab_project": "doctor-check"})
    except SwanLabConfigError as exc:
        report.environment_problem = str(exc)
        report.problems.append(str(exc))
        return
    settings = result.settings
    key, source = credentials.find_api_key(settings)
    report.api_key_source = source if key else None
    report.mode = settings.swanlab_mode
    report.mode_origin = (f"from {result.from_env['swanlab_mode']}"
                          if "swanlab_mode" in result.from_env
                          else "default; a config's swanlab_mode wins")
    report.effective_mode = report.mode if (report.mode != "cloud" or key) \
        else "offline (cloud without a key)"
    report.api_host = credentials.normalize_host(settings.swanlab_api_host) or \
        credentials.DEFAULT_API_HOST


def swanlab_support(version: Optional[str]) -> str:
    from swanlab_autopatch.tracking import compat

    if not version:
        return ""
    support = compat.client_support(version)
    tested = compat.tested_range()
    if support == "older":
        return f"not supported ({compat.OLDEST_SWANLAB} and later): upgrade swanlab"
    if support == "newer":
        return f"newer than the tested clients ({tested}): expected to work"
    return f"supported and tested ({tested})"


def _internals_part(report: DoctorReport) -> None:
    from swanlab_autopatch.tracking import compat

    version = report.versions.get("swanlab")
    if version:
        report.internals = [check_internal(i, version) for i in compat.INTERNALS]


def examine() -> DoctorReport:
    from swanlab_autopatch import __version__
    from swanlab_autopatch.versions import versions_report

    report = DoctorReport(version=__version__, python=sys.version.split()[0],
                          executable=sys.executable)
    _startup_part(report)
    report.versions = versions_report()
    for needed in ("swanlab", "wrapt"):
        if not report.versions.get(needed):
            report.problems.append(f"{needed} is not installed")
    _axolotl_part(report)
    _swanlab_part(report)
    _internals_part(report)
    return report


def render(report: DoctorReport) -> str:
    lines = [f"swanlab-autopatch {report.version} on Python {report.python} "
             f"({report.executable})", "", "Start-up hook"]
    lines += [f"  installed: {path}" for path in report.startup_files]
    if not any(p.endswith(".pth") for p in report.startup_files):
        lines.append("  installed: NO swanlab_autopatch.pth in site-packages")
    if report.switched_off:
        lines.append(f"  switch: SWANLAB_AUTOPATCH={report.switch_value} -> disabled")
    else:
        lines.append(f"  switch: enabled; armed in this interpreter: {report.armed}")
    lines += ["", "Versions"]
    notes = {"axolotl": report.axolotl_support, "swanlab": report.swanlab_support}
    lines += [f"  {name:18} {version or 'not installed'}"
              + (f"  ({notes[name]})" if notes.get(name) and version else "")
              for name, version in report.versions.items()]
    lines += ["", f"Axolotl patch targets (supported releases: {report.supported_range})"]
    if not report.versions.get("axolotl"):
        lines.append("  Axolotl is not installed: nothing to patch.")
    else:
        lines.append("  (checked by reading Axolotl's source; nothing is imported)")
        for check in report.targets:
            need = "required" if check.required else "optional"
            lines.append(f"  {check.state:8} {check.dotted} [{need}]")
            if check.state != "found":
                lines.append(f"           {check.detail}")
    lines += ["", "SwanLab"]
    if report.environment_problem:
        lines.append(f"  environment problem: {report.environment_problem}")
    else:
        found = f"found in {report.api_key_source}" if report.api_key_source \
            else "none (env, config or saved login)"
        lines.append(f"  API key: {found}")
        lines.append(f"  mode: {report.mode} ({report.mode_origin}); effective without a "
                     f"config: {report.effective_mode}")
        lines.append(f"  API host: {report.api_host}")
    lines += _render_internals(report)
    lines.append("  dashboard (swanboard): " + (
        "installed, `swanlab watch` works for local runs" if report.dashboard
        else "not installed; pip install 'swanlab-autopatch[dashboard]'"))
    lines.append("")
    if report.problems:
        lines.append("Problems:")
        lines += [f"  - {problem}" for problem in report.problems]
    else:
        lines.append("Everything needed is in place.")
    return "\n".join(lines)


def _render_internals(report: DoctorReport) -> list[str]:
    if not report.internals:
        return []
    gone = [c for c in report.internals if c.state in ("missing", "changed")]
    found = sum(c.state == "found" for c in report.internals)
    lines = [f"  client internals used (checked in its source): {found} found"
             + (f", {len(gone)} not found or changed" if gone else "")]
    for check in gone:
        lines.append(f"    {check.state} {check.dotted}: {check.detail}")
        lines.append(f"      so {check.lost}; tracking goes on without it")
    return lines
