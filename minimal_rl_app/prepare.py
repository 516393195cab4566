"""What ``minimal-rl prepare-data`` does once its arguments are parsed (`minimal_rl_app.commands.prepare_data`):
the paper's training and evaluation sets in verl's and TRL's formats.

For each dataset this writes, under ``--output-dir/<dataset>/``:

* ``<split>.parquet`` - verl's RL format (`minimal_rl.data.verl_row`);
* ``hf_<split>/`` - a Hugging Face dataset (``datasets.save_to_disk``) with columns ``prompt`` (conversational
  messages) and ``answer`` (`minimal_rl.data.trl_row`);
* ``summary_<split>.json`` - row counts: read, dropped for each reason, written.

The paper's filtering (Sec. 5.1): training problems longer than 700 tokens are dropped (``--max-problem-tokens``;
counted with ``--tokenizer`` or estimated), and so are problems whose gold answer Math-Verify cannot parse
(``--answer-check parse``, see `minimal_rl.data.is_parseable`) or the reward cannot match against itself
(`minimal_rl.data.is_verifiable`: such a problem can only ever give all-wrong groups). Evaluation sets get only the
second check and no length filter by default, so they keep the benchmarks' sizes.

Sources: the Hugging Face hub names of `minimal_rl.data.DATASETS` (``datasets.load_dataset``; not exercised by this
project's tests, which run offline), or a local JSONL / JSON / parquet file (``--input``). pandas, pyarrow and
datasets are imported inside functions only.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from minimal_rl.data import (
    ANSWER_CHECKS,
    DatasetSpec,
    extract_problem_and_answer,
    get_spec,
    is_parseable,
    trl_row,
    verl_row,
)
from minimal_rl.reward import verify_many

from minimal_rl_app.inputs import UsageError, check_writable_dir
from minimal_rl_app.outputs import OutputDir

logger = logging.getLogger(__name__)

# Without a tokenizer, tokens are estimated as ceil(characters / 3): BPE tokenizers of the paper's
# models give about 3-4 characters per token on English prose and fewer on LaTeX, so this estimate
# errs towards dropping a problem that is slightly under the limit rather than keeping one over it.
APPROX_CHARS_PER_TOKEN = 3.0

# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def read_local_records(path: str) -> Iterator[dict]:
    """Records of a local JSONL, JSON (a list of objects) or parquet file."""
    lower = path.lower()
    if lower.endswith(".parquet"):
        import pyarrow.parquet as pq

        try:
            yield from pq.read_table(path).to_pylist()
        except Exception as exc:  # noqa: BLE001 - pyarrow's errors for a damaged file vary by version
            raise ValueError(f"{path}: not a readable parquet file ({str(exc).splitlines()[0][:120]})") from None
    elif lower.endswith(".jsonl"):
        for line_no, line in enumerate(_utf8_lines(path), 1):
            if line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{line_no}: not valid JSON ({exc})") from None
                if not isinstance(record, dict):
                    raise ValueError(f"{path}:{line_no}: expected a JSON object, got {type(record).__name__}")
                yield record
    elif lower.endswith(".json"):
        try:
            data = json.loads("".join(_utf8_lines(path)))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a JSON list of records")
        for i, record in enumerate(data):
            if not isinstance(record, dict):
                raise ValueError(f"{path}: record {i} is not a JSON object ({type(record).__name__})")
            yield record
    else:
        raise ValueError(f"{path}: unsupported file type (use .jsonl, .json or .parquet)")


def _utf8_lines(path: str) -> Iterator[str]:
    """The file's lines, streamed; invalid UTF-8 is a one-line ValueError naming the line."""
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, 1):
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(f"{path}:{line_no}: not valid UTF-8 (byte {exc.start} of the line)") from None


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


def _check_parse(answer: str) -> int:
    try:
        return _OK if is_parseable(answer) else _UNPARSEABLE
    except Exception as exc:  # one row the check cannot score must not abort the whole dataset
        logger.warning("answer check failed on %.80r (%s: %s); row dropped", answer, type(exc).__name__, exc)
        return _UNSCORABLE


def check_answers(answers: list[str], answer_check: str, num_proc: int = 1, chunk: int = 256) -> list[int]:
    """The answer check's verdict for every answer: the parse check here (on the main thread, under
    Math-Verify's own timeout), then the reward against itself (`minimal_rl.data.is_verifiable`) for the rest,
    in the reward's helper pool (``num_proc`` helpers; Numina: ~860k answers) in chunks of ``chunk``."""
    if answer_check not in ANSWER_CHECKS:
        raise ValueError(f"answer_check must be one of {ANSWER_CHECKS}, got {answer_check!r}")
    verdicts = [_OK] * len(answers)
    if answer_check == "none":
        return verdicts
    if answer_check == "parse":
        verdicts = [_check_parse(a) for a in answers]
    todo = [i for i, v in enumerate(verdicts) if v == _OK]
    for start in range(0, len(todo), chunk):
        part = todo[start : start + chunk]
        checked = verify_many(
            ["\\boxed{" + answers[i] + "}" for i in part], [answers[i] for i in part],
            timeout_s=ANSWER_CHECK_TIMEOUT_S, pool_size=num_proc,
        )
        for i, (correct, status) in zip(part, checked):
            if status in _NOT_SCORED:  # a timeout, a failure of the verifier: not the answer's fault
                logger.warning("answer check could not score %.80r (%s); row dropped", answers[i], status)
                verdicts[i] = _UNSCORABLE
            elif not correct:
                verdicts[i] = _UNVERIFIABLE
    return verdicts


_NOT_SCORED = ("timeout", "helper_died", "unavailable", "error")
# The answer check runs once, offline: a bound as tight as training's reward (5 s) would drop long answers (Minerva's
# damped-oscillator formula takes seconds) whenever the machine is loaded, making the dataset depend on the load.
ANSWER_CHECK_TIMEOUT_S = 30.0


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
    overwrite: bool = False,
) -> PrepareSummary:
    """Read, filter and write one dataset; returns (and writes as JSON) its summary. An earlier output of the
    same dataset and split is replaced only with ``overwrite`` (a UsageError otherwise)."""
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

    if not pairs:
        raise ValueError(f"{source}: nothing to write, no row has both a problem and an answer that pass the checks "
                         f"({summary.as_text()})")
    # Every file is listed in <dataset>/minimal-rl-files.json; an earlier output is replaced only with
    # ``overwrite``, and only the files this command wrote (`minimal_rl_app.outputs`).
    outputs = OutputDir(Path(output_dir) / name)
    planned = output_names(split, formats)
    outputs.check(planned, overwrite)
    for rel in planned:
        outputs.remove_listed(rel)
    out = str(outputs.root)
    if "verl" in formats:
        path = os.path.join(out, f"{split}.parquet")
        outputs.add(f"{split}.parquet")
        write_verl_parquet(pairs, path, data_source=name, split=split)
        summary.outputs["verl"] = path
    if "hf" in formats:
        path = os.path.join(out, f"hf_{split}")
        outputs.write_tree(f"hf_{split}", lambda folder: write_hf_dataset(pairs, str(folder)))
        summary.outputs["hf"] = path
    summary_path = os.path.join(out, f"summary_{split}.json")
    outputs.add(f"summary_{split}.json")
    with open(summary_path, "w", encoding="utf-8") as f:
        json.dump(asdict(summary), f, indent=2)
    summary.outputs["summary"] = summary_path
    return summary


def output_names(split: str, formats: Sequence[str]) -> list[str]:
    """What `prepare_dataset` writes under ``<output-dir>/<dataset>/`` (relative paths)."""
    return ([f"{split}.parquet"] if "verl" in formats else []) + ([f"hf_{split}"] if "hf" in formats else []) + [f"summary_{split}.json"]


# --------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------


# --flag (argparse dest) -> prepare_dataset parameter
COMMAND_LINE_OPTIONS = {
    "input": "input_path", "tokenizer": "tokenizer", "max_problem_tokens": "max_problem_tokens",
    "answer_check": "answer_check", "num_proc": "num_proc", "limit": "limit", "hub_name": "hub_name",
    "hub_config": "hub_config", "hub_split": "hub_split", "split": "split",
}


def check_arguments(args: argparse.Namespace, formats: Sequence[str]) -> None:
    """Everything checkable before reading a row: input file, output folder, earlier outputs."""
    if (args.input or args.hub_name) and len(args.datasets) != 1:
        raise UsageError("--input and --hub-name need exactly one DATASET")
    if args.max_problem_tokens is not None and args.max_problem_tokens < 0:
        raise UsageError(f"--max-problem-tokens must be >= 0, got {args.max_problem_tokens}")
    if args.input:
        if not os.path.exists(args.input):
            raise UsageError(f"--input {args.input}: no such file")
        if not os.path.isfile(args.input):
            raise UsageError(f"--input {args.input}: not a file")
        if not args.input.lower().endswith((".jsonl", ".json", ".parquet")):
            raise UsageError(f"--input {args.input}: unsupported file type (use .jsonl, .json or .parquet)")
    check_writable_dir(Path(args.output_dir), "--output-dir")
    for name in args.datasets:
        OutputDir(Path(args.output_dir) / name).check(
            output_names(args.split or get_spec(name).split, formats), args.overwrite, flag="--output-dir"
        )


def prepare_command(args: argparse.Namespace) -> int:
    """``minimal-rl prepare-data``: check every argument, then prepare each dataset; exit status 2 and one line
    on stderr for any bad input."""
    logging.basicConfig(level=logging.WARNING)
    formats = ("verl", "hf") if args.format == "both" else (args.format,)
    try:
        check_arguments(args, formats)
        for name in args.datasets:
            options = {parameter: getattr(args, flag) for flag, parameter in COMMAND_LINE_OPTIONS.items()}
            try:
                summary = prepare_dataset(name, args.output_dir, formats=formats, overwrite=args.overwrite, **options)
            except (ValueError, OSError) as exc:
                raise UsageError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
            print(summary.as_text())
            for kind, path in summary.outputs.items():
                print(f"  {kind}: {path}")
    except UsageError as exc:
        print(f"minimal-rl prepare-data: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nminimal-rl prepare-data: interrupted", file=sys.stderr)
        return 130
    return 0
