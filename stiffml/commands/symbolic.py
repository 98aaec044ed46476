"""``stiffml symbolic --ckpt PATH``: the formula a trained model has learned, against the truth.

- KAN-LNN: pykan's ``auto_symbolic`` on the KAN Lagrangian (after pruning), expanded and
  normalised (constant and ``f(q)·q̇`` terms dropped: they do not change the equations of motion;
  scaled so the ``q̇²`` coefficient is ½), compared term by term with the system's Lagrangian.
- KAN (field regressor): one formula per state derivative, compared with the true field.
- HNN / dissipative HNN: the learned H sampled on a grid over the data against the true energy
  (both shifted to 0 at the origin), plus the learned dissipation matrix R.

A model class can provide its own report with a ``symbolic_report(dm, options) -> str`` method.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stiffml.errors import OneLineArgumentParser

DEFAULT_LIB = "x,x^2,x^4"
DEFAULT_OUTER_LIB = "x,x^2"


def build_parser() -> argparse.ArgumentParser:
    p = OneLineArgumentParser(prog="stiffml symbolic", description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", required=True, help="checkpoint of a trained KAN, KANLNN, HNN or DissipativeHNN")
    p.add_argument("--lib", default=DEFAULT_LIB, help=f"comma-separated pykan function names (default {DEFAULT_LIB})")
    p.add_argument("--outer-lib", default=DEFAULT_OUTER_LIB,
                   help=f"functions for the KAN's deeper layers (default {DEFAULT_OUTER_LIB}: sums of "
                        "edge functions, optionally squared, so a square of a shifted square gives a "
                        "variable's quadratic and quartic terms from one edge); 'same' uses --lib")
    p.add_argument("--weight-simple", type=float, default=0.0,
                   help="pykan's preference for simple functions over fit quality when snapping "
                        "(0: best R² wins; pykan's default 0.8 favours x^2 over x^4)")
    p.add_argument("--samples", type=int, default=1000,
                   help="training samples the edge functions are snapped on (seeded subset; default "
                        "1000: pykan's grid search over each edge's affine constants scales with it)")
    p.add_argument("--refit-steps", type=int, default=200,
                   help="L-BFGS iterations re-fitting the symbolic formula's constants to the training "
                        "data after snapping (pykan's workflow; 0: none)")
    p.add_argument("--prune", action=argparse.BooleanOptionalAction, default=True, help="prune the KAN first (default on)")
    p.add_argument("--node-threshold", type=float, default=1e-2, help="pykan prune: node attribution threshold")
    p.add_argument("--edge-threshold", type=float, default=3e-2, help="pykan prune: edge attribution threshold")
    p.add_argument("--tolerance", type=float, default=1e-2,
                   help="drop terms whose |coefficient| is below this fraction of the largest (default 0.01)")
    p.add_argument("--grid", type=int, default=7, help="HNN: grid points per axis (default 7)")
    p.add_argument("--output-dir", default=None, help="folder for the KAN plot (default: <run folder>/symbolic)")
    p.add_argument("--verbose", action="store_true", help="show pykan's fitting messages")
    return p


# ----------------------------------------------------------------------------- loading
def _class_paths(ckpt: Path, state: dict) -> tuple[str, str]:
    info = state.get("stiffml") or {}
    if info.get("model") and info.get("datamodule"):
        return info["model"], info["datamodule"]
    import yaml

    from stiffml.evaluation.free_run import run_folder

    config = run_folder(ckpt) / "config.yaml"
    if not config.exists():
        raise ValueError(f"checkpoint {ckpt} names no model class and there is no {config} to read it from")
    cfg = yaml.safe_load(config.read_text())
    return cfg["model"]["class_path"], cfg["data"]["class_path"]


def _resolve(path: str, kind: str) -> type:
    from stiffml import registry

    if "." not in path:
        return registry.get_model(path) if kind == "models" else registry.get_datamodule(path)
    return registry.import_class(path)


def _init_names(cls: type) -> set[str]:
    """The arguments ``cls(...)`` takes: its own, and where it passes ``**kwargs`` on, those of the
    next ``__init__`` up its bases (as jsonargparse resolves them)."""
    import inspect

    params = inspect.signature(cls.__init__).parameters
    names = {n for n, p in params.items() if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        parent = next((b for b in cls.__mro__[1:] if "__init__" in vars(b)), None)
        if parent is not None and parent is not object:
            names |= _init_names(parent)
    return names


def load(ckpt_path: str) -> tuple[Any, Any]:
    """The model (float64, CPU) and its datamodule (set up) from a checkpoint."""
    from stiffml.training.checkpoints import load_checkpoint

    ckpt = Path(ckpt_path)
    state = load_checkpoint(ckpt)
    model_path, dm_path = _class_paths(ckpt, state)
    model_cls, dm_cls = _resolve(model_path, "models"), _resolve(dm_path, "datamodules")
    model = model_cls.load_from_checkpoint(ckpt, map_location="cpu").double().eval()
    hp = dict(state.get("datamodule_hyper_parameters") or {})
    accepted = _init_names(dm_cls)
    dm = dm_cls(**{k: v for k, v in hp.items() if k in accepted})
    if dm.representation is None:
        dm.set_representation(model_cls.consumes(dict(model.hparams)))
    dm.setup("fit")
    return model, dm


# ------------------------------------------------------------------------------ formulas
def polynomial_terms(expr: Any, variables: list[Any]) -> dict[tuple[int, ...], float] | None:
    """``{exponents: coefficient}`` of an expanded polynomial, or None if ``expr`` is not one."""
    import sympy

    expr = sympy.expand(expr)
    try:
        poly = sympy.Poly(expr, *variables)
    except sympy.PolynomialError:
        return None
    if any(not c.is_number for c in poly.coeffs()):
        return None
    return {m: float(c) for m, c in poly.terms()}


def prune_terms(terms: dict[tuple[int, ...], float], tolerance: float) -> dict[tuple[int, ...], float]:
    """Drop terms below ``tolerance`` × the largest |coefficient|."""
    if not terms:
        return {}
    top = max(abs(c) for c in terms.values())
    return {m: c for m, c in terms.items() if abs(c) >= tolerance * top}


def normalise_lagrangian(terms: dict[tuple[int, ...], float], d: int = 1) -> dict[tuple[int, ...], float]:
    """Remove what leaves the Euler–Lagrange equations unchanged and fix L's scale.

    Drops the constant and every term linear in the velocities (for polynomials these are
    ``f(q)·q̇``, total time derivatives) and rescales so the first velocity's ``q̇²`` term is ½.
    """
    kept = {m: c for m, c in terms.items() if sum(m) > 0 and sum(m[d:]) != 1}
    v2 = tuple([0] * d + [2] + [0] * (d - 1))
    if kept.get(v2, 0.0) == 0.0:
        return kept
    scale = 0.5 / kept[v2]
    return {m: c * scale for m, c in kept.items()}


def dropped_line(full: dict[tuple[int, ...], float], kept: dict[tuple[int, ...], float], names: list[str],
                 tolerance: float) -> str:
    """Say what :func:`prune_terms` removed, so a clean-looking formula can be judged."""
    dropped = {m: c for m, c in full.items() if m not in kept}
    if not dropped:
        return "  dropped:    nothing"
    m, c = max(dropped.items(), key=lambda kv: abs(kv[1]))
    return (f"  dropped:    {len(dropped)} terms below {tolerance:g} x the largest |coefficient|; the largest "
            f"of them: {format_terms({m: c}, names)}")


def format_terms(terms: dict[tuple[int, ...], float], names: list[str], digits: int = 4) -> str:
    """A readable polynomial, highest total degree first."""
    if not terms:
        return "0"
    parts = []
    for m, c in sorted(terms.items(), key=lambda kv: (-sum(kv[0]), kv[0])):
        mono = "·".join(f"{n}^{e}" if e > 1 else n for n, e in zip(names, m) if e)
        coef = f"{abs(c):.{digits}g}"
        body = coef if not mono else (mono if coef == "1" else f"{coef}·{mono}")
        parts.append(("- " if c < 0 else "+ ") + body)
    text = " ".join(parts)
    return text[2:] if text.startswith("+ ") else "-" + text[1:]


def compare(learned: dict, true: dict, names: list[str]) -> tuple[bool, list[str]]:
    """Whether the two polynomials have the same terms, and one line per term."""
    lines = []
    for m in sorted(set(learned) | set(true), key=lambda m: (-sum(m), m)):
        mono = "·".join(f"{n}^{e}" if e > 1 else n for n, e in zip(names, m) if e) or "1"
        a, b = learned.get(m), true.get(m)
        if a is not None and b is not None:
            lines.append(f"  {mono:>12}: learned {a:+.5g}, true {b:+.5g} (rel. error {abs(a - b) / abs(b):.2%})")
        elif a is not None:
            lines.append(f"  {mono:>12}: learned {a:+.5g}, not in the true formula")
        else:
            lines.append(f"  {mono:>12}: missing (true {b:+.5g})")
    return set(learned) == set(true), lines


def _lib(text: str, flag: str) -> list[str]:
    from kan.utils import SYMBOLIC_LIB

    lib = [f.strip() for f in text.split(",") if f.strip()]
    bad = [f for f in lib if f not in SYMBOLIC_LIB]
    if bad or not lib:
        raise ValueError(f"unknown {flag} function(s) {bad or text!r}; valid: {sorted(SYMBOLIC_LIB)}")
    return lib


def snap_symbolic(net: Any, libs: list[list[str]], weight_simple: float = 0.0) -> None:
    """pykan's ``auto_symbolic`` with one function library per layer (``libs[l]``, the last
    repeated): each live edge is fixed to its best-fitting function, pruned edges to 0."""
    for l in range(net.depth):
        lib = libs[min(l, len(libs) - 1)]
        for i in range(net.width_in[l]):
            for j in range(net.width_out[l + 1]):
                if net.act_fun[l].mask[i][j] == 0:
                    net.fix_symbolic(l, i, j, "0", verbose=False, log_history=False)
                    continue
                name = net.suggest_symbolic(l, i, j, lib=lib, verbose=False, weight_simple=weight_simple)[0]
                net.fix_symbolic(l, i, j, name, verbose=False, log_history=False)


def refit(net: Any, loss_fn: Any, steps: int) -> float:
    """Re-fit the snapped formula's constants by L-BFGS on ``loss_fn(net)``; returns the final loss."""
    params = [p for p in net.parameters() if p.requires_grad]
    if steps <= 0 or not params:
        return float("nan")
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=steps, history_size=50, line_search_fn="strong_wolfe",
                            tolerance_grad=0.0, tolerance_change=0.0)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = loss_fn(net)
        loss.backward()
        return loss

    opt.step(closure)
    return float(loss_fn(net).detach())


def kan_formulas(net: Any, x: torch.Tensor, names: list[str], opts: argparse.Namespace, out_dir: Path | None,
                 loss_fn: Any = None) -> tuple[list[Any], float]:
    """pykan's symbolic formulas (one per output) of a copy of ``net`` fitted on inputs ``x``,
    and the training loss of the snapped, re-fitted formula (NaN without ``loss_fn``)."""
    import sympy

    net = copy.deepcopy(net)
    net.save_act, net.symbolic_enabled, net.auto_save = True, True, False
    lib = _lib(opts.lib, "--lib")
    outer = lib if opts.outer_lib == "same" else _lib(opts.outer_lib, "--outer-lib")
    quiet = contextlib.nullcontext() if opts.verbose else contextlib.redirect_stdout(io.StringIO())
    if len(x) > opts.samples:
        x = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[: opts.samples]]
    with quiet, torch.no_grad():
        net(x)
        if opts.prune:
            net.attribute()
            net = net.prune_node(opts.node_threshold, log_history=False)
            net.auto_save = False  # pykan's prune_node returns a model with auto_save on
            net(x)
            net.attribute()
            net.prune_edge(opts.edge_threshold, log_history=False)
            net(x)
        if out_dir is not None:
            _plot_kan(net, out_dir, names)
        snap_symbolic(net, [lib, outer], opts.weight_simple)
    net.save_act = False
    with quiet:
        final = refit(net, loss_fn, opts.refit_steps) if loss_fn is not None else float("nan")
        symbols = sympy.symbols(names)
        formulas = net.symbolic_formula(var=list(symbols))[0]
    return formulas, final


def _plot_kan(net: Any, out_dir: Path, names: list[str]) -> None:
    """pykan's diagram of the (pruned) network, written into the run's folder only."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    net.plot(folder=str(out_dir / "kan_activations"), in_vars=names)
    plt.savefig(out_dir / "kan.png", bbox_inches="tight", dpi=120)
    plt.close("all")


# ------------------------------------------------------------------------------- reports
def report_kanlnn(model: Any, dm: Any, opts: argparse.Namespace, out_dir: Path | None) -> str:
    import sympy

    d = model.hparams.n_inputs // 2
    names = [f"q{i}" if d > 1 else "q" for i in range(d)] + [f"qdot{i}" if d > 1 else "qdot" for i in range(d)]
    from stiffml.models.physics.mechanics import euler_lagrange_residual_loss

    x, dx = (t.double() for t in dm.samples.batch(dm.train_idx))

    def residual(net: Any) -> torch.Tensor:  # the KANLNN training objective, on the formula
        return euler_lagrange_residual_loss(lambda u: net(u).reshape(-1), x, dx)

    (formula,), final = kan_formulas(model.lagrangian, x, names, opts, out_dir, residual)
    syms = sympy.symbols(names)
    lines = [f"{type(model).__name__}: Lagrangian learned by the KAN (pykan symbolic snapping; lib {opts.lib}, "
             f"outer layers {opts.outer_lib}; constants re-fitted: residual {final:.3g})",
             f"  raw:        L = {sympy.N(formula, 5)}"]
    terms = polynomial_terms(formula, list(syms))
    if terms is None:
        lines.append("  the formula is not a polynomial in (q, q̇): no term-by-term comparison (try --lib x,x^2,x^3,x^4)")
        return "\n".join(lines)
    full = normalise_lagrangian(terms, d)
    learned = prune_terms(full, opts.tolerance)
    lines += [f"  normalised: L = {format_terms(learned, names)}", dropped_line(full, learned, names, opts.tolerance)]
    lagr = dm.system.lagrangian
    if lagr is None:
        return "\n".join(lines + ["  (the system defines no Lagrangian to compare with)"])
    true_expr = lagr(*syms)
    true = normalise_lagrangian(polynomial_terms(true_expr, list(syms)) or {}, d)
    lines.append(f"  true:       L = {format_terms(true, names)}   ({dm.system!r})")
    same, rows = compare(learned, true, names)
    lines.append("  terms: " + ("the same as the true Lagrangian's" if same else "DIFFER from the true Lagrangian's"))
    return "\n".join(lines + rows)


def report_kan(model: Any, dm: Any, opts: argparse.Namespace, out_dir: Path | None) -> str:
    import sympy

    names = list(dm.system.state_names)
    x, dx = (t.double() for t in dm.samples.batch(dm.train_idx))
    formulas, final = kan_formulas(model.net, x, names, opts, out_dir, lambda net: (net(x) - dx).pow(2).mean())
    syms = sympy.symbols(names)
    true_field = dm.system.rhs(0.0, np.array(syms, dtype=object))
    lines = [f"{type(model).__name__}: field learned by the KAN (pykan symbolic snapping; lib {opts.lib}, outer "
             f"layers {opts.outer_lib}; constants re-fitted: MSE {final:.3g})"]
    scaler = dm.target_scaler
    if scaler.kind != "none":
        lines.append(f"  (formulas in {scaler.kind}-normalised units)")
    all_same = True
    for i, name in enumerate(names):
        lines.append(f"  d{name}/dt raw: {sympy.N(formulas[i], 5)}")
        terms = polynomial_terms(formulas[i], list(syms))
        if terms is None:
            lines.append("    not a polynomial: no term-by-term comparison")
            all_same = False
            continue
        learned = prune_terms(terms, opts.tolerance)
        true = polynomial_terms(true_field[i], list(syms)) or {}
        true = {m: c for m, c in true.items() if c != 0}
        lines.append(f"    learned: {format_terms(learned, names)}")
        lines.append("  " + dropped_line(terms, learned, names, opts.tolerance))
        lines.append(f"    true:    {format_terms(true, names)}")
        same, rows = compare(learned, true, names)
        all_same &= same
        lines.extend(rows)
    lines.append("  terms: " + ("the same as the true field's" if all_same else "DIFFER from the true field's"))
    return "\n".join(lines)


def report_hnn(model: Any, dm: Any, opts: argparse.Namespace) -> str:
    y = dm.reference
    lo, hi = np.percentile(y, 5, axis=0), np.percentile(y, 95, axis=0)
    if y.shape[1] != 2:
        raise ValueError("the HNN grid report covers two-state systems (q, p)")
    qs, ps = np.linspace(lo[0], hi[0], opts.grid), np.linspace(lo[1], hi[1], opts.grid)
    grid = np.array([[q, p] for q in qs for p in ps])
    with torch.no_grad():
        u = torch.as_tensor(np.vstack([np.zeros((1, 2)), grid]), dtype=torch.float64)
        h = model.energy(u).numpy()
    learned = h[1:] - h[0]
    true_fn = dm.system.energy
    lines = [f"{type(model).__name__}: learned H on a {opts.grid}×{opts.grid} grid over the data "
             f"(5th–95th percentiles), shifted so H(0, 0) = 0"]
    true = None if true_fn is None else true_fn(grid) - true_fn(np.zeros(2))
    lines.append(f"  {'q':>8} {'p':>8} {'H learned':>12}" + (f" {'H true':>12} {'diff':>10}" if true is not None else ""))
    for i, (q, p) in enumerate(grid):
        row = f"  {q:8.3f} {p:8.3f} {learned[i]:12.5f}"
        if true is not None:
            row += f" {true[i]:12.5f} {learned[i] - true[i]:+10.2e}"
        lines.append(row)
    if true is not None:
        rel = np.sqrt(np.mean((learned - true) ** 2)) / np.sqrt(np.mean(true**2))
        lines.append(f"  relative RMS difference over the grid: {rel:.3e} ({dm.system!r})")
    if hasattr(model, "dissipation_matrix") and model.hparams.get("dissipation") != "state":
        r = model.dissipation_matrix().detach().numpy()
        lines.append("  learned dissipation R (u̇ = (J − R)∇H):")
        lines.extend("    [" + ", ".join(f"{v:+.5f}" for v in row) + "]" for row in r)
        gamma = dm.system.params.get("gamma")
        if gamma is not None:
            lines.append(f"  learned damping R_pp = {r[1, 1]:.5f}, true γ = {gamma:g}"
                         + (f" (rel. error {abs(r[1, 1] - gamma) / gamma:.2%})" if gamma else ""))
    return "\n".join(lines)


def report(model: Any, dm: Any, opts: argparse.Namespace, out_dir: Path | None) -> str:
    """The symbolic report for a loaded model."""
    from stiffml.models.physics import HNN, KAN, KANLNN

    if model.symbolic_report is not None:  # its figures go to the run's symbolic folder too
        return model.symbolic_report(dm, argparse.Namespace(**{**vars(opts), "output_dir": out_dir}))
    if isinstance(model, KANLNN):
        return report_kanlnn(model, dm, opts, out_dir)
    if isinstance(model, KAN):
        return report_kan(model, dm, opts, out_dir)
    if isinstance(model, HNN):
        return report_hnn(model, dm, opts)
    raise ValueError(
        f"{type(model).__name__} has no symbolic form; available for KAN, KANLNN, HNN, DissipativeHNN "
        "(or a model with a symbolic_report method)"
    )


def main(argv: list[str]) -> int:
    opts = build_parser().parse_args(argv)
    if opts.grid < 2 or not 0 <= opts.tolerance < 1 or opts.samples < 10:
        raise ValueError(
            f"--grid must be >= 2, --tolerance in [0, 1) and --samples >= 10, got {opts.grid}, "
            f"{opts.tolerance}, {opts.samples}"
        )
    previous, threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)
    # pykan's pruning rebuilds its network in the default dtype; its fits are many tiny ops, so
    # threads only add overhead
    torch.set_num_threads(1)
    try:
        model, dm = load(opts.ckpt)
        from stiffml.evaluation.free_run import run_folder

        out_dir = Path(opts.output_dir) if opts.output_dir else run_folder(opts.ckpt) / "symbolic"
        print(report(model, dm, opts, out_dir))
    finally:
        torch.set_default_dtype(previous)
        torch.set_num_threads(threads)
    return 0
