"""The neural-ODE family and the differentiable stiff solver."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from stiffml.evaluation.rollout import RolloutSettings

from stiffml import StiffDataModule, StiffSystem
from stiffml.models import ODENet
from stiffml.solvers import SOLVERS, integrate, rosenbrock23
from stiffml.solvers import FIXED_STEP
from stiffml.systems import get_system

from ..conftest import CONF, REPO as ROOT, assert_one_line_error, logged_events


def rober(t, y):
    y1, y2, y3 = y.unbind(-1)
    return torch.stack([-0.04 * y1 + 1e4 * y2 * y3, 0.04 * y1 - 1e4 * y2 * y3 - 3e7 * y2**2, 3e7 * y2**2], -1)


def vdp(t, y):
    x, v = y.unbind(-1)
    return torch.stack([v, 80 * (1 - x**2) * v - x], -1)


@pytest.mark.parametrize(("name", "func", "times", "y0"), [
    pytest.param("robertson", rober, [0, 1e-3, 1, 40, 1e3, 1e5], [1.0, 0.0, 0.0], marks=pytest.mark.slow),
    ("vdp", vdp, [0, 1, 10, 30, 50], [2.0, 0.0]),
])
def test_rosenbrock23_matches_radau_to_1e6(name, func, times, y0) -> None:
    s = get_system(name)
    ref = s.solve(np.array(times[1:]), rtol=1e-12, atol=1e-16 if name == "robertson" else 1e-12).y
    t = torch.tensor(times, dtype=torch.float64)
    atol = 1e-12 if name == "robertson" else 1e-9
    out = rosenbrock23(func, torch.tensor([y0], dtype=torch.float64), t, rtol=3e-8, atol=atol)[1:, 0].numpy()
    rel = np.linalg.norm(out - ref, axis=1) / np.linalg.norm(ref, axis=1)
    assert rel.max() < 1e-6, rel


# slow: central differences over every parameter (about 10 s)
@pytest.mark.slow
def test_rosenbrock23_gradients_match_finite_differences() -> None:
    # Step sizes are constants to autograd (discretise-then-optimise) but move with the
    # parameters under finite differences; at tight tolerances that effect is negligible.
    k = torch.tensor([0.7, 50.0], dtype=torch.float64, requires_grad=True)

    def f(t, y):  # a stiff linear pair with a nonlinear coupling
        return torch.stack([-k[0] * y[:, 0] + y[:, 1] ** 2, -k[1] * (y[:, 1] - torch.sin(y[:, 0]))], -1)

    y0 = torch.tensor([[1.0, 0.2], [0.5, -0.3]], dtype=torch.float64)
    t = torch.tensor([0.0, 0.2, 0.5], dtype=torch.float64)
    loss = rosenbrock23(f, y0, t, rtol=1e-9, atol=1e-11)[-1].pow(2).sum()
    (grad,) = torch.autograd.grad(loss, k)
    eps = 1e-6
    for i in range(2):
        with torch.no_grad():
            k[i] += eps
            up = rosenbrock23(f, y0, t, rtol=1e-9, atol=1e-11)[-1].pow(2).sum()
            k[i] -= 2 * eps
            down = rosenbrock23(f, y0, t, rtol=1e-9, atol=1e-11)[-1].pow(2).sum()
            k[i] += eps
        assert float(grad[i]) == pytest.approx(float(up - down) / (2 * eps), rel=1e-5)


def test_adjoint_and_direct_gradients_agree() -> None:
    torch.manual_seed(0)
    model = ODENet(2, 2, hidden=8, solver="dopri5", rtol=1e-10, atol=1e-12).double()
    y0 = torch.tensor([[1.0, 0.5]], dtype=torch.float64)
    t = torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64)
    params = tuple(model.parameters())
    grads = []
    for adjoint in (False, True):
        out = integrate(model.field, y0, t, method="dopri5", rtol=1e-10, atol=1e-12, adjoint=adjoint, params=params)
        grads.append(torch.autograd.grad(out[-1].pow(2).sum(), params))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)


def test_batched_pairs_equal_per_pair_solves() -> None:
    dm = _linear_dm(representation="pair", spacing="log")
    dm.setup("fit")
    torch.manual_seed(0)
    model = ODENet(2, 2, hidden=8, rtol=1e-11, atol=1e-13).double()
    idx = torch.tensor([0, 5, 40, len(dm.samples) - 1])
    (z0, t0, t1), _ = dm.samples.batch(idx)
    together = model((z0, t0, t1))
    for i in range(4):
        alone = model((z0[i : i + 1], t0[i : i + 1], t1[i : i + 1]))
        torch.testing.assert_close(together[i : i + 1], alone, rtol=1e-8, atol=1e-10)
    assert float((t1 - t0).max() / (t1 - t0).min()) > 30  # very different spans in one solve


class Linear2(StiffSystem):
    """A damped rotation: a linear field an ODENet of depth 0 represents exactly."""

    name = "linear2"
    state_names = ("a", "b")
    defaults = {}
    default_y0 = (1.0, 0.0)
    t_span = (0.0, 5.0)
    dt = 0.05
    A = np.array([[-0.3, 2.0], [-2.0, -0.3]])

    def rhs(self, t, y):
        return np.tensordot(self.A, y, axes=1)

    def jac(self, t, y):
        return self.A


class LinearDataModule(StiffDataModule):
    system_class = Linear2


def _linear_dm(**kw):
    return LinearDataModule(normalization="none", **kw)


def _fit_lbfgs(model: ODENet, x, y, max_iter: int) -> None:
    """One full-batch L-BFGS step (strong Wolfe) of at most ``max_iter`` evaluations."""
    opt = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=max_iter, tolerance_grad=1e-30,
                            tolerance_change=1e-30, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = model.loss(model(x), y)
        loss.backward()
        return loss

    opt.step(closure)


def test_linear_field_is_learned_to_machine_precision() -> None:
    dm = _linear_dm(representation="derivative")
    dm.setup("fit")
    model = ODENet(2, 2, depth=0, mode="derivative", scale_output=False).double()
    x, y = dm.samples.batch(dm.train_idx)
    _fit_lbfgs(model, x, y, max_iter=200)
    learned = model.net[0].weight.detach().numpy()
    np.testing.assert_allclose(learned, Linear2.A, atol=1e-12)
    assert float(model.loss(model(x), y)) < 1e-24


@pytest.mark.parametrize("mode", ["pair", "segment", "shooting", "derivative"])
def test_each_mode_runs_through_the_cli(mode, cli, tmp_path) -> None:
    assert cli("fit", "--config", CONF / "bz_odenet_tiny.yaml", "--model.mode", mode, "--data.window", 3,
               "--trainer.max_steps", 4, "--trainer.limit_val_batches", 2, "--trainer.default_root_dir", tmp_path) == 0
    ckpt = torch.load(next(tmp_path.glob("lightning_logs/version_0/checkpoints/last.ckpt")), weights_only=False)
    assert bool(ckpt["state_dict"]["field_scale_set"])
    assert float(ckpt["state_dict"]["field_scale"].min()) > 0


@pytest.mark.parametrize("solver", ["rosenbrock23", pytest.param("dopri5", marks=pytest.mark.slow),
                                    pytest.param("Radau", marks=pytest.mark.slow)])
def test_validate_free_runs_with_every_kind_of_solver(solver, cli, tmp_path) -> None:
    """validate runs in inference mode; a torch solver's autograd Jacobian must still work there."""
    base = ["--config", CONF / "bz_odenet_tiny.yaml", "--trainer.default_root_dir", tmp_path]
    if not list(tmp_path.glob("lightning_logs/version_0/checkpoints/last.ckpt")):
        assert cli("fit", *base, "--trainer.max_steps", 2, "--trainer.limit_val_batches", 1) == 0
    ckpt = next(tmp_path.glob("lightning_logs/version_0/checkpoints/last.ckpt"))
    assert cli("validate", *base, "--ckpt_path", ckpt, "--rollout.solver", solver, "--rollout.rtol", "1e-4",
               "--rollout.atol", "1e-7", "--rollout.length", "20") == 0


@pytest.mark.slow
def test_free_run_of_the_true_field_reproduces_the_data() -> None:
    dm = _linear_dm(representation="pair")
    dm.setup("fit")
    model = ODENet(2, 2, depth=0, scale_output=False).double()
    with torch.no_grad():
        model.net[0].weight.copy_(torch.as_tensor(Linear2.A))
        model.net[0].bias.zero_()
    # one settings object for scipy's and the torch solvers (rosenbrock23 is of order 2: looser)
    for solver, rtol, tol in (("Radau", 1e-10, 1e-8), ("rosenbrock23", 1e-7, 1e-5), ("dopri5", 1e-10, 1e-7)):
        run = model.free_run(dm, RolloutSettings(solver=solver, rtol=rtol, atol=rtol * 1e-2))
        np.testing.assert_allclose(run["pred"], run["reference"], atol=tol, err_msg=solver)
    assert len(model.free_run(dm, RolloutSettings(length=7))["pred"]) == 7


BAD = [
    (["--model.solver", "rk45"], "unknown ODE solver 'rk45'; valid: ['rosenbrock23', 'dopri5'"),
    (["--model.rtol", "0"], "solver tolerances must be positive"),
    (["--model.solver", "rk4"], "fixed-step solver 'rk4' needs step_size"),
    (["--model.step_budget", "2"], "during training; no checkpoint was saved yet"),
    (["--model.adjoint", "true"], "adjoint gradients are available with torchdiffeq"),
]


@pytest.mark.parametrize(("args", "message"), BAD)
def test_bad_input(args, message, cli, tmp_path, capsys) -> None:
    code = cli("fit", "--config", CONF / "bz_odenet_tiny.yaml", "--trainer.default_root_dir", tmp_path, *args)
    assert_one_line_error(code, capsys, message)


# adaptive_heun needs about 6 s for its tolerance: in the slow set with the other long tests
@pytest.mark.parametrize("method", [pytest.param(m, marks=pytest.mark.slow) if m == "adaptive_heun" else m for m in SOLVERS])
def test_every_listed_solver_integrates_exponential_decay(method: str) -> None:
    # dy/dt = -k y on [0, 1] for a batch of rates: each advertised solver must really work
    k = torch.tensor([[0.5], [1.0], [2.0]], dtype=torch.float64)
    t = torch.linspace(0.0, 1.0, 6, dtype=torch.float64)
    step = 1e-3 if method in FIXED_STEP else None
    y = integrate(lambda _t, y: -k * y, torch.ones(3, 1, dtype=torch.float64), t, method=method,
                  rtol=1e-8, atol=1e-10, step_size=step)
    exact = torch.exp(-k.T * t[:, None]).unsqueeze(-1)
    tol = 1e-2 if method == "euler" else 1e-4
    assert y.shape == (6, 3, 1) and torch.allclose(y, exact, rtol=0, atol=tol), (method, (y - exact).abs().max())


@pytest.mark.slow
def test_explicit_model_flags_win_over_checkpoint_hparams(cli, tmp_path) -> None:
    import yaml

    tiny = CONF / "bz_odenet_tiny.yaml"
    assert cli("fit", "--config", tiny, "--model.mode", "derivative", "--trainer.max_steps", 2,
               "--trainer.limit_val_batches", 1, "--trainer.default_root_dir", tmp_path / "fit") == 0
    ckpt = next((tmp_path / "fit").glob("lightning_logs/version_0/checkpoints/last.ckpt"))
    for i, (flags, mode) in enumerate((([], "derivative"), (["--model.mode", "pair"], "pair"))):
        root = tmp_path / f"val-{mode}"
        assert cli("validate", "--config", tiny, "--ckpt_path", ckpt, *flags, "--trainer.limit_val_batches", 1,
                   "--rollout.length", 5, "--trainer.default_root_dir", root) == 0
        # a validation of a trained run is logged in that run's folder, one version per validation
        cfg = yaml.safe_load((ckpt.parent.parent / "validate" / f"version_{i}" / "config.yaml").read_text())
        assert cfg["model"]["init_args"]["mode"] == mode  # the checkpoint's unless given explicitly
        assert cfg["data"]["init_args"]["representation"] == {"derivative": "derivative", "pair": "pair"}[mode]


def test_relative_derivative_loss_weighs_slow_and_fast_samples_alike() -> None:
    model = ODENet(2, 2, mode="derivative", derivative_loss="relative")
    target = torch.tensor([[1e3, 0.0], [0.0, 1e-6]], dtype=torch.float64)
    pred = target * 1.1  # 10 % off on both samples, whatever their size
    assert model.loss(pred, target).item() == pytest.approx(0.01 / 2)
    scaled = ODENet(2, 2, mode="derivative")
    assert scaled.loss(pred, target).item() == pytest.approx((100.0**2) / 4)  # the fast sample dominates
    with pytest.raises(ValueError, match="unknown derivative_loss 'log'"):
        ODENet(2, 2, mode="derivative", derivative_loss="log")


@pytest.mark.slow  # about 10 s: forty solves of 500 steps with backpropagation
def test_trajectory_mode_learns_a_linear_field_to_1e8() -> None:
    """Kim et al.'s trajectory training: from a field 0.1 off, fitting whole-trajectory solves
    recovers the true linear field to 1e-8. A fixed-step rk4 (h = 0.005) keeps
    the loss smooth in the weights; with an adaptive solver the line search stalls where the step
    sequence changes."""
    # reference data solved to 1e-13, so the data do not limit the fit
    dm = _linear_dm(representation="trajectory", dt=0.25, t_span=(0.0, 2.5), ref_rtol=1e-13, ref_atol=1e-15)
    dm.setup("fit")
    model = ODENet(2, 2, depth=0, mode="trajectory", scale_output=False, solver="rk4", step_size=0.005).double()
    with torch.no_grad():  # the whole start is seeded (weights and bias), so every run is the same
        noise = torch.randn(2, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        model.net[0].weight.copy_(torch.as_tensor(Linear2.A) + 0.1 * noise[:, :2])
        model.net[0].bias.copy_(0.1 * noise[:, 2])
    x, y = dm.samples.batch(dm.train_idx)
    for _ in range(2):
        _fit_lbfgs(model, x, y, max_iter=20)
    np.testing.assert_allclose(model.net[0].weight.detach().numpy(), Linear2.A, atol=1e-8)
    # the bias, zero in truth, ends at 1.3e-8 whatever the step size or data accuracy: L-BFGS's floor
    np.testing.assert_allclose(model.net[0].bias.detach().numpy(), 0.0, atol=2e-8)


@pytest.mark.slow  # three tight adaptive solves with autograd Jacobians
def test_trajectory_batch_of_initial_states_equals_separate_solves() -> None:
    from stiffml.data.samples import TrajectorySamples

    torch.manual_seed(0)
    model = ODENet(2, 2, hidden=8, depth=1, mode="trajectory", scale_output=False, rtol=1e-9, atol=1e-11).double()
    t = torch.as_tensor(np.concatenate([[0.0], np.logspace(-3, 1, 15)]))
    y = torch.randn(3, 16, 2, dtype=torch.float64)  # three trajectories; only their starts matter here
    samples = TrajectorySamples(t, y)
    every = torch.arange(len(samples))
    together = model(samples.batch(every)[0])
    for j in range(3):
        alone = TrajectorySamples(t, y[j : j + 1])
        np.testing.assert_allclose(together[j * 16 : (j + 1) * 16].detach().numpy(),
                                   model(alone.batch(torch.arange(16))[0]).detach().numpy(), rtol=1e-6, atol=1e-8)
    # (adaptive steps are chosen for the whole batch, so the two agree to the solver's tolerance)


def test_grad_norm_rescales_every_step() -> None:
    model = ODENet(2, 2, hidden=4, depth=1, mode="derivative", grad_norm=100.0).double()
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.01)
    model.on_before_optimizer_step(None)
    total = torch.linalg.vector_norm(torch.cat([p.grad.ravel() for p in model.parameters()]))
    assert float(total) == pytest.approx(100.0, rel=1e-12)


@pytest.mark.slow
def test_prefix_curriculum_takes_the_loss_inside_a_random_prefix() -> None:
    from stiffml.data.samples import TrajectorySamples

    torch.manual_seed(0)
    model = ODENet(2, 2, hidden=6, depth=1, mode="trajectory", scale_output=False, objective="mae",
                   prefix_min=3, rtol=1e-8, atol=1e-10).double()
    t = torch.as_tensor(np.concatenate([[0.0], np.logspace(-2, 1, 11)]))
    samples = TrajectorySamples(t, torch.randn(1, 12, 2, dtype=torch.float64))
    batch = samples.batch(torch.arange(12))
    lengths = set()
    for seed in range(4):
        torch.manual_seed(seed)
        loss = model.training_step(batch, 0)
        torch.manual_seed(seed)
        length = int(torch.randint(3, 13, ()))
        lengths.add(length)
        (tt, z0, rows, cols), y = batch
        solved = model._solve(model.field, z0, t[:length])[:, 0]  # (length, n)
        expected = (solved - y[:length]).abs().mean()
        assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-12)
    assert len(lengths) > 1  # the prefix changes from step to step
    model.hparams.prefix_min = None  # the whole grid
    (tt, z0, rows, cols), y = batch
    assert float(model.training_step(batch, 0).detach()) == pytest.approx(float((model(batch[0]) - y).abs().mean().detach()), rel=1e-12)


def test_lr_final_anneals_on_a_cosine_and_holds() -> None:
    from types import SimpleNamespace

    model = ODENet(2, 2, hidden=4, depth=1, mode="trajectory", lr=1e-2, lr_final=1e-4)
    model._trainer = SimpleNamespace(max_epochs=10)
    config = model.configure_optimizers()
    opt, schedule = config["optimizer"], config["lr_scheduler"]["scheduler"]
    seen = []
    for _ in range(14):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    assert seen[0] == pytest.approx(1e-2)
    assert seen[5] == pytest.approx(1e-4 + (1e-2 - 1e-4) * 0.5)  # half way: the mean
    assert seen[10:] == pytest.approx([1e-4] * 4)  # held at lr_final after max_epochs
    assert all(a >= b for a, b in zip(seen, seen[1:]))
    model._trainer = SimpleNamespace(max_epochs=-1)
    with pytest.raises(ValueError, match="lr_final anneals over trainer.max_epochs, which must be set"):
        model.configure_optimizers()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"mode": "pair", "prefix_min": 5}, "prefix_min applies to mode 'trajectory' and must be at least 2, got 5 with mode 'pair'"),
    ({"mode": "trajectory", "prefix_min": 1}, "must be at least 2, got 1"),
    ({"mode": "trajectory", "lr": 1e-3, "lr_final": 1e-2}, "lr_final must lie in (0, lr=0.001], got 0.01"),
])
def test_curriculum_arguments_are_checked(kwargs, message) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        ODENet(2, 2, **kwargs)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"mode": "derivative", "field_scale": "log"}, "field_scale 'log' makes the field depend on time, which derivative samples do not carry"),
    ({"mode": "trajectory", "field_scale": "log", "log_time_ref": 0.0}, "log_time_ref (the t_ref of field_scale: log) must be positive, got 0.0"),
])
def test_log_field_scale_arguments_are_checked(kwargs, message) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        ODENet(2, 2, **kwargs)


def test_log_field_scale_is_a_rate_per_unit_of_log_time() -> None:
    """``field_scale: log``: the field is NN(z) / ((t − t0 + t_ref)·τ_end), so the free run (Radau in
    t) is the solution of dz/dτ = NN(z)/τ_end in log time τ = ln(1 + (t − t0)/t_ref), which scipy
    solves here on its own; with ``time_dependent`` the net reads τ/τ_end."""
    from scipy.integrate import solve_ivp

    dm = _linear_dm(representation="trajectory", t_span=(0.0, 5.0), dt=1e-3, spacing="log", points_per_decade=4)
    dm.setup("fit")
    torch.manual_seed(0)
    model = ODENet(2, 2, hidden=8, depth=1, mode="trajectory", field_scale="log").double()
    model.data_spec = dm.spec()
    model.setup("fit")
    tau_end = math.log1p(5.0 / 1e-3)
    z = torch.tensor([[0.3, -0.2]], dtype=torch.float64)
    for t in (0.0, 1e-3, 2.0):
        expected = model.net(z) / ((t + 1e-3) * tau_end)
        torch.testing.assert_close(model.field(torch.tensor(t, dtype=torch.float64), z), expected)
    run = model.free_run(dm, RolloutSettings(rtol=1e-10, atol=1e-12))
    g = lambda s, y: (model.net(torch.as_tensor(y)[None])[0] / tau_end).detach().numpy()  # noqa: E731
    taus = np.log1p(dm.rollout_times / 1e-3)
    sol = solve_ivp(g, (0.0, taus[-1]), dm.rollout_reference[0, 0], t_eval=taus, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(run["pred"], sol.y.T[1:], atol=1e-7)
    assert np.abs(run["pred"][-1] - run["pred"][0]).max() > 1e-2  # the field moved the state
    x, _ = dm.samples.batch(torch.arange(len(dm.samples)))  # training solves run in log time
    model.hparams.rtol, model.hparams.atol = 1e-10, 1e-12
    with torch.no_grad():
        np.testing.assert_allclose(model(x)[1:].numpy(), run["pred"], atol=1e-7)
    timed = ODENet(2, 2, hidden=8, depth=1, mode="trajectory", field_scale="log", time_dependent=True).double()
    timed.data_spec = dm.spec()
    timed.setup("fit")
    seen = []
    timed.net[0].register_forward_hook(lambda mod, inp, out: seen.append(inp[0][0, -1].item()))
    timed.field(torch.tensor(5.0, dtype=torch.float64), z)
    assert seen == [pytest.approx(1.0)]


TRAJECTORY_BAD = [
    (["--model.time_scale", "0"], "time_scale (the t_end of field_scale: span) must be positive, got 0"),
    pytest.param(["--model.time_scale=-5"], "must be positive, got -5", marks=pytest.mark.slow),
    (["--data.t_span", "[1.0e10, 1.00001e10]", "--data.dt", "1e-9", "--data.spacing", "log"],
     "the time grid repeats or reverses at t=1e+10"),
    pytest.param(["--data.points_per_decade", "100000000"], "points per decade over 10 decades would make",
                 marks=pytest.mark.slow),
]


@pytest.mark.parametrize("args, message", TRAJECTORY_BAD, ids=["time_scale-0", "time_scale-neg", "repeated", "huge"])
def test_trajectory_bad_input_is_one_line(args, message, cli, tmp_path, capsys) -> None:
    code = cli("fit", "--config", ROOT / "configs" / "robertson_kim.yaml", "--trainer.max_epochs", "1",
               "--trainer.default_root_dir", tmp_path, *args)
    assert_one_line_error(code, capsys, message)


def test_trajectory_needs_a_datamodule_with_trajectories() -> None:
    from stiffml.data import Built, SystemDataModule
    from stiffml.systems import get_system

    class PointsOnly(SystemDataModule):  # a plugin that serves pointwise samples only
        system_class = type(get_system("bz"))
        representations = ("pointwise",)

        def build_samples(self) -> Built:
            raise NotImplementedError

    with pytest.raises(ValueError, match=r"PointsOnly serves \['pointwise'\] samples, not 'trajectory'"):
        PointsOnly(representation="trajectory")


def test_trajectory_mode_on_an_ensemble_scores_held_out_initial_states(cli, tmp_path) -> None:
    """A Duffing ensemble serves whole trajectories: split by trajectory, the free run starts from
    every held-out initial state in one batched solve."""
    from stiffml.data import DuffingDataModule

    dm = DuffingDataModule(n_trajectories=6, n_points=11, rollout_factor=2, representation="trajectory",
                           normalization="maxabs")
    dm.setup("fit")
    model = ODENet(2, 2, hidden=8, depth=1, mode="trajectory", field_scale="span", objective="mae").double()
    model.data_spec = dm.spec()
    run = model.free_run(dm)
    held = len(dm.val_trajectories)
    assert run["pred"].shape == run["reference"].shape == (held, 20, 2)
    from stiffml.evaluation.free_run import rollout_errors

    errs = rollout_errors(dm, run)
    assert 0 < errs["val_rollout_nmae"] < float("inf")


@pytest.mark.slow
def test_robertson_kim_config_cut_to_a_few_epochs(cli, tmp_path) -> None:
    assert cli("fit", "--config", ROOT / "configs" / "robertson_kim.yaml", "--trainer.max_epochs", "3",
               "--trainer.check_val_every_n_epoch", "1", "--trainer.default_root_dir", tmp_path) == 0
    (version,) = (tmp_path / "lightning_logs").glob("version_*")
    acc = logged_events(version)
    nmae = acc.Scalars("val_rollout_nmae")[-1].value
    assert 0 < nmae < 1  # a three-epoch field is poor, but the whole pipeline ran over ten decades
    # predict: the per-species and per-decade breakdown of the free run, and a log-time figure
    assert cli("predict", "--config", ROOT / "configs" / "robertson_kim.yaml", "--trainer.default_root_dir", tmp_path,
               "--ckpt_path", version / "checkpoints" / "last.ckpt") == 0
    out = version / "predictions"
    rows = [line.split(",") for line in (out / "free_run_nmae.csv").read_text().splitlines()]
    assert rows[0] == ["span", "y1", "y2", "y3", "mean"]
    assert [r[0] for r in rows[1:]] == ["all"] + [f"1e{d}" for d in range(-5, 6)]  # ten decades and t = 1e5
    data = np.load(out / "predictions.npz")
    assert float(rows[1][-1]) == pytest.approx(float(data["val_rollout_nmae"]), rel=1e-5)
    assert data["rollout_nmae_per_decade"].shape == (11, 3)


@pytest.mark.slow
def test_bz_trajectory_config_cut_to_a_few_epochs(cli, tmp_path) -> None:
    """The shipped B-Z trajectory config runs end to end (whole-trajectory solves, minmax states,
    AdamW, gradient-norm rescaling) and scores its free run over the whole 10 s."""
    assert cli("fit", "--config", ROOT / "configs" / "bz_odenet_trajectory.yaml", "--trainer.max_epochs", "2",
               "--trainer.check_val_every_n_epoch", "1", "--trainer.enable_progress_bar", "false",
               "--trainer.default_root_dir", tmp_path) == 0
    (version,) = (tmp_path / "lightning_logs").glob("version_*")
    acc = logged_events(version)
    losses = [e.value for e in acc.Scalars("train_loss")]  # per epoch
    assert len(losses) == 2 and losses[1] < losses[0]  # two AdamW steps on the whole trajectory
    nmae, worst = (acc.Scalars(tag)[-1].value for tag in ("val_rollout_nmae", "val_rollout_nmae_worst"))
    assert 0.05 < nmae <= worst < 2  # a two-step field is far from the reference, but finite


@pytest.mark.slow
def test_vdp_lienard_config_follows_a_cycle_only_with_state_samples(cli, tmp_path) -> None:
    """The shipped VdP config cut to one relaxation cycle and 100 epochs (about 7 s each run): its
    free run follows the cycle (measured 0.024), and the same fit on the trajectory's states alone
    leaves it (measured 2.3): the off-cycle samples are what pin the field down."""
    scores = {}
    for samples in (5000, 0):
        root = tmp_path / str(samples)
        assert cli("fit", "--config", ROOT / "configs" / "vdp_lienard_odenet.yaml", "--seed_everything", "0",
                   "--trainer.max_epochs", "100", "--trainer.check_val_every_n_epoch", "100",
                   "--data.init_args.t_span", "[0, 140]", "--data.init_args.state_samples", str(samples),
                   "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", root) == 0
        (version,) = (root / "lightning_logs").glob("version_*")
        scores[samples] = logged_events(version).Scalars("val_rollout_nmae")[-1].value
    assert scores[5000] < 0.05 and scores[0] > 0.3, scores


def test_checkpoints_from_before_log_time_still_load(tmp_path) -> None:
    """A checkpoint written before ``field_scale: log`` existed has no ``log_time`` buffer."""
    import lightning

    model = ODENet(2, 2, hidden=4, depth=1).double()
    state = {k: v for k, v in model.state_dict().items() if k != "log_time"}
    path = tmp_path / "old.ckpt"
    torch.save({"state_dict": state, "hyper_parameters": dict(model.hparams),
                "pytorch-lightning_version": lightning.__version__}, path)
    loaded = ODENet.load_from_checkpoint(path)
    torch.testing.assert_close(loaded.net[0].weight, model.net[0].weight.to(loaded.net[0].weight.dtype))
