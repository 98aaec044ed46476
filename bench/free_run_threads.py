"""A free run with one intra-op thread against the machine's default, and a training step the
same two ways, measured in one run (the free run is latency-bound: tiny dependent steps).

    python bench/free_run_threads.py [--steps 20000] [--train-steps 200] [--threads 2]

The free run is an RNN's fast-path rollout (a VdP-sized model, float64, as ``stiffml fit``'s final
free run); the training step an AttenLSTM step on a batch of 100 windows. Quote the ratios with
what else was running.
"""

from __future__ import annotations

import argparse
import time

import torch

from stiffml.models import RNN, AttenLSTM


def timed(fn, threads: int) -> float:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start
    finally:
        torch.set_num_threads(before)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20_000, help="free-run steps")
    p.add_argument("--train-steps", type=int, default=200)
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="the multi-threaded setting")
    a = p.parse_args()
    torch.manual_seed(0)
    rnn = RNN(n_inputs=2, n_outputs=2).double().eval()
    init = torch.randn(1, 20, 2, dtype=torch.float64)

    def free_run() -> None:
        with torch.no_grad():
            rnn.rollout(init, a.steps)

    model = AttenLSTM(n_inputs=3, n_outputs=3).double()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.randn(100, 10, 3, dtype=torch.float64), torch.randn(100, 3, dtype=torch.float64)

    def train() -> None:
        for _ in range(a.train_steps):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            opt.step()

    free_run(), train()  # warm-up
    rows = []
    for name, fn in (("free run", free_run), ("training steps", train)):
        one, many = timed(fn, 1), timed(fn, a.threads)
        rows.append((name, one, many))
    print(f"{'':<16} {'1 thread s':>10} {f'{a.threads} threads s':>12} {'ratio':>7}")
    for name, one, many in rows:
        print(f"{name:<16} {one:>10.3f} {many:>12.3f} {many / one:>7.2f}")


if __name__ == "__main__":
    main()
