#!/usr/bin/env bash
# RAFT++ (paper Sec. 3.1): RAFT's samples with the PPO clipped surrogate (importance ratio + clip).
# Table 1 mean average@16: Qwen2.5-Math-7B 56.1, LLaMA-3.2-3B-Instruct 27.6. docs/algorithms/raft_pp.md
# Usage: [MODEL=llama-3.2-3b-instruct] [DRY_RUN=1] recipes/verl/raft_pp.sh [extra Hydra overrides...]
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
run_recipe raft_pp \
  "+minimal_rl=raft_pp" \
  "$@"
