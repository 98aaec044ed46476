"""Hybrid models (universal differential equations): an SBML model's known mechanism with the
unknown part — a reaction's rate law or a parameter that is really a function of the state —
learned by networks evaluated inside the stiff right-hand side.

A thin Lightning shell around :class:`stiffml.hybrid.HybridField`. It trains like an ODE-Net
(whose training modes, solvers, losses and free runs it inherits): the learned vector field is
the mechanism with networks in it rather than an MLP of the whole state.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from stiffml.hybrid import HybridField, parse_replace
from stiffml.models.odenet import ODENet
from stiffml.solvers import StepBudgetExceeded


class HybridModel(ODENet):
    """An SBML model with chosen reaction rates or parameters replaced by networks.

    Trained on any SBML datamodule (``SBMLEnsembleDataModule`` for several conditions,
    ``SBMLDataModule`` for one trajectory) whose states are the model's states, in the
    ``trajectory`` representation by default (whole trajectories integrated from the conditions'
    initial states by the differentiable stiff solver, the loss at the measured points).

    Args:
        n_inputs: Linked from the datamodule (state width).
        n_outputs: Linked from the datamodule (state width).
        replace: What each network replaces and reads: ``{TARGET: {inputs: [ID, ...], hidden:
            [16, 16], activation: tanh, positive: false, scale: null}}``. ``TARGET`` is a
            reaction id (its rate law is replaced) or a constant parameter's id; ``inputs`` are
            model ids (species, compartments, parameters, assigned symbols) the network reads;
            ``positive`` puts the output through softplus; ``scale`` is the output's unit
            (default from the data: a reaction's typical rate, a parameter's value).
        starts: Multistart: this many independent initialisations of the networks, trained
            together (mode ``trajectory``): every start's solve of every condition in one batched
            solve, each start's loss its own (their sum is minimised, so each start's gradient is
            what it would be alone; ``grad_norm`` rescales them jointly). A start whose solve fails
            (some initialisations drive the stiff model into a blow-up) is dropped with a warning,
            so it cannot stop the others; ``starts_alive`` is logged. The model is the start with
            the lowest training loss so far in the epoch (``best_start``, logged): it is the one
            validated, run freely, checkpointed as the result and handed to ``stiffml symbolic``.
        lr: Adam learning rate.
        mode: ``trajectory`` (default), ``segment``, ``pair`` or ``derivative`` (as ODE-Net).
        solver: ``rosenbrock23`` (differentiable, stiff) or a torchdiffeq solver.
        rtol: Relative tolerance of the training solves.
        atol: Absolute tolerance of the training solves (normalised units).
        step_size: Step of fixed-step torchdiffeq solvers.
        adjoint: Gradients by the adjoint method (torchdiffeq solvers only).
        step_budget: Step budget of one training solve.
        objective: ``mse`` or ``mae`` of the normalised states.
        optimizer: ``adam`` or ``adamw``.
        weight_decay: Weight decay of the optimizer.
        grad_norm: Rescale the gradient to this norm before every step; ``None``: leave it.
        prefix_min: Trajectory mode: integrate over a random prefix of at least this many points.
        lr_final: Anneal the learning rate to this value over ``trainer.max_epochs`` (cosine).
    """

    family = "hybrid"
    representation = "trajectory"
    reads_conditions = False  # its field is the SBML model's, with the model's own parameters
    contract_datamodule: ClassVar[str] = "SBMLEnsembleDataModule"
    contract_args: ClassVar[list[str]] = ["--model.replace", "{R3: {inputs: [y2, y3], hidden: [4]}}",
                                          "--model.rtol", "1.0e-4", "--model.atol", "1.0e-7"]

    def __init__(
        self,
        n_inputs: int = 1,
        n_outputs: int = 1,
        replace: dict[str, dict[str, Any] | None] | None = None,
        starts: int = 1,
        lr: float = 1e-3,
        mode: Literal["trajectory", "segment", "pair", "derivative"] = "trajectory",
        solver: str = "rosenbrock23",
        rtol: float = 1e-6,
        atol: float = 1e-8,
        step_size: float | None = None,
        adjoint: bool = False,
        step_budget: int = 10_000,
        objective: Literal["mse", "mae"] = "mse",
        optimizer: Literal["adam", "adamw"] = "adam",
        weight_decay: float = 0.0,
        grad_norm: float | None = None,
        prefix_min: int | None = None,
        lr_final: float | None = None,
    ) -> None:
        super().__init__(
            n_inputs, n_outputs, lr=lr, hidden=1, depth=0, mode=mode, solver=solver, rtol=rtol, atol=atol,
            step_size=step_size, adjoint=adjoint, step_budget=step_budget, scale_output=False, objective=objective,
            optimizer=optimizer, weight_decay=weight_decay, grad_norm=grad_norm, prefix_min=prefix_min,
            lr_final=lr_final,
        )
        # the learned field is the mechanism with networks in it, not ODE-Net's MLP of the state
        del self.net
        if starts > 1 and mode != "trajectory":
            raise ValueError(f"model.starts={starts} trains the starts in one batched solve of whole trajectories: "
                             f"it needs mode 'trajectory', got {mode!r}")
        self.hybrid = HybridField(parse_replace(replace) if replace is not None else [], starts)
        self._start_losses: Tensor | None = None  # this epoch's running loss sum per start
        self._step_start_losses: Tensor | None = None
        self._alive: list[int] | None = None  # the alive starts, read from the buffer once
        self._alive_tensor: Tensor | None = None
        self._among: Tensor | None = None
        # the data's normalisation z = (y − shift)/scale, kept as buffers: the scaler's own cached
        # tensors may have been made under inference mode, which autograd cannot save
        self.register_buffer("z_shift", torch.zeros(n_outputs))
        self.register_buffer("z_scale", torch.ones(n_outputs))
        self._log_states = False

    @classmethod
    def consumes(cls, init_args: dict[str, Any]) -> str:
        return super().consumes({"mode": init_args.get("mode", "trajectory")})

    # ----------------------------------------------------------------------------- multistart
    def forward(self, x: Any) -> Tensor:
        starts = self.hybrid.starts
        if starts == 1 or not self.training:
            return super().forward(x)  # evaluation: the best start alone
        t, z0, rows, cols, *_ = x
        m = z0.shape[0]
        while True:
            alive, among = self._alive_starts(), self._alive_index(z0.device)
            try:  # start-major batch: the j-th alive start solves rows j·m … j·m + m − 1
                with self.hybrid.every_start(among):
                    out = self._integrate(self.field, z0.repeat(len(alive), 1), t)
                break
            except StepBudgetExceeded as err:
                self._drop_failing_starts(alive, z0, t, err)
        self._among = among
        return out.reshape(len(t), len(alive), m, -1)[cols, :, rows]  # (B, alive starts, n)

    def _alive_starts(self) -> list[int]:
        if self._alive is None:  # one host sync, then kept on the host until a start is dropped
            self._alive = [int(k) for k in torch.nonzero(self.hybrid.alive).flatten().tolist()]
        return self._alive

    def _alive_index(self, device: torch.device) -> Tensor:
        """The alive starts as an index tensor on ``device``, made once per change (not per step)."""
        cached = getattr(self, "_alive_tensor", None)
        if cached is None or cached.device != device:
            cached = self._alive_tensor = torch.as_tensor(self._alive_starts(), device=device)
        return cached

    def _drop_failing_starts(self, alive: list[int], z0: Tensor, t: Tensor, err: Exception) -> None:
        """After a joint solve failed: solve each start alone, drop those that fail."""
        failed = []
        with torch.no_grad():
            for k in alive:
                try:
                    with self.hybrid.every_start(torch.tensor([k], device=z0.device)):
                        self._integrate(self.field, z0, t)
                except StepBudgetExceeded:
                    failed.append(k)
        left = [k for k in alive if k not in failed]
        if not failed or not left:
            which = "every start's solve failed" if failed else "the starts' joint solve failed"
            raise RuntimeError(f"{err} during training ({which}); {self._last_checkpoint_note()}") from None
        self.hybrid.alive[failed] = False
        self._alive, self._alive_tensor = left, None
        rank_zero_warn(f"multistart: start(s) {failed} dropped, their solve failed ({err}); {len(left)} of "
                       f"{self.hybrid.starts} starts left")

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        self._alive = self._alive_tensor = None  # the checkpoint's alive starts

    def loss(self, pred: Tensor, target: Tensor) -> Tensor:
        if pred.ndim != target.ndim + 1:
            return super().loss(pred, target)
        err = pred - target.unsqueeze(1)
        dims = (0, *range(2, err.ndim))
        per = err.abs().mean(dims) if self.hparams.objective == "mae" else err.pow(2).mean(dims)
        detached = torch.full((self.hybrid.starts,), torch.inf, dtype=per.dtype, device=per.device)
        detached[self._among] = per.detach()  # a dropped start's loss is inf: never the best
        self._step_start_losses = detached
        self._start_losses = detached.clone() if self._start_losses is None else self._start_losses + detached
        self.hybrid.best_start.copy_(torch.argmin(self._start_losses))  # on the device: no host sync
        return per.sum()

    def record_train_loss(self, loss: Tensor, batch_size: int) -> None:
        per, self._step_start_losses = self._step_start_losses, None
        super().record_train_loss(loss if per is None else per[self.hybrid.best_start], batch_size)

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        self._start_losses = None

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        if self.hybrid.starts > 1 and self._start_losses is not None:
            self.log("best_start", self.hybrid.best_start.to(torch.float64))
            self.log("starts_alive", float(len(self._alive_starts())))

    # --------------------------------------------------------------------------------- field
    def field(self, t: Tensor, z: Tensor) -> Tensor:
        """dz/dt in the data's normalised units, batched (B, n)."""
        shift, scale = self.z_shift.to(z.dtype), self.z_scale.to(z.dtype)
        if self._log_states:
            y = torch.exp(z * scale + shift)
            return self.hybrid(t, y) / (scale * y)
        return self.hybrid(t, z * scale + shift) / scale

    def bind(self, system: Any) -> None:
        """Attach the SBML system whose mechanism the networks complete."""
        if not self.hybrid.replacements:
            raise ValueError("HybridModel needs --model.replace, e.g. '{R3: {inputs: [S1, S2], hidden: [16, 16]}}': "
                             "which reaction rates or parameters the networks replace and what they read")
        if getattr(system, "math", None) is None or not hasattr(system.math, "generate_hybrid"):
            raise ValueError(f"HybridModel completes an SBML model's mechanism; the data's system "
                             f"{getattr(system, 'name', type(system).__name__)!r} is not an SBML model "
                             "(use SBMLEnsembleDataModule or SBMLDataModule)")
        self.hybrid.bind(system)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        dm = self._datamodule()
        if dm is not None:
            self.attach(dm, fit=stage == "fit")

    def attach(self, dm: Any, fit: bool = True) -> None:
        """Bind the datamodule's SBML system and take its normalisation; with ``fit``, also set the
        networks' units from the training conditions (once: a resumed model keeps its own).
        Lightning calls this from ``setup``; call it yourself to use the model without a Trainer."""
        system = dm.system
        self.bind(system)
        if list(getattr(dm, "outputs", system.state_names)) != list(system.state_names):
            raise ValueError(f"HybridModel needs every state of the model as data ({list(system.state_names)}), "
                             f"the datamodule serves {list(dm.outputs)}")
        if self.data_spec is None and getattr(dm, "samples", None) is not None:
            self.data_spec = dm.spec()
        if self.data_spec is None:
            return
        scaler = self.data_spec.scaler
        self.z_shift.copy_(torch.as_tensor(scaler.shift, dtype=self.z_shift.dtype))
        self.z_scale.copy_(torch.as_tensor(scaler.scale, dtype=self.z_scale.dtype))
        self._log_states = scaler.kind == "log-zscore"
        if fit:
            t, states = self._training_states(dm)
            self.hybrid.set_scales(torch.as_tensor(np.broadcast_to(t, states.shape[:-1]).copy()),
                                   torch.as_tensor(states), self._rate_scales(system, t, states))

    def _training_states(self, dm: Any) -> tuple[np.ndarray, np.ndarray]:
        """Times ``(T,)`` and measured states ``(k, T, n)`` of the training conditions only."""
        data = self.data_spec
        t = np.asarray(data.times, dtype=np.float64)
        ref = np.asarray(data.reference, dtype=np.float64).reshape(-1, len(t), data.n_outputs)
        train = getattr(dm, "train_trajectories", None)
        return t, (ref[np.asarray(train)] if train is not None and len(ref) > 1 else ref)

    def _rate_scales(self, system: Any, t: np.ndarray, states: np.ndarray) -> dict[str, float]:
        """Each target's typical size: a parameter's value; a reaction's rate as the largest RMS
        rate of the model's known reactions that share a species with it (all known reactions if
        none does) over the measured training states. Finite differences of the data would be
        the direct estimate, but noisy measurements on a log grid make them meaningless."""
        math = system.math
        values = dict(zip(math.constant_ids, system.constants))
        replaced = set(self.hybrid.targets)
        known = [r for r in math.reactions if r not in replaced]
        flat, times = states.reshape(-1, states.shape[-1]), np.broadcast_to(t, states.shape[:-1]).reshape(-1)
        rms: dict[str, float] = {}
        if known:
            rates = math.generate_observables(known, set())(times, flat.T, list(system.constants))
            rms = {r: float(np.sqrt(np.mean(np.broadcast_to(np.asarray(v, dtype=np.float64), times.shape) ** 2)))
                   for r, v in zip(known, rates)}

        def species(rid: str) -> set[str]:
            r = math.reactions[rid]
            return {ref.getSpecies() for ref in [*r.getListOfReactants(), *r.getListOfProducts()]}

        out: dict[str, float] = {}
        for target in self.hybrid.targets:
            if target in math.reactions:
                near = [rms[r] for r in known if species(r) & species(target)] or list(rms.values())
                near = [v for v in near if v > 0 and np.isfinite(v)]
                out[target] = max(near) if near else 1.0
            else:
                value = abs(float(values.get(target, 0.0)))
                out[target] = value if value > 0 and np.isfinite(value) else 1.0
        return out

    # -------------------------------------------------------------------------- symbolic
    def learned_terms(self, states: np.ndarray, t: float = 0.0) -> dict[str, np.ndarray]:
        """Each network's term (its target's learned value) at physical ``states`` ``(N, n)``."""
        y = torch.as_tensor(states, dtype=torch.float64)
        with torch.no_grad():
            net = self.hybrid.double()
            values = net.terms(torch.tensor(t, dtype=torch.float64), y)
        return {r: v.numpy() for r, v in zip(self.hybrid.targets, values)}

    def symbolic_report(self, dm: Any, opts: argparse.Namespace) -> str:
        """Each learned term against the model's own (true) law over the states the data visit,
        and the sparse polynomial of the inputs that fits it (:func:`stiffml.hybrid.symbolic.propose`;
        ``opts.output_dir``: where the figure ``learned_terms.png`` goes)."""
        from stiffml.hybrid.symbolic import term_report

        self.bind(dm.system)
        out = getattr(opts, "output_dir", None)
        return term_report(self, dm, out_dir=None if out is None else Path(out))
