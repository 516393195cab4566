#!/usr/bin/env bash
# Ablation "RAFT++ without clipping": importance ratio, no clip (paper Sec. 3.2: worse than RAFT).
# Preset raft_pp_no_clip = raft_pp with the upper clip out of reach (1 + 1e9); RAFT's weights are
# never negative, so the lower and the dual clip never bind anyway. docs/algorithms/raft_pp.md
# Usage: [MODEL=llama-3.2-3b-instruct] [DRY_RUN=1] recipes/verl/raft_pp_no_clip.sh [extra Hydra overrides...]
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
run_recipe raft_pp_no_clip \
  "+minimal_rl=raft_pp_no_clip" \
  "$@"
