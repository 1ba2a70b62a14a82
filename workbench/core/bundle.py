"""Model bundles: one ``.safetensors`` file holding the meta-learned weights, with a JSON document in
its header (format version, family, algorithm, model spec, adaptation hyperparameters including any
learned learning rates, training summary, workbench version).  Loading never unpickles anything.

    model = workbench.load_model("runs/maml-sinusoid/model.safetensors")
    adapted = model.adapt(x_support, y_support)      # numpy (K, 1) each; steps default to the trained ones
    y = adapted.predict(x)                           # numpy (Q, 1)
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import math
from pathlib import Path

import numpy as np
import torch

from . import seeding
from .adaptation import AdaptationRule, adaptation_curve, inner_step
from .evaluation import events_from, supervised_outcome
from .config import build_section
from .errors import BundleError, ConfigError
from .registry import FAMILIES
from .stats import mean_ci95
from .storage import UnreadableFile, load_tensors, save_tensors

FORMAT = "workbench-model"
FORMAT_VERSION = 1


def write_bundle(path: str | Path, learner, config, summary: dict) -> Path:
    if getattr(learner.family, "kind", "regression") == "rl":
        return _write_rl_bundle(path, learner, config, summary)
    rule: AdaptationRule = learner.adaptation_rule()
    tensors = {f"param.{i}": p for i, p in enumerate(learner.params)}
    per_param = not all(isinstance(lr, float) for lr in rule.lrs)
    if per_param:
        tensors.update({f"lr.{i}": torch.as_tensor(lr) for i, lr in enumerate(rule.lrs)})
    meta = {**_common_meta(config, learner, summary),
            "adaptation": {"first_layer": rule.first_layer, "steps": rule.steps,
                           "lr": "per-parameter" if per_param else rule.lrs[0]}}
    save_tensors(path, tensors, meta)
    return Path(path)


class AdaptedModel:
    """A network adapted to one task: ``predict(x)`` maps numpy (Q, in) to numpy (Q, out)."""

    def __init__(self, params: list[torch.Tensor], activation: str, in_dim: int):
        self._params, self._activation, self._in_dim = params, activation, in_dim

    def predict(self, x) -> np.ndarray:
        from workbench.models import mlp

        x = _as_input(x, self._in_dim, "x")
        with torch.no_grad():
            y = mlp.forward(self._params, x.unsqueeze(0), self._activation)[0]
        return y.numpy()


def _as_input(a, dim: int, name: str) -> torch.Tensor:
    arr = np.asarray(a, dtype=np.float32)
    if arr.ndim == 1 and dim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ValueError(f"{name} must have shape (N, {dim}), got {np.shape(a)}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return torch.from_numpy(arr)


class MetaModel(AdaptedModel):
    """A meta-learned model loaded from a bundle."""

    def __init__(self, path: Path, params, rule: AdaptationRule, meta: dict, family, spec):
        super().__init__(params, spec.activation, spec.in_dim)
        self.path, self.rule, self.meta, self.family, self.spec = path, rule, meta, family, spec

    @property
    def algorithm(self) -> str:
        return self.meta["algorithm"]

    @property
    def params(self) -> list[torch.Tensor]:
        return self._params

    def adapt(self, x_support, y_support, steps: int | None = None) -> AdaptedModel:
        """Adapt to a new task from its support set with the trained inner-loop rule."""
        xs = _as_input(x_support, self.spec.in_dim, "x_support")
        ys = _as_input(y_support, self.spec.out_dim, "y_support")
        if xs.shape[0] != ys.shape[0]:
            raise ValueError(f"x_support has {xs.shape[0]} rows but y_support has {ys.shape[0]}")
        if xs.shape[0] == 0:
            raise ValueError("the support set is empty")
        steps = self.rule.steps if steps is None else int(steps)
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        fast = self._params
        with torch.no_grad():
            for _ in range(steps):
                fast = inner_step(fast, self.rule, xs.unsqueeze(0), ys.unsqueeze(0))
        return AdaptedModel([p[0] if p.dim() > s.dim() else p for p, s in zip(fast, self._params)],
                            self._activation, self._in_dim)

    def evaluate(self, tasks: int = 100, seed: int = 0, steps=None, shots: int | None = None,
                 query: int | None = None) -> dict:
        """Mean query MSE ± 95% CI after each number of inner steps, on ``tasks`` fresh tasks."""
        steps = sorted(set(int(s) for s in (steps if steps is not None else (0, 1, 10))))
        batch = self.family.evaluation_batch(tasks, seed, shots=shots, query=query, stream=seeding.TEST)
        losses, _ = adaptation_curve(self._params, self.rule, batch.xs, batch.ys, batch.xq, batch.yq, max(steps))
        per_task = losses[:, steps].double().numpy()
        diverged = (~np.isfinite(per_task)).sum(0)
        mean, ci = mean_ci95(per_task)
        # A step at which some task's loss overflowed has no finite mean: reported as None (JSON null).
        mean = [None if d else float(m) for m, d in zip(mean, diverged)]
        ci = [None if d or not np.isfinite(c) else float(c) for c, d in zip(ci, diverged)]
        per_task = [[v if np.isfinite(v) else None for v in row] for row in per_task.tolist()]
        return {"metric": "mse", "steps": steps, "mean": mean, "ci95": ci, "tasks": tasks,
                "diverged": diverged.tolist(), "seed": seed, "shots": batch.xs.shape[1],
                "family": self.meta["family"], "algorithm": self.algorithm, "per_task": per_task}

    def evaluation_events(self, tasks: int = 100, seed: int = 0, steps: int | None = None, render_tasks: int = 4):
        """An :class:`Evaluation` (every step 0..S) and a :class:`Render` of fresh tasks, as the trainer emits."""
        steps = min(max(10, self.rule.steps), 100) if steps is None else steps
        batch = self.family.evaluation_batch(tasks, seed, stream=seeding.TEST)
        outcome = supervised_outcome(self._params, self.rule, self.family, batch, steps, render_tasks)
        return events_from(int(self.meta.get("training", {}).get("iterations", 0)), outcome)

    def to_onnx(self, path: str | Path) -> Path:
        from .onnx_export import write_onnx

        return write_onnx(path, [p.numpy() for p in self._params], self.spec)


def _common_meta(config, learner, summary) -> dict:
    from workbench import __version__

    return {"format": FORMAT, "format_version": FORMAT_VERSION, "workbench_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "family": config.family, "task": dataclasses.asdict(config.task), "algorithm": config.algorithm_name,
            "algorithm_config": dataclasses.asdict(config.algorithm), "model": learner.spec.to_dict(),
            "training": summary, "preset": dataclasses.asdict(config.meta)}


def _write_rl_bundle(path, learner, config, summary) -> Path:
    meta = {**_common_meta(config, learner, summary), "kind": "rl", "n_params": len(learner.params)}
    save_tensors(path, {f"param.{i}": p for i, p in enumerate(learner.params)}, meta)
    return Path(path)


class RLModel:
    """A meta-RL policy loaded from a bundle: it adapts from trajectories it collects itself."""

    def __init__(self, path: Path, meta: dict, learner, family):
        self.path, self.meta, self.learner, self.family = path, meta, learner, family
        self.spec = learner.spec

    @property
    def algorithm(self) -> str:
        return self.meta["algorithm"]

    @property
    def params(self) -> list[torch.Tensor]:
        return self.learner.params

    def adapt(self, *args, **kwargs):
        raise BundleError(f"{self.path}: a {self.meta['family']} policy adapts from the trajectories it collects; "
                          f"use evaluate() (or `workbench eval`)")

    predict = adapt

    def evaluate(self, tasks: int = 100, seed: int = 0, steps=None, shots=None, query=None) -> dict:
        if steps is None:  # RL²: every episode of the trial; gradient-based: before and after the trained steps
            steps = self.learner.default_eval_steps()
        steps = sorted(set(int(s) for s in steps))
        batch = self.family.evaluation_batch(tasks, seed, stream=seeding.TEST)
        outcome = self.learner.evaluate(self.family, batch, max(steps), 0)
        if max(steps) > outcome.steps[-1]:
            raise ConfigError(f"--steps {','.join(map(str, steps))}: the adaptation curve of this "
                              f"{self.algorithm} model runs over 0..{outcome.steps[-1]} ({outcome.step_label})")
        per_task = np.asarray(outcome.per_task)[:, steps]
        mean, ci = mean_ci95(per_task)
        ci = [None if not np.isfinite(c) else float(c) for c in ci]
        return {"metric": outcome.metric, "steps": steps, "mean": [float(m) for m in mean], "ci95": ci,
                "tasks": tasks, "diverged": [0] * len(steps), "seed": seed, "shots": None,
                "family": self.meta["family"], "algorithm": self.algorithm, "per_task": per_task.tolist(),
                "references": outcome.references}

    def evaluation_events(self, tasks: int = 100, seed: int = 0, steps: int | None = None, render_tasks: int = 4):
        steps = max(3, *self.learner.default_eval_steps()) if steps is None else steps
        batch = self.family.evaluation_batch(tasks, seed, stream=seeding.TEST)
        outcome = self.learner.evaluate(self.family, batch, steps, render_tasks)
        return events_from(int(self.meta.get("training", {}).get("iterations", 0)), outcome)

    def to_onnx(self, path: str | Path) -> Path:
        from .onnx_export import write_onnx

        policy = getattr(self.learner, "policy", None)
        spec = getattr(policy, "spec", None)
        if spec is None:
            raise BundleError(f"{self.path}: ONNX export covers MLP policies (MAML-TRPO and its baselines); a "
                              f"{self.algorithm} model is not exportable to ONNX")
        n = 2 * spec.n_layers
        return write_onnx(path, [p.detach().numpy() for p in self.learner.params[:n]], spec)


def _load_rl(path: Path, tensors: dict, meta: dict) -> RLModel:
    from workbench.core.registry import ALGORITHMS
    from workbench.models.mlp import MLPSpec

    try:
        family_cls = FAMILIES.get(meta["family"])
        family = family_cls(build_section(family_cls.Config, meta["task"], "task"))
        algo_cls = ALGORITHMS.get(meta["algorithm"])
        cfg = build_section(algo_cls.Config, meta["algorithm_config"], "algorithm")
        spec = MLPSpec.from_dict(meta["model"])
        learner = algo_cls(cfg, spec, torch.device("cpu"), torch.Generator().manual_seed(0), 1, family=family)
        if len(learner.params) != int(meta["n_params"]):
            raise BundleError(f"{path}: the bundle has {meta['n_params']} parameters, the policy {len(learner.params)}")
        with torch.no_grad():
            for i, p in enumerate(learner.params):
                t = tensors[f"param.{i}"]
                if t.shape != p.shape or not torch.isfinite(t).all():
                    raise BundleError(f"{path}: param.{i} must be finite with shape {tuple(p.shape)}")
                p.copy_(t)
    except ConfigError as e:
        raise BundleError(f"{path}: incompatible bundle: {e}") from None
    except (KeyError, TypeError, ValueError) as e:
        raise BundleError(f"{path}: incomplete or corrupt bundle metadata ({type(e).__name__}: {e})") from None
    return RLModel(path, meta, learner, family)


def load_bundle(path: str | Path) -> MetaModel | RLModel:
    path = Path(path)
    if path.is_dir() and (path / "model.safetensors").is_file():
        path = path / "model.safetensors"  # a run directory
    try:
        tensors, meta = load_tensors(path)
    except UnreadableFile as e:
        raise BundleError(f"{path}: cannot load model bundle: {e}") from None
    if meta.get("format") != FORMAT:
        raise BundleError(f"{path}: not a workbench model bundle (format {meta.get('format')!r})")
    version = meta.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise BundleError(f"{path}: bundle format version {version!r} is not valid")
    if version > FORMAT_VERSION:
        raise BundleError(f"{path}: bundle format version {version!r} is newer than this workbench supports "
                          f"({FORMAT_VERSION}); upgrade the workbench")
    if meta.get("kind") == "rl":
        return _load_rl(path, tensors, meta)
    from workbench.models.mlp import MLPSpec

    try:
        family_cls = FAMILIES.get(meta["family"])
        family = family_cls(build_section(family_cls.Config, meta["task"], "task"))
        spec = MLPSpec.from_dict(meta["model"])
        if spec.activation not in ("relu", "tanh"):
            raise BundleError(f"{path}: unknown activation {spec.activation!r} in the model spec")
        if (spec.in_dim, spec.out_dim) != (family.in_dim, family.out_dim) or min(spec.hidden, default=1) < 1:
            raise BundleError(f"{path}: model spec {spec.to_dict()} does not fit family {family.name!r}")
        ad = meta["adaptation"]
        n = 2 * spec.n_layers
        params = [tensors[f"param.{i}"].float() for i in range(n)]
        for i, (p, shape) in enumerate(zip(params, spec.param_shapes())):
            if tuple(p.shape) != tuple(shape):
                raise BundleError(f"{path}: param.{i} has shape {tuple(p.shape)}, the model spec says {shape}")
            if not torch.isfinite(p).all():
                raise BundleError(f"{path}: param.{i} holds NaN or infinite weights")
        first, steps = int(ad["first_layer"]), int(ad["steps"])
        if not 0 <= first < spec.n_layers:
            raise BundleError(f"{path}: adaptation.first_layer = {first} but the model has {spec.n_layers} layers")
        if steps < 0:
            raise BundleError(f"{path}: adaptation.steps = {steps} is negative")
        k = 2 * first
        if ad["lr"] == "per-parameter":
            lrs = [tensors[f"lr.{i}"].float() for i in range(n - k)]
            for i, (lr, p) in enumerate(zip(lrs, params[k:])):
                if lr.shape != p.shape or not torch.isfinite(lr).all():
                    raise BundleError(f"{path}: lr.{i} must be finite with the shape of its parameter "
                                      f"{tuple(p.shape)}, got {tuple(lr.shape)}")
        else:
            lr = float(ad["lr"])
            if not math.isfinite(lr):
                raise BundleError(f"{path}: adaptation.lr = {ad['lr']!r} is not a finite number")
            lrs = [lr] * (n - k)
        rule = AdaptationRule(lrs, first, steps, spec.activation)
    except ConfigError as e:
        raise BundleError(f"{path}: incompatible bundle: {e}") from None
    except (KeyError, TypeError, ValueError) as e:
        raise BundleError(f"{path}: incomplete or corrupt bundle metadata ({type(e).__name__}: {e})") from None
    return MetaModel(path, params, rule, meta, family, spec)
