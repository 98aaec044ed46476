"""Hybrid models: networks inside an SBML model's right-hand side (issue #27, without PEtab)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
import torch

pytest.importorskip("libsbml")

from stiffml.hybrid import HybridField, parse_replace  # noqa: E402
from stiffml.hybrid.symbolic import propose  # noqa: E402
from stiffml.sbml import SBMLError, SBMLSystem  # noqa: E402

from ..conftest import CONF, assert_one_line_error  # noqa: E402

TINY = CONF / "sbml_robertson_hybrid_tiny.yaml"
STATES = torch.tensor([[0.9, 1e-5, 0.1], [1.0, 0.0, 0.0], [0.3, 2e-6, 0.7]], dtype=torch.float64)


def _field(spec: dict) -> tuple[HybridField, SBMLSystem]:
    system = SBMLSystem("robertson")
    field = HybridField(parse_replace(spec)).double()
    field.bind(system)
    return field, system


def test_a_network_that_computes_the_true_rate_gives_the_true_right_hand_side() -> None:
    # R1 = k1·y1: a linear network of y1 (no hidden layer) with weight k1 reproduces it exactly
    field, system = _field({"R1": {"inputs": ["y1"], "hidden": []}})
    (net,) = field.networks
    with torch.no_grad():
        net.net[0].weight.fill_(0.04)
    t = torch.tensor(0.0, dtype=torch.float64)
    assert torch.allclose(field(t, STATES), system.rhs_torch(t, STATES), rtol=1e-13, atol=0)
    # and without it (the network at zero) R1 is missing: y1 no longer decays
    with torch.no_grad():
        net.net[0].weight.zero_()
    assert torch.all(field(t, STATES)[:, 0] >= 0)


def test_a_replaced_parameter_takes_the_networks_value_at_every_call() -> None:
    field, system = _field({"k3": {"inputs": ["y3"], "hidden": [4]}})
    (net,) = field.networks
    with torch.no_grad():
        net.net[-1].bias.fill_(1e4)  # the last layer starts at zero: the output is the bias
    t = torch.tensor(0.0, dtype=torch.float64)
    assert torch.allclose(field(t, STATES), system.rhs_torch(t, STATES), rtol=1e-13, atol=0)
    with torch.no_grad():
        net.net[-1].bias.fill_(2e4)
    dy = field(t, STATES) - system.rhs_torch(t, STATES)
    k3_term = 1e4 * STATES[:, 1] * STATES[:, 2]  # doubling k3 adds one more R3 to y1, takes it from y2
    assert torch.allclose(dy, torch.stack([k3_term, -k3_term, 0 * k3_term], -1), rtol=1e-12, atol=1e-18)


@pytest.mark.slow
def test_gradients_reach_the_network_through_the_stiff_solver() -> None:
    from stiffml.solvers import integrate

    field, _ = _field({"R3": {"inputs": ["y2", "y3"], "hidden": [4]}})
    (net,) = field.networks
    y0 = torch.tensor([[0.8, 0.0, 0.2]], dtype=torch.float64)
    t = torch.tensor([0.0, 1e-3, 1e-1], dtype=torch.float64)
    params = tuple(field.parameters())

    def loss(bias: float) -> torch.Tensor:
        with torch.no_grad():
            net.net[-1].bias.fill_(bias)
        out = integrate(field, y0, t, method="rosenbrock23", rtol=1e-9, atol=1e-14, params=params)
        return out[-1, 0, 0]

    value = loss(1e-3)
    (grad,) = torch.autograd.grad(value, [net.net[-1].bias])
    h = 1e-7
    fd = (loss(1e-3 + h).item() - loss(1e-3 - h).item()) / (2 * h)
    assert grad.item() == pytest.approx(fd, rel=1e-4)
    assert grad.item() > 0  # a faster R3 returns more y2 to y1


@pytest.mark.parametrize("spec, message", [
    ({"R9": {"inputs": ["y1"]}}, "hybridization target 'R9' is not a model entity"),
    ({"y1": {"inputs": ["y1"]}}, "hybridization target 'y1' is not a model entity"),
    ({"R3": {"inputs": ["S1"]}}, "network input 'S1' is not a species"),
])
def test_bad_targets_and_inputs_are_named(spec: dict, message: str) -> None:
    with pytest.raises(SBMLError, match=message):
        _field(spec)


@pytest.mark.parametrize("spec, message", [
    ({"R3": {"inputs": []}}, "inputs must be a non-empty list"),
    ({"R3": {"inputs": ["y2"], "width": 3}}, "unknown key(s) ['width']"),
    ({"R3": {"inputs": ["y2"], "hidden": [0]}}, "hidden must be a list of positive widths"),
    ({"R3": {"inputs": ["y2"], "activation": "relu6"}}, "activation 'relu6' is unknown"),
    ({"R3": {"inputs": ["y2"], "scale": -1}}, "scale must be a positive number"),
    ({}, "replace must map at least one"),
])
def test_bad_replace_specs_are_one_line(spec: dict, message: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_replace(spec)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_propose_recovers_a_mass_action_law_from_samples() -> None:
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.uniform(0, 4e-5, 200), rng.uniform(0, 1, 200)])
    expr, misfit = propose(x, 1e4 * x[:, 0] * x[:, 1], ["y2", "y3"])
    assert str(expr) == "10000.0*y2*y3" and misfit < 1e-10
    # a loose learned term (noise of 2 % of the largest value) still gives the product, not a long polynomial
    noisy = 1e4 * x[:, 0] * x[:, 1] + 0.02 * 0.4 * rng.standard_normal(200)
    expr, _ = propose(x, noisy, ["y2", "y3"])
    coefficient, monomial = expr.as_coeff_Mul()
    assert monomial == sp.Symbol("y2") * sp.Symbol("y3") and abs(coefficient - 1e4) < 200, expr


def test_relative_noise_leaves_known_initial_states_exact() -> None:
    from stiffml.data.sbml import SBMLEnsembleDataModule

    dm = SBMLEnsembleDataModule("robertson", y0s=[[1.0, 0.0, 0.0], [0.8, 0.0, 0.2]], t_span=(0.0, 10.0),
                                points_per_decade=2, noise_std=0.05, representation="trajectory")
    dm.setup("fit")
    clean = dm.make_ensemble()[:, : dm.n_points]
    observed = dm.spec().reference.reshape(clean.shape)
    assert np.array_equal(observed[:, 0], clean[:, 0])
    ratio = observed[:, 1:] / clean[:, 1:]
    assert 0.02 < np.nanstd(ratio[clean[:, 1:] > 0]) < 0.08  # 5 % relative noise
    with pytest.raises(ValueError, match="unknown noise 'percent'"):
        SBMLEnsembleDataModule("robertson", y0s=[[1, 0, 0], [0.8, 0, 0.2]], noise="percent")


@pytest.mark.slow
def test_fit_predict_and_symbolic_through_the_cli(cli, tmp_path: Path, capsys) -> None:
    assert cli("fit", "--config", TINY, "--trainer.default_root_dir", tmp_path) == 0
    version = tmp_path / "lightning_logs" / "version_0"
    ckpt = version / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, weights_only=False)
    # the networks' units are set from the training conditions and kept in the checkpoint
    assert state["state_dict"]["hybrid.networks.0.scales_set"]
    assert float(state["state_dict"]["hybrid.networks.0.out_scale"]) > 0
    metrics = json.loads((version / "metrics.json").read_text()) if (version / "metrics.json").exists() else None
    assert metrics is None or np.isfinite(metrics.get("val_rollout_nmae", 0.0))
    capsys.readouterr()
    assert cli("symbolic", "--ckpt", ckpt) == 0
    out = capsys.readouterr().out
    assert "R3: network of ['y2', 'y3']" in out and "= 10000.0*y2*y3" in out
    assert "proposed formula:" in out and (version / "symbolic" / "learned_terms.png").is_file()
    assert cli("predict", "--config", TINY, "--ckpt_path", ckpt, "--trainer.default_root_dir", tmp_path) == 0


@pytest.mark.parametrize("replace, message", [
    ("{R9: {inputs: [y1]}}", "hybridization target 'R9' is not a model entity"),
    ("{R3: {inputs: [S9]}}", "network input 'S9' is not a species"),
])
def test_bad_replace_is_one_cli_line_and_no_run_folder(replace: str, message: str, cli, tmp_path: Path,
                                                         capsys) -> None:
    code = cli("fit", "--config", TINY, "--model.replace", replace, "--trainer.default_root_dir", tmp_path)
    assert_one_line_error(code, capsys, message)
    assert code == 2 and not (tmp_path / "lightning_logs").exists()


def test_a_hybrid_model_needs_an_sbml_system(cli, tmp_path: Path, capsys) -> None:
    code = cli("fit", "--config", TINY, "--data", "RobertsonEnsembleDataModule", "--data.points_per_decade", "2",
               "--trainer.default_root_dir", tmp_path)
    assert_one_line_error(code, capsys, "is not an SBML model")


# ------------------------------------------------------------------ PEtab SciML network files
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from stiffml.hybrid.network_file import (  # noqa: E402
    NetworkFileError, load_parameters, read_arrays, read_network, write_arrays, write_network,
)

LAYERS = {  # layer, input shape (batch first)
    "Linear": (lambda: nn.Linear(3, 4), (2, 3)),
    "Bilinear": (None, None),
    "Flatten": (lambda: nn.Flatten(1, -1), (2, 3, 4)),
    "Dropout": (lambda: nn.Dropout(0.3), (2, 3)),
    "Conv1d": (lambda: nn.Conv1d(2, 3, 3, padding=1), (2, 2, 7)),
    "Conv2d": (lambda: nn.Conv2d(2, 3, (3, 2), stride=(1, 2)), (2, 2, 6, 6)),
    "Conv3d": (lambda: nn.Conv3d(1, 2, 2), (1, 1, 4, 4, 4)),
    "ConvTranspose1d": (lambda: nn.ConvTranspose1d(2, 3, 3), (2, 2, 5)),
    "ConvTranspose2d": (lambda: nn.ConvTranspose2d(2, 1, 2, stride=2), (1, 2, 3, 3)),
    "MaxPool1d": (lambda: nn.MaxPool1d(2), (2, 3, 8)),
    "MaxPool2d": (lambda: nn.MaxPool2d(2, padding=1), (1, 2, 5, 5)),
    "AvgPool2d": (lambda: nn.AvgPool2d(2), (1, 2, 4, 4)),
    "LPPool1d": (lambda: nn.LPPool1d(2, 2), (1, 2, 6)),
    "AdaptiveAvgPool2d": (lambda: nn.AdaptiveAvgPool2d((2, 3)), (1, 2, 5, 7)),
    "AdaptiveMaxPool1d": (lambda: nn.AdaptiveMaxPool1d(3), (1, 2, 7)),
    "BatchNorm1d": (lambda: nn.BatchNorm1d(3), (4, 3)),
    "LayerNorm": (lambda: nn.LayerNorm(5), (2, 5)),
}
ACTIVATIONS = ["relu", "relu6", "hardtanh", "hardswish", "selu", "leaky_relu", "gelu", "tanhshrink", "softsign",
               "softplus", "tanh", "sigmoid", "hardsigmoid", "silu", "mish", "elu", "celu", "softmax", "log_softmax"]


class _Wrap(nn.Module):
    def __init__(self, layer: nn.Module, activation: str) -> None:
        super().__init__()
        self.layer1 = layer
        self.activation = activation

    def forward(self, x):
        y = self.layer1(x)
        fn = getattr(F, self.activation)
        return fn(y, dim=-1) if self.activation in ("softmax", "log_softmax") else fn(y)


def _round_trip(module: nn.Module, tmp_path: Path, *inputs: torch.Tensor) -> None:
    module = module.double()
    write_network(module, "net1", tmp_path / "net.yaml")
    write_arrays(tmp_path / "net.hdf5", {"net1": module})
    net = read_network(tmp_path / "net.yaml")
    net.module.double()
    load_parameters(net, read_arrays(tmp_path / "net.hdf5")["parameters"].get("net1", {}))
    net.module.train(module.training)
    torch.manual_seed(0)
    want = module(*inputs)
    torch.manual_seed(0)
    got = net.module(*inputs)
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want)
        assert all(torch.equal(a, b) for a, b in zip(got, want))
    else:
        assert torch.equal(got, want)


@pytest.mark.parametrize("layer", sorted(k for k, v in LAYERS.items() if v[0] is not None))
def test_every_layer_reads_back_from_the_network_format(layer: str, tmp_path: Path) -> None:
    make, shape = LAYERS[layer]
    module = _Wrap(make(), "tanh")
    if layer in ("Dropout", "BatchNorm1d"):  # evaluated as inference (batch statistics and masks are random)
        module.eval()
    _round_trip(module, tmp_path, torch.rand(*shape, dtype=torch.float64))


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_activation_reads_back_from_the_network_format(activation: str, tmp_path: Path) -> None:
    _round_trip(_Wrap(nn.Linear(3, 4), activation), tmp_path, torch.randn(5, 3, dtype=torch.float64))


def test_graphs_with_several_inputs_outputs_and_tensor_methods(tmp_path: Path) -> None:
    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bil = nn.Bilinear(2, 3, 4)
            self.lin = nn.Linear(4, 2)

        def forward(self, a, b):
            h = torch.tanh(self.bil(a, b)) + 1.0
            return self.lin(h), h.sum(dim=-1).unsqueeze(-1)

    _round_trip(Two(), tmp_path, torch.rand(3, 2, dtype=torch.float64), torch.rand(3, 3, dtype=torch.float64))
    net = read_network(tmp_path / "net.yaml")
    assert net.input_ids == ["a", "b"] and net.n_outputs == 2


def test_slices_cannot_be_written_and_say_what_to_use() -> None:
    class Sliced(nn.Module):
        def forward(self, x):
            return x[..., :1]

    with pytest.raises(NetworkFileError, match="no slices"):
        write_network(Sliced(), "net1")


def test_bad_network_files_are_one_line(tmp_path: Path) -> None:
    write_network(nn.Sequential(nn.Linear(2, 3)), "net1", tmp_path / "ok.yaml")
    text = (tmp_path / "ok.yaml").read_text()
    cases = {
        "layer_type: Linear": ("layer_type: Lineer", "has unknown layer_type 'Lineer'"),
        "out_features: 3": ("out_features: -3", "layer '0' (Linear)"),
    }
    for old, (new, message) in cases.items():
        (tmp_path / "bad.yaml").write_text(text.replace(old, new))
        with pytest.raises(NetworkFileError) as err:
            read_network(tmp_path / "bad.yaml")
        assert message in str(err.value) and "\n" not in str(err.value)
    spec = write_network(nn.Sequential(nn.Linear(2, 3), nn.Tanh()), "net1")
    spec["forward"][2]["op"], spec["forward"][2]["target"] = "call_function", "tanhh"
    with pytest.raises(NetworkFileError, match="unknown function 'tanhh'"):
        read_network(spec)
    module = nn.Sequential(nn.Linear(2, 3)).double()
    write_arrays(tmp_path / "wrong.hdf5", {"net1": nn.Sequential(nn.Linear(3, 3)).double()})
    net = read_network(write_network(module, "net1"))
    with pytest.raises(NetworkFileError, match=r"net1.0.weight has shape \(3, 3\) in the file but \(3, 2\)"):
        load_parameters(net, read_arrays(tmp_path / "wrong.hdf5")["parameters"]["net1"])


def test_a_file_network_replaces_a_rate_and_its_parameters_come_from_the_array_file(tmp_path: Path) -> None:
    # R3 = k3·y2·y3 written as a network: a Bilinear layer of (y2, y3) with weight k3
    class Mass(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rate = nn.Bilinear(1, 1, 1, bias=False)

        def forward(self, x):
            y2, y3 = torch.split(x, 1, dim=-1)
            return self.rate(y2, y3)

    module = Mass().double()
    with torch.no_grad():
        module.rate.weight.fill_(1e4)
    write_network(module, "net1", tmp_path / "net.yaml")
    write_arrays(tmp_path / "net.hdf5", {"net1": module})
    field, system = _field({"R3": {"inputs": ["y2", "y3"], "network": str(tmp_path / "net.yaml"),
                                   "arrays": str(tmp_path / "net.hdf5")}})
    t = torch.tensor(0.0, dtype=torch.float64)
    assert torch.allclose(field(t, STATES), system.rhs_torch(t, STATES), rtol=1e-13, atol=0)
    wide = nn.Sequential(nn.Linear(2, 3))
    write_network(wide, "net2", tmp_path / "wide.yaml")
    with pytest.raises(NetworkFileError, match="gives 3 outputs per sample for 2 inputs; the quantity 'R3'"):
        _field({"R3": {"inputs": ["y2", "y3"], "network": str(tmp_path / "wide.yaml")}})
