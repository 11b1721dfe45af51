"""The one exception this package raises on purpose (kept apart from config/settings.py so the
wrappers can name it without importing pydantic when Axolotl is imported)."""


class SwanLabConfigError(ValueError):
    """A ``swanlab_*`` value the user must fix. The message is one line naming the key."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key
