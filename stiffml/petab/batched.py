"""Local optimisers with a batch dimension over multistart starts (numerical core; no Lightning).

Each optimiser follows an ask/tell protocol: :meth:`ask` names the starts still running and the
points at which they need the objective next, the caller evaluates all of them together (one joint
solve per experiment: :meth:`stiffml.petab.Problem.values_and_gradients`), and :meth:`tell` moves
every start on by its own rule. A start keeps its own state (iterate, memory, step length, step
count) and is frozen when it has converged, stalled or failed, while the others go on.

Written here rather than taken from ``torch.optim``: its optimisers have no batch dimension (one
``LBFGS`` line search would couple every start through one step length, and ``Adam`` cannot freeze
one row of a parameter while its momentum keeps moving it) and no bounds. ``scipy``'s and ``fides``'
optimisers run one start at a time (``stiffml petab-fit`` uses them).
"""

from __future__ import annotations

import numpy as np

C1 = 1e-4  # Armijo's sufficient-decrease constant
SHRINK = 0.5  # backtracking factor
SMALLEST_STEP = 1e-12  # relative step length at which a line search gives up


class BatchedOptimizer:
    """Common state of a batched optimiser over ``K`` starts within box bounds.

    Args:
        x0: Starting points ``[K, P]`` (inside the bounds).
        lower: Lower bounds ``[P]``.
        upper: Upper bounds ``[P]``.
        max_iterations: Accepted steps per start before it is frozen.
        gtol: A start has converged when its projected gradient's largest entry is below this.
        ftol: A step improving the value by less than ``ftol * max(1, |f|)`` counts as a stall.
        patience: Stalled steps in a row after which a start is frozen.

    Attributes:
        x: Each start's current iterate ``[K, P]``.
        f: Its value (``inf`` before the first evaluation).
        best_x: The best point each start has visited (``best_f`` its value; Adam's iterates
            need not descend).
        finished: Which starts are frozen; ``reason`` says why.
        evaluations: Objective evaluations per start.
        iterations: Accepted steps per start.
    """

    name = "base"

    def __init__(self, x0: np.ndarray, lower: np.ndarray, upper: np.ndarray, max_iterations: int = 1000,
                 gtol: float = 1e-6, ftol: float = 1e-10, patience: int = 10) -> None:
        x0 = np.array(x0, dtype=np.float64, ndmin=2)
        k_count, p = x0.shape
        self.lower = np.broadcast_to(np.asarray(lower, dtype=np.float64), (p,)).copy()
        self.upper = np.broadcast_to(np.asarray(upper, dtype=np.float64), (p,)).copy()
        self.x = np.clip(x0, self.lower, self.upper)
        self.f = np.full(k_count, np.inf)
        self.g = np.zeros((k_count, p))
        self.finished = np.zeros(k_count, dtype=bool)
        self.reason = [""] * k_count
        self.evaluations = np.zeros(k_count, dtype=np.int64)
        self.iterations = np.zeros(k_count, dtype=np.int64)
        self.stalls = np.zeros(k_count, dtype=np.int64)
        self.started = np.zeros(k_count, dtype=bool)
        self.best_x = self.x.copy()
        self.best_f = np.full(k_count, np.inf)
        self.max_iterations, self.gtol, self.ftol, self.patience = max_iterations, gtol, ftol, patience

    # ---------------------------------------------------------------------------- protocol
    def ask(self) -> tuple[np.ndarray, np.ndarray]:
        """The running starts' indices and the points ``[k, P]`` to evaluate for them."""
        idx = np.flatnonzero(~self.finished)
        return idx, self._points(idx)

    def tell(self, idx: np.ndarray, values: np.ndarray, grads: np.ndarray) -> None:
        """The objective and its gradient at the points :meth:`ask` gave for starts ``idx``."""
        for k, value, grad in zip(idx, values, grads):
            self.evaluations[k] += 1
            if not self.started[k]:
                self.started[k] = True
                if not (np.isfinite(value) and np.all(np.isfinite(grad))):
                    self._finish(k, "the start cannot be simulated")
                    continue
                self.f[k], self.g[k] = value, grad
                self.best_x[k], self.best_f[k] = self.x[k], value
                self._begin(k)
                continue
            self._update(k, float(value), np.asarray(grad, dtype=np.float64))

    @property
    def done(self) -> bool:
        """Whether every start is frozen."""
        return bool(self.finished.all())

    def state_dict(self) -> dict[str, object]:
        """Everything needed to continue bit for bit (numpy arrays and lists)."""
        return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in vars(self).items()}

    def load_state_dict(self, state: dict[str, object]) -> None:
        unknown = set(state) - set(vars(self))
        if unknown:
            raise ValueError(f"optimiser state has unknown entries {sorted(unknown)} (written by another optimiser?)")
        for key, value in state.items():
            setattr(self, key, np.array(value) if isinstance(value, np.ndarray) else value)

    # ---------------------------------------------------------------------------- helpers
    def projected_gradient(self, k: int) -> np.ndarray:
        """The step to the bounds' projection of a unit gradient step (zero at a bound the
        gradient pushes against)."""
        x = self.x[k]
        return x - np.clip(x - self.g[k], self.lower, self.upper)

    def _accepted(self, k: int, x: np.ndarray, value: float, grad: np.ndarray) -> bool:
        """Record an accepted step; freeze the start when a stop rule holds. Returns whether it
        still runs."""
        previous = self.f[k]
        self.x[k], self.f[k], self.g[k] = x, value, grad
        if value < self.best_f[k]:
            self.best_x[k], self.best_f[k] = x, value
        self.iterations[k] += 1
        if np.max(np.abs(self.projected_gradient(k)), initial=0.0) < self.gtol:
            self._finish(k, "converged: projected gradient below gtol")
            return False
        self.stalls[k] = self.stalls[k] + 1 if previous - value <= self.ftol * max(1.0, abs(value)) else 0
        if self.stalls[k] >= self.patience:
            self._finish(k, f"converged: {self.patience} steps without relative progress ftol")
            return False
        if self.iterations[k] >= self.max_iterations:
            self._finish(k, "stopped: max_iterations reached")
            return False
        return True

    def _finish(self, k: int, reason: str) -> None:
        self.finished[k] = True
        self.reason[k] = reason

    def _points(self, idx: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _begin(self, k: int) -> None:
        raise NotImplementedError

    def _update(self, k: int, value: float, grad: np.ndarray) -> None:
        raise NotImplementedError


class BatchedLBFGS(BatchedOptimizer):
    """Projected limited-memory BFGS with a backtracking Armijo line search per start.

    The direction is the two-loop recursion on the free variables (those not held at a bound by
    their gradient); the trial point is projected into the bounds. A line search that cannot
    decrease the value clears the memory and retries along the projected gradient; failing that
    too, the start is frozen.

    Args:
        history: Number of (s, y) pairs kept per start.
        **kwargs: As :class:`BatchedOptimizer`.
    """

    name = "lbfgs"

    def __init__(self, x0: np.ndarray, lower: np.ndarray, upper: np.ndarray, history: int = 10, **kwargs) -> None:
        super().__init__(x0, lower, upper, **kwargs)
        k_count, p = self.x.shape
        self.history = int(history)
        self.s_mem = np.zeros((k_count, self.history, p))
        self.y_mem = np.zeros((k_count, self.history, p))
        self.mem_count = np.zeros(k_count, dtype=np.int64)
        self.direction = np.zeros((k_count, p))
        self.step = np.ones(k_count)
        self.trial = self.x.copy()

    def _points(self, idx: np.ndarray) -> np.ndarray:
        return np.where(self.started[idx, None], self.trial[idx], self.x[idx])

    def _free(self, k: int) -> np.ndarray:
        x, g = self.x[k], self.g[k]
        eps = 1e-10 * (1.0 + np.abs(x))
        held = ((x <= self.lower + eps) & (g > 0)) | ((x >= self.upper - eps) & (g < 0))
        return ~held

    def _direction(self, k: int) -> np.ndarray:
        free = self._free(k)
        q = np.where(free, self.g[k], 0.0)
        m = int(self.mem_count[k])
        s, y = self.s_mem[k, :m], self.y_mem[k, :m]
        if m == 0:
            p = -q
            scale = np.max(np.abs(p), initial=0.0)
            # the first step moves no parameter by more than one unit of its scale (a decade on log10)
            return p / scale if scale > 1.0 else p
        rho = 1.0 / np.einsum("ij,ij->i", s, y)
        a = np.zeros(m)
        for i in range(m - 1, -1, -1):
            a[i] = rho[i] * (s[i] @ q)
            q = q - a[i] * y[i]
        r = q * ((s[-1] @ y[-1]) / (y[-1] @ y[-1]))
        for i in range(m):
            b = rho[i] * (y[i] @ r)
            r = r + s[i] * (a[i] - b)
        p = np.where(free, -r, 0.0)
        if not p @ self.g[k] < 0:  # not a descent direction on the free variables
            self.mem_count[k] = 0
            return self._direction(k)
        return p

    def _begin(self, k: int) -> None:
        self.direction[k] = self._direction(k)
        self.step[k] = 1.0
        self.trial[k] = np.clip(self.x[k] + self.direction[k], self.lower, self.upper)
        if np.array_equal(self.trial[k], self.x[k]):
            self._finish(k, "converged: no feasible descent direction")

    def _update(self, k: int, value: float, grad: np.ndarray) -> None:
        x, trial = self.x[k], self.trial[k]
        d = trial - x
        finite = np.isfinite(value) and np.all(np.isfinite(grad))
        if finite and value <= self.f[k] + C1 * (self.g[k] @ d):
            s, y = d, grad - self.g[k]
            if s @ y > 1e-12 * np.linalg.norm(s) * np.linalg.norm(y):  # keep the Hessian positive definite
                m = int(self.mem_count[k])
                if m == self.history:
                    self.s_mem[k, :-1], self.y_mem[k, :-1] = self.s_mem[k, 1:].copy(), self.y_mem[k, 1:].copy()
                    m -= 1
                self.s_mem[k, m], self.y_mem[k, m] = s, y
                self.mem_count[k] = m + 1
            if self._accepted(k, trial.copy(), value, grad):
                self._begin(k)
            return
        self.step[k] *= SHRINK
        if self.step[k] * np.linalg.norm(self.direction[k]) < SMALLEST_STEP * (1.0 + np.linalg.norm(x)):
            if self.mem_count[k] > 0:  # the quasi-Newton model misleads: restart from the gradient
                self.mem_count[k] = 0
                self._begin(k)
                return
            self._finish(k, "converged: the line search cannot decrease the value")
            return
        self.trial[k] = np.clip(x + self.step[k] * self.direction[k], self.lower, self.upper)


class BatchedAdam(BatchedOptimizer):
    """Adam per start (its own moments and step count), projected into the bounds.

    A step whose value is not finite is undone and the start's learning rate halved.

    Args:
        lr: Learning rate on the parameters' scales.
        betas: Adam's moment decay rates.
        eps: Adam's denominator guard.
        **kwargs: As :class:`BatchedOptimizer`.
    """

    name = "adam"

    def __init__(self, x0: np.ndarray, lower: np.ndarray, upper: np.ndarray, lr: float = 0.05,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, **kwargs) -> None:
        super().__init__(x0, lower, upper, **kwargs)
        self.lr = np.full(self.x.shape[0], float(lr))
        self.betas, self.eps = (float(betas[0]), float(betas[1])), float(eps)
        self.m1 = np.zeros_like(self.x)
        self.m2 = np.zeros_like(self.x)
        self.trial = self.x.copy()

    def _points(self, idx: np.ndarray) -> np.ndarray:
        return np.where(self.started[idx, None], self.trial[idx], self.x[idx])

    def _move(self, k: int) -> None:
        b1, b2 = self.betas
        t = self.iterations[k] + 1
        self.m1[k] = b1 * self.m1[k] + (1 - b1) * self.g[k]
        self.m2[k] = b2 * self.m2[k] + (1 - b2) * self.g[k] ** 2
        step = self.lr[k] * (self.m1[k] / (1 - b1 ** t)) / (np.sqrt(self.m2[k] / (1 - b2 ** t)) + self.eps)
        self.trial[k] = np.clip(self.x[k] - step, self.lower, self.upper)

    def _begin(self, k: int) -> None:
        self._move(k)

    def _update(self, k: int, value: float, grad: np.ndarray) -> None:
        if not (np.isfinite(value) and np.all(np.isfinite(grad))):
            self.lr[k] *= 0.5
            if self.lr[k] < 1e-12:
                self._finish(k, "stopped: no finite value near the iterate")
                return
            self.trial[k] = np.clip(self.x[k] + 0.5 * (self.trial[k] - self.x[k]), self.lower, self.upper)
            return
        if self._accepted(k, self.trial[k].copy(), value, grad):
            self._move(k)




class BatchedFides(BatchedOptimizer):
    """fides' interior trust-region reflective method (Coleman–Li, a BFGS Hessian) per start, the
    starts run in lockstep so that every iteration's trial points are evaluated together.

    ``fides.Optimizer.minimize`` owns its loop and calls the objective once per iteration, so it
    cannot batch starts; this class drives one ``fides.Optimizer`` per start through the same
    steps as that loop (``get_affine_scaling``, ``fides.minimize.trust_region``,
    ``update_tr_radius``, ``check_convergence``, ``update``), with the evaluation taken out: the
    step, the trust-region update and the stop rules are fides' own (its defaults: ``fatol``
    1e-8, ``frtol`` 1e-8, ``gatol`` 1e-6), so a start takes the same path as ``stiffml
    petab-fit --method fides`` from the same point. A non-finite value shrinks the trust region,
    as in fides.

    Args:
        gtol: fides' absolute gradient-norm tolerance (``gatol``).
        ftol: fides' relative function tolerance (``frtol``).
        **kwargs: As :class:`BatchedOptimizer` (``patience`` is unused: fides' own rules stop a start).
    """

    name = "fides"

    # what a fides.Optimizer carries from one iteration to the next (checkpoints save these)
    _SCALARS = ("fval", "delta", "delta_iter", "tr_ratio", "iteration", "iterations_since_tr_update",
                "n_intermediate_tr_radius", "fval_min")
    _ARRAYS = ("x", "grad", "hess", "x_min", "grad_min")

    def __init__(self, x0: np.ndarray, lower: np.ndarray, upper: np.ndarray, **kwargs) -> None:
        super().__init__(x0, lower, upper, **kwargs)
        self._fides = [self._optimizer(k) for k in range(self.x.shape[0])]
        self.trial = self.x.copy()
        self._steps: list = [None] * self.x.shape[0]

    def _optimizer(self, k: int):
        import logging

        import fides

        opt = fides.Optimizer(lambda x: (np.inf, np.zeros_like(x)), lb=self.lower, ub=self.upper,
                              verbose=logging.ERROR, hessian_update=fides.BFGS(),
                              options={fides.Options.MAXITER: self.max_iterations, fides.Options.GATOL: self.gtol,
                                       fides.Options.FRTOL: self.ftol})
        opt._reset(f"start {k}")
        opt.x = self.x[k].copy()
        opt.make_non_degenerate()
        self.x[k] = opt.x
        return opt

    def _points(self, idx: np.ndarray) -> np.ndarray:
        return np.where(self.started[idx, None], self.trial[idx], self.x[idx])

    @staticmethod
    def _funout(x: np.ndarray, value: float, grad: np.ndarray):
        from fides.minimize import Funout

        if not (np.isfinite(value) and np.all(np.isfinite(grad))):
            value, grad = np.inf, np.zeros_like(x)
        return Funout(fval=float(value), grad=np.asarray(grad, dtype=np.float64), x=np.asarray(x, dtype=np.float64))

    def _begin(self, k: int) -> None:
        opt = self._fides[k]
        opt.fval, opt.grad = float(self.f[k]), self.g[k].copy()
        opt.hessian_update._init_mat(self.x.shape[1], None)
        opt.hess = opt.hessian_update.get_mat().copy()
        opt.track_minimum(self._funout(opt.x, opt.fval, opt.grad))
        self._propose(k)

    def _propose(self, k: int) -> None:
        """fides' loop up to the evaluation: the next trial point, or the start frozen."""
        from fides import Options
        from fides.minimize import trust_region
        from scipy.sparse import csc_matrix

        opt = self._fides[k]
        if not opt.check_continue():
            self._finish(k, f"converged: {opt.exitflag.name}" if opt.converged else f"stopped: {opt.exitflag.name}")
            return
        opt.iteration += 1
        opt.delta_iter = opt.delta
        try:
            v, dv = opt.get_affine_scaling()
            theta = max(opt.get_option(Options.THETA_MAX), 1 - np.linalg.norm(v * opt.grad, np.inf))
            step = trust_region(opt.x, opt.grad, opt.hess, csc_matrix(np.diag(np.sqrt(np.abs(v)))), opt.delta_iter,
                                dv, theta, opt.lb, opt.ub, subspace_dim=opt.get_option(Options.SUBSPACE_DIM),
                                stepback_strategy=opt.get_option(Options.STEPBACK_STRAT), logger=opt.logger)
        except (RuntimeError, ValueError, np.linalg.LinAlgError) as err:
            self._finish(k, f"stopped: fides could not take a step ({err})")
            return
        self._steps[k] = (step, dv)
        self.trial[k] = np.clip(opt.x + step.s + step.s0, self.lower, self.upper)

    def _update(self, k: int, value: float, grad: np.ndarray) -> None:
        opt = self._fides[k]
        step, dv = self._steps[k]
        old = self._funout(opt.x, opt.fval, opt.grad)
        new = self._funout(self.trial[k].copy(), value, grad)
        accepted = opt.update_tr_radius(new, step, dv)
        opt.check_convergence(step, new)
        opt.track_minimum(new)
        if accepted:
            try:
                opt.update(step, new, old)
            except RuntimeError as err:  # fides' own bound check
                self._finish(k, f"stopped: {err}")
                return
            self.x[k], self.f[k], self.g[k] = opt.x, opt.fval, opt.grad
            self.iterations[k] += 1
        if opt.fval_min < self.best_f[k]:
            self.best_x[k], self.best_f[k] = np.asarray(opt.x_min, dtype=np.float64).copy(), float(opt.fval_min)
        self._propose(k)

    # ------------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, object]:
        """Plain arrays only: each start's fides state (the pending step is recomputed on load)."""
        state = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in vars(self).items()
                 if k not in ("_fides", "_steps")}
        for name in self._SCALARS:
            state[f"fides_{name}"] = np.array([float(getattr(o, name)) for o in self._fides])
        for name in self._ARRAYS:
            state[f"fides_{name}"] = np.stack([np.asarray(getattr(o, name), dtype=np.float64) for o in self._fides])
        state["fides_converged"] = np.array([o.converged for o in self._fides])
        state["fides_exitflag"] = np.array([int(o.exitflag.value) for o in self._fides])
        state["fides_bfgs"] = np.stack([o.hessian_update.get_mat() if o.hessian_update._hess.size
                                        else np.eye(self.x.shape[1]) for o in self._fides])
        return state

    def load_state_dict(self, state: dict[str, object]) -> None:
        from fides import ExitFlag

        state = dict(state)
        fides_state = {k[len("fides_"):]: np.asarray(state.pop(k)) for k in list(state) if k.startswith("fides_")}
        super().load_state_dict(state)
        self._fides = [self._optimizer(k) for k in range(self.x.shape[0])]
        self._steps = [None] * self.x.shape[0]
        for k, opt in enumerate(self._fides):
            for name in self._SCALARS:
                value = float(fides_state[name][k])
                setattr(opt, name, int(value) if name.startswith(("iteration", "n_")) else value)
            for name in self._ARRAYS:
                setattr(opt, name, fides_state[name][k].copy())
            opt.converged = bool(fides_state["converged"][k])
            opt.exitflag = ExitFlag(int(fides_state["exitflag"][k]))
            opt.hessian_update._init_mat(self.x.shape[1], fides_state["bfgs"][k].copy())
            if self.started[k] and not self.finished[k]:  # recompute the pending trial point
                opt.iteration -= 1
                opt.delta = opt.delta_iter
                self._propose(k)


OPTIMIZERS = {"lbfgs": BatchedLBFGS, "adam": BatchedAdam, "fides": BatchedFides}
