"""A network as the engine sees it: an ordered list of meta-parameters and two task-batched functions.

Parameters are a list of tensors in :attr:`Network.names` order, the head's parameters last (so "adapt
the head" is "adapt ``params[head_start:]``").  Each is either shared by all tasks (its own shape) or
task-batched (a leading task dimension B).  Inputs are task-batched: ``x`` is (B, N, *in_shape); outputs
are (B, N, out_dim).

Two implementations behind the same interface:

* :class:`FastMLP` — the hand-fused MLP kernel of :mod:`workbench.models.mlp` (batched matrix products,
  the backward written as differentiable ops, and the whole second-order MAML meta-gradient written out
  with the R-operator, :meth:`Network.meta_gradient`).  Chosen automatically for the built-in ``mlp``.
* :class:`FunctionalNetwork` — any ``torch.nn.Module``: ``torch.func.functional_call`` over the parameter
  list, ``torch.func.vmap`` over the task dimension, ``torch.autograd.grad`` for the inner gradient.
  Convolutional modules run task by task instead (``task_chunk = 1``): measured on this project's CPU
  (conv4, 5-way 1-shot, meta-batch 32, one thread), vmap's grouped convolutions took 6.0 s per MAML
  meta-iteration against 4.6 s task by task, and chunks of 4 or 32 tasks were slower still.

Both give the same per-task gradients (tests/test_model_agnostic.py checks the meta-gradients agree).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.func import functional_call, vmap

from workbench.core import losses
from workbench.models import mlp
from workbench.models.mlp import MLPSpec


class HeadError(ValueError):
    """A ``head`` that names no submodule with parameters (the message says what it names instead)."""


class Network:
    """The contract: what algorithms, the evaluation and the bundle need of a network."""

    names: list[str]  # parameter names, the head's last
    shapes: list[tuple[int, ...]]  # each parameter's (unbatched) shape
    head_start: int  # params[head_start:] are the head (what ANIL adapts)
    in_shape: tuple[int, ...]
    out_dim: int
    task_chunk: int | None = None  # tasks per chunk of a meta-step / an evaluation (None: all at once)

    def init(self, generator: torch.Generator, device="cpu") -> list[torch.Tensor]:
        """Fresh initial parameters, reproducible from ``generator``."""
        raise NotImplementedError

    def forward(self, params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """(B, N, *in_shape) -> (B, N, out_dim) with shared or task-batched ``params``."""
        raise NotImplementedError

    def loss_grads(self, params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor, loss: str, first: int,
                   create_graph: bool) -> list[torch.Tensor]:
        """Per-task gradients of the per-task ``loss`` w.r.t. ``params[first:]``: task-batched (B, ...).

        With ``create_graph`` they stay differentiable w.r.t. ``params`` (second-order MAML); otherwise they
        are constants.  Works inside ``torch.no_grad()`` too (evaluation)."""
        raise NotImplementedError

    def meta_gradient(self, params: list[torch.Tensor], rule, steps: int, first_order: bool, batch):
        """A hand-written MAML meta-gradient, when this network has one: ``(loss, grads of params, grads of
        tensor learning rates or None)`` for the mean query loss after ``steps`` inner steps of ``rule``;
        None when it has none (the learner then differentiates :meth:`loss_grads` with autograd)."""
        return None

    def is_batched(self, params: list[torch.Tensor]) -> list[bool]:
        return [p.dim() > len(s) for p, s in zip(params, self.shapes)]

    def split_head(self) -> tuple[Callable, "Network"] | None:
        """``(features, head)`` when the head is one linear layer: ``features(params, x)`` gives its input
        (B, N, D) from the body's parameters (``params[:head_start]``), and ``head`` is that layer as a
        network on D inputs, taking ``params[head_start:]``.  Adapting only the head (ANIL, the pretrained
        baseline) then runs the body once per task, not once per inner step.  None: no such split."""
        return None

    def chunks(self, n: int) -> list[slice]:
        """The task slices a batch of ``n`` tasks is processed in (one slice unless :attr:`task_chunk`)."""
        step = n if not self.task_chunk else self.task_chunk
        return [slice(i, min(n, i + step)) for i in range(0, n, max(1, step))]


class FastMLP(Network):
    """The MLP of :class:`MLPSpec` on the fused kernel: per-task backpropagation as batched matmuls."""

    def __init__(self, spec: MLPSpec):
        self.spec = spec
        self.names = spec.param_names()
        self.shapes = [tuple(s) for s in spec.param_shapes()]
        self.head_start = 2 * (spec.n_layers - 1)
        self.in_shape = (spec.in_dim,)
        self.out_dim = spec.out_dim

    def init(self, generator, device="cpu"):
        return self.spec.init(generator, device)

    def forward(self, params, x):
        return mlp.forward(params, x, self.spec.activation)

    def meta_gradient(self, params, rule, steps, first_order, batch):
        if rule.first % 2 or rule.loss not in ("mse", "cross_entropy"):
            return None
        with torch.no_grad():
            return mlp.meta_gradient([p.detach() for p in params], [lr if isinstance(lr, float) else lr.detach()
                                                                    for lr in rule.lrs], rule.first, steps,
                                     first_order, batch.xs, batch.ys, batch.xq, batch.yq, rule.loss,
                                     self.spec.activation)

    def split_head(self):
        spec = self.spec
        if spec.n_layers < 2:
            return None
        k = spec.n_layers - 1
        head = FastMLP(MLPSpec(spec.hidden[-1], spec.out_dim, (), spec.activation))
        return (lambda params, x: mlp.features(params, x, spec.activation, k)), head

    def loss_grads(self, params, x, y, loss, first, create_graph):
        if first % 2:
            raise ValueError(f"the fast MLP adapts whole layers: first = {first} is a bias")
        grads, _ = mlp.backprop(params, x, lambda out: losses.output_grad(loss, out, y), self.spec.activation,
                                first // 2)
        return grads if create_graph else [g.detach() for g in grads]


class FunctionalNetwork(Network):
    """Any ``nn.Module`` mapping (N, *in_shape) to (N, out_dim), run on explicit parameter tensors.

    ``factory()`` builds the module; it is called under a seeded RNG by :meth:`init`, so the module's own
    initialisation is used and is reproducible.  Batch-norm layers are switched to batch statistics only
    (``torch.func.replace_all_batch_norm_modules_``): each task is normalised with its own statistics, and
    nothing carries over from one task, batch or evaluation to the next."""

    def __init__(self, factory: Callable[[], nn.Module], in_shape: tuple[int, ...], out_dim: int,
                 head: str = "", task_chunk: int | None = None):
        self.factory = factory
        self.in_shape, self.out_dim = tuple(in_shape), int(out_dim)
        self.module = self._build(0)
        named = dict(self.module.named_parameters())
        canonical = {id(p): n for n, p in named.items()}  # a tied parameter is meta-learned once, by its first name
        alias = {n: canonical[id(p)] for n, p in self.module.named_parameters(remove_duplicate=False)}
        head_names = list(dict.fromkeys(alias[n] for n in self.head_names(self.module, head)))
        self.names = [n for n in named if n not in head_names] + head_names
        self.shapes = [tuple(named[n].shape) for n in self.names]
        self.head_start = len(self.names) - len(head_names)
        convolutional = any(isinstance(m, nn.modules.conv._ConvNd) for m in self.module.modules())
        self.task_chunk = task_chunk if task_chunk is not None else (1 if convolutional else None)

    def _build(self, seed: int) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = self.factory()
        torch.func.replace_all_batch_norm_modules_(module)
        return module.train()

    def split_head(self):
        if not hasattr(self, "_split"):
            self._split = self._find_split()
        return self._split

    def _find_split(self):
        """The split, if the head is a linear layer whose output is the module's: checked once on random
        parameters and inputs (a module that scales or adds to its head's output gets no split)."""
        linear = _linear_head(self.module, self.names[self.head_start:])
        if linear is None:
            return None
        d, out = linear.in_features, linear.out_features
        eye, zero = torch.eye(d), torch.zeros(d)
        has_bias = linear.bias is not None

        def features(params, x):  # the head called as an identity map: its input comes out
            ident = [eye.to(x.device, x.dtype)] + ([zero.to(x.device, x.dtype)] if has_bias else [])
            return self.forward(list(params[:self.head_start]) + ident, x)

        head = FunctionalNetwork(lambda: nn.Linear(d, out, bias=has_bias), (d,), out)
        g = torch.Generator().manual_seed(0)
        params = [p + torch.randn(p.shape, generator=g) for p in self.init(g)]
        x = torch.randn(1, 3, *self.in_shape, generator=g)
        with torch.no_grad():
            whole = self.forward(params, x)
            parts = head.forward(params[self.head_start:], features(params[:self.head_start], x))
        return (features, head) if torch.allclose(whole, parts, rtol=1e-4, atol=1e-4) else None

    @staticmethod
    def head_names(module: nn.Module, head: str) -> list[str]:
        """The parameter names of submodule ``head`` ("": the last submodule, in registration order, that holds
        parameters of its own: define the output layer last, or name it).  Raises :class:`HeadError` when
        ``head`` names no submodule with parameters."""
        if head:
            subs = dict(module.named_modules())
            if head not in subs:
                raise HeadError(f"names no submodule; submodules: {', '.join(n for n in subs if n) or 'none'}")
            names = [f"{head}.{n}" for n, _ in subs[head].named_parameters(remove_duplicate=False)]
            if not names:
                raise HeadError("names a submodule without parameters")
            return names
        last = ""
        for name, sub in module.named_modules():
            if any(True for _ in sub.parameters(recurse=False)):
                last = name
        prefix = f"{last}." if last else ""
        return [f"{prefix}{n}" for n, _ in (dict(module.named_modules())[last].named_parameters(recurse=False))]

    def init(self, generator, device="cpu"):
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        module = self._build(seed)
        named = dict(module.named_parameters())
        self.module.to(device)
        return [named[n].detach().to(device=device, dtype=torch.float32).clone() for n in self.names]

    def _call(self, params, x):
        out = functional_call(self.module, dict(zip(self.names, params)), (x,))
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"forward must return a tensor (N, out_dim), got {type(out).__name__}")
        return out

    def forward(self, params, x):
        batched = self.is_batched(params)
        b = x.shape[0]
        if b == 1 or self.task_chunk == 1:  # task by task (see the module docstring for why)
            return torch.stack([self._call([p[i] if t else p for p, t in zip(params, batched)], x[i])
                                for i in range(b)])
        return vmap(self._call, in_dims=([0 if t else None for t in batched], 0), randomness="different")(
            list(params), x)

    def loss_grads(self, params, x, y, loss, first, create_graph):
        b = x.shape[0]
        with torch.enable_grad():
            adapted = []
            for p, t in zip(params[first:], self.is_batched(params)[first:]):
                q = p if t else p.expand(b, *p.shape)  # one copy per task: its gradient is per task
                adapted.append(q if q.requires_grad else q.detach().requires_grad_())
            out = self.forward(list(params[:first]) + adapted, x)
            total = losses.per_task(loss, out, y).sum()
            grads = torch.autograd.grad(total, adapted, create_graph=create_graph, materialize_grads=True)
        return list(grads) if create_graph else [g.detach() for g in grads]


def _linear_head(module: nn.Module, head_names: list[str]) -> nn.Linear | None:
    """The ``nn.Linear`` whose parameters are exactly ``head_names`` (weight, then bias), or None."""
    if not head_names:
        return None
    prefix = head_names[0].rpartition(".")[0]
    sub = dict(module.named_modules()).get(prefix)
    if not isinstance(sub, nn.Linear):
        return None
    own = [f"{prefix}.{n}" if prefix else n for n, _ in sub.named_parameters(recurse=False)]
    return sub if own == list(head_names) else None
