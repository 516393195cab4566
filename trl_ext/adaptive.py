"""Reinforce-Ada's adaptive multi-round sampling (arXiv 2510.04996) inside the trl_ext trainers.

Spec: ``ALGORITHMS.md``, "Beyond the paper: adaptive sampling". GRPOTrainer generates a fixed group of n
(``num_generations``) responses per prompt. For an algorithm with an exit rule (``reinforce_ada_balance``,
``reinforce_ada_pos``) the trainer instead runs `minimal_rl.adaptive.run_rounds` over the batch's prompts: each round
generates ``round_repeat`` new responses for every prompt still active with GRPOTrainer's own `_generate` and
scores them with its own `_calculate_rewards`; a prompt leaves when its pool meets the exit rule. Then n responses
per prompt are kept by the spec's rules, handed to the rest of GRPOTrainer's `_generate_and_score_completions`
(log-probs, KL, the loss) in the same layout as a fixed group, and weighted with the pool baseline
(`minimal_rl.adaptive.pool_baseline`). Uniform pools are left to the sample filter (``drop_uniform``).

Supported: any number of processes (every rank sees every pool and runs the same rounds), transformers or vLLM
generation (colocate and server), plain (non-tool, non-multimodal: no `image` / `images` column) prompts. The rest is refused at construction
(`check_adaptive_supported`), never ignored.

vLLM: every round is one more `_generate` call in the same training step, so TRL pushes the weights once per step
(its `_last_loaded_step`), and its sampling log-probs travel with each response into the pool and the kept rows
(the importance-sampling correction sees each kept row's own). In server mode TRL gathers the rows of all ranks and
asks the server for `num_generations` completions of every `num_generations`-th row; a round's rows hold each
prompt `round_repeat` times in a row instead, so during the rounds the trainer hands TRL `round_repeat` as that
group size (`SampleSelectionTrainer._generate_single_turn`; `served_rows` states the contract).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from accelerate.utils import gather_object

from minimal_rl.adaptive import AdaptiveRounds, pool_baseline, response_values, run_rounds
from minimal_rl.table import get_algorithm


IMAGE_COLUMNS = frozenset({"image", "images"})  # GRPOTrainer's multimodal columns


def check_adaptive_supported(trainer: Any) -> None:
    """Raise ValueError for what trl_ext's adaptive sampling does not do (yet), naming it."""
    algorithm = trainer.args.algorithm
    missing = []
    if trainer.rollout_func is not None:
        missing.append("a rollout_func (it generates whole groups its own way, so rounds cannot ask it for "
                       "round_repeat responses of the still-active prompts)")
    if trainer.tools or trainer.environment_factories is not None:
        missing.append("tools or environments (multi-turn rows, which the pools do not hold)")
    columns = getattr(trainer.train_dataset, "column_names", None) or []
    if IMAGE_COLUMNS & set(columns):
        missing.append("image prompts (the kept rows would lose their images)")
    if missing:
        raise ValueError(
            f"{algorithm!r} samples adaptively (Reinforce-Ada's rounds), which trl_ext supports with single-turn "
            f"generation (transformers or vLLM) only; not with: {'; '.join(missing)}. Use 'reinforce_rej' (fixed "
            "groups, uniform groups dropped) for those setups."
        )


def round_rows(active: list[int], repeat: int, num_processes: int) -> list[int]:
    """The prompt of every row a round generates, all ranks' rows in rank order: each active prompt ``repeat``
    times in a row, topped up with copies of the last row so that every rank gets the same number of rows."""
    rows = [i for i in active for _ in range(repeat)]
    share = -(-len(rows) // num_processes)
    return rows + [rows[-1]] * (share * num_processes - len(rows))


def served_rows(rows: list, group: int) -> list:
    """The prompt each row is answered for by TRL's vLLM server mode (`VLLMGeneration.generate`), given the
    gathered rows of all ranks and the group size it is handed: it asks the server for ``group`` completions of
    every ``group``-th row and gives row i the i-th completion, so row i gets one of ``rows[i - i % group]``.
    Correct iff the result equals ``rows``."""
    return [rows[i - i % group] for i in range(len(rows))]


@dataclass
class AdaptiveBatch:
    """The outcome of the rounds for one generation batch: the kept rows (n per prompt, prompt order) in the shape
    GRPOTrainer's `_generate` returns, their rewards, and their pool-based advantages."""

    generation: tuple  # (prompt_ids, completion_ids, tool_mask, completions, logprobs, extra_fields, images, tool_images)
    rewards_per_func: torch.Tensor  # (B * n, num_reward_funcs), kept rows
    advantages: torch.Tensor  # (B * n,) A_i = r_i - mean(pool) on the 0/1 scale (raw mapping: raw scores)
    rounds: AdaptiveRounds
    extra_logs: dict[str, list] = field(default_factory=dict)  # reward functions' log_extra columns, kept rows


@dataclass
class _Response:
    prompt_ids: list[int]
    completion_ids: list[int]
    completion: Any
    logprobs: list | None
    rewards: torch.Tensor  # (num_reward_funcs,)
    value: float  # what the baseline averages: correctness (0/1), or the raw score under reward_mapping="raw"
    extra: dict[str, Any]


def _share(values: list, num_processes: int) -> list:
    """Every rank's list, concatenated in rank order (the identity on one process)."""
    return gather_object(values) if num_processes > 1 else list(values)


def sample_adaptively(
    trainer: Any,
    inputs: list[dict[str, Any]],
    prompts: list[Any],
    generate: Callable[[list[Any], int], tuple],
    score: Callable[[list[dict[str, Any]], list[Any], list[Any], list[list[int]]], torch.Tensor],
) -> AdaptiveBatch:
    """Run the rounds for a generation batch whose rows hold each prompt n times in a row (TRL's RepeatSampler).

    ``generate(prompts, group)`` is GRPOTrainer's `_generate` on rows that hold each prompt ``group`` times in a
    row (over all ranks' rows; see `served_rows`), and ``score(inputs, prompts, completions, completion_ids)``
    its `_calculate_rewards` (one row per response; it returns the rewards of every process). With several
    processes every rank sees the whole batch's prompts and every pool: each round's responses are dealt out evenly
    over the ranks (the last rank's share topped up with copies of the last row, generated and scored but not
    pooled, so every rank makes the same collective calls), then gathered, so every rank decides the same exits and
    runs the same number of rounds. Returns this rank's rows (its part of the kept ones, in the layout of its
    input rows) and the rewards and advantages of every rank's rows, as GRPOTrainer's own gathered ones.
    """
    args = trainer.args
    n = trainer.num_generations
    num_processes, rank = trainer.accelerator.num_processes, trainer.accelerator.process_index
    local_rows = len(prompts)
    inputs, prompts = _share(list(inputs), num_processes), _share(list(prompts), num_processes)
    if len(prompts) % n:
        raise ValueError(f"adaptive sampling: {len(prompts)} rows is not a multiple of num_generations={n}")
    if any(IMAGE_COLUMNS & set(row) for row in inputs if isinstance(row, dict)):
        raise ValueError("adaptive sampling does not support image prompts (the kept rows would lose their images)")
    unique_inputs = inputs[::n]
    unique_prompts = prompts[::n]
    for i, prompt in enumerate(unique_prompts):
        if any(p != prompt for p in prompts[i * n:(i + 1) * n]):
            raise ValueError("adaptive sampling needs each prompt num_generations times in a row (TRL's RepeatSampler)")
    spec = get_algorithm(args.algorithm)
    pools: list[list[_Response]] = [[] for _ in unique_prompts]
    pending_extra = trainer._pending_extra_logs

    def sample_round(active: list[int], repeat: int) -> list[list[bool]]:
        padded = round_rows(active, repeat, num_processes)  # the prompt of each of the round's rows
        share = len(padded) // num_processes
        mine = padded[rank * share:(rank + 1) * share]
        local_prompts = [unique_prompts[i] for i in mine]
        prompt_ids, completion_ids, _, completions, logprobs, _, _, _ = generate(local_prompts, repeat)
        rewards_per_func = score([unique_inputs[i] for i in mine], local_prompts, completions, completion_ids)
        rewards_per_func = rewards_per_func.detach().cpu()[: len(active) * repeat]
        prompt_ids = _share(list(prompt_ids), num_processes)
        completion_ids = _share(list(completion_ids), num_processes)
        completions = _share(list(completions), num_processes)
        if logprobs is not None:
            logprobs = _share(list(logprobs), num_processes)
        extra = {column: _share(list(pending_extra.get(column, [None] * share)), num_processes)
                 for column in sorted(set(_share(list(pending_extra), num_processes)))}
        pending_extra.clear()
        scores = trainer._scores_from_rewards(rewards_per_func).float()
        correct, values = response_values(
            scores, spec, args.sample_filter_in_effect, args.positive_threshold, args.reward_mapping
        )
        out = []
        for slot, prompt in enumerate(active):
            rows = range(slot * repeat, (slot + 1) * repeat)
            for row in rows:
                pools[prompt].append(_Response(
                    prompt_ids[row], completion_ids[row], completions[row],
                    logprobs[row] if logprobs is not None else None, rewards_per_func[row], float(values[row]),
                    {column: column_values[row] for column, column_values in extra.items() if row < len(column_values)},
                ))
            out.append([bool(correct[row]) for row in rows])
        return out

    rounds = run_rounds(sample_round, len(unique_prompts), n, spec.exit_rule, args.max_rounds, args.round_repeat)

    kept: list[_Response] = []
    advantages = []
    for pool, outcome in zip(pools, rounds.pools):
        if len(outcome.kept) != n:  # round_repeat >= n is checked by the config, so a pool always has n
            raise RuntimeError(f"adaptive sampling kept {len(outcome.kept)} responses of a prompt, expected {n}")
        chosen = [pool[position] for position in outcome.kept]
        kept.extend(chosen)
        advantages.append(pool_baseline(torch.tensor([r.value for r in chosen]), torch.tensor([r.value for r in pool])))
    local = kept[rank * local_rows:(rank + 1) * local_rows]  # this rank's rows, as it received them
    columns = sorted({column for r in kept for column in r.extra})
    generation = (
        [r.prompt_ids for r in local],
        [r.completion_ids for r in local],
        None,
        [r.completion for r in local],
        [r.logprobs for r in local] if all(r.logprobs is not None for r in local) else None,
        {},
        None,
        [],
    )
    return AdaptiveBatch(
        generation=generation,
        rewards_per_func=torch.stack([r.rewards for r in kept]),
        advantages=torch.cat(advantages),
        rounds=rounds,
        extra_logs={column: [r.extra.get(column) for r in local] for column in columns},
    )
