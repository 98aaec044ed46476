"""Every registered model (plugins included): shapes, a training step, the paper's sizes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from stiffml import registry

MODELS = sorted(registry.load("models"))
CONFIGS = Path(__file__).parents[2] / "configs"

# Table 1 of Zhang et al. (2024): parameter counts to reproduce within ±6 % (as the README says;
# the largest gap is VdP ResNet's +5.6 %).
TABLE1 = {
    "bz_fcnn": 4.53e5, "bz_resnet": 4.51e5, "bz_res2net": 4.89e5, "bz_mixnet": 4.65e5,
    "vdp_fcnn": 0.66e5, "vdp_resnet": 0.96e5, "vdp_res2net": 0.93e5, "vdp_mixnet": 1.03e5,
}


def _inputs(cls, n_in: int, batch: int = 8):
    rep = cls.consumes({})
    if rep == "pointwise":
        return torch.rand(batch, 1, dtype=torch.float64)
    if rep == "window":
        return torch.rand(batch, 6, n_in, dtype=torch.float64)
    if rep == "pair":
        return (torch.rand(batch, n_in, dtype=torch.float64), torch.zeros(batch, dtype=torch.float64),
                torch.full((batch,), 0.01, dtype=torch.float64))
    return torch.rand(batch, n_in, dtype=torch.float64)


def _contract_kwargs(cls) -> dict:
    """A model's ``contract_args`` (``--model.KEY VALUE`` pairs) as constructor keywords."""
    args = list(getattr(cls, "contract_args", []))
    return {args[i].removeprefix("--model."): yaml.safe_load(args[i + 1]) for i in range(0, len(args), 2)}


@pytest.mark.parametrize("name", MODELS)
def test_forward_shape_and_one_training_step(name: str, tmp_path: Path) -> None:
    cls = registry.get_model(name)
    if cls.consumes({}) == "trajectory":  # whole trajectories (and a hybrid's mechanism) come from data
        import lightning.pytorch as pl

        dm_cls = registry.get_datamodule(cls.contract_datamodule)
        dm = dm_cls(representation="trajectory", **dm_cls.example_args)
        torch.manual_seed(0)
        model = cls(n_inputs=dm.n_inputs, n_outputs=dm.n_outputs, **_contract_kwargs(cls)).double()
        before = [p.detach().clone() for p in model.parameters()]
        trainer = pl.Trainer(max_steps=1, precision="64-true", logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                             default_root_dir=tmp_path)
        trainer.fit(model, dm)
        assert torch.isfinite(trainer.callback_metrics["train_loss"])
        assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
        (x, y), = [dm.samples.batch(dm.train_idx)]
        assert model(x).shape == y.shape
        return
    n = 4  # even: Hamiltonian and Lagrangian models need (q, p) pairs
    n_in = 1 if cls.consumes({}) == "pointwise" else n
    torch.manual_seed(0)
    model = cls(n_inputs=n_in, n_outputs=n).double()
    x = _inputs(cls, n)
    out = model(x)
    assert out.shape == (8, n) and out.dtype == torch.float64
    opt = model.configure_optimizers()
    before = [p.detach().clone() for p in model.parameters()]
    loss = model.loss(model(x), torch.zeros(8, n, dtype=torch.float64))
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.parametrize("config", sorted(TABLE1))
def test_table1_parameter_counts_within_6_percent(config: str) -> None:
    cfg = yaml.safe_load((CONFIGS / f"{config}.yaml").read_text())
    cls = registry.get_model(cfg["model"]["class_path"])
    n_out = 3 if config.startswith("bz") else 1
    model = cls(n_inputs=1, n_outputs=n_out, **cfg["model"]["init_args"])
    assert model.n_params == pytest.approx(TABLE1[config], rel=0.06)


def test_table1_configs_carry_the_paper_settings() -> None:
    lrs = {"bz_fcnn": 1e-3, "bz_resnet": 1e-3, "bz_res2net": 5e-2, "bz_mixnet": 5e-4,
           "vdp_fcnn": 5e-4, "vdp_resnet": 1e-3, "vdp_res2net": 5e-4, "vdp_mixnet": 5e-4}
    for name, lr in lrs.items():
        cfg = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
        assert cfg["model"]["init_args"]["lr"] == lr  # a float, not a YAML string
        bz = name.startswith("bz")
        assert cfg["data"]["init_args"]["batch_size"] == (100 if bz else 300)
        assert cfg["trainer"]["max_epochs"] == (200 if bz else 1000)


def test_bad_sizes_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="divisible"):
        registry.get_model("Res2Net")(channels=10, scales=4)
    with pytest.raises(ValueError, match="odd"):
        registry.get_model("MixNet")(kernel_sizes=(3, 4))
    with pytest.raises(ValueError, match="lr must be positive"):
        registry.get_model("FCNN")(lr=0)


HOOKS = ("free_run", "rollout_metrics", "symbolic_report")


@pytest.mark.parametrize("name", MODELS)
def test_optional_hooks_are_declared_on_the_base_and_either_unset_or_methods(name: str) -> None:
    from stiffml.models.base import StiffModel

    cls = registry.get_model(name)
    for hook in HOOKS:
        assert hasattr(StiffModel, hook) and getattr(StiffModel, hook) is None, hook
        value = getattr(cls, hook)
        assert value is None or callable(value), (name, hook)
    # the pointwise family predicts free-running already; every solve-based family has a free run
    assert (cls.free_run is None) == (cls.consumes({}) == "pointwise"), name


def test_system_capabilities_are_declared_on_the_base() -> None:
    from stiffml.systems import Duffing, Robertson, StiffSystem

    for attr in ("conservative", "energy", "lagrangian", "cache_token"):
        assert hasattr(StiffSystem, attr), attr
    rober, duffing = Robertson(), Duffing()
    assert rober.energy is None and rober.lagrangian is None and not rober.conservative and rober.cache_token == ""
    assert callable(duffing.energy) and callable(duffing.lagrangian)
