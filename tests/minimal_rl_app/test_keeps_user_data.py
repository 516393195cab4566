"""`--overwrite` checks the whole command first, then removes exactly the files minimal-rl listed in its
manifest (minimal-rl-files.json) and nothing else; `prepare-data` never replaces an output silently."""

import json
import shutil

import pytest

from minimal_rl_app.cli import main
from minimal_rl_app.outputs import MANIFEST, OutputDir

from mrl_testing import tiny_run_args

TINY_ARGS = tiny_run_args()



@pytest.fixture(scope="module")
def finished_run(cache, tmp_path_factory):
    """One finished two-step train run (copied by each test)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main(["train", "--cache-dir", cache, "--output-dir", str(out), "--save-every", "2", *TINY_ARGS]) == 0
    return out


def tree(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def run_copy(finished_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    return out


def test_the_manifest_lists_every_file_the_run_wrote(run_copy):
    listed = set(OutputDir(run_copy).files)
    on_disk = set(tree(run_copy)) - {MANIFEST}
    assert listed == on_disk
    assert {"metrics.json", "metrics.png", "heldout.jsonl", "model/config.json", "model/minimal-rl.json"} <= listed
    assert any(f.startswith("trl/checkpoint-2/") for f in listed)


@pytest.mark.parametrize("bad", [
    ["--dataset", "x.jsonl"],                                   # --dataset without --model
    ["--mini-batches", "2", "--prompts-per-step", "3", "--num-generations", "3"],  # 9 samples in 2 mini-batches
    ["--model", "/nonexistent", "--dataset", "x.jsonl"],
    ["--save-every", "3"],                                      # not a multiple of --mini-batches 2
    ["--overwrite", "--resume"],
])
def test_overwrite_with_a_bad_command_deletes_nothing(run_copy, cache, capsys, bad):
    before = tree(run_copy)
    assert main(["train", "--cache-dir", cache, "--output-dir", str(run_copy), "--overwrite", *TINY_ARGS, *bad]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("minimal-rl train: error:"), err
    assert tree(run_copy) == before


def test_overwrite_removes_only_listed_files(run_copy, cache):
    user_files = {
        "model/my_weights.bin": b"mine", "sub/model/keep.bin": b"keep", "sub/trl/ckpt.bin": b"ckpt",
        "sub/metrics.json": b'{"a run of mine": 1}', "notes.txt": b"notes", "trl/my_checkpoint/x.pt": b"x",
    }
    for rel, data in user_files.items():
        (run_copy / rel).parent.mkdir(parents=True, exist_ok=True)
        (run_copy / rel).write_bytes(data)
    old_metrics = json.loads((run_copy / "metrics.json").read_text())
    assert main(["train", "--cache-dir", cache, "--output-dir", str(run_copy), "--overwrite", "--seed", "1", *TINY_ARGS]) == 0
    after = tree(run_copy)
    for rel, data in user_files.items():
        assert after[rel] == data, rel
    new_metrics = json.loads((run_copy / "metrics.json").read_text())
    assert new_metrics["status"] == "complete" and new_metrics["settings"]["seed"] == 1 != old_metrics["settings"]["seed"]
    assert not set(user_files) & set(OutputDir(run_copy).files)


def test_without_overwrite_an_earlier_run_is_refused(run_copy, cache, capsys):
    before = tree(run_copy)
    assert main(["train", "--cache-dir", cache, "--output-dir", str(run_copy), *TINY_ARGS]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds results" in err[0] and "--overwrite" in err[0]
    assert tree(run_copy) == before


def test_files_minimal_rl_did_not_write_are_refused_even_with_overwrite(cache, tmp_path, capsys):
    out = tmp_path / "mine"
    (out / "model").mkdir(parents=True)
    (out / "metrics.json").write_text('{"mine": 1}')
    (out / "model" / "weights.bin").write_bytes(b"w")
    before = tree(out)
    assert main(["train", "--cache-dir", cache, "--output-dir", str(out), "--overwrite", *TINY_ARGS]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "did not write" in err[0] and "metrics.json" in err[0] and "minimal-rl-files.json" in err[0]
    assert tree(out) == before


def test_a_folder_with_unrelated_files_is_used_and_they_stay(cache, tmp_path):
    out = tmp_path / "shared"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert main(["train", "--cache-dir", cache, "--output-dir", str(out), "--save-every", "0", *TINY_ARGS]) == 0
    assert (out / "notes.txt").read_text() == "keep me" and "notes.txt" not in OutputDir(out).files


def test_compare_overwrite_leaves_other_subfolders(cache, tmp_path):
    out = tmp_path / "cmp"
    argv = ["compare", "--algorithms", "raft", "--cache-dir", cache, "--output-dir", str(out), "--save-every", "0", *TINY_ARGS]
    assert main(argv) == 0
    (out / "sub" / "model").mkdir(parents=True)
    (out / "sub" / "model" / "keep.bin").write_bytes(b"keep")
    (out / "sub" / "metrics.json").write_text("{}")
    (out / "raft" / "model" / "my_weights.bin").write_bytes(b"mine")
    assert main(argv) == 2  # refused without --overwrite
    assert main([*argv, "--overwrite"]) == 0
    assert (out / "sub" / "model" / "keep.bin").read_bytes() == b"keep" and (out / "sub" / "metrics.json").read_text() == "{}"
    assert (out / "raft" / "model" / "my_weights.bin").read_bytes() == b"mine"
    assert json.loads((out / "raft" / "metrics.json").read_text())["status"] == "complete"


def test_prepare_data_refuses_an_existing_output_without_overwrite(tmp_path, capsys):
    pytest.importorskip("math_verify")
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps({"problem": f"{a}+1=", "answer": str(a + 1)}) + "\n" for a in range(5)))
    argv = ["prepare-data", "math500", "--input", str(data), "--output-dir", str(tmp_path / "out"), "--format", "verl"]
    assert main(argv) == 0
    folder = tmp_path / "out" / "math500"
    (folder / "mine.txt").write_text("mine")
    before = tree(folder)
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds results" in err[0] and "--overwrite" in err[0]
    assert tree(folder) == before
    data.write_text(data.read_text() + json.dumps({"problem": "9+1=", "answer": "10"}) + "\n")
    assert main([*argv, "--overwrite"]) == 0
    assert json.loads((folder / "summary_test.json").read_text())["rows_written"] == 6
    assert (folder / "mine.txt").read_text() == "mine"


def test_clear_removes_only_the_listed_files_of_the_planned_places(tmp_path):
    out = OutputDir(tmp_path)
    for rel in ("raft/metrics.json", "raft/model/w.bin", "grpo/metrics.json", "metrics.json"):
        out.add(rel)
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    (tmp_path / "raft" / "model" / "mine.bin").write_text("mine")
    out.clear(["raft/metrics.json", "raft/model"])
    assert sorted(OutputDir(tmp_path).files) == ["grpo/metrics.json", "metrics.json"]
    assert (tmp_path / "raft" / "model" / "mine.bin").read_text() == "mine"
    assert not (tmp_path / "raft" / "metrics.json").exists() and (tmp_path / "grpo" / "metrics.json").exists()
    out.clear(["grpo/metrics.json"])
    assert not (tmp_path / "grpo").exists()  # a folder left empty by the removal goes too
