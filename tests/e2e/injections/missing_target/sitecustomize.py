"""Fault injection: a changed Axolotl layout. The table now points get_callbacks at a name
this Axolotl does not have, as if Axolotl had renamed the method."""
from swanlab_autopatch.shim import targets

targets.TARGETS = tuple(
    t._replace(attr="TrainerBuilderBase.get_callbacks_renamed")
    if t.key == "get_callbacks" else t
    for t in targets.TARGETS
)
