"""``trafl sample``: sample completions from a dLLM with the LLaDA sampler.

    trafl sample --model DIR_OR_HUB_ID --prompt "2+2=" --prompt "3+5=" --n 4 \\
        --gen-length 128 --steps 128 --block-length 32 --temperature 0.6 [--json]
    trafl sample --config sample.yaml [--field value ...]

The settings are a :class:`SampleConfig` (YAML and/or flags, validated before the model loads); the
sampler's own are the shared :class:`~trafl.sampling.settings.SamplerSettings`. Each prompt goes
through the tokenizer's chat template when it has one (``--no-chat-template`` turns that off). Row
``(i, j)`` (prompt ``i``, sample ``j``) draws its noise from its own generator seeded by
``(--seed, i, j)``, so a sample does not depend on ``--batch-size`` or on the other prompts. Prints
the completions decoded up to the first EOS, or with ``--json`` a JSON list of
``{prompt_index, prompt, sample, text, token_ids, commit_steps}``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Any

import torch

from trafl.errors import ConfigError
from trafl.models.loading import DTYPES, DtypeName
from trafl.sampling.eos import decode_completions, eos_set
from trafl.sampling.generate import generate
from trafl.sampling.noise import row_generators
from trafl.sampling.settings import FIELDS as SAMPLER_FIELDS
from trafl.sampling.settings import SamplerSettings, sampler_field, split_sampler_values
from trafl.utils.config import add_config_arguments, load_config, option, overrides_from_args
from trafl.utils.devices import check_device


@dataclass
class SampleConfig:
    model: str = option("", "Model directory or Hugging Face hub id (required).")
    prompt: list[str] = option([], "The prompts (repeat --prompt for several; required).", repeat=True)
    n: int = option(1, "Samples per prompt.", min=1)
    sampler: SamplerSettings = sampler_field()
    seed: int = option(0, "Seed of the per-(prompt, sample) generators.")
    device: str | None = option(
        None, "torch device: 'cpu', 'cuda', 'cuda:1', ... (default or 'auto': cuda if available, else cpu)."
    )
    dtype: DtypeName = option("auto", "Model dtype (auto: as stored).")
    batch_size: int = option(0, "Prompts per forward batch (0: all at once).", min=0)
    chat_template: bool = option(
        True,
        "Format each prompt with the tokenizer's chat template when it has one "
        "(--no-chat-template: use the prompt text as is).",
    )
    trust_remote_code: bool = option(False, "Allow checkpoint code (Dream).")

    @classmethod
    def extra_keys(cls) -> tuple[str, ...]:
        return SAMPLER_FIELDS

    @classmethod
    def split_values(cls, values: dict[str, Any], source: str) -> dict[str, Any]:
        return split_sampler_values(values, source)

    def validate(self) -> None:
        for name in ("model", "prompt"):
            if not getattr(self, name):
                raise ConfigError(f"config field '{name}' is required (--{name})")
        check_device(self.device)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML file of SampleConfig and SamplerSettings fields (flags override it).")
    parser.add_argument("--json", action="store_true", help="Print a JSON list instead of plain text.")
    add_config_arguments(parser, SampleConfig)
    parser.add_argument(
        "--no-chat-template",
        dest="cfg__chat_template",
        action="store_const",
        const="false",
        help="Use the prompt text as is (chat_template: false).",
    )
    add_config_arguments(parser, SamplerSettings)


def format_prompt(tokenizer: Any, text: str, use_chat_template: bool = True) -> tuple[str, bool]:
    """The prompt as fed to the model, and whether the chat template was applied."""
    if use_chat_template and getattr(tokenizer, "chat_template", None):
        messages = [{"role": "user", "content": text}]
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False), True
    return text, False


def encode_prompts(
    tokenizer: Any, prompts: list[str], use_chat_template: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
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

    cfg = load_config(SampleConfig, args.config, overrides_from_args(args))
    if cfg.device is None or cfg.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(cfg.device)
    model, tokenizer = load_pretrained(
        cfg.model, device=device, dtype=DTYPES[cfg.dtype], trust_remote_code=cfg.trust_remote_code
    )
    if tokenizer is None:
        raise ConfigError(f"--model {cfg.model}: no tokenizer found next to the model")
    model.eval()
    eos = sorted(set(eos_set(tokenizer.eos_token_id)) | set(eos_set(getattr(model.config, "eos_token_id", None))))

    prompts: list[str] = cfg.prompt
    chunk = cfg.batch_size or len(prompts)
    records = []
    for start in range(0, len(prompts), chunk):
        batch = prompts[start : start + chunk]
        input_ids, attention_mask = encode_prompts(tokenizer, batch, cfg.chat_template)
        out = generate(
            model,
            input_ids.to(device),
            attention_mask.to(device),
            settings=cfg.sampler,
            num_samples=cfg.n,
            eos_token_id=eos or None,
            generator=row_generators(cfg.seed, len(batch), cfg.n, device, first_prompt=start),
        )
        texts = decode_completions(tokenizer, out.completion.cpu(), eos or None)
        for r, text in enumerate(texts):
            records.append(
                {
                    "prompt_index": start + r // cfg.n,
                    "prompt": batch[r // cfg.n],
                    "sample": r % cfg.n,
                    "text": text,
                    "token_ids": out.completion[r].tolist(),
                    "commit_steps": out.commit_step[r].tolist(),
                }
            )

    if args.json:
        print(json.dumps(records, ensure_ascii=False))
    elif len(records) == 1:
        print(records[0]["text"])
    else:
        for rec in records:
            print(f"=== prompt {rec['prompt_index']} sample {rec['sample']} ===")
            print(rec["text"])
    return 0
