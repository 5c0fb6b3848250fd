"""Draw the flow figure of the README and the docs site: ``docs/img/flow.png``.

Usage: ``.venv/bin/python docs/scripts/flow_figure.py [out.png]``. Matplotlib only, so the
figure is remade from this file whenever a stage changes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

#: (title, what it does, make target, runs where) per stage, in flow order.
STAGES = [
    ("Teacher", "float PPO / SAC\nactor-critic\n(stable-baselines3)", "make teacher", "workstation"),
    ("QPD", "low-bit Brevitas student\n8 → 4 → 3 → 2 bits,\nactor-critic KD loss", "make distill", "workstation"),
    ("Export", "QONNX graph,\nparity check on\nreal states", "make export", "workstation"),
    ("FINN", "streamline, fold,\nestimate, HLS/RTL,\nverification ladder", "make estimate\nmake verify", "workstation"),
    ("Bitstream", "Vivado build for\nthe PYNQ-Z2\n(xc7z020)", "make bitstream", "needs Vivado"),
    ("Host", "env loop on the ARM:\nFPGA policy vs software,\nsame seeds", "make compare\nmake board-eval", "board or emulated"),
]


def draw(out: Path) -> None:
    """Write the figure to ``out`` (PNG)."""
    width, gap = 1.0, 0.32
    fig, ax = plt.subplots(figsize=(12.5, 3.1), dpi=110)
    for i, (title, body, target, where) in enumerate(STAGES):
        x = i * (width + gap)
        dashed = where == "needs Vivado"
        ax.add_patch(FancyBboxPatch((x, 0.0), width, 1.0, boxstyle="round,pad=0.02,rounding_size=0.06",
                                    facecolor="#eef3fb" if not dashed else "#f6f6f6",
                                    edgecolor="#2b5797" if not dashed else "#888888",
                                    linestyle="--" if dashed else "-", linewidth=1.4))
        ax.text(x + width / 2, 0.86, title, ha="center", va="center", fontsize=11.5, weight="bold")
        ax.text(x + width / 2, 0.52, body, ha="center", va="center", fontsize=8.3, linespacing=1.25)
        ax.text(x + width / 2, 0.13, target, ha="center", va="center", fontsize=7.8, family="monospace",
                color="#2b5797")
        ax.text(x + width / 2, -0.1, where, ha="center", va="center", fontsize=7.8, style="italic", color="#555555")
        if i < len(STAGES) - 1:
            ax.annotate("", xy=(x + width + gap - 0.03, 0.5), xytext=(x + width + 0.03, 0.5),
                        arrowprops=dict(arrowstyle="-|>", color="#2b5797", linewidth=1.4))
    ax.set_xlim(-0.08, len(STAGES) * (width + gap) - gap + 0.08)
    ax.set_ylim(-0.22, 1.08)
    ax.axis("off")
    fig.tight_layout(pad=0.2)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


if __name__ == "__main__":
    draw(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img/flow.png"))
