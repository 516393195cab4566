"""The minimal-rl replay-buffer sampler on verl's real v1 ReplayBuffer, with local Ray and TransferQueue.

Groups are hand-built finished rollouts written into TransferQueue exactly as verl's agent loop writes
them (prompt tag ``{uid}`` + trajectories ``{uid}_{session}_{index}`` with ``rm_scores``); the refill
function stands in for the trainer's ``_add_prompts_to_generate`` by writing new finished groups.
"""

from __future__ import annotations

import json
import logging
import uuid

import pytest
import torch

pytest.importorskip("verl")
from mrl_verl import skip_module_without_drop_sampler  # noqa: E402

skip_module_without_drop_sampler()
ray = pytest.importorskip("ray")
tq = pytest.importorskip("transfer_queue")

from omegaconf import OmegaConf  # noqa: E402
from verl.trainer.ppo.core_algos import agg_loss, get_policy_loss_fn  # noqa: E402
from verl.trainer.ppo.padding_utils import construct_minimal_padding_template  # noqa: E402
from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer, ReplayBufferAsync  # noqa: E402
from verl.utils.tensordict_utils import list_of_dict_to_tensordict  # noqa: E402
from verl.workers.config import FSDPActorConfig  # noqa: E402

from minimal_rl.algorithms import compute_weights  # noqa: E402
from minimal_rl.metrics import HOST_NAMES, PER_ROUND, PREFIX  # noqa: E402
from verl_ext.adaptive import POOL_FIELD  # noqa: E402
from verl_ext.options import GROUPED_VERL_ESTIMATORS  # noqa: E402
from verl_ext.refill import RefillLimitError, check_verl_version  # noqa: E402
from verl_ext.sampler import PADDING_ROW_TOKENS, MinimalRLSampler  # noqa: E402

PART = "train"
# The brief's example: all-correct, mixed (1 of 4), all-wrong, mixed (3 of 4).
EXAMPLE = [[1, 1, 1, 1], [0, 1, 0, 0], [0, 0, 0, 0], [1, 0, 1, 1]]


@pytest.fixture(scope="module", autouse=True)
def transfer_queue():
    """One local Ray + TransferQueue for the whole module (start-up dominates the run time)."""
    started_ray = not ray.is_initialized()
    if started_ray:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, namespace="minimal_rl_sampler_tests")
    tq.init(OmegaConf.create({"backend": {"SimpleStorage": {"num_data_storage_units": 1}}}))
    yield
    tq.close()
    if started_ray:
        ray.shutdown()


@pytest.fixture(autouse=True)
def empty_partition():
    def clear():
        listing = tq.kv_list(PART) or {}
        keys = list(listing.get(PART, {}))
        if keys:
            tq.kv_clear(keys=keys, partition_id=PART)

    clear()
    yield
    clear()


def put_groups(groups, lengths=None, global_steps=1, partition=PART, extra=None):
    """Write finished groups (one list of scores per prompt; ``extra``: more fields per group); returns the uids."""
    uids, keys, fields, tags = [], [], [], []
    for g, scores in enumerate(groups):
        uid = uuid.uuid4().hex  # no underscores: verl splits keys on "_"
        uids.append(uid)
        for s, score in enumerate(scores):
            length = lengths[g][s] if lengths else 4 + s + g
            rm_scores = torch.zeros(length)
            rm_scores[-1] = float(score)
            keys.append(f"{uid}_{s}_0")
            fields.append(
                {
                    "prompts": torch.full((3,), 7, dtype=torch.int64),
                    "responses": torch.arange(length, dtype=torch.int64) + 10,
                    "response_mask": torch.ones(length, dtype=torch.int64),
                    "rm_scores": rm_scores,
                    **(extra[g] if extra else {}),
                }
            )
            tags.append(
                {
                    "status": "success",
                    "prompt_len": 3,
                    "response_len": length,
                    "seq_len": 3 + length,
                    "global_steps": global_steps,
                    "min_global_steps": global_steps,
                    "max_global_steps": global_steps,
                }
            )
    tq.kv_batch_put(keys=keys, partition_id=partition, fields=list_of_dict_to_tensordict(fields), tags=tags)
    prompt_tags = [{"is_prompt": True, "status": "finished", "global_steps": global_steps} for _ in uids]
    tq.kv_batch_put(keys=uids, partition_id=partition, tags=prompt_tags)
    return uids


def stored_keys():
    """Trajectory keys in TransferQueue, without the cheap padding rows the drop appends."""
    listing = (tq.kv_list(PART) or {}).get(PART, {})
    return {k for k, tag in listing.items() if not tag.get("is_padding")}


def real_keys(batch):
    return {k for k, tag in zip(batch.keys, batch.tags) if not tag.get("is_padding")}


OPTION_KEYS = ("filter_mode", "positive_threshold", "reward_mapping", "nan_policy", "sample_filter")


def make_sampler(algorithm, trainer_mode="sync", refill_fn=None, **kwargs):
    """The sampler as verl builds it; option keys go into the ``minimal_rl`` block (as the presets pass it)."""
    block = {k: kwargs.pop(k) for k in OPTION_KEYS if k in kwargs}
    sampler_kwargs = {"algorithm": algorithm, "train_batch_size": 4, "minimal_rl": block, **kwargs}
    return MinimalRLSampler(
        trainer_mode=trainer_mode,
        trainer_config=OmegaConf.create({}),
        max_off_policy_threshold=None,
        max_off_policy_strategy="drop",
        sampler_kwargs=OmegaConf.create(sampler_kwargs),
        poll_interval=0.01,
        refill_fn=refill_fn,
    )


def keys_of(uids, group, sessions):
    return {f"{uids[group]}_{s}_0" for s in sessions}


# Spec table, "dropped from the update", on EXAMPLE: (group, sessions) kept.
EXPECTED_KEPT = {
    "raft": [(0, [0, 1, 2, 3]), (1, [1]), (3, [0, 2, 3])],
    "reinforce_rej": [(1, [0, 1, 2, 3]), (3, [0, 1, 2, 3])],
    "reinforce_rej_std": [(1, [0, 1, 2, 3]), (3, [0, 1, 2, 3])],
    "reinforce_remove_all_wrong": [(0, [0, 1, 2, 3]), (1, [0, 1, 2, 3]), (3, [0, 1, 2, 3])],
    "reinforce_remove_all_correct": [(1, [0, 1, 2, 3]), (2, [0, 1, 2, 3]), (3, [0, 1, 2, 3])],
    "reinforce": [(g, [0, 1, 2, 3]) for g in range(4)],
    "reinforce_mean_zero": [(g, [0, 1, 2, 3]) for g in range(4)],
}


@pytest.mark.parametrize("algorithm", sorted(EXPECTED_KEPT))
def test_drop_keeps_exactly_what_the_spec_says(algorithm):
    uids = put_groups(EXAMPLE)
    sampler = make_sampler(algorithm, ppo_mini_batch_size=2, rollout_n=4)
    assert isinstance(sampler, ReplayBuffer) and not isinstance(sampler, ReplayBufferAsync)
    batch, metrics = sampler.sample(global_steps=1, partition_id=PART, batch_size=4)

    expected = set().union(*(keys_of(uids, g, s) for g, s in EXPECTED_KEPT[algorithm]))
    assert real_keys(batch) == expected
    assert len(batch.tags) == len(batch.keys)
    # Rejected trajectories are gone from TransferQueue; kept ones stay for the rest of the step.
    assert stored_keys() == expected
    # Pre-filter statistics: 1 all-correct, 1 all-wrong, 2 mixed groups; 8 of 16 responses correct.
    assert metrics["sample_filter/groups_all_correct"] == 0.25
    assert metrics["sample_filter/groups_all_wrong"] == 0.25
    assert metrics["sample_filter/groups_mixed"] == 0.5
    assert metrics["sample_filter/accuracy_before_filter"] == 0.5
    assert metrics["sample_filter/samples_kept"] == len(expected)
    assert metrics["sample_filter/samples_in_update"] == len(expected)
    assert metrics["sample_filter/samples_dropped"] == 16 - len(expected)
    lengths = {f"{u}_{s}_0": 4 + s + g for g, u in enumerate(uids) for s in range(4)}
    assert metrics["sample_filter/tokens_kept"] == sum(lengths[k] for k in expected)
    assert metrics["sample_filter/tokens_kept_frac"] == pytest.approx(
        sum(lengths[k] for k in expected) / sum(lengths.values())
    )
    assert metrics["sample_filter/all_rejected"] == 0.0
    # verl needs a multiple of 2 prompts x 4 responses = 8 rows: RAFT's 8 kept rows need no padding, 12 need 4,
    # which the sampler adds itself as 2-token rows (nothing is dropped: no padding either).
    padding = (-len(expected)) % 8 if len(expected) < 16 else 0
    assert metrics["sample_filter/padding_samples"] == padding == len(batch) - len(expected)
    assert metrics["sample_filter/optimizer_steps_per_epoch"] == -(-len(expected) // 8)


def test_signed_scores_give_the_same_keep_as_binary():
    uids = put_groups([[2 * r - 1 for r in g] for g in EXAMPLE])  # +-1 verifier
    batch, _ = make_sampler("raft").sample(global_steps=1, partition_id=PART, batch_size=4)
    assert set(batch.keys) == set().union(*(keys_of(uids, g, s) for g, s in EXPECTED_KEPT["raft"]))


def test_zero_mode_keeps_every_row_and_still_reports():
    uids = put_groups(EXAMPLE)
    batch, metrics = make_sampler("raft", filter_mode="zero").sample(global_steps=1, partition_id=PART, batch_size=4)
    assert set(batch.keys) == {f"{u}_{s}_0" for u in uids for s in range(4)}
    assert metrics["sample_filter/samples_kept"] == 8.0
    assert metrics["sample_filter/samples_in_update"] == 16.0
    assert metrics["sample_filter/samples_dropped"] == 0.0


def test_estimator_not_ours_filters_nothing():
    uids = put_groups(EXAMPLE)
    batch, metrics = make_sampler("gae").sample(global_steps=1, partition_id=PART, batch_size=4)
    assert len(batch) == 16 and metrics["sample_filter/samples_in_update"] == 16.0
    assert uids


def test_all_rejected_step_keeps_a_zero_weight_placeholder(caplog):
    # Two all-wrong groups; the cheapest session (group 1, session 2: 2 tokens) is the placeholder.
    uids = put_groups([[0, 0, 0, 0], [0, 0, 0, 0]], lengths=[[9, 8, 7, 6], [5, 4, 2, 3]])
    with caplog.at_level(logging.WARNING, logger="verl_ext.selection"):
        batch, metrics = make_sampler("raft").sample(global_steps=1, partition_id=PART, batch_size=2)
    assert batch.keys == [f"{uids[1]}_2_0"]
    assert stored_keys() == {f"{uids[1]}_2_0"}
    assert metrics["sample_filter/all_rejected"] == 1.0
    assert metrics["sample_filter/placeholder_samples"] == 1.0
    assert metrics["sample_filter/samples_kept"] == 0.0
    assert metrics["sample_filter/tokens_kept_frac"] == 0.0
    assert any("every response of this step is rejected" in r.message for r in caplog.records)
    # The estimator's weight for the placeholder is 0 even on the shrunken batch (singleton all-wrong group).
    assert compute_weights(torch.tensor([0.0]), "raft", [uids[1]]).weights.tolist() == [0.0]
    assert compute_weights(torch.tensor([0.0]), "reinforce_rej", [uids[1]]).weights.tolist() == [0.0]


class Rollout:
    """The trainer's refill function: each call submits ``n`` prompts, which finish at once with the
    next scripted group scores (cycling)."""

    def __init__(self, script):
        self.script = script
        self.calls = []
        self.uids = []

    def __call__(self, num_prompts):
        self.calls.append(num_prompts)
        groups = [self.script[(len(self.uids) + i) % len(self.script)] for i in range(num_prompts)]
        self.uids += put_groups(groups)
        return num_prompts


def test_refill_replaces_rejected_groups_and_counts_them():
    initial = put_groups([[1, 1, 1, 1], [0, 1, 0, 0]])  # one all-correct (rejected), one mixed
    rollout = Rollout([[1, 0, 0, 0], [0, 0, 0, 0]])
    sampler = make_sampler("reinforce_rej", filter_mode="refill", refill_fn=rollout, train_batch_size=2)
    batch, metrics = sampler.sample(global_steps=1, partition_id=PART, batch_size=2)

    # verl's sync DAPO refill: k = 1 eviction -> 2 prompts (one mixed, one all-wrong, evicted again -> 2 more).
    assert rollout.calls[0] == 2
    selected = {k.split("_")[0] for k in batch.keys}
    assert len(selected) == 2 and initial[1] in selected and initial[0] not in selected
    assert len(batch) == 8  # whole mixed groups
    assert metrics["sample_filter/refill_calls"] == len(rollout.calls)
    assert metrics["sample_filter/refill_prompts"] == sum(rollout.calls)
    assert metrics["training/filter_groups/evicted_samples"] >= 1
    # Pre-filter fractions count the evicted groups too.
    assert metrics["sample_filter/groups_generated"] > 2
    assert metrics["sample_filter/groups_all_correct"] > 0
    assert stored_keys() == set(batch.keys)  # evicted and surplus groups are cleared


def test_refill_cap_raises_instead_of_looping_forever():
    put_groups([[0, 0, 0, 0], [0, 0, 0, 0]])
    rollout = Rollout([[0, 0, 0, 0]])  # the policy never gets anything right
    sampler = make_sampler(
        "reinforce_rej", filter_mode="refill", refill_fn=rollout, train_batch_size=2, max_refill_batches=3
    )
    with pytest.raises(RefillLimitError, match="max_refill_batches=3"):
        sampler.sample(global_steps=1, partition_id=PART, batch_size=2)
    assert sum(rollout.calls) <= 3 * 2


def test_refill_rounds_requests_up_to_the_dataloader_granularity():
    put_groups([[1, 1, 1, 1], [0, 1, 0, 0]])
    rollout = Rollout([[0, 1, 1, 1]])
    sampler = make_sampler(
        "reinforce_rej", filter_mode="refill", refill_fn=rollout, train_batch_size=2, gen_batch_size=4
    )
    batch, _ = sampler.sample(global_steps=1, partition_id=PART, batch_size=2)
    assert rollout.calls == [4]  # verl asked for 2; the dataloader only serves whole fetches of 4
    assert len({k.split("_")[0] for k in batch.keys}) == 2


def test_dapo_settings_pass_through_to_verls_buffer():
    initial = put_groups([[1, 1, 1, 1], [0, 1, 0, 0]])
    rollout = Rollout([[0, 0, 1, 0]])
    sampler = make_sampler(
        "reinforce",  # keeps everything itself: only verl's DAPO filter acts
        filter_mode="zero",
        refill_fn=rollout,
        train_batch_size=2,
        filter_groups={"enable": True, "metric": "reward", "max_inflight_gen_batches": 1},
    )
    assert sampler.filter_groups_metric == "reward"
    batch, metrics = sampler.sample(global_steps=1, partition_id=PART, batch_size=2)
    selected = {k.split("_")[0] for k in batch.keys}
    # The all-correct group is evicted; 3 mixed groups are sampleable, verl keeps 2 and discards the surplus.
    assert len(selected) == 2 and selected <= {initial[1], *rollout.uids}
    assert metrics["training/filter_groups/evicted_samples"] == 1
    assert metrics["training/filter_groups/discarded_surplus_samples"] == 1
    assert stored_keys() == set(batch.keys)
    assert metrics["sample_filter/refill_prompts"] == 2  # verl's 2k, through our capped refill


def test_async_variant_drops_and_refills():
    sampler = make_sampler("raft", trainer_mode="colocate_async")
    assert isinstance(sampler, ReplayBufferAsync)
    uids = put_groups(EXAMPLE)
    batch, _ = sampler.sample(global_steps=1, partition_id=PART, batch_size=4)
    assert set(batch.keys) == set().union(*(keys_of(uids, g, s) for g, s in EXPECTED_KEPT["raft"]))
    tq.kv_clear(keys=list(batch.keys), partition_id=PART)

    rollout = Rollout([[1, 0, 1, 1]])
    sampler = make_sampler("reinforce_rej", trainer_mode="colocate_async", filter_mode="refill", refill_fn=rollout)
    initial = put_groups([[0, 0, 0, 0], [0, 1, 0, 0]])
    batch, metrics = sampler.sample(global_steps=1, partition_id=PART, batch_size=2)
    assert rollout.calls == [1]  # async: evict k, refill k
    selected = {k.split("_")[0] for k in batch.keys}
    assert selected == {initial[1], rollout.uids[0]}
    assert metrics["sample_filter/groups_all_wrong"] == pytest.approx(1 / 3)


def test_validation_partition_is_never_filtered():
    uids = put_groups([[0, 0, 0, 0]], partition="val")
    batch, metrics = make_sampler("raft").sample(global_steps=1, partition_id="val", batch_size=1)
    assert set(batch.keys) == {f"{uids[0]}_{s}_0" for s in range(4)}
    assert not any(k.startswith("sample_filter/") for k in metrics)
    tq.kv_clear(keys=list(batch.keys), partition_id="val")


def test_bad_options_fail_clearly():
    with pytest.raises(ValueError, match="filter_mode"):
        make_sampler("raft", filter_mode="skip")
    with pytest.raises(ValueError, match="sampler_kwargs.algorithm"):
        make_sampler(None)
    with pytest.raises(ValueError, match="unknown minimal-rl sampler_kwargs"):
        make_sampler("raft", filtermode="drop")
    with pytest.raises(ValueError, match="unknown key.*filtermode"):
        make_sampler("raft", minimal_rl={"filtermode": "drop"})
    with pytest.raises(ValueError, match="unknown sample filter 'drop_some'"):
        make_sampler("raft", sample_filter="drop_some")
    for ungrouped in ("gae", "reinforce_plus_plus", "remax"):  # a critic, batch whitening, a greedy baseline
        with pytest.raises(ValueError, match=f"'{ungrouped}' has none"):
            make_sampler(ungrouped, sample_filter="drop_uniform")
    # verl's grpo would recompute its group baseline on the correct responses alone
    with pytest.raises(ValueError, match="drops single responses"):
        make_sampler("grpo", sample_filter="drop_wrong")


def test_token_mean_loss_after_drop_is_the_loss_on_kept_samples():
    """verl's own vanilla policy loss and agg_loss (token-mean): dropping == training on the kept rows alone;
    the zero-weight batch gives the same numerator over more tokens, i.e. the loss times the kept-token
    fraction; verl's synthetic padding rows change nothing."""
    uids = put_groups(EXAMPLE)
    batch, metrics = make_sampler("raft").sample(global_steps=1, partition_id=PART, batch_size=4)
    kept = set(batch.keys)

    all_keys = [f"{u}_{s}_0" for u in uids for s in range(4)]
    scores = torch.tensor([float(r) for g in EXAMPLE for r in g])
    group_ids = [k.split("_")[0] for k in all_keys]
    zero_weights = compute_weights(scores, "raft", group_ids).weights  # what the estimator does in zero mode
    kept_idx = [i for i, k in enumerate(all_keys) if k in kept]
    drop_weights = compute_weights(scores[kept_idx], "raft", [group_ids[i] for i in kept_idx]).weights
    assert torch.equal(drop_weights, zero_weights[kept_idx])  # the estimator agrees on the shrunken batch

    torch.manual_seed(0)
    lengths = [4 + s + g for g in range(4) for s in range(4)]
    width = max(lengths)
    mask = torch.tensor([[1.0] * n + [0.0] * (width - n) for n in lengths])
    old_log_prob = -torch.rand(16, width)
    log_prob = (old_log_prob + 0.3 * torch.randn(16, width)).requires_grad_(True)

    config = FSDPActorConfig(strategy="fsdp", ppo_mini_batch_size=4, ppo_micro_batch_size_per_gpu=4, rollout_n=4)
    policy_loss = get_policy_loss_fn("vanilla")

    def loss_on(rows, weights, extra_rows=0):
        lp, olp, m = log_prob[rows], old_log_prob[rows], mask[rows]
        if extra_rows:  # verl's synthetic padding rows: response_len 1, loss/response mask 0
            template, tag = construct_minimal_padding_template(
                {"response_mask": torch.ones(3, dtype=torch.int64)}, {"seq_len": 9}, eos_token_id=2
            )
            assert tag["is_padding"] and template["loss_mask"].sum() == 0
            pad = torch.zeros(extra_rows, width)
            pad[:, : template["response_mask"].numel()] = template["response_mask"].float()
            lp, olp, m = torch.cat([lp, pad]), torch.cat([olp, pad]), torch.cat([m, pad])
            weights = torch.cat([weights, torch.zeros(extra_rows)])
        advantages = weights[:, None] * m
        loss, _ = policy_loss(
            old_log_prob=olp, log_prob=lp, advantages=advantages, response_mask=m.bool(),
            loss_agg_mode="token-mean", config=config,
        )
        return loss

    loss_drop = loss_on(kept_idx, drop_weights)
    loss_alone = loss_on(kept_idx, torch.ones(len(kept_idx)))  # SFT-style: only the kept rows exist
    loss_padded = loss_on(kept_idx, drop_weights, extra_rows=8)  # verl pads 8 -> 16 rows
    loss_zero = loss_on(list(range(16)), zero_weights)

    kept_frac = metrics["sample_filter/tokens_kept_frac"]
    assert kept_frac == pytest.approx(mask[kept_idx].sum().item() / mask.sum().item())
    assert loss_drop.item() == pytest.approx(loss_alone.item(), rel=1e-6)
    assert loss_padded.item() == pytest.approx(loss_drop.item(), rel=1e-6)
    assert loss_zero.item() == pytest.approx(loss_drop.item() * kept_frac, rel=1e-6)
    assert abs(loss_zero.item() - loss_drop.item()) > 1e-3  # the dilution is real
    # Same story for the gradient reaching the kept rows.
    (g_drop,) = torch.autograd.grad(loss_drop, log_prob)
    (g_zero,) = torch.autograd.grad(loss_zero, log_prob)
    assert torch.allclose(g_zero, g_drop * kept_frac, atol=1e-7)
    # Plain agg_loss on an all-zero mask would be 0/0: the placeholder rule exists for this.
    assert torch.isnan(agg_loss(torch.ones(1, 2), torch.zeros(1, 2), "token-mean"))


PRESET_OVERRIDES = [
    "+minimal_rl=reinforce_rej",  # the preset selects the sampler and filter_mode=drop
    "data.train_batch_size=4",
    "actor_rollout_ref.actor.ppo_mini_batch_size=2",
    "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2",
]


def build_through_verl(*overrides):
    """verl's real config (ppo_trainer.yaml + our preset), built by verl's own
    `PPOTrainer._build_replay_buffer` (called on a stand-in holding only what it reads)."""
    from pathlib import Path
    from types import SimpleNamespace

    import verl
    from hydra import compose, initialize_config_dir
    from verl.trainer.ppo.v1.trainer_base import PPOTrainer

    config_dir = str(Path(verl.__file__).parent / "trainer" / "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        config = compose(config_name="ppo_trainer", overrides=[*PRESET_OVERRIDES, *overrides])
    rollout = Rollout([[0, 1, 1, 1]])
    trainer = SimpleNamespace(config=config, trainer_mode="sync", _add_prompts_to_generate=rollout)
    return PPOTrainer._build_replay_buffer(trainer), rollout


def test_verl_builds_the_sampler_from_the_preset():
    sampler, _ = build_through_verl()
    assert type(sampler).__name__ == "MinimalRLReplayBuffer"
    settings = sampler.settings
    assert settings.algorithm == "reinforce_rej" and settings.options.filter_mode == "drop"
    assert settings.sample_filter == "drop_uniform" and sampler.filter_groups_metric is None

    uids = put_groups(EXAMPLE)
    sampler.poll_interval = 0.01
    batch, metrics = sampler.sample(global_steps=1, partition_id=PART, batch_size=4)
    assert set(batch.keys) == keys_of(uids, 1, range(4)) | keys_of(uids, 3, range(4))
    assert metrics["sample_filter/groups_mixed"] == 0.5
    assert settings.padding_multiple == 8 and metrics["sample_filter/padding_samples"] == 0.0


def test_preset_refill_and_dapo_overrides_reach_the_sampler():
    sampler, rollout = build_through_verl("algorithm.minimal_rl.filter_mode=refill", "data.gen_batch_size=1")
    assert sampler.settings.options.filter_mode == "refill" and sampler.filter_groups_metric == "reward"
    assert sampler.max_refill_batches == 8 and sampler._dataloader_gen_batch_size() == 1
    initial = put_groups([[0, 0, 0, 0], [0, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]])
    sampler.poll_interval = 0.01
    batch, metrics = sampler.sample(global_steps=1, partition_id=PART, batch_size=4)
    selected = {k.split("_")[0] for k in batch.keys}
    # The 2 uniform groups are evicted and refilled with 2k = 4 prompts (verl's sync DAPO rule); 4 of the 6
    # mixed groups are selected (ties in age are broken arbitrarily) and the surplus is discarded.
    assert len(selected) == 4 and selected <= {initial[1], initial[3], *rollout.uids}
    assert metrics["sample_filter/refill_prompts"] == 4
    assert metrics["training/filter_groups/discarded_surplus_samples"] == 2
    assert stored_keys() == set(batch.keys)

    sampler, _ = build_through_verl(
        "algorithm.minimal_rl.filter_mode=zero", "algorithm.filter_groups.enable=true", "algorithm.filter_groups.metric=acc"
    )
    assert sampler.settings.options.filter_mode == "zero" and sampler.filter_groups_metric == "acc"


def test_multi_output_sessions_follow_their_final_output():
    """An agent loop may write several outputs per session ({uid}_{session}_{index}); verl's estimators score
    a session by its final output, and the sampler keeps or drops the session's rows together."""
    uid = uuid.uuid4().hex
    rows = {  # session 0: final output correct; session 1: final output wrong (its first output "correct")
        f"{uid}_0_0": 0.0, f"{uid}_0_1": 1.0, f"{uid}_1_0": 1.0, f"{uid}_1_1": 0.0,
    }
    fields, tags = [], []
    for key, score in rows.items():
        rm_scores = torch.zeros(5)
        rm_scores[-1] = score
        fields.append({"responses": torch.arange(5), "response_mask": torch.ones(5, dtype=torch.int64), "rm_scores": rm_scores})
        tags.append({"status": "success", "prompt_len": 3, "response_len": 5, "seq_len": 8, "global_steps": 1})
    tq.kv_batch_put(keys=list(rows), partition_id=PART, fields=list_of_dict_to_tensordict(fields), tags=tags)
    tq.kv_batch_put(keys=[uid], partition_id=PART, tags=[{"is_prompt": True, "status": "finished", "global_steps": 1}])
    batch, metrics = make_sampler("raft").sample(global_steps=1, partition_id=PART, batch_size=1)
    assert set(batch.keys) == {f"{uid}_0_0", f"{uid}_0_1"}
    assert metrics["sample_filter/accuracy_before_filter"] == 0.5  # per session, not per output
    assert metrics["sample_filter/tokens_kept"] == 10.0


def test_no_rewards_at_sampling_time_means_nothing_is_dropped(caplog):
    """A colocated reward model scores after sampling: no rm_scores yet, so the sampler cannot filter."""
    uid = uuid.uuid4().hex
    keys = [f"{uid}_{s}_0" for s in range(2)]
    fields = [{"responses": torch.arange(4), "response_mask": torch.ones(4, dtype=torch.int64)} for _ in keys]
    tags = [{"status": "success", "prompt_len": 3, "response_len": 4, "seq_len": 7, "global_steps": 1} for _ in keys]
    tq.kv_batch_put(keys=keys, partition_id=PART, fields=list_of_dict_to_tensordict(fields), tags=tags)
    tq.kv_batch_put(keys=[uid], partition_id=PART, tags=[{"is_prompt": True, "status": "finished", "global_steps": 1}])
    with caplog.at_level(logging.WARNING, logger="verl_ext.selection"):
        batch, metrics = make_sampler("raft").sample(global_steps=1, partition_id=PART, batch_size=1)
    assert set(batch.keys) == set(keys)
    assert metrics["sample_filter/unavailable"] == 1.0
    assert any("no rm_scores at sampling time" in r.message for r in caplog.records)


def test_estimator_zero_weights_without_the_sampler(caplog):
    """Without the sampler (legacy trainer, verl < 0.9, no preset) verl's compute_advantage -> our estimator
    zero-weights the rejected samples and says nothing at run time: the run said so at config time
    (test_filter_notice.py), so no process-global state is needed."""
    import numpy as np
    from verl import DataProto
    from verl.trainer.ppo.ray_trainer import compute_advantage

    rewards = torch.zeros(4, 3)
    rewards[:, -1] = torch.tensor([1.0, 0.0, 0.0, 0.0])
    data = DataProto.from_dict(
        tensors={"token_level_rewards": rewards, "response_mask": torch.ones(4, 3)},
        non_tensors={"uid": np.array(["u"] * 4, dtype=object)},
    )
    config = OmegaConf.create({"minimal_rl": {"filter_mode": "drop"}})
    with caplog.at_level(logging.WARNING):
        out = compute_advantage(data, adv_estimator="raft", config=config)
    assert not caplog.records
    torch.testing.assert_close(out.batch["advantages"][:, 0], torch.tensor([1.0, 0.0, 0.0, 0.0]))


def test_dropped_batch_is_padded_with_cheap_rows_verl_leaves_alone():
    """After a drop the sampler pads to verl's row multiple itself, with 2-token rows (loss mask 0, reward 0,
    tagged is_padding), so verl's own upsampling (128-token rows) adds nothing."""
    from verl.trainer.ppo.padding_utils import upsample_batch_to_divisible_size

    uids = put_groups(EXAMPLE)
    batch, metrics = make_sampler("reinforce_rej", ppo_mini_batch_size=3, rollout_n=4).sample(
        global_steps=1, partition_id=PART, batch_size=4
    )
    assert real_keys(batch) == keys_of(uids, 1, range(4)) | keys_of(uids, 3, range(4))
    assert len(batch) == 12 and metrics["sample_filter/padding_samples"] == 4.0
    assert metrics["sample_filter/samples_in_update"] == 8.0
    pads = [k for k, t in zip(batch.keys, batch.tags) if t.get("is_padding")]
    assert len(pads) == 4 and all(t["seq_len"] == PADDING_ROW_TOKENS for t in batch.tags if t.get("is_padding"))
    rows = tq.kv_batch_get(keys=pads, partition_id=PART)
    for i in range(len(pads)):
        row = rows[i]
        assert row["input_ids"].numel() == PADDING_ROW_TOKENS and row["responses"].numel() == 1
        assert row["response_mask"].sum() == 0 and row["loss_mask"].sum() == 0 and row["rm_scores"].sum() == 0
    assert {uid_of_key.split("_")[0] for uid_of_key in pads}.isdisjoint(uids)  # never grouped with real prompts
    assert upsample_batch_to_divisible_size(batch, 12, eos_token_id=2) is batch  # verl has nothing left to pad
    tq.kv_clear(keys=pads, partition_id=PART)


def test_a_sample_filter_on_verls_own_estimator():
    """+minimal_rl=sample_filter: verl's grpo keeps its advantages; the sampler drops the zero-variance groups."""
    uids = put_groups(EXAMPLE)
    sampler = make_sampler("grpo", sample_filter="drop_uniform")
    assert (sampler.settings.algorithm, sampler.settings.sample_filter) == ("grpo", "drop_uniform")
    batch, metrics = sampler.sample(global_steps=1, partition_id=PART, batch_size=4)
    assert set(batch.keys) == keys_of(uids, 1, range(4)) | keys_of(uids, 3, range(4))
    assert metrics["sample_filter/samples_dropped"] == 8.0
    # without a filter, verl's estimators lose nothing
    tq.kv_clear(keys=list(batch.keys), partition_id=PART)
    put_groups(EXAMPLE)
    batch, _ = make_sampler("rloo").sample(global_steps=1, partition_id=PART, batch_size=4)
    assert len(batch) == 16


@pytest.mark.parametrize("estimator", GROUPED_VERL_ESTIMATORS)
def test_every_grouped_verl_estimator_takes_a_filter(estimator):
    """Every verl estimator the sample filter accepts is one verl registers, the sampler drops the same (uniform)
    groups whatever the estimator, and the estimator, run as verl runs it on the kept rows only, gives finite
    advantages with signal in them."""
    import inspect

    import numpy as np
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn

    fn = get_adv_estimator_fn(estimator)  # raises for a name verl does not register
    uids = put_groups(EXAMPLE)
    sampler = make_sampler(estimator, sample_filter="drop_uniform")
    assert (sampler.settings.algorithm, sampler.settings.sample_filter) == ("grpo", "drop_uniform")
    batch, metrics = sampler.sample(global_steps=1, partition_id=PART, batch_size=4)
    assert set(batch.keys) == keys_of(uids, 1, range(4)) | keys_of(uids, 3, range(4))
    assert metrics["sample_filter/samples_dropped"] == 8.0
    tq.kv_clear(keys=list(batch.keys), partition_id=PART)

    kept_rewards = [float(x) for g in (EXAMPLE[1], EXAMPLE[3]) for x in g]
    width = 5
    mask = torch.ones(8, width)
    rewards = torch.zeros(8, width)
    rewards[:, -1] = torch.tensor(kept_rewards)
    index = np.array([uids[1]] * 4 + [uids[3]] * 4, dtype=object)
    inputs = {"token_level_rewards": rewards, "response_mask": mask, "index": index, "config": OmegaConf.create({}),
              "old_log_probs": -torch.rand(8, width), "sum_pi_squared": torch.rand(8, width)}  # optimal_token_baseline
    accepted = inspect.signature(fn).parameters
    advantages, _ = fn(**{k: v for k, v in inputs.items() if k in accepted})
    assert advantages.shape == (8, width) and torch.isfinite(advantages).all()
    assert advantages.abs().sum() > 0  # the kept (mixed) groups carry signal


def test_refill_is_guarded_by_the_tested_verl_range():
    check_verl_version("0.9.1")
    check_verl_version("0.9.3.dev0")
    for bad in ("0.8.9", "0.10.0"):
        with pytest.raises(RuntimeError, match=r"tested with verl >=0\.9\.1,<0\.10\.0.*filter_mode=drop"):
            check_verl_version(bad)


@pytest.mark.parametrize("estimator", ["grpo", "rloo"])
def test_stock_estimator_with_drop_uniform_changes_only_the_token_mean_denominator(estimator):
    """verl's own estimator + drop_uniform, beta = 0: the zero-variance groups already carry zero advantage, so the
    dropped batch's token-mean gradient is the full batch's rescaled by total / kept tokens (the fork's dilution)."""
    import numpy as np
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn

    uids = put_groups(EXAMPLE)
    batch, metrics = make_sampler(estimator, sample_filter="drop_uniform").sample(
        global_steps=1, partition_id=PART, batch_size=4
    )
    kept = set(batch.keys)
    all_keys = [f"{u}_{s}_0" for u in uids for s in range(4)]
    kept_idx = [i for i, k in enumerate(all_keys) if k in kept]
    lengths = [4 + s + g for g in range(4) for s in range(4)]
    width = max(lengths)
    mask = torch.tensor([[1.0] * n + [0.0] * (width - n) for n in lengths])
    rewards = torch.zeros(16, width)
    for i, (n, r) in enumerate(zip(lengths, [float(x) for g in EXAMPLE for x in g])):
        rewards[i, n - 1] = r
    group = np.array([k.split("_")[0] for k in all_keys], dtype=object)
    fn = get_adv_estimator_fn(estimator)
    full_adv, _ = fn(token_level_rewards=rewards, response_mask=mask, index=group, config=OmegaConf.create({}))
    drop_adv, _ = fn(token_level_rewards=rewards[kept_idx], response_mask=mask[kept_idx], index=group[kept_idx],
                     config=OmegaConf.create({}))
    dropped = [i for i in range(16) if i not in kept_idx]
    assert torch.all(full_adv[dropped] == 0)  # nothing the drop removes carried an advantage
    torch.testing.assert_close(drop_adv, full_adv[kept_idx])

    torch.manual_seed(0)
    old = -torch.rand(16, width)
    log_prob = (old + 0.3 * torch.randn(16, width)).requires_grad_(True)
    config = FSDPActorConfig(strategy="fsdp", ppo_mini_batch_size=4, ppo_micro_batch_size_per_gpu=4, rollout_n=4)
    loss_fn = get_policy_loss_fn("vanilla")

    def loss(rows, advantages):
        value, _ = loss_fn(old_log_prob=old[rows], log_prob=log_prob[rows], advantages=advantages,
                           response_mask=mask[rows].bool(), loss_agg_mode="token-mean", config=config)
        return value

    (g_full,) = torch.autograd.grad(loss(list(range(16)), full_adv), log_prob)
    (g_drop,) = torch.autograd.grad(loss(kept_idx, drop_adv), log_prob)
    ratio = mask.sum() / mask[kept_idx].sum()
    assert ratio > 1.0 and metrics["sample_filter/tokens_kept_frac"] == pytest.approx(1 / ratio.item())
    torch.testing.assert_close(g_drop, g_full * ratio, rtol=1e-5, atol=1e-7)


def test_refill_with_a_filter_on_verls_own_estimator():
    """+minimal_rl=sample_filter with filter_mode=refill: the uniform groups are evicted and refilled for grpo too."""
    initial = put_groups([[1, 1, 1, 1], [0, 1, 0, 0]])
    rollout = Rollout([[1, 0, 0, 0]])
    sampler = make_sampler("grpo", sample_filter="drop_uniform", filter_mode="refill", refill_fn=rollout, train_batch_size=2)
    batch, metrics = sampler.sample(global_steps=1, partition_id=PART, batch_size=2)
    selected = {k.split("_")[0] for k in batch.keys}
    # the all-correct group is evicted; 2 of the mixed ones (the initial and the refilled, equal in age) remain
    assert len(selected) == 2 and initial[0] not in selected and selected <= {initial[1], *rollout.uids}
    assert metrics["sample_filter/refill_prompts"] >= 1 and metrics["sample_filter/groups_all_correct"] > 0


def test_logs_exactly_the_metric_vocabulary():
    """Over a drop (with padding), an all-rejected step, a refill, a Reinforce-Ada step and a step without rewards, the
    sampler logs the verl names of `minimal_rl.metrics` and no other."""
    logged = set()

    def names(metrics):
        ours = {k.removeprefix(PREFIX) for k in metrics if k.startswith(PREFIX)}
        ours = {"active_prompts/round_{k}" if PER_ROUND.fullmatch(k) else k for k in ours}  # one name per round run
        assert ours <= HOST_NAMES["verl"] and not any(k.startswith("minimal_rl/") for k in metrics), metrics
        logged.update(ours)
        return ours

    put_groups(EXAMPLE)
    batch, metrics = make_sampler("reinforce_rej", ppo_mini_batch_size=3, rollout_n=4).sample(
        global_steps=1, partition_id=PART, batch_size=4
    )
    assert metrics[PREFIX + "padding_samples"] == 4.0 and "optimizer_steps_per_epoch" in names(metrics)
    tq.kv_clear(keys=list(batch.keys), partition_id=PART)

    put_groups([[0, 0, 0, 0]])
    batch, metrics = make_sampler("raft").sample(global_steps=1, partition_id=PART, batch_size=1)
    assert metrics[PREFIX + "all_rejected"] == 1.0 and "placeholder_samples" in names(metrics)
    tq.kv_clear(keys=list(batch.keys), partition_id=PART)

    put_groups([[1, 1, 1, 1], [0, 1, 0, 0]])
    sampler = make_sampler("reinforce_rej", filter_mode="refill", refill_fn=Rollout([[1, 0, 0, 0]]), train_batch_size=2)
    batch, metrics = sampler.sample(global_steps=1, partition_id=PART, batch_size=2)
    assert {"refill_calls", "refill_prompts", "refill_batches"} <= names(metrics)
    tq.kv_clear(keys=list(batch.keys), partition_id=PART)

    # Reinforce-Ada: the pools the rollout worker wrote with each kept row (verl_ext.adaptive_rollout); one uniform
    pools = [{"correct": [True, False, False, True], "values": [1.0, 0.0, 0.0, 1.0], "exit_round": 1, "kept": [0, 1, 2, 3], "rounds": 1},
             {"correct": [False] * 8, "values": [0.0] * 8, "exit_round": None, "kept": [0, 1, 2, 3], "rounds": 2}]
    put_groups([[1, -1, -1, 1], [-1, -1, -1, -1]], extra=[{POOL_FIELD: json.dumps(pool)} for pool in pools])
    batch, metrics = make_sampler("reinforce_ada_balance").sample(global_steps=1, partition_id=PART, batch_size=2)
    assert {"rounds", "active_prompts/round_{k}", "generated_per_kept"} <= names(metrics)
    assert metrics[PREFIX + "active_prompts/round_1"] == 2 and metrics[PREFIX + "active_prompts/round_2"] == 1
    assert metrics[PREFIX + "generated_per_kept"] == 12 / 4 and metrics[PREFIX + "uniform_pools_frac"] == 0.5
    assert metrics[PREFIX + "samples_in_update"] == 4 and metrics[PREFIX + "weight_mean"] == 0.0  # 1 - .5, 0 - .5
    tq.kv_clear(keys=list(batch.keys), partition_id=PART)

    uid = uuid.uuid4().hex  # no rm_scores yet
    fields = [{"responses": torch.arange(4), "response_mask": torch.ones(4, dtype=torch.int64)}]
    tags = [{"status": "success", "prompt_len": 3, "response_len": 4, "seq_len": 7, "global_steps": 1}]
    tq.kv_batch_put(keys=[f"{uid}_0_0"], partition_id=PART, fields=list_of_dict_to_tensordict(fields), tags=tags)
    tq.kv_batch_put(keys=[uid], partition_id=PART, tags=[{"is_prompt": True, "status": "finished", "global_steps": 1}])
    _, metrics = make_sampler("raft").sample(global_steps=1, partition_id=PART, batch_size=1)
    assert names(metrics) == {"unavailable"}

    assert logged == HOST_NAMES["verl"]
