"""Sinusoid regression (Finn et al. 2017, "Model-Agnostic Meta-Learning", section 5.1).

Task: y = A sin(x - φ), amplitude A ~ U[0.1, 5], phase φ ~ U[0, π], inputs x ~ U[-5, 5].
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from workbench.core.config import param
from workbench.core.errors import ConfigError
from workbench.core.registry import FAMILIES
from workbench.core.taskmap import MapParam

from .base import RegressionFamily


@dataclass
class SinusoidConfig:
    amp_min: float = param(0.1, "Smallest amplitude A.", low=0.0, high=1e4)
    amp_max: float = param(5.0, "Largest amplitude A.", low=0.0, high=1e4)
    phase_min: float = param(0.0, "Smallest phase φ (radians).", low=-100.0, high=100.0)
    phase_max: float = param(math.pi, "Largest phase φ (radians).", low=-100.0, high=100.0)
    x_min: float = param(-5.0, "Lower end of the input range.", low=-1e4, high=1e4)
    x_max: float = param(5.0, "Upper end of the input range.", low=-1e4, high=1e4)
    shots: int = param(10, "K: support points per task.", low=1, high=10_000)
    query: int = param(10, "Query points per training task.", low=1, high=10_000)
    eval_query: int = param(100, "Query points per held-out evaluation task.", low=1, high=100_000)

    def validate(self, where: str) -> None:
        for lo, hi in (("amp_min", "amp_max"), ("phase_min", "phase_max"), ("x_min", "x_max")):
            if getattr(self, lo) > getattr(self, hi):
                raise ConfigError(f"{where}: {lo} = {getattr(self, lo)!r} is above {hi} = {getattr(self, hi)!r}")


@FAMILIES.register
class Sinusoid(RegressionFamily):
    name = "sinusoid"
    title = "Sinusoid regression"
    Config = SinusoidConfig
    task_param_names = ("amplitude", "phase")

    def __init__(self, cfg):
        super().__init__(cfg)
        self._low = torch.tensor([cfg.amp_min, cfg.phase_min])
        self._width = torch.tensor([cfg.amp_max - cfg.amp_min, cfg.phase_max - cfg.phase_min])

    def sample_task_params(self, n, generator):
        return torch.addcmul(self._low, torch.rand(n, 2, generator=generator), self._width)

    def sample_inputs(self, n, m, generator):
        c = self.cfg
        return c.x_min + (c.x_max - c.x_min) * torch.rand(n, m, 1, generator=generator)

    def function(self, params, x):
        amp, phase = params[:, 0, None, None], params[:, 1, None, None]
        return amp * torch.sin(x - phase)

    def map_params(self):
        c = self.cfg
        return [MapParam.of_range("amplitude", "amplitude A", c.amp_min, c.amp_max, 0),
                MapParam("phase", "phase φ, rad", c.phase_min, c.phase_max, column=1)]  # periodic: no floor

    def input_grid(self, points=200):
        return torch.linspace(self.cfg.x_min, self.cfg.x_max, points).unsqueeze(-1)
