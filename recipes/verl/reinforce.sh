#!/usr/bin/env bash
# Reinforce (paper Eq. 5): A = r in {-1, +1}, nothing dropped, PPO clipped surrogate.
# Table 1 mean average@16: Qwen2.5-Math-7B 53.9, LLaMA-3.2-3B-Instruct 24.2. docs/algorithms/reinforce_ablations.md
# Usage: [MODEL=llama-3.2-3b-instruct] [DRY_RUN=1] recipes/verl/reinforce.sh [extra Hydra overrides...]
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
run_recipe reinforce \
  "+minimal_rl=reinforce" \
  "$@"
