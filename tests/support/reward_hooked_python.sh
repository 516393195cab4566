#!/bin/sh
# MINIMAL_RL_REWARD_PYTHON for the reward tests (reward_hooks.hooked_python): the real interpreter, with
# reward_hooks installed, then the helper's own boot code (called as: this -c BOOT ARGS).
exec "${MRL_TEST_REAL_PYTHON:-python3}" -c '
import sys
sys.path.insert(0, sys.argv.pop(1))
import reward_hooks
reward_hooks.install()
sys.argv.pop(1)
code = sys.argv.pop(1)
exec(compile(code, "<minimal_rl helper boot>", "exec"))
' "$(dirname "$0")" "$@"
