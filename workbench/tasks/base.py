"""The interface of a supervised few-shot task family.

A family samples task parameters with a seeded generator and turns them into a task batch: support
and query sets for all tasks at once, as tensors with the task as the leading dimension.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from workbench.core import seeding
from workbench.core.payloads import RegressionCurves


@dataclass
class TaskBatch:
    params: torch.Tensor  # (B, P) the parameters that define each task
    xs: torch.Tensor  # (B, K, *in_shape) support inputs
    ys: torch.Tensor  # (B, K, out) support targets; classification: (B, K) int64 class indices
    xq: torch.Tensor  # (B, Q, *in_shape) query inputs
    yq: torch.Tensor  # (B, Q, out) query targets; classification: (B, Q) int64

    def to(self, device) -> "TaskBatch":
        return TaskBatch(*(t.to(device) for t in (self.params, self.xs, self.ys, self.xq, self.yq)))

    def __len__(self) -> int:
        return self.xs.shape[0]

    def __getitem__(self, item: slice) -> "TaskBatch":
        """The tasks ``item`` (a slice of the task dimension)."""
        return TaskBatch(*(t[item] for t in (self.params, self.xs, self.ys, self.xq, self.yq)))


class SupervisedFamily:
    """A supervised few-shot family (the contract: :mod:`workbench.core.family`): tasks are support and
    query sets of (x, y) with x of shape (N, *in_shape); y (N, out_dim) floats for regression, (N,) class
    indices for classification."""

    name: ClassVar[str]
    title: ClassVar[str]
    Config: ClassVar[type]
    kind: ClassVar[str]
    loss: ClassVar[str]
    metric: ClassVar[str]
    payload: ClassVar[type | None] = None  # the RenderPayload class render() gives; None: no rollout view
    out_dim: ClassVar[int] = 1
    task_param_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg):
        self.cfg = cfg

    @property
    def in_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    def evaluation_batch(self, n: int, seed: int, shots: int | None = None, query: int | None = None,
                         stream: str = seeding.HELD_OUT) -> TaskBatch:
        raise NotImplementedError

    def map_params(self) -> list:
        """The task parameters a task-space map can lay a grid over (:class:`workbench.core.taskmap.MapParam`
        s, each with its training range); none by default."""
        return []


class RegressionFamily(SupervisedFamily):
    """Few-shot regression: y = f_task(x)."""

    kind: ClassVar[str] = "regression"
    payload: ClassVar[type] = RegressionCurves
    loss: ClassVar[str] = "mse"
    metric: ClassVar[str] = "mse"
    in_dim: ClassVar[int] = 1
    out_dim: ClassVar[int] = 1

    @property
    def in_shape(self) -> tuple[int, ...]:
        return (self.in_dim,)

    # -- to implement --------------------------------------------------------------------------
    def sample_task_params(self, n: int, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def sample_inputs(self, n: int, m: int, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def function(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Targets of tasks ``params`` (B, P) at inputs ``x`` (B, N, in)."""
        raise NotImplementedError

    def input_grid(self, points: int = 200) -> torch.Tensor:
        """Inputs on which the render payload shows functions and predictions: (G, in)."""
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------------------------
    @property
    def shots(self) -> int:
        return self.cfg.shots

    def batch_for(self, params: torch.Tensor, generator: torch.Generator, shots: int | None = None,
                  query: int | None = None) -> TaskBatch:
        k = self.cfg.shots if shots is None else shots
        q = self.cfg.query if query is None else query
        x = self.sample_inputs(params.shape[0], k + q, generator)
        y = self.function(params, x)
        return TaskBatch(params, x[:, :k], y[:, :k], x[:, k:], y[:, k:])

    def sample_batch(self, n: int, generator: torch.Generator) -> TaskBatch:
        return self.batch_for(self.sample_task_params(n, generator), generator)

    def batch_of(self, params: torch.Tensor, generator: torch.Generator) -> TaskBatch:
        """The tasks ``params`` (B, P) with support and query sets of the held-out sizes (K shots,
        ``eval_query`` queries) drawn with ``generator``."""
        return self.batch_for(params, generator, query=self.cfg.eval_query)

    def evaluation_batch(self, n: int, seed: int, shots: int | None = None, query: int | None = None,
                         stream: str = seeding.HELD_OUT) -> TaskBatch:
        """A fixed, seeded set of tasks from a random stream that training never uses."""
        g = seeding.generator(stream, seed)
        params = self.sample_task_params(n, g)
        return self.batch_for(params, g, shots, self.cfg.eval_query if query is None else query)

    def render_inputs(self, batch: TaskBatch) -> torch.Tensor:
        """Where the rollout view shows the predictions: the input grid for every task (B, G, in)."""
        grid = self.input_grid().to(batch.xs.device)
        return grid.expand(len(batch), *grid.shape)

    def render(self, batch: TaskBatch, preds: torch.Tensor, inputs: torch.Tensor,
               steps: list[int]) -> RegressionCurves:
        """The render payload for the GUI's rollout view (numpy arrays only); ``inputs`` is
        :meth:`render_inputs` and ``preds`` (B, S+1, G, out) the predictions on it after each step."""
        grid = inputs[0]
        truth = self.function(batch.params, grid.expand(len(batch), *grid.shape))

        def arr(t: torch.Tensor):  # a copy: the payload must share no memory with the trainer's tensors
            return t.detach().cpu().numpy().copy()

        return RegressionCurves(
            family=self.name,
            task_params=arr(batch.params),
            task_param_names=list(self.task_param_names),
            x=arr(grid[:, 0].double()),
            y_true=arr(truth[..., 0]),
            x_support=arr(batch.xs[..., 0]),
            y_support=arr(batch.ys[..., 0]),
            steps=list(steps),
            pred=arr(preds[..., 0]),  # (tasks, steps+1, G)
        )
