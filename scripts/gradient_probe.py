"""Does one step along an objective's gradient raise the reward?  A line search on training prompts.

    python scripts/gradient_probe.py --objective espo --surrogate trajectory --remasking random \
        --group-size 64 --steps=-0.05,0,0.01,0.02,0.05

1. Sample ``group_size`` rollouts for every training prompt of ``--task`` from ``--model``.
2. Compute the objective's loss on them (micro-batched by ``--micro-prompts`` prompt groups) and
   its gradient ``g`` (the objective ``sft_pos`` is the log-likelihood of the correct rollouts
   only, rejection-sampling fine-tuning).
3. For each ``eta`` in ``--steps``, set ``theta = theta_0 - eta * g / |g|`` and measure the mean
   reward of fresh rollouts (the same seeds for every ``eta``: common random numbers).

A reward that rises for small positive ``eta`` says the estimated gradient is an ascent direction
at that batch size; a reward that falls on both sides says the step is dominated by noise and
curvature. docs/study.md uses it to check that the study's signal exists before spending a budget.
Nothing here touches held-out prompts.
"""

from __future__ import annotations

import argparse
import copy

import torch

from trafl.models import load_pretrained
from trafl.objectives import RolloutGroup, get_objective
from trafl.sampling import REMASKING, SamplerSettings, decode_completions, generate, row_generators
from trafl.tasks import get_task


def rollouts(model, tok, task, rows, n, seed, args):
    enc = tok([task.prompt_text(r) for r in rows], return_tensors="pt", padding=True)
    with torch.no_grad():
        out = generate(
            model,
            enc.input_ids,
            enc.attention_mask,
            settings=SamplerSettings(
                gen_length=args.gen_length,
                steps=args.gen_length,
                block_length=args.gen_length,
                temperature=args.temperature,
                remasking=args.remasking,
            ),
            num_samples=n,
            eos_token_id=tok.eos_token_id,
            generator=row_generators(seed, len(rows), n),
            fill_eos=True,
        )
    texts = decode_completions(tok, out.completion, tok.eos_token_id)
    reward = torch.tensor(
        [float(task.is_correct(texts[i * n + j], rows[i])) for i in range(len(rows)) for j in range(n)]
    )
    return out, reward


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="src/trafl/assets/demo_base")
    p.add_argument("--task", default="decoy_rule")
    p.add_argument("--max-prompts", type=int, default=256, help="the first N training prompts (0: all)")
    p.add_argument("--objective", default="espo", help="espo | trafl | justgrpo | diffu_grpo | sft_pos")
    p.add_argument(
        "--surrogate", default=None, help="elbo | trajectory | autoregressive | onestep (default: the objective's)"
    )
    p.add_argument("--remasking", default="low_confidence", choices=REMASKING)
    p.add_argument("--beta", type=float, default=1.0, help="TraFL's beta per token (ignored by the others)")
    p.add_argument("--group-size", type=int, default=16)
    p.add_argument("--eval-samples", type=int, default=16, help="fresh rollouts per prompt at each step size")
    p.add_argument("--gen-length", type=int, default=5)
    p.add_argument("--temperature", type=float, default=0.9)
    p.add_argument("--micro-prompts", type=int, default=8)
    p.add_argument("--steps", default="-0.05,0,0.01,0.02,0.05", help="comma-separated eta (L2 norm of the step)")
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    model, tok = load_pretrained(args.model)
    model.eval()
    task = get_task(args.task)
    rows = task.load(task.train_split)
    rows = rows[: args.max_prompts] if args.max_prompts else rows
    out, reward = rollouts(model, tok, task, rows, args.group_size, 1000, args)
    group = RolloutGroup(
        input_ids=out.sequences,
        attention_mask=out.attention_mask,
        prompt_length=out.prompt_length,
        rewards=reward.view(len(rows), args.group_size),
        eos_token_id=tok.eos_token_id,
        commit_step=out.commit_step,
    )
    name = "espo" if args.objective == "sft_pos" else args.objective
    options = {"surrogate": args.surrogate} if args.surrogate else {}
    options.update({"trafl": {"beta": args.beta, "logz": "vargrad"}}.get(name, {}))
    objective = get_objective(name, **options)
    group = objective.prepare(group, reference=copy.deepcopy(model), generator=torch.Generator().manual_seed(0))
    model.train()
    for start in range(0, len(rows), args.micro_prompts):
        part = group.select_prompts(slice(start, start + args.micro_prompts))
        if args.objective == "sft_pos":
            value = objective.policy_surrogate(model, part).value
            loss = -(part.rewards.reshape(-1) * value).sum() / group.rewards.sum().clamp(min=1)
        else:
            loss = objective(model, part)[0] * part.num_prompts / group.num_prompts
        loss.backward()
    grads = [q.grad.detach().clone() for q in model.parameters()]
    norm = torch.sqrt(sum((g_**2).sum() for g_ in grads))
    theta0 = [q.detach().clone() for q in model.parameters()]
    print(
        f"{args.objective} ({objective.surrogate.name} surrogate, {args.remasking} remasking), "
        f"{len(rows)} prompts x {args.group_size} rollouts: reward {reward.mean():.4f}, |g| = {float(norm):.4g}"
    )
    model.eval()
    for eta in [float(s) for s in args.steps.split(",")]:
        with torch.no_grad():
            for q, q0, g_ in zip(model.parameters(), theta0, grads):
                q.copy_(q0 - eta * g_ / norm)
        _, r = rollouts(model, tok, task, rows, args.eval_samples, 7, args)
        se = float(r.std() / len(r) ** 0.5)
        print(f"  eta = {eta:+.3f}: reward {r.mean():.4f} (s.e. {se:.4f}, {len(r)} rollouts)", flush=True)


if __name__ == "__main__":
    main()
