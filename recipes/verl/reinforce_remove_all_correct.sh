#!/usr/bin/env bash
# Ablation: Reinforce with the all-correct prompts removed (paper Sec. 4).
# docs/algorithms/reinforce_ablations.md
# Usage: [MODEL=llama-3.2-3b-instruct] [DRY_RUN=1] recipes/verl/reinforce_remove_all_correct.sh [extra Hydra overrides...]
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
run_recipe reinforce_remove_all_correct \
  "+minimal_rl=reinforce_remove_all_correct" \
  "$@"
