"""The builder classes of both layouts; each layout module gets its own copy of the classes,
so patching one layout never touches the other."""
from axolotl.integrations.base import PluginManager


def make_builders():
    class TrainerBuilderBase:
        def __init__(self, cfg, model=None, tokenizer=None):
            self.cfg = cfg
            self.model = model

        def get_callbacks(self):
            return list(PluginManager.get_instance().add_callbacks_pre_trainer(self.cfg,
                                                                              self.model))

        def get_post_trainer_create_callbacks(self, trainer):
            return []

    class HFCausalTrainerBuilder(TrainerBuilderBase):
        def get_callbacks(self):
            return super().get_callbacks() + ["causal-extra"]

    return TrainerBuilderBase, HFCausalTrainerBuilder
