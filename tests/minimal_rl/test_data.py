"""The core's data formats: gold-answer normalisation and the paper's answer checks."""

from minimal_rl import data as formats


def test_gsm8k_final_answer_of_hub_style_solutions():
    assert formats.gsm8k_final_answer("She makes 9 * 2 = $<<9*2=18>>18.\n#### 18") == "18"
    assert formats.gsm8k_final_answer("... #### 1,234") == "1234"  # "1,234" would read as a tuple
    assert formats.gsm8k_final_answer("#### -3.5") == "-3.5"
    assert formats.gsm8k_final_answer("42") == "42"  # already final (the shared file's `answer`)
    assert formats.gsm8k_final_answer("a #### 1 #### 7") == "7"  # the last marker wins


def test_parse_and_verify_checks():
    assert formats.is_parseable("\\frac{14}{3}") and formats.is_verifiable("\\frac{14}{3}")
    assert formats.is_parseable("\\text{Evelyn}") and formats.is_verifiable("\\text{Evelyn}")
    for garbage in ("?", "...", "np.arcsin(10/13)"):
        assert not formats.is_parseable(garbage)
    assert not formats.is_verifiable("\\ldots")  # the reward cannot even match it against itself


def test_normalize_answer_handles_olympiadbench_lists_and_dollars():
    assert formats.normalize_answer(["$2$"]) == "2"
    assert formats.normalize_answer(["$1$", "$-3$"]) == "1, -3"
    assert formats.normalize_answer("  $$x^2$$ ") == "x^2"
    assert formats.normalize_answer("$a$ and $b$") == "$a$ and $b$"  # two formulas: left alone
    assert formats.normalize_answer("$5") == "$5" and formats.normalize_answer("$") == "$"
    assert formats.normalize_answer([]) is None and formats.normalize_answer("  ") is None
