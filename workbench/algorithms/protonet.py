"""Prototypical Networks (Snell, Swersky & Zemel 2017, "Prototypical Networks for Few-shot Learning").

An embedding network f_φ maps images to vectors; a task's classes are represented by their *prototypes*,
the mean embedding of each class's support images, and a query image is classified by a softmax over
the negative squared Euclidean distances to the prototypes (the paper's equations 1–2):

    c_k = 1/|S_k| Σ_{(x, y) ∈ S_k} f_φ(x)
    p_φ(y = k | x) = softmax_k(−‖f_φ(x) − c_k‖²)

Training minimises the query cross-entropy of episodes by Adam (the paper: one episode per update, lr
10⁻³ halved every 2,000 episodes) and, as the paper found best, with more ways than testing (Omniglot:
60-way training for 5-way tests; ``train_ways``).  There are no inner steps: adaptation to a new task is
computing its prototypes, so the adaptation curve has one point, "prototypes of the support set".

The network is the model registry's embedding (``conv4`` without its head: the paper's four 64-filter
blocks give a 64-d embedding of a 28×28 image), or a user's module whose output is the embedding.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from workbench.core.adaptation import AdaptationRule, distance_logits, prototypes
from workbench.core.config import param
from workbench.core.learner import Learner
from workbench.core.optim import Adam
from workbench.core.registry import ALGORITHMS, FamiliesOfKind


@dataclass
class ProtoNetConfig:
    train_ways: int = param(0, "N of the training episodes; 0: the task's ways (Snell et al. train Omniglot "
                               "with 60 ways for 5-way tests).", low=0, high=10_000)
    meta_batch: int = param(1, "Episodes per update (the paper: 1).", low=1, high=10_000)
    outer_lr: float = param(1e-3, "Adam learning rate.", low=0.0, high=10.0, low_inclusive=False)
    lr_halving: int = param(2000, "Halve the learning rate every N iterations (the paper: 2,000 episodes); "
                                  "0: never.", low=0, high=10_000_000)


@ALGORITHMS.register
class ProtoNet(Learner):
    name = "protonet"
    title = "Prototypical Networks"
    Config = ProtoNetConfig
    families = FamiliesOfKind("classification")
    summary = "Classify by the distance to each class's mean embedding; no inner loop."
    eval_metric = "accuracy"
    step_label = "prototypes, no inner steps"

    def __init__(self, cfg, model, device, generator, total_iterations, family=None):
        super().__init__(cfg, model, device, generator, total_iterations, family=family)
        if family is not None and cfg.train_ways and cfg.train_ways > family.classes(family.background):
            from workbench.core.errors import ConfigError

            raise ConfigError(f"[algorithm] train_ways = {cfg.train_ways}: the {family.name} family has "
                              f"{family.classes(family.background)} training classes (rotations included)")
        self.network = model
        self.params = [p.requires_grad_() for p in model.init(generator, device)]
        self.optimizer = Adam(self.params, cfg.outer_lr)

    @classmethod
    def make_model(cls, model_config, family, where="[model]"):
        from workbench.core.errors import ConfigError
        from workbench.models.zoo import build_network

        if family.kind != "classification":
            raise ConfigError(f"{where}: protonet needs a classification family, {family.name!r} is {family.kind}")
        return build_network(model_config, family.in_shape, None, "cross_entropy", where)  # an embedding

    # -- training ------------------------------------------------------------------------------------
    def training_batch(self, family, n, generator):
        ways = self.cfg.train_ways or family.cfg.ways
        return family.tasks(family.background, n, family.cfg.shots, family.cfg.query, generator, ways=ways)

    def logits(self, params, xs, ys, xq, ways: int) -> torch.Tensor:
        """The query logits (B, Q, ways) of tasks with support (xs, ys) and queries xq."""
        return distance_logits(self.network.forward(params, xq),
                               prototypes(self.network.forward(params, xs), ys, ways))

    def meta_step(self, batch, iteration):
        ways = int(batch.params.shape[1])

        def episode_loss(part):  # the query cross-entropy of the distance logits (Snell et al., eq. 2)
            logits = self.logits(self.params, part.xs, part.ys, part.xq, ways)
            return torch.nn.functional.cross_entropy(logits.reshape(-1, ways), part.yq.reshape(-1))

        total, grads = self.chunked_gradient(batch, self.network.chunks(len(batch)), episode_loss)
        halvings = iteration // self.cfg.lr_halving if self.cfg.lr_halving else 0
        return {"loss": self.apply_gradient(total, grads, self.optimizer, self.cfg.outer_lr * 0.5 ** halvings)}

    # -- evaluation and adaptation -------------------------------------------------------------------
    def adaptation_rule(self) -> AdaptationRule:
        """No inner steps: a task's classifier is the distance to its support set's prototypes."""
        return AdaptationRule([], len(self.params), 0, "cross_entropy", kind="prototypes")

    def default_eval_steps(self) -> list[int]:
        return [0]

    def evaluate(self, family, batch, steps, render_tasks, cancel=None):
        from workbench.core.evaluation import supervised_outcome

        outcome = supervised_outcome(self.network, self.params, self.adaptation_rule(), family, batch, 0,
                                     render_tasks, cancel)
        if outcome.payload is not None:
            outcome.payload.step_names = ["prototypes"]
        return outcome

    def adapt(self, xs, ys, steps=None) -> torch.Tensor:
        """The prototypes of each task's support set: ``xs`` (B, M, *in_shape), ``ys`` (B, M) labels ->
        (B, N, D) with N = 1 + the largest label.  ``steps`` is ignored (there is no inner loop)."""
        with torch.no_grad():
            params = [p.detach() for p in self.params]
            return prototypes(self.network.forward(params, xs), ys, int(ys.max()) + 1)
