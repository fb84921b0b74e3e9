"""Where completions come from: a small text-generation interface and its default implementation.

The evaluator only needs :class:`TextGenerator`: ``n`` completions per prompt, with the random
noise of sample ``j`` of prompt ``i`` fixed by ``seeds[i][j]``. Seeds are derived by
:func:`sample_seed` from (problem id, sample index, temperature, length, run seed), never from a
position in a batch, so the numbers do not depend on how problems are batched or on which problems
an interrupted run had already finished.

:class:`SamplerGenerator` is the default: a dLLM from :func:`trafl.models.load_pretrained`
sampled with :func:`trafl.sampling.generate`, one ``torch.Generator`` per output row. It also
implements the optional :class:`PathGenerator` extension, ``generate_with_paths``, which returns the
sampler's per-position commit steps (the denoising path) alongside the texts; the evaluator uses it
when a generator has it (:mod:`trafl.eval.paths`) and records no path metrics otherwise.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch

from trafl.errors import ConfigError
from trafl.models.kv_cache import CacheMode
from trafl.sampling.remasking import Remasking
from trafl.sampling.settings import SamplerSettings, check_sampler


@runtime_checkable
class TextGenerator(Protocol):
    """Anything that turns prompts into ``n`` completions each.

    ``tokenizer`` (may be ``None``) is handed to :meth:`Task.format_prompt` for chat templates.
    """

    tokenizer: Any

    def generate(
        self, prompts: list[str], *, n: int, temperature: float, gen_length: int, seeds: list[list[int]]
    ) -> list[list[str]]:
        """``result[i][j]``: completion ``j`` of ``prompts[i]`` drawn with noise seed ``seeds[i][j]``."""
        ...


@dataclass
class Generations:
    """Completions with their denoising paths: ``texts[i][j]`` as from :meth:`TextGenerator.generate`,
    ``commit_steps[i][j]`` the ``L`` commit steps of that sample (``SampleOutput.commit_step`` row),
    ``content_lengths[i][j]`` its positions up to and including the first EOS (``L`` without EOS)."""

    texts: list[list[str]]
    commit_steps: list[list[list[int]]]
    content_lengths: list[list[int]]


@runtime_checkable
class PathGenerator(Protocol):
    """The optional extension of :class:`TextGenerator` for generators that know their paths."""

    def generate_with_paths(
        self, prompts: list[str], *, n: int, temperature: float, gen_length: int, seeds: list[list[int]]
    ) -> Generations: ...


def sample_seed(seed: int, problem_id: str, sample_index: int, temperature: float, gen_length: int) -> int:
    """A 63-bit seed that is a pure function of its arguments (SHA-256, stable across processes)."""
    key = f"{seed}|{problem_id}|{sample_index}|{float(temperature)!r}|{gen_length}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") >> 1


@dataclass(frozen=True)
class SamplerSweep:
    """The sampler settings an evaluation holds fixed while it sweeps completion lengths and
    temperatures; :meth:`at` gives one cell's :class:`~trafl.sampling.settings.SamplerSettings`.

    ``steps``: ``None`` (one token per step, ``steps = gen_length``), one value for every length, or a
    mapping from each length to its own. The block length is capped at the completion length.
    """

    steps: int | dict[int, int] | None = None
    block_length: int = 32
    remasking: Remasking = "low_confidence"
    cache: CacheMode = "none"
    threshold: float | None = None

    def steps_for(self, gen_length: int) -> int | None:
        if isinstance(self.steps, dict):
            if gen_length not in self.steps:
                raise ConfigError(f"steps gives no value for gen_length {gen_length} (has {sorted(self.steps)})")
            return self.steps[gen_length]
        return self.steps

    def at(self, gen_length: int, temperature: float = 0.0, names: dict[str, str] | None = None) -> SamplerSettings:
        """The validated settings of the cell ``(gen_length, temperature)``; ``names`` as in
        :func:`~trafl.sampling.settings.check_sampler`."""
        settings = SamplerSettings(
            gen_length=gen_length,
            steps=self.steps_for(gen_length),
            block_length=min(self.block_length, gen_length),
            temperature=temperature,
            remasking=self.remasking,
            cache=self.cache,
            threshold=self.threshold,
        )
        check_sampler(settings, names)
        return settings

    def describe(self, gen_length: int) -> dict:
        """What the cache meta and ``results.json`` record about the sampler at ``gen_length``."""
        return self.at(gen_length).describe()


class SamplerGenerator:
    """A dLLM sampled with :func:`trafl.sampling.generate` (``n`` samples per prompt in one call)."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        settings: SamplerSweep,
        *,
        device: str | torch.device | None = None,
    ) -> None:
        if tokenizer is None:
            raise ConfigError(
                "the model has no tokenizer; evaluation needs one to encode prompts and decode completions"
            )
        self.model = model
        self.tokenizer = tokenizer
        self.settings = settings
        self.device = torch.device(device) if device is not None else next(model.parameters()).device

    @classmethod
    def from_pretrained(
        cls,
        path: str,
        settings: SamplerSweep,
        *,
        device: str | None = None,
        dtype: str | None = None,
        trust_remote_code: bool = False,
    ) -> SamplerGenerator:
        from trafl.models import load_pretrained

        model, tokenizer = load_pretrained(path, device=device, dtype=dtype, trust_remote_code=trust_remote_code)
        return cls(model, tokenizer, settings, device=device)

    def encode(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        self.tokenizer.padding_side = "left"
        enc = self.tokenizer(list(prompts), return_tensors="pt", padding=True, add_special_tokens=False)
        return enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device)

    def generate(
        self, prompts: list[str], *, n: int, temperature: float, gen_length: int, seeds: list[list[int]]
    ) -> list[list[str]]:
        return self.generate_with_paths(prompts, n=n, temperature=temperature, gen_length=gen_length, seeds=seeds).texts

    @torch.no_grad()
    def generate_with_paths(
        self, prompts: list[str], *, n: int, temperature: float, gen_length: int, seeds: list[list[int]]
    ) -> Generations:
        from trafl.models.interface import mask_token_id_of
        from trafl.sampling import completion_lengths, decode_completions, generate

        if len(seeds) != len(prompts) or any(len(s) != n for s in seeds):
            raise ValueError("seeds must hold n seeds for every prompt")
        input_ids, attention_mask = self.encode(prompts)
        generators = [torch.Generator(device=self.device).manual_seed(s) for row in seeds for s in row]
        eos = getattr(self.tokenizer, "eos_token_id", None)
        out = generate(
            self.model,
            input_ids,
            attention_mask,
            settings=self.settings.at(gen_length, temperature),
            num_samples=n,
            mask_token_id=mask_token_id_of(self.model),
            eos_token_id=eos,
            generator=generators,
        )
        texts = decode_completions(self.tokenizer, out.completion, eos)
        steps = out.commit_step.tolist()
        # positions up to and including the first EOS: tokens before it, plus the EOS itself
        content = (completion_lengths(out.completion, eos) + 1).clamp(max=gen_length).tolist()
        per = lambda xs: [xs[i * n : (i + 1) * n] for i in range(len(prompts))]  # noqa: E731
        return Generations(texts=per(texts), commit_steps=per(steps), content_lengths=per(content))
