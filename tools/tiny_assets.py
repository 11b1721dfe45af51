#!/usr/bin/env python
"""Build a tiny model, tokenizer and datasets on this machine, for real Axolotl runs on CPU.

Nothing comes from a model hub: the tokenizer is trained here on the generated text and the
model is a randomly initialised two-layer Llama. Training on it takes well under a second per
step on one CPU core, which is what the end-to-end tests, the demo and the benchmarks need.

    python tools/tiny_assets.py OUT_DIR

writes OUT_DIR/model/ (config, weights, tokenizer with a ChatML template), and the datasets
OUT_DIR/alpaca.jsonl (instruction/input/output), OUT_DIR/chat.jsonl (messages) and
OUT_DIR/preference.jsonl (prompt/chosen/rejected, for DPO-style trainers).
Run it with the Python of the environment that will train: transformers 4.x cannot read a
tokenizer saved by transformers 5.x.
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>", "<|im_start|>", "<|im_end|>"]
CHATML = (
    "{% for m in messages %}"
    "{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
ALPACA_SCAFFOLD = [
    "Below is an instruction that describes a task, paired with an input that provides "
    "further context. Write a response that appropriately completes the request.",
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request.",
    "### Instruction:", "### Input:", "### Response:", "user", "assistant", "system",
]


def tasks(count: int, seed: int = 7) -> list[tuple[str, str, str, str]]:
    """(instruction, input, good answer, wrong answer) rows of four easy task kinds."""
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        a, b = rng.randrange(10), rng.randrange(10)
        kind = index % 4
        if kind == 0:
            rows.append(("What is the sum?", f"{a} + {b}", str(a + b), str(a + b + 1)))
        elif kind == 1:
            rows.append(("Spell the digit.", str(a), NUMBER_WORDS[a], NUMBER_WORDS[(a + 3) % 10]))
        elif kind == 2:
            word = NUMBER_WORDS[b]
            rows.append(("Say the word two times.", word, f"{word} {word}", word))
        else:
            low, high = min(a, b), max(a, b)
            counted = " ".join(str(n) for n in range(low, high + 1))
            rows.append((f"List the numbers from {low} to {high}.", "", counted, str(high)))
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def train_tokenizer(corpus: list[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.train_from_iterator(corpus, trainer=trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        unk_token="<unk>", additional_special_tokens=["<|im_start|>", "<|im_end|>"])
    tokenizer.chat_template = CHATML
    tokenizer.model_max_length = 512
    return tokenizer


def random_llama(tokenizer):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    return LlamaForCausalLM(config)


def build(out: Path, rows: int = 64, vocab_size: int = 512) -> None:
    out.mkdir(parents=True, exist_ok=True)
    data = tasks(rows)
    write_jsonl(out / "alpaca.jsonl",
                [{"instruction": i, "input": x, "output": good} for i, x, good, _ in data])
    chats = []
    prefs = []
    for instruction, given, good, bad in data:
        question = f"{instruction}\n{given}" if given else instruction
        chats.append({"messages": [{"role": "user", "content": question},
                                   {"role": "assistant", "content": good}]})
        prefs.append({"prompt": question, "chosen": good, "rejected": bad})
    write_jsonl(out / "chat.jsonl", chats)
    write_jsonl(out / "preference.jsonl", prefs)
    corpus = [text for row in data for text in row] + ALPACA_SCAFFOLD
    tokenizer = train_tokenizer(corpus, vocab_size)
    model = random_llama(tokenizer)
    tokenizer.save_pretrained(out / "model")
    model.save_pretrained(out / "model")
    params = sum(p.numel() for p in model.parameters())
    print(f"tiny assets in {out}: vocab {len(tokenizer)}, {params} parameters")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--rows", type=int, default=64)
    args = parser.parse_args()
    build(args.out, rows=args.rows)


if __name__ == "__main__":
    main()
