#!/usr/bin/env bash
# GRPO baseline (paper Eq. 6): A = (r - mean_group) / (std_group + eps), verl's own estimator.
# Table 1 mean average@16: Qwen2.5-Math-7B 56.3, LLaMA-3.2-3B-Instruct 28.4.
# Usage: [MODEL=llama-3.2-3b-instruct] [DRY_RUN=1] recipes/verl/grpo.sh [extra Hydra overrides...]
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
run_recipe grpo \
  "algorithm.adv_estimator=grpo" \
  "algorithm.norm_adv_by_std_in_grpo=true" \
  "actor_rollout_ref.actor.policy_loss.loss_mode=vanilla" \
  "$@"
