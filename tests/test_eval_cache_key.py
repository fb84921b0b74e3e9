"""The generation cache is keyed on content: a model retrained in the same folder, a changed
tokenizer or changed problems are regenerated, never served from a stale cache; an unchanged rerun
(even from a copied folder) still resumes from the cache."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from rl_toys import make_model_dir
from test_eval_runner import PLAN, FakeGenerator, MultiAnswerTask

from trafl.cli import main
from trafl.eval import fingerprint as fp_lib
from trafl.eval.cache import Cell, cache_path
from trafl.eval.evaluate import EvalPlan, ModelSpec, TaskSpec, run_evaluation
from trafl.eval.fingerprint import FileHashMemo, ModelFingerprint, model_fingerprint, row_fingerprint
from trafl.eval.generation import SamplerGenerator, SamplerSweep
from trafl.utils.io import read_jsonl

# --- trafl eval on a micro model retrained in place ------------------------------------------------


def run_cli(model_dir: Path, out: Path, *extra: str) -> int:
    return main(
        [
            "eval",
            "--model",
            f"base={model_dir}",
            "--task",
            "rl_toys:DigitTask",
            "--n",
            "4",
            "--temperatures",
            "1.0",
            "--gen-lengths",
            "8",
            "--steps",
            "8",
            "--block-length",
            "4",
            "--limit",
            "3",
            "--out",
            str(out),
            "--no-plots",
            "--quiet",
            *extra,
        ]
    )


DIGIT_CELL = Cell("base", "rl_toys:DigitTask", 1.0, 8)


def cell_records(out: Path) -> list[dict]:
    return read_jsonl(cache_path(out, DIGIT_CELL))[1:]


def cell_results(out: Path) -> list[dict]:
    return json.loads((out / "results.json").read_text())["results"]


def test_weights_retrained_in_the_same_folder_are_regenerated(tmp_path, capsys):
    model = make_model_dir(tmp_path / "model", seed=1)
    out = tmp_path / "out"
    assert run_cli(model, out) == 0
    before = cell_records(out)

    make_model_dir(model, seed=2)  # retrained: new weights in the same folder, same tokenizer
    capsys.readouterr()
    assert run_cli(model, out) == 0
    err = capsys.readouterr().err
    assert f"model weights changed since {cache_path(out, DIGIT_CELL)} was generated: regenerating" in err
    assert "tokenizer" not in err

    fresh = tmp_path / "fresh"
    assert run_cli(model, fresh) == 0
    assert cell_records(fresh) != before  # the weights do change the samples
    assert cell_records(out) == cell_records(fresh)
    assert cell_results(out) == cell_results(fresh)


def test_unchanged_rerun_resumes_even_from_a_copied_folder(tmp_path, monkeypatch, capsys):
    model = make_model_dir(tmp_path / "model", seed=1)
    out = tmp_path / "out"
    assert run_cli(model, out) == 0
    cache_file = cache_path(out, DIGIT_CELL)
    before = cache_file.read_bytes()

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded although every problem is cached")

    monkeypatch.setattr(SamplerGenerator, "from_pretrained", no_loading)
    copy = shutil.copytree(model, tmp_path / "elsewhere" / "model")
    capsys.readouterr()
    for where in (model, copy):  # the same bytes at another path are the same model
        assert run_cli(where, out) == 0
        assert cache_file.read_bytes() == before
    assert "regenerating" not in capsys.readouterr().err


# --- the cache logic, with scripted generators -----------------------------------------------------


def evaluate(out: Path, rows: list[dict], generator: FakeGenerator, fingerprint: ModelFingerprint | None = None):
    spec = ModelSpec("base", "/ckpt/base", lambda: generator, SamplerSweep(block_length=32), fingerprint)
    return run_evaluation([spec], [TaskSpec(MultiAnswerTask(), rows)], EvalPlan(batch_size=2, **PLAN), out)


CELLS = len(PLAN["temperatures"]) * len(PLAN["gen_lengths"])


def test_changed_rows_are_regenerated_not_mixed(tmp_path):
    rows = MultiAnswerTask().load()
    out = tmp_path / "out"
    evaluate(out, rows, FakeGenerator())

    changed = [dict(r) for r in rows[:-1]]  # p6 dropped
    changed[2]["prompt"] = "question 2, reworded"  # same id, new content
    changed.append({"id": "p7", "prompt": "question 7", "ok": 3})  # a new problem
    gen = FakeGenerator()
    results = evaluate(out, changed, gen)
    # only the reworded and the new problem are generated, in every cell
    assert sorted(set(gen.prompts_done)) == ["question 2, reworded", "question 7"]
    assert len(gen.prompts_done) == 2 * CELLS
    # identical to a fresh evaluation of the new rows: no sample of the old p2 survives
    assert results["results"] == evaluate(tmp_path / "fresh", changed, FakeGenerator())["results"]
    for path in (out / "generations").glob("*.jsonl"):
        records = read_jsonl(path)[1:]
        ids = [r["problem_id"] for r in records]
        assert len(ids) == len(set(ids))  # the stale record was dropped, not shadowed
        by_id = {r["problem_id"]: r for r in records}
        assert all(c.startswith("question 2, reworded") for c in by_id["p2"]["completions"])
        assert by_id["p2"]["row_sha256"] == row_fingerprint(changed[2])


def test_raising_limit_reuses_the_cached_problems(tmp_path):
    rows = MultiAnswerTask().load()
    evaluate(tmp_path, rows[:3], FakeGenerator())
    gen = FakeGenerator()
    evaluate(tmp_path, rows[:5], gen)
    assert sorted(set(gen.prompts_done)) == ["question 3", "question 4"]
    assert len(gen.prompts_done) == 2 * CELLS


def test_changed_tokenizer_regenerates_every_cell(tmp_path, caplog):
    rows = MultiAnswerTask().load()
    evaluate(tmp_path, rows, FakeGenerator(), ModelFingerprint("sha256:w", "sha256:t1"))
    gen = FakeGenerator()
    with caplog.at_level(logging.WARNING, logger="trafl"):
        evaluate(tmp_path, rows, gen, ModelFingerprint("sha256:w", "sha256:t2"))
    assert len(gen.prompts_done) == len(rows) * CELLS
    notices = [r.getMessage() for r in caplog.records if "regenerating" in r.getMessage()]
    assert len(notices) == CELLS and all(m.startswith("tokenizer changed since ") for m in notices)
    meta = read_jsonl(cache_path(tmp_path, Cell("base", "multi", 0.3, 32)))[0]["meta"]
    assert meta["tokenizer_fingerprint"] == "sha256:t2"


def test_cache_written_without_fingerprints_is_regenerated(tmp_path, caplog):
    """A cell file from before content keys (no fingerprint in its meta) cannot be trusted."""
    rows = MultiAnswerTask().load()
    evaluate(tmp_path, rows, FakeGenerator())
    for path in (tmp_path / "generations").glob("*.jsonl"):
        lines = path.read_text().splitlines()
        meta = json.loads(lines[0])["meta"]
        for key in ("model_fingerprint", "tokenizer_fingerprint"):
            del meta[key]
        path.write_text("\n".join([json.dumps({"meta": meta}), *lines[1:]]) + "\n")
    gen = FakeGenerator()
    with caplog.at_level(logging.WARNING, logger="trafl"):
        evaluate(tmp_path, rows, gen)
    assert len(gen.prompts_done) == len(rows) * CELLS
    assert (
        "records no fingerprint of the model weights and tokenizer (written by an older trafl): regenerating"
        in caplog.text
    )


def test_fingerprint_is_computed_once_per_model(tmp_path, monkeypatch):
    calls = []
    real = fp_lib.model_fingerprint
    monkeypatch.setattr(fp_lib, "model_fingerprint", lambda path, *a, **kw: calls.append(path) or real(path, *a, **kw))
    evaluate(tmp_path, MultiAnswerTask().load(), FakeGenerator())
    assert calls == ["/ckpt/base"]


# --- what a fingerprint covers ---------------------------------------------------------------------


def write_model(directory: Path, weights: bytes = b"W" * 1000, vocab: str = '{"a": 0}') -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text('{"model_type": "llada"}')
    (directory / "model.safetensors").write_bytes(weights)
    (directory / "tokenizer.json").write_text(vocab)
    return directory


def test_model_fingerprint_covers_weight_and_tokenizer_bytes_not_paths(tmp_path):
    a = model_fingerprint(str(write_model(tmp_path / "a")))
    assert a.model.startswith("sha256:") and a.tokenizer.startswith("sha256:")
    assert model_fingerprint(str(write_model(tmp_path / "b"))) == a  # same content elsewhere
    # one byte of the weights, size unchanged
    assert model_fingerprint(str(write_model(tmp_path / "c", weights=b"W" * 999 + b"X"))) == ModelFingerprint(
        model_fingerprint(str(tmp_path / "c")).model, a.tokenizer
    )
    assert model_fingerprint(str(tmp_path / "c")).model != a.model
    changed_tok = model_fingerprint(str(write_model(tmp_path / "d", vocab='{"b": 0}')))
    assert changed_tok.model == a.model and changed_tok.tokenizer != a.tokenizer
    # files a model load does not read do not count
    (tmp_path / "a" / "README.md").write_text("notes")
    (tmp_path / "a" / "optimizer.pt").write_bytes(b"state")
    assert model_fingerprint(str(tmp_path / "a")) == a
    # a LoRA adapter's files do count
    (tmp_path / "a" / "adapter_model.safetensors").write_bytes(b"lora")
    assert model_fingerprint(str(tmp_path / "a")).model != a.model


def test_hub_ids_are_keyed_by_their_cached_revision(tmp_path):
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--owner--name"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "snapshots" / commit / "config.json").write_text("{}")
    cached = model_fingerprint("owner/name", hub_cache_dir=tmp_path / "hub")
    assert cached == ModelFingerprint(f"hub:owner/name@{commit}", f"hub:owner/name@{commit}")
    assert model_fingerprint("owner/other", hub_cache_dir=tmp_path / "hub").model == "hub:owner/other"
    # neither a folder nor a Hub id (a generator built in Python): only its path is known
    assert model_fingerprint("/ckpt/base").model == "path:/ckpt/base"


def test_file_hash_memo_reuses_hashes_of_unchanged_files(tmp_path, monkeypatch):
    model = write_model(tmp_path / "m")
    memo_path = tmp_path / "file_hashes.json"
    memo = FileHashMemo(memo_path, settle_ns=0)
    first = model_fingerprint(str(model), memo)
    memo.save()
    hashed = []
    real = fp_lib.sha256_of_file
    monkeypatch.setattr(fp_lib, "sha256_of_file", lambda p: hashed.append(Path(p).name) or real(p))
    assert model_fingerprint(str(model), FileHashMemo(memo_path, settle_ns=0)) == first
    assert hashed == []
    # a hash taken right after the file changed is not trusted (its timestamps may not have moved yet)
    (model / "model.safetensors").write_bytes(b"V" * 1000)  # same size, same inode
    again = model_fingerprint(str(model), FileHashMemo(memo_path))
    assert "model.safetensors" in hashed and again.model != first.model


def test_row_fingerprint_is_canonical():
    assert row_fingerprint({"a": 1, "b": [1, 2]}) == row_fingerprint({"b": [1, 2], "a": 1})
    assert row_fingerprint({"a": 1}) != row_fingerprint({"a": 2})


@pytest.mark.parametrize("bad", ["{not json", "[]"])
def test_unreadable_memo_is_ignored(tmp_path, bad):
    (tmp_path / "file_hashes.json").write_text(bad)
    model = write_model(tmp_path / "m")
    assert model_fingerprint(str(model), FileHashMemo(tmp_path / "file_hashes.json")) == model_fingerprint(str(model))
