"""The parameter counts of a LLaDA-architecture model, from its config alone (no weights).

Notation used across :mod:`trafl.plan`: ``d`` = ``d_model``, ``n`` = ``n_layers``, ``H`` = query
heads, ``D = d / H`` the head dimension, ``d_kv = n_kv_heads * D``, ``h`` = ``mlp_hidden_size``,
``V`` = ``embedding_size`` (the rows of the embedding and of the output head).

One block holds seven linear maps (LLaDA's names) and two RMSNorm weights::

    q_proj d -> d,  k_proj d -> d_kv,  v_proj d -> d_kv,  attn_out d -> d,
    ff_proj d -> h,  up_proj d -> h,   ff_out h -> d

so (without biases) a block has ``2 d^2 + 2 d d_kv + 3 d h + 2 d`` parameters and the model

    P = n (2 d^2 + 2 d d_kv + 3 d h + 2 d) + V d (embedding) + d (ln_f) + V d (head, unless tied).

LLaDA-8B (d 4096, n 32, h 12288, V 126464): P = 8,015,581,184.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trafl.models.configuration_llada import LLaDAConfig


@dataclass(frozen=True)
class ModelShape:
    """The sizes of a LLaDA-architecture model that memory and FLOPs depend on."""

    d_model: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    mlp_hidden: int
    vocab: int
    weight_tying: bool = False
    qkv_bias: bool = False
    bias: bool = False
    norm_affine: bool = True
    norm_bias: bool = False

    @classmethod
    def from_config(cls, config: LLaDAConfig) -> ModelShape:
        return cls(
            d_model=config.d_model,
            n_layers=config.n_layers,
            n_heads=config.n_heads,
            n_kv_heads=config.effective_n_kv_heads,
            mlp_hidden=config.effective_mlp_hidden_size,
            vocab=config.effective_embedding_size,
            weight_tying=bool(config.weight_tying),
            qkv_bias=config.qkv_bias,
            bias=bool(config.include_bias),
            norm_affine=bool(config.layer_norm_with_affine),
            norm_bias=config.norm_bias,
        )

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def d_kv(self) -> int:
        return self.n_kv_heads * self.head_dim

    def block_linears(self) -> dict[str, tuple[int, int]]:
        """``name -> (in_features, out_features)`` of the seven linear maps of one block."""
        d, kv, h = self.d_model, self.d_kv, self.mlp_hidden
        return {
            "q_proj": (d, d),
            "k_proj": (d, kv),
            "v_proj": (d, kv),
            "attn_out": (d, d),
            "ff_proj": (d, h),
            "up_proj": (d, h),
            "ff_out": (h, d),
        }

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def norm_parameters(shape: ModelShape) -> int:
    """One RMSNorm: ``d`` weights (with affine) plus ``d`` biases (with a norm bias)."""
    return shape.d_model * (int(shape.norm_affine) + int(shape.norm_affine and shape.norm_bias))


def block_parameters(shape: ModelShape) -> int:
    """``sum over the 7 linears of in * out (+ out with a bias) + 2 norms``."""
    total = 2 * norm_parameters(shape)
    for name, (fan_in, fan_out) in shape.block_linears().items():
        has_bias = shape.qkv_bias if name in ("q_proj", "k_proj", "v_proj") else shape.bias
        total += fan_in * fan_out + (fan_out if has_bias else 0)
    return total


def embedding_parameters(shape: ModelShape) -> int:
    """``V d``."""
    return shape.vocab * shape.d_model


def head_parameters(shape: ModelShape) -> int:
    """The untied output head ``V d`` (+ ``V`` with a bias); 0 when tied to the embedding."""
    if shape.weight_tying:
        return 0
    return shape.vocab * shape.d_model + (shape.vocab if shape.bias else 0)


def count_parameters(shape: ModelShape) -> int:
    """``P = n * block + V d + norm(ln_f) + head`` (see the module docstring)."""
    return (
        shape.n_layers * block_parameters(shape)
        + embedding_parameters(shape)
        + norm_parameters(shape)
        + head_parameters(shape)
    )


def matmul_parameters(shape: ModelShape) -> int:
    """Parameters that enter a matrix product per token (FLOPs): the blocks' linears and the head
    (``V d`` also when tied: the logits are ``x wte^T``); not the embedding lookup nor the norms."""
    per_block = sum(i * o for i, o in shape.block_linears().values())
    return shape.n_layers * per_block + shape.vocab * shape.d_model


def lora_parameters(shape: ModelShape, rank: int, targets: list[str] | tuple[str, ...]) -> int:
    """Adapter parameters ``n * sum_{t in targets} r (in_t + out_t)`` (A: ``r x in``, B: ``out x r``).

    Only the blocks' linears are adapted: the trainer excludes the output head even though LLaDA
    calls it ``ff_out`` too (``trafl.train.policy.output_head_names``). Target names that are no
    block linear adapt nothing.
    """
    linears = shape.block_linears()
    per_block = sum(rank * (linears[t][0] + linears[t][1]) for t in set(targets) if t in linears)
    return shape.n_layers * per_block
