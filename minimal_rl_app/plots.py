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


def plot_compare(payloads: dict[str, dict], path: Path, title: str = "") -> Path:
    """Side by side: held-out accuracy, batch accuracy, entropy vs step, and KL vs held-out accuracy."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(18, 4))
    for name, payload in payloads.items():
        x, y = _series(payload, "heldout_accuracy", "evals")
        axes[0].plot(x, y, "o-", label=name, markersize=3)
        x, y = _series(payload, "accuracy")
        axes[1].plot(x, smooth(y, 15), label=name)
        x, y = _series(payload, "heldout_entropy", "evals")
        axes[2].plot(x, y, "o-", label=name, markersize=3)
        evals = [e for e in payload.get("evals", []) if e.get("heldout_kl") is not None]
        axes[3].plot([e["heldout_accuracy"] for e in evals], [e["heldout_kl"] for e in evals], "o-", label=name, markersize=3)
    axes[0].set(title="held-out accuracy", xlabel="step")
    axes[1].set(title="training-batch accuracy (moving avg 15)", xlabel="step")
    axes[2].set(title="token entropy (held-out samples)", xlabel="step")
    axes[3].set(title="KL to initial model vs held-out accuracy", xlabel="held-out accuracy", ylabel="KL per token")
    for ax in axes:
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
