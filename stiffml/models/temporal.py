"""The temporal family (a window of past states → the next state): RNN, GRU, LSTM,
StackedLSTM, AttenLSTM.

At the paper's sizes (hidden 64; 2 layers for RNN/LSTM, 1 for AttenLSTM) the parameter counts
are Table 2's exactly: RNN 12,931 / 12,673, LSTM 51,139 / 50,497, AttenLSTM 22,083 / 21,441
(B-Z with 3 states / VdP with x only).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, get_args

import numpy as np
import torch
from torch import Tensor, nn

from stiffml.evaluation.rollout import RolloutSettings, window_free_run
from stiffml.models.base import StiffModel, check_positive
from stiffml.models.chains import CELL_KINDS, READOUTS, chain_rollout


def _layers_of(rnn: nn.RNNBase) -> list[tuple[str, list[Tensor]]]:
    """Per-layer cell kind and weights of a unidirectional, biased torch RNN module."""
    if rnn.bidirectional or not rnn.bias or getattr(rnn, "proj_size", 0):
        raise ValueError("fast rollouts need a unidirectional RNN with biases and no projection")
    kind = rnn.mode if rnn.mode != "RNN_RELU" else None
    if kind is None:
        raise ValueError("fast rollouts support tanh RNNs, GRUs and LSTMs")
    return [
        (kind, [getattr(rnn, f"{name}_l{i}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")])
        for i in range(rnn.num_layers)
    ]


UnrollGradient = Literal["full", "pushforward"]
UNROLL_GRADIENTS = get_args(UnrollGradient)


def check_unroll(unroll: int, unroll_gradient: str) -> None:
    """One-line errors for the unrolled-training arguments of window models."""
    if unroll < 1:
        raise ValueError(f"unroll must be a positive integer (1: teacher forcing), got {unroll}")
    if unroll_gradient not in UNROLL_GRADIENTS:
        raise ValueError(f"unknown unroll_gradient {unroll_gradient!r}; valid: {list(UNROLL_GRADIENTS)}")


class WindowModel(StiffModel):
    """Base of the window-consuming models: free-running rollouts and their evaluation.

    Subclasses implement ``forward(window)`` with ``window`` of shape (B, k, n_inputs),
    returning the next state (B, n_outputs); for rollouts ``n_inputs == n_outputs``.

    Training on the model's own predictions: when the datamodule serves ``horizon`` h > 1
    targets per window (the CLI sets it from the model's ``unroll``), a training step feeds
    every prediction back into the window for h steps, the whole batch at once, and takes the
    loss over all h. ``unroll_gradient: full`` back-propagates through the feedback;
    ``pushforward`` (Brandstetter et al. 2022) detaches the fed-back predictions, so every step
    learns from inputs drawn from the model's own rollout distribution at one step's cost of
    gradient. Validation and test keep scoring the one-step prediction (the first target).

    The arguments every window model takes are declared and documented here once; a subclass
    lists its own (and ``lr``, whose default is its own) and passes the rest on with
    ``**kwargs``, which jsonargparse follows, so ``--help`` still shows all of them.

    Args:
        n_inputs: Linked from the datamodule (state width).
        n_outputs: Linked from the datamodule.
        lr: Adam learning rate.
        residual: Predict the increment over the window's last state (next = last + net).
        unroll: Train on the model's own predictions over this many steps (1: teacher forcing).
        unroll_gradient: ``full`` (back-propagate through the fed-back predictions) or
            ``pushforward`` (detach them).
    """

    family = "temporal"
    representation = "window"
    supports_residual: ClassVar[bool] = False  # forward returns self.next_state(window, out)

    def __init__(self, n_inputs: int = 1, n_outputs: int = 1, lr: float = 1e-3, residual: bool = False,
                 unroll: int = 1, unroll_gradient: UnrollGradient = "full") -> None:
        super().__init__(n_inputs, n_outputs, lr)
        check_unroll(unroll, unroll_gradient)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if self.hparams.get("residual", False) and not type(self).supports_residual:
            raise ValueError(
                f"{type(self).__name__} was given residual=true but does not apply it: return "
                "self.next_state(window, out) from forward and set supports_residual = True"
            )
        dm = self._datamodule()
        unroll = self.hparams.get("unroll")
        horizon = dm.hparams.get("horizon") if dm is not None else None
        if unroll is not None and horizon is not None and horizon != unroll:
            raise ValueError(
                f"{type(self).__name__} has unroll={unroll} but {type(dm).__name__} serves horizon={horizon}; "
                "give the datamodule horizon equal to unroll (the CLI links them)"
            )

    def unrolled(self, window: Tensor, steps: int) -> Tensor:
        """Predict ``steps`` states feeding each prediction back into the window (differentiable).

        Args:
            window: True initial windows (B, k, n).
            steps: Number of predictions.

        Returns:
            Predictions (B, steps, n).
        """
        detach = self.hparams.get("unroll_gradient", "full") == "pushforward"
        preds = []
        for _ in range(steps):  # sequential by nature; the batch is processed at once
            pred = self(window)
            preds.append(pred)
            fed = pred.detach() if detach else pred
            window = torch.cat([window[:, 1:], fed.unsqueeze(1)], 1)
        return torch.stack(preds, 1)

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        window, target = batch
        if target.ndim == 2:  # teacher forcing: one step from the true window
            return super().training_step(batch, batch_idx)
        loss = self.loss(self.unrolled(window, target.shape[1]), target)
        self.record_train_loss(loss, target.shape[0])
        return loss

    @staticmethod
    def _one_step(batch: Any) -> Any:
        window, target = batch
        return (window, target[:, 0]) if target.ndim == 3 else batch

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        super().validation_step(self._one_step(batch), batch_idx)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        super().test_step(self._one_step(batch), batch_idx)

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, Tensor]:
        return super().predict_step(self._one_step(batch), batch_idx)

    def recurrent_layers(self) -> list[tuple[str, list[Tensor]]] | None:
        """Per-layer ``(cell kind, [w_ih, w_hh, b_ih, b_hh])`` for the fast rollout, or None.

        Models whose forward is a readout of stacked recurrent layers over the window return
        their layers here (cell kinds ``LSTM``, ``GRU``, ``RNN_TANH``) and a :meth:`readout_spec`;
        others fall back to re-running ``forward`` on every window.
        """
        return None

    def readout_spec(self) -> tuple[str, list[Tensor]] | None:
        """``("last", [W, b])`` or ``("attention", [proj_W, proj_b, v, head_W, head_b])``."""
        return None

    def next_state(self, window: Tensor, out: Tensor) -> Tensor:
        """The prediction: ``out``, or the window's last state plus ``out`` if ``residual``."""
        return window[:, -1] + out if self.hparams.get("residual", False) else out

    @torch.inference_mode()
    def rollout(self, init: Tensor, steps: int, naive: bool = False) -> Tensor:
        """Feed the model's own predictions back, starting from true windows.

        Args:
            init: Initial windows, shape (B, k, n), normalised units; B rollouts run as one batch.
            steps: Number of steps to predict.
            naive: Re-run ``forward`` on every window even if the fast path is available.

        Returns:
            Predicted states, shape (B, steps, n).
        """
        if init.shape[-1] != self.hparams.n_outputs:
            raise ValueError(
                f"rollout needs n_inputs == n_outputs, got window width {init.shape[-1]} "
                f"and {self.hparams.n_outputs} outputs"
            )
        was_training = self.training
        self.eval()
        try:
            layers, spec = (None, None) if naive else (self.recurrent_layers(), self.readout_spec())
            if layers is None or spec is None:
                return self._rollout_rerun(init, steps)
            kinds = [CELL_KINDS[kind] for kind, _ in layers]
            residual = bool(self.hparams.get("residual", False))
            return chain_rollout(init, steps, kinds, [w for _, w in layers], READOUTS[spec[0]], spec[1], residual)
        finally:
            self.train(was_training)

    def _rollout_rerun(self, init: Tensor, steps: int) -> Tensor:
        b, k, n = init.shape
        buf = torch.empty(b, k + steps, n, dtype=init.dtype, device=init.device)
        buf[:, :k] = init
        for i in range(steps):  # sequential by nature: step i needs prediction i - 1
            buf[:, k + i] = self(buf[:, i : i + k])
        return buf[:, k:]

    def free_run(self, dm: Any, settings: RolloutSettings | None = None) -> dict[str, np.ndarray]:
        """Roll out over the datamodule's whole series (``settings.length`` steps if set) from its
        first true window.

        Returns:
            ``t`` (times of the predicted states), ``pred`` and ``reference`` in physical units.
        """
        length = settings.length if settings is not None else None
        return window_free_run(self.rollout, dm.free_run_data(), length, next(self.parameters()))


class LastStateReadout(WindowModel):
    """Window models that read the next state out of the top layer's last output with ``head``."""

    supports_residual = True

    head: nn.Linear

    def readout(self, seq: Tensor) -> Tensor:
        return self.head(seq[:, -1])

    def readout_spec(self) -> tuple[str, list[Tensor]]:
        return "last", [self.head.weight, self.head.bias]


class RNN(LastStateReadout):
    """Elman RNN (tanh) + linear head on the last hidden state.

    Args:
        lr: Adam learning rate.
        hidden: Hidden size.
        layers: Stacked recurrent layers.
        **kwargs: The window models' arguments (:class:`WindowModel`).
    """

    cell = nn.RNN

    def __init__(self, lr: float = 5e-5, hidden: int = 64, layers: int = 2, **kwargs: Any) -> None:
        super().__init__(lr=lr, **kwargs)
        check_positive(hidden=hidden, layers=layers)
        n_inputs, n_outputs = self.hparams.n_inputs, self.hparams.n_outputs
        self.rnn = self.cell(n_inputs, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, n_outputs)

    def forward(self, window: Tensor) -> Tensor:
        out, _ = self.rnn(window)
        return self.next_state(window, self.readout(out))

    def recurrent_layers(self) -> list[tuple[str, list[Tensor]]]:
        return _layers_of(self.rnn)


class GRU(RNN):
    """GRU (update and reset gates) + linear head."""

    cell = nn.GRU


class LSTM(RNN):
    """LSTM (input, forget, output gates and cell state) + linear head."""

    cell = nn.LSTM


class StackedLSTM(LastStateReadout):
    """The seeds' Keras stack: LSTM(hidden, return sequences) → LSTM(hidden) → Dense.

    Args:
        lr: Adam learning rate.
        hidden: Units of each LSTM (50 in the seeds).
        **kwargs: The window models' arguments (:class:`WindowModel`).
    """

    def __init__(self, lr: float = 1e-3, hidden: int = 50, **kwargs: Any) -> None:
        super().__init__(lr=lr, **kwargs)
        check_positive(hidden=hidden)
        n_inputs, n_outputs = self.hparams.n_inputs, self.hparams.n_outputs
        self.lstm1 = nn.LSTM(n_inputs, hidden, batch_first=True)
        self.lstm2 = nn.LSTM(hidden, hidden, batch_first=True)
        self.head = nn.Linear(hidden, n_outputs)

    def forward(self, window: Tensor) -> Tensor:
        seq, _ = self.lstm1(window)
        out, _ = self.lstm2(seq)
        return self.next_state(window, self.readout(out))

    def recurrent_layers(self) -> list[tuple[str, list[Tensor]]]:
        return _layers_of(self.lstm1) + _layers_of(self.lstm2)


class AttenLSTM(WindowModel):
    """LSTM with additive attention over the window.

    ``score_t = v · tanh(W h_t + b)``, ``α = softmax_t(score)``, ``context = Σ_t α_t h_t``,
    then a linear head.

    Args:
        lr: Adam learning rate.
        hidden: LSTM hidden size (and attention width).
        layers: LSTM layers.
        **kwargs: The window models' arguments (:class:`WindowModel`).
    """

    supports_residual = True

    def __init__(self, lr: float = 5e-5, hidden: int = 64, layers: int = 1, **kwargs: Any) -> None:
        super().__init__(lr=lr, **kwargs)
        check_positive(hidden=hidden, layers=layers)
        n_inputs, n_outputs = self.hparams.n_inputs, self.hparams.n_outputs
        self.lstm = nn.LSTM(n_inputs, hidden, num_layers=layers, batch_first=True)
        self.proj = nn.Linear(hidden, hidden)
        self.score = nn.Parameter(torch.randn(hidden) / hidden**0.5)
        self.head = nn.Linear(hidden, n_outputs)

    def forward(self, window: Tensor) -> Tensor:
        h, _ = self.lstm(window)  # (B, k, hidden)
        return self.next_state(window, self.readout(h))

    def readout(self, seq: Tensor) -> Tensor:
        scores = torch.tanh(self.proj(seq)) @ self.score  # (B, k)
        context = torch.bmm(torch.softmax(scores, dim=1).unsqueeze(1), seq).squeeze(1)
        return self.head(context)

    def readout_spec(self) -> tuple[str, list[Tensor]]:
        return "attention", [self.proj.weight, self.proj.bias, self.score, self.head.weight, self.head.bias]

    def recurrent_layers(self) -> list[tuple[str, list[Tensor]]]:
        return _layers_of(self.lstm)
