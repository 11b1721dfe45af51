"""`swanlab-autopatch doctor | runs | compare`."""
from __future__ import annotations

import argparse
import importlib.util
import os
import site
import sys
from pathlib import Path
from typing import Optional

from swanlab_autopatch import __version__


def _startup_files() -> list[Path]:
    """The installed start-up files on this interpreter's site-packages folders."""
    folders = list(site.getsitepackages()) + [site.getusersitepackages()]
    found = []
    for folder in dict.fromkeys(folders):
        for name in ("swanlab_autopatch.pth", "swanlab_autopatch.start"):
            path = Path(folder) / name
            if path.is_file():
                found.append(path)
    return found


def _check_target(target) -> tuple[str, str]:
    """(state, detail) of one target in the installed Axolotl, reading source, not importing."""
    import ast

    spec = None
    try:
        spec = importlib.util.find_spec(target.module)
    except Exception as exc:
        return "missing", f"module not importable ({type(exc).__name__})"
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return "missing", "module not found"
    try:
        tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    except (OSError, SyntaxError) as exc:
        return "unknown", f"cannot read source ({type(exc).__name__})"
    scope: list[ast.AST] = list(tree.body)
    for part in target.attr.split("."):
        match = next((n for n in scope if isinstance(n, (ast.FunctionDef, ast.ClassDef,
                                                         ast.AsyncFunctionDef))
                      and n.name == part), None)
        if match is None:
            return "missing", f"{part} not defined in {spec.origin}"
        scope = list(getattr(match, "body", []))
    return "found", spec.origin


def doctor(_args: argparse.Namespace) -> int:
    from swanlab_autopatch import _startup, credentials, targets
    from swanlab_autopatch.errors import SwanLabConfigError
    from swanlab_autopatch.settings import parse
    from swanlab_autopatch.versions import module_available, version_in, versions_report

    problems: list[str] = []
    print(f"swanlab-autopatch {__version__} on Python {sys.version.split()[0]} ({sys.executable})")

    files = _startup_files()
    print("\nStart-up hook")
    for path in files:
        print(f"  installed: {path}")
    if not any(p.suffix == ".pth" for p in files):
        problems.append("the start-up file swanlab_autopatch.pth is not in site-packages "
                        "(reinstall, or use sitecustomize_example/)")
        print("  installed: NO swanlab_autopatch.pth in site-packages")
    if _startup.disabled_by_env():
        print(f"  switch: SWANLAB_AUTOPATCH={os.environ.get('SWANLAB_AUTOPATCH')} -> disabled")
        problems.append("SWANLAB_AUTOPATCH turns the package off in this environment")
    else:
        print(f"  switch: enabled; armed in this interpreter: {_startup.is_armed()}")

    print("\nVersions")
    report = versions_report()
    for name, version in report.items():
        print(f"  {name:18} {version or 'not installed'}")
    for needed in ("swanlab", "wrapt"):
        if not report.get(needed):
            problems.append(f"{needed} is not installed")

    axolotl = report.get("axolotl")
    print(f"\nAxolotl patch targets (supported releases: {targets.SUPPORTED_AXOLOTL})")
    if not axolotl:
        print("  Axolotl is not installed: nothing to patch.")
        problems.append("Axolotl is not installed")
    else:
        if not version_in(axolotl, targets.SUPPORTED_AXOLOTL):
            problems.append(f"Axolotl {axolotl} is outside the supported range")
        print("  (checked by reading Axolotl's source; parent packages are imported to find it)")
        for target in targets.targets_for(axolotl):
            state, detail = _check_target(target)
            need = "required" if target.required else "optional"
            print(f"  {state:8} {target.dotted} [{need}]")
            if state != "found":
                print(f"           {detail}")
                if target.required:
                    problems.append(f"required target {target.dotted} is {state}")

    print("\nSwanLab")
    try:
        result = parse({"use_swanlab": True, "swanlab_project": "doctor-check"})
        settings = result.settings
        key, source = credentials.find_api_key(settings)
        print(f"  API key: {'found in ' + source if key else 'none (env, config or saved login)'}")
        mode = settings.swanlab_mode
        effective = mode if (mode != "cloud" or key) else "offline (cloud without a key)"
        origin = f" from {result.from_env['swanlab_mode']}" if "swanlab_mode" in result.from_env \
            else " (default; a config's swanlab_mode wins)"
        print(f"  mode: {mode}{origin}; effective without a config: {effective}")
        host = credentials.normalize_host(settings.swanlab_api_host) or credentials.DEFAULT_API_HOST
        print(f"  API host: {host}")
    except SwanLabConfigError as exc:
        print(f"  environment problem: {exc}")
        problems.append(str(exc))
    if module_available("swanboard"):
        print("  dashboard (swanboard): installed, `swanlab watch` works for local runs")
    else:
        print("  dashboard (swanboard): not installed; pip install 'swanlab-autopatch[dashboard]'")

    print()
    if problems:
        print("Problems:")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    print("Everything needed is in place.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="swanlab-autopatch",
        description="SwanLab tracking for unmodified Axolotl installs.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    doc = commands.add_parser("doctor", help="check the installation and the patch targets")
    doc.set_defaults(func=doctor)
    from swanlab_autopatch import runs_cli

    runs_cli.add_commands(commands)
    return parser


class _Masked:
    """A text stream that masks secrets (redact.mask) in everything a command prints."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        from swanlab_autopatch.redact import mask

        return self._stream.write(mask(text) if text.strip() else text)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Masked(out), _Masked(err)
    try:
        return int(args.func(args) or 0)
    finally:
        sys.stdout, sys.stderr = out, err


if __name__ == "__main__":
    sys.exit(main())
