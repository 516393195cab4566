#!/usr/bin/env bash
# Ablation: Reinforce with a group-mean baseline, A = r - mean_group(r) (paper Sec. 4).
# docs/algorithms/reinforce_ablations.md
# Usage: [MODEL=llama-3.2-3b-instruct] [DRY_RUN=1] recipes/verl/reinforce_mean_zero.sh [extra Hydra overrides...]
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
run_recipe reinforce_mean_zero \
  "+minimal_rl=reinforce_mean_zero" \
  "$@"
