"""Through verl 0.9's own reward loop code: its config, ``load_reward_manager`` (which wraps our function
with the ``reward_kwargs``) and the ``naive`` reward manager's ``run_single``, which awaits
``compute_score_async`` directly (``inspect.iscoroutinefunction``) and runs ``compute_score`` in its
thread pool (``loop.run_in_executor``). Nothing of verl is mocked; the tokenizer is a tiny stand-in."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("math_verify", reason="the [math] extra (math-verify) is not installed")
verl = pytest.importorskip("verl")

from hydra import compose, initialize_config_dir  # noqa: E402
from verl import DataProto  # noqa: E402
from verl.trainer.ppo.reward import load_reward_manager  # noqa: E402

from minimal_rl import reward  # noqa: E402

VERL_CONFIG_DIR = str(Path(verl.__file__).parent / "trainer" / "config")


class CharTokenizer:
    """Characters as token ids (what the reward manager needs of a tokenizer: decode)."""

    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        return "".join(chr(int(i)) for i in ids if int(i) > 0)


def make_items(pairs: list[tuple[str, str]], prompt_len: int = 4) -> list[DataProto]:
    tok = CharTokenizer()
    width = max(len(s) for s, _ in pairs) + 1
    items = []
    for text, gold in pairs:
        ids = tok.encode(text)
        responses = torch.zeros(1, width, dtype=torch.long)
        responses[0, : len(ids)] = torch.tensor(ids)
        mask = torch.zeros(1, prompt_len + width, dtype=torch.long)
        mask[0, : prompt_len + len(ids)] = 1
        items.append(DataProto.from_dict(
            tensors={"prompts": torch.ones(1, prompt_len, dtype=torch.long), "responses": responses, "attention_mask": mask},
            non_tensors={
                "data_source": np.array(["math500"], dtype=object),
                "reward_model": np.array([{"ground_truth": gold, "style": "rule"}], dtype=object),
                "extra_info": np.array([{}], dtype=object),
            },
        ))
    return items


def manager_for(name: str, *overrides: str):
    with initialize_config_dir(config_dir=VERL_CONFIG_DIR, version_base=None):
        cfg = compose("ppo_trainer", overrides=[
            "reward.custom_reward_function.path=pkg://minimal_rl.reward",
            f"reward.custom_reward_function.name={name}",
            "+reward.custom_reward_function.reward_kwargs.score_mapping=signed",
            *overrides,
        ])
    return load_reward_manager(cfg, CharTokenizer())


@pytest.fixture(scope="module")
def pairs(shared_data):
    rows = [json.loads(line) for line in (shared_data / "math500.jsonl").read_text().splitlines()][:24]
    out = []
    for i, row in enumerate(rows):
        gold = row["answer"]
        out.append((f"We compute carefully. The final answer is $\\boxed{{{gold}}}$.", gold))
        out.append((f"I think it is \\boxed{{{i}7}} and finally \\boxed{{{gold}}}, no: \\boxed{{{i}7}}.", gold))
    return out


@pytest.mark.parametrize("name", ["compute_score_async", "compute_score"])
def test_naive_reward_manager_runs_our_function(name, pairs):
    manager = manager_for(name)
    assert type(manager).__name__ == "NaiveRewardManager"
    assert manager.is_async_reward_score is (name == "compute_score_async")

    async def run_all():
        return await asyncio.gather(*[manager.run_single(item) for item in make_items(pairs)])

    outputs = manager.loop.run_until_complete(run_all())
    scores = [o["reward_score"] for o in outputs]
    assert scores == [1.0, -1.0] * (len(pairs) // 2)
    assert {tuple(sorted(o["reward_extra_info"])) for o in outputs} == {("acc", "score")}


def test_reward_kwargs_reach_the_async_function(pairs):
    manager = manager_for("compute_score_async", "+reward.custom_reward_function.reward_kwargs.report_unverified=true",
                          "reward.custom_reward_function.reward_kwargs.score_mapping=binary")
    items = make_items(pairs[:2] + [("\\boxed{3}", "nan")])
    outputs = manager.loop.run_until_complete(asyncio.gather(*[manager.run_single(i) for i in items]))
    assert [o["reward_score"] for o in outputs] == [1.0, 0.0, 0.0]
    # the same keys in every item (verl stacks them into arrays by the first item's keys)
    assert [o["reward_extra_info"]["unverified"] for o in outputs] == [0.0, 0.0, 0.0]
    nan_item = make_items([("\\boxed{3}", "x")])[0]
    nan_item.non_tensor_batch["reward_model"][0]["ground_truth"] = float("nan")
    out = manager.loop.run_until_complete(manager.run_single(nan_item))
    assert out["reward_score"] == 0.0 and out["reward_extra_info"]["unverified"] == 1.0
    assert reward.reward_stats()["invalid_ground_truth"] >= 1
