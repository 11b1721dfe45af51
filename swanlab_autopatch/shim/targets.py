"""The one table of what this package wraps in Axolotl, where, and for which releases.

Every other part reads this table: the patcher applies it, ``doctor`` reports on it and the
release test checks each row against the source of every Axolotl release in the range.
The module paths per release are in docs/axolotl-facts.md.
"""
from __future__ import annotations

from collections import namedtuple

# Every Axolotl release from 0.8.0 on. Older: one warning, nothing patched
# (SWANLAB_AUTOPATCH_FORCE=1 tries anyway). Newer than the last release below: patched with the
# newest layout, each target checked as its module loads (module, attribute, parameters).
SUPPORTED_AXOLOTL = ">=0.8.0"

# The releases on the package index this version was tested with; the release test downloads
# each one, and fails when the index has a release missing here. Keep this the only list.
AXOLOTL_RELEASES = (
    "0.8.0", "0.8.1", "0.9.0", "0.9.1", "0.9.1.post1", "0.9.2", "0.10.0", "0.11.0",
    "0.12.0", "0.12.1", "0.12.2", "0.13.1", "0.13.2", "0.14.0", "0.15.0", "0.16.0",
    "0.16.1", "0.17.0", "0.18.0", "0.19.0", "0.20.0", "0.21.0",
)

# Axolotl ships its own SwanLab plugin from this release on; before it, naming the plugin in
# `plugins:` fails to load, and this package does the whole job instead.
UPSTREAM_PLUGIN_SINCE = "0.13.1"


class Target(namedtuple("Target", "key module attr wrapper versions required purpose params",
                        defaults=((),))):
    """One attribute to wrap.

    key: a short stable name (used in messages, doctor output and tests).
    module: the module that defines the attribute.
    attr: the attribute path inside that module ("func" or "Class.method").
    wrapper: the name of the wrapt wrapper function in ``swanlab_autopatch.shim.wrappers``.
    versions: the Axolotl releases (a specifier such as ">=0.10.0") where the attribute lives.
    required: without it SwanLab tracking cannot happen at all (as opposed to a lost extra).
    purpose: what is lost when the target is missing, for the warning.
    params: the leading parameters the wrapper relies on (checked against every release).

    A plain namedtuple: this module is imported whenever Axolotl is, and a dataclass or a
    typing.NamedTuple (which compiles each annotation) costs milliseconds more to define.
    """

    __slots__ = ()

    @property
    def dotted(self) -> str:
        return f"{self.module}.{self.attr}"


_BUILDER_OLD = "axolotl.core.trainer_builder"  # up to 0.9.x
_BUILDER_NEW = "axolotl.core.builders.base"  # 0.10.0 and later
_NO_CLI_OPTIONS = ("`axolotl train ... --swanlab_project=x` and the other swanlab options on the "
                   "command line stop with an error: put the keys into the YAML")

TARGETS: tuple[Target, ...] = (
    Target("validate_config", "axolotl.utils.config", "validate_config",
           "around_validate_config", ">=0.8.0", True,
           "swanlab_* keys are dropped by Axolotl's schema", ("cfg",)),
    Target("normalize_config", "axolotl.utils.config", "normalize_config",
           "around_normalize_config", ">=0.8.0", False,
           "configs that skip validate_config (Ray workers) are not checked", ("cfg",)),
    Target("load_cfg", "axolotl.cli.config", "load_cfg",
           "around_load_cfg", ">=0.8.0", False,
           "the configuration messages (auto-enable, warnings, distributed info) are not shown",
           ("config",)),
    Target("prepare_plugins", "axolotl.cli.config", "prepare_plugins",
           "around_prepare_plugins", f">=0.8.0,<{UPSTREAM_PLUGIN_SINCE}", False,
           "a `plugins:` entry naming Axolotl's SwanLab plugin is not removed before loading",
           ("cfg",)),
    Target("get_callbacks", _BUILDER_NEW, "TrainerBuilderBase.get_callbacks",
           "around_get_callbacks", ">=0.10.0", True,
           "the SwanLab callback is not added to the Trainer", ("self",)),
    Target("get_callbacks", _BUILDER_OLD, "TrainerBuilderBase.get_callbacks",
           "around_get_callbacks", ">=0.8.0,<0.10.0", True,
           "the SwanLab callback is not added to the Trainer", ("self",)),
    Target("post_trainer_create", _BUILDER_NEW, "TrainerBuilderBase.get_post_trainer_create_callbacks",
           "around_post_trainer_create", ">=0.10.0", False,
           "duplicate SwanLab callbacks from report_to are not removed and crashes are not marked",
           ("self", "trainer")),
    Target("post_trainer_create", _BUILDER_OLD, "TrainerBuilderBase.get_post_trainer_create_callbacks",
           "around_post_trainer_create", ">=0.8.0,<0.10.0", False,
           "duplicate SwanLab callbacks from report_to are not removed and crashes are not marked",
           ("self", "trainer")),
    # After train() returns, Axolotl has saved the final model: swanlab_log_model: end.
    Target("train", "axolotl.train", "train", "around_train", ">=0.8.0", False,
           "swanlab_log_model: end stores the final model at process exit instead",
           ("cfg", "dataset_meta")),
    # The options of `axolotl train` and the other config commands, built from Axolotl's
    # schema when axolotl.cli.main is imported: the swanlab keys join them (config/command_line.py).
    Target("cli_options", "axolotl.cli.utils", "add_options_from_config",
           "around_config_options", ">=0.8.0,<0.12.0", False, _NO_CLI_OPTIONS,
           ("config_class",)),
    Target("cli_options", "axolotl.cli.utils.args", "add_options_from_config",
           "around_config_options", ">=0.12.0", False, _NO_CLI_OPTIONS, ("config_class",)),
    # 0.18+: the commands take options precomputed from the schema (AXOLOTL_CONFIG_CLI_OPTIONS).
    Target("cli_precomputed_options", "axolotl.cli.utils.args", "add_options_from_config_options",
           "around_config_options", ">=0.18.0", False, _NO_CLI_OPTIONS, ("options",)),
    # generate_samples (0.15+): the samples Axolotl prints and hands to W&B.
    Target("log_samples", "axolotl.utils.callbacks.generation", "SFTGenerationCallback._log_samples",
           "around_log_samples", ">=0.15.0", False,
           "the samples of generate_samples are not logged to SwanLab",
           ("self", "samples", "step")),
)


def tested(version: str | None) -> bool:
    """False for an Axolotl newer than every release this package was checked against."""
    from swanlab_autopatch.versions import release

    return version is None or release(version) <= release(AXOLOTL_RELEASES[-1])


def targets_for(version: str | None) -> list[Target]:
    """The rows that apply to an Axolotl version (all rows of the newest layout when unknown)."""
    from swanlab_autopatch.versions import version_in

    if version is None:
        return [t for t in TARGETS if version_in("99.0.0", t.versions)]
    return [t for t in TARGETS if version_in(version, t.versions)]


def modules_of(targets: list[Target]) -> list[str]:
    """The distinct modules of some targets, in table order."""
    return list(dict.fromkeys(t.module for t in targets))
