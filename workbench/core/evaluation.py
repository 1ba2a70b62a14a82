"""Held-out evaluation: what an algorithm reports about adaptation, and the events made from it."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch

from . import events as ev
from .adaptation import AdaptationRule, adaptation_curve
from .payloads import RenderPayload
from .stats import mean_ci95


@dataclass
class EvalOutcome:
    metric: str  # "mse" (lower is better), "accuracy" or "return" (higher is better): core/losses.py
    per_task: np.ndarray  # (tasks, len(steps)): each held-out task's adaptation curve
    steps: list[int]  # inner steps (or episodes within a trial, or context size) 0..S
    trained_steps: int  # the step that counts as "after adaptation"
    payload: RenderPayload | None = None  # the family's render payload (core/payloads.py), or None
    references: dict[str, float] = field(default_factory=dict)  # e.g. Thompson sampling's mean return
    step_label: str = "inner step"  # what the steps count (RL²: episodes within a trial)


def events_from(iteration: int, outcome: EvalOutcome) -> tuple[ev.Evaluation, ev.Render | None]:
    per_task = np.array(outcome.per_task, dtype=np.float64)
    mean, ci = mean_ci95(per_task)
    evaluation = ev.Evaluation(iteration, outcome.metric, list(outcome.steps), per_task, mean, ci,
                               trained_steps=outcome.trained_steps, references=dict(outcome.references),
                               step_label=outcome.step_label)
    render = ev.Render(iteration, outcome.payload) if outcome.payload is not None else None
    return evaluation, render


def copy_evaluation(e: ev.Evaluation) -> ev.Evaluation:
    return dataclasses.replace(e, steps=list(e.steps), per_task=e.per_task.copy(), mean=e.mean.copy(),
                               ci95=e.ci95.copy(), references=dict(e.references))


def supervised_outcome(network, params: list[torch.Tensor], rule: AdaptationRule, family, batch, steps: int,
                       render_tasks: int, cancel=None) -> EvalOutcome:
    """The family's metric on every held-out task's query set after 0..steps inner steps, and the render of
    the first few (families with a payload: predictions on ``family.render_inputs(tasks)``).
    ``cancel`` (a threading.Event, or None) is checked between inner steps (raises Cancelled)."""
    metric = family.metric
    values, _ = adaptation_curve(network, params, rule, batch.xs, batch.ys, batch.xq, batch.yq, steps, cancel=cancel,
                                 metric=metric)
    outcome = EvalOutcome(metric, values.double().cpu().numpy(), list(range(steps + 1)), rule.steps,
                          step_label=rule.step_label)
    r = min(render_tasks, len(batch))
    if r > 0 and family.payload is not None:
        sub = batch[:r]
        inputs = family.render_inputs(sub)  # (r, G, *in_shape): where the view shows the predictions
        _, preds = adaptation_curve(network, params, rule, sub.xs, sub.ys, sub.xq, sub.yq, steps, inputs,
                                    cancel=cancel, metric=metric)
        outcome.payload = family.render(sub, preds, inputs, outcome.steps)
    return outcome
