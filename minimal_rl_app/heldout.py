"""Held-out evaluation during training (any model, the demo's or ``--model``): sampled accuracy, KL to the
initial model and token entropy. (Benchmarks after training: `minimal_rl_app.evaluation`.)

KL is estimated on the evaluation's own samples from the current policy pi:
    KL(pi || pi_0) per token  ~=  mean over sampled tokens of  log pi(a_t|.) - log pi_0(a_t|.)
(an unbiased Monte Carlo estimate of the per-token reverse KL, no beta or reference forward in training
needed). It is measured at evaluation intervals only; TRL's per-step ``kl`` exists only with beta > 0.
The token entropy is measured on the same samples, over every sample: TRL's per-step ``entropy`` only
covers the samples an algorithm keeps (RAFT: correct ones only), so it is not comparable across algorithms.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from minimal_rl.reward import is_correct
from minimal_rl_app.demo.task import Problem
from minimal_rl_app.sampling import chat_prompt, completion_logprobs, generate
from minimal_rl_app.templates import plain_messages


def evaluate_heldout(
    model: Any, tokenizer: Any, problems: Sequence[Problem], *, samples_per_problem: int = 2, seed: int = 0,
    reference_model: Any = None, max_new_tokens: int = 16,
    messages: Callable[[str], list[dict[str, str]]] = plain_messages,
) -> dict[str, float]:
    """Sampled accuracy (temperature 1.0, the real verifier) and, with ``reference_model``, KL to it.

    ``messages`` turns a problem into chat messages (the demo's bare problem by default; pass
    `minimal_rl.prompts.build_messages` for the paper's template)."""
    prompts = [chat_prompt(tokenizer, messages(p.problem)) for p in problems]
    texts, ids, prompt_ids = generate(
        model, tokenizer, prompts, num_samples=samples_per_problem, max_new_tokens=max_new_tokens, seed=seed, return_ids=True
    )
    correct = [is_correct(t, p.answer) for p, ts in zip(problems, texts) for t in ts]
    metrics = {"heldout_accuracy": sum(correct) / max(len(correct), 1)}
    if reference_model is not None:
        pairs = [(prompt_ids[i], c) for i in range(len(problems)) for c in ids[i] if c]
        ent: list[torch.Tensor] = []
        cur = completion_logprobs(model, pairs, entropies=ent)
        ref = completion_logprobs(reference_model, pairs)
        diff = torch.cat([a - b for a, b in zip(cur, ref)]) if pairs else torch.zeros(0)
        metrics["heldout_kl"] = float(diff.mean()) if diff.numel() else 0.0
        # Exact token entropy of the policy at the sampled positions (every sample, nothing filtered).
        metrics["heldout_entropy"] = float(torch.cat(ent).mean()) if pairs else 0.0
    return metrics
