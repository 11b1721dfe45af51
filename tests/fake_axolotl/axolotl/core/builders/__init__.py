from axolotl.core.builders.base import TrainerBuilderBase  # noqa: F401
