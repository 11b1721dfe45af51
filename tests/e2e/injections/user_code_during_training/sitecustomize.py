"""The user's own code uses SwanLab during a training whose run this package started (in its
helper process): a custom metric every step through ``swanlab.log``, a config value and a text
through ``swanlab.get_run()``, and what the run says about itself written to a file."""
import json
import os

import wrapt


@wrapt.when_imported("transformers.trainer")
def _inject(module):
    def training_step(wrapped, instance, args, kwargs):
        result = wrapped(*args, **kwargs)
        import swanlab

        step = instance.state.global_step + 1
        swanlab.log({"custom/user_metric": float(step)}, step=step)
        if step == 3:
            run = swanlab.get_run()
            run.config["user_note"] = "set during training"
            run.log({"custom/from_get_run": 3.0}, step=3)
            with open(os.environ["USER_CODE_REPORT"], "w", encoding="utf-8") as fh:
                json.dump({"has_run": swanlab.has_run(), "id": run.id,
                           "dir": str(run.dir) if run.dir else None}, fh)
        return result

    wrapt.wrap_function_wrapper(module, "Trainer.training_step", training_step)
