"""Test support of `make e2e` (tests/e2e): never part of the minimal-rl wheel.

- `cpu_platform`: the CPU scaffolding verl 0.9.1 needs to run ``main_ppo`` on a machine without an
  accelerator, imported in every verl process through ``VERL_USE_EXTERNAL_MODULES``;
- `harness`: builds the demo model and data once, runs the stock ``python -m verl.trainer.main_ppo`` as a
  subprocess and parses its per-step metrics.

Importing this package imports nothing heavy (verl's processes import it before anything else).
"""
