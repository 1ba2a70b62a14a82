"""The RL playground's engine (no Qt): adapt a meta-RL policy to ONE task the user made by hand, beside the
same adaptation from a pretrained baseline.

    session = RLSession(load_bundle("maml.safetensors"), baseline=load_bundle("pretrained.safetensors"))
    session.controls()                        # the family's TaskParams: goal_x, goal_y / physics / velocity
    result = session.run({"goal_x": 0.3, "goal_y": -0.2})
    result.returns, result.final_distance     # per step: mean return, distance of the paths' ends to the goal

How a model adapts depends on its algorithm, and so do the "steps" of the curve:

* gradient-based (MAML-TRPO, the pretrained and scratch baselines): the steps are policy-gradient inner
  steps, each on fresh trajectories; the curve runs over 0..S;
* RL²: the steps are the episodes of one trial (the hidden state carries over between them), 1..E;
* PEARL: the steps are episodes of context, 0..S (0: z from the prior).

Every run is the algorithm's own held-out ``evaluate`` on a batch of one task (seeded, so the same task
gives the same result), with a ``cancel`` event checked between steps / episodes.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from workbench.core.errors import Cancelled, ConfigError
from workbench.core.payloads import RenderPayload, Trajectories2D

GRADIENT, TRIAL, CONTEXT = "gradient", "trial", "context"
MAX_GRADIENT_STEPS = 10
MAX_TRIAL_EPISODES = 20
MAX_CONTEXT_EPISODES = 10


@dataclass(frozen=True)
class StepsControl:
    """What the steps control of the playground counts, and its range."""

    label: str
    low: int
    high: int
    default: int


@dataclass
class RLResult:
    """One adaptation of the model (and of the baseline) to one task; arrays are fresh numpy copies."""

    task: dict  # the values the task was made from
    algorithm: str
    steps: list[int]  # the x of the curve: inner steps 0..S, episodes of the trial 1..E, or episodes of context
    step_label: str  # what the steps count
    step_names: list[str]  # a legend name per step ("before adaptation", "after 1 step", "episode 2 of the trial")
    returns: np.ndarray  # (S+1,) mean return of the task's trajectories after each step
    payload: RenderPayload | None  # the family's render payload (one task): Trajectories2D or Frames
    final_distance: np.ndarray | None = None  # navigation: mean distance of the shown paths' ends to the goal
    baseline_algorithm: str | None = None
    baseline_steps: list[int] = field(default_factory=list)
    baseline_step_label: str = ""
    baseline_step_names: list[str] = field(default_factory=list)
    baseline_returns: np.ndarray | None = None
    baseline_payload: RenderPayload | None = None
    baseline_final_distance: np.ndarray | None = None
    seconds: float = 0.0
    note: str = ""  # e.g. why frames are not shown


def _family_of(model):
    return getattr(model, "family", None)


def _mode(learner) -> str:
    if hasattr(learner, "inner_update"):
        return GRADIENT
    if getattr(learner, "name", "") == "rl2" or hasattr(learner, "run_trials"):
        return TRIAL
    return CONTEXT


def final_distances(payload: Trajectories2D) -> np.ndarray:
    """Mean over the shown trajectories of the distance from each path's last position to the goal, per step:
    (S+1,).  Paths hold NaN after an episode ended (the point reached the goal)."""
    paths = np.asarray(payload.paths, dtype=np.float64)[0]  # (S+1, n, H+1, 2)
    goal = np.asarray(payload.goals, dtype=np.float64)[0]
    return np.linalg.norm(path_ends(paths) - goal, axis=-1).mean(1)  # ends: (S+1, n, 2)


class RLSession:
    """Adapts ``model`` (an RLModel: ``.learner``, ``.family``, ``.meta``) and, if given, ``baseline`` (an
    RLModel of the same family, adapted by its own rule) to tasks made from the family's playground controls."""

    def __init__(self, model, baseline=None):
        why = self.why_not(model)
        if why:
            raise ConfigError(why)
        self.model, self.family, self.learner = model, model.family, model.learner
        self.mode = _mode(self.learner)
        self.baseline = None
        if baseline is not None:
            self.set_baseline(baseline)

    # -- what can be played with ----------------------------------------------------------------------
    @staticmethod
    def why_not(model) -> str:
        """"" if the model has an RL playground, else why not (one sentence for the user)."""
        family = _family_of(model)
        name = (getattr(model, "meta", None) or {}).get("family") or getattr(family, "name", "?")
        if family is None or family.kind != "rl" or not hasattr(model, "learner"):
            return f"a {name} model is not a reinforcement-learning policy"
        if family.playground_params() is None:
            msg = family.playground_unavailable()
            return msg[0].upper() + msg[1:]
        if not hasattr(model.learner, "evaluate"):
            return f"a {getattr(model, 'algorithm', '?')} model cannot be evaluated"
        return ""

    @classmethod
    def supports(cls, model) -> bool:
        return not cls.why_not(model)

    def set_baseline(self, baseline) -> None:
        if baseline is None:
            self.baseline = None
            return
        why = self.why_not(baseline)
        if why:
            raise ConfigError(f"the baseline: {why}")
        if baseline.family.name != self.family.name:
            raise ConfigError(f"the baseline is a {baseline.family.name} model; the model is {self.family.name}")
        self.baseline = baseline

    # -- the controls ---------------------------------------------------------------------------------
    def controls(self):
        """The family's TaskParams (name, label, low, high, default, kind)."""
        return list(self.family.playground_params())

    def defaults(self) -> dict:
        return {p.name: p.default for p in self.controls()}

    def steps_control(self) -> StepsControl:
        if self.mode == GRADIENT:
            trained = max(self.learner.default_eval_steps())
            return StepsControl("inner steps", 0, MAX_GRADIENT_STEPS, min(trained, MAX_GRADIENT_STEPS))
        if self.mode == TRIAL:
            e = int(self.learner.cfg.episodes)
            return StepsControl("episodes in the trial", 1, max(MAX_TRIAL_EPISODES, e), e)
        return StepsControl("episodes of context", 0, MAX_CONTEXT_EPISODES,
                            min(max(self.learner.default_eval_steps()), MAX_CONTEXT_EPISODES))

    def check(self, values: dict):
        """The task row (1, P) of the values, or a ConfigError naming the parameter, the value and the range."""
        return self.family.task_params_from(values)

    # -- adaptation -----------------------------------------------------------------------------------
    def run(self, values: dict, steps: int | None = None, cancel: threading.Event | None = None,
            trajectories: int | None = None) -> RLResult:
        """Adapt the model (then the baseline) to the task made from ``values``.  ``steps``: what
        :meth:`steps_control` counts (default: its default); ``trajectories``: trajectories per step (gradient
        learners) or trials (RL², PEARL), default the model's own.  Raises ConfigError for bad values and
        :class:`Cancelled` once ``cancel`` is set."""
        from workbench.tasks.rl_base import RLTaskBatch

        t0 = time.perf_counter()
        params = self.check(values)
        ctl = self.steps_control()
        steps = ctl.default if steps is None else int(steps)
        if not ctl.low <= steps <= ctl.high:
            raise ConfigError(f"{ctl.label} = {steps} is outside [{ctl.low}, {ctl.high}]")
        if trajectories is not None and (int(trajectories) < 1 or int(trajectories) > 10_000):
            raise ConfigError(f"trajectories = {trajectories} is outside [1, 10000]")
        render, note = 1, ""
        available = getattr(type(self.family), "available", None)
        if available is not None:
            ok, why = available()
            if not ok:
                render, note = 0, f"no frames: {why}"
        batch = RLTaskBatch(params)
        task = {p.name: float(v) for p, v in zip(self.controls(), params[0].tolist())}
        Cancelled.raise_if_set(cancel)
        m = self._adapt(self.model, self.mode, batch, steps, render, cancel, trajectories)
        result = RLResult(task, self.model.algorithm, *m, note=note)
        if self.baseline is not None:
            Cancelled.raise_if_set(cancel)
            b_mode = _mode(self.baseline.learner)
            b_steps = steps if b_mode == self.mode else self._own_steps(self.baseline.learner, b_mode)
            b = self._adapt(self.baseline, b_mode, batch, b_steps, render, cancel, trajectories)
            (result.baseline_steps, result.baseline_step_label, result.baseline_step_names, result.baseline_returns,
             result.baseline_payload, result.baseline_final_distance) = b
            result.baseline_algorithm = self.baseline.algorithm
        result.seconds = time.perf_counter() - t0
        return result

    @staticmethod
    def _own_steps(learner, mode) -> int:
        if mode == TRIAL:
            return int(learner.cfg.episodes)
        return max(learner.default_eval_steps())

    def _adapt(self, model, mode, batch, steps, render, cancel, trajectories):
        learner = model.learner
        changes = {}
        if trajectories is not None:
            changes["trajectories" if mode == GRADIENT else "eval_trials"] = int(trajectories)
            if mode == GRADIENT and hasattr(learner.cfg, "eval_trajectories"):  # the evaluation's own count
                changes["eval_trajectories"] = int(trajectories)
        if mode == TRIAL:
            changes["episodes"] = steps
        if changes:  # a shallow copy with its own settings: the parameters are shared, never written
            learner = copy.copy(learner)
            learner.cfg = dataclasses.replace(learner.cfg, **changes)
        curve_steps = steps - 1 if mode == TRIAL else steps
        outcome = learner.evaluate(self.family, batch, curve_steps, render, cancel=cancel)
        returns = np.asarray(outcome.per_task, dtype=np.float64)[0].copy()
        payload = outcome.payload
        names = list((payload.step_names if payload is not None else None) or [])
        if mode == TRIAL:
            xs, label = [s + 1 for s in outcome.steps], "episode of the trial"
            names = names or [f"episode {s} of the trial" for s in xs]
        elif mode == CONTEXT:
            xs, label = list(outcome.steps), outcome.step_label
            names = names or [f"{s} episodes of context" for s in xs]
        else:
            xs, label = list(outcome.steps), outcome.step_label
            names = ["before adaptation" if s == 0 else f"after {s} step{'s' if s > 1 else ''}" for s in xs]
        if payload is not None:
            payload = dataclasses.replace(payload, step_names=names)
        distance = None
        if isinstance(payload, Trajectories2D):
            distance = final_distances(payload)
        return xs, label, names, returns, payload, distance


def summary(result: RLResult) -> str:
    """One line per model: return (and distance to the goal) before → after."""
    def line(who, returns, distance):
        if returns is None or not len(returns):
            return ""
        text = f"{who}: return {returns[0]:.1f} → {returns[-1]:.1f}"
        if distance is not None and len(distance) and all(math.isfinite(d) for d in distance):
            text += f"; final distance to the goal {distance[0]:.2f} → {distance[-1]:.2f}"
        return text

    lines = [line(result.algorithm, result.returns, result.final_distance)]
    if result.baseline_returns is not None:
        lines.append(line(f"{result.baseline_algorithm} (baseline)", result.baseline_returns,
                          result.baseline_final_distance))
    return "\n".join(x for x in lines if x)


# -- what the page shows, computed without Qt ---------------------------------------------------------------
SLIDER_TICKS = 1000  # a float parameter's slider resolution


def param_tick(param, value: float, ticks: int = SLIDER_TICKS) -> int:
    """The slider position of ``value`` for TaskParam ``param``: the nearest choice's index, or the nearest of
    ``ticks`` steps over [low, high] (0 for an empty range)."""
    if param.kind == "choice":
        return int(np.argmin([abs(c - value) for c in param.choices]))
    if not param.high > param.low:
        return 0
    return max(0, min(ticks, int(round((value - param.low) / (param.high - param.low) * ticks))))


def tick_param(param, tick: int, ticks: int = SLIDER_TICKS) -> float:
    """The value of TaskParam ``param`` at slider position ``tick``."""
    if param.kind == "choice":
        return float(param.choices[int(tick)])
    return param.low + (param.high - param.low) * int(tick) / ticks


def param_text(param, value: float) -> str:
    """``value`` as its slider's label shows it: "+1 forward" for a choice, 3 significant digits otherwise."""
    if param.kind == "choice":
        i = param_tick(param, value)
        name = param.choice_labels[i] if i < len(param.choice_labels) else ""
        return f"{param.choices[i]:+g} {name}".strip()
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.1f}"


def path_ends(paths: np.ndarray) -> np.ndarray:
    """The last finite position of each trajectory: (..., 2) from paths (..., H+1, 2) that hold NaN after an
    episode ended."""
    paths = np.asarray(paths, dtype=np.float64)
    finite = np.isfinite(paths).all(-1)  # (..., H+1)
    last = finite.shape[-1] - 1 - np.argmax(finite[..., ::-1], axis=-1)
    return np.take_along_axis(paths, last[..., None, None].repeat(2, -1), axis=-2)[..., 0, :]


def mean_path(paths: np.ndarray) -> np.ndarray:
    """The mean over trajectories of the positions at each time, a trajectory that ended holding its last
    position: (H+1, 2) from (n, H+1, 2) with NaN after each end."""
    held = np.asarray(paths, dtype=np.float64).copy()
    for traj in held:
        finite = np.isfinite(traj).all(-1)
        if finite.any():
            last = len(finite) - 1 - int(np.argmax(finite[::-1]))
            traj[last + 1:] = traj[last]
    with np.errstate(invalid="ignore"):
        return np.nanmean(held, axis=0)


@dataclass(frozen=True)
class ReturnsView:
    """How the return chart shows a result: its x ticks (None: automatic), and its x and y ranges."""

    ticks: list | None
    x_range: tuple[float, float]
    y_range: tuple[float, float] | None


def returns_view(result: RLResult) -> ReturnsView:
    """The return chart's ticks and ranges for ``result``: every step labelled when there are few, a margin
    of 12% (at least 0.5) around the returns of the model and the baseline."""
    xs = sorted(set(result.steps) | set(result.baseline_steps))
    ticks = [(float(s), str(s)) for s in xs] if len(xs) <= 21 else None
    ys = np.concatenate([np.asarray(result.returns, dtype=np.float64)] + (
        [np.asarray(result.baseline_returns, dtype=np.float64)] if result.baseline_returns is not None else []))
    ys = ys[np.isfinite(ys)]
    y_range = None
    if len(ys):
        lo, hi = float(ys.min()), float(ys.max())
        pad = max(0.12 * (hi - lo), 0.5)
        y_range = (lo - pad, hi + pad)
    return ReturnsView(ticks, (xs[0] - 0.15, xs[-1] + 0.15), y_range)


def navigation_title(who: str, returns, distance) -> str:
    """A navigation plot's caption: who, then a line on the return (and distance to the goal) before → after."""
    text = f"{who}\nreturn {returns[0]:.1f} → {returns[-1]:.1f}"
    if distance is not None:
        text += f"; distance to goal {distance[0]:.2f} → {distance[-1]:.2f}"
    return text
