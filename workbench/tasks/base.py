"""The interface of a supervised few-shot task family.

A family samples task parameters with a seeded generator and turns them into a task batch: support
and query sets for all tasks at once, as tensors with the task as the leading dimension.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch


@dataclass
class TaskBatch:
    params: torch.Tensor  # (B, P) the parameters that define each task
    xs: torch.Tensor  # (B, K, in) support inputs
    ys: torch.Tensor  # (B, K, out) support targets
    xq: torch.Tensor  # (B, Q, in) query inputs
    yq: torch.Tensor  # (B, Q, out) query targets

    def to(self, device) -> "TaskBatch":
        return TaskBatch(*(t.to(device) for t in (self.params, self.xs, self.ys, self.xq, self.yq)))

    def __len__(self) -> int:
        return self.xs.shape[0]


class RegressionFamily:
    """Few-shot regression: y = f_task(x)."""

    name: ClassVar[str]
    title: ClassVar[str]
    Config: ClassVar[type]
    kind: ClassVar[str] = "regression"
    in_dim: ClassVar[int] = 1
    out_dim: ClassVar[int] = 1
    task_param_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg):
        self.cfg = cfg

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

    def evaluation_batch(self, n: int, seed: int, shots: int | None = None,
                         query: int | None = None) -> TaskBatch:
        """A fixed, seeded set of tasks, drawn from a generator that training never uses."""
        g = torch.Generator().manual_seed(seed)
        params = self.sample_task_params(n, g)
        return self.batch_for(params, g, shots, self.cfg.eval_query if query is None else query)

    def render(self, batch: TaskBatch, preds: torch.Tensor, grid: torch.Tensor, steps: list[int]) -> dict:
        """The render payload for the GUI's rollout view (numpy arrays only)."""
        truth = self.function(batch.params, grid.expand(len(batch), *grid.shape))
        return {
            "kind": "regression-1d",
            "family": self.name,
            "task_params": batch.params.cpu().numpy(),
            "task_param_names": list(self.task_param_names),
            "x": grid[:, 0].cpu().double().numpy(),
            "y_true": truth[..., 0].cpu().numpy(),
            "x_support": batch.xs[..., 0].cpu().numpy(),
            "y_support": batch.ys[..., 0].cpu().numpy(),
            "steps": list(steps),
            "pred": preds[..., 0].cpu().numpy(),  # (tasks, steps+1, G)
        }
