"""`swanlab-autopatch doctor | runs | compare`."""
from __future__ import annotations

import argparse
import sys
from typing import Optional

from swanlab_autopatch import __version__


def doctor(_args: argparse.Namespace) -> int:
    from swanlab_autopatch import doctor as checkup

    report = checkup.examine()
    print(checkup.render(report))
    return 0 if report.ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="swanlab-autopatch",
        description="SwanLab tracking for unmodified Axolotl installs.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    doc = commands.add_parser("doctor", help="check the installation and the patch targets")
    doc.set_defaults(func=doctor)
    from swanlab_autopatch.runs import commands as runs_cli

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
