"""The held-out ensemble of a trained run, member by member, and where its worst member goes wrong.

Loads a run's checkpoint, runs the learned field freely from every held-out initial state (the
model's own free run), writes each member's NMAE (``members.csv``), the worst member's error per
species and per decade of time (``worst_member.csv``) and a figure of the worst member's free run
against the truth with its per-decade errors (``worst_member.png``).

    python docs/results/generalise/worst_member.py RUN/checkpoints/last.ckpt OUT_FOLDER
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from stiffml.commands.symbolic import load  # noqa: E402
from stiffml.evaluation.free_run import member_errors  # noqa: E402
from stiffml.evaluation.metrics import nmae_breakdown, state_range  # noqa: E402


def main(ckpt: Path, out: Path) -> None:
    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    model, dm = load(str(ckpt))
    run = model.free_run(dm)
    t, pred, ref = run["t"], run["pred"], run["reference"]
    span = state_range(dm.free_run_data().reference)
    errors = member_errors(pred, ref, span)
    y0 = dm.free_run_data().initial_states()
    names = list(dm.system.state_names)
    with (out / "members.csv").open("w", newline="") as f:
        w = csv.writer(f)
        # an ensemble with rate constants drawn per member lists each held-out member's too
        drawn = getattr(dm, "member_parameters", lambda: None)()
        rates = [] if drawn is None else list(dm.parameter_distribution.names)
        drawn = np.empty((len(y0), 0)) if drawn is None else drawn[dm.val_trajectories]
        w.writerow(["member", *[f"{n}(0)" for n in names], *rates, "free_run_nmae"])
        for k, (y, p, e) in enumerate(zip(y0, drawn, errors)):
            w.writerow([k, *[f"{v:.6g}" for v in y], *[f"{v:.6g}" for v in p], f"{e:.6g}"])
    worst = int(np.argmax(errors))
    parts = nmae_breakdown(t, pred[worst], ref[worst], span)
    with (out / "worst_member.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["decade", *names])
        w.writerow(["all", *[f"{v:.4g}" for v in parts["per_state"]]])
        for d, row in zip(parts["decades"], parts["per_decade"]):
            w.writerow([f"1e{d}", *[f"{v:.4g}" for v in row]])
    n = len(names)
    cols = min(n, 5)
    rows = (n + cols - 1) // cols + 1
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    logt = t[0] > 0 and t[-1] / t[0] > 1e3
    for k, name in enumerate(names):
        ax = axes[k // cols][k % cols]
        ax.plot(t, ref[worst, :, k], "k-", lw=1.4, label="truth")
        ax.plot(t, pred[worst, :, k], "r--", lw=1.4, label=f"free run (NMAE {parts['per_state'][k]:.2g})")
        if logt:
            ax.set_xscale("log")
        ax.set_title(name, fontsize=9)
        ax.legend(frameon=False, fontsize=6)
    for k in range(n, (rows - 1) * cols):
        axes[k // cols][k % cols].axis("off")
    bottom = axes[rows - 1]
    for ax in bottom[1:]:
        ax.axis("off")
    ax = bottom[0]
    ax.semilogy(parts["decades"], np.nanmax(parts["per_decade"], axis=1), "o-", label="worst species")
    ax.semilogy(parts["decades"], np.nanmean(parts["per_decade"], axis=1), "s--", label="mean over species")
    ax.set_xlabel("decade of t (log10)")
    ax.set_title(f"member {worst}: NMAE per decade", fontsize=9)
    ax.legend(frameon=False, fontsize=6)
    fig.suptitle(f"worst held-out member {worst} of {len(errors)} (NMAE {errors[worst]:.3g}; "
                 f"median {np.median(errors):.3g})", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "worst_member.png", dpi=110)
    print(f"members: median {np.median(errors):.4g}, mean {errors.mean():.4g}, worst {errors[worst]:.4g} (member {worst}); "
          f"files in {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
