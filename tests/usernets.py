"""Networks a user might write, imported by tests through the [model] table's ``module`` key, and a tiny
image-classification family for the engine's cross-entropy path (registered by the tests that use it)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from workbench.core import seeding
from workbench.core.config import param
from workbench.tasks.base import SupervisedFamily, TaskBatch


class SineNet(nn.Module):
    """x (N, 1) -> (N, 1): a residual MLP of the user's own (not the workbench's MLP)."""

    def __init__(self, width: int = 32, outputs: int = 1):
        super().__init__()
        self.inp = nn.Linear(1, width)
        self.mid = nn.Linear(width, width)
        self.out = nn.Linear(width, outputs)

    def forward(self, x):
        h = torch.relu(self.inp(x))
        h = h + torch.relu(self.mid(h))
        return self.out(h)


class BatchNormNet(nn.Module):
    """A small conv classifier whose batch norm keeps running statistics by default (as users write it):
    the engine must normalise every task with its own statistics anyway."""

    def __init__(self, ways: int = 3, channels: int = 4):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(),
                                  nn.MaxPool2d(2), nn.Flatten())
        self.classifier = nn.Linear(channels * 8 * 8, ways)

    def forward(self, x):
        return self.classifier(self.body(x))


class NotAModule:
    pass


@dataclass
class ToyImagesConfig:
    ways: int = param(3, "N: classes per task.", low=2, high=20)
    shots: int = param(2, "K: support images per class.", low=1, high=100)
    query: int = param(3, "Query images per class.", low=1, high=100)
    eval_query: int = param(3, "Query images per class of a held-out task.", low=1, high=100)
    noise: float = param(0.5, "Pixel noise around each class's prototype.", low=0.0, high=10.0)


class ToyImages(SupervisedFamily):
    """N-way K-shot classification of 1×16×16 images: each task draws N random prototype images; an image
    of a class is its prototype plus Gaussian noise.  Labels are 0..N-1 in every task."""

    name = "toy-images"
    title = "Toy images (tests)"
    Config = ToyImagesConfig
    kind = "classification"
    loss = "cross_entropy"
    metric = "accuracy"

    def __init__(self, cfg):
        super().__init__(cfg)
        self.out_dim = cfg.ways

    @property
    def in_shape(self):
        return (1, 16, 16)

    def _batch(self, n, g, query):
        c = self.cfg
        protos = torch.randn(n, c.ways, 1, 16, 16, generator=g)

        def draw(k):
            labels = torch.arange(c.ways).repeat_interleave(k)
            x = protos[:, labels] + c.noise * torch.randn(n, len(labels), 1, 16, 16, generator=g)
            return x, labels.expand(n, -1).clone()

        xs, ys = draw(c.shots)
        xq, yq = draw(query)
        return TaskBatch(protos.flatten(1)[:, :2], xs, ys, xq, yq)

    def sample_batch(self, n, generator):
        return self._batch(n, generator, self.cfg.query)

    def evaluation_batch(self, n, seed, shots=None, query=None, stream=seeding.HELD_OUT):
        return self._batch(n, seeding.generator(stream, seed), self.cfg.eval_query if query is None else query)


class Unused(nn.Module):
    """A module with a parameter its forward never uses (an auxiliary head): its gradient is zero."""

    def __init__(self):
        super().__init__()
        self.aux = nn.Linear(1, 3)
        self.body = nn.Linear(1, 16)
        self.out = nn.Linear(16, 1)

    def forward(self, x):
        return self.out(torch.relu(self.body(x)))


class Tied(nn.Module):
    """Two layers sharing one weight (a tied parameter is meta-learned once)."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(8, 8)
        self.inp = nn.Linear(1, 8)
        self.b = nn.Linear(8, 8)
        self.b.weight = self.a.weight
        self.out = nn.Linear(8, 1)

    def forward(self, x):
        h = torch.relu(self.inp(x))
        return self.out(torch.relu(self.b(torch.relu(self.a(h)))))


class Branchy(nn.Module):
    """Data-dependent control flow, which tasks batched by torch.func.vmap cannot run."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(1, 1)

    def forward(self, x):
        return self.lin(x) if x.sum() > 0 else -self.lin(x)


class Pair(nn.Module):
    """Returns a tuple, not a tensor."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(1, 1)

    def forward(self, x):
        return self.lin(x), x
