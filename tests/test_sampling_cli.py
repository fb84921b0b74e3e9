"""``trafl sample`` end to end on a tiny saved model and character tokenizer."""

from __future__ import annotations

import json

import pytest
import torch

import trafl.sampling.cli as sample_cli
from trafl.cli import main
from trafl.models import build_char_tokenizer, build_model, tokenizer_fields
from trafl.sampling import SamplerSettings, generate, row_generators

CHAT_TEMPLATE = "{% for m in messages %}U:{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}A:{% endif %}"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-llada")
    tok = build_char_tokenizer("0123456789+= abUA:\n")
    torch.manual_seed(0)
    model = build_model(
        "micro",
        **tokenizer_fields(tok),
    )
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def sample(capsys, model_dir, *extra: str, stream: str = "out") -> tuple[int, str]:
    rc = main(
        [
            "sample",
            "--model",
            str(model_dir),
            "--device",
            "cpu",
            "--gen-length",
            "8",
            "--steps",
            "4",
            "--block-length",
            "4",
            *extra,
        ]
    )
    return rc, getattr(capsys.readouterr(), stream)


def test_json_output(capsys, model_dir):
    rc, out = sample(
        capsys, model_dir, "--prompt", "1+1=", "--prompt", "22+3=", "--n", "3", "--temperature", "0.8", "--json"
    )
    assert rc == 0
    records = json.loads(out)
    assert [(r["prompt_index"], r["prompt"], r["sample"]) for r in records] == [
        (0, "1+1=", 0),
        (0, "1+1=", 1),
        (0, "1+1=", 2),
        (1, "22+3=", 0),
        (1, "22+3=", 1),
        (1, "22+3=", 2),
    ]
    for r in records:
        assert len(r["token_ids"]) == 8 and sorted(set(r["commit_steps"])) == [0, 1, 2, 3]
        assert isinstance(r["text"], str)


def test_samples_do_not_depend_on_batching_and_match_generate(capsys, model_dir):
    args = ["--prompt", "1+1=", "--prompt", "7=", "--n", "2", "--temperature", "1.0", "--seed", "5", "--json"]
    _, together = sample(capsys, model_dir, *args)
    _, one_by_one = sample(capsys, model_dir, *args, "--batch-size", "1")
    assert json.loads(together) == json.loads(one_by_one)

    from trafl.models import load_pretrained

    model, tok = load_pretrained(model_dir)
    ids, mask = sample_cli.encode_prompts(tok, ["1+1=", "7="])
    out = generate(
        model,
        ids,
        mask,
        settings=SamplerSettings(gen_length=8, steps=4, block_length=4, temperature=1.0),
        num_samples=2,
        generator=row_generators(5, 2, 2),
    )
    assert [r["token_ids"] for r in json.loads(together)] == out.completion.tolist()


def test_plain_text_output_and_eos_trimming(capsys, model_dir, monkeypatch):
    eos = 1

    def fake_generate(model, input_ids, attention_mask, **kw):
        out = generate(model, input_ids, attention_mask, **kw)
        out.sequences[:, out.prompt_length + 2] = eos  # force an EOS at completion position 2
        return out

    monkeypatch.setattr(sample_cli, "generate", fake_generate)
    _, out = sample(capsys, model_dir, "--prompt", "1+1=")
    assert len(out.rstrip("\n")) <= 2  # one completion, cut before the EOS
    _, out = sample(capsys, model_dir, "--prompt", "1+1=", "--prompt", "2=")
    assert "=== prompt 0 sample 0 ===" in out and "=== prompt 1 sample 0 ===" in out


def test_chat_template_is_applied(model_dir, tmp_path, monkeypatch, capsys):
    from trafl.models import load_pretrained

    model, tok = load_pretrained(model_dir)
    tok.chat_template = CHAT_TEMPLATE
    monkeypatch.setattr("trafl.models.load_pretrained", lambda *a, **k: (model, tok))
    seen = {}

    def spy(model, input_ids, attention_mask, **kw):
        seen["ids"] = input_ids
        return generate(model, input_ids, attention_mask, **kw)

    monkeypatch.setattr(sample_cli, "generate", spy)
    sample(capsys, model_dir, "--prompt", "1+1=")
    assert tok.decode(seen["ids"][0].tolist()) == "U:1+1=\nA:"
    sample(capsys, model_dir, "--prompt", "1+1=", "--no-chat-template")
    assert tok.decode(seen["ids"][0].tolist()) == "1+1="


def test_bad_arguments_are_reported(capsys, model_dir):
    rc, err = sample(capsys, model_dir, "--prompt", "1", "--steps", "3", stream="err")
    assert rc == 2
    assert "multiple of the number of blocks" in err
    rc = main(["sample", "--model", str(model_dir / "missing"), "--prompt", "1"])
    assert rc == 2


def test_config_file_flag_overrides_and_fast_sampler(capsys, model_dir, tmp_path, monkeypatch):
    seen = []

    def spy(model, input_ids, attention_mask, **kw):
        out = generate(model, input_ids, attention_mask, **kw)
        seen.append((kw, out.num_forward))
        return out

    monkeypatch.setattr(sample_cli, "generate", spy)
    f = tmp_path / "sample.yaml"
    f.write_text(
        f"model: {model_dir}\nprompt: ['1+1=', '2, 3=']\nn: 2\ndevice: cpu\n"
        "gen_length: 8\nsteps: 4\nblock_length: 4\ntemperature: 0.7\n"
    )
    assert main(["sample", "--config", str(f), "--cache", "dual", "--threshold", "0.0", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["prompt"] for r in records] == ["1+1=", "1+1=", "2, 3=", "2, 3="]  # a prompt keeps its comma
    ((kw, num_forward),) = seen
    settings = kw["settings"]
    assert {
        k: getattr(settings, k) for k in ("gen_length", "steps", "block_length", "temperature", "cache", "threshold")
    } == dict(gen_length=8, steps=4, block_length=4, temperature=0.7, cache="dual", threshold=0.0)
    assert num_forward == 2  # threshold 0 commits each block in one pass
    f.write_text(f"model: {model_dir}\nprompt: ['1']\nthreshold: 2\n")
    assert main(["sample", "--config", str(f)]) == 2
    assert "'threshold': must be <= 1.0" in capsys.readouterr().err
    assert main(["sample", "--model", str(model_dir)]) == 2
    assert "config field 'prompt' is required" in capsys.readouterr().err
