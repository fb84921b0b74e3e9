"""The PNG figures: valid files of the expected pixel size, one per figure kind."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from test_eval_runner import PLAN, FakeGenerator, MultiAnswerTask

from trafl.eval.evaluate import EvalPlan, ModelSpec, TaskSpec, run_evaluation
from trafl.eval.plots import figure_size_pixels, write_plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; fails on anything that is not a PNG."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    assert data.endswith(b"IEND\xaeB`\x82"), f"{path} has no IEND chunk (truncated)"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("plots")
    # three "models" whose samples spread over more or fewer answers
    specs = [
        ModelSpec(label, label, lambda s=scale: FakeGenerator(temperature_scale=s))
        for label, scale in (("base", 6), ("trafl", 3), ("espo", 12))
    ]
    task = MultiAnswerTask()
    return out, run_evaluation(specs, [TaskSpec(task, task.load())], EvalPlan(**PLAN), out, base="base")


def test_every_figure_is_a_png_of_the_expected_size(results):
    out, res = results
    files = write_plots(res, out, base="base", bar_k=5, transfer_tasks=["multi"])
    names = sorted(p.name for p in files)
    assert names == sorted(
        [
            "pass_at_k_L32.png",
            "pass_at_k_L64.png",
            "gap_to_base_L32.png",
            "gap_to_base_L64.png",
            "pass_at_5_by_length.png",
            "transfer.png",
        ]
    )
    tasks, temps = 1, 2
    expected = {
        "pass_at_k_L32.png": figure_size_pixels(tasks, temps),
        "gap_to_base_L64.png": figure_size_pixels(tasks, temps),
        "pass_at_5_by_length.png": figure_size_pixels(temps, tasks),
        "transfer.png": figure_size_pixels(1, tasks),
    }
    for path in files:
        assert path.stat().st_size > 5_000  # something was drawn
        if path.name in expected:
            assert png_size(path) == expected[path.name], path.name


def test_no_gap_plot_without_base_and_bar_k_capped_at_n(tmp_path, results):
    _, res = results
    files = write_plots(res, tmp_path, base=None, bar_k=50)
    assert sorted(p.name for p in files) == ["pass_at_6_by_length.png", "pass_at_k_L32.png", "pass_at_k_L64.png"]
