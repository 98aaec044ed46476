"""The differentiable (torch) engine through SBML events: values as the numpy engine gives them,
gradients as the implicit-function theorem gives them, checked against finite differences."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("roadrunner")

from stiffml.sbml.suite import find_cases  # noqa: E402
from stiffml.sbml.system import SBMLSystem  # noqa: E402
from stiffml.sbml.torch_events import TorchEventSimulator  # noqa: E402

CASES = Path(__file__).parents[1] / "sbml_cases"
TIMES = np.linspace(0.0, 5.0, 11)


def _setting(case: Path, key: str) -> list[str]:
    settings = next(case.glob("*-settings.txt")).read_text()
    line = next(ln for ln in settings.splitlines() if ln.startswith(f"{key}:"))
    return [v.strip() for v in line.split(":", 1)[1].split(",") if v.strip()]


def _variables(case: Path) -> list[str]:
    return _setting(case, "variables")


def _model(tmp_path: Path, text: str) -> Path:
    import antimony

    antimony.clearPreviousLoads()
    assert antimony.loadAntimonyString(text) >= 0, antimony.getLastError()
    path = tmp_path / "model.xml"
    path.write_text(antimony.getSBMLString(antimony.getMainModuleName()))
    return path


def _gradient(path: Path, name: str, variables: list[str], times=TIMES, weights: np.ndarray | None = None,
              **fixed) -> tuple[np.ndarray, np.ndarray]:
    """d outputs / d constant ``name``: torch autograd and central differences of the numpy engine;
    with ``weights`` (one per output time) those of the weighted sums over time, one backward pass
    per variable."""
    s = SBMLSystem(path, **fixed)
    j = s.math.constant_ids.index(name)
    c = torch.tensor(np.asarray(s.constants, dtype=np.float64), requires_grad=True)
    out = TorchEventSimulator(s).simulate(times, variables, constants=c, rtol=1e-9, atol=1e-11)
    if weights is not None:
        out = torch.as_tensor(weights) @ out
    grad = _jacobian_column(out, c, j)
    h = 1e-6 * max(abs(s.constants[j]), 1.0)
    value = float(s.constants[j])
    up = SBMLSystem(path, **{**fixed, name: value + h}).simulate(times, variables, engine="generated", rtol=1e-12, atol=1e-14)
    down = SBMLSystem(path, **{**fixed, name: value - h}).simulate(times, variables, engine="generated", rtol=1e-12, atol=1e-14)
    fd = (up - down) / (2 * h)
    return grad, fd if weights is None else weights @ fd


def _jacobian_column(out: torch.Tensor, c: torch.Tensor, j: int) -> np.ndarray:
    rows = []
    flat = out.reshape(-1)
    for i in range(flat.numel()):
        (g,) = torch.autograd.grad(flat[i], c, retain_graph=True, allow_unused=True)
        rows.append(0.0 if g is None else float(g[j]))
    return np.asarray(rows).reshape(out.shape)


# one event case in the quick loop, the other cases (jumps of the field, delayed events...) in the slow set
MOVING = ("00009",)


@pytest.mark.parametrize("case", [c if c.name in MOVING else pytest.param(c, marks=pytest.mark.slow)
                                  for c in find_cases(CASES) if c.name != "00030"], ids=lambda p: getattr(p, "name", p))
def test_torch_engine_values_agree_with_the_numpy_engine(case: Path) -> None:
    s = SBMLSystem(next(case.glob("*-sbml-*.xml")))
    variables = _variables(case)
    amounts = _setting(case, "amount")
    ref = s.simulate(TIMES, variables, amounts=amounts, engine="generated", rtol=1e-12, atol=1e-14)
    out = TorchEventSimulator(s).simulate(TIMES, variables, amounts=amounts, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(out.detach().numpy(), ref, rtol=1e-6, atol=1e-8, err_msg=case.name)


@pytest.mark.slow  # the finite-difference checks below cover event gradients in the quick loop
def test_gradient_through_a_state_triggered_event_matches_the_analytic_one(tmp_path: Path) -> None:
    # S1 decays; when it falls below 1/2 it is reset to 1, at t* = ln 2 / k (which depends on k):
    # after the reset S1 = 2 e^{-k t}, so dS1/dk = -t S1 on both sides of the event
    path = _model(tmp_path, "model m\n compartment C = 1; species S1 in C\n J1: S1 -> ; k1*S1\n k1 = 0.7; S1 = 1\n"
                            " E1: at (S1 < 0.5): S1 = 1\nend")
    times = np.linspace(0.0, 1.8, 10)  # t* = 0.99; the next reset would be at 1.98
    grad, fd = _gradient(path, "k1", ["S1"], times)
    s1 = SBMLSystem(path).simulate(times, ["S1"], engine="generated", rtol=1e-12, atol=1e-14)[:, 0]
    np.testing.assert_allclose(grad[:, 0], -times * s1, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(grad, fd, rtol=1e-4, atol=1e-7)
    # without the event-time derivative the gradient after the event would be -(t - t*) S1: far off
    after = times > np.log(2) / 0.7
    assert np.all(np.abs(grad[after, 0] - (-(times[after] - np.log(2) / 0.7) * s1[after])) > 0.1 * np.abs(s1[after]))


@pytest.mark.parametrize(("case", "name"), [
    pytest.param("00023", "k1", marks=pytest.mark.slow),  # an event changes the rate constant at t = 2
    pytest.param("00028", "k1", marks=pytest.mark.slow),  # delayed executions, values at trigger / execution
    pytest.param("00029", "k1", marks=pytest.mark.slow),  # a cancelled and a persistent delayed event
    pytest.param("00031", "k1", marks=pytest.mark.slow),  # an event resizes a compartment
])
def test_gradients_through_events_match_finite_differences(case: str, name: str) -> None:
    path = next((CASES / case).glob("*-sbml-*.xml"))
    variables = [v for v in _variables(CASES / case) if v != name]
    # random weights over the output times (off the event times' one-sided derivatives) make each
    # variable's gradient one backward pass; a wrong entry would show in the weighted sum
    times = np.linspace(0.0, 5.0, 8)
    weights = np.random.default_rng(0).uniform(0.5, 1.5, times.size)
    grad, fd = _gradient(path, name, variables, times, weights)
    np.testing.assert_allclose(grad, fd, rtol=1e-4, atol=1e-6, err_msg=case)


@pytest.mark.slow
def test_gradient_with_respect_to_an_event_threshold_and_the_initial_state(tmp_path: Path) -> None:
    path = _model(tmp_path, "model m\n compartment C = 1; species S1 in C\n J1: S1 -> ; k1*S1\n k1 = 0.7; S1 = 1\n"
                            " th = 0.5\n E1: at (S1 < th): S1 = 1\nend")
    times = np.linspace(0.0, 1.8, 10)
    grad, fd = _gradient(path, "th", ["S1"], times)
    np.testing.assert_allclose(grad, fd, rtol=1e-4, atol=1e-7)
    assert np.abs(grad[-1, 0]) > 0.1  # the threshold moves the reset time, hence S1 after it
    s = SBMLSystem(path)
    y0 = torch.tensor(np.asarray(s.y0, dtype=np.float64), requires_grad=True)
    out = s.simulate_torch(times, ["S1"], y0=y0, rtol=1e-10, atol=1e-12)
    (g,) = torch.autograd.grad(out[-1, 0], y0)
    # S1(0) = a: t* = ln(2a)/k, after it S1 = e^{-k(t - t*)} = 2a e^{-kt}: dS1(t)/da = 2 e^{-kt}
    assert float(g[0]) == pytest.approx(2 * np.exp(-0.7 * times[-1]), rel=1e-5)


@pytest.mark.slow
def test_gradient_through_a_breakpoint_of_the_field(tmp_path: Path) -> None:
    # x' = a before tb, -1 after: x = a t, then a tb - (t - tb); d x / d tb = a + 1 after tb
    path = _model(tmp_path, "model m\n x' = piecewise(a, time < tb, -1)\n x = 0; a = 1; tb = 2\nend")
    times = np.linspace(0.0, 4.0, 9)
    grad, fd = _gradient(path, "tb", ["x"], times)
    np.testing.assert_allclose(grad[:, 0], np.where(times > 2, 2.0, 0.0), atol=1e-6)
    off = times != 2.0  # at the kink itself a central difference averages the one-sided derivatives
    np.testing.assert_allclose(grad[off], fd[off], atol=1e-5)
