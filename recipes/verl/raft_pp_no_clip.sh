#!/usr/bin/env bash
# Ablation "RAFT++ without clipping": importance ratio, no clip (paper Sec. 3.2: worse than RAFT).
# The ratio is left unclipped by a clip range wider than any ratio (1 - 1.0 = 0 below, 1 + 1e9 above);
# RAFT's weights are all positive, so the dual clip for negative advantages never applies. docs/algorithms/raft_pp.md
# Usage: [MODEL=llama-3.2-3b-instruct] [DRY_RUN=1] recipes/verl/raft_pp_no_clip.sh [extra Hydra overrides...]
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
run_recipe raft_pp_no_clip \
  "+minimal_rl=raft_pp" \
  "actor_rollout_ref.actor.clip_ratio_low=1.0" \
  "actor_rollout_ref.actor.clip_ratio_high=1e9" \
  "$@"
