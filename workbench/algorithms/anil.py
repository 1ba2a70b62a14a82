"""ANIL, "Almost No Inner Loop" (Raghu, Raghu, Bengio & Vinyals 2020): MAML whose inner loop adapts
only the network's head; the body is a feature extractor learned in the outer loop only.  The head is the
network's last layer with parameters, or the submodule that ``[model] head`` names.

    θ = (θ_body, θ_head)
    θ'_head,i = θ_head − α ∇_{θ_head} L_{T_i}(f_{θ_body, θ_head})
    θ ← θ − β ∇_θ Σ_i L_{T_i}(f_{θ_body, θ'_head,i})
"""
from __future__ import annotations

from workbench.core.adaptation import AdaptationRule
from workbench.core.registry import ALGORITHMS

from .maml import MAML, MAMLConfig


@ALGORITHMS.register
class ANIL(MAML):
    name = "anil"
    title = "ANIL"
    Config = MAMLConfig
    summary = "MAML with an inner loop over the head only."

    def adaptation_rule(self):
        first = self.network.head_start
        return AdaptationRule([float(self.cfg.inner_lr)] * (len(self.params) - first), first, self.cfg.inner_steps,
                              self.loss)
