"""Typed events the trainer emits.  The CLI, the GUI and the run recorder only consume these.

Events are frozen, and the arrays and dicts in them are copies the trainer never touches again, so a
consumer on another thread may keep (or even modify) them without affecting the run.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .payloads import RenderPayload


@dataclass(frozen=True)
class RunStarted:
    run_dir: str | None
    start_iteration: int
    total_iterations: int
    device: str
    family: str
    algorithm: str
    train_metric: str = "loss"  # the metric the meta-loss view plots
    eval_metric: str = "mse"


@dataclass(frozen=True)
class IterationMetrics:
    iteration: int  # 1-based count of completed meta-iterations
    metrics: dict[str, float]
    elapsed: float  # seconds of training so far (excluding evaluations)
    its_per_sec: float


@dataclass(frozen=True)
class Evaluation:
    iteration: int
    metric: str  # the family's: "mse" (lower is better), "accuracy" or "return" (higher is better)
    steps: list[int]  # inner steps 0..S
    per_task: np.ndarray  # (tasks, len(steps)): the adaptation curve of each held-out task
    mean: np.ndarray  # (len(steps),)
    ci95: np.ndarray  # (len(steps),) half-width of the 95% confidence interval of the mean

    trained_steps: int = 1
    references: dict = field(default_factory=dict)  # name -> mean metric of a reference method
    step_label: str = "inner step"

    @property
    def higher_is_better(self) -> bool:
        from .losses import higher_is_better

        return higher_is_better(self.metric)

    @property
    def diverged(self) -> dict[int, int]:
        """{held-out task: the first step at which its value overflowed} (empty when none did)."""
        from .stats import divergence

        return divergence(self.per_task, self.steps)

    @property
    def before(self) -> float:
        return float(self.mean[0])

    @property
    def after(self) -> float:
        """Held-out loss after the trained number of inner steps (or the last step evaluated)."""
        return float(self.mean[min(self.trained_steps, len(self.mean) - 1)])


@dataclass(frozen=True)
class Render:
    iteration: int
    payload: RenderPayload  # a typed payload (workbench.core.payloads); its ``view`` picks the renderer


@dataclass(frozen=True)
class TaskMapMade:
    """A coarse task-space map made right after the evaluation at ``iteration`` (a
    :class:`workbench.core.taskmap.TaskMap`, numpy only)."""
    iteration: int
    task_map: object


@dataclass(frozen=True)
class CheckpointSaved:
    iteration: int
    path: str


@dataclass(frozen=True)
class Paused:
    iteration: int


@dataclass(frozen=True)
class Resumed:
    iteration: int


@dataclass(frozen=True)
class RunFinished:
    status: str  # "finished" | "stopped" | "failed"
    iteration: int
    bundle_path: str | None = None
    message: str = ""
