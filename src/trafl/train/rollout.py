"""Rollouts of one micro-batch: prompts -> ``G`` sampled completions each -> rewards -> a :class:`RolloutGroup`.

The sampler is the rollout policy. Row ``(i, j)`` (prompt at global position ``p + i`` of the step,
sample ``j``) draws from its own generator seeded by ``step_seed(seed, step, p + i, j)``
(:mod:`trafl.utils.seed`), so a completion depends on what is sampled, not on which process or
micro-batch samples it. The rewards are ``r = sum_k w_k r_k`` over the task's reward functions
(:func:`trafl.train.rewards.compute_rewards`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from trafl.errors import ConfigError, DataError
from trafl.objectives import RolloutGroup
from trafl.sampling.settings import SamplerSettings
from trafl.train.rewards import compute_rewards
from trafl.utils.distributed import shards_parameters
from trafl.utils.seed import step_seed

#: What :func:`encode_prompts` does with a prompt over ``max_prompt_length`` tokens
#: (``TrainConfig.prompt_truncation``): stop with an error, or keep its last tokens.
PromptTruncation = Literal["error", "left"]


def clock(device: torch.device) -> float:
    """``time.perf_counter()`` after the device's queued work is done (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def check_sharded_sampler(accelerator: Any, sampler: SamplerSettings) -> None:
    """Refuse the fast sampler (a KV cache, a threshold) when parameters are sharded (FSDP, ZeRO-3): each
    forward is then a collective, a threshold that ends one process's block early would leave the others
    waiting, and the windowed cache forward bypasses the sharding hooks of the model's root."""
    if shards_parameters(accelerator) and (sampler.cache != "none" or sampler.threshold is not None):
        raise ConfigError(
            "config fields 'rollout_cache' / 'rollout_threshold': the fast sampler is not supported when "
            "parameters are sharded (FSDP, ZeRO-3); use the exact sampler, or DDP / ZeRO-2"
        )


def resolve_reward_weights(
    weights: Sequence[float] | None, num_fns: int, task: str, defaults: Sequence[float] | None = None
) -> list[float]:
    """The config's ``reward_weights``, else the task's ``defaults``, else ``[1, 0, ..., 0]`` (correctness only)."""
    if weights is not None:
        resolved = list(weights)
    elif defaults is not None:
        resolved = list(defaults)
    else:
        resolved = [1.0] + [0.0] * (num_fns - 1)
    if len(resolved) != num_fns:
        raise ConfigError(
            f"config field 'reward_weights' has {len(resolved)} entries but task '{task}' has {num_fns} reward functions"
        )
    return resolved


def truncate_left(ids: list[int], max_length: int) -> list[int]:
    """The last ``max_length`` tokens of ``ids`` (the question's end and the chat template's
    generation prompt survive; the start is cut), as d1's and ESPO's trainers cut the left-padded
    batch: ``prompt_ids[:, -max_prompt_length:]`` (d1 837888f ``diffu-grpo/diffu_grpo_trainer.py``
    l.398-400, ESPO b5f2dac ``espo/espo_trainer.py`` l.543-545)."""
    return ids[-max_length:] if len(ids) > max_length else ids


def encode_prompts(
    rows: list[dict],
    task: Any,
    tokenizer: Any,
    max_prompt_length: int,
    device: torch.device,
    truncation: PromptTruncation = "error",
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Left-padded prompt ids and attention mask of ``rows``, each formatted by the task (chat template
    when the tokenizer has one), and how many prompts were cut. A prompt over ``max_prompt_length``
    tokens is an error, or with ``truncation="left"`` keeps its last ``max_prompt_length`` tokens."""
    chat = bool(getattr(tokenizer, "chat_template", None))
    encoded, truncated = [], 0
    for row in rows:
        text = task.format_prompt(row, tokenizer)
        ids = tokenizer(text, add_special_tokens=not chat)["input_ids"]
        if len(ids) > max_prompt_length:
            if truncation == "error":
                raise DataError(
                    f"prompt of {len(ids)} tokens exceeds max_prompt_length={max_prompt_length} "
                    f"(prompt_truncation: left keeps its last tokens): {text[:80]!r}"
                )
            ids, truncated = truncate_left(ids, max_prompt_length), truncated + 1
        encoded.append(ids)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    width = max(len(x) for x in encoded)
    ids = torch.full((len(encoded), width), pad, dtype=torch.long)
    attn = torch.zeros_like(ids)
    for i, x in enumerate(encoded):
        ids[i, width - len(x) :] = torch.tensor(x, dtype=torch.long)
        attn[i, width - len(x) :] = 1
    return ids.to(device), attn.to(device), truncated


@dataclass
class Rollout:
    """Samples and scores micro-batches of prompts. ``model`` is what the sampler calls (the unwrapped
    policy: sampling needs no gradient synchronisation); ``module`` is put in eval mode meanwhile."""

    model: Any
    module: torch.nn.Module
    tokenizer: Any
    task: Any
    reward_fns: Sequence[Callable[..., list[float]]]
    reward_weights: Sequence[float]
    sampler: SamplerSettings
    num_generations: int
    max_prompt_length: int
    nan_rewards: str
    seed: int
    device: torch.device
    prompt_truncation: PromptTruncation = "error"

    @torch.no_grad()
    def __call__(
        self, rows: list[dict], step: int, first_position: int
    ) -> tuple[RolloutGroup, dict[str, float], list[str]]:
        """Sample ``G`` completions for each row (the first at global position ``first_position`` of step
        ``step``) and score them; returns the group, the reward metrics (with ``time/rollout_s``,
        ``time/reward_s``, ``rollout/num_forward``: the sampler's forward passes per sequence,
        ``rollout/truncated_prompts``: prompts cut to ``max_prompt_length``, and ``completion_length``)
        and the decoded completions."""
        from trafl.sampling import completion_lengths, decode_completions, generate

        G, tok = self.num_generations, self.tokenizer
        t0 = clock(self.device)
        prompt_ids, prompt_mask, truncated = encode_prompts(
            rows, self.task, tok, self.max_prompt_length, self.device, self.prompt_truncation
        )
        gens = [
            torch.Generator(device=self.device).manual_seed(step_seed(self.seed, step, first_position + i, j))
            for i in range(len(rows))
            for j in range(G)
        ]
        was_training = self.module.training
        self.module.eval()
        out = generate(
            self.model,
            prompt_ids,
            prompt_mask,
            settings=self.sampler,
            num_samples=G,
            mask_token_id=self.model.mask_token_id,
            eos_token_id=tok.eos_token_id,
            generator=gens,
            fill_eos=True,
        )
        self.module.train(was_training)
        t1 = clock(self.device)
        texts = decode_completions(tok, out.completion, tok.eos_token_id)
        prompts = [row["prompt"] for row in rows for _ in range(G)]
        columns = {k: [row.get(k) for row in rows for _ in range(G)] for k in rows[0] if k != "prompt"}
        rewards, _, metrics = compute_rewards(
            self.reward_fns, self.reward_weights, prompts, texts, columns, self.nan_rewards
        )
        metrics["time/rollout_s"], metrics["time/reward_s"] = t1 - t0, clock(self.device) - t1
        metrics["rollout/num_forward"] = float(out.num_forward)
        metrics["rollout/truncated_prompts"] = float(truncated)
        group = RolloutGroup(
            input_ids=out.sequences,
            attention_mask=out.attention_mask,
            prompt_length=out.prompt_length,
            rewards=rewards.view(len(rows), G).to(self.device),
            eos_token_id=tok.eos_token_id,
            commit_step=out.commit_step,
            temperature=self.sampler.temperature,
        )
        metrics["completion_length"] = float(completion_lengths(out.completion, tok.eos_token_id).float().mean())
        return group, metrics, texts
