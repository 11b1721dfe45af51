"""Mirrors axolotl/cli/utils/__init__.py (0.12 and later): re-exports the option builders of
.args, so the `from axolotl.cli.utils import ...` of cli/main.py copies them."""
from axolotl.cli.utils.args import (  # noqa: F401
    add_options_from_config,
    add_options_from_config_options,
)
