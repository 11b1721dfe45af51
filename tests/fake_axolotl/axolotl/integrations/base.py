import importlib


class PluginManager:
    _instance = None

    def __init__(self):
        self.plugins = {}

    @classmethod
    def get_instance(cls):
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def register(self, name):
        module_name, class_name = name.rsplit(".", 1)
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            print(f"Failed to load plugin {name}: {exc}")
            return
        self.plugins[name] = getattr(module, class_name)()

    def add_callbacks_pre_trainer(self, cfg, model):
        return []
