"""A fake Axolotl for fast tests of the patching mechanism. It mirrors the real module paths
and the `from ... import` aliases that matter (see docs/axolotl-facts.md),
and does just enough config handling to show what happens to unknown keys. Never the only
proof: the end-to-end suite trains real Axolotl."""
