"""The built-in networks as ``torch.nn.Module`` s (for the general, functional path and for users).

* :class:`MLP` — the MLP of :mod:`workbench.models.mlp` as a module, with the same parameter layout
  (``layer{i}.weight`` of shape (in, out), ``layer{i}.bias`` (out,)), so the fast kernel and the general
  path run on the very same tensors.
* :class:`Conv4` — the few-shot standard (Vinyals et al. 2016; Finn et al. 2017, section 5.2): four blocks
  of [3×3 convolution with ``channels`` filters, batch norm, ReLU, 2×2 max-pool], then a linear head.
  Batch norm normalises with the current batch's statistics only (no running statistics), as MAML's
  reference code does, so statistics never cross tasks.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class MLP(nn.Module):
    """x (N, in) -> (N, out): Linear layers with ``activation`` ("relu" or "tanh") between them."""

    def __init__(self, in_dim: int, out_dim: int, hidden=(40, 40), activation: str = "relu"):
        super().__init__()
        if activation not in ("relu", "tanh"):
            raise ValueError(f"activation must be 'relu' or 'tanh', got {activation!r}")
        sizes = [int(in_dim), *map(int, hidden), int(out_dim)]
        self.activation = activation
        self.layers = nn.ModuleList()
        for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
            layer = nn.Module()
            bound = 1.0 / math.sqrt(a)  # nn.Linear's default initialisation
            layer.weight = nn.Parameter(torch.empty(a, b).uniform_(-bound, bound))
            layer.bias = nn.Parameter(torch.empty(b).uniform_(-bound, bound))
            self.layers.append(layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = torch.addmm(layer.bias, x, layer.weight) if x.dim() == 2 else x @ layer.weight + layer.bias
            if i < len(self.layers) - 1:
                x = torch.relu(x) if self.activation == "relu" else torch.tanh(x)
        return x


class ConvBlock(nn.Module):
    """3×3 convolution (padding 1), batch norm over the batch's own statistics, ReLU, and a halving of the
    feature map: 2×2 max-pooling (``downsample = "maxpool"``, Vinyals et al. 2016's block) or a stride-2
    convolution (``"stride"``, the MAML paper's Omniglot network: a quarter of the convolution's work).

    Max-pooling is computed as pool-then-ReLU: it commutes with the (monotone) ReLU, so the function is the
    same and the ReLU and its backward run on a quarter of the values.  Feature maps are channels-last
    (a memory layout only: the values are the same)."""

    def __init__(self, in_channels: int, channels: int, downsample: str = "maxpool"):
        super().__init__()
        self.pool = downsample == "maxpool"
        self.conv = nn.Conv2d(in_channels, channels, 3, padding=1, stride=1 if self.pool else 2)
        self.norm = nn.BatchNorm2d(channels, track_running_stats=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if not torch._C._functorch.is_batchedtensor(y):
            # channels-last from the first block on (the following convolutions keep it): on a CPU, max-pooling
            # an NCHW map was a quarter of a MAML step; benchmarks/maml_conv.py measured the step ~15% faster
            y = y.contiguous(memory_format=torch.channels_last)
        y = self.norm(y)
        return torch.relu(F.max_pool2d(y, 2) if self.pool else y)


class Conv4(nn.Module):
    """x (N, C, H, W) -> logits (N, out_dim): four :class:`ConvBlock` s, flattened, then ``head``, the linear
    classifier (what ANIL adapts).  With ``out_dim = 0`` there is no head and the output is the flattened
    feature map, an embedding of :attr:`feature_dim` values (Prototypical Networks).  With stride-2
    blocks the last map is averaged over its pixels, as the MAML paper's code does for Omniglot."""

    def __init__(self, in_shape=(1, 28, 28), out_dim: int = 5, channels: int = 64, downsample: str = "maxpool"):
        super().__init__()
        c, h, w = (int(v) for v in in_shape)
        blocks = [ConvBlock(c if i == 0 else channels, channels, downsample) for i in range(4)]
        for _ in range(4):
            h, w = (h // 2, w // 2) if downsample == "maxpool" else ((h + 1) // 2, (w + 1) // 2)
        if h < 1 or w < 1:
            raise ValueError(f"conv4 needs images of at least 16×16 pixels, got {in_shape[1]}×{in_shape[2]}")
        if downsample != "maxpool":
            blocks.append(SpatialMean())
            h = w = 1
        self.features = nn.Sequential(*blocks, nn.Flatten())
        self.feature_dim = channels * h * w
        self.head = nn.Linear(self.feature_dim, int(out_dim)) if out_dim else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class SpatialMean(nn.Module):
    """(N, C, H, W) -> (N, C, 1, 1): the mean over the pixels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((-2, -1), keepdim=True)
