"""ODE-Net (Chen et al. 2018): a learned vector field integrated by an ODE solver.

Three training modes on one model: ``pair`` (the paper: (u_i, t_i) → u_{i+1}, a whole batch of
pairs in one batched solve), ``segment`` (multiple shooting: segments of k steps from their true
starting states; ``shooting`` is its old name)
and ``derivative`` (the physics seed: minimise ‖u̇ − f(u)‖², no solve).

Stiff-aware scaling (Kim et al. 2021, "Stiff neural ordinary differential equations"): the net
works on normalised states z and its output is multiplied per state by the data's typical rate
|dz/dt|, so species whose rates differ by decades start on the same footing; losses are taken
in normalised units, i.e. per state scaled by the data's spread.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn

from stiffml.models.base import ACTIVATIONS, Activation, StiffModel
from stiffml.evaluation.rollout import RolloutSettings, field_free_run
from stiffml.solvers import StepBudgetExceeded, check_solver, integrate
from stiffml.systems import SolveError

# mode -> the representation it consumes: one name each ("shooting": the old name of "segment")
MODES = {"pair": "pair", "segment": "segment", "derivative": "derivative", "trajectory": "trajectory",
         "shooting": "segment"}


class ODENet(StiffModel):
    """Neural ODE with an MLP vector field f(z; θ) (optionally f(z, t; θ)).

    Args:
        n_inputs: Linked from the datamodule (state width).
        n_outputs: Linked from the datamodule (state width).
        n_conditions: Linked from the datamodule: how many scaled rate constants the field reads
            besides the state (an ensemble with ``rate_constants`` drawn per member), so that one
            network serves a range of them; 0: none.
        lr: Adam learning rate.
        hidden: Width of the field's hidden layers (64: 4,611 parameters for B-Z, Table 2).
        depth: Number of hidden layers (0: a linear field).
        activation: ``tanh`` | ``softplus`` | ``gelu`` | ``silu`` (smooth, as a vector field should be).
        time_dependent: Give the field t as an extra input.
        mode: ``pair`` | ``segment`` | ``derivative`` | ``trajectory``, the representation it trains
            on (see the module docstring; ``shooting`` is accepted for ``segment``). ``trajectory``
            (Kim et al. 2021): the field integrated from the initial state(s) over the whole grid
            (log grids too; several initial states in one batched solve), the loss taken at the
            batch's points.
        solver: ``rosenbrock23`` (differentiable, stiff) or a torchdiffeq solver (``dopri5``, …).
        rtol: Relative tolerance of the training solves.
        atol: Absolute tolerance of the training solves (normalised units).
        step_size: Step of fixed-step torchdiffeq solvers.
        adjoint: Gradients by the adjoint method (torchdiffeq solvers only).
        step_budget: Step budget of one training solve; exceeding it stops the run with a clear error.
        scale_output: Stiff-aware per-state output scaling (Kim et al. 2021), see ``field_scale``.
        field_scale: ``rate``: multiply the field per state by the data's typical rate |dz/dt|;
            ``span``: divide it by the time span (``time_scale``), Kim et al.'s
            ``NN(u)·yscale/t_end`` once the states are scaled (``normalization: maxabs``);
            ``log``: the network gives the rate per unit of log time, τ = ln(1 + (t − t0)/t_ref),
            and the field is ``NN(u) / ((t − t0 + t_ref)·τ_end)``: over a log grid (ROBER's ten
            decades) the network's outputs stay O(1) where ``span`` needs them to run from 1e8
            down to 1e-2. The field then depends on t, so the initial states must be given at
            the data's first time t0 (solve modes only: not ``derivative``); with
            ``time_dependent`` the network reads τ/τ_end rather than t.
        time_scale: The ``t_end`` of ``field_scale: span`` (> 0); default the data's time span.
        log_time_ref: The ``t_ref`` of ``field_scale: log`` (> 0): below it log time is
            nearly linear; default the grid's first step (1e-5 on Kim et al.'s ROBER grid).
        objective: Loss of the solve modes (pair, segment, trajectory): ``mse``, or ``mae`` (Kim
            et al.'s mean absolute error of the scaled states).
        optimizer: ``adam`` or ``adamw`` (decoupled weight decay, Kim et al.'s choice).
        weight_decay: Weight decay of the optimizer (Kim et al.: 1e-6 with AdamW).
        grad_norm: Rescale the gradient to this norm before every step (Kim et al.'s POLLU: 100);
            ``None``: leave it.
        prefix_min: Trajectory mode: a curriculum (the mechanism of Kim et al.'s code); every
            training step integrates over a random prefix of the grid, between ``prefix_min``
            points and the whole grid (uniform), and takes the loss at the batch's points inside
            it. ``None``: the whole grid.
        lr_final: Anneal the learning rate from ``lr`` to this value over ``trainer.max_epochs``
            on a cosine; ``None``: constant.
        derivative_loss: Derivative mode's loss: ``scaled`` (per-state squared error in units of
            the state's typical rate) or ``relative`` (each sample's error divided by the size of
            its true derivative, so that slow decades of a stiff system, e.g. ROBER's late times,
            weigh as much as the fast transient).
    """

    family = "neural-ode"
    representation = "pair"
    reads_conditions = True

    def __init__(
        self,
        n_inputs: int = 1,
        n_outputs: int = 1,
        n_conditions: int | None = 0,
        lr: float = 5e-5,
        hidden: int = 64,
        depth: int = 2,
        activation: Activation = "tanh",
        time_dependent: bool = False,
        mode: Literal["pair", "segment", "derivative", "trajectory", "shooting"] = "pair",
        solver: str = "rosenbrock23",
        rtol: float = 1e-6,
        atol: float = 1e-8,
        step_size: float | None = None,
        adjoint: bool = False,
        step_budget: int = 10_000,
        scale_output: bool = True,
        derivative_loss: Literal["scaled", "relative"] = "scaled",
        field_scale: Literal["rate", "span", "log"] = "rate",
        time_scale: float | None = None,
        log_time_ref: float | None = None,
        objective: Literal["mse", "mae"] = "mse",
        optimizer: Literal["adam", "adamw"] = "adam",
        weight_decay: float = 0.0,
        grad_norm: float | None = None,
        prefix_min: int | None = None,
        lr_final: float | None = None,
    ) -> None:
        super().__init__(n_inputs, n_outputs, lr)
        if n_inputs != n_outputs:
            raise ValueError(f"ODENet needs n_inputs == n_outputs (the state), got {n_inputs}, {n_outputs}")
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; valid: {list(MODES)}")
        n_conditions = n_conditions or 0  # the CLI links None from a datamodule that draws none
        if n_conditions < 0 or (n_conditions and MODES[mode] not in ("trajectory", "derivative")):
            raise ValueError(f"n_conditions (rate constants read by the field) must be >= 0 and needs mode "
                             f"'trajectory' or 'derivative', got {n_conditions} with mode {mode!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; valid: {list(ACTIVATIONS)}")
        if hidden < 1 or depth < 0 or step_budget < 1:
            raise ValueError(f"hidden and step_budget must be positive and depth >= 0, got {hidden}, {depth}, {step_budget}")
        if derivative_loss not in ("scaled", "relative"):
            raise ValueError(f"unknown derivative_loss {derivative_loss!r}; valid: ['scaled', 'relative']")
        check_solver(solver, rtol, atol, step_size, adjoint)
        choices = {"field_scale": (field_scale, ("rate", "span", "log")), "objective": (objective, ("mse", "mae")),
                   "optimizer": (optimizer, ("adam", "adamw"))}
        for name, (value, allowed) in choices.items():
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}; valid: {list(allowed)}")
        if time_scale is not None and not (time_scale > 0 and np.isfinite(time_scale)):
            raise ValueError(f"time_scale (the t_end of field_scale: span) must be positive, got {time_scale}")
        if log_time_ref is not None and not (log_time_ref > 0 and np.isfinite(log_time_ref)):
            raise ValueError(f"log_time_ref (the t_ref of field_scale: log) must be positive, got {log_time_ref}")
        if field_scale == "log" and scale_output and MODES.get(mode) == "derivative":
            raise ValueError("field_scale 'log' makes the field depend on time, which derivative samples "
                             "do not carry; use mode trajectory, pair or segment, or field_scale rate")
        if weight_decay < 0 or (grad_norm is not None and not grad_norm > 0):
            raise ValueError(f"weight_decay must be >= 0 and grad_norm positive, got {weight_decay}, {grad_norm}")
        if prefix_min is not None and (mode != "trajectory" or prefix_min < 2):
            raise ValueError(f"prefix_min applies to mode 'trajectory' and must be at least 2, got {prefix_min} "
                             f"with mode {mode!r}")
        if lr_final is not None and not 0 < lr_final <= lr:
            raise ValueError(f"lr_final must lie in (0, lr={lr}], got {lr_final}")
        layers: list[nn.Module] = []
        width = n_inputs + int(time_dependent) + n_conditions
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), ACTIVATIONS[activation]()]
            width = hidden
        layers.append(nn.Linear(width, n_outputs))
        self.net = nn.Sequential(*layers)
        self.register_buffer("field_scale", torch.ones(n_outputs))
        self.register_buffer("field_scale_set", torch.zeros((), dtype=torch.bool))
        # field_scale 'log': (t0 − t_ref, t_ref); the field is NN·field_scale / (t − t0 + t_ref)
        self.register_buffer("log_time", torch.tensor([0.0, 1.0]))

    @classmethod
    def consumes(cls, init_args: dict[str, Any]) -> str:
        return MODES.get(init_args.get("mode", "pair"), "pair")

    # --------------------------------------------------------------------------------- field
    def field(self, t: Tensor, z: Tensor, conditions: Tensor | None = None) -> Tensor:
        """dz/dt in normalised units, batched (B, n); ``conditions`` (B, p): the scaled rate
        constants of a conditioned field."""
        if self._log_scaled:
            return self.log_time_field(self.log_time_of(t), z, conditions) / (t - self.log_time[0])
        return self._scaled_net(t, z, conditions)

    def _scaled_net(self, time_input: Tensor, z: Tensor, conditions: Tensor | None = None) -> Tensor:
        parts = [z]
        if self.hparams.time_dependent:
            parts.append(time_input.expand(z.shape[0], 1).to(z.dtype))
        if conditions is not None:
            parts.append(conditions.to(z.dtype))
        return self.net(torch.cat(parts, -1) if len(parts) > 1 else z) * self.field_scale

    @property
    def _log_scaled(self) -> bool:
        return bool(self.hparams.get("scale_output", False)) and self.hparams.field_scale == "log"

    def log_time_of(self, t: Tensor) -> Tensor:
        """τ = ln(1 + (t − t0)/t_ref) of ``field_scale: log`` (0 at the data's first time)."""
        return torch.log((t - self.log_time[0]) / self.log_time[1])

    def log_time_field(self, tau: Tensor, z: Tensor, conditions: Tensor | None = None) -> Tensor:
        """``field_scale: log``: dz/dτ, batched (B, n); a time-dependent net reads τ/τ_end."""
        return self._scaled_net(tau * self.field_scale[0], z, conditions)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        data = self.data_spec
        if stage != "fit" or data is None:
            return
        if self.consumes(dict(self.hparams)) == "segment":
            dt = np.diff(data.times)
            if not np.allclose(dt, dt[0], rtol=1e-9):
                raise ValueError("mode 'segment' (multiple shooting) needs a uniform time grid (spacing: linear)")
        # subclasses without the MLP field (HybridModel) have no scale_output setting
        if self.hparams.get("scale_output", False) and not bool(self.field_scale_set):
            if self.hparams.field_scale == "span":
                t_end = self.hparams.time_scale or float(data.times[-1] - data.times[0])
                rate = np.full(self.hparams.n_outputs, 1.0 / t_end)
            elif self.hparams.field_scale == "log":
                t0 = float(data.times[0])
                t_ref = self.hparams.get("log_time_ref") or float(data.times[1] - t0)
                rate = np.full(self.hparams.n_outputs, 1.0 / math.log1p((float(data.times[-1]) - t0) / t_ref))
                self.log_time.copy_(torch.tensor([t0 - t_ref, t_ref], dtype=self.log_time.dtype))
            else:
                z = data.scaler.transform(data.reference)
                # an ensemble's reference is its trajectories one after another: differences within each
                z = z.reshape(-1, len(data.times), z.shape[-1])
                rate = np.sqrt(np.mean((np.diff(z, axis=1) / np.diff(data.times)[None, :, None]) ** 2, axis=(0, 1)))
                rate = np.where(np.isfinite(rate) & (rate > 0), rate, 1.0)
            self.field_scale.copy_(torch.as_tensor(rate, dtype=self.field_scale.dtype))
            self.field_scale_set.fill_(True)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        # checkpoints written before field_scale 'log' existed lack its buffer (unused by them)
        checkpoint.get("state_dict", {}).setdefault("log_time", self.log_time.detach().clone())

    def _integrate(self, func, z0: Tensor, s: Tensor) -> Tensor:
        """A training solve with the model's settings (raises :class:`StepBudgetExceeded`)."""
        h = self.hparams
        return integrate(
            func, z0, s, method=h.solver, rtol=h.rtol, atol=h.atol, step_size=h.step_size,
            adjoint=h.adjoint, max_steps=h.step_budget, params=tuple(self.parameters()),
        )

    def _solve(self, func, z0: Tensor, s: Tensor) -> Tensor:
        try:
            return self._integrate(func, z0, s)
        except StepBudgetExceeded as err:
            raise RuntimeError(f"{err} during training; {self._last_checkpoint_note()}") from None

    def _last_checkpoint_note(self) -> str:
        trainer = self._trainer
        paths = [cb.best_model_path for cb in getattr(trainer, "checkpoint_callbacks", []) if cb.best_model_path]
        last = [p for p in paths if p.endswith("last.ckpt")] or paths
        return f"the last good checkpoint is {last[0]}" if last else "no checkpoint was saved yet"

    def forward(self, x: Any) -> Tensor:
        mode = self.hparams.mode
        if mode == "derivative":
            z, cond = x if isinstance(x, (tuple, list)) else (x, None)
            return self.field(torch.zeros((), dtype=z.dtype, device=z.device), z, cond)
        if mode == "trajectory":  # one solve from every initial state over the whole grid
            t, z0, rows, cols, *cond = x
            field = self.log_time_field if self._log_scaled else self.field
            if cond:  # every member with its own rate constants
                c, base = cond[0], field
                field = lambda s, z: base(s, z, c)  # noqa: E731
            if self._log_scaled:  # solved in log time: about 30 % fewer steps than in t on ROBER
                out = self._solve(field, z0, self.log_time_of(t))
            else:
                out = self._solve(field, z0, t)  # (T, m, n)
            return out[cols, rows]
        if mode == "pair":
            z0, t0, t1 = x
            times = torch.stack([t0, t1], -1)
        else:
            z0, times = x
        # Each sample has its own time span: integrate all of them in one solve over s in [0, 1]
        # by rescaling time, dz/ds = (t_end - t_start) f(z, t_start + s (t_end - t_start)).
        start, length = times[:, :1], times[:, -1:] - times[:, :1]
        s = (times[0] - times[0, 0]) / (times[0, -1] - times[0, 0])

        def rescaled(si: Tensor, z: Tensor) -> Tensor:
            return length * self.field(start + si * length, z)

        out = self._solve(rescaled, z0, s)  # (len(s), B, n)
        return out[-1] if mode == "pair" else out[1:].transpose(0, 1)

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        h = self.hparams
        if h.mode != "trajectory" or h.prefix_min is None:
            return super().training_step(batch, batch_idx)
        (t, z0, rows, cols, *cond), y = batch
        # the prefix length from torch's CPU generator: seeded by seed_everything, no device sync
        length = int(torch.randint(min(h.prefix_min, len(t)), len(t) + 1, ()))
        keep = cols < length
        if not bool(keep.any()):  # a mini-batch with no point inside the prefix: the whole grid
            length, keep = len(t), torch.ones_like(keep)
        pred = self((t[:length], z0, rows[keep], cols[keep], *cond))
        loss = self.loss(pred, y[keep])
        self.record_train_loss(loss, int(y.shape[0]))
        return loss

    def loss(self, pred: Tensor, target: Tensor) -> Tensor:
        if self.hparams.mode == "derivative":  # per state in units of the data's typical rate
            scaled_target = target / self.field_scale
            err = pred / self.field_scale - scaled_target
            if self.hparams.get("derivative_loss", "scaled") == "relative":
                size = scaled_target.pow(2).sum(-1, keepdim=True)
                # the floor only guards exact equilibria; it is far below any rate in the data
                return torch.mean(err.pow(2) / size.clamp_min(torch.finfo(size.dtype).tiny ** 0.5))
            return torch.mean(err**2)
        err = pred - target
        return err.abs().mean() if self.hparams.objective == "mae" else torch.mean(err**2)

    def configure_optimizers(self) -> Any:
        h = self.hparams
        params = [p for p in self.parameters() if p.requires_grad]
        cls = torch.optim.AdamW if h.optimizer == "adamw" else torch.optim.Adam
        optimizer = cls(params, lr=h.lr, weight_decay=h.weight_decay)
        if h.lr_final is None:
            return optimizer
        epochs = int(self.trainer.max_epochs or -1) if self._trainer is not None else -1
        if epochs < 1:
            raise ValueError(f"lr_final anneals over trainer.max_epochs, which must be set (got {epochs})")
        floor = h.lr_final / h.lr

        def cosine(epoch: int) -> float:  # held at lr_final after max_epochs (torch's own cosine restarts)
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(epoch / epochs, 1.0)))

        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "epoch"}}

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        target = self.hparams.grad_norm
        if target is None:
            return
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        if grads:  # rescaled on the device: no host sync
            total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
            factor = target / total.clamp_min(torch.finfo(total.dtype).tiny)
            torch._foreach_mul_(grads, factor)

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, Tensor]:
        x, y = batch
        pred = self(x)
        if self.consumes(dict(self.hparams)) == "segment":  # the segment's last state, at the sample's target time
            pred, y = pred[:, -1], y[:, -1]
        return {"pred": self.to_physical(x, pred), "target": self.to_physical(x, y)}

    # ----------------------------------------------------------------------------- free run
    def free_run(self, dm: Any, settings: RolloutSettings | None = None) -> dict[str, np.ndarray]:
        """Integrate the learned field from the true initial state(s) over the datamodule's free-run
        grid (default: scipy's Radau with the field's Jacobian by autograd; ``--rollout.*``).

        One trajectory: ``pred`` and ``reference`` are ``(T, n)``; an ensemble: every held-out
        initial state in one batched solve, ``(m, T, n)``.
        """
        settings = (settings or RolloutSettings()).resolved(solver="Radau", atol=1e-9)
        data = dm.free_run_data()
        try:
            with torch.inference_mode(False), torch.enable_grad():
                run = field_free_run(self.field, data, settings, next(self.parameters()))
        except (SolveError, StepBudgetExceeded) as err:
            rank_zero_warn(f"free run of the learned field failed: {err}")
            keep = settings.cut(len(data.times))
            run = {"t": data.times[:keep], "reference": data.reference[:, :keep]}
            run["pred"] = np.full(run["reference"].shape, np.nan)
        times, pred, ref = run["t"], run["pred"], run["reference"]
        if not data.ensemble:  # one trajectory
            return {"t": times[1:], "pred": pred[0, 1:], "reference": ref[0, 1:]}
        return {"t": times[1:], "pred": pred[:, 1:], "reference": ref[:, 1:]}
