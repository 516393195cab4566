"""Reinforce-Ada on verl: the rollout worker's rounds (`verl_ext.adaptive_rollout`) on verl's real worker class with
scripted sessions (no Ray actor, no LLM server: `_run_agent_loop` and the reward loop are replaced), the pools it
writes, the sampler's metrics and the estimator's pool baseline (`verl_ext.adaptive`), each against the core's
`minimal_rl.adaptive.run_rounds` (what the TRL trainers run) or hand-computed numbers. The whole path inside the
stock ``main_ppo`` runs in `make e2e` (tests/e2e/test_verl_adaptive.py).
"""

from __future__ import annotations

import asyncio
import json
from unittest import mock

import pytest
import torch

pytest.importorskip("verl")
from mrl_verl import skip_module_without_drop_sampler  # noqa: E402

skip_module_without_drop_sampler()
pytest.importorskip("transfer_queue")

from omegaconf import OmegaConf  # noqa: E402
from verl.experimental.agent_loop import AgentLoopOutput  # noqa: E402
from verl.experimental.agent_loop.agent_loop import AgentLoopMetrics  # noqa: E402
from verl.trainer.ppo.v1 import agent_loop_tq  # noqa: E402

from minimal_rl.adaptive import run_rounds  # noqa: E402
from verl_ext import adaptive_rollout  # noqa: E402
from verl_ext.adaptive import MANAGER_CLASS, POOL_FIELD, POOLS, AdaptiveSettings, check_adaptive_config  # noqa: E402
from verl_ext.estimators import ESTIMATORS  # noqa: E402
from verl_ext.options import MinimalRLOptions  # noqa: E402

N = 4


def _settings(algorithm="reinforce_ada_balance", max_rounds=3, round_repeat=4) -> AdaptiveSettings:
    config = OmegaConf.create({
        "algorithm": {"adv_estimator": algorithm, "minimal_rl": {"max_rounds": max_rounds, "round_repeat": round_repeat}},
        "actor_rollout_ref": {"rollout": {"n": N}},
    })
    return AdaptiveSettings.from_config(config)


class ScriptedWorker:
    """verl's worker class under our subclass, with the session runner and the reward loop scripted: session k of
    a prompt answers token 100 + k and scores ``scores[k]`` (+1 right, -1 wrong, as minimal-rl's reward)."""

    def __init__(self, scores: list[float], settings: AdaptiveSettings):
        cls = adaptive_rollout.AdaptiveAgentLoopWorkerImpl
        self.worker = worker = cls.__new__(cls)
        worker.adaptive, worker._pools, worker.reward_loop_worker_handles = settings, {}, [object()]
        worker._compute_multi_modal_inputs = lambda output, input_ids: {}
        worker._compute_position_ids = lambda ids, mask, mm: torch.arange(ids.shape[-1]).unsqueeze(0)
        self.sessions_run: list[int] = []
        self.temperatures: set[float] = set()
        self.writes: dict[str, dict] = {}
        self.status: dict[str, str] = {}

        async def no_teacher(*args, **kwargs):
            return None

        async def run_agent_loop(sampling_params, trajectory, *, trace=False, session_id, **prompt):
            self.sessions_run.append(session_id)
            self.temperatures.add(sampling_params["temperature"])
            await asyncio.sleep(0.001 * ((7 * session_id) % 5))  # sessions end out of order
            output = AgentLoopOutput(prompt_ids=[1, 2], response_ids=[100 + session_id], response_mask=[1],
                                     metrics=AgentLoopMetrics(), extra_fields={})
            return await worker._agent_loop_postprocess(output, trajectory["validate"], session_id=session_id, **prompt)

        async def compute_score(outputs, kwargs):  # as verl's: only an output not scored yet
            if outputs[-1].reward_score is None:
                outputs[-1].reward_score = scores[kwargs["session_id"]]
                outputs[-1].extra_fields["reward_extra_info"] = {}

        worker._compute_teacher_logprobs = no_teacher
        worker._run_agent_loop = run_agent_loop
        worker._compute_score = compute_score

    def run(self, uid="u", **prompt_fields) -> None:
        async def put(key, partition_id, tag):
            self.status[key] = tag["status"]

        async def batch_put(keys, fields, tags, partition_id):
            for i, key in enumerate(keys):
                self.writes[key] = {"response": int(fields["responses"][i][0]), "pool": fields[POOL_FIELD][i],
                                    "score": float(fields["rm_scores"][i][-1])}

        with mock.patch.object(adaptive_rollout.tq, "async_kv_put", put), \
                mock.patch.object(agent_loop_tq.tq, "async_kv_batch_put", batch_put):
            asyncio.run(self.worker._run_prompt({"uid": uid, "raw_prompt": "q", "global_steps": 1, **prompt_fields},
                                                {"temperature": 1.0}, trajectory={"validate": False}))


def _core_outcome(correct: list[bool], settings: AdaptiveSettings):
    """What the core loop (the TRL trainers' path) decides for one prompt with the same responses."""
    options = settings.options

    def sample_round(active, repeat):
        start = sample_round.used
        sample_round.used += repeat
        return [correct[start:start + repeat]]

    sample_round.used = 0
    return run_rounds(sample_round, 1, settings.n, settings.exit_rule, options.max_rounds, options.round_repeat).pools[0]


@pytest.mark.parametrize("algorithm", ["reinforce_ada_balance", "reinforce_ada_pos"])
@pytest.mark.parametrize("scores", [
    [-1, -1, -1, -1, 1, -1, -1, 1, 1, 1, 1, 1],  # balanced exits in round 2; pos exits in round 2
    [1, 1, 1, 1, 1, 1, 1, -1, 1, 1, 1, 1],  # balanced: too few wrong until round 3 is over
    [-1] * 12,  # never a signal: the fallback keeps 4 wrong (a uniform pool, dropped by the filter)
    [1, -1, 1, -1] + [1] * 8,  # both exit in round 1
])
def test_the_worker_keeps_what_the_core_loop_keeps(algorithm, scores):
    settings = _settings(algorithm)
    worker = ScriptedWorker(scores, settings)
    worker.run()
    core = _core_outcome([s > 0 for s in scores], settings)
    rounds_run = core.exit_round or settings.options.max_rounds
    assert sorted(worker.sessions_run) == list(range(rounds_run * settings.options.round_repeat))
    assert sorted(worker.writes) == [f"u_{k}_0" for k in range(N)]  # renumbered 0..n-1, like a fixed group
    assert [worker.writes[f"u_{k}_0"]["response"] - 100 for k in range(N)] == core.kept
    assert [worker.writes[f"u_{k}_0"]["score"] for k in range(N)] == [float(scores[p]) for p in core.kept]
    pool = json.loads(worker.writes["u_0_0"]["pool"])
    assert pool == {"correct": core.correct, "values": [float(c) for c in core.correct], "exit_round": core.exit_round,
                    "kept": core.kept, "rounds": rounds_run}
    assert worker.status == {"u": "finished"}


def test_verls_per_prompt_n_and_greedy_flag_keep_their_meaning():
    """``__rollout_n__`` is the number a prompt keeps (2 here, the preset's n is 4); ``__do_sample__=False`` samples
    greedily, as in verl's own worker."""
    worker = ScriptedWorker([1, -1, -1, -1] + [1] * 8, _settings())
    worker.run(__rollout_n__=2, __do_sample__=False)
    assert sorted(worker.writes) == ["u_0_0", "u_1_0"]
    assert sorted(worker.sessions_run) == [0, 1, 2, 3] and worker.temperatures == {0}


def test_a_failing_session_fails_the_prompt_and_writes_nothing():
    settings = _settings()
    worker = ScriptedWorker([1.0] * 12, settings)
    real = worker.worker._run_agent_loop

    async def failing(sampling_params, trajectory, *, trace=False, session_id, **prompt):
        if session_id == 2:
            raise RuntimeError("the LLM server went away")
        return await real(sampling_params, trajectory, trace=trace, session_id=session_id, **prompt)

    worker.worker._run_agent_loop = failing
    worker.run()
    assert worker.writes == {} and worker.status == {"u": "failure"}
    assert worker.worker._pools == {}


def test_a_non_binary_reward_without_a_threshold_fails_the_prompt_loudly(caplog):
    worker = ScriptedWorker([0.3, 0.7, 0.1, 0.9] * 3, _settings())
    worker.run()
    assert worker.status == {"u": "failure"}
    assert "rewards are not binary" in caplog.text


def test_pool_metrics_and_the_estimators_pool_baseline():
    """Two prompts: a (round 1: 2 right of 4, exits) and b (rounds 1-2: 2 right of 8, exits). The sampler's metrics
    are the core's; the estimator gives A = c - mean(pool): a 1 - 0.5, 0 - 0.5; b 1 - 0.25, 0 - 0.25."""
    settings = _settings()
    scores = {"a": [1, -1, 1, -1], "b": [-1, -1, -1, -1, 1, 1, -1, -1]}
    records = {}
    for uid, s in scores.items():
        worker = ScriptedWorker(s + [-1] * 4, settings)
        worker.run(uid)
        records[uid] = [worker.writes[f"{uid}_{k}_0"] for k in range(N)]
    uids = [uid for uid in scores for _ in range(N)]
    metrics = POOLS.read_batch(uids + ["mrlpad"], [r["pool"] for uid in scores for r in records[uid]] + [None])
    assert metrics == {"rounds": 2.0, "active_prompts/round_1": 2.0, "active_prompts/round_2": 1.0,
                       "generated_per_kept": 12 / 8, "exited_with_signal_frac": 1.0, "uniform_pools_frac": 0.0}
    kept_scores = torch.tensor([r["score"] for uid in scores for r in records[uid]])
    rewards = torch.zeros(8, 3)
    rewards[:, -1] = kept_scores
    config = OmegaConf.create({"minimal_rl": {"max_rounds": 3, "round_repeat": 4}})
    advantages, _ = ESTIMATORS["reinforce_ada_balance"](rewards, torch.ones(8, 3), index=uids, config=config)
    expected = [(1.0 if s > 0 else 0.0) - (0.5 if uid == "a" else 0.25) for uid, s in zip(uids, kept_scores.tolist())]
    assert advantages[:, 0].tolist() == pytest.approx(expected)
    assert sorted(set(advantages[:4, 0].tolist())) == [-0.5, 0.5]
    # the sampler's sample_filter/weight_mean is over the same weights (not the kept group's own mean, 0)
    from verl_ext.selection import SamplerSettings

    sampler = SamplerSettings.parse({"algorithm": "reinforce_ada_balance", "minimal_rl": {"max_rounds": 3, "round_repeat": 4}})
    result = sampler.weights(kept_scores.tolist(), uids)
    assert result.weights.tolist() == pytest.approx(expected)
    assert result.metrics()["weight_mean"] == pytest.approx(sum(expected) / 8)


def test_the_estimator_refuses_a_batch_without_pools_but_passes_padding_rows():
    POOLS.read_batch([], [])
    rewards = torch.tensor([[0.0, 1.0], [0.0, -1.0]])
    with pytest.raises(RuntimeError, match="no Reinforce-Ada pool.*agent_loop_manager_class"):
        ESTIMATORS["reinforce_ada_pos"](rewards, torch.ones(2, 2), index=["x", "x"], config=None)
    # the sampler's padding rows (verl_ext.selection, loss mask 0) next to a real prompt: advantage 0
    POOLS.read_batch(["x", "x"], [json.dumps({"correct": [True, False], "values": [1.0, 0.0], "exit_round": 1,
                                              "kept": [0, 1], "rounds": 1})] * 2)
    rewards = torch.tensor([[0.0, 1.0], [0.0, -1.0], [0.0, 0.0]])
    config = {"minimal_rl": {"positive_threshold": 0.0}}  # as the presets set it
    advantages, _ = ESTIMATORS["reinforce_ada_pos"](rewards, torch.ones(3, 2), index=["x", "x", "mrlpad0"], config=config)
    assert advantages[:, -1].tolist() == [0.5, -0.5, 0.0]


def _config(**changes):
    config = {
        "algorithm": {"adv_estimator": "reinforce_ada_balance", "minimal_rl": {"filter_mode": "drop", "round_repeat": 8}},
        "actor_rollout_ref": {"rollout": {"n": 4, "agent": {"agent_loop_manager_class": MANAGER_CLASS}}},
        "trainer": {"use_v1": True, "v1": {"trainer_mode": "sync"}},
    }
    for path, value in changes.items():
        node = config
        *parents, leaf = path.split(".")
        for key in parents:
            node = node[key]
        node[leaf] = value
    return OmegaConf.create(config)


def test_the_config_check_passes_the_preset_and_names_each_problem():
    check_adaptive_config(_config(), verl_version="0.9.1")
    check_adaptive_config(_config(**{"algorithm.adv_estimator": "reinforce_rej"}), verl_version="0.7.1")
    cases = {
        "trainer.v1.trainer_mode": ("colocate_async", "trainer_mode=sync"),
        "trainer.use_v1": (False, "use_v1=true"),
        "actor_rollout_ref.rollout.agent.agent_loop_manager_class": (None, "agent_loop_manager_class="),
        "algorithm.minimal_rl.filter_mode": ("zero", "filter_mode=drop"),
        "actor_rollout_ref.rollout.n": (16, r"round_repeat >= actor_rollout_ref.rollout.n \(8 < 16\)"),
    }
    for path, (value, message) in cases.items():
        with pytest.raises(ValueError, match=message):
            check_adaptive_config(_config(**{path: value}), verl_version="0.9.1")
    with pytest.raises(RuntimeError, match=r"tested with verl >=0\.9\.1,<0\.10\.0"):
        check_adaptive_config(_config(), verl_version="0.8.0")


def test_round_settings_are_refused_where_they_would_be_ignored():
    from verl_ext.options import sample_filter_in_effect

    with pytest.raises(ValueError, match="apply to adaptive sampling only"):
        sample_filter_in_effect("reinforce_rej", MinimalRLOptions(round_repeat=16))
    with pytest.raises(ValueError, match="must be >= 1"):
        MinimalRLOptions(max_rounds=0)


def test_the_manager_starts_our_worker_class():
    manager = adaptive_rollout.AdaptiveAgentLoopManager.__new__(adaptive_rollout.AdaptiveAgentLoopManager)
    adaptive_rollout.AdaptiveAgentLoopManager.__init__(manager, config=OmegaConf.create({
        "actor_rollout_ref": {"rollout": {}, "model": {}}}), llm_client=None)
    assert manager.agent_loop_workers_class is adaptive_rollout.AdaptiveAgentLoopWorker
