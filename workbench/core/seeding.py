"""Independent random streams: training tasks, the held-out set and fresh test tasks never coincide.

Each stream seeds its generator from a hash of (stream name, seed), so ``eval --seed 1`` draws different
tasks from training with ``run.seed = 1``, and no choice of seeds makes two streams line up.
"""
from __future__ import annotations

import hashlib

import torch

TRAIN, HELD_OUT, TEST, INIT = "train", "held-out", "test", "init"


def stream_seed(stream: str, seed: int) -> int:
    digest = hashlib.sha256(f"workbench:{stream}:{int(seed)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def generator(stream: str, seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(stream_seed(stream, seed))
