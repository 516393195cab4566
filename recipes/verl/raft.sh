#!/usr/bin/env bash
# RAFT (paper Sec. 3.1): SFT on the correct responses; loss -log pi, no ratio, no clipping.
# Table 1 mean average@16: Qwen2.5-Math-7B 52.3, LLaMA-3.2-3B-Instruct 25.9. docs/algorithms/raft.md
# Usage: [MODEL=llama-3.2-3b-instruct] [DRY_RUN=1] recipes/verl/raft.sh [extra Hydra overrides...]
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
run_recipe raft \
  "+minimal_rl=raft" \
  "$@"
