#!/usr/bin/env python3
"""Draw bench/peers.py's results (peers.json) as a bar chart (PNG) for the docs: seconds until ready per
side and scenario, median with min-max whiskers. Run with the matplotlib venv of bench/peers-toolchain.sh
(peers.py does): matplotlib is in neither the product's nor the dev requirements.

    <peers>/plot/bin/python bench/plot_peers.py peers.json peers.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SCENARIOS = ("from nothing", "no-op", "TensorBoard change")


def main(src: str, dst: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads(Path(src).read_text())
    table, meta = data["results"], data["meta"]
    sides = list(table)
    fig, axes = plt.subplots(1, len(SCENARIOS), figsize=(11, 4))
    for ax, sc in zip(axes, SCENARIOS, strict=True):
        med = [table[s][sc]["ready"]["median"] for s in sides]
        lo = [m - table[s][sc]["ready"]["min"] for m, s in zip(med, sides, strict=True)]
        hi = [table[s][sc]["ready"]["max"] - m for m, s in zip(med, sides, strict=True)]
        bars = ax.bar(range(len(sides)), med, yerr=[lo, hi], capsize=3,
                      color=["#1f77b4" if s == "tfbox" else "#999999" if s == "recipe" else "#ff7f0e" for s in sides])
        ax.bar_label(bars, labels=[f"{m:.1f}" for m in med], fontsize=7, padding=2)
        ax.set_xticks(range(len(sides)), sides, rotation=30, ha="right", fontsize=8)
        ax.set_title(sc, fontsize=10)
    axes[0].set_ylabel("seconds until ready (median, min-max)")
    fig.suptitle(f"tfbox and its peers, same daemon and containers: {meta['started']}, median of {meta['runs']}; "
                 f"{meta['machine'].split(',')[0]}", fontsize=9)
    fig.tight_layout()
    fig.savefig(dst, dpi=100)


if __name__ == "__main__":
    main(*sys.argv[1:3])
