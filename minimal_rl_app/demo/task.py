"""The embedded default task: procedurally generated two-digit addition and subtraction.

Every problem is ``"37+58="`` style text with an integer answer; a correct completion is
``\\boxed{95}``, scored by the project's real verifier (`minimal_rl.reward`). Problems are generated
from a seed, so the train and held-out splits are reproducible and disjoint by construction (the
held-out problems are removed from the pool before the train split is drawn).

Why this task (docs/main-job.md, notes on this machine): a tiny model reaches 20-50% sampled accuracy
on it within a minute of supervised warm-start, which gives mostly *mixed* groups of 8 samples, the
regime where RAFT, RAFT++ and Reinforce-Rej differ. Multiplication or mixed digit counts gave groups
that were almost all all-correct or all-wrong.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

OPERATIONS = ("+", "-")


@dataclass(frozen=True)
class TaskConfig:
    """Difficulty knobs of the arithmetic task. Changing any field changes the cache key."""

    min_operand: int = 10  # two-digit operands by default
    max_operand: int = 99
    operations: tuple[str, ...] = ("+", "-")
    allow_negative: bool = False  # False: "a-b" always has a >= b
    num_heldout: int = 512
    seed: int = 1234

    def __post_init__(self) -> None:
        bad = [op for op in self.operations if op not in OPERATIONS]
        if bad or not self.operations:
            raise ValueError(f"operations must be a non-empty subset of {OPERATIONS}, got {self.operations!r}")
        if not 0 <= self.min_operand <= self.max_operand:
            raise ValueError(f"need 0 <= min_operand <= max_operand, got {self.min_operand}, {self.max_operand}")
        if self.num_heldout < 1:
            raise ValueError("num_heldout must be >= 1")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["operations"] = list(self.operations)
        return d


@dataclass(frozen=True)
class Problem:
    problem: str  # e.g. "37+58="
    answer: str  # e.g. "95"

    def to_dict(self) -> dict[str, str]:
        return {"problem": self.problem, "answer": self.answer}


def solve(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b


def all_problems(config: TaskConfig) -> list[Problem]:
    """Every distinct problem the knobs allow, in a fixed order."""
    out = []
    r = range(config.min_operand, config.max_operand + 1)
    for op in config.operations:
        for a in r:
            for b in r:
                if op == "-" and not config.allow_negative and a < b:
                    continue
                out.append(Problem(f"{a}{op}{b}=", str(solve(a, op, b))))
    return out


@dataclass
class TaskSplits:
    train: list[Problem]
    heldout: list[Problem]
    config: TaskConfig = field(default_factory=TaskConfig)


def make_splits(config: TaskConfig | None = None) -> TaskSplits:
    """Shuffle all problems with ``config.seed``; the first ``num_heldout`` are held out, the rest train."""
    config = config or TaskConfig()
    problems = all_problems(config)
    if config.num_heldout >= len(problems):
        raise ValueError(f"num_heldout={config.num_heldout} leaves no training problems (only {len(problems)} exist)")
    random.Random(config.seed).shuffle(problems)
    return TaskSplits(train=problems[config.num_heldout :], heldout=problems[: config.num_heldout], config=config)


def completion_text(answer: str) -> str:
    """The supervised target of the warm-start: the answer in ``\\boxed{}`` (what the verifier reads)."""
    return f"\\boxed{{{answer}}}"
