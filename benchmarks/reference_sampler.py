"""The LLaDA reference sampling loop in plain PyTorch: the benchmark's baseline.

Written from the algorithm of ``generate.py`` in ML-GSAI/LLaDA, with its costs kept on purpose:
one full forward over the whole canvas per step, Gumbel noise and a float64 softmax over *every*
position of the canvas, and a Python loop over rows for the top-k commit. No cache.

One change from the published loop, the same one trafl documents: the mask token's logit is set
to ``-inf`` before sampling (the published loop can propose the mask token itself). Without it
the two samplers would only agree for models that give the mask token no probability.

Algorithm, for a canvas ``x = [prompt | L x MASK]`` and ``L / b`` blocks of ``s' = steps / (L/b)``
steps: at step ``j`` of a block, ``x0 = argmax(l - T log(-log u))`` (``argmax l`` at ``T = 0``),
confidence ``c = softmax(l)[x0]`` (or ``U(0,1)`` for random remasking), ``-inf`` right of the block
and on committed positions, and each row commits its ``k_j = n // s' + [j < n mod s']`` most
confident positions.
"""

from __future__ import annotations

import torch


def _num_transfer(block_masked: torch.Tensor, steps: int) -> torch.Tensor:
    n = block_masked.sum(dim=1, keepdim=True)
    base = n // steps
    counts = base.repeat(1, steps)
    for row in range(counts.shape[0]):  # the reference's own per-row loop
        counts[row, : int(n[row] % steps)] += 1
    return counts


@torch.no_grad()
def reference_generate(
    model,
    prompt: torch.Tensor,
    attention_mask: torch.Tensor | None,
    *,
    gen_length: int,
    steps: int,
    block_length: int,
    mask_token_id: int,
    temperature: float = 0.0,
    remasking: str = "low_confidence",
) -> torch.Tensor:
    """``[B, P + L]`` final canvases from the reference loop (greedy at ``temperature = 0``)."""
    batch, prompt_length = prompt.shape
    x = torch.full((batch, prompt_length + gen_length), mask_token_id, dtype=torch.long, device=prompt.device)
    x[:, :prompt_length] = prompt
    if attention_mask is not None:
        attention_mask = torch.cat(
            [attention_mask, torch.ones(batch, gen_length, dtype=attention_mask.dtype, device=prompt.device)], dim=1
        )
    num_blocks = gen_length // block_length
    steps_per_block = steps // num_blocks
    for block in range(num_blocks):
        start = prompt_length + block * block_length
        end = start + block_length
        counts = _num_transfer(x[:, start:end] == mask_token_id, steps_per_block)
        for j in range(steps_per_block):
            mask_index = x == mask_token_id
            out = model(x, attention_mask=attention_mask) if attention_mask is not None else model(x)
            logits = (out.logits if hasattr(out, "logits") else out).to(torch.float64)
            logits[..., mask_token_id] = -torch.inf
            if temperature > 0:
                u = torch.rand_like(logits)
                x0 = (logits - temperature * torch.log(-torch.log(u))).argmax(dim=-1)
            else:
                x0 = logits.argmax(dim=-1)
            if remasking == "low_confidence":
                p = torch.softmax(logits, dim=-1)
                x0_p = torch.gather(p, -1, x0.unsqueeze(-1)).squeeze(-1)
            else:
                x0_p = torch.rand(x0.shape, dtype=torch.float64, device=x0.device)
            x0_p[:, end:] = -torch.inf
            x0 = torch.where(mask_index, x0, x)
            confidence = torch.where(mask_index, x0_p, torch.full_like(x0_p, -torch.inf))
            transfer = torch.zeros_like(x0, dtype=torch.bool)
            for row in range(batch):
                _, chosen = torch.topk(confidence[row], k=int(counts[row, j]))
                transfer[row, chosen] = True
            x[transfer] = x0[transfer]
    return x
