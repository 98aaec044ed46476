"""Free-running rollout speed: the batched-chain fast path vs re-running every window.

Times a VdP-sized AttenLSTM (21,441 parameters, window 20, float64, CPU) over a full
3e5-step rollout with the fast path, and the naive re-run over a shorter rollout (extrapolated
linearly, since each step costs the same). Prints both and their ratio, measured in this run.

    python bench/rollout.py [--steps 299980] [--naive-steps 5000] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from stiffml.models import AttenLSTM


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300_001 - 20)
    p.add_argument("--naive-steps", type=int, default=5000)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = AttenLSTM(n_inputs=1, n_outputs=1).double()
    init = torch.randn(1, 20, 1, dtype=torch.float64)
    t0 = time.perf_counter()
    fast = model.rollout(init, a.steps)
    t_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    naive = model.rollout(init, a.naive_steps, naive=True)
    t_naive = (time.perf_counter() - t0) * a.steps / a.naive_steps
    diff = (fast[:, : a.naive_steps] - naive).abs().max().item()
    print(f"AttenLSTM VdP rollout, {a.steps} steps, float64, {torch.get_num_threads()} threads")
    print(f"fast (batched chains): {t_fast:.1f} s")
    print(f"naive (re-run window): {t_naive:.1f} s (extrapolated from {a.naive_steps} steps)")
    print(f"speed-up: {t_naive / t_fast:.2f}x; max |fast - naive| over the first {a.naive_steps} steps: {diff:.1e}")


if __name__ == "__main__":
    main()
