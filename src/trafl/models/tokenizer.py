"""A character-level tokenizer for tiny synthetic models, as a standard transformers tokenizer.

Ids: the special tokens first (pad, EOS, mask, then unk and the optional BOS), then one id per
character of the alphabet in the order given. It is a ``tokenizers`` BPE model with no merges and no
pre-tokenizer, so every character is its own token and decoding concatenates them. Saved with
``save_pretrained`` (``tokenizer.json`` + ``tokenizer_config.json``), it loads back through
``transformers.AutoTokenizer.from_pretrained`` with no trafl code. Padding is on the left, as the
samplers expect for prompts.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models
from transformers import PreTrainedTokenizerFast

from trafl.errors import ConfigError


def build_char_tokenizer(
    alphabet: Iterable[str],
    *,
    pad_token: str = "<|pad|>",
    eos_token: str = "<|endoftext|>",
    mask_token: str = "<|mdm_mask|>",
    unk_token: str = "<|unk|>",
    bos_token: str | None = None,
    model_max_length: int = 4096,
) -> PreTrainedTokenizerFast:
    """A character-level ``PreTrainedTokenizerFast`` over ``alphabet`` (single characters, no duplicates).

    Characters outside the alphabet encode to ``unk_token``. ``bos_token`` (off by default) is
    added to the vocabulary but not inserted automatically.
    """
    chars = list(alphabet)
    for ch in chars:
        if not isinstance(ch, str) or len(ch) != 1:
            raise ConfigError(f"alphabet entries must be single characters, got {ch!r}")
    duplicates = sorted({c for c in chars if chars.count(c) > 1})
    if duplicates:
        raise ConfigError(f"alphabet has duplicate characters {duplicates}")
    specials = [pad_token, eos_token, mask_token, unk_token] + ([bos_token] if bos_token else [])
    if len(set(specials)) != len(specials):
        raise ConfigError(f"special tokens must be distinct, got {specials}")
    clash = sorted(set(specials) & set(chars))
    if clash:
        raise ConfigError(f"alphabet characters {clash} collide with special tokens")

    vocab = {tok: i for i, tok in enumerate(specials + chars)}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=unk_token))
    backend.decoder = decoders.Fuse()
    backend.add_special_tokens(specials)
    kwargs = dict(pad_token=pad_token, eos_token=eos_token, mask_token=mask_token, unk_token=unk_token)
    if bos_token:
        kwargs["bos_token"] = bos_token
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, padding_side="left", model_max_length=model_max_length, **kwargs
    )
