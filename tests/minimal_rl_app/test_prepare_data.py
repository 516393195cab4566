"""`minimal-rl prepare-data` on the real benchmark files: counts, exact prompts, answers, formats."""

from __future__ import annotations

import json
import math
import runpy
import sys
from pathlib import Path

import pytest

from minimal_rl import data as formats
from minimal_rl_app import prepare as prep
from minimal_rl_app.cli import main as cli_main
from minimal_rl.reward import compute_score, math_verify_reward

# Written out literally (not imported from minimal_rl.prompts) so a change of the template fails here.
SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
SUFFIX = "Let's think step by step and output the final answer within \\boxed{}."

EVAL_SETS = {"math500": 500, "minerva_math": 272, "olympiadbench": 674, "gsm8k": 1319}
RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_parquet(path: str) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


@pytest.fixture(scope="module")
def char_tokenizer_path(tmp_path_factory) -> str:
    """A character-level tokenizer (one token per character) with a chat template, built offline."""
    import mrl_testing

    path = tmp_path_factory.mktemp("char_tokenizer")
    mrl_testing.build_tokenizer(save_dir=path, chat_template=True)
    return str(path)


@pytest.fixture(scope="module")
def char_tokenizer(char_tokenizer_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(char_tokenizer_path)


@pytest.fixture(scope="module")
def prepared(shared_data, tmp_path_factory) -> dict[str, prep.PrepareSummary]:
    """Every evaluation set prepared once with the defaults (both formats)."""
    out = tmp_path_factory.mktemp("prepared")
    return {
        name: prep.prepare_dataset(name, str(out), input_path=str(shared_data / f"{name}.jsonl"))
        for name in EVAL_SETS
    }


@pytest.mark.parametrize("name", list(EVAL_SETS))
def test_eval_sets_keep_every_problem_and_report_counts(prepared, name):
    summary = prepared[name]
    expected = EVAL_SETS[name]
    assert (summary.rows_read, summary.rows_written) == (expected, expected)
    assert summary.dropped_too_long == summary.dropped_unverifiable == summary.dropped_unparseable == 0
    assert summary.answer_check == "self" and summary.max_problem_tokens == 0
    on_disk = json.loads(Path(summary.outputs["summary"]).read_text())
    assert on_disk["rows_written"] == expected and on_disk["dataset"] == name
    assert len(read_parquet(summary.outputs["verl"])) == expected


@pytest.mark.parametrize("name", list(EVAL_SETS))
def test_verl_rows_have_the_exact_prompt_and_fields(prepared, shared_data, name):
    source = read_jsonl(shared_data / f"{name}.jsonl")
    rows = read_parquet(prepared[name].outputs["verl"])
    for i in (0, len(rows) // 2, len(rows) - 1):
        row, src = rows[i], source[i]
        assert row["prompt"] == [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": src["problem"].strip() + " " + SUFFIX},
        ]
        assert row["data_source"] == name and row["ability"] == "math"
        assert row["reward_model"]["style"] == "rule"
        assert row["extra_info"]["index"] == i and row["extra_info"]["split"] == "test"
        assert row["extra_info"]["problem"] == src["problem"].strip()
    # The first MATH-500 problem, spelled out in full.
    if name == "math500":
        assert rows[0]["prompt"][1]["content"] == (
            "Convert the point $(0,3)$ in rectangular coordinates to polar coordinates.  Enter your answer in "
            "the form $(r,\\theta),$ where $r > 0$ and $0 \\le \\theta < 2 \\pi.$ Let's think step by step "
            "and output the final answer within \\boxed{}."
        )
        assert rows[0]["reward_model"]["ground_truth"] == "\\left( 3, \\frac{\\pi}{2} \\right)"


@pytest.mark.parametrize("name", list(EVAL_SETS))
def test_every_gold_answer_round_trips_through_the_reward(prepared, name):
    rows = read_parquet(prepared[name].outputs["verl"])
    answers = [r["reward_model"]["ground_truth"] for r in rows]
    for row, answer in zip(rows, answers):
        scored = compute_score(row["data_source"], "The answer is \\boxed{" + answer + "}.", answer)
        assert scored == {"score": 1.0, "acc": 1.0}, answer
    # Not vacuous: a different problem's answer scores -1 (first pair of distinct integer answers).
    for a, b in zip(answers, answers[1:]):
        if a != b and a.isdigit() and b.isdigit():
            assert compute_score(name, "\\boxed{" + a + "}", b) == {"score": -1.0, "acc": 0.0}
            break
    else:
        pytest.fail("no pair of distinct integer answers to test a wrong score with")


@pytest.mark.parametrize("name", ["math500", "gsm8k"])
def test_trl_dataset_is_conversational_and_scores_with_math_verify_reward(prepared, name):
    import datasets

    ds = datasets.load_from_disk(prepared[name].outputs["hf"])
    assert ds.column_names == ["prompt", "answer"] and len(ds) == EVAL_SETS[name]
    row = ds[3]
    assert row["prompt"][0] == {"role": "system", "content": SYSTEM}
    assert row["prompt"][1]["role"] == "user" and row["prompt"][1]["content"].endswith(" " + SUFFIX)
    completions = [[{"role": "assistant", "content": "\\boxed{" + row["answer"] + "}"}], [{"role": "assistant", "content": "\\boxed{-12345}"}]]
    assert math_verify_reward(completions, answer=[row["answer"]] * 2) == [1.0, -1.0]


def test_trl_recognises_the_dataset_as_conversational(prepared):
    from trl.data_utils import is_conversational

    import datasets

    ds = datasets.load_from_disk(prepared["minerva_math"].outputs["hf"])
    assert is_conversational(ds[0])


def test_verl_rlhf_dataset_reads_the_parquet(prepared, tmp_path, char_tokenizer):
    """verl's own dataset class loads our file and hands the exact messages and ground truth on."""
    from omegaconf import OmegaConf
    from verl.utils.dataset.rl_dataset import RLHFDataset

    config = OmegaConf.create(
        {"max_prompt_length": 100000, "filter_overlong_prompts": True, "filter_overlong_prompts_workers": 1,
         "cache_dir": str(tmp_path / "cache")}
    )
    dataset = RLHFDataset(prepared["minerva_math"].outputs["verl"], char_tokenizer, config)
    assert len(dataset) == 272
    item = dataset[5]
    assert item["raw_prompt"][0]["content"] == SYSTEM
    assert item["raw_prompt"][1]["content"].endswith(" " + SUFFIX)
    assert item["reward_model"]["ground_truth"] == item["extra_info"]["answer"]
    assert item["index"] == 5 and item["data_source"] == "minerva_math"


# --------------------------------------------------------------------------------------------
# GSM8K answers
# --------------------------------------------------------------------------------------------




def test_gsm8k_shared_answers_equal_the_final_line_of_their_solutions(shared_data, prepared):
    """The shared file's answers are what our hub-format parser gets from the worked solutions."""
    source = read_jsonl(shared_data / "gsm8k.jsonl")
    assert [formats.gsm8k_final_answer(r["solution"]) for r in source] == [r["answer"] for r in source]
    assert any("," in r["solution"].rsplit("####", 1)[1] for r in source)  # the comma case occurs for real
    rows = read_parquet(prepared["gsm8k"].outputs["verl"])
    assert [r["reward_model"]["ground_truth"] for r in rows] == [r["answer"] for r in source]


def test_gsm8k_hub_records_are_read_from_question_and_worked_answer(tmp_path):
    records = [
        {"question": "What is 1000 + 234?", "answer": "1000 + 234 = <<1000+234=1234>>1234\n#### 1,234"},
        {"question": "What is 2 + 2?", "answer": "2 + 2 = 4\n#### 4"},
    ]
    path = tmp_path / "gsm8k_hub.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records))
    summary = prep.prepare_dataset("gsm8k", str(tmp_path / "out"), input_path=str(path), formats=("verl",))
    rows = read_parquet(summary.outputs["verl"])
    assert [r["reward_model"]["ground_truth"] for r in rows] == ["1234", "4"]
    assert rows[0]["prompt"][1]["content"] == "What is 1000 + 234? " + SUFFIX


# --------------------------------------------------------------------------------------------
# The paper's training filters (Numina-Math format: the answer is the solution's last \boxed{})
# --------------------------------------------------------------------------------------------


def numina_records() -> list[dict]:
    long_problem = "Compute " + "1 + " * 600 + "1."  # 2410 characters: 804 estimated tokens
    return [
        {"source": "amc", "problem": "Find $x$ if $2x = 1$.", "solution": "So $x = \\boxed{\\frac{1}{2}}$."},
        {"source": "cn_k12", "problem": "Which is right?", "solution": "First \\boxed{A}, finally \\boxed{C}"},
        {"source": "olympiads", "problem": "Prove that 2 is prime.", "solution": "Only 1 and 2 divide 2."},
        {"source": "olympiads", "problem": long_problem, "solution": "\\boxed{601}"},
        {"source": "synthetic", "problem": "What is it?", "solution": "It is \\boxed{?}"},
        {"source": "synthetic", "problem": "", "solution": "\\boxed{3}"},
        {"source": "synthetic", "problem": "Empty box.", "solution": "\\boxed{}"},
        {"source": "aops", "problem": "Nested.", "solution": "\\boxed{\\sqrt{\\frac{3}{4}}}"},
    ]


def test_numina_filters_count_every_drop(tmp_path):
    path = tmp_path / "numina.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in numina_records()))
    summary = prep.prepare_dataset("numina_math", str(tmp_path / "out"), input_path=str(path))
    assert summary.split == "train" and summary.max_problem_tokens == 700 and summary.answer_check == "parse"
    assert summary.rows_read == 8
    assert summary.dropped_no_problem == 1  # the empty problem
    assert summary.dropped_no_answer == 2  # the proof without a box, the empty box
    assert summary.dropped_too_long == 1
    assert summary.dropped_unparseable == 1  # "?"
    assert summary.rows_written == 3
    rows = read_parquet(summary.outputs["verl"])
    assert [r["reward_model"]["ground_truth"] for r in rows] == ["\\frac{1}{2}", "C", "\\sqrt{\\frac{3}{4}}"]
    assert [r["extra_info"]["index"] for r in rows] == [0, 1, 2]
    assert all(r["extra_info"]["split"] == "train" for r in rows)
    assert json.loads(Path(summary.outputs["summary"]).read_text())["dropped_too_long"] == 1
    for r in rows:
        gt = r["reward_model"]["ground_truth"]
        assert compute_score("numina_math", "\\boxed{" + gt + "}", gt)["score"] == 1.0


def test_answer_check_parse_drops_unparseable_benchmark_answers(shared_data, tmp_path):
    summary = prep.prepare_dataset(
        "minerva_math", str(tmp_path), input_path=str(shared_data / "minerva_math.jsonl"), answer_check="parse",
        formats=("verl",),
    )
    assert summary.dropped_unparseable == 5 and summary.rows_written == 267
    kept = {r["reward_model"]["ground_truth"] for r in read_parquet(summary.outputs["verl"])}
    assert "np.arcsin(10/13)" not in kept






def test_length_filter_with_a_real_tokenizer(shared_data, tmp_path, char_tokenizer_path):
    """With a character-level tokenizer, tokens == characters, so the expected count is exact."""
    source = read_jsonl(shared_data / "minerva_math.jsonl")
    expected_drop = sum(len(r["problem"].strip()) > 700 for r in source)
    assert expected_drop == 49
    summary = prep.prepare_dataset(
        "minerva_math", str(tmp_path), input_path=str(shared_data / "minerva_math.jsonl"),
        tokenizer=char_tokenizer_path, max_problem_tokens=700, formats=("verl",),
    )
    assert summary.dropped_too_long == expected_drop and summary.rows_written == 272 - expected_drop
    assert summary.token_counter == f"tokenizer: {char_tokenizer_path}"


def test_length_filter_estimate_without_a_tokenizer(shared_data, tmp_path):
    source = read_jsonl(shared_data / "olympiadbench.jsonl")
    expected_drop = sum(math.ceil(len(r["problem"].strip()) / 3) > 700 for r in source)
    assert expected_drop == 3
    summary = prep.prepare_dataset(
        "olympiadbench", str(tmp_path), input_path=str(shared_data / "olympiadbench.jsonl"),
        max_problem_tokens=700, formats=("verl",),
    )
    assert summary.dropped_too_long == 3 and summary.token_counter.startswith("approx")


# --------------------------------------------------------------------------------------------
# Command line and bad input
# --------------------------------------------------------------------------------------------


def test_cli_and_recipe_entry_point(shared_data, tmp_path, capsys, monkeypatch):
    assert cli_main(["prepare-data", "math500", "--input", str(shared_data / "math500.jsonl"),
                     "--output-dir", str(tmp_path / "a"), "--format", "verl", "--limit", "20"]) == 0
    out = capsys.readouterr().out
    assert "math500" in out and "wrote 20" in out
    assert len(read_parquet(str(tmp_path / "a" / "math500" / "test.parquet"))) == 20
    assert not (tmp_path / "a" / "math500" / "hf_test").exists()

    monkeypatch.setattr(sys, "argv", ["prepare_data.py", "gsm8k", "--input", str(shared_data / "gsm8k.jsonl"),
                                      "--output-dir", str(tmp_path / "b"), "--format", "hf", "--limit", "7"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(RECIPES / "prepare_data.py"), run_name="__main__")
    assert exit_info.value.code == 0
    assert (tmp_path / "b" / "gsm8k" / "hf_test").is_dir()


def test_bad_input_gives_clear_errors(tmp_path):
    assert cli_main(["prepare-data", "math500", "gsm8k", "--input", "x.jsonl"]) == 2
    with pytest.raises(ValueError, match="unsupported file type"):
        prep.prepare_dataset("math500", str(tmp_path), input_path=str(tmp_path / "data.csv"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "1+1", "answer": "2"}\nnot json\n')
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        prep.prepare_dataset("math500", str(tmp_path), input_path=str(bad))
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"problem": "no answer here"}\n')
    with pytest.raises(ValueError, match="nothing to write"):
        prep.prepare_dataset("math500", str(tmp_path), input_path=str(empty))
    with pytest.raises(ValueError, match="unknown dataset"):
        prep.prepare_dataset("math5000", str(tmp_path), input_path=str(empty))


def test_answer_check_in_worker_processes_matches_the_serial_check(shared_data):
    """--num-proc > 1 (what a Numina-sized run uses) gives the serial verdicts, in order."""
    answers = [r["answer"] for r in read_jsonl(shared_data / "math500.jsonl")][:160]
    answers[7], answers[150] = "?", "np.arcsin(10/13)"  # two unparseable ones, in different chunks
    serial = prep.check_answers(answers, "parse", num_proc=1)
    assert [i for i, v in enumerate(serial) if v != 0] == [7, 150]
    assert prep.check_answers(answers, "parse", num_proc=2, chunk=32) == serial
