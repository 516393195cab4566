"""Presets that need verl >= 0.9 (the v1 trainer): on the config search path only there (hydra_plugins)."""
