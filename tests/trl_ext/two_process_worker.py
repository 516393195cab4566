"""Worker of test_two_processes.py, run as `torchrun --nproc_per_node 2 two_process_worker.py OUT_DIR` (gloo, CPU).

Three prompts x 4 responses over 2 ranks x 6 rows: group 1 straddles the ranks, correct on rank 0 and wrong
on rank 1, so it is uniform on each rank but mixed globally; RAFT leaves rank 1 with nothing to train on.
Checks (raises AssertionError, exit code != 0): the weights and masks every rank trains on, identical
metrics on both ranks, the same SGD update with and without hard drop (RAFT, Reinforce-Rej, and stock GRPO with
the drop_uniform filter), and an all-rejected step.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))  # run by torchrun, outside pytest
import mrl_testing as helpers  # noqa: E402

from accelerate import PartialState  # noqa: E402
from accelerate.utils import gather_object  # noqa: E402
from datasets import Dataset  # noqa: E402

from trl_ext import build_trainer  # noqa: E402

TABLE = {"g0": [1.0, 0.0, 0.0, 0.0], "g1": [1.0, 1.0, 0.0, 0.0], "g2": [0.0, 0.0, 0.0, 0.0]}
ALL_WRONG = {p: [0.0] * 4 for p in TABLE}

# What each rank trains on: sorted (prompt, weight, kept) rows (TRL shuffles rows inside a rank's batch).
# Masking: rank 0 holds global rows 0-5 (g0, g1 members 0-1), rank 1 rows 6-11 (g1 members 2-3, g2).
# Hard drop: kept global rows are dealt out round-robin; the filler row copies the first kept row, masked.
EXPECTED = {
    ("raft", False): [
        [("g0", 1, 1), ("g0", 0, 0), ("g0", 0, 0), ("g0", 0, 0), ("g1", 1, 1), ("g1", 1, 1)],
        [("g1", 0, 0), ("g1", 0, 0), ("g2", 0, 0), ("g2", 0, 0), ("g2", 0, 0), ("g2", 0, 0)],
    ],
    ("reinforce_rej", False): [
        [("g0", 1, 1), ("g0", -1, 1), ("g0", -1, 1), ("g0", -1, 1), ("g1", 1, 1), ("g1", 1, 1)],
        [("g1", -1, 1), ("g1", -1, 1), ("g2", 0, 0), ("g2", 0, 0), ("g2", 0, 0), ("g2", 0, 0)],
    ],
    ("raft", True): [[("g0", 1, 1), ("g1", 1, 1)], [("g0", 0, 0), ("g1", 1, 1)]],
    ("reinforce_rej", True): [
        [("g0", 1, 1), ("g0", -1, 1), ("g1", 1, 1), ("g1", -1, 1)],
        [("g0", -1, 1), ("g0", -1, 1), ("g1", 1, 1), ("g1", -1, 1)],
    ],
}


def train_one_step(algorithm, model, tokenizer, out_dir, table, hard_drop, sample_filter=None):
    dataset = Dataset.from_dict({"prompt": list(table)})
    config = helpers.tiny_config(
        dict, out_dir, per_device_train_batch_size=6, hard_drop=hard_drop, optim="sgd", learning_rate=1.0,
        lr_scheduler_type="constant", max_grad_norm=0.0, weight_decay=0.0, ddp_backend="gloo",
    )
    trainer = build_trainer(
        algorithm, copy.deepcopy(model), helpers.make_fixed_reward(table), config=config, sample_filter=sample_filter,
        train_dataset=dataset, processing_class=tokenizer,
    )
    trainer.train()
    batch = trainer._buffered_inputs[0]  # the micro-batch this rank trained on (steps_per_generation == 1)
    params = {n: p.detach().clone() for n, p in trainer.accelerator.unwrap_model(trainer.model).named_parameters()}
    return trainer, batch, params


def check_filtered_grpo(model, tokenizer, out_dir, start, rank):
    """Stock GRPO + drop_uniform: g2 (all wrong) leaves the update, g1 (uniform on each rank, mixed globally)
    stays; the same SGD update with masking and with hard drop."""
    updates = {}
    for hard_drop in (False, True):
        trainer, batch, params = train_one_step(
            "grpo", model, tokenizer, out_dir / f"grpo-{hard_drop}", TABLE, hard_drop, sample_filter="drop_uniform"
        )
        prompts = [p.replace(" ", "") for p in tokenizer.batch_decode(batch["prompt_ids"], skip_special_tokens=True)]
        kept = {p for p, k in zip(prompts, batch["tool_mask"].any(dim=1).tolist()) if k}
        assert "g2" not in kept and kept <= {"g0", "g1"}, (rank, hard_drop, kept)
        if not hard_drop:
            assert kept == ({"g0", "g1"} if rank == 0 else {"g1"}), (rank, kept)
        logs = trainer.state.log_history[0]
        assert logs["sample_filter/samples_kept"] == 8.0 and logs["sample_filter/groups_all_wrong"] == 1 / 3, logs
        updates[hard_drop] = {n: params[n] - start[n] for n in start}
    assert any(float(u.abs().max()) > 0 for u in updates[False].values())
    for name in start:
        torch.testing.assert_close(updates[False][name], updates[True][name], rtol=1e-4, atol=1e-7, msg=name)


def main(out_dir: Path) -> None:
    state = PartialState(cpu=True)  # as use_cpu=True does; a bare PartialState() would stay single-process
    assert state.num_processes == 2, f"expected 2 processes, got {state.num_processes} (launch with torchrun)"
    rank = state.process_index
    tokenizer = helpers.build_tokenizer()
    model = helpers.build_model(tokenizer)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}

    for algorithm in ("raft", "reinforce_rej"):
        updates = {}
        for hard_drop in (False, True):
            trainer, batch, params = train_one_step(
                algorithm, model, tokenizer, out_dir / f"{algorithm}-{hard_drop}", TABLE, hard_drop
            )
            prompts = tokenizer.batch_decode(batch["prompt_ids"], skip_special_tokens=True)
            weights = batch["advantages"].tolist()
            kept = batch["tool_mask"].any(dim=1).int().tolist()
            got = sorted((p.replace(" ", ""), round(w), k) for p, w, k in zip(prompts, weights, kept))
            expected = sorted(EXPECTED[algorithm, hard_drop][rank])
            assert got == expected, f"{algorithm} hard_drop={hard_drop} rank {rank}: {got} != {expected}"
            logs = {k: v for k, v in trainer.state.log_history[0].items() if k.startswith("sample_filter/") or k == "loss"}
            all_logs = gather_object([logs])
            assert all_logs[0] == all_logs[1], f"ranks logged different metrics: {all_logs}"
            assert logs["sample_filter/groups_mixed"] == (2 / 3), logs  # g0 and g1 are mixed, judged on gathered rewards
            updates[hard_drop] = {n: params[n] - start[n] for n in start}
            if hard_drop and algorithm == "raft":
                assert logs["sample_filter/filler_rows"] == 1.0, logs
        assert any(float(u.abs().max()) > 0 for u in updates[False].values())
        for name in start:
            torch.testing.assert_close(updates[False][name], updates[True][name], rtol=1e-4, atol=1e-7, msg=name)

    check_filtered_grpo(model, tokenizer, out_dir, start, rank)

    for hard_drop in (False, True):  # every group rejected: no crash, no update
        trainer, batch, params = train_one_step("raft", model, tokenizer, out_dir / f"wrong-{hard_drop}", ALL_WRONG, hard_drop)
        assert trainer.state.log_history[0]["sample_filter/samples_kept"] == 0.0
        for name in start:
            torch.testing.assert_close(params[name], start[name], msg=name)

    state.wait_for_everyone()
    if rank == 0:
        print("TWO_PROCESS_WORKER_OK")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
