"""Subcommands of the ``minimal-rl`` console command (registered in `minimal_rl_app.cli.SUBCOMMANDS`)."""
