"""Baselines that every comparison includes.

* **pretrained**: one network trained jointly on all training tasks (multi-task learning on the family's
  loss, Adam),
  then plain SGD fine-tuning on the new task's support set at test time (MAML paper, section 5.1).
* **scratch**: a randomly initialised network, fine-tuned the same way; no meta-training at all.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from workbench.core.config import param
from workbench.core.optim import SGD, Adam
from workbench.core.registry import ALGORITHMS

from .base import MetaLearner


@dataclass
class PretrainedConfig:
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
        self.optimizer = Adam(self.params, self.cfg.outer_lr)

    def outer_loss(self, params, batch):
        x, y = torch.cat([batch.xs, batch.xq], 1), torch.cat([batch.ys, batch.yq], 1)
        return self.query_loss(params, x, y)


@dataclass
class ScratchConfig:
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
