"""The ``raft`` policy loss through verl's worker-side loss path (``verl.workers.utils.losses.ppo_loss``,
used by the v1 engine workers), against verl's ``vanilla`` loss and a hand computation."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pytest
import torch

import verl  # noqa: F401  (loads the minimal-rl plugin through the entry point)
from hydra import compose, initialize_config_dir
from tensordict import TensorDict
from verl.utils import tensordict_utils as tu
from verl.utils.config import omega_conf_to_dataclass
from verl.workers.utils.losses import ppo_loss

VERL_CONFIG_DIR = str(Path(verl.__file__).parent / "trainer" / "config")
PROMPT_LEN = 2
RESPONSE_LENS = [4, 2, 3]
MAX_RESPONSE = max(RESPONSE_LENS)


@lru_cache(maxsize=None)
def actor_config(loss_mode: str, loss_agg_mode: str = "token-mean"):
    """verl's real ActorConfig, composed from verl's own ppo_trainer.yaml."""
    with initialize_config_dir(config_dir=VERL_CONFIG_DIR, version_base=None):
        cfg = compose(
            "ppo_trainer",
            overrides=[
                f"actor_rollout_ref.actor.policy_loss.loss_mode={loss_mode}",
                f"actor_rollout_ref.actor.loss_agg_mode={loss_agg_mode}",
                "actor_rollout_ref.actor.use_kl_loss=false",
                "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=1",
            ],
        )
    return omega_conf_to_dataclass(cfg.actor_rollout_ref.actor)


def flat_positions():
    """Index into the unpadded (total_nnz,) model output of response token t of sequence i: verl's
    log-prob of token t sits one position to its left."""
    positions, offset = [], 0
    for L in RESPONSE_LENS:
        seq = PROMPT_LEN + L
        positions.append([offset + PROMPT_LEN - 1 + t for t in range(L)])
        offset += seq
    return positions, offset


def make_batch(advantage_rows, old_shift: float = 0.0):
    """A TensorDict like the engine hands to ppo_loss, and the flat log-prob parameter."""
    B = len(RESPONSE_LENS)
    positions, total = flat_positions()
    theta = torch.randn(total, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    theta.requires_grad_(True)
    log_probs_flat = -torch.nn.functional.softplus(theta)  # valid log-probs (< 0)
    attention_mask = torch.zeros(B, PROMPT_LEN + MAX_RESPONSE, dtype=torch.long)
    response_mask = torch.zeros(B, MAX_RESPONSE)
    old = torch.zeros(B, MAX_RESPONSE, dtype=torch.float64)
    for i, L in enumerate(RESPONSE_LENS):
        attention_mask[i, : PROMPT_LEN + L] = 1
        response_mask[i, :L] = 1
        old[i, :L] = log_probs_flat.detach()[positions[i]] + old_shift
    advantages = torch.tensor(advantage_rows, dtype=torch.float64)[:, None] * response_mask.double()
    data = TensorDict(
        {
            "prompts": torch.ones(B, PROMPT_LEN, dtype=torch.long),
            "responses": torch.ones(B, MAX_RESPONSE, dtype=torch.long),
            "attention_mask": attention_mask,
            "response_mask": response_mask,
            "old_log_probs": old,
            "advantages": advantages,
        },
        batch_size=[B],
    )
    tu.assign_non_tensor(data, dp_size=1, batch_num_tokens=int(response_mask.sum()), global_batch_size=B)
    return data, theta, log_probs_flat, positions, response_mask


def run_loss(loss_mode, advantage_rows, loss_agg_mode="token-mean", old_shift=0.0):
    data, theta, log_probs_flat, positions, mask = make_batch(advantage_rows, old_shift)
    loss, metrics = ppo_loss(actor_config(loss_mode, loss_agg_mode), {"log_probs": log_probs_flat}, data)
    (grad,) = torch.autograd.grad(loss, theta)
    return loss.detach(), grad, metrics, (theta, positions, mask)


@pytest.mark.parametrize("loss_agg_mode", ["token-mean", "seq-mean-token-mean"])
def test_raft_gradient_equals_vanilla_at_ratio_one(loss_agg_mode):
    advantages = [1.0, 0.5, 2.0]  # all positive: the clip never binds at ratio 1
    raft_loss, raft_grad, raft_metrics, _ = run_loss("raft", advantages, loss_agg_mode)
    van_loss, van_grad, van_metrics, _ = run_loss("vanilla", advantages, loss_agg_mode)
    assert raft_grad.abs().sum() > 0
    torch.testing.assert_close(raft_grad, van_grad)
    # metric keys identical, so verl's metric aggregation never sees a key appear or disappear
    assert set(raft_metrics) == set(van_metrics)
    assert raft_metrics["actor/pg_clipfrac"].values == [0.0]
    assert raft_metrics["actor/pg_clipfrac_lower"].values == [0.0]


def test_raft_loss_is_minus_mean_log_prob_by_hand():
    loss, grad, _, (theta, positions, mask) = run_loss("raft", [1.0, 1.0, 1.0])
    # by hand: token-mean over the 9 response tokens of -log pi = softplus(theta) at those positions
    flat = [p for row in positions for p in row]
    n_tokens = len(flat)
    with torch.no_grad():
        hand_loss = torch.nn.functional.softplus(theta[flat]).sum() / n_tokens
        hand_grad = torch.zeros_like(theta)
        hand_grad[flat] = torch.sigmoid(theta[flat]) / n_tokens  # d softplus / d theta = sigmoid
    torch.testing.assert_close(loss, hand_loss)
    torch.testing.assert_close(grad, hand_grad)


def test_raft_has_no_ratio_and_no_clip():
    """Off-policy (pi_old != pi_theta): RAFT's gradient ignores pi_old; vanilla's does not, and
    RAFT still reports ppo_kl (the mean of log pi_old - log pi_theta)."""
    on_loss, on_grad, _, _ = run_loss("raft", [1.0, -1.0, 2.0])
    off_loss, off_grad, off_metrics, _ = run_loss("raft", [1.0, -1.0, 2.0], old_shift=0.7)
    torch.testing.assert_close(on_grad, off_grad)
    torch.testing.assert_close(on_loss, off_loss)
    assert off_metrics["actor/ppo_kl"].values[0] == pytest.approx(0.7)
    _, van_off_grad, _, _ = run_loss("vanilla", [1.0, -1.0, 2.0], old_shift=0.7)
    assert not torch.allclose(van_off_grad, off_grad)
