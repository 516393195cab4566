#!/usr/bin/env bash
# Ablation: Reinforce-Rej + std normalisation, A = r / std_group(r) (paper Sec. 4).
# docs/algorithms/reinforce_ablations.md
# Usage: [MODEL=llama-3.2-3b-instruct] [DRY_RUN=1] recipes/verl/reinforce_rej_std.sh [extra Hydra overrides...]
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
run_recipe reinforce_rej_std \
  "+minimal_rl=reinforce_rej_std" \
  "$@"
