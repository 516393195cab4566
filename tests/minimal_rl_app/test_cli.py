"""The console command's basics (subcommands have their own tests)."""

import subprocess
import sys

from minimal_rl import __version__
from minimal_rl_app.cli import main


def test_version_from_the_installed_console_script():
    out = subprocess.run(
        [sys.executable, "-m", "minimal_rl_app.cli", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"minimal-rl {__version__}"


def test_core_import_does_not_pull_frameworks():
    """The core imports torch/numpy only; building the CLI parser imports every subcommand module,
    which must keep framework imports inside `run` (so `minimal-rl --version` stays instant)."""
    code = "import sys, minimal_rl, minimal_rl.algorithms, minimal_rl.reward, minimal_rl_app.cli; " \
        "minimal_rl_app.cli.build_parser().parse_args(['compare', '--algorithms', 'raft', 'grpo+drop_uniform']); " \
        "bad = [m for m in ('verl', 'trl', 'transformers', 'math_verify', 'matplotlib', 'datasets') " \
        "if m in sys.modules]; print(bad)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "minimal-rl" in capsys.readouterr().out
