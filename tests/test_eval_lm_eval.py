"""The lm-evaluation-harness adapter's logic without lm-eval installed: ELBO log-likelihoods
against exact enumeration on a micro model, and the registered class through a stub lm_eval."""

from __future__ import annotations

import sys
import types
from types import SimpleNamespace

import pytest
import torch

from rl_toys import make_model_dir
from trafl.errors import ConfigError
from trafl.eval.lm_eval_adapter import TraflLMCore, cut_at_stop, elbo_loglikelihood, register_lm_eval
from trafl.models import load_pretrained
from trafl.models.interface import get_logits


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_model_dir(tmp_path_factory.mktemp("lm") / "micro")


@pytest.fixture(scope="module")
def loaded(model_dir):
    return load_pretrained(model_dir)


def token_logp(model, ids: torch.Tensor, masked: list[int], positions: list[int]) -> float:
    """sum over ``positions`` of log p(ids[pos] | ids with ``masked`` replaced by the mask token)."""
    noisy = ids.clone()
    noisy[masked] = model.config.mask_token_id
    with torch.no_grad():
        logp = get_logits(model, noisy[None])[0].log_softmax(-1)
    return float(sum(logp[p, ids[p]] for p in positions))


def test_one_token_continuation_is_exact(loaded):
    model, tok = loaded
    core = TraflLMCore(model, tok, num_mc=2)
    (ll, greedy), = core.loglikelihood([("1+1=", "2")])
    ids = torch.tensor(tok("1+1=2", add_special_tokens=False)["input_ids"])
    assert ll == pytest.approx(token_logp(model, ids, [4], [4]), abs=1e-5)
    # is_greedy: the argmax of the masked position
    noisy = ids.clone()
    noisy[4] = model.config.mask_token_id
    assert greedy == bool(get_logits(model, noisy[None])[0, 4].argmax() == ids[4])


def test_two_token_elbo_matches_exact_enumeration(loaded):
    model, tok = loaded
    ctx = torch.tensor(tok("3+4=", add_special_tokens=False)["input_ids"])
    cont = torch.tensor(tok("77", add_special_tokens=False)["input_ids"])
    ids = torch.cat([ctx, cont])
    a, b = 4, 5
    # ELBO = 1/2 * mean_{|M|=1} 2 log p(y_M | rest) + 1/2 * (log p(y_a | both masked) + log p(y_b | both masked))
    exact = 0.5 * (token_logp(model, ids, [a], [a]) + token_logp(model, ids, [b], [b])) \
        + 0.5 * token_logp(model, ids, [a, b], [a, b])
    estimate = elbo_loglikelihood(model, ctx, cont, num_mc=2000, generator=torch.Generator().manual_seed(0))
    spread = abs(token_logp(model, ids, [a], [a]) - token_logp(model, ids, [b], [b]))
    assert estimate == pytest.approx(exact, abs=max(0.1 * spread, 1e-4))
    assert estimate != pytest.approx(token_logp(model, ids, [a, b], [a, b]), abs=1e-6)


def test_rolling_and_empty_continuation(loaded):
    model, tok = loaded
    core = TraflLMCore(model, tok, num_mc=4)
    assert core.loglikelihood([("1+1=", "")]) == [(0.0, True)]
    (rolling,) = core.loglikelihood_rolling(["12"])
    assert rolling < 0
    with pytest.raises(ConfigError, match="num_mc"):
        TraflLMCore(model, tok, num_mc=0)


def test_generate_until_cuts_at_stop(loaded):
    model, tok = loaded
    core = TraflLMCore(model, tok, block_length=4)
    (text,) = core.generate_until([("1+1=", {"until": ["=", "+"], "max_gen_toks": 6, "do_sample": False})])
    assert "=" not in text and "+" not in text and len(text) <= 8
    assert cut_at_stop("abc=def+g", ["+", "="]) == "abc"


def test_registered_class_through_a_stub_lm_eval(model_dir, monkeypatch):
    registry = {}

    class LM:
        def __init__(self):
            self.initialised = True

    def register_model(name):
        def deco(cls):
            registry[name] = cls
            return cls
        return deco

    modules = {"lm_eval": types.ModuleType("lm_eval"), "lm_eval.api": types.ModuleType("lm_eval.api"),
               "lm_eval.api.model": types.ModuleType("lm_eval.api.model"),
               "lm_eval.api.registry": types.ModuleType("lm_eval.api.registry")}
    modules["lm_eval.api.model"].LM = LM
    modules["lm_eval.api.registry"].register_model = register_model
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)

    cls = register_lm_eval()
    assert registry["trafl"] is cls
    lm = cls(pretrained=str(model_dir), num_mc="4", batch_size="8")
    assert lm.initialised and lm.core.num_mc == 4
    out = lm.loglikelihood([SimpleNamespace(args=("1+1=", "2")), SimpleNamespace(args=("1+1=", "22"))])
    assert len(out) == 2 and all(isinstance(ll, float) and isinstance(g, bool) for ll, g in out)


def test_missing_lm_eval_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "lm_eval", None)
    with pytest.raises(ConfigError, match="pip install lm-eval"):
        register_lm_eval()
