"""PNG figures of training runs (matplotlib imported inside the functions, Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def smooth(values: list[float], window: int = 10) -> list[float]:
    """Trailing moving average (for noisy per-batch curves)."""
    out, acc = [], []
    for v in values:
        acc.append(v)
        if len(acc) > window:
            acc.pop(0)
        out.append(sum(acc) / len(acc))
    return out


def _series(payload: dict, key: str, source: str = "steps") -> tuple[list[int], list[float]]:
    rows = [r for r in payload.get(source, []) if r.get(key) is not None]
    return [r["step"] for r in rows], [float(r[key]) for r in rows]


def plot_run(payload: dict, path: Path, title: str | None = None) -> Path:
    """Accuracy (batch, smoothed; held-out), token entropy and KL to the initial model vs step."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    x, y = _series(payload, "accuracy")
    axes[0].plot(x, smooth(y), label="training batch (moving avg 10)", alpha=0.8)
    x, y = _series(payload, "heldout_accuracy", "evals")
    axes[0].plot(x, y, "o-", label="held-out")
    axes[0].set(title="accuracy (temperature 1.0)", xlabel="step")
    axes[0].legend(fontsize=8)
    x, y = _series(payload, "heldout_entropy", "evals")
    axes[1].plot(x, y, "o-", label="held-out samples (all)")
    x, y = _series(payload, "entropy")
    axes[1].plot(x, smooth(y, 5), label="training batch, kept samples (TRL)", alpha=0.7)
    axes[1].set(title="token entropy", xlabel="step")
    axes[1].legend(fontsize=8)
    x, y = _series(payload, "heldout_kl", "evals")
    axes[2].plot(x, y, "o-", label="held-out samples")
    x2, y2 = _series(payload, "kl_train")
    if x2:
        axes[2].plot(x2, smooth(y2, 5), label="training batch (k3, beta>0)", alpha=0.7)
    axes[2].set(title="KL to the initial model (per token)", xlabel="step")
    axes[2].legend(fontsize=8)
    fig.suptitle(title or payload.get("settings", {}).get("algorithm", "run"))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _mean_band(payloads: list[dict], key: str, source: str) -> tuple[list[int], list[float], list[float], list[float]]:
    """Steps, mean over runs, and the band: min..max over runs (several seeds) or, for one run, +-1 standard
    error of a held-out accuracy (0.5 / sqrt(problems x samples) at most, the binomial bound)."""
    series = [dict(zip(*_series(p, key, source))) for p in payloads]
    steps = sorted(set.intersection(*(set(s) for s in series))) if series else []
    mean = [sum(s[x] for s in series) / len(series) for x in steps]
    if len(series) > 1:
        return steps, mean, [min(s[x] for s in series) for x in steps], [max(s[x] for s in series) for x in steps]
    settings = payloads[0].get("settings", {}) if payloads else {}
    n = max(1, (settings.get("eval_problems") or 1) * (settings.get("eval_samples") or 1))
    se = [(m * (1 - m) / n) ** 0.5 if 0 <= m <= 1 else 0.0 for m in mean]
    return steps, mean, [m - e for m, e in zip(mean, se)], [m + e for m, e in zip(mean, se)]


def tokens_at_evals(payloads: list[dict]) -> tuple[list[float], list[float], list[float], list[float]]:
    """Held-out accuracy against response tokens generated so far (all of them, every adaptive round included):
    x is the mean over runs of the cumulative count at each evaluation's step (0 at step 0), y the mean accuracy
    with the band of `_mean_band`. Empty lists when a run did not count tokens (its metrics predate the count)."""
    counts = []
    for p in payloads:
        cum = {r["step"]: r["tokens_generated_cum"] for r in p.get("steps", []) if r.get("tokens_generated_cum") is not None}
        if not cum:
            return [], [], [], []
        counts.append({0: 0, **cum})
    steps, mean, lo, hi = _mean_band(payloads, "heldout_accuracy", "evals")
    keep = [i for i, s in enumerate(steps) if all(s in c for c in counts)]
    x = [sum(c[steps[i]] for c in counts) / len(counts) for i in keep]
    return x, [mean[i] for i in keep], [lo[i] for i in keep], [hi[i] for i in keep]


def plot_compare(runs: dict[str, list[dict] | dict], path: Path, title: str = "") -> Path:
    """Side by side: held-out accuracy (with its noise band), batch accuracy, entropy vs step, and KL vs
    held-out accuracy (each evaluation a point, later ones darker; the last one ringed) for each algorithm.

    ``runs``: algorithm -> one payload or a list of payloads (seeds): lines are means, bands min..max."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 5, figsize=(24, 4.2))
    for i, (name, payloads) in enumerate(runs.items()):
        payloads = payloads if isinstance(payloads, list) else [payloads]
        color = f"C{i}"
        label = name if len(payloads) == 1 else f"{name} (mean of {len(payloads)} seeds)"
        x, y, lo, hi = _mean_band(payloads, "heldout_accuracy", "evals")
        axes[0].plot(x, y, "o-", label=label, markersize=3, color=color)
        axes[0].fill_between(x, lo, hi, color=color, alpha=0.15, linewidth=0)
        curves = [_series(p, "accuracy") for p in payloads]
        if curves and curves[0][0]:
            length = min(len(c[1]) for c in curves)
            ys = [smooth(c[1][:length], 15) for c in curves]
            m = [sum(v) / len(v) for v in zip(*ys)]
            axes[1].plot(curves[0][0][:length], m, label=label, color=color)
            if len(ys) > 1:
                axes[1].fill_between(curves[0][0][:length], [min(v) for v in zip(*ys)], [max(v) for v in zip(*ys)],
                                     color=color, alpha=0.15, linewidth=0)
        x, y, lo, hi = tokens_at_evals(payloads)
        if x:
            axes[4].plot(x, y, "o-", label=label, markersize=3, color=color)
            axes[4].fill_between(x, lo, hi, color=color, alpha=0.15, linewidth=0)
        x, y, lo, hi = _mean_band(payloads, "heldout_entropy", "evals")
        axes[2].plot(x, y, "o-", label=label, markersize=3, color=color)
        if len(payloads) > 1:
            axes[2].fill_between(x, lo, hi, color=color, alpha=0.15, linewidth=0)
        xs, acc, _, _ = _mean_band(payloads, "heldout_accuracy", "evals")
        xk, kl, _, _ = _mean_band(payloads, "heldout_kl", "evals")
        pts = [(a, kl[xk.index(s)], s) for s, a in zip(xs, acc) if s in xk]
        if pts:
            last = max(p[2] for p in pts) or 1
            axes[3].scatter([p[0] for p in pts], [p[1] for p in pts], s=14, color=color, label=label,
                            alpha=[0.25 + 0.75 * p[2] / last for p in pts])
            axes[3].scatter([pts[-1][0]], [pts[-1][1]], s=70, facecolors="none", edgecolors=color)
    n_band = "min..max over seeds" if any(isinstance(p, list) and len(p) > 1 for p in runs.values()) else "±1 s.e."
    axes[0].set(title=f"held-out accuracy (band: {n_band})", xlabel="step")
    axes[1].set(title="training-batch accuracy (moving avg 15)", xlabel="step")
    axes[2].set(title="token entropy (held-out samples)", xlabel="step")
    axes[3].set(title="KL to initial model vs held-out accuracy\n(one point per evaluation, later darker, last ringed)",
                xlabel="held-out accuracy", ylabel="KL per token")
    axes[4].set(title="held-out accuracy vs tokens generated",
                xlabel="response tokens generated, every round (mean over seeds)")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
