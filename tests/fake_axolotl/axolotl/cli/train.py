"""Mirrors axolotl/cli/train.py (<= 0.17): module-level `from` imports of the wrapped names."""
import sys

from axolotl.cli.config import load_cfg
from axolotl.utils.config import normalize_config, validate_config  # noqa: F401


def do_cli(config, **kwargs):
    return load_cfg(config, **kwargs)


if __name__ == "__main__":
    do_cli(sys.argv[1])
