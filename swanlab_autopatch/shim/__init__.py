"""What loads when Axolotl is imported: the target table, the patcher, the thin wrappers.
Nothing here imports pydantic, swanlab or transformers."""
