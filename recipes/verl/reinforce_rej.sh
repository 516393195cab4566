#!/usr/bin/env bash
# Reinforce-Rej (paper Sec. 4): A = r in {-1, +1}; all-correct and all-wrong prompts filtered out.
# Table 1 mean average@16: Qwen2.5-Math-7B 56.4, LLaMA-3.2-3B-Instruct 28.5. docs/algorithms/reinforce_rej.md
# Usage: [MODEL=llama-3.2-3b-instruct] [DRY_RUN=1] recipes/verl/reinforce_rej.sh [extra Hydra overrides...]
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
run_recipe reinforce_rej \
  "+minimal_rl=reinforce_rej" \
  "$@"
