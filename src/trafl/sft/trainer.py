"""Masked-diffusion supervised fine-tuning (``trafl sft``).

Trains a tiny LLaDA-architecture model from scratch (preset + character tokenizer built from the
data) or continues a checkpoint, with the loss of :mod:`trafl.sft.loss`. Writes resumable
checkpoints and, at the end, the model and tokenizer in Hugging Face format (atomically).

Runs on an :class:`accelerate.Accelerator` like the RL trainer (one process, or ``torchrun`` /
``accelerate launch`` for DDP and FSDP). Optimizer step ``k`` takes the ``batch_size`` examples at
positions ``[k B, (k + 1) B)`` of the seeded, per-epoch reshuffled example stream
(:func:`trafl.train.data.prompt_indices_for_step`); process ``r`` of ``n`` takes a contiguous slice,
split into ``gradient_accumulation_steps`` micro-batches, and the masks of the ``j``-th micro-batch of
the global batch are drawn from a generator seeded by ``(seed, k, j)``. So ``n`` processes with ``a``
micro-batches each compute the same update as one process with ``n a``, and a resumed run needs no
data state beyond the step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from trafl.errors import ConfigError
from trafl.sft.config import SFTConfig
from trafl.sft.data import EncodedPair, collate, encode_pairs, read_pairs
from trafl.sft.loss import (
    end_blocks,
    forward_process,
    masked_diffusion_loss,
    masked_token_nll,
    mixed_forward_process,
)
from trafl.train.data import prompt_indices_for_step, split_for_process, step_seed
from trafl.utils.checkpoint import (
    checkpoint_step,
    export_pretrained,
    load_checkpoint,
    save_checkpoint,
    shared_atomic_directory,
)
from trafl.utils.config import save_config, to_dict
from trafl.utils.distributed import configure_deepspeed, make_accelerator, micro_batch
from trafl.utils.io import append_jsonl
from trafl.utils.run_dir import (
    SFT_RUN,
    FieldRules,
    check_resume_step,
    open_run_dir,
    record_resume,
    resume_changes,
    truncate_metrics,
)
from trafl.utils.schedule import make_scheduler
from trafl.utils.seed import seed_everything

#: On ``--resume``: AdamW's hyper-parameters live in its restored state (a new value would be ignored);
#: the starting model and the tokenizer built from the data define the checkpoint.
SFT_RESUME_RULES = FieldRules(
    restored=("learning_rate", "weight_decay"),
    fixed=("model",),
    ignored=("resume", "overwrite", "output_dir"),
)


def _is_preset(name: str) -> bool:
    from trafl.models.presets import PRESETS

    return name in PRESETS


def init_model_and_tokenizer(cfg: SFTConfig, rows: list[dict]) -> tuple[Any, Any]:
    """A fresh preset model with a character tokenizer fitted to the data, or a loaded checkpoint."""
    from trafl.models import build_model, load_pretrained, tokenizer_fields
    from trafl.models.tokenizer import build_char_tokenizer

    if _is_preset(cfg.model):
        alphabet = sorted({ch for r in rows for ch in r["prompt"] + r["completion"]})
        tokenizer = build_char_tokenizer(alphabet)
        model = build_model(
            cfg.model,
            **tokenizer_fields(tokenizer),
            max_sequence_length=max(256, 2 * cfg.completion_length + 64),
        )
        return model, tokenizer
    if Path(cfg.model).exists() or "/" in cfg.model:
        return load_pretrained(cfg.model)
    from trafl.models.presets import PRESETS

    raise ConfigError(
        f"config field 'model': '{cfg.model}' is neither a preset ({', '.join(PRESETS)}) nor an existing directory"
    )


@dataclass
class SFTResult:
    output_dir: Path
    steps: int
    initial_eval_loss: float
    final_eval_loss: float
    history: list[dict] = field(default_factory=list)


@torch.no_grad()
def evaluate_loss(
    model: Any,
    pairs: list[EncodedPair],
    pad_token_id: int,
    mask_token_id: int,
    device: torch.device,
    batch_size: int = 64,
    seed: int = 1234,
    eps: float = 1e-3,
) -> float:
    """Held-out masked-token cross-entropy at fixed (seeded) mask draws: comparable across steps."""
    from trafl.models.interface import get_logits

    was_training = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    total, count = 0.0, 0
    for i in range(0, len(pairs), batch_size):
        batch = collate(pairs[i : i + batch_size], pad_token_id)
        noisy, masked, _ = forward_process(batch["input_ids"], batch["completion_mask"], mask_token_id, eps, gen)
        logits = get_logits(model, noisy.to(device), batch["attention_mask"].to(device))
        n = int(masked.sum())
        if n:
            total += float(masked_token_nll(logits, batch["input_ids"].to(device), masked.to(device))) * n
            count += n
    model.train(was_training)
    return total / max(count, 1)


def run_sft(cfg: SFTConfig, progress: bool = True) -> SFTResult:
    """Train according to ``cfg``; returns the held-out loss before and after."""
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    cpu = cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available())
    if cfg.device.startswith("cuda:"):  # one process on a chosen GPU (accelerate uses the current one)
        torch.cuda.set_device(torch.device(cfg.device))
    accelerator = make_accelerator(cpu)
    rank, world, device = accelerator.process_index, accelerator.num_processes, accelerator.device
    main = accelerator.is_main_process
    micro_batches = cfg.gradient_accumulation_steps
    if cfg.batch_size % (world * micro_batches):
        raise ConfigError(
            f"config field 'batch_size' ({cfg.batch_size}) must be a multiple of processes x "
            f"'gradient_accumulation_steps' ({world} x {micro_batches})"
        )
    micro = cfg.batch_size // (world * micro_batches)
    seed_everything(cfg.seed)  # the same initialisation on every process
    out = Path(cfg.output_dir)
    # Before anything is loaded: refuse to mix this run with another one in the folder.
    ckpt = open_run_dir(out, SFT_RUN, resume=cfg.resume, overwrite=cfg.overwrite, is_main=main)
    if ckpt is not None:
        check_resume_step(step := checkpoint_step(ckpt), cfg.max_steps, ckpt)
        changes = resume_changes(out / SFT_RUN.config, to_dict(cfg), SFT_RESUME_RULES, step)
    accelerator.wait_for_everyone()
    rows = read_pairs(cfg.data)
    if cfg.eval_data:
        eval_rows = read_pairs(cfg.eval_data)
        train_rows = rows
    else:
        shuffled = rows[:]
        random.Random(cfg.seed).shuffle(shuffled)
        n_eval = int(round(len(rows) * cfg.eval_fraction))
        eval_rows, train_rows = shuffled[:n_eval], shuffled[n_eval:]
    if not train_rows:
        raise ConfigError("no training examples left after holding out eval_fraction; lower it or pass --eval-data")

    model, tokenizer = init_model_and_tokenizer(cfg, rows + (eval_rows if cfg.eval_data else []))
    mask_id, pad_id, eos_id = model.config.mask_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id
    if pad_id is None:
        pad_id = tokenizer.eos_token_id
    canvases = {"extra_lengths": cfg.extra_completion_lengths, "seed": cfg.seed}
    train_pairs = encode_pairs(
        train_rows,
        tokenizer,
        cfg.completion_length,
        source=cfg.data,
        use_chat_template=cfg.use_chat_template,
        **canvases,
    )
    eval_pairs = encode_pairs(
        eval_rows,
        tokenizer,
        cfg.completion_length,
        source=cfg.eval_data or cfg.data,
        use_chat_template=cfg.use_chat_template,
        **canvases,
    )
    if cfg.dtype == "bfloat16" and device.type == "cuda":
        autocast = torch.autocast("cuda", dtype=torch.bfloat16)
    else:
        autocast = torch.autocast(device.type, enabled=False)
    model.to(device)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    scheduler = make_scheduler(optimizer, cfg.lr_schedule, cfg.warmup_steps, cfg.max_steps)
    configure_deepspeed(accelerator, micro, cfg.max_grad_norm)
    wrapped, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(scheduler)  # not prepared: accelerate would step it per process

    start_step = 0
    if ckpt is not None:
        start_step = load_checkpoint(accelerator, ckpt)["step"]
        if main:
            record_resume(out, start_step, changes)
    if main:  # drop metrics of steps after the checkpoint (all of them on a fresh start)
        truncate_metrics(out / SFT_RUN.metrics, start_step)
        save_config(cfg, out / "sft_config.yaml")
    accelerator.wait_for_everyone()

    def held_out() -> float:  # every process evaluates (a sharded model's forward is collective)
        return evaluate_loss(wrapped, eval_pairs, pad_id, mask_id, device) if eval_pairs else float("nan")

    initial = held_out()
    history: list[dict] = []
    bar = tqdm(
        range(start_step, cfg.max_steps),
        disable=not (progress and main),
        desc="sft",
        dynamic_ncols=True,
        initial=start_step,
        total=cfg.max_steps,
    )
    for step in bar:
        torch.manual_seed(step_seed(cfg.seed, step, rank, 0, "sft-global"))  # dropout, if any
        mine = split_for_process(prompt_indices_for_step(len(train_pairs), cfg.batch_size, step, cfg.seed), rank, world)
        optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for m in range(micro_batches):
            batch = {
                k: v.to(device)
                for k, v in collate([train_pairs[i] for i in mine[m * micro : (m + 1) * micro]], pad_id).items()
            }
            gen = torch.Generator(device=device).manual_seed(
                step_seed(cfg.seed, step, rank * micro_batches + m, 0, "sft-noise")
            )
            noisy, masked, p_mask = mixed_forward_process(
                batch["input_ids"],
                batch["completion_mask"],
                mask_id,
                cfg.eps,
                gen,
                cfg.semi_ar_block_length,
                cfg.semi_ar_fraction,
                end_blocks(batch["input_ids"], batch["completion_mask"], eos_id, cfg.semi_ar_block_length)
                if cfg.semi_ar_end_share  # the config requires semi_ar_block_length with it
                else None,
                cfg.semi_ar_end_share,
            )
            with micro_batch(accelerator, wrapped, m == micro_batches - 1), autocast:
                logits = wrapped(noisy, attention_mask=batch["attention_mask"]).logits
                loss = masked_diffusion_loss(logits, batch["input_ids"], masked, p_mask, batch["completion_mask"])
                accelerator.backward(loss / micro_batches)
            total += float(loss.detach()) / micro_batches
        if cfg.max_grad_norm:
            accelerator.clip_grad_norm_(wrapped.parameters(), cfg.max_grad_norm)
        optimizer.step()
        scheduler.step()
        mean_loss = (
            float(accelerator.reduce(torch.tensor(total, device=device), reduction="mean")) if world > 1 else total
        )
        done = step + 1
        record = {"step": done, "loss": mean_loss, "lr": scheduler.get_last_lr()[0]}
        if eval_pairs and cfg.eval_every and done % cfg.eval_every == 0:
            record["eval_loss"] = held_out()
        if main:
            append_jsonl(out / "sft_metrics.jsonl", record)
        history.append(record)
        bar.set_postfix(
            loss=f"{record['loss']:.3f}", **({"eval": f"{record['eval_loss']:.3f}"} if "eval_loss" in record else {})
        )
        if cfg.save_every and done % cfg.save_every == 0 and done < cfg.max_steps:
            save_checkpoint(accelerator, out, done, model=wrapped, tokenizer=tokenizer, keep_last=2)

    final = held_out()
    with shared_atomic_directory(accelerator, out / "model") as tmp:
        export_pretrained(accelerator, wrapped, tmp, tokenizer)
    return SFTResult(out / "model", cfg.max_steps, initial, final, history)
