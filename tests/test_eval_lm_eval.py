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
from trafl.eval.lm_eval_adapter import (
    TraflLMCore,
    cut_at_stop,
    elbo_loglikelihood,
    register_lm_eval,
    resolve_device,
)
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
    ((ll, greedy),) = core.loglikelihood([("1+1=", "2")])
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
    exact = 0.5 * (token_logp(model, ids, [a], [a]) + token_logp(model, ids, [b], [b])) + 0.5 * token_logp(
        model, ids, [a, b], [a, b]
    )
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

    modules = {
        "lm_eval": types.ModuleType("lm_eval"),
        "lm_eval.api": types.ModuleType("lm_eval.api"),
        "lm_eval.api.model": types.ModuleType("lm_eval.api.model"),
        "lm_eval.api.registry": types.ModuleType("lm_eval.api.registry"),
    }
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


@pytest.mark.parametrize(
    ("model_args_device", "harness_device", "cuda", "expected"),
    [
        (None, None, False, "cpu"),
        (None, None, True, "cuda"),
        (None, "cuda:0", False, "cpu"),  # lm-eval's CLI default when --device is absent
        (None, "cuda:0", True, "cuda:0"),
        (None, "cpu", True, "cpu"),
        ("cpu", "cuda:0", True, "cpu"),  # model_args wins
        ("cuda:1", "cpu", True, "cuda:1"),
    ],
)
def test_resolve_device(model_args_device, harness_device, cuda, expected):
    assert resolve_device(model_args_device, harness_device, cuda_available=cuda)[0] == expected


def test_resolve_device_refuses_explicit_cuda_without_cuda():
    with pytest.raises(ConfigError, match="device=cuda: CUDA is not available"):
        resolve_device("cuda", "cpu", cuda_available=False)


def test_harness_settings_do_not_collide_with_model_args(model_dir, monkeypatch):
    """lm-eval calls ``create_from_arg_obj(model_args, {"batch_size", "max_batch_size", "device"})``;
    a ``device`` in both used to be a duplicate keyword."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    pytest.importorskip("lm_eval")
    from lm_eval.api.registry import get_model

    cls = register_lm_eval()
    assert register_lm_eval() is cls is get_model("trafl")  # once: lm-eval refuses a second class under one name
    harness = {"batch_size": 1, "max_batch_size": None, "device": "cuda:0"}
    lm = cls.create_from_arg_obj({"pretrained": str(model_dir), "device": "cpu", "num_mc": 4}, harness)
    assert lm.device == torch.device("cpu") and lm.core.num_mc == 4
    lm = cls.create_from_arg_string(f"pretrained={model_dir},num_mc=2", harness)
    assert lm.device == torch.device("cpu") and lm.core.num_mc == 2  # cuda:0 unavailable -> cpu
    with pytest.raises(ConfigError, match="CUDA is not available"):
        cls.create_from_arg_string(f"pretrained={model_dir},device=cuda", {"device": "cpu"})


# --- the real harness, offline, through its command line -------------------------------------

GEN_YAML = """task: trafl_toy_gen
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "{{{{question}}}}"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: ["+"]
  max_gen_toks: 4
  do_sample: false
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
"""

MC_YAML = """task: trafl_toy_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: label
target_delimiter: ""
metric_list:
  - metric: acc
"""

CORE_ARGS = {"num_mc": 4, "block_length": 4, "seed": 3}
GEN_KWARGS = {"until": ["+"], "max_gen_toks": 4, "do_sample": False}


@pytest.fixture(scope="module")
def harness_tasks(tmp_path_factory, loaded):
    """Two local lm-eval tasks whose right answers are chosen from the adapter's own outputs, so
    the harness's scores are known exactly: exact_match 1/2 (the first generation task's answer is
    the model's greedy completion, the second's is not) and acc 1/2 (the first multiple-choice label
    is the choice with the highest ELBO, the second the lowest)."""
    import json

    model, tok = loaded
    core = TraflLMCore(model, tok, **CORE_ARGS)
    root = tmp_path_factory.mktemp("harness_tasks")
    prompts = ["1+2=", "3+4="]
    greedy = core.generate_until([(p, GEN_KWARGS) for p in prompts])
    gen_rows = [{"question": prompts[0], "answer": greedy[0]}, {"question": prompts[1], "answer": greedy[1] + "9"}]
    mc_rows = []
    for question, choices, pick in [("1+1=", ["2", "3", "22"], max), ("2+3=", ["5", "6", "55"], min)]:
        scores = [ll for ll, _ in core.loglikelihood([(question, c) for c in choices])]
        assert len(set(scores)) == len(scores)
        mc_rows.append({"question": question, "choices": choices, "label": scores.index(pick(scores))})
    for name, rows, yaml in [("gen", gen_rows, GEN_YAML), ("mc", mc_rows, MC_YAML)]:
        data = root / f"{name}.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
        (root / f"{name}.yaml").write_text(yaml.format(data=data))
    return root, core


@pytest.mark.parametrize(
    ("device_flags", "model_args_device"),
    [
        pytest.param([], None, id="no-device"),
        pytest.param(["--device", "cpu"], None, id="harness-device-cpu", marks=pytest.mark.slow),
        pytest.param([], "cpu", id="model-args-device-cpu", marks=pytest.mark.slow),
    ],
)
def test_real_lm_eval_command_line_offline(harness_tasks, model_dir, tmp_path, device_flags, model_args_device):
    """``python -m trafl.eval.lm_eval_adapter`` (lm-eval's own CLI with ``trafl`` registered) on a
    generation task and a multiple-choice task read from local JSONL files, with no network."""
    import json
    import os
    import subprocess

    pytest.importorskip("lm_eval")
    tasks_dir, core = harness_tasks
    model_args = ",".join(
        [f"pretrained={model_dir}", *(f"{k}={v}" for k, v in CORE_ARGS.items())]
        + ([f"device={model_args_device}"] if model_args_device else [])
    )
    env = {
        **os.environ,
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "trafl.eval.lm_eval_adapter",
        "--model",
        "trafl",
        "--model_args",
        model_args,
        "--tasks",
        "trafl_toy_gen,trafl_toy_mc",
        "--include_path",
        str(tasks_dir),
        "--output_path",
        str(out),
        "--log_samples",
        *device_flags,
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    expected = "cuda:0" if torch.cuda.is_available() and not device_flags and not model_args_device else "cpu"
    assert f"trafl lm-eval model on {expected} (" in proc.stderr

    (results_file,) = out.rglob("results_*.json")
    results = json.loads(results_file.read_text())["results"]
    assert results["trafl_toy_gen"]["exact_match,none"] == 0.5
    assert results["trafl_toy_mc"]["acc,none"] == 0.5
    # the harness's per-request answers are the adapter's, request by request
    (gen_samples,) = out.rglob("samples_trafl_toy_gen_*.jsonl")
    for line in gen_samples.read_text().splitlines():
        sample = json.loads(line)
        assert sample["resps"] == [core.generate_until([(sample["doc"]["question"], GEN_KWARGS)])]
    (mc_samples,) = out.rglob("samples_trafl_toy_mc_*.jsonl")
    for line in mc_samples.read_text().splitlines():
        sample = json.loads(line)
        mine = core.loglikelihood([(sample["doc"]["question"], c) for c in sample["doc"]["choices"]])
        theirs = [(float(ll), greedy == "True") for ((ll, greedy),) in sample["resps"]]
        assert [g for _, g in theirs] == [g for _, g in mine]
        assert [ll for ll, _ in theirs] == pytest.approx([ll for ll, _ in mine], abs=1e-5)
