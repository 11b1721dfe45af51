class DictDefault(dict):
    """Like Axolotl's: attribute access, and a missing key reads as None."""

    def __missing__(self, key):
        return None

    def __getattr__(self, name):
        return self[name]

    def __setattr__(self, name, value):
        self[name] = value

    def to_dict(self):
        return dict(self)
