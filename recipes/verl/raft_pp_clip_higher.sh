#!/usr/bin/env bash
# RAFT++ with clip-higher (eps_high = 0.28): the paper's tested variant against entropy collapse.
# Not in Table 1 (paper Sec. 3.2 curves). docs/algorithms/raft_pp.md
# Usage: [MODEL=llama-3.2-3b-instruct] [DRY_RUN=1] recipes/verl/raft_pp_clip_higher.sh [extra Hydra overrides...]
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
run_recipe raft_pp_clip_higher \
  "+minimal_rl=raft_pp_clip_higher" \
  "$@"
