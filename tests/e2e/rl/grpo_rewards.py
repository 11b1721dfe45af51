"""A GRPO task small enough for the CPU: Axolotl's dataset transform (`type:
grpo_rewards.transform`) and two reward functions (`trl.reward_funcs`)."""


def transform(cfg, *args, **kwargs):
    def to_prompt(example, tokenizer=None):
        question = example["instruction"] + (" " + example["input"] if example["input"] else "")
        return {"prompt": [{"role": "user", "content": question}], "answer": example["output"]}

    return to_prompt, {"remove_columns": ["instruction", "input", "output"]}


def _text(completion):
    return completion[0]["content"] if isinstance(completion, list) else completion


def contains_answer(prompts, completions, answer, **kwargs):
    return [1.0 if expected in _text(c) else 0.0 for c, expected in zip(completions, answer)]


def brevity(prompts, completions, **kwargs):
    return [-len(_text(c)) / 50.0 for c in completions]
