"""Every bad input gets one line on stderr and exit status 2 (argparse's own errors: usage + one line), no
traceback, and nothing written or deleted."""

import json

import pytest

from minimal_rl_app.cli import main

from mrl_testing import tiny_run_args

TINY_ARGS = tiny_run_args()
BAD_JSONL = {
    "a JSON string": (b'{"problem": "1+1=", "answer": "2"}\n"just a string"\n', ":2: expected a JSON object"),
    "a JSON number": (b"42\n", ":1: expected a JSON object"),
    "invalid UTF-8": (b'{"problem": "1+1=", "answer": "2"}\n{"problem": "\xff\xfe", "answer": "1"}\n', ":2: not valid UTF-8"),
    "null problem and answer": (b'{"problem": null, "answer": null}\n', ":1: `problem` is null"),
    "null answer": (b'{"problem": "1+1=", "answer": null}\n', ":1: `answer` is null"),
    "missing answer": (b'{"problem": "1+1="}\n', ":1: `answer` is missing"),
    "not JSON": (b"{oops\n", ":1: not valid JSON"),
    "empty file": (b"\n", "has no rows"),
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from minimal_rl_app.demo.model import ModelConfig, build_model, build_tokenizer

    path = tmp_path_factory.mktemp("model") / "m"
    tok = build_tokenizer()
    build_model(tok, ModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def one_error_line(capsys, command):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"minimal-rl {command}: error: "), lines
    return lines[0]


@pytest.mark.parametrize("case", list(BAD_JSONL))
def test_eval_rejects_malformed_jsonl(case, tmp_path, capsys, model_dir):
    content, message = BAD_JSONL[case]
    data = tmp_path / "bench.jsonl"
    data.write_bytes(content)
    out = tmp_path / "res.json"
    assert main(["eval", "--model", str(model_dir), "--data", str(data), "--output", str(out), "--no-progress"]) == 2
    line = one_error_line(capsys, "eval")
    assert message in line and "bench.jsonl" in line
    assert not out.exists()


@pytest.mark.parametrize("case", ["a JSON string", "invalid UTF-8", "null answer"])
def test_train_rejects_malformed_dataset(case, tmp_path, capsys, model_dir):
    content, message = BAD_JSONL[case]
    data = tmp_path / "train.jsonl"
    data.write_bytes(content)
    out = tmp_path / "run"
    assert main(["train", "--model", str(model_dir), "--dataset", str(data), "--output-dir", str(out), *TINY_ARGS[3:]]) == 2
    assert message in one_error_line(capsys, "train")
    assert not out.exists()


@pytest.fixture
def good_data(tmp_path):
    data = tmp_path / "bench.jsonl"
    data.write_text("".join(json.dumps({"problem": f"{a}+1=", "answer": str(a + 1)}) + "\n" for a in range(300)))
    return data


def test_eval_checks_output_before_evaluating(good_data, tmp_path, capsys, model_dir, monkeypatch):
    import minimal_rl_app.evaluation as evaluation

    def must_not_run(*a, **k):
        raise AssertionError("evaluated before checking --output")

    monkeypatch.setattr(evaluation, "evaluate_benchmarks", must_not_run)
    base = ["eval", "--model", str(model_dir), "--data", str(good_data), "--no-progress"]
    assert main([*base, "--output", str(tmp_path / "missing" / "res.json")]) == 2
    assert "does not exist" in one_error_line(capsys, "eval")
    assert main([*base, "--output", "/proc/res.json"]) == 2  # a folder nobody (not even root) can write in
    assert "not writable" in one_error_line(capsys, "eval")
    assert main([*base, "--output", str(tmp_path)]) == 2
    assert "is a folder" in one_error_line(capsys, "eval")


@pytest.mark.parametrize("command", ["eval", "train"])
def test_missing_model_folder_says_so(command, good_data, tmp_path, capsys):
    argv = (["eval", "--model", "/nonexistent", "--data", str(good_data)] if command == "eval" else
            ["train", "--model", "/nonexistent", "--dataset", str(good_data), "--output-dir", str(tmp_path / "o")])
    assert main(argv) == 2
    assert "--model /nonexistent: no such folder" in one_error_line(capsys, command)
    assert not (tmp_path / "o").exists()


def test_unknown_hub_model_offline_is_one_line(good_data, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    argv = ["train", "--model", "no-such-org/no-such-model", "--dataset", str(good_data), "--output-dir", str(tmp_path / "o")]
    assert main(argv) == 2
    assert "--model no-such-org/no-such-model: cannot load it" in one_error_line(capsys, "train")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("output_dir, message", [
    ("/proc/minimal-rl-test/run", "is not writable"),  # cannot be created, not even by root
    ("FILE", "exists and is not a folder"),
])
def test_unwritable_output_dir(output_dir, message, tmp_path, capsys):
    if output_dir == "FILE":
        output_dir = str(tmp_path / "a-file")
        (tmp_path / "a-file").write_text("x")
    assert main(["train", "--output-dir", output_dir, *TINY_ARGS]) == 2
    assert message in one_error_line(capsys, "train")


def test_ctrl_c_during_the_warm_start_is_a_clean_message(tmp_path, capsys, monkeypatch):
    import minimal_rl_app.demo.warmstart as warmstart

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(warmstart, "supervised_warmstart", interrupted)
    out, cache = tmp_path / "run", tmp_path / "cache"
    argv = ["train", "--cache-dir", str(cache), "--output-dir", str(out), *TINY_ARGS]
    argv[argv.index("--warmstart-max-steps") + 1] = "5"
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and "interrupted while building the demo model" in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists() and not list(cache.glob("demo-*"))


PREPARE_BAD = {
    "non-object lines": (b'"a string"\n', "expected a JSON object"),
    "empty file": (b"", "nothing to write"),
    "null fields": (b'{"problem": null, "answer": null}\n', "nothing to write"),
    "invalid UTF-8": (b'{"problem": "\xff", "answer": "1"}\n', ":1: not valid UTF-8"),
    "not JSON": (b'{"problem": "1", "answer": "1"}\nnope\n', ":2: not valid JSON"),
}


@pytest.mark.parametrize("case", list(PREPARE_BAD))
def test_prepare_data_rejects_malformed_input(case, tmp_path, capsys):
    content, message = PREPARE_BAD[case]
    src = tmp_path / "in.jsonl"
    src.write_bytes(content)
    out = tmp_path / "out"
    assert main(["prepare-data", "math500", "--input", str(src), "--output-dir", str(out), "--answer-check", "none"]) == 2
    assert message in one_error_line(capsys, "prepare-data")
    assert not out.exists()


def test_prepare_data_missing_input_and_bad_numbers(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["prepare-data", "math500", "--input", str(tmp_path / "nope.jsonl"), "--output-dir", str(out)]) == 2
    assert "no such file" in one_error_line(capsys, "prepare-data")
    for flag in ("--limit", "--num-proc"):
        with pytest.raises(SystemExit) as exc:
            main(["prepare-data", "math500", "--input", "x.jsonl", flag, "-3"])
        assert exc.value.code == 2
        assert "expected a positive integer, got -3" in capsys.readouterr().err.strip().splitlines()[-1]
    assert not out.exists()
