"""Worker of test_trl_two_processes.py for refill=True, run as `torchrun --nproc_per_node 2 ... OUT_DIR` (gloo, CPU).

Three prompts x 4 responses over 2 ranks x 6 rows, the dataset [g0, g1, g2] in order (no shuffle): g1 straddles the
ranks (correct on rank 0, wrong on rank 1: uniform on each rank, mixed globally) and g2 is all wrong. Reinforce-Rej
drops g2 whole, so one refill round draws the dataset's three prompts again (in the refill stream's order, the same on
both ranks); the first of g0 / g1 drawn fills the batch. Checks: both ranks ran the same rounds and logged the same
metrics (refill 1 round of 3 prompts), no g2 row is trained on, the batch over both ranks is g0, g1 and one more
mixed group, and masking and hard drop give the same SGD update.
"""

from __future__ import annotations

import copy
import sys
from collections import Counter
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))  # run by torchrun, outside pytest
import mrl_testing as helpers  # noqa: E402

from accelerate import PartialState  # noqa: E402
from accelerate.utils import gather_object  # noqa: E402
from datasets import Dataset  # noqa: E402

from trl_ext import build_trainer  # noqa: E402

TABLE = {"g0": [1.0, 0.0, 0.0, 0.0], "g1": [1.0, 1.0, 0.0, 0.0], "g2": [0.0, 0.0, 0.0, 0.0]}


def main(out_dir: Path) -> None:
    state = PartialState(cpu=True)
    assert state.num_processes == 2, f"expected 2 processes, got {state.num_processes} (launch with torchrun)"
    rank = state.process_index
    tokenizer = helpers.build_tokenizer()
    model = helpers.build_model(tokenizer)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}

    updates = {}
    for hard_drop in (False, True):
        config = helpers.tiny_config(
            dict, out_dir / str(hard_drop), per_device_train_batch_size=6, hard_drop=hard_drop, refill=True,
            optim="sgd", learning_rate=1.0, lr_scheduler_type="constant", max_grad_norm=0.0, weight_decay=0.0,
            ddp_backend="gloo",
        )
        trainer = build_trainer(
            "reinforce_rej", copy.deepcopy(model), helpers.make_fixed_reward(TABLE), config=config,
            train_dataset=Dataset.from_dict({"prompt": list(TABLE)}), processing_class=tokenizer,
        )
        trainer.train()
        batch = trainer._buffered_inputs[0]
        prompts = [p.replace(" ", "") for p in tokenizer.batch_decode(batch["prompt_ids"], skip_special_tokens=True)]
        kept = batch["tool_mask"].any(dim=1).tolist()
        trained = Counter(p for p, k in zip(prompts, kept) if k)
        all_trained = sum(gather_object([trained]), Counter())
        assert "g2" not in all_trained, (rank, hard_drop, all_trained)
        assert sorted(all_trained.values()) == [4, 8] and set(all_trained) == {"g0", "g1"}, all_trained
        logs = {k: v for k, v in trainer.state.log_history[0].items() if k.startswith("sample_filter/") or k == "loss"}
        all_logs = gather_object([logs])
        assert all_logs[0] == all_logs[1], f"ranks logged different metrics: {all_logs}"
        refill = [logs[f"sample_filter/refill_{n}"] for n in ("calls", "prompts", "batches")]
        assert refill == [1.0, 3.0, 1.0], logs
        assert logs["sample_filter/groups_generated"] == 6.0 and logs["sample_filter/samples_kept"] == 12.0, logs
        params = {n: p.detach() for n, p in trainer.accelerator.unwrap_model(trainer.model).named_parameters()}
        updates[hard_drop] = {n: params[n] - start[n] for n in start}
    assert any(float(u.abs().max()) > 0 for u in updates[False].values())
    for name in start:
        torch.testing.assert_close(updates[False][name], updates[True][name], rtol=1e-4, atol=1e-7, msg=name)

    state.wait_for_everyone()
    if rank == 0:
        print("TWO_PROCESS_REFILL_OK")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
