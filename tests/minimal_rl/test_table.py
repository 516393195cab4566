"""The core's one table: properties, derived name lists, dependency-free import, and the layer rule."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from minimal_rl.table import (
    ALGORITHMS,
    ESTIMATOR_NAMES,
    SAMPLE_FILTERS,
    algorithms_of,
    estimator_of_preset,
    get_algorithm,
    get_sample_filter,
    preset_names,
)


def test_every_algorithm_is_a_weights_filter_loss_triple_of_known_names():
    from minimal_rl.table import FAMILIES, LOSSES, WEIGHT_EQUATIONS

    for spec in ALGORITHMS.values():
        assert spec.weights in WEIGHT_EQUATIONS and spec.sample_filter in SAMPLE_FILTERS and spec.loss in LOSSES
        assert spec.family in FAMILIES and spec.estimator in ALGORITHMS
        if spec.variant_of is not None:
            base = ALGORITHMS[spec.variant_of]
            assert (spec.weights, spec.sample_filter, spec.loss) == (base.weights, base.sample_filter, base.loss)
            assert spec.clip_ratio_high is not None


def test_the_paper_rows():
    assert (ALGORITHMS["raft"].loss, ALGORITHMS["raft_pp"].loss) == ("nll", "ppo_clip")
    assert ALGORITHMS["reinforce_rej"].sample_filter == "drop_uniform"
    assert ALGORITHMS["raft_pp_clip_higher"].clip_ratio_high == 0.28
    assert ALGORITHMS["raft_pp_no_clip"].clip_ratio_high == 1e9
    assert ALGORITHMS["raft"].can_reject_whole_groups and not ALGORITHMS["reinforce"].can_reject_whole_groups
    assert SAMPLE_FILTERS["drop_wrong"].unit == "response" and SAMPLE_FILTERS["drop_uniform"].unit == "group"


def test_derived_name_lists():
    assert ESTIMATOR_NAMES == (
        "raft", "reinforce", "reinforce_rej", "reinforce_rej_std", "reinforce_remove_all_wrong",
        "reinforce_remove_all_correct", "reinforce_mean_zero", "reinforce_ada_balance", "reinforce_ada_pos",
    )
    assert algorithms_of("raft") == ("raft", "raft_pp", "raft_pp_clip_higher", "raft_pp_no_clip")
    # every row but verl's own GRPO is a verl preset (Reinforce-Ada's: verl >=0.9.1,<0.10, verl_ext/adaptive_rollout.py)
    assert set(preset_names()) == set(ALGORITHMS) - {"grpo"} | {"sample_filter"}
    assert estimator_of_preset("raft_pp_no_clip") == "raft" and estimator_of_preset("sample_filter") is None


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="choose one of: raft, raft_pp"):
        get_algorithm("rafts")
    with pytest.raises(ValueError, match="choose one of: none, drop_wrong, drop_all_wrong"):
        get_sample_filter("drop")


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)


def test_the_table_imports_only_the_standard_library():
    """The Hydra plugin imports it at config composition: no torch, numpy, verl or trl."""
    out = _run(
        """
        import sys
        import minimal_rl.table
        heavy = sorted(m for m in ("torch", "numpy", "verl", "trl", "transformers") if m in sys.modules)
        print(heavy)
        """
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_core_works_with_frameworks_and_adapters_unimportable():
    """Three layers, imports pointing down: the core (minimal_rl) never needs verl, trl or the adapters."""
    out = _run(
        """
        import importlib, pkgutil, sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("verl", "trl", "verl_ext", "trl_ext", "minimal_rl_app", "vllm"):
                    raise ImportError(f"blocked: {name}")
        sys.meta_path.insert(0, Block())
        import minimal_rl, torch
        for mod in pkgutil.walk_packages(minimal_rl.__path__, "minimal_rl."):
            importlib.import_module(mod.name)
        from minimal_rl import compute_weights
        r = compute_weights(torch.tensor([1.0, 0.0, 1.0, 1.0]), "reinforce_rej", ["a", "a", "b", "b"])
        print(r.weights.tolist())
        """
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[1.0, -1.0, 0.0, 0.0]"


def test_adaptive_rows_sample_in_both_hosts_and_nowhere_else():
    """trl_ext and verl_ext sample Reinforce-Ada's rounds; a host that does not refuses them, naming what is missing."""
    from minimal_rl.table import check_host_sampling, host_can_sample

    for name in ("reinforce_ada_balance", "reinforce_ada_pos"):
        for host in ("trl_ext", "verl_ext"):
            assert host_can_sample(name, host)
            check_host_sampling(name, host)
        with pytest.raises(ValueError, match="needs adaptive multi-round sampling.*other_host has no adaptive sampling"):
            check_host_sampling(name, "other_host")
    assert host_can_sample("reinforce_rej", "other_host") and host_can_sample("ppo_gae_or_any_host_name", "other_host")


def test_a_host_without_adaptive_sampling_points_to_the_doc_that_says_why():
    """The refusal names the doc with the evidence; the doc exists and no host that samples has one."""
    from pathlib import Path

    from minimal_rl.table import ADAPTIVE_SAMPLING_GAPS, ADAPTIVE_SAMPLING_HOSTS, check_host_sampling

    repo = Path(__file__).resolve().parents[2]
    assert not set(ADAPTIVE_SAMPLING_GAPS) & ADAPTIVE_SAMPLING_HOSTS
    for host, doc in ADAPTIVE_SAMPLING_GAPS.items():
        assert (repo / doc).is_file(), doc
        pointer = f"{host} has no adaptive sampling \\(why, and what it would take: {doc}\\)"
        with pytest.raises(ValueError, match=pointer):
            check_host_sampling("reinforce_ada_pos", host)
    with pytest.raises(ValueError) as err:  # a host with no doc gets the message without the pointer
        check_host_sampling("reinforce_ada_pos", "some_host")
    assert "some_host has no adaptive sampling, and" in str(err.value)
