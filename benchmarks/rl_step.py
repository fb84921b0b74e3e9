"""Where an RL step's wall time goes, with exact and with fast rollouts, measured side by side.

Two trainers that differ only in the rollout sampler (exact; block KV cache ``dual`` + threshold 0.9)
run their steps alternately (step ``k`` of one, then step ``k`` of the other, so machine noise hits
both alike); each step reports ``time/rollout_s`` (sampling), ``time/reward_s``, ``time/prepare_s``
(the objective's no-grad surrogates) and ``time/update_s`` (loss, backward, optimizer), and the
sampler's forward passes per sequence (``RLTrainer.train_step``). The first step of each trainer
is a warm-up and is dropped; the table holds medians over the rest.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

ARMS = {"exact": {}, "fast (dual + 0.9)": {"rollout_cache": "dual", "rollout_threshold": 0.9}}
PARTS = ("time/rollout_s", "time/reward_s", "time/prepare_s", "time/update_s")


def step_split(fields: dict[str, Any], steps: int, task: Any = None) -> list[dict[str, Any]]:
    """Median time of each part of a TraFL step for every arm; ``fields`` are the shared ``trafl train``
    fields (model, task, shapes), ``task`` an optional task object (e.g. with its own length knobs).
    Returns one row per arm."""
    from trafl.train.config import TrainConfig
    from trafl.train.trainer import RLTrainer
    from trafl.utils.config import load_config

    with tempfile.TemporaryDirectory() as tmp:
        trainers = {
            arm: RLTrainer(
                load_config(
                    TrainConfig,
                    None,
                    {
                        **fields,
                        **sampler,
                        "output_dir": str(Path(tmp) / f"arm{i}"),
                        "max_steps": steps + 1,
                        "save_steps": 0,
                    },
                ),
                progress=False,
                task=task,
            )
            for i, (arm, sampler) in enumerate(ARMS.items())
        }
        records: dict[str, list[dict]] = {arm: [] for arm in ARMS}
        for step in range(steps + 1):
            for arm, trainer in trainers.items():
                record = trainer.train_step(step)
                if step:  # the first step warms up
                    records[arm].append(record)
    rows = []
    for arm, recs in records.items():
        row: dict[str, Any] = {"rollouts": arm}
        for part in PARTS:
            row[part.split("/")[1]] = statistics.median(r[part] for r in recs)
        row["step_s"] = sum(row[p.split("/")[1]] for p in PARTS)
        row["rollout_share"] = row["rollout_s"] / row["step_s"]
        row["forwards/seq"] = statistics.median(r["rollout/num_forward"] for r in recs)
        rows.append(row)
    exact = rows[0]
    for row in rows:
        row["rollout_speedup"] = exact["rollout_s"] / row["rollout_s"]
        row["step_speedup"] = exact["step_s"] / row["step_s"]
    return rows
