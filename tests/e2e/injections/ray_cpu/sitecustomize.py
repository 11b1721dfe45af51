"""TEST-ONLY adjustment, not part of the package: Axolotl hard-codes
`ScalingConfig(use_gpu=True)` for Ray Train, so on a machine without a GPU the workers wait
forever for one. Here `use_gpu` follows `resources_per_worker` (no GPU asked: no GPU used).
A config that asks for a GPU is left as it is."""
import wrapt


def _follow_resources(wrapped, instance, args, kwargs):
    asked = instance.resources_per_worker
    if instance.use_gpu is True and isinstance(asked, dict) and not asked.get("GPU"):
        instance.use_gpu = False
    return wrapped(*args, **kwargs)


wrapt.when_imported("ray.train")(
    lambda module: wrapt.wrap_function_wrapper(module, "ScalingConfig.__post_init__",
                                               _follow_resources))
