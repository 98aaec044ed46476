"""Contract checks that every model and datamodule must pass, plugins included.

Plugin authors call these from their own tests::

    from stiffml.testing import check_datamodule, check_model

    def test_my_model(tmp_path):
        check_model(MyModel, tmp_path)

Each check drives the real ``stiffml`` CLI (in-process) on a tiny problem: instantiate, train a
few steps in float64 and float32, checkpoint, reload the checkpoint and validate from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from stiffml.data.base import SystemDataModule
from stiffml.models.base import StiffModel


def _path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__name__}"


def small_data_args(dm_cls: type[SystemDataModule], n_points: int = 200) -> list[str]:
    """CLI arguments that shrink a datamodule's grid to about ``n_points`` samples."""
    if dm_cls.example_args:
        import json

        return [a for k, v in dm_cls.example_args.items() for a in (f"--data.{k}", json.dumps(v) if not isinstance(v, str) else v)]
    system = dm_cls.system_class
    if system is None:
        return []
    from stiffml.data.ensemble import EnsembleDataModule

    if issubclass(dm_cls, EnsembleDataModule):
        return ["--data.n_trajectories", "10", "--data.n_points", "20", "--data.rollout_factor", "2"]
    t0, t1 = system.t_span
    if system.spacing == "log":
        return ["--data.t_span", f"[{t0}, {t0 + 10.0}]", "--data.dt", "1.0e-3"]
    return ["--data.dt", repr((t1 - t0) / n_points)]


def _run(*args: Any) -> None:
    from stiffml.main import main

    code = main([str(a) for a in args])
    assert code == 0, f"stiffml {' '.join(map(str, args))} exited with {code}"


PRECISIONS = ("64-true", "32-true")
_DTYPES = {"64-true": torch.float64, "32-true": torch.float32}


def _fit_reload(model_cls: type[StiffModel], dm_cls: type[SystemDataModule], tmp_path: Path, extra: list[str],
                precisions: tuple[str, ...] = PRECISIONS) -> None:
    window = ["--data.window", "4"] if model_cls.consumes({}) == "window" else []
    for precision in precisions:
        dtype = _DTYPES[precision]
        root = Path(tmp_path) / precision
        common = [
            "--model", _path(model_cls), "--data", _path(dm_cls), *small_data_args(dm_cls), *window, *extra,
            "--trainer.precision", precision, "--trainer.default_root_dir", root,
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
            "--rollout.length", "5",  # the free run is wired up; its length is not under test
        ]
        _run("fit", *common, "--trainer.max_steps", 3, "--trainer.limit_val_batches", 2)
        (ckpt,) = root.glob("lightning_logs/version_0/checkpoints/last.ckpt")
        state = torch.load(ckpt, weights_only=False)
        assert state["global_step"] == 3, f"expected 3 training steps, checkpoint has {state['global_step']}"
        stored = [v for v in state["state_dict"].values() if v.is_floating_point()]
        assert stored, f"{model_cls.__name__} has no floating-point parameters"
        assert all(v.dtype == dtype for v in stored), f"{precision}: checkpointed weights are not {dtype}"
        previous = torch.get_default_dtype()
        torch.set_default_dtype(dtype)  # build the module in the run's dtype, so loading is exact
        try:
            reloaded = model_cls.load_from_checkpoint(ckpt, map_location="cpu")
        finally:
            torch.set_default_dtype(previous)
        for key, value in reloaded.state_dict().items():
            assert torch.equal(value, state["state_dict"][key].to(value.dtype)), f"{key} differs after reload"
        _run("validate", *common, "--ckpt_path", ckpt, "--trainer.limit_val_batches", 2)


def check_model(model_cls: type[StiffModel], tmp_path: Path, datamodule: type[SystemDataModule] | None = None,
                precisions: tuple[str, ...] = PRECISIONS) -> None:
    """Check a model class against the contract.

    Args:
        model_cls: The model class (a :class:`StiffModel` subclass named like its entry point).
        tmp_path: An empty folder for the runs.
        datamodule: The datamodule to train on (default: the model's ``contract_datamodule``
            registry name if it sets one, else B-Z); a model's ``contract_args`` (CLI arguments)
            are added to every run.
        precisions: Lightning precisions to run the contract in (``64-true``, ``32-true``).
    """
    from stiffml import registry
    from stiffml.data.modules import BZDataModule

    assert issubclass(model_cls, StiffModel), f"{model_cls} does not subclass stiffml.StiffModel"
    rep = model_cls.consumes({})
    from stiffml.data.samples import REPRESENTATIONS

    assert rep in REPRESENTATIONS, f"{model_cls.__name__} consumes unknown representation {rep!r}"
    assert model_cls.family, f"{model_cls.__name__} sets no family"
    model_cls()  # instantiates with defaults
    default = getattr(model_cls, "contract_datamodule", None)
    dm_cls = datamodule or (registry.get_datamodule(default) if default else BZDataModule)
    # a model that needs settings no default can give (a hybrid model's replaced rate) names them
    _fit_reload(model_cls, dm_cls, tmp_path, list(getattr(model_cls, "contract_args", [])), precisions)


def check_datamodule(dm_cls: type[SystemDataModule], tmp_path: Path, model: type[StiffModel] | None = None,
                     precisions: tuple[str, ...] = PRECISIONS) -> None:
    """Check a datamodule class against the contract.

    Args:
        dm_cls: The datamodule class (a :class:`SystemDataModule` subclass, usually through
            :class:`StiffDataModule`).
        tmp_path: An empty folder for the runs.
        model: The model to train (default: a small FCNN; for datamodules without pointwise
            samples a small NODE on derivative samples, or a small trajectory-mode ODE-Net where
            whole trajectories come first).
        precisions: Lightning precisions to run the contract in (``64-true``, ``32-true``).
    """
    from stiffml.models.physics import NODE
    from stiffml.models.pointwise import FCNN

    assert issubclass(dm_cls, SystemDataModule), f"{dm_cls} does not subclass stiffml.SystemDataModule"
    rep = "pointwise" if "pointwise" in dm_cls.representations else dm_cls.representations[0]
    dm = dm_cls(representation=rep, **_kwargs(small_data_args(dm_cls)))
    dm.setup("fit")
    assert len(dm.train_idx) > 0 and len(dm.val_idx) > 0
    x, y = next(iter(dm.train_dataloader()))
    if rep == "trajectory":  # (times, initial states, rows, columns) and the states at them
        t, y0, rows, cols = x
        assert y0.shape[1:] == (dm.n_outputs,) and rows.shape == cols.shape and y.shape == (rows.shape[0], dm.n_outputs)
    else:
        assert x.shape[0] == y.shape[0] and y.shape[1:] == (dm.n_outputs,)
    if rep == "pointwise":
        assert x.shape[1:] == (1,)
    from stiffml.models.odenet import ODENet

    model = model or {"pointwise": FCNN, "trajectory": ODENet}.get(rep, NODE)
    extra = {FCNN: ["--model.hidden", "8", "--model.depth", "1"], NODE: ["--model.hidden", "8"],
             ODENet: ["--model.hidden", "8", "--model.depth", "1", "--model.mode", "trajectory",
                      "--model.rtol", "1.0e-4", "--model.atol", "1.0e-7"]}.get(model, [])
    _fit_reload(model, dm_cls, tmp_path, extra, precisions)


def _kwargs(args: list[str]) -> dict[str, Any]:
    import yaml

    return {args[i].removeprefix("--data."): yaml.safe_load(args[i + 1]) for i in range(0, len(args), 2)}
