"""Mirrors `axolotl train` of axolotl/cli/main.py (0.12 and later; cli/utils/train.py): unknown
options go to the launcher (accelerate refuses them), `--launcher python` trains in this process
and ignores them, the accelerate launcher starts `python -m axolotl.cli.train` with the options
as `--key=value` arguments."""
import subprocess
import sys

import click

from axolotl.cli.utils import add_options_from_config_options

AXOLOTL_CONFIG_CLI_OPTIONS = (("--learning-rate",), ("--output-dir",))


@click.group()
def cli():
    """Axolotl CLI (fake)"""


@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("config")
@click.option("--launcher", type=click.Choice(["accelerate", "python"]), default="accelerate")
@click.option("--cloud", default=None)
@add_options_from_config_options(AXOLOTL_CONFIG_CLI_OPTIONS)
@click.pass_context
def train(ctx, config, launcher, cloud=None, **kwargs):
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    if launcher == "python":
        from axolotl.cli.train import do_cli

        do_cli(config, **kwargs)
        return
    if ctx.args:
        sys.exit("accelerate <command> [<args>] launch: error: unrecognized arguments: "
                 + " ".join(ctx.args))
    command = [sys.executable, "-m", "axolotl.cli.train", config]
    command += [f"--{key.replace('_', '-')}={value}" for key, value in kwargs.items()]
    subprocess.run(command, check=True)


if __name__ == "__main__":
    cli()
