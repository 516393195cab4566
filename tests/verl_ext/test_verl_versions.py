"""minimal-rl on every supported verl (0.7.1 - 0.9.x): how the plugin gets loaded, what the registration check
tells the user for the installed version, the config-time notice when rejected samples cannot be dropped, and
the module layout of verl_ext (no import circle). These tests run in the shared environment (verl 0.9) and in
the compat environment (`make test-compat-verl`, the oldest supported verl)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from hydra_plugins.minimal_rl_searchpath import filter_notice, verl_host
from hydra_plugins.minimal_rl_searchpath.filter_notice import ZERO_MODE, notice_for_config, notice_for_overrides
from minimal_rl.table import ALGORITHMS, ESTIMATOR_NAMES, SAMPLE_FILTERS
from mrl_verl import HAS_DROP_SAMPLER, LOADS_ENTRY_POINTS, VERL

ROOT = Path(__file__).resolve().parents[2]
OLD, NEW = "0.8.0", "0.9.1"


def _env(**update: str) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "RAY_USAGE_STATS_ENABLED": "0"}
    for key in ("VERL_USE_EXTERNAL_PLUGINS", "VERL_USE_EXTERNAL_MODULES", "RAY_ADDRESS"):
        env.pop(key, None)
    env.update(update)
    return env


def _main_ppo(*args: str, cwd: Path | None = None, **env_update: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "verl.trainer.main_ppo", *args], capture_output=True, text=True, env=_env(**env_update),
        timeout=300, cwd=cwd,
    )


# --------------------------------------------------------------------------------------------
# verl_host: the facts by version
# --------------------------------------------------------------------------------------------


def test_version_facts():
    assert not verl_host.loads_entry_points("0.7.1") and not verl_host.loads_entry_points(OLD)
    assert verl_host.loads_entry_points("0.9.0") and verl_host.loads_entry_points(NEW)
    assert not verl_host.has_drop_sampler(OLD) and verl_host.has_drop_sampler(NEW)
    assert verl_host.unsupported_reason("0.6.1") and verl_host.unsupported_reason("0.10.0")
    assert verl_host.unsupported_reason("0.7.1") is None and verl_host.unsupported_reason("0.9.1.dev0") is None
    assert VERL is not None and verl_host.unsupported_reason(VERL) is None


def test_install_hint_names_the_fix_that_works_for_the_version():
    new, old = verl_host.install_hint(NEW), verl_host.install_hint(OLD)
    assert "pip install minimal-rl[verl]" in new and "VERL_USE_EXTERNAL_PLUGINS" in new
    assert "VERL_USE_EXTERNAL_MODULES" not in new
    assert "pip install minimal-rl[verl]" in old and "VERL_USE_EXTERNAL_PLUGINS" not in old
    assert "verl 0.8.0 loads plugins only through VERL_USE_EXTERNAL_MODULES" in old
    assert verl_host.RUNTIME_ENV_OVERRIDE in old  # the one step for a Ray cluster started elsewhere
    assert verl_host.RUNTIME_ENV_OVERRIDE == "+ray_kwargs.ray_init.runtime_env.env_vars.VERL_USE_EXTERNAL_MODULES=verl_ext"


def test_modules_variable_keeps_the_users_modules():
    env = {}
    assert verl_host.use_modules_variable(env) and env == {"VERL_USE_EXTERNAL_MODULES": "verl_ext"}
    assert not verl_host.use_modules_variable(env) and env["VERL_USE_EXTERNAL_MODULES"] == "verl_ext"
    env = {"VERL_USE_EXTERNAL_MODULES": "my_platform"}
    assert verl_host.use_modules_variable(env) and env["VERL_USE_EXTERNAL_MODULES"] == "my_platform,verl_ext"
    env = {"VERL_USE_EXTERNAL_MODULES": "a, verl_ext"}
    assert not verl_host.use_modules_variable(env)


# --------------------------------------------------------------------------------------------
# The zero-mode notice (issue 17 item 7: the literal command says what it does)
# --------------------------------------------------------------------------------------------


def test_literal_command_notice_on_verl_with_the_sampler():
    notice = notice_for_overrides({"algorithm.adv_estimator": "reinforce_rej"}, NEW)
    assert notice.startswith(f"minimal-rl: algorithm.adv_estimator=reinforce_rej {ZERO_MODE} unless the minimal-rl sampler is configured")
    assert "'drop_uniform'" in notice and "weight 0" in notice
    assert notice.endswith("To drop them instead, add: +minimal_rl=sample_filter")
    # RAFT's own filter is not the filter-only preset's: the override names it
    raft = notice_for_overrides({"algorithm.adv_estimator": "raft"}, NEW)
    assert raft.endswith("add: +minimal_rl=sample_filter algorithm.minimal_rl.sample_filter=drop_wrong")


def test_literal_command_notice_on_old_verl():
    notice = notice_for_overrides({"algorithm.adv_estimator": "reinforce_rej"}, OLD)
    assert f"reinforce_rej {ZERO_MODE}:" in notice
    assert notice.endswith("Dropping them needs verl >= 0.9.0 (the v1 trainer's replay-buffer sampler); verl 0.8.0 is installed.")
    # even an explicit filter_mode=zero or a sampler override: nothing else can happen there
    assert notice_for_overrides({"algorithm.adv_estimator": "reinforce_rej", "algorithm.minimal_rl.filter_mode": "zero"}, OLD)


@pytest.mark.parametrize("values", [
    {"algorithm.adv_estimator": "reinforce_rej", "minimal_rl": "reinforce_rej"},  # a preset: the callback speaks
    {"algorithm.adv_estimator": "reinforce"},  # its filter drops nothing
    {"algorithm.adv_estimator": "grpo"},  # verl's own
    {"algorithm.adv_estimator": "reinforce_rej", "algorithm.minimal_rl.filter_mode": "zero"},  # asked for
    {"algorithm.adv_estimator": "reinforce_rej", "trainer.v1.sampler.custom_sampler.name": "MinimalRLSampler"},
    {"algorithm.adv_estimator": "reinforce_rej", "algorithm.minimal_rl.sample_filter": "none"},
])
def test_no_literal_notice_when_nothing_is_lost(values):
    assert notice_for_overrides(values, NEW) is None


def _config(filter_mode="drop", use_v1=True, sampler=True, estimator="reinforce_rej", sample_filter=None):
    custom = {"path": "pkg://verl_ext.sampler", "name": "MinimalRLSampler"} if sampler else {"path": None, "name": None}
    return {
        "algorithm": {"adv_estimator": estimator, "minimal_rl": {"filter_mode": filter_mode, "sample_filter": sample_filter}},
        "trainer": {"use_v1": use_v1, "v1": {"sampler": {"custom_sampler": custom}}},
    }


def test_config_notice():
    assert notice_for_config(_config(), NEW) is None  # the sampler drops
    assert notice_for_config(_config("zero", sampler=False), NEW) is None  # asked for
    assert notice_for_config(_config(estimator="reinforce"), NEW) is None  # nothing to drop
    legacy = notice_for_config(_config(use_v1=False), NEW)
    assert ZERO_MODE in legacy and "trainer.use_v1=true" in legacy
    unset = notice_for_config(_config(sampler=False, estimator="raft"), NEW)
    assert "not minimal-rl's" in unset and unset.endswith("algorithm.minimal_rl.sample_filter=drop_wrong")
    old = notice_for_config({"algorithm": {"adv_estimator": "raft_pp_is_not_an_estimator"}}, OLD)
    assert old is None
    for mode in ("zero", "drop"):
        old = notice_for_config({"algorithm": {"adv_estimator": "raft", "minimal_rl": {"filter_mode": mode}}}, OLD)
        assert ZERO_MODE in old and "needs verl >= 0.9.0" in old and "verl 0.8.0 is installed" in old


def test_filter_only_preset_filter_is_the_notices():
    text = (ROOT / "verl_ext" / "config" / "minimal_rl" / "sample_filter.yaml").read_text()
    assert yaml.safe_load(text)["algorithm"]["minimal_rl"]["sample_filter"] == filter_notice.FILTER_ONLY_PRESET_FILTER
    # every estimator whose filter drops something gets a notice with a working override
    for name in ESTIMATOR_NAMES:
        notice = notice_for_overrides({"algorithm.adv_estimator": name}, NEW)
        assert (notice is None) == (ALGORITHMS[name].sample_filter == "none"), name
        assert notice is None or SAMPLE_FILTERS[ALGORITHMS[name].sample_filter].drops in notice


def test_literal_command_says_it_once_at_start():
    """`python -m verl.trainer.main_ppo algorithm.adv_estimator=reinforce_rej` (no preset): one notice at
    config composition, naming the override (verl >= 0.9) or the verl it needs."""
    proc = _main_ppo("algorithm.adv_estimator=reinforce_rej", "--cfg", "job")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count(ZERO_MODE) == 1, proc.stderr[-3000:]
    expected = "add: +minimal_rl=sample_filter" if HAS_DROP_SAMPLER else "Dropping them needs verl >= 0.9.0"
    assert expected in proc.stderr
    assert yaml.safe_load(proc.stdout)["algorithm"]["adv_estimator"] == "reinforce_rej"


@pytest.mark.slow
def test_preset_run_resolves_and_says_once_when_it_cannot_drop(tmp_path):
    """A preset through main_ppo with ``--cfg job --resolve`` and the callback (a Hydra app that runs the
    callback and stops in the task function): verl >= 0.9 drops and says nothing; older verl says zero mode once."""
    proc = _main_ppo("+minimal_rl=reinforce_rej", "--cfg", "job", "--resolve")
    assert proc.returncode == 0, proc.stderr[-3000:]
    job = yaml.safe_load(proc.stdout)
    assert job["algorithm"]["minimal_rl"]["filter_mode"] == ("drop" if HAS_DROP_SAMPLER else "zero")
    if HAS_DROP_SAMPLER:
        assert job["trainer"]["v1"]["sampler"]["sampler_kwargs"]["algorithm"] == "reinforce_rej"  # resolved
    else:
        assert "v1" not in job["trainer"]
    # the callback's notice, from a run that starts (RegistrationCheck.on_run_start): a task that exits at once
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent("""
        import sys, hydra, verl
        @hydra.main(config_path=None, config_name=None, version_base=None)
        def main(config):
            print("TASK", config.algorithm.minimal_rl.filter_mode)
        main()
    """))
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "run.yaml").write_text(
        "defaults:\n  - ppo_trainer\n  - minimal_rl: reinforce_rej\n  - _self_\n"
        "hydra:\n  searchpath:\n    - pkg://verl.trainer.config\n"
    )
    run = subprocess.run(
        [sys.executable, str(app), "--config-path", str(conf), "--config-name", "run", f"hydra.run.dir={tmp_path / 'out'}"],
        capture_output=True, text=True, env=_env(), timeout=300, cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    output = run.stdout + run.stderr  # Hydra's job logging (stdout) is configured by the time the callback runs
    assert output.count(ZERO_MODE) == (0 if HAS_DROP_SAMPLER else 1), output[-3000:]
    assert f"TASK {'drop' if HAS_DROP_SAMPLER else 'zero'}" in run.stdout


# --------------------------------------------------------------------------------------------
# Loading and a loud failure, on every version
# --------------------------------------------------------------------------------------------


def test_a_broken_plugin_import_is_reported_with_its_error(tmp_path):
    """verl 0.9 logs a failing plugin at DEBUG only, verl < 0.9 would raise it in every worker: main_ppo stops at
    config time with the underlying error and the fix for the installed verl."""
    shadow = tmp_path / "shadow" / "verl_ext"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('simulated broken dependency xyz')\n")
    pythonpath = os.pathsep.join([str(tmp_path / "shadow"), *filter(None, [os.environ.get("PYTHONPATH")])])
    # cwd away from the checkout: `python -m` puts the working directory first on sys.path
    proc = _main_ppo("algorithm.adv_estimator=reinforce_rej", "--cfg", "job", cwd=tmp_path, PYTHONPATH=pythonpath)
    assert proc.returncode != 0
    assert "MinimalRLNotRegisteredError" in proc.stderr, proc.stderr[-3000:]
    assert "importing verl_ext fails: ImportError: simulated broken dependency xyz" in proc.stderr
    fix = "VERL_USE_EXTERNAL_PLUGINS" if LOADS_ENTRY_POINTS else "loads plugins only through VERL_USE_EXTERNAL_MODULES"
    assert fix in proc.stderr
    assert "ray init" not in proc.stdout


def test_a_run_without_our_names_is_left_alone_by_a_broken_plugin(tmp_path):
    """The same broken plugin must not stop a run that uses nothing of ours (only logged)."""
    shadow = tmp_path / "shadow" / "verl_ext"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('simulated broken dependency xyz')\n")
    pythonpath = os.pathsep.join([str(tmp_path / "shadow"), *filter(None, [os.environ.get("PYTHONPATH")])])
    proc = _main_ppo("algorithm.adv_estimator=grpo", "--cfg", "job", cwd=tmp_path, PYTHONPATH=pythonpath)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow
def test_ray_workers_of_the_driver_register_our_names():
    """The mechanism end to end, minus training: a driver composes a config through Hydra (as main_ppo does; the
    search-path hook runs), starts a local Ray cluster (as main_ppo's run_ppo does) and asks a Ray worker, which
    only does ``import verl``, whether verl knows our estimators and loss. verl >= 0.9: the entry point;
    verl 0.7 / 0.8: VERL_USE_EXTERNAL_MODULES, put into the driver's environment at config time."""
    code = textwrap.dedent("""
        import os, json
        from pathlib import Path
        import ray, verl
        from hydra import compose, initialize_config_dir
        config_dir = str(Path(verl.__file__).parent / "trainer" / "config")
        with initialize_config_dir(config_dir=config_dir, version_base=None):
            compose("ppo_trainer", overrides=["algorithm.adv_estimator=reinforce_rej"])
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)

        @ray.remote
        def probe():
            import verl
            from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY, POLICY_LOSS_REGISTRY
            return sorted(set(ADV_ESTIMATOR_REGISTRY) & {"raft", "reinforce_rej"}), "raft" in POLICY_LOSS_REGISTRY

        print("RESULT" + json.dumps([ray.get(probe.remote()), os.environ.get("VERL_USE_EXTERNAL_MODULES")]))
        ray.shutdown()
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT"))
    import json

    (estimators, loss), modules = json.loads(line[6:])
    assert estimators == ["raft", "reinforce_rej"] and loss is True
    assert modules == (None if LOADS_ENTRY_POINTS else "verl_ext")


# --------------------------------------------------------------------------------------------
# Layout: no import circle in verl_ext (issue 20)
# --------------------------------------------------------------------------------------------


def _intra_package_imports(package: Path) -> dict[str, set[str]]:
    """module -> the verl_ext modules it imports (relative or absolute, at any depth of the file)."""
    graph: dict[str, set[str]] = {}
    for path in package.glob("*.py"):
        module = path.stem
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level == 1:
                    names = [node.module] if node.module else [a.name for a in node.names]
                elif node.module and node.module.startswith("verl_ext."):
                    names = [node.module.split(".")[1]]
                elif node.module == "verl_ext":
                    names = [a.name for a in node.names]
                else:
                    names = []
                targets |= {n.split(".")[0] for n in names if n}
            elif isinstance(node, ast.Import):
                targets |= {a.name.split(".")[1] for a in node.names if a.name.startswith("verl_ext.")}
        graph[module] = {t for t in targets if (package / f"{t}.py").exists() and t != module}
    return graph


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` (module -> imported modules), or None."""

    def visit(node, stack):
        if node in stack:
            return [*stack[stack.index(node):], node]
        for target in sorted(graph.get(node, ())):
            circle = visit(target, [*stack, node])
            if circle:
                return circle
        return None

    for module in sorted(graph):
        circle = visit(module, [])
        if circle:
            return circle
    return None


def test_no_import_circle_in_verl_ext():
    graph = _intra_package_imports(ROOT / "verl_ext")
    graph.pop("__init__", None)  # the package imports its parts; parts never import the package
    assert {"selection", "sampler", "refill"} <= set(graph)
    assert "filter_state" not in graph  # issue 20: the config-time check replaced the process-global flag
    assert "selection" in graph["sampler"] and "selection" in graph["refill"]
    assert "sampler" not in graph["refill"] and not graph["selection"] & {"sampler", "refill"}
    assert find_circle(graph) is None, " -> ".join(find_circle(graph))


def test_the_circle_check_finds_a_circle(tmp_path):
    """Even through an import inside a function (what sampler.py and refill.py did before)."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "a.py").write_text("from .b import x\n")
    (package / "b.py").write_text("def f():\n    from .a import y\n")
    (package / "c.py").write_text("import os\n")
    graph = _intra_package_imports(package)
    assert graph == {"a": {"b"}, "b": {"a"}, "c": set()}
    assert find_circle(graph) == ["a", "b", "a"]
