"""Hard drop: remove rejected rows from a TRL generation batch and re-split the kept rows evenly across ranks.

Masking rejected rows (the default) keeps every rank's batch shape and costs a forward and backward pass
per rejected row. Hard drop gathers the whole generation batch, keeps only the selected rows and deals
them out round-robin over the ranks, so every rank trains on ceil(K / P) rows (K kept rows in total, P
ranks) instead of its full share. TRL needs every rank to hold the same number of rows, a multiple of
``steps_per_generation`` (it splits the batch into that many equal micro-batches) and at least one row
per micro-batch (an empty one crashes its log-prob loop), so the last slots are *filler rows*: copies of
a kept row with their loss mask zeroed. They cost compute but carry no gradient; their number is logged.

Under TRL's ``loss_type="dapo"`` (sum over tokens / kept tokens of the whole generation batch) the
gradient is the same as with masking, whichever rank a row lands on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

PROMPT_ALIGNED_KEYS = ("prompt_ids", "prompt_mask")
# Keys whose first dimension is not one row per completion (images, tiles): not supported by hard drop.
MULTIMODAL_KEYS = (
    "pixel_values",
    "image_grid_thw",
    "pixel_attention_mask",
    "spatial_shapes",
    "image_sizes",
    "token_type_ids",
    "mm_token_type_ids",
    "image_position_ids",
    "num_images",
    "num_tiles",
)
# The per-token loss mask TRL multiplies into `completion_mask` (see GRPOTrainer._compute_loss).
LOSS_MASK_KEY = "tool_mask"


@dataclass
class DropPlan:
    """Which global rows this rank trains on after the drop."""

    num_kept: int  # K: kept rows over all ranks
    rows_per_rank: int  # R: rows every rank holds afterwards (kept + filler)
    source_rows: torch.Tensor  # (R,) global row index copied into each of this rank's slots
    is_filler: torch.Tensor  # (R,) bool
    num_processes: int = 1

    @property
    def num_filler_total(self) -> int:
        """Filler rows over all ranks (compute spent without gradient)."""
        return self.rows_per_rank * self.num_processes - self.num_kept


def plan_drop(keep_global: torch.Tensor, num_processes: int, process_index: int, rows_multiple: int) -> DropPlan:
    """Deal the kept rows of the gathered batch out round-robin: global slot s goes to rank s % P.

    Every rank gets R = ceil(max(K, 1) / P) rows rounded up to a multiple of ``rows_multiple``; slots
    beyond K are filler rows copying the first kept row (global row 0 when nothing is kept).
    """
    if rows_multiple < 1:
        raise ValueError(f"rows_multiple must be >= 1, got {rows_multiple}")
    kept_rows = torch.nonzero(keep_global.reshape(-1), as_tuple=False).flatten().cpu()
    num_kept = int(kept_rows.numel())
    rows = math.ceil(max(num_kept, 1) / num_processes)
    rows = math.ceil(rows / rows_multiple) * rows_multiple
    slots = torch.arange(process_index, rows * num_processes, num_processes)
    is_filler = slots >= num_kept
    filler_source = int(kept_rows[0]) if num_kept else 0
    if num_kept:
        source = torch.where(is_filler, torch.full_like(slots, filler_source), kept_rows[slots.clamp(max=num_kept - 1)])
    else:
        source = torch.full_like(slots, filler_source)
    return DropPlan(num_kept, rows, source, is_filler, num_processes)


def row_layout(batch: dict[str, Any], local_rows: int, feature: str = "hard_drop") -> dict[str, str | None]:
    """For every per-row tensor: "left" (prompt-aligned), "right" (completion-aligned) or None (no token axis).

    ``feature`` names the setting that moves rows between ranks (``hard_drop`` or ``refill``), for the errors.
    """
    unsupported = [key for key in MULTIMODAL_KEYS if key in batch]
    if unsupported:
        why = " (rejected rows are masked out of the loss instead, with the same gradient)" if feature == "hard_drop" else ""
        raise ValueError(
            f"{feature}=True does not support multimodal batches (found {unsupported}); use {feature}=False{why}"
        )
    completion_width = batch["completion_ids"].size(1)
    layout: dict[str, str | None] = {}
    for key, value in batch.items():
        if not isinstance(value, torch.Tensor) or value.ndim == 0:
            continue  # scalars such as num_items_in_batch are global already
        if value.size(0) != local_rows:
            raise ValueError(f"{feature}: batch entry {key!r} has {value.size(0)} rows, expected {local_rows}")
        if key in PROMPT_ALIGNED_KEYS:
            layout[key] = "left"
        elif value.ndim == 1 or (value.ndim == 2 and value.size(1) == 1):
            layout[key] = None
        elif value.ndim == 2 and value.size(1) == completion_width:
            layout[key] = "right"
        else:
            raise ValueError(f"{feature}: don't know how to re-split batch entry {key!r} of shape {tuple(value.shape)}")
    return layout


def drop_rejected_rows(
    batch: dict[str, Any],
    keep: torch.Tensor,
    accelerator: Any,
    rows_multiple: int,
    pad_token_id: int,
    trim: bool = True,
) -> tuple[dict[str, Any], DropPlan]:
    """Return this rank's new batch holding only kept rows (plus filler rows), and the plan used.

    ``batch`` is the dict GRPOTrainer._generate_and_score_completions returns, with the loss mask in
    ``tool_mask`` already zero on rejected rows; ``keep`` is this rank's (B_local,) keep mask. Every rank
    must call this (it gathers). ``trim=False`` keeps the padded widths (for ``pad_to_multiple_of``).
    """
    local_rows = int(keep.numel())
    layout = row_layout(batch, local_rows)
    keep_global = accelerator.gather(keep.to(torch.long)).bool()
    plan = plan_drop(keep_global, accelerator.num_processes, accelerator.process_index, rows_multiple)
    source = plan.source_rows.to(keep.device)

    new_batch = dict(batch)  # same key order: TRL's shuffle reads the batch size from the first entry
    for key, side in layout.items():
        new_batch[key] = gather_rows(batch[key], side, key, accelerator, pad_token_id)[source]

    filler = plan.is_filler.to(keep.device)
    new_batch[LOSS_MASK_KEY] = new_batch[LOSS_MASK_KEY] * (~filler).unsqueeze(1).to(new_batch[LOSS_MASK_KEY].dtype)
    new_batch["advantages"] = torch.where(filler, torch.zeros_like(new_batch["advantages"]), new_batch["advantages"])

    if trim:
        trim_padding(new_batch, layout)
    return new_batch, plan


def gather_rows(value: torch.Tensor, side: str | None, key: str, accelerator: Any, pad_token_id: int) -> torch.Tensor:
    """Every rank's rows of one batch entry, in rank order, padded to a common width on the token side."""
    if value.dtype == torch.bool:  # gloo cannot gather bool tensors
        return gather_rows(value.to(torch.uint8), side, key, accelerator, pad_token_id).bool()
    if side is not None and accelerator.num_processes > 1:
        value = accelerator.pad_across_processes(
            value, dim=1, pad_index=pad_value(key, pad_token_id), pad_first=(side == "left")
        )
    return accelerator.gather(value.contiguous())


def pad_value(key: str, pad_token_id: int) -> int:
    return pad_token_id if key in ("prompt_ids", "completion_ids") else 0


def trim_padding(batch: dict[str, Any], layout: dict[str, str | None]) -> None:
    """Drop (in place) the token columns that are padding in every row: long answers no longer in the batch
    stop setting the padded width, which is where removing rows saves compute on top of the rows themselves."""
    prompt_used = torch.nonzero(batch["prompt_mask"].any(dim=0)).flatten()
    start = int(prompt_used[0]) if prompt_used.numel() else batch["prompt_mask"].size(1) - 1
    completion_used = torch.nonzero(batch["completion_mask"].any(dim=0)).flatten()
    end = int(completion_used[-1]) + 1 if completion_used.numel() else 1
    for key, side in layout.items():
        if side == "left":
            batch[key] = batch[key][:, start:]
        elif side == "right":
            batch[key] = batch[key][:, :end]
