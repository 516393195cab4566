"""Reinforce-Ada's rows in the CLI: trl_ext cannot sample adaptively yet, so choosing them is one clear usage error
(exit 2), before anything is written."""

import pytest

from minimal_rl.table import ALGORITHMS
from minimal_rl_app.cli import main

ADAPTIVE = [name for name, spec in ALGORITHMS.items() if spec.adaptive]


@pytest.mark.parametrize("name", ADAPTIVE)
@pytest.mark.parametrize("command", [["train", "--algorithm"], ["compare", "--algorithms", "grpo"]])
def test_adaptive_algorithms_are_a_usage_error_naming_what_is_missing(tmp_path, capsys, name, command):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main([*command, name, "--output-dir", str(out)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "needs adaptive multi-round sampling" in err and "trl_ext has no adaptive sampling" in err
    assert "Traceback" not in err and not out.exists()


def test_train_settings_refuse_them_too():
    from minimal_rl_app.main_job import TRAINABLE, TrainSettings

    assert not set(ADAPTIVE) & set(TRAINABLE)
    for name in ADAPTIVE:
        with pytest.raises(ValueError, match="needs adaptive multi-round sampling"):
            TrainSettings(algorithm=name)
