"""Run the stock ``python -m verl.trainer.main_ppo`` end to end on this CPU machine, as a user would.

    assets = build_demo_assets(folder)                       # once per session (conftest fixture)
    run = run_main_ppo("reinforce_rej", assets, run_dir, steps=3, extra_overrides=["trainer.save_freq=3"])
    run.check()                                              # exit 0, else the output's tail
    run.metric("sample_filter/samples_dropped")                 # {1: 12.0, 2: 8.0, 3: 4.0}
    resumed = run_main_ppo("reinforce_rej", assets, run_dir2, steps=1, resume=run)

Per-step metrics come from verl's own ``file`` logger backend (``trainer.logger=[console,file]``,
``VERL_FILE_LOGGER_PATH``): one JSON line per step, ``{"step": n, "data": {metric: value}}``.

Everything here is test support (tests/e2e, never in the wheel). The CPU workarounds are in
`cpu_platform` (imported by every verl process) and in `cpu_env` / `CPU_OVERRIDES` below, one comment
each naming the limitation.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

SUPPORT_DIR = Path(__file__).resolve().parents[1]  # tests/e2e/support: on PYTHONPATH of every verl process
PLATFORM_MODULE = "minimal_rl_e2e.cpu_platform"

# Demo problems per split: enough prompts for every run of a session (data.shuffle=false, one epoch covers 8
# steps of 8 prompts, or one of the drop-vs-zero runs' 64; later steps start a new epoch, which is fine).
TRAIN_PROMPTS = 64
VAL_PROMPTS = 8
PROMPTS_PER_STEP = 8
SAMPLES_PER_PROMPT = 4  # the presets' rollout.n
MAX_PROMPT_TOKENS = 16  # "<s><|user|>37+58=<|assistant|>" is 9 tokens (character tokenizer)
MAX_RESPONSE_TOKENS = 16  # "\boxed{95}</s>" is 11; the warm-started model stops there

# The messages a run prints when rejected samples cannot be dropped (minimal-rl's config-time notice,
# hydra_plugins/minimal_rl_searchpath/filter_notice.py ZERO_MODE), or when the Hydra callback is not a
# proper Hydra Callback: the preset runs assert both are absent.
ZERO_MODE_FALLBACK = "filters in zero mode"
HYDRA_CALLBACK_WARNING = re.compile(r"Callback RegistrationCheck\.\w+ raised")


# Every run of this session, for the terminal summary (conftest.py) and the notes: (kind, name, exit
# status, wall seconds, steps logged, folder).
RUNS: list[tuple[str, str, int, float, list[int], Path]] = []
# Measured tables (e.g. drop vs zero) the tests add; printed in the terminal summary.
REPORTS: list[str] = []


def record_run(kind: str, name: str, returncode: int, wall_s: float, steps: Iterable[int], folder: Path) -> None:
    RUNS.append((kind, name, returncode, wall_s, sorted(steps), folder))


def summary_lines() -> list[str]:
    total = sum(r[3] for r in RUNS)
    lines = [f"{kind:8s} {name:28s} exit {rc:>3}  {wall:7.1f} s  steps {steps}  {folder}" for kind, name, rc, wall, steps, folder in RUNS]
    return lines + [f"{len(RUNS)} runs, {total:.0f} s in all"]


@dataclass(frozen=True)
class DemoAssets:
    """The embedded demo model (warm-started, saved as an HF folder) and demo problems as verl parquet."""

    model_dir: Path
    train_parquet: Path
    val_parquet: Path
    warmstart_accuracy: float


def demo_row(problem: str, answer: str, index: int, split: str) -> dict:
    """One row of verl's RL parquet (`minimal_rl.data.verl_row`) with the demo's prompt: the bare problem as
    one user turn, what the warm-started model was trained on."""
    from minimal_rl.data import verl_row
    from minimal_rl_app.demo.evaluate import demo_messages

    return {**verl_row(problem, answer, index, "minimal_rl_demo", split), "prompt": demo_messages(problem)}


def build_demo_assets(folder: Path, cache_dir: Path | None = None) -> DemoAssets:
    """Warm-start (or load from the project's cache) the demo model, copy it to ``folder/model`` and write
    the train / validation parquet files. The warm-started model (~30% sampled accuracy) gives mostly
    mixed groups of 4, and some all-wrong ones: both estimators keep and drop samples."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from minimal_rl_app.demo.warmstart import load_or_build

    folder.mkdir(parents=True, exist_ok=True)
    bundle = load_or_build(cache_dir, progress=False)
    model_dir = folder / "model"
    shutil.rmtree(model_dir, ignore_errors=True)
    shutil.copytree(bundle.path, model_dir)
    paths = {}
    for split, problems in (("train", bundle.splits.train[:TRAIN_PROMPTS]), ("test", bundle.splits.heldout[:VAL_PROMPTS])):
        rows = [demo_row(p.problem, p.answer, i, split) for i, p in enumerate(problems)]
        paths[split] = folder / f"{split}.parquet"
        pq.write_table(pa.Table.from_pylist(rows), paths[split])
    return DemoAssets(model_dir, paths["train"], paths["test"], bundle.warmstart_accuracy)


def cpu_env(base: dict | None = None) -> dict[str, str]:
    """The environment of a CPU ``main_ppo`` run (inherited by Ray and every worker it starts)."""
    env = dict(os.environ if base is None else base)
    env.update(
        {
            # verl has no CPU platform: ours, registered through verl's own mechanisms (cpu_platform.py)
            "VERL_USE_EXTERNAL_MODULES": PLATFORM_MODULE,
            "VERL_PLATFORM": "cpu",
            "PYTHONPATH": os.pathsep.join([str(SUPPORT_DIR), *filter(None, [env.get("PYTHONPATH")])]),
            # verl registers its FSDP engine for device "cuda"/"npu" only; this verl variable picks it
            "VERL_ENGINE_DEVICE": "cuda",
            # vLLM's CPU backend: a 1 GiB KV cache instead of its default share of host memory, and no
            # pinning of OpenMP threads to cores (the cores are shared with the other processes)
            "VLLM_CPU_KVCACHE_SPACE": "1",
            "VLLM_CPU_OMP_THREADS_BIND": "nobind",
            "OMP_NUM_THREADS": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "HF_HUB_OFFLINE": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_DEDUP_LOGS": "0",  # every worker's lines reach the output the test reads
            "TRL_EXPERIMENTAL_SILENCE": "1",
            "WANDB_MODE": "disabled",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.pop("VERL_USE_EXTERNAL_PLUGINS", None)  # our plugin loads through its entry point, as for users
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return env


# Overrides every CPU run needs, each for a reason (the rest of the run is the preset's and verl's).
CPU_OVERRIDES: tuple[str, ...] = (
    # one "GPU" (Ray resource, see cpu_platform.py) on one node; Ray's CPU count is logical: each worker
    # bundle asks for several CPUs, so declare more than the 2 real cores
    "trainer.device=cpu",
    "trainer.nnodes=1",
    "trainer.n_gpus_per_node=1",
    "+ray_kwargs.ray_init.num_gpus=1",
    "ray_kwargs.ray_init.num_cpus=16",
    # start-up time on 2 cores: Ray's dashboard is a dozen processes that import at start
    "+ray_kwargs.ray_init.include_dashboard=false",
    # FSDP1 needs an accelerator ("Cannot access accelerator device"); FSDP2 runs on CPU with gloo
    "actor_rollout_ref.actor.strategy=fsdp2",
    "actor_rollout_ref.ref.strategy=fsdp2",
    # no flash-attn on CPU: torch's sdpa (remove-padding, the presets' setting, works with it)
    "+actor_rollout_ref.model.override_config.attn_implementation=sdpa",
    # vLLM on CPU: no sleep mode / CUDA graphs, little memory, short sequences, one replica
    "actor_rollout_ref.rollout.name=vllm",
    "actor_rollout_ref.rollout.tensor_model_parallel_size=1",
    "+actor_rollout_ref.rollout.enable_sleep_mode=false",
    "actor_rollout_ref.rollout.free_cache_engine=false",
    "actor_rollout_ref.rollout.enforce_eager=true",
    "actor_rollout_ref.rollout.gpu_memory_utilization=0.1",
    f"actor_rollout_ref.rollout.max_model_len={4 * (MAX_PROMPT_TOKENS + MAX_RESPONSE_TOKENS)}",
    "actor_rollout_ref.rollout.max_num_batched_tokens=1024",
    "actor_rollout_ref.rollout.max_num_seqs=64",
    # start-up time on 2 cores: one process per role where verl would start several, no compilation,
    # no gradient checkpointing (a 0.54M-parameter model)
    "actor_rollout_ref.rollout.agent.num_workers=1",
    "reward.num_workers=1",
    "data.dataloader_num_workers=0",
    "transfer_queue.backend.SimpleStorage.num_data_storage_units=1",
    "actor_rollout_ref.actor.use_torch_compile=false",
    "actor_rollout_ref.actor.fsdp_config.use_torch_compile=false",
    "actor_rollout_ref.ref.fsdp_config.use_torch_compile=false",
    "actor_rollout_ref.model.enable_gradient_checkpointing=false",
)


def demo_overrides(assets: DemoAssets) -> list[str]:
    """Model, data and batch sizes of the demo runs: 8 prompts x 4 samples per step, one mini-batch."""
    rows = PROMPTS_PER_STEP * SAMPLES_PER_PROMPT
    return [
        f"actor_rollout_ref.model.path={assets.model_dir}",
        f"data.train_files={assets.train_parquet}",
        f"data.val_files={assets.val_parquet}",
        f"data.train_batch_size={PROMPTS_PER_STEP}",
        f"data.max_prompt_length={MAX_PROMPT_TOKENS}",
        f"data.max_response_length={MAX_RESPONSE_TOKENS}",
        "data.shuffle=false",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={PROMPTS_PER_STEP}",
        f"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu={rows}",
        f"actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu={rows}",
        f"actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu={rows}",
    ]


@dataclass
class Result:
    """One ``main_ppo`` run: exit status, everything it printed, and its metrics per training step."""

    name: str
    command: list[str]
    returncode: int
    output: str
    steps: dict[int, dict[str, float]]
    wall_s: float
    run_dir: Path
    checkpoint_dir: Path
    total_steps: int

    def metric(self, key: str) -> dict[int, float]:
        """``{step: value}`` of one metric, for the steps that logged it."""
        return {step: data[key] for step, data in sorted(self.steps.items()) if key in data}

    def metrics_with_prefix(self, prefix: str) -> dict[int, dict[str, float]]:
        return {s: {k: v for k, v in d.items() if k.startswith(prefix)} for s, d in sorted(self.steps.items())}

    def tail(self, chars: int = 6000) -> str:
        return self.output[-chars:]

    def check(self) -> "Result":
        """Assert the run exited 0 (with the output's tail in the message) and return it."""
        assert self.returncode == 0, f"{self.name}: main_ppo exited {self.returncode}\n{self.tail()}"
        return self

    def saved_steps(self) -> list[int]:
        return sorted(int(p.name.split("_")[-1]) for p in self.checkpoint_dir.glob("global_step_*"))


def _process_table() -> dict[int, tuple[int, str]]:
    """{pid: (ppid, start time)} of every live process, from /proc."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[0] != "Z":
                table[int(entry)] = (int(fields[1]), fields[19])
    return table


class ProcessTree:
    """The processes a run started: ``pid`` and everything below it, remembered while it runs (Ray's
    workers run in process groups of their own, and outlive the driver when it dies; they all descend
    from it while it lives)."""

    def __init__(self, pid: int):
        self.pid = pid
        self.seen: dict[int, str] = {}

    def scan(self) -> None:
        table = _process_table()
        if self.pid in table:
            self.seen.setdefault(self.pid, table[self.pid][1])
        children: dict[int, list[int]] = {}
        for pid, (ppid, _) in table.items():
            children.setdefault(ppid, []).append(pid)
        todo = [self.pid]
        while todo:
            for child in children.get(todo.pop(), []):
                self.seen.setdefault(child, table[child][1])
                todo.append(child)

    def alive(self) -> list[int]:
        table = _process_table()
        return [pid for pid, started in self.seen.items() if pid in table and table[pid][1] == started]

    def end(self, grace_s: float = 15.0) -> None:
        """SIGTERM, then SIGKILL, to the remembered processes still alive (same pid and start time):
        only what this run started, never another Ray cluster on the machine (so never ``ray stop``)."""
        import signal

        self.scan()
        for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            victims = self.alive()
            for victim in victims:
                try:
                    os.kill(victim, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.25)


def read_file_logger(path: Path) -> dict[int, dict[str, float]]:
    """verl's ``file`` logger backend: one ``{"step": n, "data": {...}}`` line per log call."""
    steps: dict[int, dict[str, float]] = {}
    if not path.exists():
        return steps
    for line in path.read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            steps.setdefault(int(record["step"]), {}).update(record["data"])
    return steps


def run_main_ppo(
    preset_or_overrides: str | Sequence[str],
    assets: DemoAssets,
    run_dir: Path,
    *,
    steps: int = 3,
    extra_overrides: Iterable[str] = (),
    resume: Result | None = None,
    name: str | None = None,
    timeout_s: float = 1200,
) -> Result:
    """Run ``python -m verl.trainer.main_ppo`` in a subprocess and collect its result.

    ``preset_or_overrides``: a preset name (``"raft"`` -> ``+minimal_rl=raft``) or a list of overrides
    (e.g. ``["algorithm.adv_estimator=grpo", "+minimal_rl=sample_filter"]``). ``steps``: training steps of
    this run. ``resume``: a finished run whose checkpoint this run continues from (same checkpoint folder,
    ``trainer.resume_mode=auto``): it runs ``steps`` more. ``extra_overrides`` come last and win.
    Validation is off unless asked for (``trainer.test_freq=N`` and/or ``trainer.val_before_train=true``).
    """
    if isinstance(preset_or_overrides, str):
        head = [f"+minimal_rl={preset_or_overrides}"]
        name = name or preset_or_overrides
    else:
        head = list(preset_or_overrides)
        name = name or "_".join(o.split("=")[-1] for o in head)
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_dir = resume.checkpoint_dir if resume is not None else run_dir / "checkpoints"
    total_steps = (resume.total_steps if resume is not None else 0) + steps
    metrics_path = run_dir / "metrics.jsonl"
    command = [
        sys.executable,
        "-m",
        "verl.trainer.main_ppo",
        *head,
        *CPU_OVERRIDES,
        *demo_overrides(assets),
        f"trainer.total_training_steps={total_steps}",
        "trainer.total_epochs=100",
        "trainer.logger=[console,file]",
        "trainer.project_name=minimal_rl_e2e",
        f"trainer.experiment_name={name}",
        f"trainer.default_local_dir={checkpoint_dir}",
        "trainer.resume_mode=auto",
        "trainer.val_before_train=false",
        "trainer.test_freq=-1",
        "trainer.save_freq=-1",
        f"hydra.run.dir={run_dir / 'hydra'}",
        *extra_overrides,
    ]
    env = cpu_env()
    env["VERL_FILE_LOGGER_PATH"] = str(metrics_path)
    start = time.perf_counter()
    with open(run_dir / "output.log", "w") as log:
        log.write(" ".join(command) + "\n")
        log.flush()
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=run_dir)
        tree = ProcessTree(proc.pid)
        returncode = None
        try:
            while returncode is None:
                tree.scan()
                try:
                    returncode = proc.wait(timeout=2.0)
                except subprocess.TimeoutExpired:
                    if time.perf_counter() - start > timeout_s:
                        returncode = -9
        finally:
            # a hung run, or Ray's leftovers after a finished one: end them (only what this run started)
            tree.end()
            proc.wait()
    wall_s = time.perf_counter() - start
    output = (run_dir / "output.log").read_text(errors="replace")
    if returncode == -9:
        output += f"\n[harness] main_ppo killed after {timeout_s:.0f} s\n"
    result = Result(name, command, returncode, output, read_file_logger(metrics_path), wall_s, run_dir, checkpoint_dir, total_steps)
    record_run("main_ppo", name, returncode, wall_s, result.steps, run_dir)
    return result


def run_trl_vllm(algorithm: str, model_dir: Path, out: Path, steps: int) -> tuple[subprocess.CompletedProcess, dict]:
    """One TRL + vLLM run (`minimal_rl_e2e.trl_vllm`) into ``out``: the process and its result.json (empty if none);
    its log is kept in ``out/output.log`` and the run recorded for the e2e report."""
    env = cpu_env()
    for key in ("VERL_USE_EXTERNAL_MODULES", "VERL_PLATFORM", "VERL_ENGINE_DEVICE"):
        env.pop(key)  # no verl here
    cmd = [sys.executable, "-m", "minimal_rl_e2e.trl_vllm", algorithm, str(model_dir), str(out), "--steps", str(steps)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200, cwd=out.parent)
    wall = time.perf_counter() - start
    out.mkdir(parents=True, exist_ok=True)
    (out / "output.log").write_text(proc.stdout + proc.stderr)
    result_path = out / "result.json"
    result = json.loads(result_path.read_text()) if result_path.exists() else {}
    record_run("trl", algorithm, proc.returncode, wall, [int(k) for k in result.get("vllm_at", {})], out)
    return proc, result
