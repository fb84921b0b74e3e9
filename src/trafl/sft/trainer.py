"""Masked-diffusion supervised fine-tuning (``trafl sft``).

Trains a tiny LLaDA-architecture model from scratch (preset + character tokenizer built from the
data) or continues a checkpoint, with the loss of :mod:`trafl.sft.loss`. Writes resumable
checkpoints and, at the end, the model and tokenizer in Hugging Face format (atomically).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from trafl.errors import ConfigError
from trafl.sft.config import SFTConfig
from trafl.sft.data import EncodedPair, collate, encode_pairs, read_pairs
from trafl.sft.loss import forward_process, masked_diffusion_loss, masked_token_nll
from trafl.utils.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from trafl.utils.config import save_config
from trafl.utils.io import append_jsonl, atomic_directory
from trafl.utils.seed import seed_everything


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def make_scheduler(optimizer: torch.optim.Optimizer, kind: str, warmup: int, total: int):
    """Linear warm-up to the peak rate, then cosine / linear decay to 0, or constant."""

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if kind == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        if kind == "linear":
            return 1.0 - progress
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _is_preset(name: str) -> bool:
    from trafl.models.presets import PRESETS

    return name in PRESETS


def init_model_and_tokenizer(cfg: SFTConfig, rows: list[dict]) -> tuple[Any, Any]:
    """A fresh preset model with a character tokenizer fitted to the data, or a loaded checkpoint."""
    from trafl.models import build_model, load_pretrained
    from trafl.models.tokenizer import build_char_tokenizer

    if _is_preset(cfg.model):
        alphabet = sorted({ch for r in rows for ch in r["prompt"] + r["completion"]})
        tokenizer = build_char_tokenizer(alphabet)
        model = build_model(
            cfg.model,
            vocab_size=len(tokenizer),
            embedding_size=len(tokenizer),
            mask_token_id=tokenizer.mask_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
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
    model: Any, pairs: list[EncodedPair], pad_token_id: int, mask_token_id: int, device: torch.device,
    batch_size: int = 64, seed: int = 1234, eps: float = 1e-3,
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
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    out = Path(cfg.output_dir)
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
    mask_id, pad_id = model.config.mask_token_id, tokenizer.pad_token_id
    if pad_id is None:
        pad_id = tokenizer.eos_token_id
    train_pairs = encode_pairs(train_rows, tokenizer, cfg.completion_length, source=cfg.data,
                               use_chat_template=cfg.use_chat_template)
    eval_pairs = encode_pairs(eval_rows, tokenizer, cfg.completion_length, source=cfg.eval_data or cfg.data,
                              use_chat_template=cfg.use_chat_template)
    if cfg.dtype == "bfloat16" and device.type == "cuda":
        autocast = torch.autocast("cuda", dtype=torch.bfloat16)
    else:
        autocast = torch.autocast(device.type, enabled=False)
    model.to(device)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    scheduler = make_scheduler(optimizer, cfg.lr_schedule, cfg.warmup_steps, cfg.max_steps)

    start_step, epoch_order, cursor = 0, None, 0
    if cfg.resume and (ckpt := latest_checkpoint(out)) is not None:
        state = load_checkpoint(ckpt, model=model, optimizer=optimizer, scheduler=scheduler)
        start_step = state["step"]
        epoch_order, cursor = state["extra"]["order"], state["extra"]["cursor"]
    save_config(cfg, out / "sft_config.yaml")

    data_rng = random.Random(cfg.seed + 1)
    if start_step:
        data_rng.setstate(state["extra"]["data_rng"])
    if epoch_order is None:
        epoch_order = list(range(len(train_pairs)))
        random.Random(cfg.seed).shuffle(epoch_order)

    initial = evaluate_loss(model, eval_pairs, pad_id, mask_id, device) if eval_pairs else float("nan")
    history: list[dict] = []
    bar = tqdm(range(start_step, cfg.max_steps), disable=not progress, desc="sft", dynamic_ncols=True,
               initial=start_step, total=cfg.max_steps)
    for step in bar:
        idx = []
        while len(idx) < cfg.batch_size:
            if cursor >= len(epoch_order):
                epoch_order = list(range(len(train_pairs)))
                data_rng.shuffle(epoch_order)
                cursor = 0
            take = epoch_order[cursor : cursor + cfg.batch_size - len(idx)]
            idx += take
            cursor += len(take)
        batch = {k: v.to(device) for k, v in collate([train_pairs[i] for i in idx], pad_id).items()}
        noisy, masked, p_mask = forward_process(batch["input_ids"], batch["completion_mask"], mask_id, cfg.eps)
        with autocast:
            logits = model(noisy, attention_mask=batch["attention_mask"]).logits
        loss = masked_diffusion_loss(logits, batch["input_ids"], masked, p_mask, batch["completion_mask"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        optimizer.step()
        scheduler.step()
        record = {"step": step + 1, "loss": float(loss.detach()), "lr": scheduler.get_last_lr()[0]}
        done = step + 1
        if eval_pairs and cfg.eval_every and done % cfg.eval_every == 0:
            record["eval_loss"] = evaluate_loss(model, eval_pairs, pad_id, mask_id, device)
        append_jsonl(out / "sft_metrics.jsonl", record)
        history.append(record)
        bar.set_postfix(loss=f"{record['loss']:.3f}", **({"eval": f"{record['eval_loss']:.3f}"} if "eval_loss" in record else {}))
        if cfg.save_every and done % cfg.save_every == 0 and done < cfg.max_steps:
            save_checkpoint(out, done, model=model, optimizer=optimizer, scheduler=scheduler,
                            extra={"order": epoch_order, "cursor": cursor, "data_rng": data_rng.getstate()},
                            tokenizer=tokenizer)

    final = evaluate_loss(model, eval_pairs, pad_id, mask_id, device) if eval_pairs else float("nan")
    with atomic_directory(out / "model") as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return SFTResult(out / "model", cfg.max_steps, initial, final, history)
