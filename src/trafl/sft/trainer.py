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
data state beyond the step. The accelerator, the run folder, resume, checkpoints, metrics and the
final export are the shared scaffold's (:class:`trafl.utils.run.Run`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

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
from trafl.train.data import prompt_indices_for_step, split_for_process
from trafl.utils.distributed import configure_deepspeed, micro_batch
from trafl.utils.run import Run
from trafl.utils.run_dir import SFT_RUN, FieldRules
from trafl.utils.schedule import make_scheduler
from trafl.utils.seed import step_seed

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
    from trafl.models.loading import is_hub_id
    from trafl.models.tokenizer import build_char_tokenizer

    if _is_preset(cfg.model):
        alphabet = sorted({ch for r in rows for ch in r["prompt"] + r["completion"]})
        tokenizer = build_char_tokenizer(alphabet)
        model = build_model(
            cfg.model,
            **tokenizer_fields(tokenizer),
            max_sequence_length=max(256, 2 * cfg.max_completion_length + 64),
        )
        return model, tokenizer
    if Path(cfg.model).exists() or is_hub_id(cfg.model):  # the loader's own rule for a hub id
        return load_pretrained(cfg.model)
    from trafl.models.presets import PRESETS

    raise ConfigError(
        f"config field 'model': '{cfg.model}' is neither a preset ({', '.join(PRESETS)}), an existing directory "
        "nor a hub id of the form owner/name"
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


def split_rows(cfg: SFTConfig) -> tuple[list[dict], list[dict], list[dict]]:
    """``(every row read, training rows, held-out rows)``: ``eval_data`` when given, else a seeded
    ``eval_fraction`` of ``data`` (``random.Random(seed)``'s shuffle, kept as it always was: an integer
    seed, not :func:`trafl.utils.seed.seeded_rng`'s string; the rest trains)."""
    rows = read_pairs(cfg.data)
    if cfg.eval_data:
        eval_rows = read_pairs(cfg.eval_data)
        everything, train_rows = rows + eval_rows, rows
    else:
        shuffled = rows[:]
        random.Random(cfg.seed).shuffle(shuffled)
        n_eval = int(round(len(rows) * cfg.eval_fraction))
        everything, eval_rows, train_rows = rows, shuffled[:n_eval], shuffled[n_eval:]
    if not train_rows:
        raise ConfigError("no training examples left after holding out eval_fraction; lower it or pass --eval-data")
    return everything, train_rows, eval_rows


def micro_batch_size(cfg: SFTConfig, world: int) -> int:
    """Examples per micro-batch: ``batch_size / (processes x gradient_accumulation_steps)``, a whole number."""
    if cfg.batch_size % (world * cfg.gradient_accumulation_steps):
        raise ConfigError(
            f"config field 'batch_size' ({cfg.batch_size}) must be a multiple of processes x "
            f"'gradient_accumulation_steps' ({world} x {cfg.gradient_accumulation_steps})"
        )
    return cfg.batch_size // (world * cfg.gradient_accumulation_steps)


def corrupt(
    cfg: SFTConfig, batch: dict[str, torch.Tensor], mask_id: int, eos_id: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(noisy ids, masked positions, p_mask)`` of a batch: the forward process of :mod:`trafl.sft.loss`,
    semi-autoregressive for a share of the rows when ``semi_ar_block_length`` is set."""
    ids, completion = batch["input_ids"], batch["completion_mask"]
    ends = end_blocks(ids, completion, eos_id, cfg.semi_ar_block_length) if cfg.semi_ar_end_share else None
    return mixed_forward_process(
        ids,
        completion,
        mask_id,
        cfg.eps,
        gen,
        semi_ar_block_length=cfg.semi_ar_block_length,
        semi_ar_fraction=cfg.semi_ar_fraction,
        end_block=ends,
        end_share=cfg.semi_ar_end_share,
    )


def encode_splits(
    cfg: SFTConfig, tokenizer: Any, train_rows: list[dict], eval_rows: list[dict]
) -> tuple[list[EncodedPair], list[EncodedPair]]:
    """The training and held-out rows as canvases of ``max_completion_length`` (and the extra lengths)."""
    encode = dict(use_chat_template=cfg.use_chat_template, extra_lengths=cfg.extra_completion_lengths, seed=cfg.seed)
    train = encode_pairs(train_rows, tokenizer, cfg.max_completion_length, source=cfg.data, **encode)
    held_out = encode_pairs(eval_rows, tokenizer, cfg.max_completion_length, source=cfg.eval_data or cfg.data, **encode)
    return train, held_out


def prepare_training(cfg: SFTConfig, accelerator: Any, model: Any, micro: int) -> tuple[Any, Any, Any]:
    """``(wrapped model, optimizer, scheduler)``: AdamW on every parameter and the schedule, prepared by
    ``accelerator``, which saves and restores the scheduler with every checkpoint."""
    model.to(accelerator.device)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    scheduler = make_scheduler(optimizer, cfg.lr_scheduler_type, cfg.warmup_steps, cfg.max_steps)
    configure_deepspeed(accelerator, micro, cfg.max_grad_norm)
    wrapped, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(scheduler)  # not prepared: accelerate would step it per process
    return wrapped, optimizer, scheduler


def run_sft(cfg: SFTConfig, progress: bool = True) -> SFTResult:
    """Train according to ``cfg``; returns the held-out loss before and after."""
    run = Run(cfg, SFT_RUN, SFT_RESUME_RULES, progress=progress)
    accelerator, device, rank, world = run.accelerator, run.device, run.rank, run.world
    micro, micro_batches = micro_batch_size(cfg, world), cfg.gradient_accumulation_steps
    run.open()  # before anything is loaded: refuse to mix this run with another one in the folder

    rows, train_rows, eval_rows = split_rows(cfg)
    model, tokenizer = init_model_and_tokenizer(cfg, rows)
    mask_id, eos_id = model.config.mask_token_id, tokenizer.eos_token_id
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_id
    train_pairs, eval_pairs = encode_splits(cfg, tokenizer, train_rows, eval_rows)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16 and device.type == "cuda")
    wrapped, optimizer, scheduler = prepare_training(cfg, accelerator, model, micro)
    start = run.start()

    def held_out() -> float:  # every process evaluates (a sharded model's forward is collective)
        return evaluate_loss(wrapped, eval_pairs, pad_id, mask_id, device) if eval_pairs else float("nan")

    initial, history = held_out(), []
    bar = run.progress_bar("sft", start)
    for step in range(start, cfg.max_steps):
        torch.manual_seed(step_seed(cfg.seed, step, rank, 0, "sft-global"))  # dropout, if any
        mine = split_for_process(prompt_indices_for_step(len(train_pairs), cfg.batch_size, step, cfg.seed), rank, world)
        optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for m in range(micro_batches):
            pairs = [train_pairs[i] for i in mine[m * micro : (m + 1) * micro]]
            batch = {k: v.to(device) for k, v in collate(pairs, pad_id).items()}
            seed = step_seed(cfg.seed, step, rank * micro_batches + m, 0, "sft-noise")
            noisy, masked, p_mask = corrupt(
                cfg, batch, mask_id, eos_id, torch.Generator(device=device).manual_seed(seed)
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
        if world > 1:
            total = float(accelerator.reduce(torch.tensor(total, device=device), reduction="mean"))
        record = {"step": step + 1, "loss": total, "lr": scheduler.get_last_lr()[0]}
        if eval_pairs and cfg.eval_steps and (step + 1) % cfg.eval_steps == 0:
            record["eval_loss"] = held_out()
        run.log(record, step + 1)
        history.append(record)
        bar.update(1)
        bar.set_postfix(
            loss=f"{total:.3f}", **({"eval": f"{record['eval_loss']:.3f}"} if "eval_loss" in record else {})
        )
        if run.due(cfg.save_steps, step + 1):
            run.save(step + 1, wrapped, tokenizer)
    bar.close()
    run.close()
    final = held_out()
    return SFTResult(run.export("model", wrapped, tokenizer), cfg.max_steps, initial, final, history)
