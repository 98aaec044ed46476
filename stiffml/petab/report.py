"""``stiffml petab-fit PROBLEM``: multistart calibration of a PEtab problem and its report.

Writes into ``--out`` (default ``lightning_logs/petab/<problem>``; each file written atomically):
``best_parameters.tsv`` (the parameter table with ``estimatedValue``, standard errors from the
inverse Hessian and a flag for parameters ended on a bound), ``starts.tsv`` (every start's final
nllh and parameters), ``waterfall.png`` (final nllh of every start, sorted), ``fit.png`` (measured
against simulated per observable and condition) and ``summary.json`` (``best_nllh``, the wall time,
how many starts reached the best value).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from stiffml.petab.optimize import METHODS, StartResult, multistart
from stiffml.petab.problem import PEtabError, Problem

BOUND_TOLERANCE = 1e-3  # on the parameter's scale


def hessian(problem: Problem, theta: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Central differences of the sensitivity gradient (symmetrised)."""
    n = theta.size
    out = np.zeros((n, n))
    for k in range(n):
        up, down = theta.copy(), theta.copy()
        up[k] += h
        down[k] -= h
        out[:, k] = (problem.value_and_gradient(up)[1] - problem.value_and_gradient(down)[1]) / (2 * h)
    return 0.5 * (out + out.T)


def standard_errors(problem: Problem, theta: np.ndarray) -> np.ndarray:
    """Standard errors on the parameters' scales from the inverse Hessian of the nllh (NaN where
    the Hessian is singular or not positive definite)."""
    h = hessian(problem, theta)
    try:
        cov = np.linalg.inv(h)
    except np.linalg.LinAlgError:
        return np.full(theta.size, np.nan)
    var = np.diag(cov)
    return np.where(var > 0, np.sqrt(np.abs(var)), np.nan)


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _atomic_figure(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)


def write_report(problem: Problem, results: list[StartResult], out: Path, seconds: float,
                 truth: np.ndarray | None = None) -> dict:
    """Write the report files for sorted multistart ``results``; returns the summary."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    best = results[0]
    se = standard_errors(problem, best.theta)
    at_bound = [pid for pid, x, lo, hi in zip(problem.parameter_ids, best.theta, problem.lower, problem.upper)
                if x - lo < BOUND_TOLERANCE or hi - x < BOUND_TOLERANCE]
    table = problem.petab.parameter_df.copy()
    est = dict(zip(problem.parameter_ids, best.theta))
    table["estimatedValue"] = [est.get(pid, np.nan) for pid in table.index]
    table["standardError"] = [dict(zip(problem.parameter_ids, se)).get(pid, np.nan) for pid in table.index]
    table["onBound"] = [pid in at_bound for pid in table.index]
    _atomic_text(out / "best_parameters.tsv", table.to_csv(sep="\t"))
    lines = ["start\tnllh\tevaluations\tseconds\t" + "\t".join(problem.parameter_ids)]
    lines += [f"{k}\t{r.nllh:.10g}\t{r.evaluations}\t{r.seconds:.2f}\t" + "\t".join(f"{x:.8g}" for x in r.theta)
              for k, r in enumerate(results)]
    _atomic_text(out / "starts.tsv", "\n".join(lines) + "\n")

    fig, ax = plt.subplots(figsize=(5, 3.2))
    values = np.array([r.nllh for r in results])
    finite = np.isfinite(values)
    ax.plot(np.flatnonzero(finite) + 1, values[finite] - values[finite].min() + 1, "o-")
    ax.set_yscale("log")
    ax.set_xlabel("start (sorted)")
    ax.set_ylabel("nllh − best + 1")
    ax.set_title(f"{problem.path.parent.name}: best nllh {best.nllh:.4f}")
    _atomic_figure(fig, out / "waterfall.png")

    sim = problem.simulate(best.theta)
    meas = problem.measurements
    groups = list(dict.fromkeys(zip(meas["observableId"], meas["simulationConditionId"])))
    obs_ids = list(dict.fromkeys(meas["observableId"]))
    cond_ids = list(dict.fromkeys(meas["simulationConditionId"]))
    fig, axes = plt.subplots(len(obs_ids), len(cond_ids), figsize=(3.2 * len(cond_ids), 2.4 * len(obs_ids)),
                             squeeze=False, sharex=True)
    for o, c in groups:
        ax = axes[obs_ids.index(o)][cond_ids.index(c)]
        rows = (meas["observableId"] == o) & (meas["simulationConditionId"] == c)
        order = np.argsort(meas["time"][rows].to_numpy(dtype=float))
        t = meas["time"][rows].to_numpy(dtype=float)[order]
        ax.plot(t, meas["measurement"][rows].to_numpy(dtype=float)[order], ".", ms=3, label="measured")
        ax.plot(t, sim["simulation"][rows].to_numpy(dtype=float)[order], "-", lw=1.2, label="simulated")
        ax.set_title(f"{o} | {c}", fontsize=8)
    axes[0][0].legend(fontsize=7)
    _atomic_figure(fig, out / "fit.png")

    reached = int(sum(abs(r.nllh - best.nllh) < 1e-2 for r in results))
    summary = {"problem": str(problem.path), "best_nllh": best.nllh, "starts": len(results),
               "starts_at_best": reached, "seconds": round(seconds, 1), "parameters_on_bounds": at_bound,
               "estimates": est, "standard_errors": dict(zip(problem.parameter_ids, se.tolist()))}
    if truth is not None:
        summary["true_values"] = dict(zip(problem.parameter_ids, truth.tolist()))
        summary["errors_in_standard_errors"] = dict(zip(problem.parameter_ids, ((best.theta - truth) / se).tolist()))
    _atomic_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    """``stiffml petab-fit PROBLEM``: exit 0 after writing the report."""
    parser = argparse.ArgumentParser(prog="stiffml petab-fit", description=__doc__.splitlines()[0])
    parser.add_argument("problem", help="a PEtab problem YAML file, or a shipped example's name (tyson1991)")
    parser.add_argument("--starts", type=int, default=20, help="number of Latin-hypercube starts (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the starts")
    parser.add_argument("--method", choices=METHODS, default="fides",
                        help="local optimiser: fides (BFGS Hessian; the default), fides-fim (Fisher information), L-BFGS-B")
    parser.add_argument("--max-iterations", type=int, default=500, help="per start")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default lightning_logs/petab/NAME)")
    parser.add_argument("--nominal-is-truth", action="store_true",
                        help="report each estimate's distance from the nominal value in standard errors "
                             "(for problems whose data were simulated at the nominal values)")
    args = parser.parse_args(argv)
    if args.starts < 1:
        raise PEtabError(f"--starts must be a positive number, got {args.starts}")
    began = time.perf_counter()
    problem = Problem(args.problem)
    results = multistart(problem, args.starts, args.seed, args.max_iterations, args.method)
    out = args.out or Path("lightning_logs") / "petab" / problem.path.parent.name
    summary = write_report(problem, results, out, time.perf_counter() - began,
                           truth=problem.nominal if args.nominal_is_truth else None)
    print(f"best nllh {summary['best_nllh']:.6f} ({summary['starts_at_best']} of {args.starts} starts within 0.01); "
          f"{summary['seconds']} s; report in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
