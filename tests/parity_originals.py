"""Transcriptions of the three original baselines' losses, for parity tests against trafl.

Pure torch functions on plain tensors, written from the originals' formulas (not copied), and
independent of trafl's code. Each docstring cites the file and lines it transcribes, at these
snapshot commits:

* d1 / diffu-GRPO: ``dllm-reasoning/d1`` @ 837888f, ``diffu-grpo/diffu_grpo_trainer.py``.
* ESPO: ``ML-GSAI/ESPO`` @ b5f2dac, ``espo/espo_trainer.py``.
* JustGRPO: ``LeapLabTHU/JustGRPO`` @ eebe50e, ``grpo.py`` and ``train.py``.

Conventions: ``N = P * G`` rows. d1 and ESPO order rows prompt-major (TRL's RepeatSampler yields
the ``G`` copies of a prompt consecutively); JustGRPO orders them generation-major (see
:func:`justgrpo_group_advantages`). Rewards given as ``[P, G]`` are prompt-major.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LLADA_MASK_ID = 126336


def ce_token_logp(logits: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``log softmax(logits / T)[target]``, ``[N, L]``.

    d1 (trainer l.349-354) and ESPO (l.421-423, 432-434) take ``-F.cross_entropy(logits, y)`` with
    no temperature; JustGRPO (grpo.py l.40-44) divides the logits by ``temperature`` (default 1.0,
    grpo.py l.25; train.py l.195-202 never passes another) and log-softmaxes in float32.
    """
    logp = F.log_softmax(logits.float() / temperature, dim=-1)
    return logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)


# ----------------------------------------------------------------------------------------------
# d1 / diffu-GRPO
# ----------------------------------------------------------------------------------------------


def d1_completion_mask(completion_ids: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """``[N, L]`` int: 1 at positions up to **and including** the first EOS; all ones without EOS.

    diffu_grpo_trainer.py l.441-445 (``sequence_indices <= eos_idx``; ``eos_idx = L`` when no EOS).
    The same code is in ESPO (espo_trainer.py l.602-606) but ESPO never uses the mask in its loss.
    """
    is_eos = completion_ids == eos_token_id
    n, length = is_eos.shape
    eos_idx = torch.full((n,), length, dtype=torch.long, device=completion_ids.device)
    has = is_eos.any(dim=1)
    eos_idx[has] = is_eos.int().argmax(dim=1)[has]
    idx = torch.arange(length, device=completion_ids.device).expand(n, -1)
    return (idx <= eos_idx.unsqueeze(1)).int()


def d1_forward_mask(uniform: torch.Tensor, prompt_length: int, p_mask_prompt: float) -> torch.Tensor:
    """d1's ``is_mask`` ``[b, P+L]`` from the uniform matrix ``torch.rand((b, P+L))``.

    diffu_grpo_trainer.py l.241-256: ``set_seed(seed)`` (l.242; one seed per inner iteration, shared
    by every row of the call), ``random_matrix = torch.rand((b, l))`` (l.247), prompt positions are
    masked where ``random_matrix < p_mask_prompt`` (l.251) -- **including left padding** (there is no
    attention mask; pad = eos, diffu_grpo_train.py l.88) -- and every completion position is masked
    (l.252-253). The returned ``p_mask`` (l.261) is never used by the loss.
    """
    b, total = uniform.shape
    prompt_index = torch.zeros(total, dtype=torch.bool, device=uniform.device)
    prompt_index[:prompt_length] = True
    is_mask_prompt = prompt_index & (uniform < p_mask_prompt)
    return is_mask_prompt | ~prompt_index


def d1_mask_seed_index(micro_step: int, num_iterations: int) -> int:
    """Index into ``mask_seeds`` used by the ``micro_step``-th call of ``compute_loss`` (0-based).

    ``_prepare_inputs`` increments ``self._step`` once per micro-batch *before* ``compute_loss``
    (l.373), which then uses ``self._step % num_iterations`` (l.96). With gradient accumulation the
    micro-batch buffered in slot ``s`` therefore sees the indices ``(s + 1 + k*GA) % mu``: with the
    recipe's GA=2, mu=12 each micro-batch cycles through only 6 distinct seeds, each used twice.
    Old/ref log-probs are indexed the same way (l.102, 110), so ratios stay consistent.
    """
    return (micro_step + 1) % num_iterations


def d1_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """``[N]`` ``r - mean_G r`` -- **no std division** (the std is only logged).

    diffu_grpo_trainer.py l.533-539 (std at l.534 is used only for ``zero_std_ratio`` and logging).
    ``rewards`` ``[P, G]`` is the weighted sum over reward functions (l.530).
    """
    return (rewards - rewards.mean(dim=1, keepdim=True)).reshape(-1)


def d1_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor | None,
    ref_logp: torch.Tensor | None,
    rewards: torch.Tensor,
    completion_mask: torch.Tensor,
    *,
    beta: float,
    epsilon: float,
) -> torch.Tensor:
    """d1's loss for one micro-batch (the rows one device sees in one ``compute_loss`` call).

    Inputs are per-token log-probs ``[N, L]`` of the completion under the one-step masked forward
    (:func:`d1_forward_mask`) with the iteration's seed; ``old_logp is None`` means
    ``num_iterations == 1`` (then ``old = logp.detach()``, l.109-113).

    diffu_grpo_trainer.py:
    * l.101-105: ``kl_t = exp(ref - logp) - (ref - logp) - 1`` (k3), when ``beta != 0``.
    * l.108, 533-539: advantages = :func:`d1_advantages` (computed on the rewards gathered over all
      devices, then sliced per process, l.545-549).
    * l.114-118: ``coef_1 = exp(logp - old)``, ``coef_2 = clamp(coef_1, 1-eps, 1+eps)`` (symmetric
      eps), ``per_token = -min(coef_1 A, coef_2 A)``.
    * l.119-120: ``per_token += beta * kl_t``.
    * l.121: ``loss = sum(per_token * mask) / sum(mask)`` -- one token-pooled mean over *all* rows
      of the micro-batch (not a per-sequence mean), mask from :func:`d1_completion_mask`.
    (The HF Trainer then divides by gradient_accumulation_steps before backward.)
    """
    adv = d1_advantages(rewards).to(logp.dtype)
    old = logp.detach() if old_logp is None else old_logp
    coef_1 = torch.exp(logp - old)
    coef_2 = torch.clamp(coef_1, 1 - epsilon, 1 + epsilon)
    per_token = -torch.min(coef_1 * adv.unsqueeze(1), coef_2 * adv.unsqueeze(1))
    if beta != 0.0:
        d = ref_logp - logp
        per_token = per_token + beta * (torch.exp(d) - d - 1)
    mask = completion_mask.to(per_token.dtype)
    return (per_token * mask).sum() / mask.sum()


# ----------------------------------------------------------------------------------------------
# ESPO
# ----------------------------------------------------------------------------------------------


def espo_mask_counts(k: int, batch_size: int, gen_length: int) -> torch.Tensor:
    """``[b]`` masked-token counts ``m_i`` in ``{0..L}`` for one seed, stratified **across the rows**.

    espo_trainer.py l.60-63: ``k = torch.randint(0, L+1, ())`` (one draw per seed, shared by the ``b``
    rows of the micro-batch), ``x = round(linspace(float(k), k + (b-1)((L+1)/b), b)) % (L+1)``. ``k`` is
    an int64 tensor there, so the end point is a float32 sum (not the float64 one a Python int gives;
    the two round differently at some offsets), and ``linspace`` / ``round`` run in float32 with
    round-half-to-even. Note ``m = 0`` and ``m = L`` are both possible; ``L`` is the full completion
    length (no EOS handling).
    """
    k_t = torch.tensor(k)
    target_len = gen_length
    b = batch_size
    x = torch.round(torch.linspace(float(k_t), k_t + (b - 1) * ((target_len + 1) / b), steps=b)).long()
    return x % (target_len + 1)


def espo_forward_masks(k: int, perms: torch.Tensor, gen_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """ESPO's primary masks ``[b, L]`` and ``p_mask`` ``[b]`` given ``k`` and one permutation per row.

    espo_trainer.py l.55-75: ``set_seed(seed)``; ``k`` and ``m_i`` as in :func:`espo_mask_counts`;
    ``is_mask = arange(L) < m_i`` then ``is_mask[i] = is_mask[i][randperm(L)]`` (l.66-69; so
    position ``j`` is masked iff ``perm_i[j] < m_i``); prompt never masked (l.71);
    ``p_mask = m_i / (L + 1)`` (l.75, **L+1**, not L). ``perms`` ``[b, L]`` are the ``b`` successive
    ``torch.randperm(L)`` draws. The coupled partner (reduce_var) is the exact complement
    ``~is_mask`` (l.426-429), of size ``L - m_i``.
    """
    b, length = perms.shape
    assert length == gen_length
    m = espo_mask_counts(k, b, gen_length)
    base = torch.arange(gen_length).repeat(b, 1) < m.unsqueeze(1)
    is_mask = torch.stack([base[i][perms[i]] for i in range(b)])
    return is_mask, m.float() / (gen_length + 1)


def espo_elbo(
    logp_primary: torch.Tensor, logp_coupled: torch.Tensor | None, is_mask: torch.Tensor, p_mask: torch.Tensor
) -> torch.Tensor:
    """One MC sample of ESPO's sequence ELBO, ``[b]``.

    ``logp_primary`` ``[b, L]``: per-token log-probs from the forward pass on the canvas with
    ``is_mask`` masked (only its masked positions are used); ``logp_coupled``: from the pass with
    ``~is_mask`` masked (only its masked positions, i.e. ``~is_mask``, are used); ``None`` means
    ``reduce_var=False``. espo_trainer.py l.413-438:
    * l.421-423: masked positions contribute ``CE / p_mask`` with ``p_mask = m/(L+1)``.
    * l.432-434: complement positions contribute ``CE / (L/(L+1) - p_mask) = CE (L+1)/(L-m)``.
    * l.435: the sum of both halves is divided by 2.
    * l.437-438: ``ELBO = -sum_L loss`` over **all** L completion positions (padding after EOS
      included, no normalisation by L or by the mask count).
    Each position is covered exactly once by the pair. Averaged over ``m ~ U{0..L}`` and the
    subset, every position's weight has expectation 1 (unbiased for ``sum_i log p``-type targets).
    NB: ``_get_elbo_mc`` never passes ``reduce_var`` (l.180, 483-488), so the config flag is
    ignored and the coupled pass is always on.
    """
    length = is_mask.shape[1]
    p = p_mask.to(logp_primary.dtype).unsqueeze(1).expand_as(logp_primary)
    contrib = torch.zeros_like(logp_primary)
    contrib[is_mask] = logp_primary[is_mask] / p[is_mask]
    if logp_coupled is not None:
        contrib[~is_mask] = logp_coupled[~is_mask] / (length / (length + 1) - p[~is_mask])
        contrib = contrib / 2
    return contrib.sum(dim=-1)


def espo_elbo_mc(elbos: list[torch.Tensor]) -> torch.Tensor:
    """``num_mc`` ESPO samples (each one coupled pair, 2 forward passes) are averaged.

    espo_trainer.py l.463-474 (one seed per MC sample: ``mask_seeds[it, mc]``, l.611). ESPO's
    ``num_mc=2`` is therefore 2 coupled pairs = 4 forward passes per sequence.
    """
    return torch.stack(elbos, dim=0).mean(dim=0)


def espo_advantages(rewards: torch.Tensor, scale_rewards: bool = False) -> torch.Tensor:
    """``[N]`` leave-one-out advantages ``r_i - (sum_G r - r_i)/(G-1)``.

    espo_trainer.py l.694 (``leave_one_out = True`` hard-coded), l.706-710; if ``scale_rewards``
    (TRL default True, recipes/train.yaml l.19 sets false): divide by ``std_G(r) + 1e-4`` with torch's
    default **unbiased** std (l.711-716).
    """
    g = rewards.shape[1]
    baseline = (rewards.sum(dim=1, keepdim=True) - rewards) / (g - 1)
    adv = rewards - baseline
    if scale_rewards:
        adv = adv / (rewards.std(dim=1, keepdim=True) + 1e-4)
    return adv.reshape(-1)


def espo_loss(
    elbo: torch.Tensor,
    elbo_old: torch.Tensor | None,
    elbo_ref: torch.Tensor | None,
    rewards: torch.Tensor,
    *,
    gen_length: int,
    beta: float,
    epsilon_low: float,
    epsilon_high: float | None = None,
    scale_rewards: bool = False,
) -> torch.Tensor:
    """ESPO's loss for one micro-batch of ``B`` sequences, from sequence ELBOs ``[B]``.

    espo_trainer.py compute_loss:
    * l.186-190: ``old = elbo.detach()`` when ``num_iterations == 1`` (``elbo_old is None``).
    * l.191: ``coef_1 = exp((elbo - old) / L)``, ``L = logits_to_keep`` = full completion length.
    * l.192: ``coef_2 = clamp(coef_1, 1 - eps_low, 1 + eps_high)`` (TRL: eps_high defaults to eps).
    * l.193-195: ``loss = -sum_B min(coef_1 A, coef_2 A) / B``.
    * l.197-201: ``kl = (elbo - ref)^2 / 2`` (k2, l.97-99), ``loss += beta * sum_B kl / (B * L)``.
    ``rewards`` may be ``[P, G]`` (advantages via :func:`espo_advantages`) or already-computed
    advantages ``[B]`` (ESPO's micro-batch can hold a fraction of a group, l.724-728 + l.514-517).
    """
    adv = espo_advantages(rewards, scale_rewards) if rewards.dim() == 2 else rewards
    adv = adv.to(elbo.dtype).view(-1, 1)
    eps_high = epsilon_low if epsilon_high is None else epsilon_high
    e = elbo.view(-1, 1)
    old = e.detach() if elbo_old is None else elbo_old.view(-1, 1)
    b = e.shape[0]
    coef_1 = torch.exp((e - old) / gen_length)
    coef_2 = torch.clamp(coef_1, 1 - epsilon_low, 1 + eps_high)
    loss = -torch.min(coef_1 * adv, coef_2 * adv).sum() / b
    if beta != 0.0:
        kl = (e - elbo_ref.view(-1, 1)) ** 2 / 2.0
        loss = loss + beta * kl.sum() / (b * gen_length)
    return loss


def espo_iteration_index(micro_step: int, num_iterations: int, grad_accum: int) -> int:
    """Inner-iteration index of the ``micro_step``-th ``compute_loss`` call (0-based).

    espo_trainer.py l.177 (``self._step`` already incremented, l.518):
    ``((step - 1) % (mu * GA)) // GA`` -- each inner iteration uses fresh seeds
    ``mask_seeds[micro_batch, it, :]`` (l.169, 178, 611), identical for the policy, old and ref passes.
    """
    return (micro_step % (num_iterations * grad_accum)) // grad_accum


# ----------------------------------------------------------------------------------------------
# JustGRPO
# ----------------------------------------------------------------------------------------------


def justgrpo_ar_canvas(
    prompt_ids: torch.Tensor, completion_ids: torch.Tensor, t: int, mask_id: int = LLADA_MASK_ID
) -> torch.Tensor:
    """Input for the log-prob of completion token ``t``: ``[prompt, y_<t, MASK * (L - t)]``.

    grpo.py l.34-37; the log-prob is read at position ``P + t`` (l.43-44). No attention mask; the
    prompt is never padded in practice (one prompt per device, repeated, grpo.py l.11-15; pad = mask
    id, train.py l.79).
    """
    b, length = completion_ids.shape
    fill = torch.full((b, length - t), mask_id, dtype=completion_ids.dtype, device=completion_ids.device)
    return torch.cat([prompt_ids, completion_ids[:, :t], fill], dim=1)


def justgrpo_group_advantages(rewards_flat: torch.Tensor, group_size: int) -> torch.Tensor:
    """Literal grpo.py l.58-61 on JustGRPO's **generation-major** flat layout.

    ``rewards.view(group_size, -1)`` -- row ``g`` holds generation ``g`` of every prompt (rollouts
    are ``prompt.repeat(num_generations, 1)``, grpo.py l.14, concatenated over ``repeat_times``
    chunks, train.py l.167-182); ``(r - mean) / (std + 1e-4)`` with torch's default **unbiased** std.
    """
    grid = rewards_flat.view(group_size, -1)
    mean = grid.mean(dim=0).repeat(group_size)
    std = grid.std(dim=0).repeat(group_size)
    return (rewards_flat - mean) / (std + 1e-4)


def justgrpo_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """:func:`justgrpo_group_advantages` for prompt-major ``[P, G]`` rewards, returned as ``[N]`` prompt-major."""
    p, g = rewards.shape
    flat_gen_major = rewards.t().reshape(-1)
    adv = justgrpo_group_advantages(flat_gen_major, g)
    return adv.view(g, p).t().reshape(-1)


def justgrpo_loss(
    logp: torch.Tensor,
    advantages: torch.Tensor,
    *,
    old_logp: torch.Tensor | None = None,
    valid_samples: float | None = None,
    eps: float = 0.2,
    gain: float = 1.0,
) -> torch.Tensor:
    """The quantity JustGRPO back-propagates for one rollout chunk (summed over its ``L`` per-step backwards).

    ``logp`` ``[N, L]``: AR token log-probs at temperature (:func:`ce_token_logp`,
    :func:`justgrpo_ar_canvas`). grpo.py logprob_loss:
    * l.31: ``valid_samples`` = number of rows with ``A != 0`` in *one accumulation micro-step* (the
      ``accum_idx`` loop body, train.py l.157-203: its group of both ``repeat_times`` chunks, counted at
      l.184), averaged over devices; default here: counted from ``advantages``.
    * l.32: ``scale = gain / L / (valid_samples + 1e-5)``, ``L = gen_length`` (every position, no EOS
      mask).
    * l.46: ``ratio = exp(logp - logp.detach())`` -- always 1 in value (single on-policy pass;
      ``old_logp`` is offered only for completeness), so the clip (l.47, eps=0.2) never binds.
    * l.48-50: ``loss_t = -min(ratio A, clip(ratio) A)``; ``backward(sum_n loss_t * scale)``.
    So the total is ``-sum_{n,t} min(.) / (L (V + 1e-5))``. There is no division by the number of
    accumulation steps or chunks (train.py l.157-203: gradients are summed over 8 accumulation steps
    x 2 chunks); FSDP averages over devices.
    """
    length = logp.shape[1]
    adv = advantages.to(logp.dtype).view(-1, 1)
    if valid_samples is None:
        valid_samples = float((advantages != 0).sum())
    scale = gain / length / (valid_samples + 1e-5)
    old = logp.detach() if old_logp is None else old_logp
    ratio = (logp - old).exp()
    clipped = ratio.clamp(1 - eps, 1 + eps)
    per_token = -torch.min(ratio * adv, clipped * adv)
    return (per_token * scale).sum()
