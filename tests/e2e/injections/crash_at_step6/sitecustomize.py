"""Fault injection: the user's training code raises in the middle of training (step 6)."""
import wrapt


@wrapt.when_imported("transformers.trainer")
def _inject(module):
    def training_step(wrapped, instance, args, kwargs):
        if instance.state.global_step == 5:
            raise RuntimeError("injected failure at step 6")
        return wrapped(*args, **kwargs)

    wrapt.wrap_function_wrapper(module, "Trainer.training_step", training_step)
