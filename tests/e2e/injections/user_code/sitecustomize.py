"""The user's own code logs to SwanLab during training (a custom metric every step)."""
import wrapt


@wrapt.when_imported("transformers.trainer")
def _inject(module):
    def training_step(wrapped, instance, args, kwargs):
        result = wrapped(*args, **kwargs)
        import swanlab

        swanlab.log({"custom/user_metric": float(instance.state.global_step + 1)},
                    step=instance.state.global_step + 1)
        return result

    wrapt.wrap_function_wrapper(module, "Trainer.training_step", training_step)
