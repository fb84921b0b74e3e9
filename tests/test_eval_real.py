"""The real path: ``trafl eval`` on a micro LLaDA-architecture model with a character tokenizer,
sampled by trafl.sampling.generate."""

from __future__ import annotations

import json

import pytest
from rl_toys import make_model_dir

from trafl.cli import main
from trafl.eval.generation import SamplerGenerator, SamplerSweep


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_model_dir(tmp_path_factory.mktemp("real") / "micro", seed=1)


def run_cli(model_dir, out, batch_size, *extra):
    return main(
        [
            "eval",
            "--model",
            f"base={model_dir}",
            "--task",
            "rl_toys:DigitTask",
            "--n",
            "3",
            "--temperatures",
            "0.0,1.0",
            "--gen-lengths",
            "8",
            "--steps",
            "8",
            "--block-length",
            "4",
            "--limit",
            "3",
            "--batch-size",
            str(batch_size),
            "--out",
            str(out),
            "--quiet",
            *extra,
        ]
    )


def test_cli_end_to_end_is_batch_independent(model_dir, tmp_path, capsys):
    assert run_cli(model_dir, tmp_path / "a", 1, "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["cells"] == 2 and len(summary["plots"]) == 3  # pass@k curves, pass@k bars, paths bars
    assert summary["plots"][-1].endswith("paths_L8.png")
    assert run_cli(model_dir, tmp_path / "b", 3, "--no-plots") == 0
    a = json.loads((tmp_path / "a" / "results.json").read_text())
    b = json.loads((tmp_path / "b" / "results.json").read_text())
    assert a["results"] == b["results"]
    assert a["results"][0]["sampler"] == {"steps": 8, "block_length": 4, "remasking": "low_confidence"}
    gens = sorted((tmp_path / "a" / "generations").glob("*.jsonl"))
    assert len(gens) == 2 and len(gens[0].read_text().splitlines()) == 1 + 3
    assert (tmp_path / "a" / "results.md").read_text().startswith("# trafl eval results")
    # a rerun finds every problem cached
    before = {p: p.read_bytes() for p in gens}
    assert run_cli(model_dir, tmp_path / "a", 2, "--no-plots") == 0
    assert {p: p.read_bytes() for p in gens} == before


def test_sampler_generator_seeds_fix_each_sample(model_dir):
    gen = SamplerGenerator.from_pretrained(str(model_dir), SamplerSweep(block_length=4))
    seeds = [[11, 12], [13, 11]]
    out = gen.generate(["1+1=", "22+3="], n=2, temperature=1.0, gen_length=8, seeds=seeds)
    alone = gen.generate(["22+3="], n=2, temperature=1.0, gen_length=8, seeds=[seeds[1]])
    assert out[1] == alone[0]
    assert all(isinstance(t, str) for row in out for t in row)


def test_cli_fast_sampler_is_used_and_recorded(model_dir, tmp_path, capsys):
    """--cache/--threshold reach the sampler: threshold 0 commits each block of 4 at its first step."""
    from trafl.eval.cache import Cell, cache_path
    from trafl.utils.io import read_jsonl

    assert run_cli(model_dir, tmp_path / "fast", 3, "--no-plots", "--cache", "dual", "--threshold", "0.0") == 0
    results = json.loads((tmp_path / "fast" / "results.json").read_text())
    assert results["results"][0]["sampler"] == {
        "steps": 8,
        "block_length": 4,
        "remasking": "low_confidence",
        "cache": "dual",
        "threshold": 0.0,
    }
    records = read_jsonl(cache_path(tmp_path / "fast", Cell("base", "rl_toys:DigitTask", 1.0, 8)))[1:]
    assert all(s == [0] * 4 + [4] * 4 for r in records for s in r["commit_steps"])
