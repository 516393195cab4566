"""The verl facts docs/verl-adaptive.md gives for the design of Reinforce-Ada on verl, checked on the installed verl:
why the rounds run in the agent-loop worker one session per response (a session's pool would get one score; the
sampler's refill cannot ask for a prompt again), and why the pool travels to the estimator through the sampler
(the advantage step fetches a fixed field list).

Each test runs verl's own code (no source reading): if one fails, verl changed the plug-in point it checks, and the
design has to be looked at again. Studied on verl 0.9.1; on an older verl without the v1 trainer they skip.
"""

from __future__ import annotations

import asyncio
import inspect
from unittest import mock

import pytest
import torch

pytest.importorskip("verl")
from mrl_verl import skip_module_without_drop_sampler  # noqa: E402

skip_module_without_drop_sampler()
pytest.importorskip("transfer_queue")

from verl.experimental.agent_loop import AgentLoopOutput  # noqa: E402
from verl.experimental.agent_loop.agent_loop import AgentLoopMetrics  # noqa: E402
from verl.trainer.ppo.v1 import agent_loop_tq, trainer_base  # noqa: E402


class _Stop(Exception):
    """Raised by a fake TransferQueue call once it has seen what it was asked for."""


def _output(score: float, token: int) -> AgentLoopOutput:
    return AgentLoopOutput(
        prompt_ids=[1, 2], response_ids=[token, token], response_mask=[1, 1], reward_score=score,
        metrics=AgentLoopMetrics(), extra_fields={"reward_extra_info": {}},
    )


def test_a_session_that_returns_a_pool_gets_one_score_for_all_of_it():
    """An agent loop may return several outputs, but verl gives them all the last one's score: a pool of a right
    (1.0) and a wrong (0.0) response is written as two wrong ones, so one session cannot return a scored pool."""
    worker_cls = agent_loop_tq.AgentLoopWorkerTQ.__ray_actor_class__  # the class under Ray's decorator
    worker = worker_cls.__new__(worker_cls)  # no Ray actor, no LLM servers: only the post-processing runs
    worker.reward_loop_worker_handles = None  # scores are set by the agent loop, as the doc's design would

    async def no_teacher(*args, **kwargs):
        return None

    worker._compute_teacher_logprobs = no_teacher
    worker._compute_multi_modal_inputs = lambda output, input_ids: {}
    worker._compute_position_ids = lambda input_ids, mask, mm: torch.arange(input_ids.shape[-1]).unsqueeze(0)
    written = {}

    async def put(keys, fields, tags, partition_id):
        written.update(keys=keys, scores=fields["rm_scores"])

    with mock.patch.object(agent_loop_tq.tq, "async_kv_batch_put", put):
        asyncio.run(worker._agent_loop_postprocess([_output(1.0, 5), _output(0.0, 6)], False, uid="u", session_id=0,
                                                   global_steps=1))
    assert written["keys"] == ["u_0_0", "u_0_1"]
    assert written["scores"][:, -1].tolist() == [0.0, 0.0]  # the first response's 1.0 is gone


def test_the_advantage_step_reads_no_field_the_rollout_could_carry_a_pool_baseline_in():
    """The v1 trainer fetches a fixed field list for the advantage: the agent loop's extra_fields (where a pool's
    mean and std could travel) never reach the estimator."""
    seen = {}

    def kv_batch_get(keys, partition_id, select_fields=None, **kwargs):
        seen["fields"] = select_fields
        raise _Stop

    batch = mock.Mock(keys=["u_0_0"], partition_id="train")
    with mock.patch.object(trainer_base.tq, "kv_batch_get", kv_batch_get), pytest.raises(_Stop):
        trainer_base.PPOTrainer._compute_advantage(object(), batch, {})
    assert seen["fields"] == ["uid", "response_mask", "rm_scores", "rollout_log_probs", "old_log_probs",
                              "ref_log_prob", "values"]
    assert "extra_fields" not in seen["fields"]


def test_the_sampler_refill_asks_for_a_number_of_fresh_prompts_not_for_a_prompt_again():
    """The v1 sampler's refill_fn is the trainer's `_add_prompts_to_generate(num_prompts)`; each prompt it submits
    comes from the dataloader with a new uid, so a sampler cannot ask for more responses to a prompt it holds."""
    assert list(inspect.signature(trainer_base.PPOTrainer._add_prompts_to_generate).parameters) == ["self",
                                                                                                     "num_prompts"]
    fake = mock.Mock(train_dataloader_it=iter([{"raw_prompt": ["p"]}, {"raw_prompt": ["p"]}]))
    first = trainer_base.PPOTrainer._fetch_one_gen_batch(fake)
    second = trainer_base.PPOTrainer._fetch_one_gen_batch(fake)
    assert first["uid"][0] != second["uid"][0]  # the same prompt text, submitted again, is another group
