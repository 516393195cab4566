"""The embedded demo task: reproducible, disjoint splits, correct answers scored by the real verifier."""

import pytest

from minimal_rl_app.demo.task import TaskConfig, all_problems, completion_text, make_splits
from minimal_rl.reward import is_correct


def test_same_seed_same_splits_other_seed_other_splits():
    a, b = make_splits(TaskConfig(seed=7)), make_splits(TaskConfig(seed=7))
    assert a.train == b.train and a.heldout == b.heldout
    c = make_splits(TaskConfig(seed=8))
    assert c.heldout != a.heldout


def test_splits_are_disjoint_and_cover_every_problem():
    cfg = TaskConfig()
    s = make_splits(cfg)
    train, held = {p.problem for p in s.train}, {p.problem for p in s.heldout}
    assert not train & held
    assert len(held) == cfg.num_heldout == 512
    # 90*90 additions + 4095 subtractions with a >= b (90*91/2)
    assert len(train) + len(held) == len(all_problems(cfg)) == 8100 + 4095


def test_answers_are_correct_and_two_digit_operands():
    for p in make_splits(TaskConfig()).heldout:
        a, rest = p.problem.rstrip("=").replace("-", " - ").replace("+", " + ").split(" ", 1)
        op, b = rest.split(" ", 1)[0], rest.split(" ")[-1]
        assert 10 <= int(a) <= 99 and 10 <= int(b) <= 99
        assert int(p.answer) == (int(a) + int(b) if op == "+" else int(a) - int(b))
        assert int(p.answer) >= 0  # allow_negative=False by default


def test_supervised_target_is_scored_correct_by_the_real_verifier():
    p = make_splits(TaskConfig()).heldout[0]
    assert is_correct(completion_text(p.answer), p.answer)
    assert not is_correct(completion_text(str(int(p.answer) + 1)), p.answer)


def test_knobs():
    neg = all_problems(TaskConfig(min_operand=1, max_operand=3, operations=("-",), allow_negative=True))
    assert {"1-3=": "-2"}.items() <= {p.problem: p.answer for p in neg}.items()
    assert len(all_problems(TaskConfig(min_operand=1, max_operand=9, operations=("+",)))) == 81
    with pytest.raises(ValueError, match="operations"):
        TaskConfig(operations=("*",))
    with pytest.raises(ValueError, match="no training problems"):
        make_splits(TaskConfig(min_operand=1, max_operand=2, num_heldout=100))
