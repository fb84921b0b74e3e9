"""The Dream adapter: logits realigned to positions, Dream's padding inputs, remote-code loading."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from trafl.models import DreamAdapter, get_logits, mask_token_id_of, shift_logits_right
from trafl.models.adapters import dream_attention_inputs

V = 12


class FakeDream(nn.Module):
    """Dream's convention, exactly: the logits at position i put all mass on the token at i + 1."""

    def __init__(self) -> None:
        super().__init__()
        self.config = SimpleNamespace(mask_token_id=V - 1)
        self.calls: list[dict] = []

    def forward(self, input_ids, attention_mask=None, position_ids=None, output_hidden_states=False):
        self.calls.append({"attention_mask": attention_mask, "position_ids": position_ids})
        nxt = torch.roll(input_ids, -1, dims=1)
        return SimpleNamespace(logits=F.one_hot(nxt, V).float() * 10.0, hidden_states=None)


def test_shift_logits_right():
    raw = torch.arange(4.0).view(1, 4, 1)
    assert shift_logits_right(raw).flatten().tolist() == [0.0, 0.0, 1.0, 2.0]


def test_adapter_aligns_logits_with_positions():
    ids = torch.tensor([[3, 1, 4, 1, 5, 9]])
    adapter = DreamAdapter(FakeDream())
    logits = get_logits(adapter, ids)
    assert logits.shape == (1, 6, V)
    assert logits.argmax(-1)[0, 1:].tolist() == ids[0, 1:].tolist()  # position i now predicts token i
    assert logits.argmax(-1)[0, 0] == ids[0, 1]  # position 0 keeps the first prediction
    assert mask_token_id_of(adapter) == V - 1 and adapter.config.mask_token_id == V - 1


def test_adapter_passes_dream_padding_inputs():
    fake = FakeDream()
    adapter = DreamAdapter(fake)
    ids = torch.tensor([[7, 7, 2, 3], [4, 5, 6, 8]])
    adapter(ids, attention_mask=torch.ones_like(ids))
    assert fake.calls[-1] == {"attention_mask": "full", "position_ids": None}
    adapter(ids, attention_mask=torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]]))
    mask, pos = fake.calls[-1]["attention_mask"], fake.calls[-1]["position_ids"]
    assert mask.shape == (2, 1, 4, 4) and mask.dtype == torch.bool
    assert mask[0, 0].int().tolist() == [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]
    assert mask[1].all()
    assert pos.tolist() == [[1, 1, 0, 1], [0, 1, 2, 3]]


def test_dream_attention_inputs_without_mask():
    assert dream_attention_inputs(None) == ("full", None)


def test_adapter_forwards_attribute_lookups():
    fake = FakeDream()
    fake.some_setting = 42
    adapter = DreamAdapter(fake, mask_token_id=3)
    assert adapter.some_setting == 42
    assert adapter.mask_token_id == 3 and fake.config.mask_token_id == 3


REMOTE_CONFIG = """
from transformers import PretrainedConfig
class DreamConfig(PretrainedConfig):
    model_type = "Dream"
    def __init__(self, vocab_size=12, mask_token_id=11, **kw):
        self.vocab_size, self.mask_token_id = vocab_size, mask_token_id
        super().__init__(**kw)
"""
REMOTE_MODEL = """
import torch
from transformers import PreTrainedModel
from transformers.modeling_outputs import MaskedLMOutput
from .configuration_dream import DreamConfig
class DreamModel(PreTrainedModel):
    config_class = DreamConfig
    def __init__(self, config):
        super().__init__(config)
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.post_init()
    def _init_weights(self, module):
        pass
    def forward(self, input_ids, attention_mask=None, position_ids=None, output_hidden_states=False, **kw):
        nxt = torch.roll(input_ids, -1, dims=1)
        return MaskedLMOutput(logits=torch.nn.functional.one_hot(nxt, self.config.vocab_size).float() * self.scale)
"""
LOAD_SCRIPT = """
import sys, torch
from trafl.models import DreamAdapter, load_pretrained
model, tok = load_pretrained(sys.argv[1], trust_remote_code=True)
assert isinstance(model, DreamAdapter), type(model)
assert type(model.model).__name__ == "DreamModel" and model.mask_token_id == 11
ids = torch.tensor([[3, 1, 4, 1, 5]])
print(model(ids).logits.argmax(-1).tolist())
"""


def test_load_pretrained_dream_through_remote_code(tmp_path):
    """A Dream-style directory (config with auto_map + its own modeling file) loads behind the adapter."""
    from safetensors.torch import save_file

    ckpt = tmp_path / "dream"
    ckpt.mkdir()
    (ckpt / "configuration_dream.py").write_text(textwrap.dedent(REMOTE_CONFIG))
    (ckpt / "modeling_dream.py").write_text(textwrap.dedent(REMOTE_MODEL))
    (ckpt / "config.json").write_text(
        json.dumps(
            {
                "model_type": "Dream",
                "vocab_size": V,
                "mask_token_id": V - 1,
                "architectures": ["DreamModel"],
                "auto_map": {"AutoConfig": "configuration_dream.DreamConfig", "AutoModel": "modeling_dream.DreamModel"},
            }
        )
    )
    save_file({"scale": torch.ones(())}, str(ckpt / "model.safetensors"))
    # a fresh process with its own module cache, so the dynamic module never touches ~/.cache
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, str(ckpt)], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "[[1, 1, 4, 1, 5]]"
