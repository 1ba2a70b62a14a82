"""Typed render payloads: what a family's ``render()`` gives the app's rollout view, one class per picture.

Each is a dataclass of numpy arrays, numbers, strings and lists: copies the trainer never touches again, so
the app may keep them.  ``view`` (a class attribute, not a field) names the renderer that draws it (the GUI's
``plots.RENDERERS`` is keyed by it).  They are plain module-level classes, so they pickle: the app's trainer
process sends them to the GUI inside :class:`~workbench.core.events.Render` events.  Nothing writes them to
a file.

Shape letters: T held-out tasks shown, S+1 the steps in ``steps`` (0 = before adaptation), G grid points,
K support points, P task parameters, n trajectories, H horizon (time steps of an episode), k arms,
F frames of an episode, (H, W) a frame's height and width in pixels.

Fields are keyword-only: ``Frames(family=..., steps=..., frames=..., ...)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np


@dataclass(kw_only=True)
class RenderPayload:
    """What a family's ``render()`` gives the rollout view (numpy arrays only).

    ``step_names`` is not set by the families: an algorithm that adapts in context (RL², PEARL) or the
    playground names its steps there (one label per entry of ``steps``); None: the view names them
    "before adaptation", "after s steps"."""
    view: ClassVar[str]  # the app's renderer for it
    family: str  # the registry name of the family that rendered it
    steps: list[int]  # inner steps (or episodes) the frames / predictions are taken after: S+1 of them
    step_names: list[str] | None = None  # a legend label per entry of ``steps``, or None


@dataclass(kw_only=True)
class RegressionCurves(RenderPayload):
    """1-D regression: true functions and the adapted predictions on a grid, with the support points.
    x and y are in the family's own units (those of its task parameters)."""
    view: ClassVar[str] = "regression-1d"
    task_params: np.ndarray  # (T, P) the parameters of each shown task
    task_param_names: list[str] = field(default_factory=list)  # (P,) their names (the panels' titles)
    x: np.ndarray  # (G,) float64 grid of inputs
    y_true: np.ndarray  # (T, G) the true function of each task on the grid
    x_support: np.ndarray  # (T, K) support inputs
    y_support: np.ndarray  # (T, K) support targets
    pred: np.ndarray  # (T, S+1, G) the prediction on the grid after each step of ``steps``


@dataclass(kw_only=True)
class Trajectories2D(RenderPayload):
    """2-D navigation: positions of a few episodes from the start after each adaptation step, and the goal.
    Positions are in the environment's plane units (goals lie in [goal_low, goal_high]², by default [-0.5, 0.5]²)."""
    view: ClassVar[str] = "trajectories-2d"
    goals: np.ndarray  # (T, 2) each task's goal (x, y)
    paths: np.ndarray  # (T, S+1, n, H+1, 2) positions before each step and after the last; NaN once ended
    returns: np.ndarray  # (T, S+1) mean episode return over the task's trajectories after each step
    bounds: list[float]  # [lo, hi]: the view's range on both axes (plane units)


@dataclass(kw_only=True)
class BanditArms(RenderPayload):
    """Multi-armed bandits: how often each arm is pulled after each adaptation step, against the arm means."""
    view: ClassVar[str] = "bandit-arms"
    means: np.ndarray  # (T, k) each arm's mean (Bernoulli) reward in [0, 1]: the task parameters
    pull_fraction: np.ndarray  # (T, S+1, k) fraction of the pulls of each arm after each step (rows sum to 1)
    returns: np.ndarray  # (T, S+1) mean episode return (summed rewards) after each step


@dataclass(kw_only=True)
class StateVisitation(RenderPayload):
    """Tabular MDPs: the fraction of time steps spent in each state, after each adaptation step."""
    view: ClassVar[str] = "state-visitation"
    visits: np.ndarray  # (T, S+1, states) fraction of the time steps in each state (rows sum to 1)
    returns: np.ndarray  # (T, S+1) mean episode return (summed rewards) after each step


@dataclass(kw_only=True)
class Frames(RenderPayload):
    """Rendered frames of one episode (task 0, trajectory 0) before adaptation and after the last step,
    played side by side at ``fps``."""
    view: ClassVar[str] = "frames"
    frames: np.ndarray  # (D, F, H, W, 3) uint8 RGB: D = len(frame_steps) episodes (1 or 2), each padded
    #                     with its last frame to F frames
    returns: np.ndarray  # (T, S+1) mean episode return after each step
    frame_steps: list[int]  # (D,) the entries of ``steps`` that the frames' episodes were collected after
    fps: int  # frames per second to play them at
    task: dict[str, float]  # task 0's parameters by name, in the family's units (m, kg, m/s², N, m/s, ...)
    title: str  # one line describing task 0 ("CartPole: pole 1.00 m, 0.10 kg; ...")


@dataclass(kw_only=True)
class ClassifiedImages(RenderPayload):
    """N-way K-shot image classification: each shown task's support images (a row per class) and its query
    images with the label predicted after each step of ``steps``, and a confusion matrix over the shown
    tasks' queries.  Pixels are intensities in [0, 1]; grayscale images have no channel axis.  The labels
    are the task's own 0..N-1 (the order its classes were drawn in)."""
    view: ClassVar[str] = "classified-images"
    support: np.ndarray  # (T, N, K, H, W) or (T, N, K, H, W, 3) float32 in [0, 1]
    query: np.ndarray  # (T, Q, H, W) or (T, Q, H, W, 3) float32 in [0, 1]
    query_labels: np.ndarray  # (T, Q) int64: the true label of each query image
    predicted: np.ndarray  # (T, S+1, Q) int64: the label predicted after each step
    probability: np.ndarray  # (T, S+1, Q) float32: the probability the model gave the predicted label
    accuracy: np.ndarray  # (T, S+1) float64: each shown task's query accuracy after each step
    confusion: np.ndarray  # (S+1, N, N) int64 counts over the shown tasks' queries: row true, column predicted
    class_names: list[list[str]]  # (T, N) a name for each class of each shown task ("glyph 4123 ↻90°")
