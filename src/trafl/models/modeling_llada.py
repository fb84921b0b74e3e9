"""Native LLaDA-architecture denoiser: a bidirectional Llama-style transformer.

Module tree and parameter names are LLaDA's (OLMo-style), so published safetensors load as is::

    model.transformer.wte.weight                                  [embedding_size, d_model]
    model.transformer.blocks.{i}.attn_norm.weight                 [d_model]
    model.transformer.blocks.{i}.q_proj.weight                    [d_model, d_model]
    model.transformer.blocks.{i}.k_proj.weight / v_proj.weight    [n_kv_heads * head_dim, d_model]
    model.transformer.blocks.{i}.attn_out.weight                  [d_model, d_model]
    model.transformer.blocks.{i}.ff_norm.weight                   [d_model]
    model.transformer.blocks.{i}.ff_proj.weight / up_proj.weight  [mlp_hidden_size, d_model]
    model.transformer.blocks.{i}.ff_out.weight                    [d_model, mlp_hidden_size]
    model.transformer.ln_f.weight                                 [d_model]
    model.transformer.ff_out.weight                               [embedding_size, d_model]  (absent when weight_tying)

One block (pre-norm, residual):

    h   = x + attn_out( Attn( RoPE(q_proj n), RoPE(k_proj n), v_proj n ) ),   n = attn_norm(x)
    out = h + ff_out( act(ff_proj m) * up_proj m ),                            m = ff_norm(h)

with Attn full (non-causal) scaled-dot-product attention over the non-padding keys. Logits are
``ff_out(ln_f(x_L))`` (or ``wte`` transposed when ``weight_tying``) over ``embedding_size`` ids.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_layers import GradientCheckpointingLayer  # blocks transformers' checkpointing recognises
from transformers.modeling_outputs import MaskedLMOutput
from transformers.utils import ModelOutput

from trafl.errors import TraflError
from trafl.models.configuration_llada import LLaDAConfig
from trafl.models.kv_cache import BlockKVCache, KVHook
from trafl.models.layers import (
    apply_rope,
    bidirectional_attention,
    gated_mlp,
    key_padding_mask,
    rms_norm,
    rope_angles,
)
from trafl.models.target_logprobs import target_logprobs

_init: ModuleType
try:  # transformers 5: initialisers that skip tensors already loaded from a checkpoint
    from transformers import initialization as _init
except ImportError:  # pragma: no cover - transformers 4
    _init = nn.init


class SequenceTooLongError(TraflError, ValueError):
    """The input is longer than the model's ``max_sequence_length``."""


class LLaDARMSNorm(nn.Module):
    """RMSNorm with LLaDA's optional affine weight and bias (see :func:`trafl.models.layers.rms_norm`)."""

    def __init__(self, size: int, eps: float, affine: bool = True, bias: bool = False) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(size)) if affine else None
        self.bias = nn.Parameter(torch.zeros(size)) if affine and bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.bias, self.eps)


class LLaDABlock(GradientCheckpointingLayer):
    """LLaDA's ``LLaDALlamaBlock``: pre-norm bidirectional attention and a gated MLP."""

    def __init__(self, config: LLaDAConfig, layer_id: int) -> None:
        super().__init__()
        self.layer_id = layer_id
        self.n_heads = config.n_heads
        self.n_kv_heads = config.effective_n_kv_heads
        self.head_dim = config.head_dim
        self.activation = config.activation_type
        self.rope_full_precision = config.rope_full_precision
        self.attention_dropout = config.attention_dropout
        d, kv, hidden = config.d_model, config.effective_n_kv_heads * config.head_dim, config.effective_mlp_hidden_size
        norm = dict(eps=config.rms_norm_eps, affine=config.layer_norm_with_affine, bias=config.norm_bias)
        self.attn_norm = LLaDARMSNorm(d, **norm)
        self.q_proj = nn.Linear(d, d, bias=config.qkv_bias)
        self.k_proj = nn.Linear(d, kv, bias=config.qkv_bias)
        self.v_proj = nn.Linear(d, kv, bias=config.qkv_bias)
        self.attn_out = nn.Linear(d, d, bias=config.include_bias)
        self.ff_norm = LLaDARMSNorm(d, **norm)
        self.ff_proj = nn.Linear(d, hidden, bias=config.include_bias)
        self.up_proj = nn.Linear(d, hidden, bias=config.include_bias)
        self.ff_out = nn.Linear(hidden, d, bias=config.include_bias)
        self.dropout = nn.Dropout(config.residual_dropout)
        # scaled down at init (see LLaDAModelLM._init_weights); a plain attribute, which torch's stubs
        # do not allow on a Module (they type Module.__setattr__ for tensors and modules only)
        self.attn_out._is_residual = True  # type: ignore[assignment]
        self.ff_out._is_residual = True  # type: ignore[assignment]

    def _split_heads(self, x: torch.Tensor, heads: int) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, heads, self.head_dim).transpose(1, 2)

    def attention(
        self,
        n: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask: torch.Tensor | None,
        kv_hook: KVHook | None = None,
    ) -> torch.Tensor:
        """Attention of the positions of ``n``; ``kv_hook`` (block KV cache, see
        :mod:`trafl.models.kv_cache`) may record the rotated keys/values or splice them into cached ones."""
        q = apply_rope(self._split_heads(self.q_proj(n), self.n_heads), cos, sin, self.rope_full_precision)
        k = apply_rope(self._split_heads(self.k_proj(n), self.n_kv_heads), cos, sin, self.rope_full_precision)
        v = self._split_heads(self.v_proj(n), self.n_kv_heads)
        if kv_hook is not None:
            k, v = kv_hook(k, v)
        p = self.attention_dropout if self.training else 0.0
        att = bidirectional_attention(q, k, v, mask, dropout_p=p)
        b, _, t, _ = att.shape
        return self.attn_out(att.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim))

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask: torch.Tensor | None = None,
        kv_hook: KVHook | None = None,
    ) -> torch.Tensor:
        x = x + self.dropout(self.attention(self.attn_norm(x), cos, sin, mask, kv_hook))
        m = self.ff_norm(x)
        return x + self.dropout(self.ff_out(gated_mlp(self.ff_proj(m), self.up_proj(m), self.activation)))


class _TransformerModules(nn.ModuleDict):
    """``transformer.{wte, emb_drop, blocks, ln_f[, ff_out]}``, LLaDA's checkpoint layout, with each
    module's type declared (a plain ``ModuleDict`` types every attribute as ``Tensor | Module``).
    ``ff_out`` exists only without weight tying."""

    wte: nn.Embedding
    emb_drop: nn.Dropout
    blocks: nn.ModuleList
    ln_f: LLaDARMSNorm
    ff_out: nn.Linear


class LLaDAModel(nn.Module):
    """The transformer trunk; ``self.transformer`` holds LLaDA's module names (wte, blocks, ln_f, ff_out)."""

    def __init__(self, config: LLaDAConfig) -> None:
        super().__init__()
        self.config = config
        d, vocab = config.d_model, config.effective_embedding_size
        modules: dict[str, nn.Module] = {
            "wte": nn.Embedding(vocab, d),
            "emb_drop": nn.Dropout(config.embedding_dropout),
            "blocks": nn.ModuleList(LLaDABlock(config, i) for i in range(config.n_layers)),
            "ln_f": LLaDARMSNorm(d, config.rms_norm_eps, affine=config.layer_norm_with_affine, bias=config.norm_bias),
        }
        if not config.weight_tying:
            modules["ff_out"] = nn.Linear(d, vocab, bias=config.include_bias)
        self.transformer = _TransformerModules(modules)

    def forward(
        self,
        input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool = False,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
        """Logits ``[B, T, embedding_size]`` and, if asked, the ``n_layers + 1`` hidden states.

        Hidden states follow LLaDA: the input of every block, then the final ``ln_f`` output.
        """
        x, hidden = self.final_hidden(input_ids, attention_mask, inputs_embeds, output_hidden_states)
        return self._lm_head(x), hidden

    def final_hidden(
        self,
        input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool = False,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
        """The ``ln_f`` output ``[B, T, d_model]`` (what the head reads) and, if asked, every hidden state."""
        cfg = self.config
        x = self.transformer.wte(input_ids) if inputs_embeds is None else inputs_embeds
        seq_len = x.shape[1]
        if seq_len > cfg.max_sequence_length:
            raise SequenceTooLongError(
                f"input has {seq_len} tokens but the model's max_sequence_length is {cfg.max_sequence_length}"
            )
        if cfg.input_emb_norm:
            x = x * math.sqrt(cfg.d_model)
        x = self.transformer.emb_drop(x)
        angles = rope_angles(seq_len, cfg.head_dim, cfg.rope_theta, device=x.device)
        cos, sin = angles.cos(), angles.sin()
        mask = key_padding_mask(attention_mask)
        hidden: list[torch.Tensor] = []
        for block in self.transformer.blocks:
            if output_hidden_states:
                hidden.append(x)
            x = block(x, cos, sin, mask)
        x = self.transformer.ln_f(x)
        if output_hidden_states:
            hidden.append(x)
        return x, (tuple(hidden) if output_hidden_states else None)

    def _lm_head(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if cfg.weight_tying:
            logits = F.linear(x, self.transformer.wte.weight)
        else:
            logits = self.transformer.ff_out(x)
        if cfg.scale_logits:
            logits = logits / math.sqrt(cfg.d_model)
        return logits

    def forward_window(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        cache: BlockKVCache,
        start: int = 0,
        logits_range: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """Logits with a block KV cache (:mod:`trafl.models.kv_cache`), for inference.

        If ``cache`` is empty, ``input_ids`` is the whole canvas ``[B, T]`` and this full forward
        records every layer's keys and values. Otherwise ``input_ids`` ``[B, w]`` holds the window
        ``[start, start + w)`` of the canvas; only its positions are computed, attending to the
        cached keys/values outside the window. ``attention_mask`` always covers the whole canvas
        ``[B, T]``. Returns logits ``[B, e - s, V]`` for the absolute positions
        ``logits_range = (s, e)`` (default: every computed position); the head runs on those only.
        """
        cfg = self.config
        recording = not cache.recorded
        if recording and start != 0:
            raise ValueError("forward_window: an empty cache is recorded by a full forward (start=0)")
        width = input_ids.shape[1]
        total = width if recording else cache.keys[0].shape[-2]
        if start < 0 or start + width > total:
            raise ValueError(f"forward_window: window [{start}, {start + width}) outside a canvas of {total}")
        if total > cfg.max_sequence_length:
            raise SequenceTooLongError(
                f"input has {total} tokens but the model's max_sequence_length is {cfg.max_sequence_length}"
            )
        x = self.transformer.wte(input_ids)
        if cfg.input_emb_norm:
            x = x * math.sqrt(cfg.d_model)
        angles = rope_angles(total, cfg.head_dim, cfg.rope_theta, device=x.device)[start : start + width]
        cos, sin = angles.cos(), angles.sin()
        mask = key_padding_mask(attention_mask)
        for i, block in enumerate(self.transformer.blocks):
            x = block(x, cos, sin, mask, cache.hook(i, None if recording else start))
        lo, hi = logits_range if logits_range is not None else (start, start + width)
        if not start <= lo <= hi <= start + width:
            raise ValueError(f"forward_window: logits_range ({lo}, {hi}) outside the window [{start}, {start + width})")
        return self._lm_head(self.transformer.ln_f(x[:, lo - start : hi - start]))


@dataclass
class TargetLogProbOutput(ModelOutput):
    """``LLaDAModelLM(..., target_ids=y)``'s output: ``target_logprobs`` ``[B, L]`` float32."""

    target_logprobs: torch.Tensor | None = None


class LLaDAModelLM(PreTrainedModel):
    """transformers wrapper: ``model(input_ids, attention_mask)`` -> output with ``.logits`` [B, T, V].

    Registered for ``AutoModel`` / ``AutoModelForMaskedLM`` with ``model_type = "llada"`` on
    ``import trafl.models``; reads and writes LLaDA's Hugging Face checkpoint format.
    """

    config_class = LLaDAConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = ["LLaDABlock"]
    _supports_sdpa = True

    def __init__(self, config: LLaDAConfig) -> None:
        super().__init__(config)
        self.model = LLaDAModel(config)
        self.post_init()

    @property
    def mask_token_id(self) -> int | None:
        return self.config.mask_token_id

    def _init_weights(self, module: nn.Module) -> None:
        """Normal(0, init_std) weights; residual output projections scaled by 1/sqrt(2 n_layers); norms at 1."""
        std = self.config.init_std
        if isinstance(module, nn.Linear):
            scale = 1.0 / math.sqrt(2 * self.config.n_layers) if getattr(module, "_is_residual", False) else 1.0
            _init.normal_(module.weight, mean=0.0, std=std * scale)
            if module.bias is not None:
                _init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            _init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, LLaDARMSNorm):
            if module.weight is not None:
                _init.ones_(module.weight)
            if module.bias is not None:
                _init.zeros_(module.bias)

    @torch.no_grad()
    def forward_window(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        cache: BlockKVCache,
        start: int = 0,
        logits_range: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """Block-KV-cached logits for the sampler; see :meth:`LLaDAModel.forward_window`."""
        return self.model.forward_window(input_ids, attention_mask, cache, start, logits_range)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.transformer.wte

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.model.transformer["wte"] = value

    def get_output_embeddings(self) -> nn.Module | None:
        return None if self.config.weight_tying else self.model.transformer.ff_out

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        labels: torch.Tensor | None = None,
        target_ids: torch.Tensor | None = None,
        temperature: float = 1.0,
        **kwargs: Any,
    ) -> MaskedLMOutput | TargetLogProbOutput | tuple:
        """Denoiser logits at every position; ``attention_mask`` [B, T] marks real (1) vs padding (0).

        With ``target_ids`` ``[B, L]`` the output is instead a :class:`TargetLogProbOutput`: the
        float32 log-probabilities ``[B, L]`` of those ids at the last ``L`` positions under the
        logits divided by ``temperature``, computed chunk by chunk without the ``[B, L, V]`` logits
        (:func:`trafl.models.target_logprobs.target_logprobs`).

        ``labels`` is not supported: the masked-diffusion losses live in ``trafl.sft`` and
        ``trafl.likelihood``. Unknown keyword arguments raise, rather than being silently ignored.
        """
        if labels is not None:
            raise ValueError("LLaDAModelLM computes no loss from `labels`; use trafl.sft.loss on the logits")
        kwargs.pop("use_cache", None)  # no KV cache: every position is recomputed at each denoising step
        if kwargs.pop("output_attentions", None):
            raise ValueError("LLaDAModelLM does not return attention weights (SDPA computes them fused)")
        if kwargs:
            raise TypeError(f"LLaDAModelLM.forward got unexpected arguments {sorted(kwargs)}")
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        output_hidden_states = bool(
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if target_ids is not None:
            x, _ = self.model.final_hidden(input_ids, attention_mask, inputs_embeds)
            if target_ids.dim() != 2 or target_ids.shape[0] != x.shape[0] or target_ids.shape[1] > x.shape[1]:
                raise ValueError(
                    f"target_ids {tuple(target_ids.shape)} must be [B, L] with L <= T for input [B, T] = {tuple(x.shape[:2])}"
                )
            scores = target_logprobs(
                x[:, x.shape[1] - target_ids.shape[1] :], target_ids, self.model._lm_head, temperature=temperature
            )
            return TargetLogProbOutput(target_logprobs=scores) if return_dict else (scores,)
        logits, hidden = self.model(input_ids, attention_mask, inputs_embeds, output_hidden_states)
        if not return_dict:
            return (logits, hidden) if hidden is not None else (logits,)
        return MaskedLMOutput(logits=logits, hidden_states=hidden)
