"""Worker of test_trl_two_processes.py's adaptive test, run as `torchrun --nproc_per_node 2
two_process_worker_adaptive.py OUT_DIR` (gloo, CPU).

Reinforce-Ada over 2 ranks: rank 0 holds prompts A and B, rank 1 C and D (mrl_testing.ADA_POOLS), so the rounds'
active prompts live on different ranks (round 2: B on rank 0, C and D on rank 1). Checks (AssertionError, exit code
!= 0): every rank runs the same rounds (the reward is called once per round on each rank, with half the round's
rows), the kept rows and advantages gathered from both ranks equal the core's `run_rounds` / `pool_baseline`, both
ranks log the same metrics, and a `.train()` step gives the same SGD update with masking and with hard drop.
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

N = helpers.NUM_GENERATIONS
POOLS = helpers.ADA_POOLS


def make_trainer(model, tokenizer, out_dir, pools=POOLS, repeat=helpers.ADA_ROUND_REPEAT, **overrides):
    config = helpers.tiny_config(
        dict, out_dir, per_device_train_batch_size=N * len(POOLS) // 2, round_repeat=repeat,
        max_rounds=helpers.ADA_MAX_ROUNDS, loss_type="dapo", ddp_backend="gloo", **overrides,
    )
    return build_trainer(
        "reinforce_ada_balance", copy.deepcopy(model), helpers.make_pool_reward(pools, repeat), config=config,
        train_dataset=Dataset.from_dict({"prompt": list(POOLS)}), processing_class=tokenizer,
    )


def check_rounds(model, tokenizer, out_dir, rank, pools, repeat, calls):
    """``calls``: the rows each rank scores per round (a round of an odd number of rows is topped up by one)."""
    trainer = make_trainer(model, tokenizer, out_dir / f"rounds-{repeat}", pools, repeat)
    trainer.model.train()
    mine = list(pools)[2 * rank:2 * rank + 2]
    torch.manual_seed(rank)
    batch = trainer._generate_and_score_completions([{"prompt": p} for p in mine for _ in range(N)])
    assert trainer.reward_funcs[0].calls == calls, trainer.reward_funcs[0].calls
    rounds, expected = helpers.ada_core_expectation("reinforce_ada_balance", pools, repeat)
    advantages = gather_object(batch["advantages"].tolist())
    kept = gather_object(batch["tool_mask"].any(dim=1).tolist())
    positions = list(trainer._logs["extra"]["pool_position"])  # gathered over the ranks by GRPOTrainer
    assert len(advantages) == len(kept) == len(positions) == N * len(POOLS)
    for i, (kept_positions, pool_advantages) in enumerate(expected):
        rows = slice(i * N, (i + 1) * N)
        assert positions[rows] == kept_positions, (rank, i, positions[rows], kept_positions)
        if pool_advantages is None:
            assert kept[rows] == [False] * N and advantages[rows] == [0.0] * N, (rank, i)
        else:
            assert kept[rows] == [True] * N, (rank, i)
            torch.testing.assert_close(torch.tensor(advantages[rows]), torch.tensor(pool_advantages))
    metrics = {k: v for k, v in trainer._metrics["train"].items() if k.startswith("sample_filter/")}
    core = {f"sample_filter/{k}": [v] for k, v in rounds.metrics().items()}
    assert {k: metrics[k] for k in core} == core, (metrics, core)
    every = gather_object([metrics])
    assert every[0] == every[1], every


def check_train_step(model, tokenizer, out_dir, start):
    updates = {}
    for hard_drop in (False, True):
        trainer = make_trainer(
            model, tokenizer, out_dir / f"train-{hard_drop}", hard_drop=hard_drop, optim="sgd", learning_rate=1.0,
            lr_scheduler_type="constant", max_grad_norm=0.0, weight_decay=0.0,
        )
        trainer.train()
        params = {n: p.detach().clone() for n, p in trainer.accelerator.unwrap_model(trainer.model).named_parameters()}
        logs = {k: v for k, v in trainer.state.log_history[0].items() if k.startswith("sample_filter/")}
        every = gather_object([logs])
        assert every[0] == every[1], every
        assert logs["sample_filter/rounds"] == 3.0 and logs["sample_filter/samples_kept"] == 3 * N, logs
        updates[hard_drop] = {n: params[n] - start[n] for n in start}
    assert any(float(u.abs().max()) > 0 for u in updates[False].values())
    for name in start:
        torch.testing.assert_close(updates[False][name], updates[True][name], rtol=1e-4, atol=1e-7, msg=name)


def main(out_dir: Path) -> None:
    state = PartialState(cpu=True)
    assert state.num_processes == 2, f"expected 2 processes, got {state.num_processes} (launch with torchrun)"
    tokenizer = helpers.build_tokenizer()
    model = helpers.build_model(tokenizer)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    check_rounds(model, tokenizer, out_dir, state.process_index, POOLS, 4, calls=[8, 6, 4])  # 16, 12, 8 rows
    # 5 per round: round 2 has 3 x 5 = 15 rows, dealt out as 8 + 7 and one copy (scored, not pooled)
    five = {prompt: (scores * 2)[:15] for prompt, scores in POOLS.items()}
    check_rounds(model, tokenizer, out_dir, state.process_index, five, 5, calls=[10, 8, 5])
    check_train_step(model, tokenizer, out_dir, start)
    state.wait_for_everyone()
    if state.process_index == 0:
        print("TWO_PROCESS_ADAPTIVE_OK")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
