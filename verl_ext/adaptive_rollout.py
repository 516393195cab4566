"""EXPERIMENTAL: Reinforce-Ada's rounds inside verl's agent-loop worker (the rollout side of `verl_ext.adaptive`).

Select it with the public ``actor_rollout_ref.rollout.agent.agent_loop_manager_class`` (the
``+minimal_rl=reinforce_ada_*`` presets do). The manager starts `AdaptiveAgentLoopWorker` instead of verl's
``AgentLoopWorkerTQ``; per training prompt the worker, instead of ``rollout.n`` independent sessions:

1. runs ``round_repeat`` sessions per round through verl's own agent loop (any registered agent loop, tools
   included) and scores each with verl's own reward loop as soon as it ends;
2. after each round asks `minimal_rl.adaptive.PromptPool.add_round` whether the pool meets the exit rule; after
   ``max_rounds`` rounds it keeps `PromptPool.finish_without_signal`;
3. writes only the n kept sessions to TransferQueue, renumbered 0..n-1 (so code that counts ``rollout.n`` rows
   per uid still does), each with the pool as `verl_ext.adaptive.POOL_FIELD`, then the prompt's status.

Validation prompts run verl's own way. What it touches that verl does not publish (version-guarded with
`verl_ext.private_api`, rows in docs/architecture.md): the worker's ``_run_prompt``, ``_agent_loop_postprocess``,
``_run_agent_loop`` and ``_compute_score``, and Ray's ``__ray_actor_class__`` (``AgentLoopWorkerTQ`` is a Ray
actor class, and Ray refuses ``class W(AgentLoopWorkerTQ)``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import ray
import transfer_queue as tq
from verl.experimental.agent_loop import AgentLoopManager
from verl.trainer.ppo.v1.agent_loop_tq import AgentLoopManagerTQ, AgentLoopWorkerTQ, apply_greedy_sampling_params

from minimal_rl.adaptive import PromptPool

from .adaptive import FEATURE, POOL_FIELD, AdaptiveSettings, pool_record
from .private_api import check_tested_verl

logger = logging.getLogger(__name__)

_VerlWorker = AgentLoopWorkerTQ.__ray_actor_class__  # the plain class behind verl's @ray.remote


class AdaptiveAgentLoopWorkerImpl(_VerlWorker):
    """verl's TransferQueue agent-loop worker that samples each training prompt in rounds (module docstring)."""

    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.adaptive = AdaptiveSettings.from_config(config)
        if self.reward_loop_worker_handles is None:
            raise RuntimeError(
                "Reinforce-Ada on verl scores every response in the rollout worker (its exit rule needs the score "
                "before the next round), but this run has no reward-loop workers: a colocated reward model "
                "(reward.reward_model.enable_resource_pool=false) scores later in the trainer. Give the reward model "
                "its own resource pool, or use a rule-based reward."
            )
        self._pools: dict[str, list[tuple[int, list, dict]]] = {}  # uid -> (session id, outputs, kwargs) so far

    async def _run_prompt(self, prompt: dict, sampling_params: dict, trajectory: dict, trace: bool = False) -> None:
        if trajectory["validate"]:
            return await super()._run_prompt(prompt, sampling_params, trajectory=trajectory, trace=trace)
        uid, settings = prompt["uid"], self.adaptive
        options = settings.options
        await tq.async_kv_put(key=uid, partition_id="train", tag={"status": "running"})
        sessions = self._pools[uid] = []
        status = "failure"
        try:
            # verl's per-prompt settings keep their meaning: n kept (the rounds decide how many are generated), and
            # greedy decoding for a prompt marked so
            n = int(prompt.pop("__rollout_n__", settings.n))
            if not prompt.pop("__do_sample__", True):
                sampling_params = dict(sampling_params)
                apply_greedy_sampling_params(sampling_params)
            pool, values, rounds_run = PromptPool(), [], 0
            for round_number in range(1, options.max_rounds + 1):
                rounds_run, first = round_number, len(sessions)
                tasks = [
                    asyncio.create_task(self._run_agent_loop(
                        dict(sampling_params), trajectory=trajectory, trace=trace, session_id=first + i, **prompt))
                    for i in range(options.round_repeat)
                ]
                errors = [r for r in await asyncio.gather(*tasks, return_exceptions=True) if isinstance(r, BaseException)]
                if errors:
                    raise errors[0]
                sessions.sort(key=lambda session: session[0])  # generation order, whatever order they ended in
                correct, round_values = settings.pool_values([outputs[-1].reward_score for _, outputs, _ in sessions[first:]])
                values += round_values
                if pool.add_round(correct, round_number, n, settings.exit_rule):
                    break
            else:
                pool.finish_without_signal(n, settings.exit_rule)
            record = pool_record(pool, values, rounds_run)
            for session_id, position in enumerate(pool.kept):
                _, outputs, kwargs = sessions[position]
                await super()._agent_loop_postprocess(outputs, False, **{**kwargs, "session_id": session_id, POOL_FIELD: record})
            status = "finished"
        except Exception:
            logger.exception("Reinforce-Ada rounds failed for uid=%s", uid)
        finally:
            self._pools.pop(uid, None)
            await tq.async_kv_put(key=uid, partition_id="train", tag={"status": status})

    async def _agent_loop_postprocess(self, output: Any, validate: bool, **kwargs: Any) -> None:
        """A session of a prompt in rounds: scored now and held in its pool (written later only if kept)."""
        sessions = None if validate else self._pools.get(kwargs.get("uid"))
        if sessions is None:
            return await super()._agent_loop_postprocess(output, validate, **kwargs)
        outputs = output if isinstance(output, list) else [output]
        if not outputs:
            raise RuntimeError(f"the agent loop returned no output for prompt {kwargs.get('uid')}")
        await self._compute_score(outputs, kwargs=kwargs)
        if outputs[-1].reward_score is None:
            raise RuntimeError("verl's reward loop gave no score; the exit rule needs one")
        sessions.append((int(kwargs["session_id"]), outputs, kwargs))


AdaptiveAgentLoopWorker = ray.remote(AdaptiveAgentLoopWorkerImpl)


class AdaptiveAgentLoopManager(AgentLoopManagerTQ):
    """verl's TransferQueue agent-loop manager with `AdaptiveAgentLoopWorker` as its workers."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        check_tested_verl(FEATURE, "Use a tested verl, or reinforce_rej (uniform groups dropped) on this one.")
        self.agent_loop_workers_class = AdaptiveAgentLoopWorker
        AgentLoopManager.__init__(self, *args, **kwargs)  # not AgentLoopManagerTQ's: it would set verl's worker class
