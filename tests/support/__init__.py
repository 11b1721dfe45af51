"""Helpers shared by the test lanes (no Axolotl needed to import them)."""
