"""``minimal-rl compare``: several algorithms, identical seeds and budget, one figure and one table.

The paper's findings in miniature (Xiong et al., arXiv 2504.11343, Fig. 2-4):
  1. RAFT++ learns faster than GRPO early;
  2. positive-only training (RAFT, RAFT++) collapses token entropy, Reinforce-Rej keeps it;
  3. importance sampling without clipping (raft_pp_no_clip) is worse than plain RAFT;
  4. most of GRPO's gain over Reinforce comes from removing all-wrong prompts;
  5. Reinforce-Rej reaches GRPO's reward at a fraction of GRPO's KL to the initial model.
Each check is printed with its numbers and whether it held in this run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from minimal_rl_app.commands.common import UsageError, add_run_arguments, run_spec
from minimal_rl_app.commands.train import ALGORITHM_CHOICES

DEFAULT_ALGORITHMS = ("raft", "raft_pp", "grpo", "reinforce_rej")
DEFAULT_STEPS = 300
POSITIVE_ONLY = ("raft", "raft_pp", "raft_pp_no_clip")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--algorithms", nargs="+", type=run_spec, default=list(DEFAULT_ALGORITHMS), metavar="ALGO[+FILTER]",
        help=f"runs (default: {' '.join(DEFAULT_ALGORITHMS)}): an algorithm ({', '.join(ALGORITHM_CHOICES)}), "
        "optionally with a sample filter replacing its own, e.g. grpo+drop_uniform",
    )
    add_run_arguments(p, DEFAULT_STEPS)
    p.add_argument("--render-only", action="store_true", help="train nothing: redraw the figure and table from the runs already in --output-dir")


def _interp_kl_at(evals: list[dict], accuracy: float) -> float | None:
    """KL at the first point where held-out accuracy reaches ``accuracy`` (linear between evaluations)."""
    pts = [(e["heldout_accuracy"], e.get("heldout_kl")) for e in evals if e.get("heldout_kl") is not None]
    for (a0, k0), (a1, k1) in zip(pts, pts[1:]):
        if a1 >= accuracy > a0:
            return k0 + (k1 - k0) * (accuracy - a0) / (a1 - a0)
        if a0 >= accuracy:
            return k0
    return None


def _mean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _smoothed_final(evals: list[dict], n: int = 2) -> float | None:
    return _mean([e["heldout_accuracy"] for e in evals[-n:]])


def analyse(runs: dict[str, dict]) -> dict[str, Any]:
    """The table's rows and the findings checks, from the runs' metrics payloads."""
    rows: dict[str, dict] = {}
    for name, p in runs.items():
        evals, steps = p.get("evals", []), p.get("steps", [])
        n = len(steps)
        third = max(1, n // 3)
        early = [e for e in evals if 0 < e["step"] <= max(third, evals[1]["step"] if len(evals) > 1 else 1)]
        ent = [e.get("heldout_entropy") for e in evals]
        rows[name] = {
            "heldout_start": evals[0]["heldout_accuracy"] if evals else None,
            "heldout_early": _mean([e["heldout_accuracy"] for e in early]),
            "heldout_end": _smoothed_final(evals),
            "batch_acc_first_third": _mean([s.get("accuracy") for s in steps[:third]]),
            "batch_acc_last_third": _mean([s.get("accuracy") for s in steps[-third:]]),
            "entropy_start": ent[0] if ent else None,
            "entropy_end": _mean(ent[-2:]),
            "kl_end": _mean([e.get("heldout_kl") for e in evals[-2:]]),
            "all_wrong": _mean([s.get("groups_all_wrong") for s in steps]),
            "all_correct": _mean([s.get("groups_all_correct") for s in steps]),
            "kept": _mean([s.get("samples_kept_frac") for s in steps]),
            "tokens_kept": _mean([s.get("tokens_kept_frac", s.get("samples_kept_frac")) for s in steps]),
            "clip_ratio": _mean([s.get("clip_ratio") for s in steps]),
            "seconds": p.get("train_seconds"),
            "early_until_step": max((e["step"] for e in early), default=0),
        }
    # KL at matched accuracy: the highest held-out accuracy every run reached.
    peak = {name: max((e["heldout_accuracy"] for e in p.get("evals", [])), default=0.0) for name, p in runs.items()}
    start = _mean([r["heldout_start"] for r in rows.values()]) or 0.0
    matched = min(peak.values()) if peak else None
    for name, p in runs.items():
        r = rows[name]
        r["kl_at_matched"] = _interp_kl_at(p.get("evals", []), matched) if matched and matched > start else None
        gain = (r["heldout_end"] or 0.0) - (r["heldout_start"] or 0.0)
        # KL spent per point of held-out accuracy gained (end = mean of the last two evaluations): less
        # sensitive to one noisy evaluation than the KL at a single matched accuracy.
        r["kl_per_gain"] = r["kl_end"] / (100 * gain) if r["kl_end"] is not None and gain > 0.005 else None
    findings = []
    if "raft_pp" in rows and "grpo" in rows:
        a, g = rows["raft_pp"]["heldout_early"], rows["grpo"]["heldout_early"]
        if a is not None and g is not None:
            findings.append({
                "finding": "1. RAFT++ learns faster than GRPO early",
                "numbers": f"mean held-out accuracy in the first {rows['raft_pp']['early_until_step']} steps: RAFT++ {a:.3f} vs GRPO {g:.3f}",
                "held": a > g,
            })
    pos = [n for n in POSITIVE_ONLY if n in rows]
    if pos and "reinforce_rej" in rows:
        r = rows["reinforce_rej"]
        for n in pos:
            q = rows[n]
            if None in (q["entropy_start"], q["entropy_end"], r["entropy_start"], r["entropy_end"]):
                continue
            findings.append({
                "finding": f"2. positive-only ({n}) collapses entropy faster than Reinforce-Rej",
                "numbers": f"entropy {n} {q['entropy_start']:.3f} -> {q['entropy_end']:.3f} "
                f"({q['entropy_end'] / q['entropy_start']:.0%} of start); Reinforce-Rej {r['entropy_start']:.3f} -> "
                f"{r['entropy_end']:.3f} ({r['entropy_end'] / r['entropy_start']:.0%})",
                "held": q["entropy_end"] / q["entropy_start"] < r["entropy_end"] / r["entropy_start"],
            })
    if "raft" in rows and "raft_pp_no_clip" in rows:
        r, u = rows["raft"], rows["raft_pp_no_clip"]
        if None not in (r["heldout_end"], u["heldout_end"]):
            clipped = rows.get("raft_pp", {}).get("clip_ratio")
            clip_text = f"; RAFT++ clipped {clipped:.2%} of its tokens' ratios in the same setting" if clipped is not None else ""
            findings.append({
                "finding": "3. importance sampling without clipping is worse than plain RAFT",
                "numbers": f"end held-out accuracy: RAFT++ without clipping {u['heldout_end']:.3f} vs RAFT {r['heldout_end']:.3f}; "
                f"early {_fmt(u['heldout_early'])} vs {_fmt(r['heldout_early'])}; KL end {_fmt(u['kl_end'], '.4f')} vs "
                f"{_fmt(r['kl_end'], '.4f')}{clip_text}",
                "held": u["heldout_end"] < r["heldout_end"],
            })
    if all(n in rows for n in ("reinforce", "reinforce_remove_all_wrong", "grpo")):
        end = {n: rows[n]["heldout_end"] for n in ("reinforce", "reinforce_remove_all_wrong", "grpo")}
        if None not in end.values():
            gap = end["grpo"] - end["reinforce"]
            explained = end["reinforce_remove_all_wrong"] - end["reinforce"]
            findings.append({
                "finding": "4. most of GRPO's gain over Reinforce comes from removing all-wrong prompts",
                "numbers": f"end held-out accuracy: Reinforce {end['reinforce']:.3f}, Reinforce + remove all wrong "
                f"{end['reinforce_remove_all_wrong']:.3f}, GRPO {end['grpo']:.3f} (GRPO - Reinforce = {gap:+.3f}, "
                f"of which removing all-wrong groups gives {explained:+.3f})",
                "held": (gap > 0 and explained >= 0.5 * gap) if gap > 0.005 else None,
            })
    if "reinforce_rej" in rows and "grpo" in rows:
        kr, kg = rows["reinforce_rej"]["kl_per_gain"], rows["grpo"]["kl_per_gain"]
        mr, mg = rows["reinforce_rej"]["kl_at_matched"], rows["grpo"]["kl_at_matched"]
        if kr is not None and kg is not None and kg > 0:
            matched_text = (
                f"; KL at held-out accuracy {matched:.3f}: Reinforce-Rej {mr:.4f} vs GRPO {mg:.4f}"
                if mr is not None and mg is not None else ""
            )
            findings.append({
                "finding": "5. Reinforce-Rej reaches GRPO's accuracy at lower KL to the initial model",
                "numbers": f"KL per point of held-out accuracy gained: Reinforce-Rej {kr:.4f} vs GRPO {kg:.4f} "
                f"({kr / kg:.0%} of GRPO's; paper: ~40%){matched_text}",
                "held": kr < kg,
            })
        else:
            findings.append({
                "finding": "5. Reinforce-Rej reaches GRPO's accuracy at lower KL to the initial model",
                "numbers": "not measurable: the runs never reached a common accuracy above the start",
                "held": None,
            })
    return {"rows": rows, "matched_accuracy": matched, "findings": findings}


def _fmt(v: Any, spec: str = ".3f") -> str:
    return "-" if v is None else format(v, spec)


def markdown_table(analysis: dict, settings: dict, wall_seconds: float) -> str:
    rows = analysis["rows"]
    lines = [
        "| algorithm | held-out acc start | early (<= step) | end | batch acc 1st / last third | held-out entropy start -> end "
        f"| KL end | KL at acc {_fmt(analysis['matched_accuracy'])} | KL per acc point | all-wrong / all-correct groups | samples / tokens in update | train s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {_fmt(r['heldout_start'])} | {_fmt(r['heldout_early'])} (<= {r['early_until_step']}) | "
            f"{_fmt(r['heldout_end'])} | {_fmt(r['batch_acc_first_third'])} / {_fmt(r['batch_acc_last_third'])} | "
            f"{_fmt(r['entropy_start'])} -> {_fmt(r['entropy_end'])} | {_fmt(r['kl_end'], '.4f')} | "
            f"{_fmt(r['kl_at_matched'], '.4f')} | {_fmt(r['kl_per_gain'], '.4f')} | {_fmt(r['all_wrong'], '.2f')} / {_fmt(r['all_correct'], '.2f')} | "
            f"{_fmt(r['kept'], '.2f')} / {_fmt(r['tokens_kept'], '.2f')} | {_fmt(r['seconds'], '.0f')} |"
        )
    lines.append("")
    lines.append(
        f"Settings: {settings.get('steps')} steps x {settings.get('prompts_per_step')} prompts x "
        f"{settings.get('num_generations')} samples, lr {settings.get('learning_rate')}, beta {settings.get('beta')}, "
        f"seed {settings.get('seed')}; held-out accuracy on {settings.get('eval_problems')} problems x "
        f"{settings.get('eval_samples')} samples at temperature 1.0; 'end' and 'KL end' = mean of the last two "
        "evaluations; entropy and KL are measured on the held-out samples (every sample, nothing filtered). "
        f"Wall time {wall_seconds / 60:.1f} min."
    )
    lines.append("")
    lines.append(
        "Held-out accuracy has a standard error of about 0.5 / sqrt(problems x samples) per evaluation: "
        "differences of that size are noise, whatever the verdicts below say."
    )
    lines.append("")
    for f in analysis["findings"]:
        verdict = {True: "holds in this run (direction; check the noise)", False: "does NOT hold in this run", None: "not measurable"}[f["held"]]
        lines.append(f"- **{f['finding']}**: {verdict}. {f['numbers']}.")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    from minimal_rl_app.commands.common import prepare_output_dir, resolve_source, setup_environment, train_one

    t0 = time.perf_counter()
    algorithms = list(dict.fromkeys(args.algorithms))
    runs: dict[str, dict] = {}
    if args.render_only:
        return render(Path(args.output_dir or "outputs/compare"), algorithms)
    try:
        setup_environment(args.threads)
        out = prepare_output_dir(args.output_dir or "outputs/compare", args.overwrite)
        source = resolve_source(args)
        for i, algo in enumerate(algorithms, 1):
            print(f"\n=== [{i}/{len(algorithms)}] {algo}: {args.steps} steps ===")
            runs[algo] = train_one(algo, args, source, out / algo)
    except UsageError as exc:
        print(f"minimal-rl compare: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished runs and the partial one are in {out}", file=sys.stderr)
        if not runs:
            return 130
    write_report(runs, out, time.perf_counter() - t0, source.header.get("model", ""))
    return 0 if len(runs) == len(algorithms) else 130


def write_report(runs: dict[str, dict], out: Path, wall: float, model: str) -> None:
    from minimal_rl_app.plots import plot_compare

    analysis = analyse(runs)
    settings = next(iter(runs.values())).get("settings", {})
    table = markdown_table(analysis, settings, wall)
    plot_compare(runs, out / "compare.png", title=f"{', '.join(runs)} on {model}")
    (out / "compare.md").write_text(table)
    (out / "compare.json").write_text(json.dumps({"analysis": analysis, "wall_seconds": round(wall, 1), "algorithms": list(runs)}, indent=1))
    print("\n" + table)
    print(f"wrote {out / 'compare.png'}, {out / 'compare.md'} and one folder per algorithm")


def render(out: Path, algorithms: list[str]) -> int:
    """--render-only: the report from finished runs (e.g. after an interrupted compare)."""
    runs = {}
    for algo in algorithms:
        path = out / algo / "metrics.json"
        if path.exists():
            runs[algo] = json.loads(path.read_text())
    if not runs:
        print(f"minimal-rl compare: error: no runs of {', '.join(algorithms)} in {out}", file=sys.stderr)
        return 2
    old = out / "compare.json"
    wall = json.loads(old.read_text()).get("wall_seconds", 0.0) if old.exists() else sum(r.get("train_seconds", 0) for r in runs.values())
    write_report(runs, out, wall, next(iter(runs.values())).get("model", ""))
    return 0
