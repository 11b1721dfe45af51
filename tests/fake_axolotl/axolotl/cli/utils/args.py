"""Mirrors axolotl/cli/utils/args.py: the decorators that give a click command one option per
config key (0.8 to 0.17 from the schema class, 0.18+ from precomputed option names)."""


def add_options_from_config(config_class):
    import click

    def decorator(function):
        for name in reversed(list(config_class)):
            function = click.option(f"--{name.replace('_', '-')}", default=None)(function)
        return function

    return decorator


def add_options_from_config_options(options):
    import click

    def decorator(function):
        for param_decls in reversed(options):
            function = click.option(*param_decls, default=None)(function)
        return function

    return decorator
