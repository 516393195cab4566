"""Reinforce-Ada's rounds with TRL's vLLM generation, without vLLM (the e2e test runs vLLM colocate on CPU:
tests/e2e/test_trl_vllm_ada.py).

Server mode: TRL gathers every rank's rows and asks the server for `group` completions of every `group`-th row
(`trl_ext.adaptive.served_rows`). A round's rows hold each prompt `round_repeat` times, so the trainer must hand
TRL that group size. The trainer test below runs TRL's own server-mode `VLLMGeneration.generate` against a fake
server whose completions name the prompt they were generated for and carry a log-prob unique to each completion,
so a row answered for another prompt, or given another completion's log-probs, is seen.
"""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset

from trl_ext import build_trainer
from trl_ext.adaptive import round_rows, served_rows

from mrl_testing import NUM_GENERATIONS, build_model, tiny_config

from minimal_rl.metrics import metric_key


def test_round_rows_hold_each_active_prompt_repeat_times_and_top_up_the_last_rank():
    assert round_rows([0, 2], 3, 1) == [0, 0, 0, 2, 2, 2]
    assert round_rows([0, 2], 3, 4) == [0, 0, 0, 2, 2, 2, 2, 2]  # 2 rows per rank; two copies of the last row
    assert round_rows([1], 4, 3) == [1] * 6


@pytest.mark.parametrize("num_processes", [1, 2, 3, 4])
@pytest.mark.parametrize("repeat", [4, 6, 8])
def test_server_mode_answers_each_round_row_for_its_own_prompt_with_round_repeat_as_group(repeat, num_processes):
    for active in ([0], [0, 1], [1, 3, 4]):
        rows = round_rows(active, repeat, num_processes)
        assert served_rows(rows, repeat) == rows


def test_server_mode_with_num_generations_as_group_would_answer_rows_for_the_wrong_prompt():
    rows = round_rows([0, 1], 6, 1)  # round_repeat 6, num_generations 4
    assert served_rows(rows, 4) == [0] * 8 + [1] * 4  # rows 6 and 7 (prompt 1) would get prompt 0's completions


PROMPTS = ["A: 1+1=", "B: 2+2=", "C: 3+3="]
LETTERS = "abc"
ROUND_REPEAT = 6  # not a multiple of num_generations: TRL's own group size would mis-assign rows


class FakeServer:
    """Stands in for `trl.generation.vllm_client.VLLMClient.generate`: completion k of prompt p is the text
    `<letter of p><k as two digits>`, each token with log-prob -k/100."""

    def __init__(self, tokenizer):
        self.tokenizer, self.calls, self.serial = tokenizer, [], 0
        self.prompt_ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in PROMPTS]

    def generate(self, prompts, n, features=None, **sampling):
        self.calls.append((len(prompts), n))
        prompt_ids, completion_ids, logprobs = [], [], []
        for ids in prompts:
            letter = LETTERS[self.prompt_ids.index(list(ids))]
            prompt_ids.append(ids)
            for _ in range(n):
                text = f"{letter}{self.serial:02d}"
                tokens = self.tokenizer(text, add_special_tokens=False)["input_ids"]
                completion_ids.append(tokens)
                logprobs.append([[-self.serial / 100] for _ in tokens])
                self.serial += 1
        return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": logprobs}


def text(tokenizer, ids) -> str:
    return tokenizer.decode(ids).replace(" ", "")  # the character tokenizer decodes with a space between tokens


def reward_every_fifth(completions, **kwargs):
    return [float(int(completion.replace(" ", "")[-2:]) % 5 == 0) for completion in completions]


def server_mode_trainer(tokenizer, output_dir):
    from trl.generation.vllm_generation import VLLMGeneration

    trainer = build_trainer(
        "reinforce_ada_balance", build_model(tokenizer), [reward_every_fifth],
        config=tiny_config(dict, output_dir, per_device_train_batch_size=NUM_GENERATIONS * len(PROMPTS),
                           round_repeat=ROUND_REPEAT, max_rounds=3, loss_type="dapo"),
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}), processing_class=tokenizer,
    )
    # TRL's server-mode generation (the real method) on a fake server; building it would connect to a server
    generation = object.__new__(VLLMGeneration)
    generation.__dict__.update(
        mode="server", accelerator=trainer.accelerator, vllm_client=FakeServer(tokenizer), enable_sleep_mode=False,
        temperature=1.0, top_p=1.0, top_k=0, min_p=None, repetition_penalty=1.0, max_completion_length=6, logprobs=0,
        structured_outputs_regex=None, generation_kwargs={},
    )
    generation.syncs = []
    generation.sync_weights = lambda: generation.syncs.append(trainer.state.global_step)
    trainer.use_vllm, trainer.vllm_generation, trainer._last_loaded_step = True, generation, -1
    trainer.current_gradient_accumulation_steps = 1
    trainer.model.train()
    return trainer


def test_server_mode_rounds_keep_each_row_with_its_own_prompt_completion_and_logprobs(tmp_path, tiny_tokenizer):
    trainer = server_mode_trainer(tiny_tokenizer, tmp_path)
    inputs = [{"prompt": p} for p in PROMPTS for _ in range(NUM_GENERATIONS)]
    batch = trainer._generate_and_score_completions(inputs)

    server = trainer.vllm_generation.vllm_client
    # Round 1: serials a 0-5, b 6-11, c 12-17; correct = serial % 5 == 0. a holds 0 and 5 (2 correct, 4 wrong:
    # balanced, exits); b (10) and c (15) one correct each. Round 2: b 18-23 (20), c 24-29 (25): both exit.
    # One request per active prompt, round_repeat completions each.
    assert server.calls == [(3, ROUND_REPEAT), (2, ROUND_REPEAT)]
    assert trainer._metrics["train"][metric_key("rounds")] == [2.0]
    assert trainer.vllm_generation.syncs == [0]  # weights pushed once for the step's rounds

    tokenizer = tiny_tokenizer
    rows = batch["completion_ids"].size(0)
    assert rows == NUM_GENERATIONS * len(PROMPTS)
    serials = []
    for row in range(rows):
        prompt = batch["prompt_ids"][row][batch["prompt_mask"][row].bool()].tolist()
        completion = text(tokenizer, batch["completion_ids"][row][batch["completion_mask"][row].bool()])
        assert prompt == server.prompt_ids[row // NUM_GENERATIONS]  # the rows keep the input layout, n per prompt
        assert completion[0] == LETTERS[row // NUM_GENERATIONS], (row, prompt, completion)
        serial = int(completion[1:3])
        serials.append(serial)
        assert serial < 30 and (serial < 18 or completion[0] != "a")  # from the rounds its prompt took part in
        length = int(batch["completion_mask"][row].sum())
        assert batch["sampling_per_token_logps"][row][:length].tolist() == pytest.approx([-serial / 100] * length)
    assert len(set(serials)) == rows  # distinct responses
