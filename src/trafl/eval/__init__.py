"""trafl.eval: pass@k and diversity evaluation of dLLMs.

* :mod:`~trafl.eval.passk` — the unbiased pass@k estimator (product form) and its standard error;
* :mod:`~trafl.eval.diversity` — distinct correct answers / programs per problem;
* :mod:`~trafl.eval.paths` — denoising-path diversity (distinct unmasking orders, their entropy,
  distinct correct (answer, order) paths) from the sampler's commit steps;
* :mod:`~trafl.eval.generation` — the :class:`TextGenerator` interface, per-sample seeds, and the
  default :class:`SamplerGenerator` (load_pretrained + trafl.sampling.generate);
* :mod:`~trafl.eval.cache` — the per-cell JSONL generation cache that makes runs resumable;
* :mod:`~trafl.eval.evaluate` — the loop over (model, task, temperature, length) and results.json;
* :mod:`~trafl.eval.report`, :mod:`~trafl.eval.plots` — results.md and the PNG figures;
* :mod:`~trafl.eval.judge` — optional LLM-judged approach diversity;
* :mod:`~trafl.eval.lm_eval_adapter` — a ``trafl`` model for lm-evaluation-harness;
* :mod:`~trafl.eval.cli` — ``trafl eval``.
"""

from trafl.eval.diversity import distinct_correct, normalise_text, summarise_distinct
from trafl.eval.passk import PassAtK, pass_at_k, pass_at_k_curves, summarise_pass_at_k
from trafl.eval.paths import path_metrics, summarise_paths

__all__ = [
    "PassAtK",
    "distinct_correct",
    "normalise_text",
    "pass_at_k",
    "pass_at_k_curves",
    "path_metrics",
    "summarise_distinct",
    "summarise_pass_at_k",
    "summarise_paths",
]
