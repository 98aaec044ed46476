"""Networks in the PEtab SciML model YAML format, and PEtab SciML HDF5 array files.

A network file names its layers (``layer_id``, ``layer_type`` — a ``torch.nn`` module — and its
constructor ``args``) and a ``forward`` graph in torch.fx's node form (``placeholder``,
``call_module``, ``call_function``, ``call_method``, ``output``). We build the graph with
``torch.fx`` itself, so every layer ``torch.nn`` has and every function of ``torch`` /
``torch.nn.functional`` (and Python's arithmetic operators) is available, and
:func:`write_network` exports any traceable module back to the format.

Written here rather than imported: the format's reference library (``petab_sciml``) needs
Python >= 3.12 and stiffml stays on 3.11 (the CPU torch build of our CI is for 3.11).
"""

from __future__ import annotations

import dataclasses
import inspect
import operator
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import fx, nn

NODE_OPS = ("placeholder", "call_module", "call_function", "call_method", "get_attr", "output")
# constructor arguments a module does not keep under their own name, or that are not the format's
_SKIP_ARGS = {"device", "dtype", "self"}


class NetworkFileError(ValueError):
    """A network or array file that cannot be read, with one line naming what and where."""


@dataclasses.dataclass
class NetworkFile:
    """A network read from the PEtab SciML YAML format.

    Attributes:
        net_id: The file's ``nn_model_id``.
        module: The network (a ``torch.fx.GraphModule`` whose submodules are the layers).
        input_ids: The forward function's input arguments, in order.
        n_outputs: The number of the forward function's outputs (1 unless it returns a tuple).
    """

    net_id: str
    module: fx.GraphModule
    input_ids: list[str]
    n_outputs: int


def _function(name: str, where: str) -> Any:
    for space in (torch.nn.functional, torch, operator):
        fn = getattr(space, name, None)
        if callable(fn):
            return fn
    raise NetworkFileError(f"{where}: unknown function {name!r} (not in torch.nn.functional, torch or operator)")


def read_network(source: str | Path | Mapping[str, Any]) -> NetworkFile:
    """Build the network of a PEtab SciML network YAML file (or its parsed content).

    Raises:
        NetworkFileError: One line naming the file and the unknown layer, function, method or
            node, or the layer whose arguments torch refuses.
    """
    if isinstance(source, Mapping):
        spec, label = source, "network"
    else:
        path = Path(source)
        if not path.is_file():
            raise NetworkFileError(f"network file {str(path)!r} does not exist")
        try:
            spec = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise NetworkFileError(f"network file {path}: not valid YAML ({str(err).splitlines()[0]})") from None
        label = str(path)
    if not isinstance(spec, Mapping) or not {"layers", "forward"} <= set(spec):
        raise NetworkFileError(f"{label}: a network file needs 'layers' and 'forward' (PEtab SciML network YAML)")
    net_id = str(spec.get("nn_model_id") or spec.get("nn_model") or "net")
    root = nn.Module()
    for entry in spec.get("layers") or []:
        layer_id, kind = entry.get("layer_id"), entry.get("layer_type")
        cls = getattr(nn, str(kind), None)
        if not (inspect.isclass(cls) and issubclass(cls, nn.Module)):
            raise NetworkFileError(f"{label}: layer {layer_id!r} has unknown layer_type {kind!r} (not a torch.nn module)")
        try:
            layer = cls(**(entry.get("args") or {}))
        except (TypeError, ValueError, RuntimeError) as err:
            raise NetworkFileError(f"{label}: layer {layer_id!r} ({kind}): {str(err).splitlines()[0]}") from None
        root.add_module(str(layer_id), layer)

    graph = fx.Graph()
    nodes: dict[str, fx.Node] = {}
    inputs: list[str] = []
    n_outputs = 1

    def resolve(value: Any) -> Any:
        if isinstance(value, str) and value in nodes:
            return nodes[value]
        if isinstance(value, list):
            return [resolve(v) for v in value]
        if isinstance(value, Mapping):
            return {k: resolve(v) for k, v in value.items()}
        return value

    for node in spec.get("forward") or []:
        name, op, target = str(node.get("name")), node.get("op"), node.get("target")
        where = f"{label}: forward node {name!r}"
        args = tuple(resolve(a) for a in node.get("args") or [])
        kwargs = resolve(dict(node.get("kwargs") or {}))
        if op == "placeholder":
            created = graph.placeholder(str(target or name))
            inputs.append(str(target or name))
        elif op == "call_module":
            if not hasattr(root, str(target)):
                raise NetworkFileError(f"{where} calls layer {target!r}, which 'layers' does not define")
            created = graph.call_module(str(target), args, kwargs)
        elif op == "call_function":
            created = graph.call_function(_function(str(target), where), args, kwargs)
        elif op == "call_method":
            if not callable(getattr(torch.Tensor, str(target), None)):
                raise NetworkFileError(f"{where}: unknown tensor method {target!r}")
            created = graph.call_method(str(target), args, kwargs)
        elif op == "get_attr":
            created = graph.get_attr(str(target))
        elif op == "output":
            out = args[0] if len(args) == 1 else args
            n_outputs = len(out) if isinstance(out, (list, tuple)) else 1
            graph.output(tuple(out) if isinstance(out, list) else out)  # YAML has lists; forward returns tuples
            break
        else:
            raise NetworkFileError(f"{where}: unknown op {op!r}; valid: {list(NODE_OPS)}")
        nodes[name] = created
    else:
        raise NetworkFileError(f"{label}: the forward graph has no 'output' node")
    if not inputs:
        raise NetworkFileError(f"{label}: the forward graph has no input (placeholder) node")
    return NetworkFile(net_id, fx.GraphModule(root, graph), inputs, n_outputs)


def _layer_args(layer: nn.Module) -> dict[str, Any]:
    """The constructor arguments of a torch.nn layer, recovered from its attributes."""
    out: dict[str, Any] = {}
    for name, param in inspect.signature(type(layer).__init__).parameters.items():
        if name in _SKIP_ARGS or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or not hasattr(layer, name):
            continue
        value = getattr(layer, name)
        if name in ("bias", "elementwise_affine") and (value is None or isinstance(value, (torch.Tensor, bool))):
            value = value is not None and value is not False
        if isinstance(value, tuple):
            value = list(value)
        if isinstance(value, (bool, int, float, str, list)) or value is None:
            out[name] = value
    return out


def write_network(module: nn.Module, net_id: str, path: str | Path | None = None) -> dict[str, Any]:
    """Export a traceable module to the PEtab SciML network YAML format (and to ``path``).

    Returns:
        The file's content as a dict.
    """
    traced = fx.symbolic_trace(module)
    layers, forward = [], []
    used: list[str] = []
    for node in traced.graph.nodes:
        if node.op == "call_module" and node.target not in used:
            used.append(str(node.target))

    def plain(value: Any) -> Any:
        if isinstance(value, fx.Node):
            return value.name
        if isinstance(value, slice) or value is Ellipsis:
            raise NetworkFileError(f"network {net_id!r}: the format has no slices or '...' in its graph; "
                                   "index with torch.split, torch.narrow or a tensor method instead")
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    for target in used:
        layer = traced.get_submodule(target)
        layers.append({"layer_id": target, "layer_type": type(layer).__name__, "args": _layer_args(layer)})
    for node in traced.graph.nodes:
        target = node.target if isinstance(node.target, str) else node.target.__name__
        forward.append({"name": node.name, "op": node.op, "target": target,
                        "args": plain(list(node.args)), "kwargs": plain(dict(node.kwargs))})
    inputs = [{"input_id": n.target} for n in traced.graph.nodes if n.op == "placeholder"]
    spec = {"nn_model_id": net_id, "inputs": inputs, "layers": layers, "forward": forward}
    if path is not None:
        Path(path).write_text(yaml.safe_dump(spec, sort_keys=False))
    return spec


# ------------------------------------------------------------------------------ arrays
def read_arrays(path: str | Path) -> dict[str, Any]:
    """An array data file: ``{"parameters": {net: {layer: {name: array}}}, "inputs": {input id:
    {condition ids: array}}}`` with every array in PyTorch's layout (files written with
    ``metadata/pytorch_format`` false, as column-major tools write them, have their axes reversed).
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise NetworkFileError(f"array file {str(path)!r} does not exist")
    out: dict[str, Any] = {"parameters": {}, "inputs": {}}
    with h5py.File(path, "r") as f:
        pytorch = True
        if "metadata/pytorch_format" in f:
            pytorch = bool(np.asarray(f["metadata/pytorch_format"]))
        elif "metadata/perm" in f:  # the PEtab SciML test suite's files: "row" (PyTorch's) or "column"
            perm = np.asarray(f["metadata/perm"]).item()
            pytorch = (perm.decode() if isinstance(perm, bytes) else str(perm)).lower() == "row"

        def load(ds: Any) -> np.ndarray:
            arr = np.asarray(ds, dtype=np.float64)
            return arr if pytorch else arr.transpose(tuple(reversed(range(arr.ndim))))

        for net_id, net in (f.get("parameters") or {}).items():
            out["parameters"][net_id] = {layer_id: {name: load(ds) for name, ds in layer.items()}
                                         for layer_id, layer in net.items()}
        for input_id, group in (f.get("inputs") or {}).items():
            out["inputs"][input_id] = {key: load(ds) for key, ds in group.items()}
    return out


def load_parameters(net: NetworkFile, arrays: Mapping[str, Mapping[str, np.ndarray]], label: str = "array file") -> None:
    """Copy ``{layer: {name: array}}`` into the network's layers.

    Raises:
        NetworkFileError: An unknown layer or parameter, or an array whose shape differs from the
            layer's (named, with both shapes).
    """
    for layer_id, params in arrays.items():
        if not hasattr(net.module, layer_id):
            raise NetworkFileError(f"{label}: network {net.net_id!r} has no layer {layer_id!r}")
        layer = net.module.get_submodule(layer_id)
        own = dict(layer.named_parameters(recurse=False)) | dict(layer.named_buffers(recurse=False))
        for name, value in params.items():
            if name not in own or own[name] is None:
                raise NetworkFileError(f"{label}: layer {layer_id!r} of network {net.net_id!r} has no parameter "
                                       f"{name!r}; it has {sorted(k for k, v in own.items() if v is not None)}")
            if tuple(value.shape) != tuple(own[name].shape):
                raise NetworkFileError(f"{label}: {net.net_id}.{layer_id}.{name} has shape {tuple(value.shape)} in the "
                                       f"file but {tuple(own[name].shape)} in the layer")
            with torch.no_grad():
                own[name].copy_(torch.as_tensor(value, dtype=own[name].dtype))


def write_arrays(path: str | Path, networks: Mapping[str, nn.Module],
                 inputs: Mapping[str, Mapping[str, np.ndarray]] | None = None) -> None:
    """Write networks' parameters (``{net id: module}``) and inputs in PyTorch's layout."""
    import h5py

    with h5py.File(path, "w") as f:
        f["metadata/pytorch_format"] = True
        for net_id, module in networks.items():
            for full, value in module.state_dict().items():
                layer_id, _, name = full.rpartition(".")
                f[f"parameters/{net_id}/{layer_id}/{name}"] = value.detach().cpu().numpy()
        for input_id, datasets in (inputs or {}).items():
            for key, value in datasets.items():
                f[f"inputs/{input_id}/{key}"] = np.asarray(value)
