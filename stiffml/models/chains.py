"""Exact fast rollouts of windowed recurrent models ("chains").

A window model runs a recurrent net from a zero state over the k most recent states and reads
the next state out. Re-running the window costs k sequential cell steps per prediction. But at
input position p the live windows are those started at p-k+1 … p, and every one of them consumes
the same input x_p; so the k chains advance together as one batched cell step, and the chain
started at p-k+1 completes and yields the prediction of x_{p+1}. Same arithmetic, k times fewer
sequential steps.

Hand-written because torch's fused RNN modules only run whole sequences. (TorchScript is
deprecated in torch 2.13 and was not faster here for a single long rollout.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

CELL_KINDS = {"LSTM": 0, "GRU": 1, "RNN_TANH": 2}
READOUTS = {"last": 0, "attention": 1}


def chain_rollout(
    init: Tensor,
    steps: int,
    kinds: list[int],
    weights: list[list[Tensor]],
    readout: int,
    ro: list[Tensor],
    residual: bool = False,
) -> Tensor:
    """Roll ``steps`` predictions out from the windows ``init`` (B, k, n).

    Args:
        init: True initial windows.
        steps: Predictions to make.
        kinds: Per layer: 0 LSTM, 1 GRU, 2 tanh RNN.
        weights: Per layer ``[w_ih, w_hh, b_ih, b_hh]``.
        readout: 0: linear head on the last output (``ro = [W, b]``); 1: additive attention over
            the window (``ro = [proj_W, proj_b, score_v, head_W, head_b]``).
        ro: Readout tensors.
        residual: The prediction is the window's last state plus the readout.
    """
    b, k, n = init.shape[0], init.shape[1], init.shape[2]
    h: list[Tensor] = []
    c: list[Tensor] = []
    for w in weights:
        h.append(torch.zeros(b * k, w[1].shape[1], dtype=init.dtype, device=init.device))
        c.append(torch.zeros(b * k, w[1].shape[1], dtype=init.dtype, device=init.device))
    hist = torch.zeros(b, k, k, h[-1].shape[1], dtype=init.dtype, device=init.device)  # (B, chain, p % k, H)
    ar = torch.arange(k, device=init.device)
    order = (ar.unsqueeze(1) + 1 + ar.unsqueeze(0)) % k  # chronological slots of the chain completing at p
    out = torch.empty(b, steps, n, dtype=init.dtype, device=init.device)
    x = init[:, 0]
    for p in range(k - 1 + steps):
        r = p % k  # the chain starting at p reuses the slot freed at p - 1
        for li in range(len(weights)):
            h[li].view(b, k, -1)[:, r] = 0.0
            c[li].view(b, k, -1)[:, r] = 0.0
        inp = x.expand(k, n) if b == 1 else x.repeat_interleave(k, dim=0)  # one input, all chains
        for li in range(len(weights)):
            w = weights[li]
            if kinds[li] == 0:
                hc = torch.lstm_cell(inp, [h[li], c[li]], w[0], w[1], w[2], w[3])
                h[li] = hc[0]
                c[li] = hc[1]
            elif kinds[li] == 1:
                h[li] = torch.gru_cell(inp, h[li], w[0], w[1], w[2], w[3])
            else:
                h[li] = torch.rnn_tanh_cell(inp, h[li], w[0], w[1], w[2], w[3])
            inp = h[li]
        hist[:, :, r] = h[-1].view(b, k, -1)
        if p >= k - 1:
            seq = hist[:, (p + 1) % k].index_select(1, order[r])
            if readout == 1:
                scores = torch.matmul(torch.tanh(F.linear(seq, ro[0], ro[1])), ro[2])
                context = torch.bmm(torch.softmax(scores, dim=1).unsqueeze(1), seq).squeeze(1)
                y = F.linear(context, ro[3], ro[4])
            else:
                y = F.linear(seq[:, -1], ro[0], ro[1])
            x = x + y if residual else y  # x is the window's last state here
            out[:, p - k + 1] = x
        else:
            x = init[:, p + 1]
    return out

