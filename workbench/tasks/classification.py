"""N-way K-shot image classification: the task sampling every image family shares.

A family of this kind has two disjoint pools of classes (:class:`ImagePool`): *background* classes, which
meta-training samples its tasks from, and *evaluation* classes, which every held-out evaluation uses and
training never sees (Lake et al. 2015's Omniglot split; Vinyals et al. 2016's protocol).  A task draws N
distinct classes of one pool ("ways"), and K support plus Q query images of each ("shots"); its labels are
0..N-1 in the order the classes were drawn, so a class has a different label in every task.

Task augmentation by rotation (Santoro et al. 2016; Vinyals et al. 2016; Snell et al. 2017): with
``rotations = true`` every class rotated by 90°, 180° and 270° is a class of its own, in both pools, which
multiplies the classes by four.

Batches: ``xs`` (B, N·K, C, H, W) and ``xq`` (B, N·Q, C, H, W) float32 in [0, 1], class-major (the K support
images of label 0 first); ``ys`` (B, N·K) and ``yq`` (B, N·Q) int64 labels; ``params`` (B, N) int64, the
pool's class index of each label (with rotations: base class × 4 + quarter turns).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from workbench.core import seeding
from workbench.core.config import param
from workbench.core.errors import ConfigError
from workbench.core.payloads import ClassifiedImages
from workbench.core.taskmap import MapParam

from .base import SupervisedFamily, TaskBatch

ROTATIONS = 4  # quarter turns: 0°, 90°, 180°, 270°


@dataclass
class NWayKShotConfig:
    """The ``[task]`` keys every image family shares (its own Config adds the data set's)."""
    ways: int = param(5, "N: classes per task.", low=2, high=100)
    shots: int = param(1, "K: support images per class.", low=1, high=100)
    query: int = param(5, "Query images per class of a training task.", low=1, high=100)
    eval_query: int = param(15, "Query images per class of a held-out task.", low=1, high=100)
    rotations: bool = param(True, "Rotations by 90°, 180° and 270° are classes of their own (four times the "
                                  "classes, both pools).")


class ImagePool:
    """The classes of one split and their images.  Subclasses set ``n_classes``, ``image_shape`` (C, H, W),
    ``per_class`` (an int64 tensor (n_classes,): images of each class) and implement :meth:`images`."""

    n_classes: int
    image_shape: tuple[int, int, int]
    per_class: torch.Tensor

    def images(self, classes: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Image ``index[i]`` of class ``classes[i]`` (both int64 (M,)): (M, C, H, W) float32 in [0, 1]."""
        raise NotImplementedError

    def class_name(self, c: int) -> str:
        return f"class {c}"


class ClassificationFamily(SupervisedFamily):
    """N-way K-shot classification over two :class:`ImagePool` s (see the module docstring).  The Config
    is a :class:`NWayKShotConfig`; a subclass builds the pools in :meth:`pools`."""

    kind: ClassVar[str] = "classification"
    loss: ClassVar[str] = "cross_entropy"
    metric: ClassVar[str] = "accuracy"
    payload: ClassVar[type] = ClassifiedImages
    task_param_names: ClassVar[tuple[str, ...]] = ()  # a task is its classes (params: class indices)

    def __init__(self, cfg):
        super().__init__(cfg)
        self.out_dim = cfg.ways
        self.background, self.evaluation = self.pools()

    def pools(self) -> tuple[ImagePool, ImagePool]:
        """(background, evaluation): the disjoint pools of classes training and evaluation draw from."""
        raise NotImplementedError

    @property
    def in_shape(self) -> tuple[int, ...]:
        return tuple(self.background.image_shape)

    @property
    def shots(self) -> int:
        return self.cfg.shots

    def classes(self, pool: ImagePool) -> int:
        """Classes a task can draw from ``pool`` (rotations included)."""
        return pool.n_classes * (ROTATIONS if self.cfg.rotations else 1)

    # -- sampling ------------------------------------------------------------------------------------
    def sample_batch(self, n: int, generator: torch.Generator) -> TaskBatch:
        return self.tasks(self.background, n, self.cfg.shots, self.cfg.query, generator)

    def map_params(self) -> list[MapParam]:
        """Shots (support images per class) from 1 to three times the trained number (at least 5), as far
        as the evaluation classes have images for them besides the queries."""
        c = self.cfg
        room = int(self.evaluation.per_class.min()) - c.eval_query
        top = max(1, min(max(5, 3 * c.shots), room))
        return [MapParam("shots", "shots (support images per class)", float(c.shots), float(c.shots), 1.0,
                         float(top), integer=True)]

    def evaluation_batch(self, n: int, seed: int, shots: int | None = None, query: int | None = None,
                         stream: str = seeding.HELD_OUT) -> TaskBatch:
        """``n`` tasks of the evaluation classes from a seeded stream that training never uses."""
        return self.tasks(self.evaluation, n, self.cfg.shots if shots is None else shots,
                          self.cfg.eval_query if query is None else query, seeding.generator(stream, seed))

    def tasks(self, pool: ImagePool, n: int, shots: int, query: int, generator: torch.Generator,
              ways: int | None = None) -> TaskBatch:
        """``n`` N-way tasks of ``pool`` with ``shots`` support and ``query`` query images per class (N:
        ``ways``, by default the configured ``ways``)."""
        ways, turns = ways or self.cfg.ways, ROTATIONS if self.cfg.rotations else 1
        total = pool.n_classes * turns
        if ways > total:
            raise ConfigError(f"{ways}-way tasks need {ways} classes; this pool has {total}")
        # N distinct classes per task: the first N of a random permutation (the order gives the labels)
        classes = torch.rand(n, total, generator=generator).argsort(-1)[:, :ways]  # (n, N)
        base = classes // turns
        per = shots + query
        counts = pool.per_class[base]  # (n, N) images available
        if int(counts.min()) < per:
            raise ConfigError(f"{shots}-shot tasks with {query} queries need {per} images per class; "
                             f"{pool.class_name(int(base.flatten()[counts.flatten().argmin()]))} has {int(counts.min())}")
        # K + Q distinct images per class: the first ones of a random order of that class's images
        keys = torch.rand(n, ways, int(counts.max()), generator=generator)
        keys = keys.masked_fill(torch.arange(keys.shape[-1]) >= counts.unsqueeze(-1), 2.0)
        index = keys.argsort(-1)[..., :per]  # (n, N, K+Q)
        flat_classes = base.unsqueeze(-1).expand(-1, -1, per).reshape(-1)
        images = pool.images(flat_classes, index.reshape(-1))  # (n·N·(K+Q), C, H, W)
        if turns > 1:
            images = _rotate(images, (classes % turns).unsqueeze(-1).expand(-1, -1, per).reshape(-1))
        images = images.view(n, ways, per, *images.shape[1:])
        labels = torch.arange(ways)
        xs = images[:, :, :shots].reshape(n, ways * shots, *images.shape[3:])
        xq = images[:, :, shots:].reshape(n, ways * query, *images.shape[3:])
        ys = labels.repeat_interleave(shots).expand(n, -1).contiguous()
        yq = labels.repeat_interleave(query).expand(n, -1).contiguous()
        return TaskBatch(classes, xs, ys, xq, yq)

    def class_names(self, classes: torch.Tensor, pool: ImagePool | None = None) -> list[str]:
        """A name for each class index (N,) of ``pool`` (default: the evaluation pool, what views show):
        the pool's name of the class, and its quarter turns ("glyph 4123 ↻90°")."""
        pool = self.evaluation if pool is None else pool
        turns = ROTATIONS if self.cfg.rotations else 1
        return [pool.class_name(int(c) // turns) + (f" ↻{90 * (int(c) % turns)}°" if int(c) % turns else "")
                for c in classes.tolist()]

    # -- the rollout view ------------------------------------------------------------------------------
    def render_inputs(self, batch: TaskBatch) -> torch.Tensor:
        """What the rollout view shows predictions on: the query images (T, N·Q, C, H, W)."""
        return batch.xq

    def render(self, batch: TaskBatch, preds: torch.Tensor, grid: torch.Tensor, steps: list[int]) -> ClassifiedImages:
        """``preds`` (T, S+1, N·Q, N): the logits on the query images after each step."""
        ways, shots = self.cfg.ways, batch.xs.shape[1] // self.cfg.ways
        t = len(batch)
        prob = torch.softmax(preds.float(), -1)
        p, predicted = prob.max(-1)  # (T, S+1, Q)
        truth = batch.yq
        confusion = torch.zeros(len(steps), ways, ways, dtype=torch.int64)
        for s in range(len(steps)):
            confusion[s].index_put_((truth.reshape(-1), predicted[:, s].reshape(-1)),
                                    torch.ones(truth.numel(), dtype=torch.int64), accumulate=True)

        def pixels(x: torch.Tensor) -> np.ndarray:  # (..., C, H, W) -> (..., H, W) or (..., H, W, 3)
            x = x.detach().float().cpu()
            x = x[..., 0, :, :] if x.shape[-3] == 1 else x.movedim(-3, -1)
            return x.numpy().copy()

        support = pixels(batch.xs.reshape(t, ways, shots, *batch.xs.shape[2:]))
        names = [self.class_names(row) for row in batch.params.cpu()]
        return ClassifiedImages(family=self.name, steps=list(steps), support=support, query=pixels(batch.xq),
                                query_labels=truth.cpu().numpy().copy(), predicted=predicted.cpu().numpy().copy(),
                                probability=p.cpu().numpy().astype(np.float32),
                                accuracy=(predicted == truth.unsqueeze(1)).double().mean(-1).cpu().numpy(),
                                confusion=confusion.numpy(),
                                class_names=names)


def _rotate(images: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Each image (M, C, H, W) rotated by ``turns`` (M,) quarter turns counter-clockwise (square images)."""
    out = images.clone()
    for k in (1, 2, 3):
        sel = (turns == k).nonzero().squeeze(-1)
        if len(sel):
            out[sel] = torch.rot90(images[sel], k, (-2, -1))
    return out
