"""Write the LLaDA-8B-Instruct run configs under configs/paper/.

Two families (configs/README.md lists every value's source and every deliberate deviation):

* ``configs/paper/published/<method>_<task>.yaml``: each baseline as its authors ran it (their
  hyper-parameters, LoRA or full fine-tuning, batch geometry on 8 GPUs), read from their public
  recipes (ML-GSAI/ESPO ``recipes/train.yaml`` + ``run_gsm8k_llada.sh``; dllm-reasoning/d1
  ``diffu-grpo/slurm_scripts/train.yaml``; LeapLabTHU/JustGRPO ``train.py``; xiaohangt/wd1
  ``wd1/train.yaml`` + ``run/wll_NP_*.sh``, on 4 GPUs). The objectives'
  own mechanics (inner iterations, mask laws, reductions, KL) are their options' defaults, so
  these files only set what the trainer needs.
* ``configs/paper/llada8b_<task>_<length>_<method>.yaml``: the *matched-budget* comparison: every
  method sees the same prompts per step, samples per prompt, sampler (except JustGRPO, which
  samples left to right by definition), LoRA and optimiser, and differs only in its objective
  (with its authors' mechanics).

Rerun after changing a value here: ``python scripts/make_paper_configs.py``.
"""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent / "configs" / "paper"
LLADA = "GSAI-ML/LLaDA-8B-Instruct"
LORA = {
    "use_peft": True,
    "lora_r": 128,
    "lora_alpha": 64,
    "lora_dropout": 0.05,
    # LLaDA's seven projections per block (the matched-budget runs adapt all of them).
    "lora_target_modules": ["q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj", "ff_out"],
}
# ESPO (recipes/train.yaml:11) and d1 (diffu_grpo_train.py:95) pass Llama's names; peft adapts the four of them
# that LLaDA has (q_proj, k_proj, v_proj, up_proj) and skips the rest, which trafl accepts only when told so.
LORA_AS_PUBLISHED = {
    **LORA,
    "lora_target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj", "gate_proj"],
    "lora_allow_unmatched_targets": True,
}
TASKS = {"gsm8k": "gsm8k", "math": "math", "code": "kodcode"}
# GSM8K train; MATH minus MATH-500 (PRM800K's split, `ankner/math-500` train), what all three originals train on.
TRAIN_PROMPTS = {"gsm8k": 7473, "math": 12000}
MATH_SOURCE = {"source": "prm800k"}

# ---- as published (per device, 8 GPUs) ------------------------------------------------------------------
# d1's trainer settings (slurm_scripts/train.yaml), which its forks wd1 and SPG keep.
D1_COMMON = {
    **LORA_AS_PUBLISHED,
    "learning_rate": 3e-6,
    "lr_scheduler_type": "constant",
    "warmup_steps": 0,
    "weight_decay": 0.1,
    "adam_beta1": 0.9,
    "adam_beta2": 0.99,
    "max_grad_norm": 0.2,
    "num_generations": 6,
    "per_device_train_batch_size": 6,
    "gradient_accumulation_steps": 2,
    "temperature": 0.9,
    "max_completion_length": 256,
    "diffusion_steps": 128,
    "block_length": 32,
    "max_prompt_length": 200,
    "prompt_truncation": "left",
    "seed": 42,
}
PUBLISHED = {
    # d1 slurm_scripts/train.yaml + gsm_base.sbatch: 1 prompt x G 6 per device, GA 2 -> 16 prompts/step, 10 epochs;
    # its XML prompt and rewards (correctness 2.0 + format rewards, weights 1), prompts cut from the left at 200.
    "diffu_grpo": {
        "common": D1_COMMON,
        "gsm8k": {
            "max_steps": TRAIN_PROMPTS["gsm8k"] * 10 // 16,
            "task_options": {"prompt_template": "d1", "rewards": "d1"},
        },
        "math": {
            "max_steps": TRAIN_PROMPTS["math"] * 10 // 16,
            "task_options": {**MATH_SOURCE, "prompt_template": "d1", "rewards": "d1"},
        },
    },
    # ESPO recipes/train.yaml overridden by run_{gsm8k,math}_llada.sh: 16 prompts/step (G 6; math: G 16), 1 epoch;
    # prompts cut from the left at 400; correctness is the only reward.
    "espo": {
        "common": {
            **LORA_AS_PUBLISHED,
            "learning_rate": 3e-6,
            "lr_scheduler_type": "constant",
            "warmup_steps": 0,
            "weight_decay": 0.01,
            "adam_beta1": 0.9,
            "adam_beta2": 0.99,
            "max_grad_norm": 0.2,
            "temperature": 1.0,
            "max_completion_length": 256,
            "diffusion_steps": 256,
            "block_length": 32,
            "max_prompt_length": 400,
            "prompt_truncation": "left",
            "seed": 42,
        },
        "gsm8k": {
            "num_generations": 6,
            "per_device_train_batch_size": 6,
            "gradient_accumulation_steps": 2,
            "max_steps": TRAIN_PROMPTS["gsm8k"] // 16,
            "task_options": {"prompt_template": "espo", "rewards": "espo"},
        },
        "math": {
            # 2 completions x 16 accumulation x 8 GPUs / G 16 = 16 prompts per update (run_math_llada.sh:20-23)
            "num_generations": 16,
            "per_device_train_batch_size": 16,
            "gradient_accumulation_steps": 2,
            "max_steps": TRAIN_PROMPTS["math"] // 16,
            "task_options": {**MATH_SOURCE, "prompt_template": "espo", "rewards": "espo"},
        },
    },
    # JustGRPO train.py: full fine-tuning, 1 prompt x G 16 per device, GA 8 -> 64 prompts/step, 125 steps; its
    # clip 1.0 acts on the gradient summed over the 8 micro-steps = 0.125 on trafl's averaged loss. Prompts are never
    # truncated there: the limit is a bound that no prompt reaches, and a longer one stops the run.
    "justgrpo": {
        "common": {
            "use_peft": False,
            "learning_rate": 5e-6,
            "lr_scheduler_type": "constant",
            "warmup_steps": 0,
            "weight_decay": 0.0,
            "adam_beta1": 0.9,
            "adam_beta2": 0.999,
            "max_grad_norm": 0.125,
            "num_generations": 16,
            "per_device_train_batch_size": 16,
            "gradient_accumulation_steps": 8,
            "max_completion_length": 256,
            "max_steps": 125,
            "seed": 1234,
        },
        "gsm8k": {"max_prompt_length": 512, "task_options": {"prompt_template": "justgrpo"}},
        # its MATH set keeps problems of under 1,500 characters (data/math.py:127)
        "math": {
            "max_prompt_length": 1024,
            "task_options": {**MATH_SOURCE, "prompt_template": "justgrpo", "max_problem_chars": 1499},
        },
    },
    # wd1 (xiaohangt/wd1) wd1/train.yaml + run/wll_NP_{gsm8k,math}.sh: d1's recipe and code base on 4 GPUs
    # (--num_processes 4): 1 prompt x G 6 per device, GA 2 -> 8 prompts/step, 10 epochs; d1's XML prompt and rewards.
    "wd1": {
        "common": D1_COMMON,
        "gsm8k": {
            "max_steps": TRAIN_PROMPTS["gsm8k"] // 8 * 10,
            "task_options": {"prompt_template": "d1", "rewards": "d1"},
        },
        "math": {
            "max_steps": TRAIN_PROMPTS["math"] // 8 * 10,
            "task_options": {**MATH_SOURCE, "prompt_template": "d1", "rewards": "d1"},
        },
    },
}
#: The authors' process count where it is not 8 (the per-device values above are for it).
PUBLISHED_GPUS = {"wd1": 4}
# SPG (facebookresearch/SPG, a d1 fork) spg/slurm_scripts/train.yaml + spg_mix/{gsm,math}_base_spg_mix_beta1.5_weight0.5
# .sbatch: d1's geometry (1 prompt x G 6 per device, GA 2: the sbatch overrides train.yaml's 4) -> 16 prompts/step,
# 10 epochs; its 4 inner iterations, no KL and the ELBO/EUBO mixture are the objective's defaults. d1's data and XML
# prompt; its rewards are d1's but for the xmlcount penalty (rewards: spg).
PUBLISHED["spg"] = {
    "common": D1_COMMON,
    "gsm8k": {
        "max_steps": TRAIN_PROMPTS["gsm8k"] * 10 // 16,
        "task_options": {"prompt_template": "d1", "rewards": "spg"},
    },
    "math": {
        "max_steps": TRAIN_PROMPTS["math"] * 10 // 16,
        "task_options": {**MATH_SOURCE, "prompt_template": "d1", "rewards": "spg"},
    },
}
SHARED_RUNTIME = {
    "model": LLADA,
    "gradient_checkpointing": True,
    "bf16": True,
    "remasking": "low_confidence",
    "max_prompt_length": 512,
    "save_steps": 100,
    "save_total_limit": 3,
}

# ---- matched budget ---------------------------------------------------------------------------------------
MATCHED_COMMON = {
    **SHARED_RUNTIME,
    **LORA,
    "temperature": 0.9,
    "block_length": 32,
    "max_steps": 2000,
    "lr_scheduler_type": "constant",
    "warmup_steps": 0,
    "max_grad_norm": 0.2,
    "adam_beta1": 0.9,
    "adam_beta2": 0.99,
    "weight_decay": 0.1,
    "learning_rate": 3e-6,
    "num_generations": 8,
    "per_device_train_batch_size": 8,
    "gradient_accumulation_steps": 2,
    "seed": 42,
}
MATCHED_METHODS = {
    "trafl": {"logz_lr": 1e-3, "reward_transform": "group_norm", "logz": "learned"},
    "espo": {},
    "justgrpo": {"ar_chunk_size": 32},
    "diffu_grpo": {},
    "wd1": {},
    "spg": {},
}


def published(method: str, task: str) -> dict:
    spec = PUBLISHED[method]
    cfg = {**SHARED_RUNTIME, **spec["common"], **spec[task], "task": TASKS[task], "method": method}
    cfg["output_dir"] = f"runs/published_{method}_{task}"
    return cfg


def matched(task: str, length: int, method: str) -> dict:
    cfg = {
        **MATCHED_COMMON,
        **MATCHED_METHODS[method],
        "task": TASKS[task],
        "method": method,
        "max_completion_length": length,
    }
    if task == "math":
        cfg["task_options"] = dict(MATH_SOURCE)
    if method == "justgrpo":
        # Left-to-right rollouts at T = 1 (its premise): block 1 and one step per token come from its recipe.
        for key in ("block_length", "temperature"):
            cfg.pop(key)
    else:
        cfg["diffusion_steps"] = length // 2
    if method == "trafl":
        # beta is per token of the canvas-normalised ELBO: keep the tilt L * beta = 2.56 at both lengths.
        cfg["beta"] = 2.56 / length
    cfg["output_dir"] = f"runs/llada8b_{task}_{length}_{method}"
    return cfg


def _write(path: Path, header: str, cfg: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml.safe_dump(cfg, sort_keys=False))


def main() -> None:
    for task in TASKS:
        for length in (256, 512):
            for method in MATCHED_METHODS:
                _write(
                    ROOT / f"llada8b_{task}_{length}_{method}.yaml",
                    f"# LLaDA-8B-Instruct, {task}, completion length {length}, {method}: matched budget.\n"
                    "# Generated by scripts/make_paper_configs.py; see configs/README.md for the sources.\n",
                    matched(task, length, method),
                )
    for method in PUBLISHED:
        for task in ("gsm8k", "math"):
            _write(
                ROOT / "published" / f"{method}_{task}.yaml",
                f"# {method} on {task} as its authors ran it ({PUBLISHED_GPUS.get(method, 8)} GPUs; per-device values).\n"
                "# Generated by scripts/make_paper_configs.py; every value's source and every deviation:\n"
                "# docs/published-recipes.md.\n",
                published(method, task),
            )


if __name__ == "__main__":
    main()
