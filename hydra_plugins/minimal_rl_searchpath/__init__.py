"""Hydra plugin of minimal-rl: puts the presets on the config search path (``+minimal_rl=<name>``)
and refuses to start a verl run that names our estimators when they are not registered."""
