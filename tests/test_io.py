"""Crash-safe writes: a failure inside an atomic write leaves the previous content intact."""

import json

import pytest

from trafl.utils.io import append_jsonl, atomic_directory, atomic_write_json, read_jsonl


def test_atomic_directory_replaces_whole_or_nothing(tmp_path):
    target = tmp_path / "ckpt"
    with atomic_directory(target) as d:
        (d / "a.txt").write_text("one")
    assert (target / "a.txt").read_text() == "one"
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as d:
            (d / "a.txt").write_text("two")
            raise RuntimeError("killed mid-write")
    assert (target / "a.txt").read_text() == "one"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]


def test_jsonl_tolerates_torn_last_line(tmp_path):
    f = tmp_path / "m.jsonl"
    append_jsonl(f, {"a": 1})
    append_jsonl(f, {"a": 2})
    with open(f, "a") as fh:
        fh.write('{"a": 3')  # a write cut short by a crash
    assert read_jsonl(f) == [{"a": 1}, {"a": 2}]
    f.write_text('{"a": 1}\nnot json\n{"a": 2}\n')
    with pytest.raises(json.JSONDecodeError):
        read_jsonl(f)


def test_atomic_json(tmp_path):
    atomic_write_json(tmp_path / "x" / "r.json", {"k": [1, 2]})
    assert json.loads((tmp_path / "x" / "r.json").read_text()) == {"k": [1, 2]}


def test_atomic_outputs_get_ordinary_permissions(tmp_path):
    import os
    import stat

    mask = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "r.json", {})
        with atomic_directory(tmp_path / "d") as d:
            (d / "f").write_text("x")
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755
