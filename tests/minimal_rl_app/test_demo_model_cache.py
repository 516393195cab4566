"""Offline tokenizer and tiny model, the warm-start's stopping rule, and the cache (reuse, corruption)."""

import json
import subprocess
import sys

import pytest
import torch

from minimal_rl_app.demo.model import ModelConfig, build_model, build_tokenizer
from minimal_rl_app.demo.task import TaskConfig
from minimal_rl_app.demo.warmstart import CACHE_ENV, WarmStartConfig, default_cache_dir, load_or_build

TINY = ModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)
TINY_TASK = TaskConfig(num_heldout=64)


def test_tokenizer_round_trip_and_chat_template_offline(tmp_path):
    from transformers import AutoTokenizer

    tok = build_tokenizer()
    text = "\\boxed{95} Let's think: 3/4 + x_1^2 = {y}\n"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text)  # one token per character
    assert tok.decode(ids) == text
    prompt = tok.apply_chat_template([{"role": "user", "content": "37+58="}], tokenize=False, add_generation_prompt=True)
    assert prompt == "<s><|user|>37+58=<|assistant|>"
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path, local_files_only=True)
    assert again(text, add_special_tokens=False)["input_ids"] == ids
    assert again.apply_chat_template([{"role": "user", "content": "37+58="}], tokenize=False, add_generation_prompt=True) == prompt
    assert (again.pad_token, again.eos_token, again.padding_side) == ("<pad>", "</s>", "left")


def test_model_size_and_forward():
    tok = build_tokenizer()
    model = build_model(tok)
    assert 0.5e6 < sum(p.numel() for p in model.parameters()) < 0.6e6  # the 0.54M model of the notes
    logits = model(input_ids=torch.tensor([[1, 5, 28]])).logits
    assert logits.shape == (1, 3, len(tok)) and torch.isfinite(logits).all()


def test_import_minimal_rl_stays_free_of_transformers_and_trl():
    code = (
        "import sys, minimal_rl, minimal_rl_app.demo.task, minimal_rl_app.demo.model, minimal_rl_app.demo.warmstart, "
        "minimal_rl_app.evaluation, minimal_rl_app.plots, minimal_rl_app.cli; minimal_rl_app.cli.build_parser(); "
        "bad = [m for m in ('transformers', 'trl', 'tokenizers', 'matplotlib', 'verl') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_default_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"


def test_warmstart_stops_on_measured_accuracy(tmp_path):
    # target 0.0 is met by the first check (after warm-up): the run must stop there, not at max_steps.
    warm = WarmStartConfig(target_accuracy=0.0, warmup_steps=4, check_every=4, check_every_close=4, max_steps=50, batch_size=8, check_problems=8)
    b = load_or_build(tmp_path, TINY_TASK, TINY, warm, progress=False, log=lambda s: None)
    assert b.manifest["warmstart"]["steps"] == 4
    assert b.manifest["warmstart"]["history"][0]["step"] == 4


def test_cache_is_reused_and_corruption_is_rebuilt(tmp_path):
    warm = WarmStartConfig(max_steps=0)
    messages = []
    b1 = load_or_build(tmp_path, TINY_TASK, TINY, warm, progress=False, log=messages.append)
    assert any("building" in m for m in messages)
    messages.clear()
    b2 = load_or_build(tmp_path, TINY_TASK, TINY, warm, progress=False, log=messages.append)
    assert b2.path == b1.path and not messages  # reused silently

    weights = next(b1.path.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:100])  # truncated file
    b3 = load_or_build(tmp_path, TINY_TASK, TINY, warm, progress=False, log=messages.append)
    assert any("corrupt" in m and "checksum" in m for m in messages)
    assert torch.isfinite(b3.model(input_ids=torch.tensor([[1, 5]])).logits).all()

    messages.clear()
    manifest = json.loads((b3.path / "manifest.json").read_text())
    (b3.path / "manifest.json").write_text("{not json")
    load_or_build(tmp_path, TINY_TASK, TINY, warm, progress=False, log=messages.append)
    assert any("corrupt" in m for m in messages)
    assert json.loads((b3.path / "manifest.json").read_text())["files"].keys() == manifest["files"].keys()

    # A tampered file whose checksum is "fixed" must still fail the load test.
    messages.clear()
    (b3.path / "config.json").write_text("{}")
    m = json.loads((b3.path / "manifest.json").read_text())
    import hashlib

    m["files"]["config.json"] = hashlib.sha256(b"{}").hexdigest()
    (b3.path / "manifest.json").write_text(json.dumps(m))
    load_or_build(tmp_path, TINY_TASK, TINY, warm, progress=False, log=messages.append)
    assert any("load test failed" in m for m in messages)


@pytest.mark.slow
def test_real_warmstart_lands_in_the_band(tmp_path):
    """The default warm-start (~1 min here) stops inside 20-50% sampled accuracy, well before max_steps."""
    b = load_or_build(tmp_path, progress=False, log=lambda s: None)
    report = b.manifest["warmstart"]
    assert 0.20 <= report["accuracy"] <= 0.50
    assert report["steps"] < WarmStartConfig().max_steps
    # The cached model really is that good: re-measure on other held-out problems.
    from minimal_rl_app.heldout import evaluate_heldout

    acc = evaluate_heldout(b.model, b.tokenizer, b.splits.heldout[256:512], samples_per_problem=2, seed=5)["heldout_accuracy"]
    assert 0.15 <= acc <= 0.55
