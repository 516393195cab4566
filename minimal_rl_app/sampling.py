"""Batched sampling and scoring with any `transformers` causal LM (the demo's held-out evaluation,
the warm-start's stopping rule and the ``eval`` command's CPU backend).

torch at module level only; the model and tokenizer objects come from the caller.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch


def chat_prompt(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    """Render chat messages through the tokenizer's chat template, ready for the assistant's turn."""
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


@torch.no_grad()
def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    num_samples: int = 1,
    max_new_tokens: int = 32,
    temperature: float = 1.0,
    batch_size: int = 256,
    seed: int | None = None,
    return_ids: bool = False,
) -> list[list[str]] | tuple[list[list[str]], list[list[list[int]]], list[list[int]]]:
    """``num_samples`` completions per prompt (text, special tokens stripped), full-vocabulary sampling
    at ``temperature`` (top-k/top-p off; 0 means greedy).

    With ``return_ids`` also returns the completion token ids (up to and including EOS) and the prompt ids.
    """
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    eos_ids = model.generation_config.eos_token_id
    eos_ids = set(eos_ids if isinstance(eos_ids, (list, tuple)) else [eos_ids])
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(eos_ids))
    prompt_ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    flat = [(i, ids) for i, ids in enumerate(prompt_ids) for _ in range(num_samples)]
    texts: list[list[str]] = [[] for _ in prompts]
    ids_out: list[list[list[int]]] = [[] for _ in prompts]
    rng_state = torch.get_rng_state() if gen is not None else None
    if gen is not None:
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
    try:
        for start in range(0, len(flat), batch_size):
            chunk = flat[start : start + batch_size]
            width = max(len(ids) for _, ids in chunk)
            input_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
            attention = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, (_, ids) in enumerate(chunk):
                input_ids[row, width - len(ids) :] = torch.tensor(ids)
                attention[row, width - len(ids) :] = 1
            sampling = dict(do_sample=True, temperature=temperature, top_k=0, top_p=1.0) if temperature > 0 else dict(do_sample=False)
            out = model.generate(
                input_ids=input_ids.to(device),
                attention_mask=attention.to(device),
                max_new_tokens=max_new_tokens,
                pad_token_id=pad_id,
                **sampling,
            )
            for row, (i, _) in enumerate(chunk):
                completion = out[row, width:].tolist()
                cut = next((k for k, t in enumerate(completion) if t in eos_ids), None)
                completion = completion[: cut + 1] if cut is not None else completion
                ids_out[i].append(completion)
                texts[i].append(tokenizer.decode(completion, skip_special_tokens=True))
    finally:
        if rng_state is not None:
            torch.set_rng_state(rng_state)
        model.train(was_training)
    if return_ids:
        return texts, ids_out, prompt_ids
    return texts


@torch.no_grad()
def completion_logprobs(
    model: Any, pairs: Sequence[tuple[Sequence[int], Sequence[int]]], batch_size: int = 256, entropies: list | None = None
) -> list[torch.Tensor]:
    """Per-token log-probabilities log pi(a_t | x, a_<t) of each (prompt ids, completion ids) pair under
    ``model``: a list of 1-D tensors, one per pair, of the completion's length. If ``entropies`` is a list,
    the exact token entropies H(pi(. | x, a_<t)) of the same positions are appended to it."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out: list[torch.Tensor] = []
    try:
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start : start + batch_size]
            seqs = [list(p) + list(c) for p, c in chunk]
            width = max(len(s) for s in seqs)
            ids = torch.zeros((len(seqs), width), dtype=torch.long)
            mask = torch.zeros((len(seqs), width), dtype=torch.long)
            for row, s in enumerate(seqs):  # right padding: positions of real tokens stay 0..n-1
                ids[row, : len(s)] = torch.tensor(s)
                mask[row, : len(s)] = 1
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
            all_logps = torch.log_softmax(logits[:, :-1], dim=-1)
            logps = all_logps.gather(-1, ids[:, 1:, None].to(device)).squeeze(-1)
            ent = -(all_logps.exp() * all_logps).sum(-1) if entropies is not None else None
            for row, (p, c) in enumerate(chunk):
                out.append(logps[row, len(p) - 1 : len(p) - 1 + len(c)].cpu())
                if ent is not None:
                    entropies.append(ent[row, len(p) - 1 : len(p) - 1 + len(c)].cpu())
    finally:
        model.train(was_training)
    return out
