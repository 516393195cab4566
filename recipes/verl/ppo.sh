#!/usr/bin/env bash
# PPO baseline: GAE with a critic initialised from the policy model, verl's own estimator.
# Table 1 mean average@16: Qwen2.5-Math-7B 52.5, LLaMA-3.2-3B-Instruct 26.9.
# One response per prompt and critic lr 1e-5, as the released PPO script; that script had no KL loss:
# add actor_rollout_ref.actor.use_kl_loss=false to match it.
# Usage: [MODEL=llama-3.2-3b-instruct] [DRY_RUN=1] recipes/verl/ppo.sh [extra Hydra overrides...]
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
run_recipe ppo \
  "algorithm.adv_estimator=gae" \
  "actor_rollout_ref.actor.policy_loss.loss_mode=vanilla" \
  "actor_rollout_ref.rollout.n=1" \
  "critic.model.path=${MODEL_PATH}" \
  "critic.model.use_remove_padding=true" \
  "critic.model.enable_gradient_checkpointing=true" \
  "critic.optim.lr=1e-5" \
  "$@"
