"""Fault injection: a broken wrapt installation shadows the real one."""
raise ImportError("wrapt is broken in this environment (fault injection)")
