"""Mirrors axolotl/core/builders/base.py (0.10 and later)."""
from axolotl.core._builder_template import make_builders

TrainerBuilderBase, HFCausalTrainerBuilder = make_builders()
