"""Character-level tokenizer: ids, round trips, save/load through AutoTokenizer, agreement with the model."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from trafl.errors import ConfigError
from trafl.models import build_char_tokenizer, build_model, load_pretrained, tokenizer_fields


def test_ids_and_round_trip():
    tok = build_char_tokenizer("ab c\n+=", bos_token="<|bos|>")
    assert (tok.pad_token_id, tok.eos_token_id, tok.mask_token_id, tok.unk_token_id, tok.bos_token_id) == (
        0,
        1,
        2,
        3,
        4,
    )
    assert len(tok) == 5 + 7
    text = "ab c\n+=ba"
    ids = tok(text)["input_ids"]
    assert ids == [5, 6, 7, 8, 9, 10, 11, 6, 5]  # one id per character, no special tokens added
    assert tok.decode(ids) == text
    assert tok("a<|mdm_mask|>b")["input_ids"] == [5, 2, 6]
    assert tok("aZb")["input_ids"] == [5, 3, 6]  # outside the alphabet -> unk
    assert tok.decode([5, 2, 1], skip_special_tokens=True) == "a"


def test_left_padding():
    tok = build_char_tokenizer("abc")
    batch = tok(["abc", "a"], padding=True)
    assert batch["input_ids"][1] == [0, 0, 4]
    assert batch["attention_mask"][1] == [0, 0, 1]


def test_saves_and_loads_through_auto_tokenizer(tmp_path):
    tok = build_char_tokenizer("xyz 12")
    tok.save_pretrained(tmp_path)
    assert (tmp_path / "tokenizer.json").is_file()
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    text = "x1 z<|endoftext|>"
    assert loaded(text)["input_ids"] == tok(text)["input_ids"]
    for name in ("pad_token_id", "eos_token_id", "mask_token_id", "unk_token_id"):
        assert getattr(loaded, name) == getattr(tok, name)
    assert loaded.padding_side == "left"
    assert loaded.decode(tok("x1 z")["input_ids"]) == "x1 z"


@pytest.mark.parametrize(
    "alphabet,pattern",
    [
        ("aba", "duplicate characters"),
        (["ab"], "single characters"),
        (["<|pad|>"], "single characters"),
    ],
)
def test_bad_alphabet(alphabet, pattern):
    with pytest.raises(ConfigError, match=pattern):
        build_char_tokenizer(alphabet)


def test_special_token_clash():
    with pytest.raises(ConfigError, match="collide"):
        build_char_tokenizer("ab#", mask_token="#")


def test_model_and_tokenizer_saved_together_agree(tmp_path):
    tok = build_char_tokenizer("0123456789+=")
    model = build_model(
        "micro",
        **tokenizer_fields(tok),
    )
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    loaded, loaded_tok = load_pretrained(tmp_path)
    assert loaded_tok.mask_token_id == loaded.config.mask_token_id == 2
    assert loaded_tok.eos_token_id == loaded.config.eos_token_id == 1
    assert len(loaded_tok) == loaded.config.vocab_size
