"""The swanlab_* keys between the YAML and the Trainer: settings, their flow through Axolotl's
config loading, the checks that warn, and where credentials come from. No SwanLab client here."""
