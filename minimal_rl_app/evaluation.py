"""average@k evaluation (paper, Sec. 5.1: 16 samples per problem at temperature 1.0, mean accuracy).

The pieces are pluggable so they can be tested without a model:
  - a *generator* ``(rows, k) -> k completions per row`` (vLLM, ``transformers.generate``, or a fake);
  - the scorer is the project's reward (`minimal_rl.reward`), in its helper pool, each item under a hard time
    limit: a pathological completion that hangs the verifier is killed with its helper and scored as wrong,
    and the run goes on.
transformers / vLLM are imported inside the generator classes only.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

logger = logging.getLogger(__name__)


class Generator(Protocol):
    def __call__(self, rows: Sequence[dict], k: int) -> list[list[str]]:
        """``k`` completions for each row (rows carry ``problem`` and ``answer``)."""


def score_all(
    pairs: Sequence[tuple[str, str]],
    *,
    workers: int = 2,
    timeout_s: float = 10.0,
    progress: bool = False,
) -> tuple[list[bool], int]:
    """Score ``(completion, answer)`` pairs with the project's reward (`minimal_rl.reward.verify_many`:
    Math-Verify's verdict in its pool of ``workers`` helper processes, each item bounded by ``timeout_s``;
    a helper stuck on a pathological completion is killed and replaced, the item is wrong and the run goes
    on); returns (verdicts, timeouts)."""
    from tqdm.auto import tqdm

    from minimal_rl.reward import verify_many

    results: list[bool] = []
    timeouts = 0
    with tqdm(total=len(pairs), desc="scoring", disable=not progress, leave=False) as bar:
        for start in range(0, len(pairs), 256):  # in chunks, for the progress bar
            chunk = pairs[start : start + 256]
            verdicts = verify_many([c for c, _ in chunk], [a for _, a in chunk], timeout_s=timeout_s, pool_size=workers)
            results += [correct for correct, _ in verdicts]
            timeouts += sum(status == "timeout" for _, status in verdicts)
            bar.update(len(chunk))
    if timeouts:
        logger.warning("%d completion(s) took over %.0f s to verify: scored as wrong", timeouts, timeout_s)
    return results, timeouts


@dataclass
class BenchmarkResult:
    name: str
    num_problems: int
    k: int
    accuracy: float  # average@k: mean over problems and samples
    timeouts: int = 0
    per_problem: list[float] = field(default_factory=list)


def evaluate_benchmarks(
    generator: Generator,
    benchmarks: dict[str, Sequence[dict]],
    *,
    k: int = 16,
    workers: int = 2,
    timeout_s: float = 10.0,
    progress: bool = False,
    log: Callable[[str], None] = lambda s: None,
) -> list[BenchmarkResult]:
    """average@k of ``generator`` on each benchmark (name -> rows with ``problem`` and ``answer``)."""
    if k < 1:
        raise ValueError("k must be >= 1")
    results = []
    for name, rows in benchmarks.items():
        t0 = time.perf_counter()
        completions = generator(rows, k)
        if len(completions) != len(rows) or any(len(c) != k for c in completions):
            raise ValueError(f"generator returned the wrong number of completions for {name}")
        t1 = time.perf_counter()
        pairs = [(c, str(row["answer"])) for row, cs in zip(rows, completions) for c in cs]
        verdicts, timeouts = score_all(pairs, workers=workers, timeout_s=timeout_s, progress=progress)
        per_problem = [sum(verdicts[i * k : (i + 1) * k]) / k for i in range(len(rows))]
        acc = sum(per_problem) / max(len(per_problem), 1)
        log(f"{name}: {len(rows)} problems x {k} samples, accuracy {acc:.2%} "
            f"(generation {t1 - t0:.0f}s, scoring {time.perf_counter() - t1:.0f}s, {timeouts} timeouts)")
        results.append(BenchmarkResult(name, len(rows), k, acc, timeouts, per_problem))
    return results


def results_table(results: Sequence[BenchmarkResult]) -> str:
    """Markdown table: one row per benchmark and their mean (the paper's Table 1 layout)."""
    lines = ["| benchmark | problems | k | average@k (%) |", "|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.name} | {r.num_problems} | {r.k} | {100 * r.accuracy:.1f} |")
    if results:
        mean = sum(r.accuracy for r in results) / len(results)
        lines.append(f"| **mean** | {sum(r.num_problems for r in results)} | {results[0].k} | {100 * mean:.1f} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Generators
# --------------------------------------------------------------------------------------------


class TransformersGenerator:
    """``transformers.generate`` sampling (CPU or a single GPU), prompts through the model's chat template."""

    def __init__(
        self,
        model: str,
        *,
        messages: Callable[[str], list[dict[str, str]]],
        max_new_tokens: int = 4096,
        temperature: float = 1.0,
        batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=dtype).to(device).eval()
        self.messages = messages
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.batch_size = batch_size
        self.seed = seed

    def __call__(self, rows: Sequence[dict], k: int) -> list[list[str]]:
        from minimal_rl_app.sampling import chat_prompt, generate

        prompts = [chat_prompt(self.tokenizer, self.messages(r["problem"])) for r in rows]
        return generate(
            self.model, self.tokenizer, prompts, num_samples=k, max_new_tokens=self.max_new_tokens,
            temperature=self.temperature, batch_size=self.batch_size, seed=self.seed,
        )


class VLLMGenerator:
    """vLLM sampling (used when vLLM is installed and a GPU is present)."""

    def __init__(self, model: str, *, messages: Callable[[str], list[dict[str, str]]], max_new_tokens: int = 4096,
                 temperature: float = 1.0, seed: int = 0, **_: Any) -> None:
        from vllm import LLM, SamplingParams

        self.llm = LLM(model=model, seed=seed)
        self.tokenizer = self.llm.get_tokenizer()
        self.messages = messages
        self.params = lambda k: SamplingParams(n=k, temperature=temperature, top_p=1.0, max_tokens=max_new_tokens, seed=seed)

    def __call__(self, rows: Sequence[dict], k: int) -> list[list[str]]:
        from minimal_rl_app.sampling import chat_prompt

        prompts = [chat_prompt(self.tokenizer, self.messages(r["problem"])) for r in rows]
        outputs = self.llm.generate(prompts, self.params(k))
        return [[o.text for o in out.outputs] for out in outputs]


def vllm_usable() -> bool:
    try:
        import torch
        import vllm  # noqa: F401
    except Exception:  # noqa: BLE001 - any import problem means "not usable"
        return False
    return bool(torch.cuda.is_available())
