"""Reading local run folders, and the `runs` / `compare` commands built on it (they never touch
the shim)."""
