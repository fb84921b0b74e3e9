"""Hub-style loading from local directories, through the code path a hub id takes (no network):
a snapshot laid out like a hub repository, and a ``save_to_disk`` directory."""

from __future__ import annotations

import datasets
import pytest

from trafl.errors import DataError
from trafl.rewards.code import AssertTests, encode_tests
from trafl.tasks import get_task
from trafl.tasks.loading import load_hub, load_rows

GSM8K_TEST = [
    {"question": "Ann has 3 apples and buys 4. How many?", "answer": "3 + 4 = 7\n#### 7"},
    {"question": "Bob has 10 pens and loses 2. How many?", "answer": "10 - 2 = 8\n#### 8"},
]
GSM8K_TRAIN = [{"question": "2 + 2?", "answer": "#### 4"}]
SOCRATIC_TEST = [{"question": "How many? (socratic)", "answer": "#### 1"}]

HUB_README = """---
configs:
- config_name: main
  data_files:
  - split: train
    path: main/train-*
  - split: test
    path: main/test-*
- config_name: socratic
  data_files:
  - split: test
    path: socratic/test-*
---
"""


@pytest.fixture(autouse=True)
def offline_cache(tmp_path, monkeypatch):
    """No network, and datasets' cache inside the test's directory."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)


@pytest.fixture
def gsm8k_snapshot(tmp_path):
    """A directory laid out like the hub repository openai/gsm8k: parquet files per config and
    split, declared in README.md."""
    root = tmp_path / "gsm8k"
    for config, split, rows in [
        ("main", "test", GSM8K_TEST),
        ("main", "train", GSM8K_TRAIN),
        ("socratic", "test", SOCRATIC_TEST),
    ]:
        (root / config).mkdir(parents=True, exist_ok=True)
        datasets.Dataset.from_list(rows).to_parquet(str(root / config / f"{split}-00000-of-00001.parquet"))
    (root / "README.md").write_text(HUB_README)
    return root


def test_hub_snapshot_through_the_hub_path(gsm8k_snapshot, monkeypatch):
    """The task's own hub id replaced by the directory: the same call a hub download takes,
    with the task's config (``main``) picked among the declared ones."""
    task = get_task("gsm8k")
    monkeypatch.setattr(task, "hub_id", str(gsm8k_snapshot))
    rows = task.load("test")
    assert [(r["prompt"], r["answer"]) for r in rows] == [
        (GSM8K_TEST[0]["question"], "7"),
        (GSM8K_TEST[1]["question"], "8"),
    ]
    assert [r["prompt"] for r in task.load("train")] == ["2 + 2?"]
    # the same directory as a local path (dataset_path in a training config)
    assert get_task("gsm8k").load("test", path=str(gsm8k_snapshot)) == rows
    assert load_hub(str(gsm8k_snapshot), "test", "socratic") == SOCRATIC_TEST


def test_snapshot_without_configs_and_errors(gsm8k_snapshot, tmp_path):
    plain = tmp_path / "plain"
    (plain / "data").mkdir(parents=True)
    datasets.Dataset.from_list(GSM8K_TEST).to_json(str(plain / "data" / "test.jsonl"))
    # gsm8k asks for config "main"; a snapshot that declares no configs has only the default one
    assert [r["answer"] for r in get_task("gsm8k").load("test", path=str(plain))] == ["7", "8"]
    with pytest.raises(DataError, match=r"no split 'validation' \(config main\); available: train, test"):
        load_rows(gsm8k_snapshot, "openai/gsm8k", "validation", "main")
    with pytest.raises(DataError, match="no config 'nope'; available: main, socratic"):
        load_hub(str(gsm8k_snapshot), "test", "nope")
    with pytest.raises(DataError, match="dataset file not found"):
        load_rows(tmp_path / "missing", "openai/gsm8k", "test", "main")


def test_save_to_disk_directories(tmp_path):
    mbpp = [
        {
            "task_id": 11,
            "text": "Add two numbers.",
            "code": "def add(a, b):\n    return a + b",
            "test_list": ["assert add(1, 2) == 3", "assert add(0, 0) == 0"],
            "test_setup_code": "",
        }
    ]
    datasets.DatasetDict({"test": datasets.Dataset.from_list(mbpp)}).save_to_disk(str(tmp_path / "dict"))
    (row,) = get_task("mbpp").load("test", path=str(tmp_path / "dict"))
    assert row["tests"] == encode_tests(AssertTests(mbpp[0]["test_list"], "", entry_points=["add"]))
    assert row["id"] == "11" and row["prompt"] == "Add two numbers."
    with pytest.raises(DataError, match="no split 'train' in the saved DatasetDict; available: test"):
        get_task("mbpp").load("train", path=str(tmp_path / "dict"))
    # a single saved Dataset is the split asked for
    datasets.Dataset.from_list(GSM8K_TEST).save_to_disk(str(tmp_path / "one"))
    assert len(get_task("gsm8k").load("test", path=str(tmp_path / "one"))) == 2
