"""The comparison of several runs (``minimal-rl compare``): the table's rows, the paper's findings checked on
them, with several seeds their mean and spread, the Markdown report and the figure.

The paper's findings in miniature (Xiong et al., arXiv 2504.11343, Fig. 2-4):
  1. RAFT++ learns faster than GRPO early;
  2. positive-only training (RAFT, RAFT++) collapses token entropy, Reinforce-Rej keeps it;
  3. importance sampling without clipping (raft_pp_no_clip) is worse than plain RAFT;
  4. most of GRPO's gain over Reinforce comes from removing all-wrong prompts;
  5. Reinforce-Rej reaches GRPO's reward at a fraction of GRPO's KL to the initial model.
Each check is printed with its numbers and whether it held (with several seeds: in how many).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

POSITIVE_ONLY = ("raft", "raft_pp", "raft_pp_no_clip")
COMPARE_FILES = ("compare.md", "compare.json", "compare.png")  # what the report writes into the compare folder


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


def _uniform(step: dict) -> float | None:
    """The fraction of the step's prompts whose responses are all one kind: Reinforce-Ada's pools when it
    sampled adaptively, else the fixed groups."""
    if step.get("uniform_pools_frac") is not None:
        return step["uniform_pools_frac"]
    kinds = (step.get("groups_all_correct"), step.get("groups_all_wrong"))
    return None if None in kinds else kinds[0] + kinds[1]


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
            # the generation budget: response tokens generated (every adaptive round) per optimiser step and in all
            "tokens_per_step": (steps[-1].get("tokens_generated_cum") or 0) / n if n and steps[-1].get("tokens_generated_cum") else None,
            "tokens_generated_cum": steps[-1].get("tokens_generated_cum") if steps else None,
            "generated_per_kept": _mean([s.get("generated_per_kept") for s in steps]),
            "rounds": _mean([s.get("rounds") for s in steps]),
            # prompts still uniform after sampling: a fixed group of n, or Reinforce-Ada's whole pool
            "uniform_after_sampling": _mean([_uniform(s) for s in steps]),
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


def aggregate(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and standard deviation over seeds of each analysis row (``{field}_std``), findings counted."""
    if len(per_seed) == 1:
        return per_seed[0]
    rows: dict[str, dict] = {}
    for name in per_seed[0]["rows"]:
        row: dict[str, Any] = {}
        for key in per_seed[0]["rows"][name]:
            values = [a["rows"][name].get(key) for a in per_seed if a["rows"].get(name, {}).get(key) is not None]
            row[key] = sum(values) / len(values) if values else None
            if len(values) > 1:
                m = row[key]
                row[f"{key}_std"] = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))
        rows[name] = row
    findings: dict[str, dict] = {}
    for a in per_seed:
        for f in a["findings"]:
            entry = findings.setdefault(f["finding"], {"finding": f["finding"], "held_in": 0, "measured": 0, "numbers": []})
            if f["held"] is not None:
                entry["measured"] += 1
                entry["held_in"] += bool(f["held"])
            entry["numbers"].append(f["numbers"])
    return {"rows": rows, "matched_accuracy": None, "findings": list(findings.values()), "seeds": len(per_seed)}


def _cell(r: dict, key: str, spec: str = ".3f") -> str:
    text = _fmt(r.get(key), spec)
    return text + (f" ± {format(r[key + '_std'], spec)}" if r.get(key + "_std") is not None else "")


# The main table: the README's columns, in the README's words.
MAIN_HEADER = ("| algorithm | held-out acc. start | early (steps ≤ {early}) | end (mean of last 2 evals) "
               "| held-out entropy start → end | KL to initial model, end |")


def markdown_table(analysis: dict, settings: dict, wall_seconds: float, seeds: list[int] | None = None) -> str:
    rows = analysis["rows"]
    early = max((r.get("early_until_step") or 0 for r in rows.values()), default=0)
    lines = [MAIN_HEADER.format(early=int(early)), "|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {_cell(r, 'heldout_start')} | {_cell(r, 'heldout_early')} | {_cell(r, 'heldout_end')} | "
            f"{_cell(r, 'entropy_start')} → {_cell(r, 'entropy_end')} | {_cell(r, 'kl_end', '.4f')} |"
        )
    lines += ["", "Details:", "",
              f"| algorithm | batch acc 1st / last third | KL at acc {_fmt(analysis.get('matched_accuracy'))} | KL per acc point "
              "| all-wrong / all-correct groups | samples / tokens in update | train s |",
              "|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {_cell(r, 'batch_acc_first_third')} / {_cell(r, 'batch_acc_last_third')} | "
            f"{_cell(r, 'kl_at_matched', '.4f')} | {_cell(r, 'kl_per_gain', '.4f')} | {_cell(r, 'all_wrong', '.2f')} / "
            f"{_cell(r, 'all_correct', '.2f')} | {_cell(r, 'kept', '.2f')} / {_cell(r, 'tokens_kept', '.2f')} | "
            f"{_cell(r, 'seconds', '.0f')} |"
        )
    if any(r.get("tokens_per_step") is not None for r in rows.values()):
        lines += ["", "Generation budget (response tokens of every sample generated for training, every adaptive round "
                  "included; fixed-group algorithms use one round):", "",
                  "| algorithm | tokens generated per step | tokens generated in all | generated / kept responses | rounds "
                  "| prompts uniform after sampling |",
                  "|---|---|---|---|---|---|"]
        for name, r in rows.items():
            lines.append(f"| {name} | {_cell(r, 'tokens_per_step', '.0f')} | {_cell(r, 'tokens_generated_cum', '.0f')} | "
                         f"{_cell(r, 'generated_per_kept', '.2f')} | {_cell(r, 'rounds', '.2f')} | "
                         f"{_cell(r, 'uniform_after_sampling', '.2f')} |")
    seed_text = (f"seeds {', '.join(map(str, seeds))} (cells: mean ± standard deviation over seeds)"
                 if seeds and len(seeds) > 1 else f"seed {settings.get('seed')}")
    n = (settings.get("eval_problems") or 0) * (settings.get("eval_samples") or 0)
    lines += ["", (
        f"Settings: {settings.get('steps')} steps x {settings.get('prompts_per_step')} prompts x "
        f"{settings.get('num_generations')} samples, lr {settings.get('learning_rate')}, beta {settings.get('beta')}, "
        f"{seed_text}; held-out accuracy on {settings.get('eval_problems')} problems x "
        f"{settings.get('eval_samples')} samples at temperature 1.0; 'end' and 'KL end' = mean of the last two "
        "evaluations; entropy and KL are measured on the held-out samples (every sample, nothing filtered). "
        f"Wall time {wall_seconds / 60:.1f} min (start-up included)."
    ), "", (
        f"Held-out accuracy has a standard error of about 0.5 / sqrt({n}) = {0.5 / math.sqrt(max(n, 1)):.3f} per evaluation: "
        "differences of that size are noise, whatever the verdicts below say."
    ), ""]
    for f in analysis["findings"]:
        if "held_in" in f:
            verdict = (f"held in {f['held_in']} of {f['measured']} seeds" if f["measured"] else "not measurable")
            lines.append(f"- **{f['finding']}**: {verdict}. First seed: {f['numbers'][0]}.")
        else:
            verdict = {True: "holds in this run (direction; check the noise)", False: "does NOT hold in this run",
                       None: "not measurable"}[f["held"]]
            lines.append(f"- **{f['finding']}**: {verdict}. {f['numbers']}.")
    return "\n".join(lines) + "\n"


def write_report(runs: dict[tuple[str, int], dict], out: Path, wall: float, model: str) -> None:
    """compare.md, compare.json and compare.png from the runs, keyed by (algorithm, seed)."""
    from minimal_rl_app.plots import plot_compare

    seeds = sorted({s for _, s in runs})
    per_seed = []
    for seed in seeds:
        by_name = {a: p for (a, s), p in runs.items() if s == seed}
        if by_name:
            per_seed.append(analyse(by_name))
    analysis = aggregate(per_seed)
    settings = next(iter(runs.values())).get("settings", {})
    table = markdown_table(analysis, settings, wall, seeds)
    grouped: dict[str, list[dict]] = {}
    for (a, _), p in runs.items():
        grouped.setdefault(a, []).append(p)
    plot_compare(grouped, out / "compare.png", title=f"{', '.join(grouped)} on {model}")
    (out / "compare.md").write_text(table)
    (out / "compare.json").write_text(json.dumps(
        {"analysis": analysis, "wall_seconds": round(wall, 1), "algorithms": list(grouped), "seeds": seeds}, indent=1))
    print("\n" + table)
    print(f"wrote {out / 'compare.png'}, {out / 'compare.md'} and one folder per algorithm")


def render(out: Path, algorithms: list[str], seeds: list[int], folders: dict[tuple[str, int], str]) -> int:
    """--render-only: the report from the runs already in ``out`` (e.g. after an interrupted compare)."""
    runs = {}
    for key, rel in folders.items():
        path = out / rel / "metrics.json"
        if path.exists():
            try:
                runs[key] = json.loads(path.read_text())
            except ValueError:
                print(f"minimal-rl compare: error: {path} is not valid JSON", file=sys.stderr)
                return 2
    if not runs:
        print(f"minimal-rl compare: error: no runs of {', '.join(algorithms)} in {out}", file=sys.stderr)
        return 2
    from minimal_rl_app.outputs import OutputDir

    OutputDir(out).add(*COMPARE_FILES)
    old = out / "compare.json"
    try:
        wall = json.loads(old.read_text()).get("wall_seconds", 0.0)
    except (OSError, ValueError):
        wall = sum(r.get("train_seconds") or 0 for r in runs.values())
    write_report(runs, out, wall, next(iter(runs.values())).get("model", ""))
    return 0
