"""The solver registry: every method is one class with declared capabilities, and the
declarations are true (each is checked by running the method)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from stiffml.evaluation.rollout import RolloutSettings, integrate_field
from stiffml.solvers import (
    CAPABILITIES, REGISTRY, BDF, Radau, Solver, StepBudgetExceeded, get_solver, integrate, solver_class,
    solver_names,
)
from stiffml.systems import Robertson
from ..conftest import CONF

TORCH = solver_names(backend="torch")


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_method_is_a_class_declaring_its_capabilities(name: str) -> None:
    cls = solver_class(name)
    assert issubclass(cls, Solver) and cls.name == name and cls.backend == REGISTRY[name][0]
    caps = cls.capabilities()
    assert set(caps) == set(CAPABILITIES) and all(isinstance(v, bool) for v in caps.values())
    assert (cls.budget_per is None) == (not cls.step_budget), name
    assert cls.__doc__ and cls.__doc__.strip(), f"{name} has no docstring"


def test_filters_by_backend_and_capability() -> None:
    assert solver_names(backend="scipy") == ("Radau", "BDF", "LSODA")
    assert solver_names(backend="roadrunner") == ("CVODE",)
    fixed = solver_names(backend="torch", adaptive=False)
    assert "rk4" in fixed and "dopri5" not in fixed and "rosenbrock23" not in fixed
    assert solver_names(backend="torch", implicit=True) == ("rosenbrock23",)
    assert set(solver_names(adjoint=True)) == set(TORCH) - {"rosenbrock23"}
    with pytest.raises(ValueError, match=r"unknown solver capabilities \['stiff'\]"):
        solver_names(stiff=True)


def test_get_solver_errors_name_the_bad_value() -> None:
    with pytest.raises(ValueError, match=r"unknown ODE solver 'radau'; valid: \['Radau'"):
        get_solver("radau")
    with pytest.raises(ValueError, match=r"unknown ODE solver 'dopri5'; valid: \['Radau', 'BDF', 'LSODA'\]"):
        get_solver("dopri5", backend="scipy")
    with pytest.raises(ValueError, match=r"solver 'Radau' takes no option\(s\) \['step_size'\]"):
        get_solver("Radau", step_size=0.1)
    with pytest.raises(ValueError, match="max_step must be positive, got -1"):
        Radau(max_step=-1)
    with pytest.raises(ValueError, match=r"solver 'rk4' runs on torch; here valid: \['Radau'"):
        get_solver(get_solver("rk4", step_size=0.1), backend="scipy")
    with pytest.raises(ValueError, match="fixed-step solver 'rk4' needs step_size"):
        integrate(lambda t, y: -y, torch.ones(1, 1), torch.linspace(0, 1, 3), method="rk4")


@pytest.mark.parametrize("name", solver_names(backend="scipy"))
def test_scipy_objects_solve_like_their_names(name: str) -> None:
    system = Robertson()
    t = np.geomspace(1e-5, 1e3, 40)
    by_name = system.solve(t, method=name, rtol=1e-8, atol=1e-12)
    by_object = system.solve(t, method=get_solver(name), rtol=1e-8, atol=1e-12)
    np.testing.assert_array_equal(by_name.y, by_object.y)
    # an option reaches solve_ivp: a bounded step takes more steps
    bounded = system.solve(t, method=solver_class(name)(max_step=1.0), rtol=1e-8, atol=1e-12)
    assert bounded.nfev > by_name.nfev
    np.testing.assert_allclose(bounded.y, by_name.y, rtol=1e-4, atol=1e-10)


@pytest.mark.parametrize("name", [n for n in TORCH if solver_class(n).step_budget])
def test_declared_step_budgets_are_honoured(name: str) -> None:
    k = torch.tensor([[50.0]], dtype=torch.float64)
    with pytest.raises(StepBudgetExceeded, match=f"{name} exceeded its step budget of 2 steps"):
        integrate(lambda _t, y: -k * y, torch.ones(1, 1, dtype=torch.float64),
                  torch.tensor([0.0, 1.0], dtype=torch.float64), method=name, rtol=1e-10, atol=1e-12, max_steps=2)


@pytest.mark.parametrize("name", ["rosenbrock23", "dopri5", "rk4"])
def test_declared_differentiable_methods_give_gradients(name: str) -> None:
    k = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    solver = get_solver(name, step_size=1e-3) if name == "rk4" else get_solver(name)
    assert solver.differentiable
    y = integrate(lambda _t, y: -k * y, torch.ones(1, 1, dtype=torch.float64),
                  torch.tensor([0.0, 1.0], dtype=torch.float64), method=solver, rtol=1e-10, atol=1e-12)
    (grad,) = torch.autograd.grad(y[-1, 0, 0], k)
    assert abs(float(grad) - (-np.exp(-0.7))) < 1e-5  # d/dk e^{-k} at t = 1


def test_declared_implicit_torch_method_handles_stiffness_explicit_does_not() -> None:
    # y1' = -y1, y2' = -1e5 (y2 - y1): y2 follows y1 on a 1e-5 time scale; an explicit method's
    # step is bound by that scale for stability, an implicit one's only by accuracy
    def f(t, y):
        return torch.stack([-y[:, 0], -1e5 * (y[:, 1] - y[:, 0])], dim=1)

    t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    y0 = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    assert get_solver("rosenbrock23").implicit and not get_solver("dopri5").implicit
    y = integrate(f, y0, t, method="rosenbrock23", rtol=1e-6, atol=1e-9, max_steps=2000)
    assert abs(float(y[-1, 0, 1]) - np.exp(-1.0)) < 1e-4
    with pytest.raises(StepBudgetExceeded):
        integrate(f, y0, t, method="dopri5", rtol=1e-6, atol=1e-9, max_steps=2000)


def test_rollout_settings_take_solver_objects() -> None:
    settings = RolloutSettings(solver=BDF(max_step=0.5), atol=1e-9)
    z0 = torch.tensor([[1.0], [2.0]], dtype=torch.float64)
    out = integrate_field(lambda t, z: -z, z0, np.linspace(0, 2, 5), settings)
    np.testing.assert_allclose(out[-1, :, 0], [np.exp(-2), 2 * np.exp(-2)], rtol=1e-4)
    fixed = integrate_field(lambda t, z: -z, z0, np.linspace(0, 2, 201),
                            RolloutSettings(solver=get_solver("rk4", step_size=0.001), atol=1e-9))
    np.testing.assert_allclose(fixed[-1, :, 0], [np.exp(-2), 2 * np.exp(-2)], rtol=1e-8)
    with pytest.raises(ValueError, match="rollout solver 'CVODE' runs on roadrunner"):
        RolloutSettings(solver=get_solver("CVODE"))
    assert RolloutSettings(solver=Radau()).resolved("BDF", 1e-9).solver == Radau()


def test_systems_use_the_registry_without_importing_torch() -> None:
    code = ("import sys, stiffml.systems as s; from stiffml.solvers import get_solver, solver_names; "
            "get_solver('Radau'); print(s.STIFF_METHODS, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "('Radau', 'BDF', 'LSODA') False"


@pytest.mark.slow
def test_cli_configures_the_free_run_solver_as_an_object(cli, tmp_path) -> None:
    import yaml

    code = cli("fit", "--config", CONF / "bz_odenet_tiny.yaml", "--trainer.max_steps", 2,
               "--rollout.solver.class_path", "stiffml.solvers.BDF", "--rollout.solver.init_args.max_step", 0.5,
               "--trainer.default_root_dir", tmp_path)
    assert code == 0
    cfg = yaml.safe_load(next(tmp_path.glob("lightning_logs/version_0/config.yaml")).read_text())
    assert cfg["rollout"]["solver"]["class_path"] in ("stiffml.solvers.BDF", "stiffml.solvers.scipy_solvers.BDF")
    assert cfg["rollout"]["solver"]["init_args"] == {"first_step": None, "max_step": 0.5}
