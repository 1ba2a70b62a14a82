"""The model registry: the networks a preset's ``[model]`` table can name, and a user's own module.

    [model]
    name = "conv4"                      # a registered network: "mlp" (default), "conv4"
    channels = 64

    [model]
    module = "mypackage.nets:MyNet"     # or any torch.nn.Module, by import path
    kwargs = { width = 32 }             # passed to its constructor
    head = "classifier"                 # optional: the submodule ANIL adapts (default: the last layer)

A user's module is imported only when a run (or a bundle of it) is built, never when a preset is read.
It must map a task's inputs (N, *in_shape) to outputs (N, out_dim) of the family.
Every problem is a :class:`ConfigError` of one line naming the ``[model]`` key and the value.
"""
from __future__ import annotations

import dataclasses

import importlib
from typing import ClassVar

import torch
from torch import nn

from workbench.core.errors import ConfigError
from workbench.core.registry import MODELS

from .mlp import MLPSpec
from .modules import Conv4, MLP
from .network import FastMLP, FunctionalNetwork, HeadError, Network


class ModelEntry:
    """A registered network: ``build(cfg, in_shape, out_dim, loss)`` gives a :class:`Network`."""
    name: ClassVar[str]
    title: ClassVar[str]
    keys: ClassVar[tuple[str, ...]]  # the [model] keys it reads (besides name and head)

    @classmethod
    def build(cls, cfg, in_shape: tuple[int, ...], out_dim: int, loss: str, where: str) -> Network:
        raise NotImplementedError


@MODELS.register
class MLPEntry(ModelEntry):
    name = "mlp"
    title = "MLP (fully connected)"
    keys = ("hidden", "activation")

    @classmethod
    def build(cls, cfg, in_shape, out_dim, loss, where):
        if len(in_shape) != 1:
            raise ConfigError(f"{where} name = 'mlp': the family's inputs are {tuple(in_shape)} arrays; an MLP "
                              f"takes vectors (use name = \"conv4\" for images)")
        spec = MLPSpec(in_shape[0], out_dim, tuple(cfg.hidden), cfg.activation)
        if not cfg.head:  # the fused kernel: the head is the last layer
            return FastMLP(spec)
        return _functional(lambda: MLP(spec.in_dim, spec.out_dim, spec.hidden, spec.activation), in_shape, out_dim,
                           cfg.head, where)


@MODELS.register
class Conv4Entry(ModelEntry):
    name = "conv4"
    title = "Conv-4 (4 × [conv 3×3, batch norm, ReLU, max-pool or stride 2], linear head)"
    keys = ("channels", "downsample")

    @classmethod
    def build(cls, cfg, in_shape, out_dim, loss, where):
        if len(in_shape) != 3:
            raise ConfigError(f"{where} name = 'conv4': needs image inputs (channels, height, width); the family's "
                              f"inputs are {tuple(in_shape)}")
        if min(in_shape[1:]) < 16:
            raise ConfigError(f"{where} name = 'conv4': needs images of at least 16×16 pixels, the family's are "
                              f"{in_shape[1]}×{in_shape[2]}")
        if out_dim is None:  # an embedding: the flattened feature map, no head
            out_dim = Conv4(in_shape, 0, cfg.channels, cfg.downsample).feature_dim
            return _functional(lambda: Conv4(in_shape, 0, cfg.channels, cfg.downsample), in_shape, out_dim, "", where)
        return _functional(lambda: Conv4(in_shape, out_dim, cfg.channels, cfg.downsample), in_shape, out_dim,
                           cfg.head, where)


def import_module_class(path: str, where: str) -> type:
    """The ``nn.Module`` subclass that ``"package.module:Class"`` names (imported now)."""
    mod_name, sep, attr = path.partition(":")
    if not sep or not mod_name or not attr:
        raise ConfigError(f"{where} module = {path!r}: expected \"package.module:ClassName\"")
    try:
        mod = importlib.import_module(mod_name)
    except Exception as e:  # noqa: BLE001 - the user's code: any error is theirs to read, in one line
        raise ConfigError(f"{where} module = {path!r}: cannot import {mod_name!r} "
                          f"({type(e).__name__}: {e})".replace("\n", " ")) from None
    obj = mod
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"{where} module = {path!r}: {mod_name!r} has no attribute {part!r}")
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and issubclass(obj, nn.Module)):
        raise ConfigError(f"{where} module = {path!r}: is not a torch.nn.Module subclass ({type(obj).__name__})")
    return obj


def _functional(factory, in_shape, out_dim, head, where, built_from: str = "") -> FunctionalNetwork:
    """A :class:`FunctionalNetwork` of ``factory``; a bad ``head``, or an error building the module, is a
    one-line ConfigError (``built_from``: how the error names what the module was built from)."""
    try:
        return FunctionalNetwork(factory, in_shape, out_dim, head)
    except HeadError as e:
        raise ConfigError(f"{where} head = {head!r}: {e}") from None
    except Exception as e:  # noqa: BLE001 - a user's constructor: any error is theirs to read, in one line
        raise ConfigError(f"{where}{built_from}: {type(e).__name__}: {e}".replace("\n", " ")) from None


def build_network(cfg, in_shape: tuple[int, ...], out_dim: int | None, loss: str = "mse",
                  where: str = "[model]") -> Network:
    """The :class:`Network` that model config ``cfg`` (a ``ModelConfig``) describes, for a family whose
    inputs are (N, *in_shape) and outputs (N, out_dim).  ``out_dim = None`` asks for an embedding network
    (metric-based learners such as Prototypical Networks): conv4 without its head, the MLP's last hidden
    width as its output, a user's module as it is.  Its output shape is checked on dummy points.
    Raises ConfigError (one line: ``where``, the key, the value, the problem)."""
    in_shape = tuple(int(s) for s in in_shape)
    if cfg.module:
        cls = import_module_class(cfg.module, where)
        kwargs = dict(cfg.kwargs)
        if out_dim is None:
            out_dim = _output_width(lambda: cls(**kwargs), in_shape, where, cfg.module)
        net = _functional(lambda: cls(**kwargs), in_shape, out_dim, cfg.head, where,
                          f" kwargs = {kwargs!r}: {cfg.module} cannot be built with them")
        if not net.names:
            raise ConfigError(f"{where} module = {cfg.module!r}: the module has no parameters to meta-learn")
        what = f"module = {cfg.module!r}"
    else:
        entry = MODELS.get(cfg.name, where=f"{where} name")
        if out_dim is None and cfg.name == "mlp":  # its last hidden layer, linear, is the embedding
            if not cfg.hidden:
                raise ConfigError(f"{where} hidden = []: an embedding MLP needs a hidden layer (its width is the "
                                  f"embedding's)")
            out_dim = int(cfg.hidden[-1])
            cfg = dataclasses.replace(cfg, hidden=list(cfg.hidden[:-1]))
        net = entry.build(cfg, in_shape, out_dim, loss, where)
        what = f"name = {cfg.name!r}"
    check_output(net, where, what)
    return net


def _output_width(factory, in_shape, where: str, module: str) -> int:
    """The width of what a user's module gives for one input of ``in_shape`` (its embedding's)."""
    try:
        with torch.no_grad():
            out = factory().eval()(torch.zeros(2, *in_shape))
    except Exception as e:  # noqa: BLE001 - the user's module
        raise ConfigError(f"{where} module = {module!r}: the network fails on the family's inputs (2 points of "
                          f"shape {tuple(in_shape)}): {type(e).__name__}: {e}".replace("\n", " ")) from None
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        raise ConfigError(f"{where} module = {module!r}: an embedding network must give a (N, D) tensor for N "
                          f"points, it gives {tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}")
    return int(out.shape[1])


def check_output(net: Network, where: str, what: str) -> None:
    """Run the network on two dummy points of one task: its output must be (2, out_dim) per task."""
    params = net.init(torch.Generator().manual_seed(0))
    x = torch.zeros(1, 2, *net.in_shape)
    try:
        with torch.no_grad():
            out = net.forward(params, x)
            if not net.task_chunk:  # tasks as a batch dimension (torch.func.vmap), as training runs it
                net.forward([p.expand(2, *p.shape) for p in params], x.expand(2, *x.shape[1:]))
    except Exception as e:  # noqa: BLE001 - the user's forward
        raise ConfigError(f"{where} {what}: the network fails on the family's inputs (tasks of 2 points of "
                          f"shape {tuple(net.in_shape)}, batched with torch.func.vmap): {type(e).__name__}: "
                          f"{e}".replace("\n", " ")) from None
    if tuple(out.shape) != (1, 2, net.out_dim):
        got = tuple(out.shape[2:]) if out.dim() >= 2 else tuple(out.shape)
        raise ConfigError(f"{where} {what}: the network gives outputs of shape {got} per point; the family "
                          f"needs {net.out_dim} output(s) per point")
