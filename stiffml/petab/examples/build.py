"""Write the shipped PEtab examples' tables (``python -m stiffml.petab.examples.build``).

The measurement table is the model simulated at the true parameters (the parameter table's
nominal values) with Gaussian noise of the observables' known standard deviations, seed 0.
"""

from __future__ import annotations

import numpy as np

from stiffml.petab.examples import FOLDER

TYSON = {
    "conditions": "conditionId\tconditionName\tk1aa\n"
                  "slow\tcyclin synthesis 0.012/min\t0.012\n"
                  "nominal\tcyclin synthesis 0.015/min\t0.015\n"
                  "fast\tcyclin synthesis 0.018/min\t0.018\n",
    "observables": "observableId\tobservableName\tobservableFormula\tnoiseFormula\tobservableTransformation\tnoiseDistribution\n"
                   "cyclin_total\ttotal cyclin\tY + YP + pM + M\t0.015\tlin\tnormal\n"
                   "mpf_active\tactive MPF\tM\t0.005\tlin\tnormal\n",
    "parameters": "parameterId\tparameterName\tparameterScale\tlowerBound\tupperBound\tnominalValue\testimate\n"
                  "k4\tMPF autocatalysis\tlog10\t18\t1800\t180\t1\n"
                  "k6\tMPF dissociation\tlog10\t0.1\t10\t1\t1\n"
                  "k7\tcyclin-P degradation\tlog10\t0.06\t6\t0.6\t1\n",
    "yaml": "format_version: 1\nparameter_file: parameters.tsv\nproblems:\n- condition_files: [conditions.tsv]\n"
            "  measurement_files: [measurements.tsv]\n  observable_files: [observables.tsv]\n"
            "  sbml_files: [../../../sbml/examples/tyson1991.xml]\n",
}
SIGMA = {"cyclin_total": 0.015, "mpf_active": 0.005}
TIMES = np.arange(0.0, 40.0 + 1e-9, 1.0)  # the first MPF spike of every condition


def build_tyson(seed: int = 0) -> None:
    folder = FOLDER / "tyson1991"
    for name in ("conditions", "observables", "parameters"):
        (folder / f"{name}.tsv").write_text(TYSON[name])
    rows = ["observableId\tsimulationConditionId\ttime\tmeasurement"]
    for cond in ("slow", "nominal", "fast"):
        for obs in SIGMA:
            rows += [f"{obs}\t{cond}\t{t:g}\t0" for t in TIMES]
    (folder / "measurements.tsv").write_text("\n".join(rows) + "\n")
    (folder / "problem.yaml").write_text(TYSON["yaml"])
    from stiffml.petab import Problem

    truth = Problem(folder / "problem.yaml", rtol=1e-10, atol=1e-14).simulate()
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=len(truth)) * truth["observableId"].map(SIGMA).to_numpy()
    lines = [rows[0]] + [f"{o}\t{c}\t{t:g}\t{v:.6g}" for o, c, t, v in
                         zip(truth["observableId"], truth["simulationConditionId"], truth["time"],
                             truth["simulation"].to_numpy() + noise)]
    (folder / "measurements.tsv").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    build_tyson()
