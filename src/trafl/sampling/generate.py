"""LLaDA's sampler: semi-autoregressive blocks of iterative unmasking.

The canvas is ``[prompt | L x MASK]`` with prompts left-padded to a common width ``P``. The ``L``
completion positions form ``L / b`` blocks of ``b`` positions, decoded left to right, each in
``s' = steps / (L / b)`` steps. At step ``j`` of a block with ``n`` masked positions at its start:

1. one forward pass gives logits ``l_i`` for every position (the mask token is never proposed);
2. every still-masked position ``i`` of the block gets a proposal ``x0_i ~ softmax(l_i / T)``
   (Gumbel-max in float64; ``argmax l_i`` at ``T = 0``) and a confidence ``c_i`` from the
   remasking rule (:mod:`trafl.sampling.remasking`);
3. the ``k_j = n // s' + [j < n mod s']`` most confident ones are committed
   (:mod:`trafl.sampling.schedule`); the rest stay masked.

Committed tokens never change and positions right of the current block are never committed, so
block ``m`` is final before block ``m + 1`` starts. The result records, for every completion
position, the global step ``m s' + j`` at which it was committed: the sampling trajectory.

This is the algorithm of ``generate.py`` in the LLaDA reference implementation (ML-GSAI/LLaDA),
batched over prompts x samples, with two deliberate differences that leave the law of a sample
unchanged whenever the model gives the mask token no probability: proposals exclude the mask token
(its logit is set to ``-inf`` before sampling and before the confidence softmax), and noise is only
drawn for the current block (positions outside it cannot be committed).

The step is split into ``_block_logits`` (the forward pass) and ``_choose_commits`` (which
positions to commit). Two opt-in speed-ups plug in there, both off by default (``cache="none"``,
``threshold=None`` is the exact sampler above):

* ``cache="prefix"`` / ``"dual"``: a block KV cache (:mod:`trafl.models.kv_cache`, Fast-dLLM): the
  first step of a block runs the full forward and records every layer's keys and values; the
  block's later steps recompute only ``[lo, T)`` (prefix) or ``[lo, hi)`` (dual) and reuse the
  recorded (then stale) keys and values elsewhere. An approximation of the sampler's law.
* ``threshold=tau``: confidence-threshold parallel decoding (Fast-dLLM): a step commits the
  scheduled ``k_j`` most confident positions *and* every other masked position of the block whose
  confidence exceeds ``tau`` (:func:`~trafl.sampling.schedule.above_threshold`); a block whose
  positions are all committed ends early, so a sample may take fewer than ``steps`` forward passes.
  With ``steps = gen_length`` (``k_j = 1``) this is exactly Fast-dLLM's rule "every position above
  the threshold, at least the most confident one".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from trafl.errors import ConfigError
from trafl.models.interface import get_logits, mask_token_id_of
from trafl.models.kv_cache import BlockKVCache, block_cache_model, cache_window
from trafl.sampling import eos as eos_utils
from trafl.sampling.noise import Generators, gumbel_argmax, uniform
from trafl.sampling.remasking import low_confidence, needs_uniforms
from trafl.sampling.schedule import above_threshold, num_transfer_tokens, select_top_k
from trafl.sampling.settings import SamplerSettings, check_sampler

NOT_COMMITTED = -1


@dataclass
class SampleOutput:
    """What :func:`generate` returns; rows are prompt-major (prompt 0's samples first).

    ``sequences``: ``[R, P + L]`` final canvases (left-padded prompt, then the completion);
    ``commit_step``: ``[R, L]`` global step (0-based) at which each completion position was committed;
    ``attention_mask``: ``[R, P + L]`` 0 on prompt padding, 1 elsewhere;
    ``prompt_length``: ``P``, the padded prompt width;
    ``num_forward``: the model forward passes made (full or windowed), ``steps`` unless a
    threshold ended blocks early.
    """

    sequences: torch.Tensor
    commit_step: torch.Tensor
    attention_mask: torch.Tensor
    prompt_length: int
    num_samples: int = 1
    steps: int = 0
    block_length: int = 0
    num_forward: int = 0

    @property
    def completion(self) -> torch.Tensor:
        """``[R, L]`` the completion part of ``sequences``."""
        return self.sequences[:, self.prompt_length :]


def context_length_of(model: Any) -> int | None:
    """The model's maximum sequence length (``config.max_sequence_length``, or
    ``config.max_position_embeddings``), or ``None`` when it declares none."""
    for owner in (model, getattr(model, "module", None)):
        config = getattr(owner, "config", None)
        for name in ("max_sequence_length", "max_position_embeddings"):
            value = getattr(config, name, None)
            if isinstance(value, int) and value > 0:
                return value
    return None


def validate(settings: SamplerSettings, *, prompt_length: int, num_samples: int, max_length: int | None) -> None:
    """Raise :class:`ConfigError` naming the offending argument when the request is not well formed:
    the sampler settings' rules (:func:`trafl.sampling.settings.check_sampler`), ``num_samples >= 1``,
    and prompt plus completion within the model's context."""
    check_sampler(settings)
    if num_samples < 1:
        raise ConfigError(f"num_samples must be >= 1, got {num_samples}")
    gen_length = settings.gen_length
    if max_length is not None and prompt_length + gen_length > max_length:
        raise ConfigError(
            f"prompt length {prompt_length} + gen_length {gen_length} = {prompt_length + gen_length} exceeds "
            f"the model's context of {max_length} tokens (config.max_sequence_length)"
        )


def _prepare_prompts(
    input_ids: torch.Tensor, attention_mask: torch.Tensor | None, num_samples: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check left padding and repeat every prompt ``num_samples`` times (prompt-major)."""
    if input_ids.dim() == 1:
        input_ids = input_ids.unsqueeze(0)
        attention_mask = None if attention_mask is None else attention_mask.reshape(1, -1)
    if input_ids.dim() != 2:
        raise ConfigError(f"input_ids must be [batch, prompt_length], got shape {tuple(input_ids.shape)}")
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    if attention_mask.shape != input_ids.shape:
        raise ConfigError(
            f"attention_mask shape {tuple(attention_mask.shape)} differs from input_ids shape {tuple(input_ids.shape)}"
        )
    attention_mask = attention_mask.to(device=input_ids.device, dtype=torch.long)
    if (attention_mask[:, 1:] < attention_mask[:, :-1]).any():
        raise ConfigError("prompts must be left-padded: each attention_mask row must be 0...0 1...1")
    return input_ids.repeat_interleave(num_samples, dim=0), attention_mask.repeat_interleave(num_samples, dim=0)


def _check_generators(generator: Generators, rows: int) -> None:
    if generator is None or isinstance(generator, torch.Generator):
        return
    if len(generator) != rows:
        raise ConfigError(
            f"generator is a list of {len(generator)} generators; expected one per output row "
            f"(batch x num_samples = {rows})"
        )


def _block_logits(
    model: Any, canvas: torch.Tensor, attention_mask: torch.Tensor, lo: int, hi: int, mask_token_id: int
) -> torch.Tensor:
    """``[R, hi - lo, V]`` float64 logits of the current block, the mask token's set to ``-inf``."""
    logits = get_logits(model, canvas, attention_mask)[:, lo:hi].to(torch.float64)
    if mask_token_id < logits.shape[-1]:
        logits[..., mask_token_id] = -torch.inf
    return logits


def _cached_block_logits(
    cached_model: Any,
    cache: BlockKVCache,
    mode: str,
    canvas: torch.Tensor,
    attention_mask: torch.Tensor,
    lo: int,
    hi: int,
    mask_token_id: int,
) -> torch.Tensor:
    """As :func:`_block_logits` with a block KV cache: records it when empty (a full forward),
    else recomputes only the window :func:`~trafl.models.kv_cache.cache_window` of ``mode``."""
    if not cache.recorded:
        logits = cached_model.forward_window(canvas, attention_mask, cache, 0, (lo, hi))
    else:
        a, b = cache_window(mode, lo, hi, canvas.shape[1])
        logits = cached_model.forward_window(canvas[:, a:b], attention_mask, cache, a, (lo, hi))
    logits = logits.to(torch.float64)
    if mask_token_id < logits.shape[-1]:
        logits[..., mask_token_id] = -torch.inf
    return logits


def _propose(
    logits: torch.Tensor, temperature: float, remasking: str, generator: Generators
) -> tuple[torch.Tensor, torch.Tensor]:
    """Proposals ``x0`` ``[R, N]`` and their confidences ``[R, N]`` for block logits ``[R, N, V]``.

    Draw order per row and step: the Gumbel uniforms ``[N, V]`` (when ``T > 0``), then the
    remasking uniforms ``[N]`` (``random`` only).
    """
    rows, n, _ = logits.shape
    u = uniform(tuple(logits.shape), generator, logits.device) if temperature > 0 else None
    proposal = gumbel_argmax(logits, temperature, u)
    if needs_uniforms(remasking):
        confidence = uniform((rows, n), generator, logits.device)
    else:
        confidence = low_confidence(logits, proposal)
    return proposal, confidence


def _choose_commits(
    confidence: torch.Tensor, masked: torch.Tensor, k: torch.Tensor, threshold: float | None = None
) -> torch.Tensor:
    """``[R, N]`` positions committed this step: the ``k_r`` most confident masked ones of each row,
    and with a ``threshold`` also every masked one whose confidence exceeds it."""
    commit = select_top_k(confidence, k, masked)
    if threshold is not None:
        commit = commit | above_threshold(confidence, masked, threshold)
    return commit


@torch.no_grad()
def generate(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    settings: SamplerSettings,
    num_samples: int = 1,
    mask_token_id: int | None = None,
    eos_token_id: int | list[int] | None = None,
    generator: Generators = None,
    fill_eos: bool = False,
) -> SampleOutput:
    """Sample ``num_samples`` completions of ``settings.gen_length`` tokens for each left-padded prompt.

    Args:
        model: a denoiser (:mod:`trafl.models.interface`).
        input_ids: ``[B, P]`` prompts, left-padded; ``attention_mask`` ``[B, P]`` marks real tokens.
        settings: the sampler (:class:`~trafl.sampling.settings.SamplerSettings`): canvas length
            ``L = gen_length``, total denoising steps, block size (``L`` a multiple of
            ``block_length``, ``steps`` a multiple of the number of blocks, ``steps <= L``),
            temperature ``T >= 0`` (proposals ``~ softmax(l / T)``, greedy at 0), the remasking
            rule, and the two opt-in speed-ups: ``cache`` ``"prefix"`` / ``"dual"`` (a block KV
            cache; needs a model with ``forward_window``, i.e. the native LLaDA model) and
            ``threshold`` ``tau`` in ``[0, 1]`` (also commit every masked position of the block with
            confidence ``> tau``). ``cache="none"``, ``threshold=None`` is the exact sampler.
        num_samples: samples per prompt; rows are prompt-major.
        mask_token_id: defaults to the model's (:func:`~trafl.models.interface.mask_token_id_of`).
        eos_token_id: EOS id (or ids), used by ``fill_eos``; defaults to ``model.config.eos_token_id``.
        generator: ``None``, one ``torch.Generator``, or one per output row (``B * num_samples``):
            then a row's sample depends only on its prompt and its generator, not on the batch.
        fill_eos: when True, every completion position after a row's first EOS is set to that EOS
            in the returned canvas (``commit_step`` still records when each position was sampled).
    """
    if mask_token_id is None:
        mask_token_id = mask_token_id_of(model)
    prompts, prompt_mask = _prepare_prompts(input_ids, attention_mask, num_samples)
    rows, prompt_length = prompts.shape
    validate(settings, prompt_length=prompt_length, num_samples=num_samples, max_length=context_length_of(model))
    gen_length, steps, block_length = settings.gen_length, settings.resolved_steps, settings.block_length
    temperature, remasking, cache, threshold = (
        settings.temperature,
        settings.remasking,
        settings.cache,
        settings.threshold,
    )
    _check_generators(generator, rows)
    device = prompts.device

    canvas = torch.cat(
        [prompts, torch.full((rows, gen_length), mask_token_id, dtype=prompts.dtype, device=device)], dim=1
    )
    attn = torch.cat([prompt_mask, torch.ones(rows, gen_length, dtype=prompt_mask.dtype, device=device)], dim=1)
    commit_step = torch.full((rows, gen_length), NOT_COMMITTED, dtype=torch.long, device=device)

    num_blocks = gen_length // block_length
    steps_per_block = steps // num_blocks
    cached_model = block_cache_model(model) if cache != "none" else None
    kv = BlockKVCache()
    num_forward = 0
    for block in range(num_blocks):
        lo = prompt_length + block * block_length
        hi = lo + block_length
        counts = num_transfer_tokens(canvas[:, lo:hi] == mask_token_id, steps_per_block)  # [R, s']
        kv.clear()
        for j in range(steps_per_block):
            tokens = canvas[:, lo:hi]
            masked = tokens == mask_token_id
            if threshold is not None and not bool(masked.any()):
                break  # the threshold committed the whole block early
            if cached_model is None:
                logits = _block_logits(model, canvas, attn, lo, hi, mask_token_id)
            else:
                logits = _cached_block_logits(cached_model, kv, cache, canvas, attn, lo, hi, mask_token_id)
            num_forward += 1
            proposal, confidence = _propose(logits, temperature, remasking, generator)
            commit = _choose_commits(confidence, masked, counts[:, j], threshold)
            canvas[:, lo:hi] = torch.where(commit, proposal, tokens)
            step = block * steps_per_block + j
            commit_step[:, lo - prompt_length : hi - prompt_length].masked_fill_(commit, step)
    kv.clear()

    if fill_eos:
        if eos_token_id is None:
            eos_token_id = getattr(getattr(model, "config", None), "eos_token_id", None)
        if eos_token_id is None:
            raise ConfigError("fill_eos=True needs eos_token_id (none given and the model config has none)")
        canvas[:, prompt_length:] = eos_utils.fill_after_eos(canvas[:, prompt_length:], eos_token_id)
    return SampleOutput(
        sequences=canvas,
        commit_step=commit_step,
        attention_mask=attn,
        prompt_length=prompt_length,
        num_samples=num_samples,
        steps=steps,
        block_length=block_length,
        num_forward=num_forward,
    )
