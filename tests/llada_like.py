"""A micro model with LLaDA-8B-Instruct's tokenizer layout, built offline for the paper-config rehearsal.

LLaDA's own tokenizer cannot be downloaded here, so the tests build one with the same *layout*: a
byte-level BPE (lossless on any text, so decoded completions reach the reward functions byte for
byte), trained on the rows the rehearsal uses, plus LLaDA's special tokens and chat format:

* ``<|startoftext|>`` (bos), ``<|endoftext|>`` (eos, and the pad token as in LLaDA's config:
  ``pad_token_id == eos_token_id``), ``<|mdm_mask|>`` (mask), ``<|start_header_id|>``,
  ``<|end_header_id|>``, ``<|eot_id|>``;
* the Llama-3-style chat format of LLaDA-8B-Instruct: bos once, then per message
  ``<|start_header_id|>ROLE<|end_header_id|>\\n\\nCONTENT<|eot_id|>`` (content stripped), and the
  assistant header as the generation prompt.

Only the vocabulary size differs (a few hundred ids, not 126,464), which keeps float32 logits of a
512-token canvas small enough for a CPU test.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch

BOS, EOS, MASK = "<|startoftext|>", "<|endoftext|>", "<|mdm_mask|>"
HEADER_START, HEADER_END, EOT = "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"
SPECIALS = [BOS, EOS, MASK, HEADER_START, HEADER_END, EOT]

#: LLaDA-8B-Instruct's chat format (Jinja): bos before the first message, stripped contents.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first %}{{ bos_token }}{% endif %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)


def llada_like_tokenizer(texts: Iterable[str], vocab_size: int = 512):
    """A byte-level BPE of ``vocab_size`` ids trained on ``texts``, with LLaDA's special tokens and chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(list(texts), trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=EOS,
        mask_token=MASK,
        additional_special_tokens=[HEADER_START, HEADER_END, EOT],
        padding_side="left",
        model_max_length=4096,
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def make_llada_like_model_dir(path: Path, texts: Iterable[str], *, context: int = 1200, seed: int = 0) -> Path:
    """A freshly initialised micro LLaDA (long enough for a 512-token prompt plus a 512-token canvas)
    and :func:`llada_like_tokenizer`, saved in Hugging Face format."""
    from trafl.models import build_model, tokenizer_fields

    tok = llada_like_tokenizer(texts)
    torch.manual_seed(seed)
    model = build_model("micro", max_sequence_length=context, **tokenizer_fields(tok))
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path
