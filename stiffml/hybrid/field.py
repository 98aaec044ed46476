"""A mechanistic right-hand side with networks inside it (a universal differential equation).

The SBML model's own math is generated once with each replaced quantity — a reaction's rate or a
constant parameter — as a slot ``_h<j>`` (:meth:`stiffml.sbml.math.ModelMath.hybrid_rhs`); at
every right-hand-side call each slot is filled by a small network of chosen model quantities
(species, parameters, assigned symbols), so the network is evaluated at every solver stage and
its gradients come through the stiff solver. Everything here is plain torch: no Lightning.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from stiffml.models.base import ACTIVATIONS

SPEC_KEYS = ("inputs", "hidden", "activation", "positive", "scale", "network", "arrays")


@dataclasses.dataclass(frozen=True)
class Replacement:
    """One model quantity replaced by a network.

    Attributes:
        target: A reaction id (its rate is replaced) or a constant global parameter's id.
        inputs: Model ids the network reads (species, compartments, parameters, assigned
            symbols, reactions), evaluated from the state at every call.
        hidden: Widths of the hidden layers.
        activation: ``tanh`` | ``softplus`` | ``gelu`` | ``silu``.
        positive: The output passes through softplus (a rate law that cannot be negative).
        scale: The output's unit: the network's O(1) output times this; ``None``: set from the
            data (a reaction: the typical rate of the states it changes; a parameter: its value).
        network: A PEtab SciML network YAML file to use instead of an MLP (``hidden`` and
            ``activation`` then do not apply); it reads the inputs as they are (no scaling) and
            its output is the term itself (times ``scale`` if given).
        arrays: A PEtab SciML HDF5 array file with the file network's parameters.
    """

    target: str
    inputs: tuple[str, ...]
    hidden: tuple[int, ...] = (16, 16)
    activation: str = "tanh"
    positive: bool = False
    scale: float | None = None
    network: str | None = None
    arrays: str | None = None


def parse_replace(spec: Mapping[str, Any] | None) -> list[Replacement]:
    """``{target: {inputs: [...], hidden: [...], activation, positive, scale}}`` → replacements.

    Raises:
        ValueError: One line naming the bad entry and what is allowed.
    """
    if not spec or not isinstance(spec, Mapping):
        raise ValueError(f"replace must map at least one reaction or parameter id to its network, e.g. "
                         f"{{R3: {{inputs: [S1, S2], hidden: [16, 16]}}}}; got {spec!r}")
    out = []
    for target, entry in spec.items():
        entry = {} if entry is None else entry
        if not isinstance(entry, Mapping):
            raise ValueError(f"replace[{target!r}] must be a mapping with keys {list(SPEC_KEYS)}, got {entry!r}")
        unknown = sorted(set(entry) - set(SPEC_KEYS))
        if unknown:
            raise ValueError(f"replace[{target!r}] has unknown key(s) {unknown}; valid: {list(SPEC_KEYS)}")
        inputs = entry.get("inputs")
        if not inputs or isinstance(inputs, str) or not all(isinstance(i, str) for i in inputs):
            raise ValueError(f"replace[{target!r}].inputs must be a non-empty list of model ids, got {inputs!r}")
        hidden = entry.get("hidden", [16, 16])
        if isinstance(hidden, int) or not all(isinstance(h, int) and h >= 1 for h in hidden):
            raise ValueError(f"replace[{target!r}].hidden must be a list of positive widths, got {hidden!r}")
        activation = entry.get("activation", "tanh")
        if activation not in ACTIVATIONS:
            raise ValueError(f"replace[{target!r}].activation {activation!r} is unknown; valid: {list(ACTIVATIONS)}")
        scale = entry.get("scale")
        if scale is not None and not (isinstance(scale, (int, float)) and scale > 0):
            raise ValueError(f"replace[{target!r}].scale must be a positive number, got {scale!r}")
        network, arrays = entry.get("network"), entry.get("arrays")
        if arrays is not None and network is None:
            raise ValueError(f"replace[{target!r}].arrays holds a file network's parameters: give its network file too")
        out.append(Replacement(str(target), tuple(inputs), tuple(hidden), activation,
                               bool(entry.get("positive", False)), None if scale is None else float(scale),
                               None if network is None else str(network), None if arrays is None else str(arrays)))
    return out


class StartsMLP(nn.Module):
    """``starts`` independent MLPs with the same layout, evaluated together: the weights of layer
    ``l`` are one ``(starts, in, out)`` tensor, so the starts of a multistart fit run in one batched
    matrix product per layer (``torch.baddbmm``) rather than one small network after another.

    Hand-written: ``torch.func.stack_module_state`` + ``vmap`` of ``functional_call`` does the
    same, but costs more per call inside the stiff solver's Jacobian (itself ``jacrev``): 1,282 µs
    against 568 µs for a forward pass, its Jacobian and a backward pass of four 2-16-16-1 tanh
    networks on 12 states (one thread, measured while training runs used the other cores).

    Args:
        starts: Number of independent networks.
        widths: Layer widths, inputs first, the output last.
        activation: Activation name (:data:`stiffml.models.base.ACTIVATIONS`).
        last_bias: The last layer's initial bias (its weights start at zero).
    """

    def __init__(self, starts: int, widths: Sequence[int], activation: str, last_bias: float) -> None:
        super().__init__()
        self.starts = starts
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        pairs = list(zip(widths[:-1], widths[1:]))
        for i, (a, b) in enumerate(pairs):
            w, bias = torch.empty(starts, a, b), torch.empty(starts, 1, b)
            if i == len(pairs) - 1:
                nn.init.zeros_(w)
                nn.init.constant_(bias, last_bias)
            else:  # nn.Linear's own initialisation, each start drawn on its own
                bound = 1.0 / a ** 0.5
                nn.init.uniform_(w, -bound, bound)
                nn.init.uniform_(bias, -bound, bound)
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(bias))
        self.act = ACTIVATIONS[activation]()

    def forward(self, x: Tensor, start: Tensor | int | None = None, among: Tensor | None = None) -> Tensor:
        """``x`` of shape ``(S·B, in)`` (start-major: the ``k``-th start owns rows ``k·B … k·B + B − 1``)
        through the networks of the starts ``among`` (all ``S`` starts if ``None``), or ``(..., in)``
        through start ``start`` alone."""
        last = len(self.weights) - 1
        if start is None:
            picked = self.starts if among is None else len(among)
            h = x.reshape(picked, -1, x.shape[-1])
            for i, (w, b) in enumerate(zip(self.weights, self.biases)):
                if among is not None:
                    w, b = w[among], b[among]
                h = torch.baddbmm(b.to(h.dtype), h, w.to(h.dtype))
                h = h if i == last else self.act(h)
            return h.reshape(*x.shape[:-1], -1)
        h = x
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ w[start].to(h.dtype) + b[start, 0].to(h.dtype)
            h = h if i == last else self.act(h)
        return h


class TermNetwork(nn.Module):
    """An MLP from scaled inputs to one term: ``scale · g(NN(x / in_scale))`` with ``g`` identity
    or softplus. The last layer starts at zero (softplus: far below one), so a hybrid model starts
    as the mechanism without the unknown term, which keeps the first solves stable. With
    ``starts`` > 1 it holds that many independent networks (:class:`StartsMLP`)."""

    def __init__(self, replacement: Replacement, starts: int = 1) -> None:
        super().__init__()
        r = replacement
        self.register_buffer("in_scale", torch.ones(len(r.inputs)))
        self.register_buffer("out_scale", torch.ones(()))
        self.register_buffer("scales_set", torch.zeros((), dtype=torch.bool))
        self.positive = r.positive
        self.starts = starts
        if r.network is not None:
            if starts > 1:
                raise ValueError(f"replace[{r.target!r}] reads its network from a file (one set of weights); "
                                 f"model.starts={starts} needs networks given by hidden widths")
            self.net = self._file_network(r)
            return
        if starts > 1:
            self.net = StartsMLP(starts, [len(r.inputs), *r.hidden, 1], r.activation, -6.0 if r.positive else 0.0)
            return
        layers: list[nn.Module] = []
        width = len(r.inputs)
        for h in r.hidden:
            layers += [nn.Linear(width, h), ACTIVATIONS[r.activation]()]
            width = h
        last = nn.Linear(width, 1)
        nn.init.zeros_(last.weight)
        nn.init.constant_(last.bias, -6.0 if r.positive else 0.0)
        layers.append(last)
        self.net = nn.Sequential(*layers)

    def _file_network(self, r: Replacement) -> nn.Module:
        from stiffml.hybrid.network_file import NetworkFileError, load_parameters, read_arrays, read_network

        net = read_network(r.network)
        if len(net.input_ids) != 1 or net.n_outputs != 1:
            raise NetworkFileError(f"network file {r.network}: a replaced quantity takes a network of one input "
                                   f"array and one output, this one has inputs {net.input_ids} and {net.n_outputs} outputs")
        if r.arrays is not None:
            arrays = read_arrays(r.arrays)["parameters"]
            if net.net_id not in arrays:
                raise NetworkFileError(f"array file {r.arrays} has no parameters for network {net.net_id!r}; "
                                       f"it has {sorted(arrays)}")
            load_parameters(net, arrays[net.net_id], r.arrays)
        probe = net.module(torch.zeros(1, len(r.inputs)))
        if probe.numel() != 1:
            raise NetworkFileError(f"network {net.net_id!r} ({r.network}) gives {probe.numel()} outputs per sample "
                                   f"for {len(r.inputs)} inputs; the quantity {r.target!r} it replaces takes 1")
        self.out_scale.fill_(r.scale if r.scale is not None else 1.0)
        self.scales_set.fill_(True)  # a file network reads and gives physical units
        return net.module

    def forward(self, x: Tensor, start: Tensor | int | None = None, among: Tensor | None = None) -> Tensor:
        """The term at inputs ``x`` (``(..., n_inputs)``); with several starts, ``start`` picks one
        (``None``: the starts ``among``, or all, ``x`` start-major, see :class:`StartsMLP`)."""
        z = x / self.in_scale
        out = (self.net(z, start, among) if self.starts > 1 else self.net(z)).reshape(x.shape[:-1])
        return self.out_scale * (nn.functional.softplus(out) if self.positive else out)


class HybridField(nn.Module):
    """``dy/dt = f_mechanism(t, y; h)`` with ``h_j = network_j(inputs_j(t, y))``, batched.

    Built from the replacements alone (so a checkpoint loads before any model file is read);
    :meth:`bind` attaches an SBML system's generated math, :meth:`set_scales` the networks'
    input and output units from reference states.

    With ``starts`` > 1 every network exists that many times (a multistart fit): inside
    :meth:`every_start` a batch of ``S·B`` states is start-major, one block per start of the
    given ones (``S`` of them), each seeing its own networks; otherwise the field is start
    :attr:`best_start`'s. :attr:`alive` marks the starts still trained (one whose solve failed is
    dropped, so it cannot stop the others).

    Args:
        replacements: What each network replaces and reads.
        starts: Independent initialisations of the networks, trained together.
    """

    def __init__(self, replacements: Sequence[Replacement], starts: int = 1) -> None:
        super().__init__()
        if not (isinstance(starts, int) and starts >= 1):
            raise ValueError(f"model.starts must be a positive number of network initialisations, got {starts!r}")
        self.replacements = list(replacements)
        targets = [r.target for r in self.replacements]
        if len(set(targets)) != len(targets):
            raise ValueError(f"each quantity can be replaced once, got targets {targets}")
        self.starts = starts
        self.networks = nn.ModuleList([TermNetwork(r, starts) for r in self.replacements])
        self.register_buffer("best_start", torch.zeros((), dtype=torch.long))
        self.register_buffer("alive", torch.ones(starts, dtype=torch.bool))
        self._every_start: Tensor | None = None
        self.input_ids: list[str] = list(dict.fromkeys(i for r in self.replacements for i in r.inputs))
        self._columns = [[self.input_ids.index(i) for i in r.inputs] for r in self.replacements]
        self._constants: dict[tuple, list[Tensor]] = {}
        self._constant_values: list[float] = []
        self._rhs: Any = None
        self._inputs: Any = None
        self.state_ids: list[str] = []

    @property
    def targets(self) -> list[str]:
        return [r.target for r in self.replacements]

    def bind(self, system: Any) -> None:
        """Generate the hybrid right-hand side of an :class:`~stiffml.sbml.SBMLSystem` (one-line
        :class:`~stiffml.sbml.SBMLError` for a bad target or input)."""
        self._rhs, self._inputs = system.math.generate_hybrid(self.targets, self.input_ids)
        self.state_ids = list(system.state_names)
        self.constant_ids = list(system.math.constant_ids)
        self._constant_values = [float(c) for c in system.constants]
        self._constants = {}

    def _c(self, like: Tensor) -> list[Tensor]:
        """The model's constants as 0-d tensors of ``like``'s dtype and device (cached)."""
        key = (like.dtype, like.device)
        if key not in self._constants:
            self._constants[key] = list(torch.tensor(self._constant_values, dtype=like.dtype,
                                                     device=like.device).unbind(0))
        return self._constants[key]

    def input_values(self, t: Tensor, y: Tensor) -> Tensor:
        """The networks' inputs at states ``y`` (``(..., n)``), shape ``(..., n_inputs)``."""
        shape = y.shape[:-1]
        vals = self._inputs(t, list(y.unbind(-1)), self._c(y))
        return torch.stack([torch.as_tensor(v, dtype=y.dtype, device=y.device).expand(shape) for v in vals], -1)

    @contextlib.contextmanager
    def every_start(self, among: Tensor) -> Iterator[None]:
        """Context in which batches are start-major, one block per start in ``among`` (indices),
        each evaluated with its own networks."""
        self._every_start = among
        try:
            yield
        finally:
            self._every_start = None

    def terms(self, t: Tensor, y: Tensor) -> list[Tensor]:
        """Each network's value at states ``y``, shape ``(...)`` each."""
        x = self.input_values(t, y)
        if self.starts > 1 and self._every_start is not None:
            return [net(x[..., cols], None, self._every_start) for net, cols in zip(self.networks, self._columns)]
        start = None if self.starts == 1 else self.best_start
        return [net(x[..., cols], start) for net, cols in zip(self.networks, self._columns)]

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        """dy/dt in physical units at states ``y`` of shape ``(..., n)``."""
        if self._rhs is None:
            raise RuntimeError("HybridField.bind(system) must be called before the field is evaluated")
        shape = y.shape[:-1]
        values = self._rhs(t, list(y.unbind(-1)), self._c(y), self.terms(t, y))
        return torch.stack([torch.as_tensor(v, dtype=y.dtype, device=y.device).expand(shape) for v in values], -1)

    @torch.no_grad()
    def set_scales(self, times: Tensor, states: Tensor, rate_scales: Mapping[str, float]) -> None:
        """Input units from the inputs' largest magnitude over reference ``states`` (``(..., n)``,
        at ``times`` of shape ``(...)``) and output units from ``Replacement.scale``, else ``rate_scales[target]``; once per model
        (a resumed or loaded model keeps its own)."""
        x = self.input_values(times, states).reshape(-1, len(self.input_ids))
        top = x.abs().amax(0)
        top = torch.where(torch.isfinite(top) & (top > 0), top, torch.ones_like(top))
        for r, net, cols in zip(self.replacements, self.networks, self._columns):
            if bool(net.scales_set):
                continue
            net.in_scale.copy_(top[cols])
            net.out_scale.fill_(r.scale if r.scale is not None else rate_scales.get(r.target, 1.0))
            net.scales_set.fill_(True)
