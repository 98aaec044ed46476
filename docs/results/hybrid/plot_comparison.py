"""The hybrid showcase's figure: free runs on the held-out condition from the ``predictions.npz``
that ``stiffml predict`` writes for each run (docs/hybrid.md has the commands).

    python docs/results/hybrid/plot_comparison.py HYBRID_RUN NODE_RUN OUT.png
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def main(hybrid: Path, node: Path, out: Path) -> None:
    runs = {"hybrid model": np.load(hybrid / "predictions" / "predictions.npz"),
            "neural ODE": np.load(node / "predictions" / "predictions.npz")}
    first = next(iter(runs.values()))
    names, t = list(first["state_names"]), first["t_rollout"]
    fig, axes = plt.subplots(1, len(names), figsize=(12, 3.4))
    for k, (ax, name) in enumerate(zip(axes, names)):
        ax.plot(t, first["reference_rollout"][0, :, k], "k-", lw=1.5, label="truth (held-out a = 0.5)")
        for (label, run), style in zip(runs.items(), ("r--", "b:")):
            nmae = float(run["rollout_nmae_per_state"][k])
            ax.plot(t, run["rollout"][0, :, k], style, lw=1.8, label=f"{label} (NMAE {nmae:.3g})")
        ax.set_xscale("log")
        ax.set_xlabel("t [s]")
        ax.set_title(name)
        ax.legend(frameon=False, fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
