"""Dynamic sampling (DAPO-style refill) in the trl_ext trainers: ``refill=True``.

The same option as verl's ``filter_mode=refill`` (`verl_ext.refill`), with the same cap and metrics: when the sample
filter rejects whole groups (``drop_uniform`` on all-correct / all-wrong groups, ``drop_wrong`` on all-wrong ones),
the step samples new prompts until its generation batch holds as many groups with a kept response as it was
given prompts (G = ``generation_batch_size / num_generations``), at most ``max_refill_batches`` extra rounds.

- **Where the new prompts come from.** A *refill stream* of the train dataset held by the trainer: a reshuffle of
  every prompt index with its own seeded generator (``seed + REFILL_SEED_OFFSET``), the same on every rank, read
  on from where the previous step stopped and reshuffled when exhausted. It is separate from GRPOTrainer's
  dataloader, so the trainer's steps, epochs and `max_steps` mean what they mean without refill, and nothing
  private to Trainer's epoch loop is touched; the price is that a refill prompt may also appear in the same
  epoch's regular batches. The stream's position is not checkpointed (a resumed run restarts it). Map-style
  datasets only (an `IterableDataset` is refused at construction).
- **A round** is a whole generation batch of G new prompts, each `num_generations` times in a row (TRL's
  RepeatSampler layout), dealt out to the ranks as GRPOTrainer's dataloader deals its rows; it goes through
  GRPOTrainer's own `_generate_and_score_completions` (generation, rewards, TRL's advantages, old / ref log-probs),
  so every round has the shapes of a regular batch.
- **Multi-process.** Every rank decides on the rewards gathered from every process (the same numbers everywhere), so
  every rank runs the same number of rounds and the same collective calls; the stream is the same on every rank.
- **The batch.** The first G groups with signal, in the order they were generated (the original batch's first), are
  kept; signal groups beyond G are discarded (generated and logged, not trained on: the batch keeps its size and
  TRL's micro-batch split). When the original batch already holds G signal groups nothing is sampled and the batch
  is GRPOTrainer's own. Otherwise the chosen groups' rows of every round are gathered, padded to a common width and
  dealt back in order, each rank taking its contiguous share. Within the kept groups the filter still masks (or,
  with ``hard_drop=True``, removes) rejected responses (RAFT's wrong answers), as without refill.
- **The cap.** When G signal groups are still missing after ``max_refill_batches`` rounds, the step raises
  `RefillLimitError` on every rank (as verl and DAPO do): a step whose filter keeps so few groups is a data or
  model problem to look at, not something to train through quietly.
- **Metrics.** ``refill_calls`` (rounds after the first), ``refill_prompts`` (their prompts, G per round) and
  ``refill_batches`` (refill_prompts / G) are logged every training step; the shared ``sample_filter/*`` metrics are
  measured over everything generated (every round), ``samples_kept`` / ``tokens_kept`` over the trained batch. TRL's
  own metrics (``reward``, ``completions/*``) and the completions table average over / list every round.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch.utils.data import IterableDataset

from minimal_rl.algorithms import WeightResult
from minimal_rl.filtering import RefillLimitError
from minimal_rl.metrics import metric_key

from .hard_drop import gather_rows, pad_value, row_layout, trim_padding

REFILL_SEED_OFFSET = 7919  # the refill stream must not replay the dataloader's own permutation (same seed)


class RefillStream:
    """Prompt indices for refill rounds: seeded reshuffles of the train dataset, identical on every rank."""

    def __init__(self, dataset: Any, seed: int):
        if dataset is None or isinstance(dataset, IterableDataset) or not hasattr(dataset, "__len__"):
            raise ValueError(
                "refill=True needs a map-style train_dataset (indexable, with a length): refill rounds draw new "
                f"prompts from it by index; got {type(dataset).__name__}"
            )
        if len(dataset) == 0:
            raise ValueError("refill=True needs a non-empty train_dataset")
        self.dataset = dataset
        self._generator = torch.Generator().manual_seed(int(seed) + REFILL_SEED_OFFSET)
        self._order: list[int] = []
        self._position = 0

    def draw(self, count: int) -> list[int]:
        indices: list[int] = []
        while len(indices) < count:
            if self._position >= len(self._order):
                self._order = torch.randperm(len(self.dataset), generator=self._generator).tolist()
                self._position = 0
            take = self._order[self._position:self._position + count - len(indices)]
            self._position += len(take)
            indices.extend(take)
        return indices

    def rows(self, count: int, repeat: int, columns: list[str], num_processes: int, rank: int) -> list[dict]:
        """This rank's rows of a round of ``count`` new prompts, each ``repeat`` times in a row."""
        global_rows = [index for index in self.draw(count) for _ in range(repeat)]
        share = len(global_rows) // num_processes
        rows = []
        for index in global_rows[rank * share:(rank + 1) * share]:
            example = self.dataset[int(index)]
            rows.append({column: example[column] for column in columns})  # the dataloader's own columns
        return rows


@dataclass
class RefillOutcome:
    output: dict[str, Any]  # this rank's rows of the chosen groups, in GRPOTrainer's layout
    result: WeightResult  # every generated row, every round; keep (and weights) False / 0 outside the chosen groups
    chosen: torch.Tensor  # (B_global,) rows of `result` that make up the batch, in order
    lengths: torch.Tensor  # (rows generated,) response tokens of every generated row
    refill_calls: int
    refill_prompts: int
    groups: int  # G, the prompts of one generation batch

    def metrics(self) -> dict[str, float]:
        return {
            metric_key("refill_calls"): float(self.refill_calls),
            metric_key("refill_prompts"): float(self.refill_prompts),
            metric_key("refill_batches"): self.refill_prompts / max(self.groups, 1),
        }


def generate_with_refill(
    trainer: Any,
    inputs: list[dict[str, Any]],
    stream: RefillStream,
    score_round: Callable[[list[dict[str, Any]]], tuple[dict[str, Any], WeightResult, torch.Tensor]],
    weigh: Callable[[torch.Tensor], WeightResult],
) -> RefillOutcome:
    """Generate ``inputs`` and refill rounds until G groups keep a response (see the module docstring).

    ``score_round(rows)`` runs GRPOTrainer's `_generate_and_score_completions` on this rank's rows and returns its
    output, the `WeightResult` of the round's gathered rows and their gathered response lengths; ``weigh(scores)``
    is the trainer's `compute_weights` call, applied once more to the concatenated scores of every round (groups are
    weighed independently, so this only assembles one result for the metrics).
    """
    n = trainer.num_generations
    accelerator = trainer.accelerator
    num_processes, rank = accelerator.num_processes, accelerator.process_index
    local_rows = len(inputs)
    groups = local_rows * num_processes // n
    columns = list(inputs[0].keys())
    max_rounds = trainer.args.max_refill_batches

    outputs, results, lengths, signal = [], [], [], []
    rows = inputs
    while True:
        output, result, round_lengths = score_round(rows)
        outputs.append(output)
        results.append(result)
        lengths.append(round_lengths.cpu())
        offset = (len(outputs) - 1) * groups
        has_signal = result.keep.reshape(groups, n).any(dim=1)
        signal.extend(offset + int(g) for g in torch.nonzero(has_signal).flatten())
        if len(signal) >= groups:
            break
        refills = len(outputs) - 1
        if refills >= max_rounds:
            raise RefillLimitError(
                f"refill: {len(signal)} of {groups} groups have a response the sample filter "
                f"{trainer.args.sample_filter_in_effect!r} keeps after {refills} refill round(s) of {groups} prompts; "
                f"max_refill_batches={max_rounds} allows no more. Too few groups survive the filter: make the prompts "
                "easier or the model stronger, use refill=False (the rejected groups are then left out of the "
                "update), or raise max_refill_batches."
            )
        rows = stream.rows(groups, n, columns, num_processes, rank)

    refills = len(outputs) - 1
    chosen_groups = torch.tensor(signal[:groups])
    chosen = (chosen_groups.unsqueeze(1) * n + torch.arange(n)).flatten()
    all_scores = torch.cat([r.scores for r in results])
    full = weigh(all_scores)
    in_batch = torch.zeros_like(full.keep)
    in_batch[chosen] = True
    full = dataclasses.replace(
        full, keep=full.keep & in_batch, weights=torch.where(in_batch, full.weights, torch.zeros_like(full.weights))
    )
    if refills == 0:
        output = outputs[0]  # every group of the original batch has signal: GRPOTrainer's batch as it is
    else:
        output = merge_rounds(outputs, chosen, accelerator, trainer._tokenizer.pad_token_id,
                              trim=trainer.pad_to_multiple_of is None)
    return RefillOutcome(output, full, chosen, torch.cat(lengths), refills, refills * groups, groups)


def merge_rounds(
    batches: list[dict[str, Any]], chosen: torch.Tensor, accelerator: Any, pad_token_id: int, trim: bool = True
) -> dict[str, Any]:
    """This rank's share of the global rows ``chosen`` (indices over the rounds' gathered batches, in round order).

    Every rank calls this (it gathers every entry of every round). ``trim=False`` keeps the padded widths (for
    ``pad_to_multiple_of``: the widest round's width is a multiple already).
    """
    local_rows = batches[0]["completion_ids"].size(0)
    layout = row_layout(batches[0], local_rows, feature="refill")
    for batch in batches[1:]:
        if row_layout(batch, local_rows, feature="refill") != layout:
            raise RuntimeError("refill: the rounds' batches differ in their entries (TRL changed?)")
    share = chosen[accelerator.process_index * local_rows:(accelerator.process_index + 1) * local_rows]
    merged = dict(batches[0])  # same key order: TRL's shuffle reads the batch size from the first entry
    for key, side in layout.items():
        parts = [gather_rows(batch[key], side, key, accelerator, pad_token_id) for batch in batches]
        if side is not None:
            width = max(part.size(1) for part in parts)
            fill = pad_value(key, pad_token_id)
            parts = [_pad_width(part, width, fill, left=(side == "left")) for part in parts]
        merged[key] = torch.cat(parts)[share.to(parts[0].device)]
    if trim:
        trim_padding(merged, layout)
    return merged


def _pad_width(value: torch.Tensor, width: int, fill: int, left: bool) -> torch.Tensor:
    missing = width - value.size(1)
    if missing == 0:
        return value
    pad = torch.full((value.size(0), missing, *value.shape[2:]), fill, dtype=value.dtype, device=value.device)
    return torch.cat([pad, value] if left else [value, pad], dim=1)
