"""Baselines that every comparison includes.

* **pretrained**: one network trained jointly on all training tasks (multi-task learning on the family's
  loss, Adam),
  then plain SGD fine-tuning on the new task's support set at test time (MAML paper, section 5.1).
  On classification it is the "Baseline" of Chen et al. 2019 ("A Closer Look at Few-shot Classification"):
  the body is trained as one classifier over *every* background class (a joint head, rotations included),
  and a new task fine-tunes only an N-way head, which starts at zero, on its support set.
* **scratch**: a randomly initialised network, fine-tuned the same way; no meta-training at all.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from workbench.core.adaptation import AdaptationRule
from workbench.core.config import param
from workbench.core.optim import SGD, Adam
from workbench.core.registry import ALGORITHMS

from .base import MetaLearner


@dataclass
class PretrainedConfig:
    trains_inner_steps: ClassVar[bool] = False  # its inner steps are test-time fine-tuning (services/budget.py)
    inner_lr: float = param(0.01, "Learning rate of the test-time fine-tuning SGD steps.", low=0.0, high=10.0,
                            low_inclusive=False)
    inner_steps: int = param(1, "Default number of fine-tuning steps at test time.", low=1, high=1000)
    meta_batch: int = param(25, "Tasks per training batch.", low=1, high=10_000)
    outer_lr: float = param(1e-3, "Adam learning rate of the joint training.", low=0.0, high=10.0,
                            low_inclusive=False)


@ALGORITHMS.register
class Pretrained(MetaLearner):
    name = "pretrained"
    title = "Pretrained (joint training + fine-tuning)"
    Config = PretrainedConfig
    summary = "Baseline: train one network on all tasks jointly, fine-tune at test time."

    def setup(self, generator):
        if self.family is not None and self.family.kind == "classification":
            self._setup_joint_classifier(generator)
        self.optimizer = Adam(self.meta_parameters(), self.cfg.outer_lr)

    def meta_step(self, batch, iteration):
        if "joint_head" in self.extras:  # one classification batch of every image: no chunks of tasks
            return {"loss": self.gradient_step(self.outer_loss(self.params, batch), self.optimizer)}
        return super().meta_step(batch, iteration)

    def adaptation_rule(self):
        rule = super().adaptation_rule()
        if "joint_head" in self.extras:  # Chen et al.'s Baseline fine-tunes a new head only
            k = self.network.head_start
            rule = AdaptationRule(rule.lrs[k:], k, rule.steps, rule.loss)
        return rule

    def outer_loss(self, params, batch):
        x, y = torch.cat([batch.xs, batch.xq], 1), torch.cat([batch.ys, batch.yq], 1)
        if "joint_head" in self.extras:  # every image against every background class, as one batch
            y = torch.cat([batch.params.gather(1, batch.ys), batch.params.gather(1, batch.yq)], 1)
            body = params[:self.network.head_start]
            logits = self.network.forward(body + self.extras["joint_head"], x.reshape(1, -1, *x.shape[2:]))
            return torch.nn.functional.cross_entropy(logits[0], y.reshape(-1))
        return self.query_loss(params, x, y)

    def _setup_joint_classifier(self, generator):
        """A head over every background class, shaped like the N-way head with N replaced by their number
        (the network's head is called with it in its place: an ``nn.Linear`` head maps to any width); the
        N-way head that adapts at test time starts at zero."""
        from workbench.core.errors import ConfigError

        family, k = self.family, self.network.head_start
        classes = family.classes(family.background)
        head = self.params[k:]
        if not head or any(p.shape[0] != family.out_dim for p in head):
            raise ConfigError(f"[model]: the pretrained baseline on {family.name} needs a head whose parameters have "
                              f"the {family.out_dim} classes first (an nn.Linear), got shapes "
                              f"{[tuple(p.shape) for p in head]}")
        joint = []
        for p in head:
            bound = 1.0 / max(1, p.shape[-1]) ** 0.5 if p.dim() > 1 else 0.0
            t = torch.empty(classes, *p.shape[1:]).uniform_(-bound, bound, generator=generator)
            joint.append(t.to(p.device).requires_grad_())
        self.extras["joint_head"] = joint
        with torch.no_grad():
            for p in head:
                p.zero_()


@dataclass
class ScratchConfig:
    trains_inner_steps: ClassVar[bool] = False
    inner_lr: float = param(0.01, "Learning rate of the test-time fine-tuning SGD steps.", low=0.0, high=10.0,
                            low_inclusive=False)
    inner_steps: int = param(1, "Default number of fine-tuning steps at test time.", low=1, high=1000)
    meta_batch: int = param(25, "Tasks per batch on which the (untrained) loss is reported.", low=1, high=10_000)


@ALGORITHMS.register
class Scratch(MetaLearner):
    name = "scratch"
    title = "From scratch (random init + fine-tuning)"
    Config = ScratchConfig
    summary = "Baseline: no meta-training; fine-tune a random initialisation at test time."

    def setup(self, generator):
        self.optimizer = SGD(self.params, 0.0)  # never stepped: the initialisation stays random

    def meta_step(self, batch, iteration):
        with torch.no_grad():
            loss = self.query_loss(self.params, batch.xq, batch.yq)
        return {"loss": self.check_finite(loss)}
