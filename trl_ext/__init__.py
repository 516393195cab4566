"""TRL plugin of minimal-rl (trainers arrive with the TRL work)."""
