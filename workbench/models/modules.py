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
    """3×3 convolution (padding 1), batch norm over the batch's own statistics, ReLU, 2×2 max-pool.

    Computed as pool-then-ReLU: max-pooling commutes with the (monotone) ReLU, so the function is the
    same and the ReLU and its backward run on a quarter of the values.  Feature maps are channels-last
    (a memory layout only: the values are the same)."""

    def __init__(self, in_channels: int, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.norm = nn.BatchNorm2d(channels, track_running_stats=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if not torch._C._functorch.is_batchedtensor(y):
            # channels-last from the first block on (the following convolutions keep it): on a CPU, max-pooling
            # an NCHW map was a quarter of a MAML step; benchmarks/maml_conv.py measured the step ~15% faster
            y = y.contiguous(memory_format=torch.channels_last)
        return torch.relu(F.max_pool2d(self.norm(y), 2))


class Conv4(nn.Module):
    """x (N, C, H, W) -> logits (N, out_dim). ``head`` is the linear classifier (what ANIL adapts)."""

    def __init__(self, in_shape=(1, 28, 28), out_dim: int = 5, channels: int = 64):
        super().__init__()
        c, h, w = (int(v) for v in in_shape)
        self.features = nn.Sequential(*(ConvBlock(c if i == 0 else channels, channels) for i in range(4)),
                                      nn.Flatten())
        for _ in range(4):
            h, w = h // 2, w // 2
        if h < 1 or w < 1:
            raise ValueError(f"conv4 needs images of at least 16×16 pixels, got {in_shape[1]}×{in_shape[2]}")
        self.head = nn.Linear(channels * h * w, int(out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
