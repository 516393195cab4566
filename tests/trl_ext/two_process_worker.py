"""Worker of test_two_processes.py, run as `torchrun --nproc_per_node 2 two_process_worker.py OUT_DIR` (gloo, CPU).

Three prompts x 4 responses over 2 ranks x 6 rows: group 1 straddles the ranks, correct on rank 0 and wrong
on rank 1, so it is uniform on each rank but mixed globally; RAFT leaves rank 1 with nothing to train on.
Checks (raises AssertionError, exit code != 0): the weights and masks every rank trains on, identical
metrics on both ranks, the same SGD update with and without hard drop, and an all-rejected step.
"""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path

import torch

spec = importlib.util.spec_from_file_location("minimal_rl_tests_tiny_trl", Path(__file__).with_name("tiny_trl.py"))
helpers = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = helpers
spec.loader.exec_module(helpers)

from accelerate import PartialState  # noqa: E402
from accelerate.utils import gather_object  # noqa: E402
from datasets import Dataset  # noqa: E402

from trl_ext import RaftConfig, RaftTrainer, ReinforceRejConfig, ReinforceRejTrainer  # noqa: E402

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


def train_one_step(algorithm, model, tokenizer, out_dir, table, hard_drop):
    dataset = Dataset.from_dict({"prompt": list(table)})
    common = dict(
        per_device_train_batch_size=6,
        hard_drop=hard_drop,
        optim="sgd",
        learning_rate=1.0,
        lr_scheduler_type="constant",
        max_grad_norm=0.0,
        weight_decay=0.0,
        ddp_backend="gloo",
    )
    if algorithm == "raft":
        args = helpers.tiny_config(RaftConfig, out_dir, **common)
        trainer_class = RaftTrainer
    else:
        args = helpers.tiny_config(ReinforceRejConfig, out_dir, algorithm=algorithm, **common)
        trainer_class = ReinforceRejTrainer
    trainer = trainer_class(
        copy.deepcopy(model), helpers.make_fixed_reward(table), args=args, train_dataset=dataset, processing_class=tokenizer
    )
    trainer.train()
    batch = trainer._buffered_inputs[0]  # the micro-batch this rank trained on (steps_per_generation == 1)
    params = {n: p.detach().clone() for n, p in trainer.accelerator.unwrap_model(trainer.model).named_parameters()}
    return trainer, batch, params


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
            logs = {k: v for k, v in trainer.state.log_history[0].items() if k.startswith("filter/") or k == "loss"}
            all_logs = gather_object([logs])
            assert all_logs[0] == all_logs[1], f"ranks logged different metrics: {all_logs}"
            assert logs["filter/groups_mixed"] == (2 / 3), logs  # g0 and g1 are mixed, judged on gathered rewards
            updates[hard_drop] = {n: params[n] - start[n] for n in start}
            if hard_drop and algorithm == "raft":
                assert logs["filter/filler_rows"] == 1.0, logs
        assert any(float(u.abs().max()) > 0 for u in updates[False].values())
        for name in start:
            torch.testing.assert_close(updates[False][name], updates[True][name], rtol=1e-4, atol=1e-7, msg=name)

    for hard_drop in (False, True):  # every group rejected: no crash, no update
        trainer, batch, params = train_one_step("raft", model, tokenizer, out_dir / f"wrong-{hard_drop}", ALL_WRONG, hard_drop)
        assert trainer.state.log_history[0]["filter/samples_kept"] == 0.0
        for name in start:
            torch.testing.assert_close(params[name], start[name], msg=name)

    state.wait_for_everyone()
    if rank == 0:
        print("TWO_PROCESS_WORKER_OK")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
