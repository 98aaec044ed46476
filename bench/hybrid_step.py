"""Time of one loss + gradient of a hybrid model (a network inside the stiff right-hand side):
every condition in one batched solve against one condition at a time, the share of the time
spent in the network, and (``--starts K``) K multistart initialisations in one batched solve
against K one-start models one after another.

    python bench/hybrid_step.py                       # the showcase (configs/sbml_robertson_hybrid.yaml)
    python bench/hybrid_step.py --config PATH --repeats 5 --ckpt RUN/checkpoints/last.ckpt

Prints one line per variant: seconds per loss + gradient (best of ``--repeats``), and the ratio
measured in this run.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import yaml

from stiffml import registry

ROOT = Path(__file__).resolve().parent.parent


def build(config: Path, overrides: dict, ckpt: Path | None = None, seed: int = 0) -> tuple[torch.nn.Module, object]:
    cfg = yaml.safe_load(config.read_text())
    overrides = dict(overrides)
    starts = overrides.pop("_starts", 1)
    dm_cls = registry.get_datamodule(cfg["data"]["class_path"])
    dm = dm_cls(**{**cfg["data"]["init_args"], **overrides}, representation="trajectory")
    dm.setup("fit")
    args = {k: v for k, v in cfg["model"]["init_args"].items() if k != "lr_final"}
    if starts > 1:
        args["starts"] = starts
    torch.manual_seed(seed)
    model = registry.get_model(cfg["model"]["class_path"])(n_inputs=dm.n_inputs, n_outputs=dm.n_outputs, **args).double()
    model.attach(dm)
    if ckpt is not None:  # the trained networks
        state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
        model.load_state_dict(state)
    else:  # the networks as training starts them: hidden layers a little away from their random
        # start, the last layer zero (the term starts at zero; a random one makes ROBER blow up)
        with torch.no_grad():
            for term in model.hybrid.networks:
                mlp = term.net
                last = {id(mlp.weights[-1]), id(mlp.biases[-1])} if hasattr(mlp, "weights") else \
                    {id(p) for p in list(mlp)[-1].parameters()}
                for p in mlp.parameters():
                    if id(p) not in last:
                        p.add_(1e-3 * torch.randn_like(p))
    return model, dm


def loss_and_gradient(model: torch.nn.Module, x: tuple, y: torch.Tensor) -> float:
    model.zero_grad()
    loss = model.loss(model(x), y)
    loss.backward()
    return float(loss.detach())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "sbml_robertson_hybrid.yaml")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--t-end", type=float, default=None, help="shorten the time span (tiny runs)")
    p.add_argument("--ckpt", type=Path, default=None, help="a trained run's checkpoint (its networks are timed)")
    p.add_argument("--starts", type=int, default=4, help="multistart initialisations timed together (0: skip)")
    opts = p.parse_args()
    overrides = {} if opts.t_end is None else {"t_span": [0.0, opts.t_end]}
    model, dm = build(opts.config, overrides, opts.ckpt)
    (t, z0, rows, cols), y = dm.samples.batch(dm.train_idx)
    train = sorted(set(rows.tolist()))

    def joint() -> None:
        loss_and_gradient(model, (t, z0[train], *_remap(rows, cols, train)), y)

    def separate() -> None:
        for k in train:
            keep = rows == k
            loss_and_gradient(model, (t, z0[[k]], torch.zeros_like(rows[keep]), cols[keep]), y[keep])

    calls = {"net": 0}
    forward = model.hybrid.networks[0].forward

    def counted(x: torch.Tensor, *args: object) -> torch.Tensor:
        calls["net"] += 1
        return forward(x, *args)

    model.hybrid.networks[0].forward = counted
    times = {}
    for name, fn in (("joint", joint), ("separate", separate)):
        best = float("inf")
        for _ in range(opts.repeats):
            calls["net"] = 0
            start = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - start)
        times[name] = best
        print(f"{name:9s} {len(train)} conditions: {best:.3f} s per loss + gradient ({calls['net']} network calls)")
    model.hybrid.networks[0].forward = forward
    x = torch.rand(len(train), len(model.hybrid.input_ids), dtype=torch.float64)
    net = model.hybrid.networks[0]
    start = time.perf_counter()
    for _ in range(1000):
        net(x).sum().backward()
    per_call = (time.perf_counter() - start) / 1000
    print(f"network forward + backward alone: {per_call * 1e6:.0f} µs per call")
    print(f"separate / joint: {times['separate'] / times['joint']:.2f}")
    if opts.starts > 1:
        multistart(opts, overrides, t, z0, rows, cols, y, train)


def multistart(opts: argparse.Namespace, overrides: dict, t, z0, rows, cols, y, train: list[int]) -> None:
    """K starts in one solve (``--model.starts K``) against K one-start models in turn, every
    condition batched in both; the starts are K different random initialisations."""
    k = opts.starts
    multi, _ = build(opts.config, {**overrides, "_starts": k})
    singles = [build(opts.config, overrides, seed=1 + i)[0] for i in range(k)]
    x = (t, z0[train], *_remap(rows, cols, train))
    timed = {}
    for name, fn in (("together", lambda: loss_and_gradient(multi, x, y)),
                     ("in turn", lambda: [loss_and_gradient(m, x, y) for m in singles])):
        best = float("inf")
        for _ in range(opts.repeats):
            start = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - start)
        timed[name] = best
        print(f"{k} starts {name:8s}: {best:.3f} s per loss + gradient of every start")
    print(f"in turn / together: {timed['in turn'] / timed['together']:.2f}")


def _remap(rows: torch.Tensor, cols: torch.Tensor, train: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    index = torch.full((int(rows.max()) + 1,), -1, dtype=torch.long)
    index[train] = torch.arange(len(train))
    return index[rows], cols


if __name__ == "__main__":
    main()
