"""``minimal-rl prepare-data``: the paper's training and evaluation sets in verl's and TRL's formats.

For each dataset this writes, under ``--output-dir/<dataset>/``:

* ``<split>.parquet`` - verl's RL format (what ``verl.utils.dataset.RLHFDataset`` reads, as in verl's
  ``examples/data_preprocess``): ``data_source``, ``prompt`` (chat messages: the paper's system prompt and
  the problem followed by its instruction suffix, see `minimal_rl.prompts`), ``ability``,
  ``reward_model = {style: "rule", ground_truth}`` and ``extra_info = {split, index, problem, answer}``.
* ``hf_<split>/`` - a Hugging Face dataset (``datasets.save_to_disk``) with columns ``prompt``
  (conversational messages) and ``answer``, what TRL's GRPOTrainer and
  `minimal_rl.reward.math_verify_reward` expect.
* ``summary_<split>.json`` - row counts: read, dropped for each reason, written.

The paper's filtering (Sec. 5.1): training problems longer than 700 tokens are dropped
(``--max-problem-tokens``; counted with ``--tokenizer`` or estimated), and so are problems whose gold
answer Math-Verify cannot parse (``--answer-check parse``, see `is_parseable`) or the reward cannot match
against itself (`is_verifiable`: such a problem can only ever give all-wrong groups). Evaluation sets get
only the second check and no length filter by default, so they keep the benchmarks' sizes.

Sources: the Hugging Face hub names below (``datasets.load_dataset``; not exercised by this project's
tests, which run offline), or a local JSONL / JSON / parquet file (``--input``). pandas, pyarrow and
datasets are imported inside functions only.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

from minimal_rl.prompts import build_messages
from minimal_rl.reward import is_correct, last_boxed

logger = logging.getLogger(__name__)

# The paper drops training problems over 700 tokens.
PAPER_MAX_PROBLEM_TOKENS = 700
# Without a tokenizer, tokens are estimated as ceil(characters / 3): BPE tokenizers of the paper's
# models give about 3-4 characters per token on English prose and fewer on LaTeX, so this estimate
# errs towards dropping a problem that is slightly under the limit rather than keeping one over it.
APPROX_CHARS_PER_TOKEN = 3.0
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
    problem_keys: tuple[str, ...]
    answer_keys: tuple[str, ...]
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
        DatasetSpec(
            "numina_math",
            "AI-MO/NuminaMath-CoT",
            None,
            "train",
            "train",
            problem_keys=("problem", "question"),
            answer_keys=(),  # the answer is the last \boxed{} of the solution
            answer_from_record=_numina_answer,
            max_problem_tokens=PAPER_MAX_PROBLEM_TOKENS,
            answer_check="parse",
            description="Numina-Math (~860k problems), the paper's training prompts",
        ),
        DatasetSpec(
            "math500",
            "HuggingFaceH4/MATH-500",
            None,
            "test",
            "test",
            problem_keys=("problem", "question"),
            answer_keys=("answer",),
            answer_from_record=_solution_answer,
            description="MATH-500 (500 problems), evaluation",
        ),
        DatasetSpec(
            "minerva_math",
            "math-ai/minervamath",
            None,
            "test",
            "test",
            problem_keys=("problem", "question"),
            answer_keys=("answer", "final_answer"),
            answer_from_record=_solution_answer,
            description="Minerva Math (272 problems), evaluation",
        ),
        DatasetSpec(
            "olympiadbench",
            "Hothan/OlympiadBench",
            "OE_TO_maths_en_COMP",
            "train",
            "test",
            problem_keys=("problem", "question"),
            answer_keys=("answer", "final_answer"),
            description="OlympiadBench, English text-only open-ended maths (674 problems), evaluation",
        ),
        DatasetSpec(
            "gsm8k",
            "openai/gsm8k",
            "main",
            "test",
            "test",
            problem_keys=("problem", "question"),
            answer_keys=("answer",),
            answer_postprocess=gsm8k_final_answer,
            description="GSM8K (1319 test problems), not used by the paper",
        ),
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
# Reading
# --------------------------------------------------------------------------------------------


def read_local_records(path: str) -> Iterator[dict]:
    """Records of a local JSONL, JSON (a list of objects) or parquet file."""
    lower = path.lower()
    if lower.endswith(".parquet"):
        import pyarrow.parquet as pq

        yield from pq.read_table(path).to_pylist()
    elif lower.endswith(".jsonl"):
        with open(path, encoding="utf-8") as f:
            for line_no, line in enumerate(f, 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise ValueError(f"{path}:{line_no}: not valid JSON ({exc})") from None
    elif lower.endswith(".json"):
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a JSON list of records")
        yield from data
    else:
        raise ValueError(f"{path}: unsupported file type (use .jsonl, .json or .parquet)")


def read_hub_records(hub_name: str, config: str | None, split: str) -> Iterator[dict]:
    """Records of a Hugging Face hub dataset (needs network access or a populated HF cache)."""
    import datasets

    yield from datasets.load_dataset(hub_name, config, split=split)


# --------------------------------------------------------------------------------------------
# Token counting
# --------------------------------------------------------------------------------------------


def approx_token_count(text: str) -> int:
    """Tokens estimated without a tokenizer: ceil(characters / 3) (see APPROX_CHARS_PER_TOKEN)."""
    return math.ceil(len(text) / APPROX_CHARS_PER_TOKEN)


def make_token_counter(tokenizer_path: str | None) -> tuple[Callable[[list[str]], list[int]], str]:
    """(batch token counter, description). Counts tokens of the problem text, no special tokens."""
    if not tokenizer_path:
        return (lambda texts: [approx_token_count(t) for t in texts]), f"approx: ceil(chars / {APPROX_CHARS_PER_TOKEN:g})"
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)

    def count(texts: list[str]) -> list[int]:
        return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]

    return count, f"tokenizer: {tokenizer_path}"


# --------------------------------------------------------------------------------------------
# Filtering and formatting
# --------------------------------------------------------------------------------------------


@dataclass
class PrepareSummary:
    dataset: str
    source: str
    split: str
    rows_read: int = 0
    dropped_no_problem: int = 0
    dropped_no_answer: int = 0
    dropped_too_long: int = 0
    dropped_unparseable: int = 0
    dropped_unverifiable: int = 0
    dropped_unscorable: int = 0  # the answer check itself failed on the row (counted, never aborts)
    rows_written: int = 0
    max_problem_tokens: int = 0
    token_counter: str = ""
    answer_check: str = "self"
    outputs: dict[str, str] = field(default_factory=dict)

    def as_text(self) -> str:
        length = (
            f"{self.dropped_too_long} over {self.max_problem_tokens} tokens ({self.token_counter})"
            if self.max_problem_tokens > 0
            else "no length filter"
        )
        return (
            f"{self.dataset} ({self.source}): read {self.rows_read}; dropped {self.dropped_no_problem} without a "
            f"problem, {self.dropped_no_answer} without an answer, {length}, {self.dropped_unparseable} with an "
            f"unparseable and {self.dropped_unverifiable} with an unverifiable answer (check: {self.answer_check}), "
            f"{self.dropped_unscorable} the check could not score; wrote {self.rows_written}"
        )


# Verdicts of the answer check: kept, or dropped for which reason.
_OK, _UNPARSEABLE, _UNVERIFIABLE, _UNSCORABLE = 0, 1, 2, 3


def _check_answer(answer: str, answer_check: str) -> int:
    try:
        if answer_check == "parse" and not is_parseable(answer):
            return _UNPARSEABLE
        if answer_check in ("parse", "self") and not is_verifiable(answer):
            return _UNVERIFIABLE
    except Exception as exc:  # one row the check cannot score must not abort the whole dataset
        logger.warning("answer check failed on %.80r (%s: %s); row dropped", answer, type(exc).__name__, exc)
        return _UNSCORABLE
    return _OK


def _check_chunk(job: tuple[list[str], str]) -> list[int]:
    answers, answer_check = job
    return [_check_answer(a, answer_check) for a in answers]


def check_answers(answers: list[str], answer_check: str, num_proc: int = 1, chunk: int = 256) -> list[int]:
    """The answer check's verdict for every answer, in ``num_proc`` processes (Numina: ~860k answers)."""
    if answer_check not in ANSWER_CHECKS:
        raise ValueError(f"answer_check must be one of {ANSWER_CHECKS}, got {answer_check!r}")
    if answer_check == "none":
        return [_OK] * len(answers)
    if num_proc <= 1 or len(answers) < 2 * chunk:
        return _check_chunk((answers, answer_check))
    import multiprocessing

    jobs = [(answers[i : i + chunk], answer_check) for i in range(0, len(answers), chunk)]
    # Each worker's main thread runs Math-Verify, so its signal-based timeout works there.
    with multiprocessing.get_context("spawn").Pool(num_proc) as pool:
        return [v for part in pool.imap(_check_chunk, jobs) for v in part]


def filter_records(
    records: Iterable[dict],
    spec: DatasetSpec,
    summary: PrepareSummary,
    max_problem_tokens: int,
    count_tokens: Callable[[list[str]], list[int]],
    answer_check: str = "self",
    num_proc: int = 1,
    limit: int | None = None,
) -> list[tuple[str, str]]:
    """The (problem, answer) pairs that survive the paper's filters, counting every drop in ``summary``."""
    pairs: list[tuple[str, str]] = []
    for record in records:
        if limit is not None and summary.rows_read >= limit:
            break
        summary.rows_read += 1
        problem, answer = extract_problem_and_answer(record, spec)
        if problem is None:
            summary.dropped_no_problem += 1
        elif answer is None:
            summary.dropped_no_answer += 1
        else:
            pairs.append((problem, answer))

    if max_problem_tokens > 0 and pairs:
        lengths: list[int] = []
        for i in range(0, len(pairs), 1024):
            lengths.extend(count_tokens([p for p, _ in pairs[i : i + 1024]]))
        short = [pair for pair, n in zip(pairs, lengths) if n <= max_problem_tokens]
        summary.dropped_too_long = len(pairs) - len(short)
        pairs = short

    if pairs:
        verdicts = check_answers([a for _, a in pairs], answer_check, num_proc=num_proc)
        summary.dropped_unparseable = verdicts.count(_UNPARSEABLE)
        summary.dropped_unverifiable = verdicts.count(_UNVERIFIABLE)
        summary.dropped_unscorable = verdicts.count(_UNSCORABLE)
        pairs = [pair for pair, v in zip(pairs, verdicts) if v == _OK]
    summary.rows_written = len(pairs)
    return pairs


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


def write_verl_parquet(pairs: list[tuple[str, str]], path: str, data_source: str, split: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [verl_row(p, a, i, data_source, split) for i, (p, a) in enumerate(pairs)]
    if not rows:
        raise ValueError(f"nothing to write to {path}: every row was filtered out")
    pq.write_table(pa.Table.from_pylist(rows), path)


def write_hf_dataset(pairs: list[tuple[str, str]], path: str) -> None:
    import datasets

    if not pairs:
        raise ValueError(f"nothing to write to {path}: every row was filtered out")
    datasets.Dataset.from_list([trl_row(p, a) for p, a in pairs]).save_to_disk(path)


def prepare_dataset(
    name: str,
    output_dir: str,
    input_path: str | None = None,
    tokenizer: str | None = None,
    max_problem_tokens: int | None = None,
    formats: Sequence[str] = ("verl", "hf"),
    answer_check: str | None = None,
    num_proc: int = 1,
    limit: int | None = None,
    hub_name: str | None = None,
    hub_config: str | None = None,
    hub_split: str | None = None,
    split: str | None = None,
) -> PrepareSummary:
    """Read, filter and write one dataset; returns (and writes as JSON) its summary."""
    spec = get_spec(name)
    split = split or spec.split
    if max_problem_tokens is None:
        max_problem_tokens = spec.max_problem_tokens
    answer_check = answer_check or spec.answer_check
    if answer_check not in ANSWER_CHECKS:
        raise ValueError(f"answer_check must be one of {ANSWER_CHECKS}, got {answer_check!r}")
    if input_path:
        source = os.path.abspath(input_path)
        records: Iterable[dict] = read_local_records(input_path)
    else:
        hub = hub_name or spec.hub_name
        config = hub_config if hub_config is not None else spec.hub_config
        h_split = hub_split or spec.hub_split
        source = f"hf://{hub}" + (f"/{config}" if config else "") + f"[{h_split}]"
        records = read_hub_records(hub, config, h_split)

    count_tokens, counter_name = make_token_counter(tokenizer if max_problem_tokens > 0 else None)
    summary = PrepareSummary(
        dataset=name,
        source=source,
        split=split,
        max_problem_tokens=max_problem_tokens,
        token_counter=counter_name if max_problem_tokens > 0 else "none",
        answer_check=answer_check,
    )
    pairs = filter_records(
        records, spec, summary, max_problem_tokens, count_tokens, answer_check, num_proc, limit
    )

    out = os.path.join(output_dir, name)
    os.makedirs(out, exist_ok=True)
    if "verl" in formats:
        path = os.path.join(out, f"{split}.parquet")
        write_verl_parquet(pairs, path, data_source=name, split=split)
        summary.outputs["verl"] = path
    if "hf" in formats:
        path = os.path.join(out, f"hf_{split}")
        write_hf_dataset(pairs, path)
        summary.outputs["hf"] = path
    summary_path = os.path.join(out, f"summary_{split}.json")
    with open(summary_path, "w", encoding="utf-8") as f:
        json.dump(asdict(summary), f, indent=2)
    summary.outputs["summary"] = summary_path
    return summary


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    listing = "; ".join(f"{s.name}: {s.description} [{s.hub_name}]" for s in DATASETS.values())
    parser.add_argument("datasets", nargs="+", choices=list(DATASETS), metavar="DATASET", help=listing)
    parser.add_argument("--input", help="local .jsonl/.json/.parquet file instead of the hub (one DATASET only)")
    parser.add_argument("--output-dir", default="data", help="writes OUTPUT_DIR/<dataset>/... (default: data)")
    parser.add_argument(
        "--tokenizer", help="tokenizer (path or hub name) for the length filter; default: ceil(chars / 3) estimate"
    )
    parser.add_argument(
        "--max-problem-tokens",
        type=int,
        default=None,
        help=f"drop problems longer than this (0: keep all); default {PAPER_MAX_PROBLEM_TOKENS} for numina_math, "
        "0 for the evaluation sets",
    )
    parser.add_argument("--format", choices=["verl", "hf", "both"], default="both", help="what to write (default both)")
    parser.add_argument(
        "--answer-check",
        choices=ANSWER_CHECKS,
        default=None,
        help="parse: drop gold answers Math-Verify cannot parse or the reward cannot match (default for "
        "numina_math); self: drop only answers the reward cannot match against themselves (default for the "
        "evaluation sets, keeping the benchmarks' sizes); none: keep all",
    )
    parser.add_argument("--num-proc", type=int, default=1, help="processes for the answer check (default 1)")
    parser.add_argument("--limit", type=int, default=None, help="read at most this many source rows")
    parser.add_argument("--hub-name", help="override the hub dataset name (one DATASET only)")
    parser.add_argument("--hub-config", help="override the hub dataset config")
    parser.add_argument("--hub-split", help="override the hub split to read")
    parser.add_argument("--split", help="split label for outputs and extra_info (default: train or test)")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING)
    if (args.input or args.hub_name) and len(args.datasets) != 1:
        raise SystemExit("--input and --hub-name need exactly one DATASET")
    formats = ("verl", "hf") if args.format == "both" else (args.format,)
    for name in args.datasets:
        summary = prepare_dataset(
            name,
            args.output_dir,
            input_path=args.input,
            tokenizer=args.tokenizer,
            max_problem_tokens=args.max_problem_tokens,
            formats=formats,
            answer_check=args.answer_check,
            num_proc=args.num_proc,
            limit=args.limit,
            hub_name=args.hub_name,
            hub_config=args.hub_config,
            hub_split=args.hub_split,
            split=args.split,
        )
        print(summary.as_text())
        for kind, path in summary.outputs.items():
            print(f"  {kind}: {path}")
    return 0
