"""Data formats of minimal-rl: gold-answer normalisation, the paper's datasets, and the verl / TRL row formats.

* verl's RL parquet row (what ``verl.utils.dataset.RLHFDataset`` reads, as in verl's ``examples/data_preprocess``):
  ``data_source``, ``prompt`` (chat messages: the paper's system prompt and the problem followed by its
  instruction suffix, see `minimal_rl.prompts`), ``ability``, ``reward_model = {style: "rule", ground_truth}`` and
  ``extra_info = {split, index, problem, answer}`` (`verl_row`);
* TRL's row: a conversational ``prompt`` and the gold ``answer``, what GRPOTrainer and
  `minimal_rl.reward.math_verify_reward` expect (`trl_row`).

The paper's filtering (Sec. 5.1) is defined here as rules (`PAPER_MAX_PROBLEM_TOKENS`, `is_parseable`,
`is_verifiable`); the ``minimal-rl prepare-data`` command (`minimal_rl_app.prepare`) applies them to
files and hub datasets.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from minimal_rl.prompts import build_messages
from minimal_rl.reward import is_correct, last_boxed

logger = logging.getLogger(__name__)

# The paper drops training problems over 700 tokens.
PAPER_MAX_PROBLEM_TOKENS = 700
ABILITY = "math"


# --------------------------------------------------------------------------------------------
# Answers
# --------------------------------------------------------------------------------------------

_THOUSANDS = re.compile(r"^[-+]?\d{1,3}(,\d{3})+(\.\d+)?$")


def normalize_answer(value: Any) -> str | None:
    """A gold answer as one clean string, or None when there is none.

    Lists (OlympiadBench's ``final_answer``) with one element give that element; several elements are
    joined with ", " (a tuple answer). Surrounding ``$...$`` math delimiters are removed.
    """
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        parts = [p for p in (normalize_answer(v) for v in value) if p]
        return ", ".join(parts) if parts else None
    text = str(value).strip()
    for delimiter in ("$$", "$"):
        inner = text[len(delimiter) : -len(delimiter)]
        # "$x$" and "$$x$$" lose their delimiters; "$a$ and $b$" is not one formula and stays as is.
        if len(text) > 2 * len(delimiter) and text.startswith(delimiter) and text.endswith(delimiter) and "$" not in inner:
            text = inner.strip()
            break
    return text or None


def gsm8k_final_answer(answer: str) -> str | None:
    """GSM8K's final answer: the text after the last ``####`` of a worked solution (the hub's
    ``answer`` column), or the answer as is when it is already final (no ``####``); thousands
    separators are removed ("1,000" would otherwise read as a tuple)."""
    text = str(answer)
    if "####" in text:
        text = text.rsplit("####", 1)[1]
    text = text.strip().rstrip(".")
    if _THOUSANDS.match(text):
        text = text.replace(",", "")
    return text or None


def boxed_answer_of_solution(solution: Any) -> str | None:
    """The last ``\\boxed{...}`` of a worked solution (Numina-Math has no separate answer column)."""
    if not isinstance(solution, str):
        return None
    return normalize_answer(last_boxed(solution))


ANSWER_CHECKS = ("parse", "self", "none")


def is_verifiable(answer: str) -> bool:
    """True iff the reward scores the gold answer, boxed, as correct against itself.

    A problem failing this could only ever give all-wrong groups. Note that Math-Verify falls back to
    comparing raw strings, so most text passes; `is_parseable` is the stricter test.
    """
    return is_correct("\\boxed{" + answer + "}", answer)


def is_parseable(answer: str) -> bool:
    """True iff Math-Verify parses the boxed gold answer into a mathematical expression, without its
    fallback to the raw string (so "See explanation", "?" or "np.arcsin(10/13)" are unparseable)."""
    import threading

    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    # Math-Verify's timeout uses signal.alarm, which only works on the main thread.
    timeout = 5 if threading.current_thread() is threading.main_thread() else None
    try:
        parsed = parse(
            "\\boxed{" + answer + "}",
            extraction_config=[LatexExtractionConfig(), ExprExtractionConfig()],
            fallback_mode="no_fallback",
            parsing_timeout=timeout,
        )
    except Exception as exc:  # parser errors and timeouts: unparseable
        logger.debug("Math-Verify could not parse %r: %s", answer, exc)
        return False
    return bool(parsed)


# --------------------------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset lives and how its problem and gold answer are read."""

    name: str
    hub_name: str
    hub_config: str | None
    hub_split: str
    split: str  # "train" or "test": file names and extra_info.split
    answer_keys: tuple[str, ...]
    problem_keys: tuple[str, ...] = ("problem", "question")
    # Fallback when no answer column is present: derive the answer from the whole record.
    answer_from_record: Callable[[dict], str | None] | None = None
    # Post-processing of an answer read from an answer column.
    answer_postprocess: Callable[[str], str | None] | None = None
    max_problem_tokens: int = 0  # 0: no length filter
    # "parse": drop answers Math-Verify cannot parse or the reward cannot match (the paper's training
    # filter); "self": drop only answers the reward cannot match against themselves (evaluation sets,
    # so their sizes stay the benchmarks' sizes); "none": keep everything.
    answer_check: str = "self"
    description: str = ""


def _numina_answer(record: dict) -> str | None:
    return boxed_answer_of_solution(record.get("solution"))


def _solution_answer(record: dict) -> str | None:
    # MATH-style records without an answer column carry the answer boxed in the solution.
    return boxed_answer_of_solution(record.get("solution"))


DATASETS: dict[str, DatasetSpec] = {
    s.name: s
    for s in (
        # name, hub name, hub config, hub split, our split; then how the answer is read
        # an `answer` column where the copy has one (the released scripts' ScaleML-RLHF/numina_math), else the last
        # \boxed{} of the solution (AI-MO/NuminaMath-CoT)
        DatasetSpec("numina_math", "AI-MO/NuminaMath-CoT", None, "train", "train", answer_keys=("answer",),
                    answer_from_record=_numina_answer,
                    max_problem_tokens=PAPER_MAX_PROBLEM_TOKENS, answer_check="parse",
                    description="Numina-Math (~860k problems), the paper's training prompts"),
        DatasetSpec("math500", "HuggingFaceH4/MATH-500", None, "test", "test", answer_keys=("answer",),
                    answer_from_record=_solution_answer, description="MATH-500 (500 problems), evaluation"),
        DatasetSpec("minerva_math", "math-ai/minervamath", None, "test", "test", answer_keys=("answer", "final_answer"),
                    answer_from_record=_solution_answer, description="Minerva Math (272 problems), evaluation"),
        DatasetSpec("olympiadbench", "Hothan/OlympiadBench", "OE_TO_maths_en_COMP", "train", "test",
                    answer_keys=("answer", "final_answer"),
                    description="OlympiadBench, English text-only open-ended maths (674 problems), evaluation"),
        DatasetSpec("gsm8k", "openai/gsm8k", "main", "test", "test", answer_keys=("answer",),
                    answer_postprocess=gsm8k_final_answer, description="GSM8K (1319 test problems), not used by the paper"),
    )
}


def get_spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}") from None


def _first_present(record: dict, keys: Sequence[str]) -> Any:
    for key in keys:
        value = record.get(key)
        if value is not None and value != "" and value != []:
            return value
    return None


def extract_problem_and_answer(record: dict, spec: DatasetSpec) -> tuple[str | None, str | None]:
    """(problem, gold answer) of one source record; None where missing."""
    problem = _first_present(record, spec.problem_keys)
    problem = str(problem).strip() if problem is not None else None
    raw = _first_present(record, spec.answer_keys) if spec.answer_keys else None
    answer = normalize_answer(raw)
    if answer is not None and spec.answer_postprocess is not None:
        answer = spec.answer_postprocess(answer)
    if answer is None and spec.answer_from_record is not None:
        answer = spec.answer_from_record(record)
    return problem or None, answer


# --------------------------------------------------------------------------------------------
# Row formats
# --------------------------------------------------------------------------------------------


def verl_row(problem: str, answer: str, index: int, data_source: str, split: str) -> dict:
    """One row of verl's RL parquet format (cf. verl's examples/data_preprocess)."""
    return {
        "data_source": data_source,
        "prompt": build_messages(problem),
        "ability": ABILITY,
        "reward_model": {"style": "rule", "ground_truth": answer},
        "extra_info": {"split": split, "index": index, "problem": problem, "answer": answer},
    }


def trl_row(problem: str, answer: str) -> dict:
    """One row of the TRL dataset: conversational ``prompt`` and the gold ``answer``."""
    return {"prompt": build_messages(problem), "answer": answer}
