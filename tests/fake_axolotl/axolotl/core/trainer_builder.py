"""Mirrors axolotl/core/trainer_builder.py (up to 0.9)."""
from axolotl.core._builder_template import make_builders

TrainerBuilderBase, HFCausalTrainerBuilder = make_builders()
