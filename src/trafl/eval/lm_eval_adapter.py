"""A ``trafl`` model for EleutherAI's lm-evaluation-harness, so its tasks run on dLLMs.

* generation tasks (``generate_until``): the LLaDA sampler of :mod:`trafl.sampling`, the completion
  cut at the first stop string;
* multiple-choice tasks (``loglikelihood``): log p(continuation | context) is replaced by its
  masked-diffusion lower bound, the Monte-Carlo ELBO of :func:`trafl.likelihood.elbo` over the
  continuation (context never masked), with ``num_mc`` antithetic, stratified mask draws.
  ``is_greedy`` is the mean-field check: the argmax of one forward pass with the whole
  continuation masked equals the continuation;
* ``loglikelihood_rolling``: the ELBO of the whole text with an empty context.

lm-eval is optional and imported only by :func:`register_lm_eval`. Use it from Python::

    import lm_eval
    from trafl.eval.lm_eval_adapter import register_lm_eval
    TraflLM = register_lm_eval()
    lm_eval.simple_evaluate(model=TraflLM(pretrained="GSAI-ML/LLaDA-8B-Instruct"), tasks=["arc_easy"])

or on the command line: ``python -m trafl.eval.lm_eval_adapter --model trafl --model_args
pretrained=DIR,num_mc=64 --tasks arc_easy``.

The device (:func:`resolve_device`): ``device=`` in ``--model_args`` is the user's explicit choice
and wins; otherwise the harness's ``--device`` (which lm-eval's CLI fills with ``cuda:0`` when it is
absent) is used when it is available and CPU when it names CUDA on a machine without CUDA; with
neither, CUDA when available, else CPU.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from collections.abc import Sequence
from typing import Any

import torch

from trafl.errors import ConfigError, TraflError

logger = logging.getLogger(__name__)


def elbo_loglikelihood(
    model: Any,
    context_ids: torch.Tensor,
    continuation_ids: torch.Tensor,
    *,
    num_mc: int,
    generator: torch.Generator | None = None,
) -> float:
    """Monte-Carlo ELBO of ``continuation_ids`` ``[L]`` given ``context_ids`` ``[P]`` (the one call
    into :mod:`trafl.likelihood`)::

        ELBO = E_{m ~ U{1..L}} E_{|M| = m} [ (L / m) sum_{i in M} log p(y_i | x, y with M masked) ]
    """
    from trafl.likelihood import CanvasBatch, ElboMasks, draw_elbo_masks, elbo

    ids = torch.cat([context_ids, continuation_ids]).unsqueeze(0)
    device = next(model.parameters()).device if hasattr(model, "parameters") else ids.device
    ids = ids.to(device)
    batch = CanvasBatch(input_ids=ids, attention_mask=torch.ones_like(ids), prompt_length=int(context_ids.numel()))
    antithetic = num_mc % 2 == 0
    masks = draw_elbo_masks(
        1,
        int(continuation_ids.numel()),
        num_mc,
        antithetic=antithetic,
        generator=generator,
        device=generator.device if generator is not None else None,
    )
    masks = ElboMasks(masks.masked.to(device), masks.weight_scale)  # drawn on the generator's device
    with torch.no_grad():
        return float(elbo(model, batch, masks).value[0])


def greedy_matches(model: Any, context_ids: torch.Tensor, continuation_ids: torch.Tensor) -> bool:
    """Whether one forward pass with the continuation fully masked predicts it by argmax."""
    from trafl.models.interface import get_logits, mask_token_id_of

    masked = torch.full_like(continuation_ids, mask_token_id_of(model))
    ids = torch.cat([context_ids, masked]).unsqueeze(0)
    with torch.no_grad():
        logits = get_logits(model, ids, torch.ones_like(ids))
    guess = logits[0, context_ids.numel() :].argmax(dim=-1)
    return bool((guess.cpu() == continuation_ids.cpu()).all())


def cut_at_stop(text: str, until: Sequence[str]) -> str:
    """``text`` up to the earliest occurrence of any stop string."""
    cut = len(text)
    for stop in until:
        if stop:
            pos = text.find(stop)
            if pos != -1:
                cut = min(cut, pos)
    return text[:cut]


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def resolve_device(
    model_args_device: str | None, harness_device: str | None, *, cuda_available: bool
) -> tuple[str, str]:
    """``(device, reason)`` for the model.

    * ``device=`` in ``--model_args`` is used as given; naming CUDA without CUDA is a ConfigError;
    * else the harness's ``--device``, except that one naming CUDA falls back to ``cpu`` when CUDA is
      unavailable (lm-eval's CLI passes ``cuda:0`` when the user gave no ``--device``, so an absent
      flag and an explicit one cannot be told apart);
    * else ``cuda`` when available, ``cpu`` otherwise.
    """
    if model_args_device:
        device = str(model_args_device)
        if device.startswith("cuda") and not cuda_available:
            raise ConfigError(
                f"--model_args device={device}: CUDA is not available on this machine "
                "(use device=cpu, or drop device= to choose automatically)"
            )
        return device, "model_args"
    if harness_device:
        device = str(harness_device)
        if device.startswith("cuda") and not cuda_available:
            return "cpu", f"harness --device {device} (CUDA unavailable, falling back to cpu)"
        return device, "harness --device"
    return ("cuda" if cuda_available else "cpu"), "automatic"


class TraflLMCore:
    """The adapter's logic over plain tuples, independent of lm-eval's request objects."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        num_mc: int = 32,
        steps_per_token: float = 1.0,
        block_length: int = 32,
        remasking: str = "low_confidence",
        seed: int = 0,
        max_length: int | None = None,
    ) -> None:
        if num_mc < 1:
            raise ConfigError(f"num_mc must be >= 1, got {num_mc}")
        self.model, self.tokenizer = model, tokenizer
        self.num_mc, self.steps_per_token, self.block_length = num_mc, steps_per_token, block_length
        self.remasking, self.seed = remasking, seed
        config = getattr(model, "config", None)
        self.max_length = max_length or getattr(config, "max_sequence_length", None) or 4096

    def encode(self, text: str) -> torch.Tensor:
        return torch.tensor(self.tokenizer(text, add_special_tokens=False)["input_ids"], dtype=torch.long)

    def _generator(self, *texts: str) -> torch.Generator:
        """A generator seeded by ``seed`` and the request's text, so a request's score does not depend
        on the order or the company in which the harness sends it."""
        digest = hashlib.sha256("\x00".join([str(self.seed), *texts]).encode("utf-8")).digest()
        return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))

    def loglikelihood(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[float, bool]]:
        out = []
        for context, continuation in pairs:
            ctx, cont = self.encode(context), self.encode(continuation)
            if cont.numel() == 0:
                out.append((0.0, True))
                continue
            ctx = ctx[max(0, ctx.numel() + cont.numel() - self.max_length) :]
            ll = elbo_loglikelihood(
                self.model, ctx, cont, num_mc=self.num_mc, generator=self._generator(context, continuation)
            )
            out.append((ll, greedy_matches(self.model, ctx, cont)))
        return out

    def loglikelihood_rolling(self, texts: Sequence[str]) -> list[float]:
        return [ll for ll, _ in self.loglikelihood([("", t) for t in texts])]

    def generate_until(self, items: Sequence[tuple[str, dict]]) -> list[str]:
        from trafl.models.interface import mask_token_id_of
        from trafl.sampling import SamplerSettings, decode_completions, generate

        texts = []
        for context, kwargs in items:
            until = kwargs.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            block = self.block_length
            gen_length = round_up(int(kwargs.get("max_gen_toks", 256)), block)
            steps = round_up(max(1, int(gen_length * self.steps_per_token)), gen_length // block)
            temperature = float(kwargs.get("temperature", 0.0)) if kwargs.get("do_sample", True) else 0.0
            ids = self.encode(context)[-(self.max_length - gen_length) :].unsqueeze(0)
            ids = ids.to(next(self.model.parameters()).device)
            out = generate(
                self.model,
                ids,
                torch.ones_like(ids),
                settings=SamplerSettings(
                    gen_length=gen_length,
                    steps=steps,
                    block_length=block,
                    temperature=temperature,
                    remasking=self.remasking,
                ),
                mask_token_id=mask_token_id_of(self.model),
                eos_token_id=self.tokenizer.eos_token_id,
                generator=self._generator(context),
            )
            text = decode_completions(self.tokenizer, out.completion, self.tokenizer.eos_token_id)[0]
            texts.append(cut_at_stop(text, until))
        return texts


_REGISTERED: dict[type, type] = {}  # lm-eval's LM base class -> our registered subclass


def register_lm_eval() -> type:
    """Define ``TraflLM`` (a subclass of lm-eval's ``LM``), register it as ``"trafl"`` and return it
    (once per process: lm-eval refuses a second class under the same name)."""
    try:
        from lm_eval.api.model import LM
        from lm_eval.api.registry import register_model
    except ImportError as exc:
        raise ConfigError("the lm-eval adapter needs lm-evaluation-harness: pip install lm-eval") from exc
    if LM in _REGISTERED:
        return _REGISTERED[LM]

    class TraflLM(LM):
        """lm-eval model ``trafl``: ``--model_args pretrained=DIR[,num_mc=32,block_length=32,
        steps_per_token=1.0,remasking=low_confidence,seed=0,device=cpu|cuda,dtype=bfloat16]``.

        ``device`` here is the one explicitly asked for in ``--model_args``; the harness's own
        ``--device`` arrives separately as ``harness_device`` (see :func:`resolve_device`).
        ``batch_size``/``max_batch_size`` are accepted and ignored: requests are scored one at a time.
        """

        def __init__(
            self,
            pretrained: str,
            device: str | None = None,
            dtype: str | None = None,
            trust_remote_code: bool = False,
            harness_device: str | None = None,
            **kwargs: Any,
        ) -> None:
            super().__init__()
            from trafl.models import load_pretrained

            chosen, reason = resolve_device(device, harness_device, cuda_available=torch.cuda.is_available())
            logger.info("trafl lm-eval model on %s (%s)", chosen, reason)
            model, tokenizer = load_pretrained(
                str(pretrained), device=chosen, dtype=dtype, trust_remote_code=_as_bool(trust_remote_code)
            )
            casts = {"num_mc": int, "block_length": int, "steps_per_token": float, "seed": int, "max_length": int}
            self._device = torch.device(chosen)
            self.core = TraflLMCore(
                model,
                tokenizer,
                **{k: casts.get(k, str)(v) for k, v in kwargs.items() if k not in ("batch_size", "max_batch_size")},
            )

        @classmethod
        def create_from_arg_string(cls, arg_string: str, additional_config: dict | None = None) -> TraflLM:
            from lm_eval.utils import simple_parse_args_string

            return cls.create_from_arg_obj(simple_parse_args_string(arg_string), additional_config)

        @classmethod
        def create_from_arg_obj(cls, arg_dict: dict, additional_config: dict | None = None) -> TraflLM:
            """``--model_args`` (``arg_dict``) over the harness's own settings (``additional_config``:
            ``batch_size``, ``max_batch_size``, ``device``), which lm-eval's base class would pass as
            duplicate keywords."""
            harness = {k: v for k, v in (additional_config or {}).items() if v is not None}
            harness_device = harness.pop("device", None)
            return cls(**{**harness, **arg_dict}, harness_device=harness_device)

        def loglikelihood(self, requests):
            return self.core.loglikelihood([r.args for r in requests])

        def loglikelihood_rolling(self, requests):
            return self.core.loglikelihood_rolling([r.args[0] for r in requests])

        def generate_until(self, requests):
            return self.core.generate_until([r.args for r in requests])

    _REGISTERED[LM] = register_model("trafl")(TraflLM)
    return _REGISTERED[LM]


def _as_bool(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")


def main() -> int:  # pragma: no cover - run as a subprocess by tests/test_eval_lm_eval.py
    """``python -m trafl.eval.lm_eval_adapter ARGS``: lm-eval's own command line (``lm_eval ARGS``)
    with the ``trafl`` model registered (a plain ``lm_eval`` process does not import trafl)."""
    from trafl.utils.logs import configure_cli_logging

    configure_cli_logging()
    try:
        register_lm_eval()
        from lm_eval.__main__ import cli_evaluate
    except ImportError as exc:
        raise ConfigError("this lm-eval version has no lm_eval.__main__.cli_evaluate; use simple_evaluate") from exc
    try:
        cli_evaluate()
    except TraflError as exc:
        print(f"trafl lm-eval: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    from trafl.eval.lm_eval_adapter import main as _main  # register from the importable module, not __main__

    sys.exit(_main())
