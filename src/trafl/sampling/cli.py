"""``trafl sample``: sample completions from a dLLM with the LLaDA sampler.

    trafl sample --model DIR_OR_HUB_ID --prompt "2+2=" --prompt "3+5=" --n 4 \\
        --gen-length 128 --steps 128 --block-length 32 --temperature 0.6 [--json]

Each prompt goes through the tokenizer's chat template when it has one (``--no-chat-template``
turns that off). Row ``(i, j)`` (prompt ``i``, sample ``j``) draws its noise from its own generator
seeded by ``(--seed, i, j)``, so a sample does not depend on ``--batch-size`` or on the other
prompts. Prints the completions decoded up to the first EOS, or with ``--json`` a JSON list of
``{prompt_index, prompt, sample, text, token_ids, commit_steps}``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import torch

from trafl.errors import ConfigError
from trafl.sampling.eos import decode_completions, eos_set
from trafl.sampling.generate import generate
from trafl.sampling.noise import row_generators
from trafl.sampling.remasking import REMASKING

DTYPES = {"auto": None, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="Model directory or Hugging Face hub id.")
    parser.add_argument("--prompt", action="append", required=True, help="A prompt (repeat for several).")
    parser.add_argument("--n", type=int, default=1, help="Samples per prompt.")
    parser.add_argument("--gen-length", type=int, default=128, help="Completion canvas length L.")
    parser.add_argument("--steps", type=int, default=128, help="Denoising steps in total (<= L, a multiple of L / block length).")
    parser.add_argument("--block-length", type=int, default=32, help="Semi-autoregressive block length (divides L).")
    parser.add_argument("--temperature", type=float, default=0.0, help="Sampling temperature (0 = greedy).")
    parser.add_argument("--remasking", choices=REMASKING, default="low_confidence", help="Which proposals each step commits.")
    parser.add_argument("--cache", choices=("none", "prefix", "dual"), default="none",
                        help="Opt-in block KV cache (approximate, faster; see docs/performance.md).")
    parser.add_argument("--threshold", type=float, default=None,
                        help="Opt-in parallel decoding: also commit every masked position with confidence above this.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the per-(prompt, sample) generators.")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu).")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="auto", help="Model dtype (auto: as stored).")
    parser.add_argument("--batch-size", type=int, default=0, help="Prompts per forward batch (0: all at once).")
    parser.add_argument("--no-chat-template", action="store_true", help="Use the prompt text as is.")
    parser.add_argument("--trust-remote-code", action="store_true", help="Allow checkpoint code (Dream).")
    parser.add_argument("--json", action="store_true", help="Print a JSON list instead of plain text.")


def format_prompt(tokenizer: Any, text: str, use_chat_template: bool = True) -> tuple[str, bool]:
    """The prompt as fed to the model, and whether the chat template was applied."""
    if use_chat_template and getattr(tokenizer, "chat_template", None):
        messages = [{"role": "user", "content": text}]
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False), True
    return text, False


def encode_prompts(tokenizer: Any, prompts: list[str], use_chat_template: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ``[B, P]`` ids and attention mask. A chat template carries its own special
    tokens, so the tokenizer adds none then."""
    encoded = []
    for text in prompts:
        formatted, chat = format_prompt(tokenizer, text, use_chat_template)
        encoded.append(list(tokenizer(formatted, add_special_tokens=not chat)["input_ids"]))
    pad = next((t for t in (tokenizer.pad_token_id, tokenizer.eos_token_id) if t is not None), 0)
    width = max(len(ids) for ids in encoded)
    input_ids = torch.full((len(encoded), width), pad, dtype=torch.long)
    attention_mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for i, ids in enumerate(encoded):
        if ids:
            input_ids[i, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention_mask[i, width - len(ids) :] = 1
    return input_ids, attention_mask


def run(args: argparse.Namespace) -> int:
    from trafl.models import load_pretrained

    if args.n < 1:
        raise ConfigError(f"--n must be >= 1, got {args.n}")
    if args.batch_size < 0:
        raise ConfigError(f"--batch-size must be >= 0, got {args.batch_size}")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model, tokenizer = load_pretrained(args.model, device=device, dtype=DTYPES[args.dtype],
                                       trust_remote_code=args.trust_remote_code)
    if tokenizer is None:
        raise ConfigError(f"--model {args.model}: no tokenizer found next to the model")
    model.eval()
    eos = sorted(set(eos_set(tokenizer.eos_token_id)) | set(eos_set(getattr(model.config, "eos_token_id", None))))

    prompts: list[str] = args.prompt
    chunk = args.batch_size or len(prompts)
    records = []
    for start in range(0, len(prompts), chunk):
        batch = prompts[start : start + chunk]
        input_ids, attention_mask = encode_prompts(tokenizer, batch, not args.no_chat_template)
        out = generate(
            model, input_ids.to(device), attention_mask.to(device),
            gen_length=args.gen_length, steps=args.steps, block_length=args.block_length,
            temperature=args.temperature, remasking=args.remasking, num_samples=args.n,
            eos_token_id=eos or None, generator=row_generators(args.seed, len(batch), args.n, device, first_prompt=start),
            cache=args.cache, threshold=args.threshold,
        )
        texts = decode_completions(tokenizer, out.completion.cpu(), eos or None)
        for r, text in enumerate(texts):
            records.append({
                "prompt_index": start + r // args.n,
                "prompt": batch[r // args.n],
                "sample": r % args.n,
                "text": text,
                "token_ids": out.completion[r].tolist(),
                "commit_steps": out.commit_step[r].tolist(),
            })

    if args.json:
        print(json.dumps(records, ensure_ascii=False))
    elif len(records) == 1:
        print(records[0]["text"])
    else:
        for rec in records:
            print(f"=== prompt {rec['prompt_index']} sample {rec['sample']} ===")
            print(rec["text"])
    return 0

