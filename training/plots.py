"""Plots a person looks at instead of reading numbers (matplotlib, written atomically)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from training.atomic import write_bytes  # noqa: E402


def save_figure(fig, path: Path) -> Path:
    """Render ``fig`` to PNG at ``path`` atomically and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return write_bytes(path, buf.getvalue())


def plot_learning_curve(
    steps: Sequence[float],
    returns: Sequence[float],
    path: Path,
    title: str,
    threshold: float | None = None,
) -> Path:
    """Mean training-episode return against environment steps."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.plot(steps, returns, color="tab:blue", lw=1.5, label="mean return (last 100 training episodes)")
    if threshold is not None:
        ax.axhline(threshold, color="tab:green", ls="--", lw=1, label=f"solved threshold ({threshold:g})")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, path)
