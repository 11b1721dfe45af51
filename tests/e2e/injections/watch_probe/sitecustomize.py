"""Probe of the watch and predictions tests: what the package's charts and tables should show,
computed in the training process by its own plain means, written to $PROBE_OUT at train end.

- at every optimizer step (before it, as the Trainer's own clipping leaves the gradients): the
  L2 norm of the gradients and of the weights of a few groups, summed in float64 from each
  parameter's .grad and value;
- at the first evaluation: the prompts of the first eval rows, decoded from the eval dataset
  (the tokens without a loss), which the predictions table must show in that order.
"""
import json
import os

import wrapt

GROUPS = {
    "layer_0": lambda name: ".layers.0." in name,
    "lora_A": lambda name: ".lora_A." in name,
    "lora_B": lambda name: ".lora_B." in name,
    "q_proj": lambda name: ".q_proj." in name and ".lora_" not in name,
    "embeddings": lambda name: "embed_tokens" in name,
}


@wrapt.when_imported("transformers.trainer")
def _inject(module):
    from transformers import TrainerCallback

    record = {"grad_norm": {}, "param_norm": {}, "prompts": None}

    class Probe(TrainerCallback):
        def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
            step = str(state.global_step + 1)
            named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
            for group, member in GROUPS.items():
                params = [p for n, p in named if member(n)]
                if not params:
                    continue
                grads = [p.grad for p in params if p.grad is not None]
                if grads:
                    total = sum(float(g.detach().double().pow(2).sum()) for g in grads)
                    record["grad_norm"].setdefault(group, {})[step] = total ** 0.5
                total = sum(float(p.detach().double().pow(2).sum()) for p in params)
                record["param_norm"].setdefault(group, {})[step] = total ** 0.5

        def on_evaluate(self, args, state, control, eval_dataloader=None,
                        processing_class=None, **kwargs):
            if record["prompts"] is not None or eval_dataloader is None:
                return
            tokenizer = getattr(processing_class, "tokenizer", processing_class)
            dataset = eval_dataloader.dataset
            prompts = []
            for i in range(min(8, len(dataset))):
                row = dataset[i]
                ids = [t for t, label in zip(row["input_ids"], row["labels"]) if label == -100
                       and t != tokenizer.pad_token_id]
                prompts.append(tokenizer.decode(ids, skip_special_tokens=True))
            record["prompts"] = prompts

        def on_train_end(self, args, state, control, **kwargs):
            with open(os.environ["PROBE_OUT"], "w") as handle:
                json.dump(record, handle)

    def init(wrapped, instance, args, kwargs):
        result = wrapped(*args, **kwargs)
        instance.add_callback(Probe())
        return result

    wrapt.wrap_function_wrapper(module, "Trainer.__init__", init)
