"""verl plugin of minimal-rl (registrations arrive with the verl work)."""
