"""Model bundles: one ``.safetensors`` file holding the meta-learned weights, with a JSON document in
its header (format version, family, algorithm, the network's ``[model]`` table and parameter names,
adaptation hyperparameters including any learned learning rates, training summary, workbench version).
Loading never unpickles anything.  A bundle of a user's own ``nn.Module`` records its import path and
constructor kwargs; loading it imports that module and builds it with those kwargs (and says which module
it needs when it does not import) — that is running code the bundle names, so load such bundles as you
would run that code: from sources you trust.

    model = workbench.load_model("runs/maml-sinusoid/model.safetensors")
    adapted = model.adapt(x_support, y_support)      # numpy (K, *in_shape) and (K, out) / (K,) labels
    y = adapted.predict(x)                           # numpy (Q, out): predictions, or logits of the classes
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import math
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from workbench.core import seeding

from . import budget
from .rundir import BUNDLE
from workbench.core.adaptation import AdaptationRule, adaptation_curve, distance_logits, inner_step, prototypes
from workbench.core.evaluation import events_from, supervised_outcome
from workbench.core.config import build_section
from workbench.core.errors import AdaptationDiverged, BundleError, ConfigError
from workbench.core.family import KINDS
from workbench.core.registry import FAMILIES
from workbench.core.stats import divergence, mean_ci95
from workbench.core.storage import MAX_TENSOR_BYTES, UnreadableFile, load_tensors, save_tensors

FORMAT = "workbench-model"
FORMAT_VERSION = 2  # 2: any network ([model] table + parameter names), adaptation.first is a parameter index
# Bounds on what a bundle (or a caller) may ask for: checked before anything is allocated or looped over.
MAX_ADAPT_STEPS = 10_000  # inner steps of adapt() / evaluate(), and adaptation.steps (as `workbench eval --steps`)
MAX_EVAL_TASKS = 100_000  # as `workbench eval --tasks`
MAX_POINTS = 10_000  # shots / query points per task (as `workbench eval --shots`)
MAX_HIDDEN_LAYERS = 100
MAX_TENSORS = 100_000


def write_bundle(path: str | Path, learner, config, summary: dict) -> Path:
    if learner.family.kind == "rl":
        return _write_rl_bundle(path, learner, config, summary)
    rule: AdaptationRule = learner.adaptation_rule()
    net = learner.network
    tensors = {f"param.{i}": p for i, p in enumerate(learner.params)}
    per_param = not all(isinstance(lr, float) for lr in rule.lrs)
    if per_param:
        tensors.update({f"lr.{i}": torch.as_tensor(lr) for i, lr in enumerate(rule.lrs)})
    model = {**dataclasses.asdict(config.model), "in_shape": list(net.in_shape), "out_dim": net.out_dim,
             "param_names": list(net.names)}
    meta = {**_common_meta(config, learner, summary), "kind": learner.family.kind, "model": model,
            "adaptation": {"first": rule.first, "steps": rule.steps, "loss": rule.loss,
                           "lr": "per-parameter" if per_param else rule.lrs[0] if rule.lrs else 0.0}}
    if rule.kind != "sgd":  # a metric-based classifier (a bundle without the key adapts by SGD)
        meta["adaptation"]["kind"] = rule.kind
    save_tensors(path, tensors, meta)
    return Path(path)


class AdaptedModel:
    """A network adapted to one task: ``predict(x)`` maps numpy (Q, *in_shape) to numpy (Q, out) (a
    classifier's logits: ``.argmax(-1)`` are the predicted classes)."""

    def __init__(self, network, params: list[torch.Tensor]):
        self.network, self._params = network, params

    def predict(self, x) -> np.ndarray:
        x = _as_input(x, self.network.in_shape, "x")
        with torch.no_grad():
            y = self.network.forward(self._params, x.unsqueeze(0))[0]
        return y.numpy()


def _curve_report(curve: np.ndarray, steps: list[int]) -> dict:
    """``evaluate()``'s curve keys under the one reporting rule (stats.mean_ci95) from every task's whole
    curve ``curve`` (tasks, 0..max(steps)): at the reported ``steps``, a step where some task overflowed has
    no mean (None, JSON null) and ``diverged`` counts those tasks; ``diverged_tasks`` names each task with
    the first inner step it overflowed at (also one between the reported steps, as adapt() says)."""
    per_task = curve[:, steps]
    mean, ci = mean_ci95(per_task)
    return {"steps": steps,
            "mean": [float(m) if np.isfinite(m) else None for m in mean],
            "ci95": [float(c) if np.isfinite(c) else None for c in ci],
            "diverged": (~np.isfinite(per_task)).sum(0).tolist(),
            "diverged_tasks": {str(t): s for t, s in sorted(divergence(curve).items())},
            "per_task": [[v if np.isfinite(v) else None for v in row] for row in per_task.tolist()]}


def _check_memory(model, tasks: int, steps: int) -> None:
    """Refuse an evaluation of ``tasks`` x ``steps`` that cannot fit in memory (budget.check_memory), as a
    run of the same sizes is refused: one line naming the bundle's keys and the values."""
    sizes = getattr(model, "sizes", None)
    if sizes is not None:
        budget.check_memory(sizes, model.family, where=str(model.path), eval_tasks=tasks, eval_steps=steps,
                            algorithm_section="algorithm_config")


def _count(value, name: str, low: int, high: int) -> int:
    """``value`` as an int in [low, high], else a ValueError naming it (never a hang or a huge allocation)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer, float, np.floating)) or (
            isinstance(value, (float, np.floating)) and not float(value).is_integer()):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    v = int(value)
    if not low <= v <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {v}")
    return v


def _step_list(steps, name: str = "steps") -> list[int]:
    try:
        items = list(steps)
    except TypeError:
        raise ValueError(f"{name} must be a list of integers, got {steps!r}") from None
    if not items or len(items) > MAX_ADAPT_STEPS + 1:
        raise ValueError(f"{name} must list 1 to {MAX_ADAPT_STEPS + 1} step counts")
    return sorted(set(_count(s, name, 0, MAX_ADAPT_STEPS) for s in items))


def _as_input(a, shape: tuple[int, ...], name: str) -> torch.Tensor:
    """``a`` as a float32 tensor (N, *shape); a 1-D array stands for (N, 1) when shape is (1,)."""
    try:
        arr = np.asarray(a, dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a numeric array of shape (N, {', '.join(map(str, shape))})") from None
    if arr.ndim == 1 and tuple(shape) == (1,):
        arr = arr[:, None]
    if arr.ndim != 1 + len(shape) or tuple(arr.shape[1:]) != tuple(shape):
        raise ValueError(f"{name} must have shape (N, {', '.join(map(str, shape))}), got {np.shape(a)}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return torch.from_numpy(arr)


def _task_rows(family, task_params) -> torch.Tensor:
    """``task_params`` as the family's task rows (n, P) of finite floats, else a ValueError naming it."""
    names = list(family.task_param_names)
    if not names:
        raise ValueError(f"task_params: the {family.name} family's tasks are not rows of numbers")
    rows = _as_input(task_params, (len(names),), f"task_params (columns {', '.join(names)})")
    if not 1 <= len(rows) <= MAX_EVAL_TASKS:
        raise ValueError(f"task_params must hold 1 to {MAX_EVAL_TASKS} tasks, got {len(rows)}")
    return rows.to(torch.get_default_dtype())


def _as_labels(a, classes: int, name: str) -> torch.Tensor:
    """Class indices (N,) in [0, classes) as int64."""
    arr = np.asarray(a)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer) or (
            np.issubdtype(arr.dtype, np.floating) and np.isfinite(arr).all() and (arr == np.round(arr)).all())):
        raise ValueError(f"{name} must be class indices of shape (N,), got {arr.dtype} {np.shape(a)}")
    if arr.size and (arr.min() < 0 or arr.max() >= classes):
        raise ValueError(f"{name} must hold class indices in [0, {classes}), got {arr.min()}..{arr.max()}")
    return torch.from_numpy(arr.astype(np.int64))


class _Loaded:
    """What every model loaded from a bundle has: its metadata, the algorithm that trained it, and the sizes
    budget.check_memory needs to bound an evaluation."""
    meta: dict
    sizes = None  # set by load_bundle

    @property
    def algorithm(self) -> str:
        return self.meta["algorithm"]


class PrototypeModel(AdaptedModel):
    """An embedding network with the prototypes of one task's classes: ``predict(x)`` gives the negative
    squared distances to each prototype (Q, N), logits whose ``.argmax(-1)`` is the predicted class."""

    def __init__(self, network, params: list[torch.Tensor], prototypes: torch.Tensor):
        super().__init__(network, params)
        self.prototypes = prototypes  # (N, D)

    def predict(self, x) -> np.ndarray:
        x = _as_input(x, self.network.in_shape, "x")
        with torch.no_grad():
            z = self.network.forward(self._params, x.unsqueeze(0))
            return distance_logits(z, self.prototypes.unsqueeze(0))[0].numpy()


class MetaModel(_Loaded, AdaptedModel):
    """A meta-learned model loaded from a bundle."""

    task_prototypes = None  # (classes, D): a prototype classifier already adapted to one task (its bundle's)

    def __init__(self, path: Path, network, params, rule: AdaptationRule, meta: dict, family):
        super().__init__(network, params)
        self.path, self.rule, self.meta, self.family = path, rule, meta, family

    def predict(self, x) -> np.ndarray:
        """The network's outputs (Q, out) on ``x`` (Q, *in_shape); a prototype classifier adapted to a task
        (``workbench adapt``) gives its logits over that task's classes."""
        if self.task_prototypes is not None:
            return PrototypeModel(self.network, self._params, self.task_prototypes).predict(x)
        return super().predict(x)

    @property
    def spec(self):
        """The MLP's spec when the network is the built-in MLP (its ONNX export), else None."""
        return getattr(self.network, "spec", None)

    @property
    def params(self) -> list[torch.Tensor]:
        return self._params

    def adapt(self, x_support, y_support, steps: int | None = None) -> AdaptedModel:
        """Adapt to a new task from its support set with the trained inner-loop rule: ``x_support`` (K,
        *in_shape), ``y_support`` (K, out) targets or, for a classifier, (K,) class indices."""
        net = self.network
        xs = _as_input(x_support, net.in_shape, "x_support")
        ways = self.family.out_dim if self.rule.kind == "prototypes" else net.out_dim
        ys = (_as_labels(y_support, ways, "y_support") if self.rule.loss == "cross_entropy"
              else _as_input(y_support, (net.out_dim,), "y_support"))
        if xs.shape[0] != ys.shape[0]:
            raise ValueError(f"x_support has {xs.shape[0]} rows but y_support has {ys.shape[0]}")
        if xs.shape[0] == 0:
            raise ValueError("the support set is empty")
        if self.rule.kind == "prototypes":  # no steps: the class means of the support embeddings
            missing = (torch.bincount(ys, minlength=int(ys.max()) + 1) == 0).nonzero().flatten().tolist()
            if missing:
                raise ValueError(f"y_support has no image of class {missing[0]}: the classes are 0..{int(ys.max())} "
                                 f"and each needs at least one (its prototype)")
            with torch.no_grad():
                protos = prototypes(net.forward(self._params, xs.unsqueeze(0)), ys.unsqueeze(0), int(ys.max()) + 1)
            return PrototypeModel(net, self._params, protos[0])
        steps = self.rule.steps if steps is None else _count(steps, "steps", 0, MAX_ADAPT_STEPS)
        fast = self._params
        with torch.no_grad():
            for step in range(1, steps + 1):
                fast = inner_step(net, fast, self.rule, xs.unsqueeze(0), ys.unsqueeze(0))
                if not all(bool(torch.isfinite(p).all()) for p in fast):  # the reporting rule: never silent
                    raise AdaptationDiverged(
                        f"adaptation diverged at inner step {step} of {steps}: the parameters overflowed (this "
                        f"model was trained with {self.rule.steps} inner step(s); adapt with fewer steps)")
        return AdaptedModel(net, [p[0] if p.dim() > s.dim() else p for p, s in zip(fast, self._params)])

    def evaluate(self, tasks: int = 100, seed: int = 0, steps=None, shots: int | None = None,
                 query: int | None = None, task_params=None) -> dict:
        """Mean query metric (the family's: MSE, accuracy) ± 95% CI after each number of inner steps, on
        ``tasks`` fresh tasks, or on the tasks ``task_params`` (an array (n, P) of the family's
        ``task_param_names``; their support / query sets drawn from the test stream with ``seed``)."""
        steps = _step_list(steps if steps is not None else (0,) if self.rule.kind == "prototypes" else (0, 1, 10))
        if self.rule.kind == "prototypes" and max(steps) > 0:
            raise ConfigError(f"--steps {','.join(map(str, steps))}: a {self.algorithm} model has no inner steps "
                              f"(its classifier is the prototypes of the support set): use --steps 0")
        rows = None if task_params is None else _task_rows(self.family, task_params)
        tasks = len(rows) if rows is not None else _count(tasks, "tasks", 1, MAX_EVAL_TASKS)
        shots = None if shots is None else _count(shots, "shots", 1, MAX_POINTS)
        query = None if query is None else _count(query, "query", 1, MAX_POINTS)
        _check_memory(self, tasks, max(steps))
        if rows is None:
            batch = self.family.evaluation_batch(tasks, seed, shots=shots, query=query, stream=seeding.TEST)
        else:
            batch = self.family.batch_for(rows, seeding.generator(seeding.TEST, seed), shots,
                                          self.family.cfg.eval_query if query is None else query)
        metric = self.family.metric
        classes = self.family.out_dim if self.family.kind == "classification" else 1  # shots are per class
        values = self.curve(batch, max(steps))
        return {"metric": metric, **_curve_report(values, steps), "tasks": tasks,
                "seed": seed, "family": self.meta["family"], "algorithm": self.algorithm,
                "shots": batch.xs.shape[1] // classes}

    @property
    def trained_steps(self) -> int:
        """The inner steps of "after adaptation" (what it was trained with; 0 for a prototype classifier)."""
        return 0 if self.rule.kind == "prototypes" else int(self.rule.steps)

    def check_steps(self, steps: int, who: str = "") -> None:
        """A ConfigError (one line, after ``who``) unless the model adapts over ``steps`` inner steps."""
        if steps and self.rule.kind == "prototypes":
            raise ConfigError(f"{who}--steps = {steps}: a {self.algorithm} model has no inner steps (its classifier "
                              f"is the prototypes of the support set): use --steps 0")

    def curve(self, batch, steps: int, cancel=None) -> np.ndarray:
        """Every task's query metric after 0..``steps`` inner steps on the task batch ``batch``: (tasks,
        steps + 1) float64 (the task-space map's and evaluate()'s numbers)."""
        values, _ = adaptation_curve(self.network, self._params, self.rule, batch.xs, batch.ys, batch.xq, batch.yq,
                                     steps, cancel=cancel, metric=self.family.metric)
        return values.double().numpy()

    def evaluation_events(self, tasks: int = 100, seed: int = 0, steps: int | None = None, render_tasks: int = 4,
                          cancel=None):
        """An :class:`Evaluation` (every step 0..S) and a :class:`Render` of fresh tasks, as the trainer emits.
        ``cancel`` (a threading.Event, or None) is checked between steps: a set event raises Cancelled."""
        steps = min(max(10, self.rule.steps), 100) if steps is None else _count(steps, "steps", 0, MAX_ADAPT_STEPS)
        if self.rule.kind == "prototypes":
            steps = 0
        tasks = _count(tasks, "tasks", 1, MAX_EVAL_TASKS)
        _check_memory(self, tasks, steps)
        batch = self.family.evaluation_batch(tasks, seed, stream=seeding.TEST)
        outcome = supervised_outcome(self.network, self._params, self.rule, self.family, batch, steps, render_tasks,
                                     cancel)
        return events_from(int(self.meta.get("training", {}).get("iterations", 0)), outcome)

    @property
    def onnx_exportable(self) -> bool:
        """Whether :meth:`to_onnx` can write this model (the built-in MLP)."""
        return self.spec is not None

    def to_onnx(self, path: str | Path) -> Path:
        from .onnx_export import write_onnx

        if self.spec is None:
            raise BundleError(f"{self.path}: ONNX export covers the built-in MLP; this {self.meta['model'].get('name')}"
                              f"{' / ' + self.meta['model']['module'] if self.meta['model'].get('module') else ''} "
                              f"network is not exportable to ONNX here")
        return write_onnx(path, [p.numpy() for p in self._params], self.spec)


def _common_meta(config, learner, summary) -> dict:
    from workbench import __version__

    return {"format": FORMAT, "format_version": FORMAT_VERSION, "workbench_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "family": config.family, "task": dataclasses.asdict(config.task), "algorithm": config.algorithm_name,
            "algorithm_config": dataclasses.asdict(config.algorithm),
            "training": summary, "preset": dataclasses.asdict(config.meta)}


def _write_rl_bundle(path, learner, config, summary) -> Path:
    meta = {**_common_meta(config, learner, summary), "kind": "rl", "n_params": len(learner.params),
            "model": learner.spec.to_dict()}
    save_tensors(path, {f"param.{i}": p for i, p in enumerate(learner.params)}, meta)
    return Path(path)


class RLModel(_Loaded):
    """A meta-RL policy loaded from a bundle: it adapts from trajectories it collects itself."""

    def __init__(self, path: Path, meta: dict, learner, family):
        self.path, self.meta, self.learner, self.family = path, meta, learner, family
        self.spec = learner.spec

    @property
    def params(self) -> list[torch.Tensor]:
        return self.learner.params

    def adapt(self, *args, **kwargs):
        raise BundleError(f"{self.path}: a {self.meta['family']} policy adapts from the trajectories it collects; "
                          f"use evaluate() (or `workbench eval`)")

    predict = adapt

    def evaluate(self, tasks: int = 100, seed: int = 0, steps=None, shots=None, query=None, inner_lr=None,
                 task_params=None) -> dict:
        """The return on ``tasks`` fresh tasks (or on the tasks ``task_params``, an array (n, P) of the
        family's ``task_param_names``) after each of ``steps`` inner steps, adapted as recorded in the
        bundle (its ``inner_lr`` schedule and ``eval_trajectories``), or with ``inner_lr`` (a float, or a list
        whose entry min(k, len − 1) is step k's rate; gradient-based policies only; ConfigError when out of
        the algorithm's range)."""
        if steps is None:  # RL²: every episode of the trial; gradient-based: before and after the trained steps
            steps = self.learner.default_eval_steps()
        steps = _step_list(steps)
        rows = None if task_params is None else _task_rows(self.family, task_params)
        tasks = len(rows) if rows is not None else _count(tasks, "tasks", 1, MAX_EVAL_TASKS)
        _check_memory(self, tasks, max(steps))
        learner = self.learner
        if inner_lr is not None:
            learner = self._with_inner_lr(inner_lr)
        batch = (self.family.evaluation_batch(tasks, seed, stream=seeding.TEST) if rows is None
                 else self.family.batch_of(rows))
        outcome = learner.evaluate(self.family, batch, max(steps), 0)
        if max(steps) > outcome.steps[-1]:
            raise ConfigError(f"--steps {','.join(map(str, steps))}: the adaptation curve of this "
                              f"{self.algorithm} model runs over 0..{outcome.steps[-1]} ({outcome.step_label})")
        return {"metric": outcome.metric, **_curve_report(np.asarray(outcome.per_task, dtype=np.float64), steps),
                "tasks": tasks, "seed": seed, "shots": None, "family": self.meta["family"],
                "algorithm": self.algorithm, "references": outcome.references}

    @property
    def trained_steps(self) -> int:
        """The last point of the adaptation curve ``workbench eval`` reports by default (the trained steps;
        RL²: the trial's last episode)."""
        return int(max(self.learner.default_eval_steps()))

    def check_steps(self, steps: int, who: str = "") -> None:
        """A ConfigError (one line, after ``who``) unless the policy adapts over ``steps`` steps (a policy
        without policy-gradient steps has a curve of its trial's episodes or its context)."""
        if steps > self.trained_steps and not hasattr(self.learner, "inner_update"):
            raise ConfigError(f"{who}--steps = {steps}: a {self.algorithm} model's adaptation curve runs over "
                              f"0..{self.trained_steps}")

    def curve(self, batch, steps: int, cancel=None) -> np.ndarray:
        """Every task's return after 0..``steps`` inner steps on the tasks ``batch``: (tasks, steps + 1)."""
        return np.asarray(self.learner.evaluate(self.family, batch, steps, 0, cancel=cancel).per_task,
                          dtype=np.float64)

    def _with_inner_lr(self, inner_lr):
        """A shallow copy of the learner (parameters shared, never written) whose config has ``inner_lr``."""
        import copy

        from workbench.core.config import coerce_value

        cfg = self.learner.cfg
        if not hasattr(self.learner, "inner_update") or not hasattr(cfg, "inner_lr"):
            raise ConfigError(f"--inner-lr: {self.path} is a {self.algorithm} model, which takes no policy-gradient "
                              f"inner steps")
        if isinstance(inner_lr, tuple):
            inner_lr = list(inner_lr)
        value = coerce_value(type(cfg), "inner_lr", inner_lr, "--inner-lr")
        learner = copy.copy(self.learner)
        learner.cfg = dataclasses.replace(cfg, inner_lr=value)
        return learner

    def evaluation_events(self, tasks: int = 100, seed: int = 0, steps: int | None = None, render_tasks: int = 4,
                          cancel=None):
        steps = max(3, *self.learner.default_eval_steps()) if steps is None else _count(steps, "steps", 0,
                                                                                        MAX_ADAPT_STEPS)
        tasks = _count(tasks, "tasks", 1, MAX_EVAL_TASKS)
        _check_memory(self, tasks, steps)
        batch = self.family.evaluation_batch(tasks, seed, stream=seeding.TEST)
        outcome = self.learner.evaluate(self.family, batch, steps, render_tasks, cancel=cancel)
        return events_from(int(self.meta.get("training", {}).get("iterations", 0)), outcome)

    @property
    def onnx_exportable(self) -> bool:
        """Whether :meth:`to_onnx` can write this model (MLP policies)."""
        return getattr(getattr(self.learner, "policy", None), "spec", None) is not None

    def to_onnx(self, path: str | Path) -> Path:
        from .onnx_export import write_onnx

        policy = getattr(self.learner, "policy", None)
        spec = getattr(policy, "spec", None)
        if spec is None:
            raise BundleError(f"{self.path}: ONNX export covers MLP policies (MAML-TRPO and its baselines); a "
                              f"{self.algorithm} model is not exportable to ONNX")
        n = 2 * spec.n_layers
        return write_onnx(path, [p.detach().numpy() for p in self.learner.params[:n]], spec)


# -- validation of the metadata: every loader goes through validate_bundle() -------------------------------
@dataclass
class BundleSpec:
    """What :func:`validate_bundle` found valid: everything a loader needs, nothing allocated yet."""
    path: Path
    meta: dict
    kind: str  # "regression" or "rl"
    family_cls: type
    family: object
    algo_cls: type
    algo_cfg: object
    spec: object  # MLPSpec of an MLP policy, or of a format-1 bundle's MLP; None otherwise
    model_cfg: object  # the [model] table as a ModelConfig
    first: int = 0  # supervised: the adaptation rule (params[first:] adapt)
    steps: int = 0
    lr: object = None  # a float, or "per-parameter"
    adapt_kind: str = "sgd"  # the AdaptationRule's kind: "sgd" or "prototypes"
    n_params: int = 0  # rl
    sizes: object = None  # task / algorithm / model.hidden, for budget.check_memory of an evaluation


def _short(value, width: int = 60) -> str:
    if isinstance(value, list) and len(value) > 4:
        inner = ", ".join(_short(v, 12) for v in value[:3])
        return f"[{inner}, ...] ({len(value)} entries)"
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _bad(path, key: str, value, expected: str) -> BundleError:
    return BundleError(f"{path}: {key} = {_short(value)}: expected {expected}")


def _table(path, parent: dict, key: str, required: bool = True) -> dict:
    if key not in parent:
        if required:
            raise BundleError(f"{path}: {key}: missing from the bundle metadata")
        return {}
    value = parent[key]
    if not isinstance(value, dict):
        raise _bad(path, key, value, "a JSON object")
    return value


def _section(path, cls, values: dict, where: str):
    try:
        return build_section(cls, values, f"{path}: {where}")
    except ConfigError as e:
        raise BundleError(str(e)) from None


def _mlp_count(sizes: list[int]) -> int:
    return sum(a * b + b for a, b in zip(sizes, sizes[1:]))


def _validate_mlp_table(path, model: dict, family, family_cls):
    """A model table of an MLP policy (and of format 1): in_dim, out_dim, hidden, activation."""
    from workbench.core.config import ModelConfig, coerce_value
    from workbench.models.mlp import MLPSpec

    for key in model:
        if key not in ("in_dim", "out_dim", "hidden", "activation"):
            raise BundleError(f"{path}: model.{key}: unknown key; known: activation, hidden, in_dim, out_dim")
    for key, want, what in (("in_dim", family.in_dim, "input"), ("out_dim", family.out_dim, "output")):
        if key not in model:
            raise BundleError(f"{path}: model.{key}: missing from the bundle metadata")
        if not _is_int(model[key]) or model[key] != want:
            raise _bad(path, f"model.{key}", model[key], f"{want}, the {what} size of the family {family_cls.name!r}")
    hidden = model.get("hidden")
    if not isinstance(hidden, list) or len(hidden) > MAX_HIDDEN_LAYERS:
        raise _bad(path, "model.hidden", hidden, f"a list of at most {MAX_HIDDEN_LAYERS} layer widths")
    try:
        coerce_value(ModelConfig, "hidden", hidden, f"{path}: model")
    except ConfigError:
        raise _bad(path, "model.hidden", hidden, "a list of layer widths, integers from 1 to 4096") from None
    activation = model.get("activation")
    if activation not in ("relu", "tanh"):
        raise BundleError(f"{path}: model.activation: unknown activation {_short(activation)}, "
                          f"expected 'relu' or 'tanh'")
    spec = MLPSpec(family.in_dim, family.out_dim, tuple(hidden), activation)
    n_weights = _mlp_count(spec.sizes)
    if n_weights > budget.max_network_weights():  # the same bound as a run's (budget.check_memory)
        raise _bad(path, "model.hidden", hidden, f"a network of at most {budget.max_network_weights()} weights, "
                   f"what this machine's memory holds (this one has {n_weights})")
    return spec


def _validate_model_table(path, model: dict, family, family_cls, embedding: bool = False):
    """A format-2 model table: the run's [model] keys, in_shape, out_dim and param_names (checked against
    the network once it is built, in load_bundle)."""
    from workbench.core.config import ModelConfig, coerce_value, fields_of

    extra = ("in_shape", "out_dim", "param_names")
    known = fields_of(ModelConfig)
    values = {}
    for key, value in model.items():
        if key in extra:
            continue
        if key not in known:
            raise BundleError(f"{path}: model.{key}: unknown key; known: {', '.join(sorted([*known, *extra]))}")
        if key == "hidden" and isinstance(value, list) and len(value) > MAX_HIDDEN_LAYERS:
            raise _bad(path, "model.hidden", value, f"a list of at most {MAX_HIDDEN_LAYERS} layer widths")
        try:
            values[key] = coerce_value(ModelConfig, key, value, "")
        except ConfigError as e:
            raise BundleError(f"{path}: model.{key} = {_short(value)}: "
                              f"{str(e).partition(f'{key} = {value!r}: ')[2] or e}") from None
    cfg = ModelConfig(**values)
    shape = model.get("in_shape")
    if not isinstance(shape, list) or [s for s in shape if not _is_int(s)] or list(shape) != list(family.in_shape):
        raise _bad(path, "model.in_shape", shape, f"{list(family.in_shape)}, the input shape of the family "
                   f"{family_cls.name!r}")
    if embedding:  # the width of an embedding: the network built from the table must give it (load_bundle)
        if not _is_int(model.get("out_dim")) or not 1 <= model["out_dim"] <= MAX_TENSORS:
            raise _bad(path, "model.out_dim", model.get("out_dim"), f"an embedding width from 1 to {MAX_TENSORS}")
    elif not _is_int(model.get("out_dim")) or model["out_dim"] != family.out_dim:
        raise _bad(path, "model.out_dim", model.get("out_dim"), f"{family.out_dim}, the output size of the family "
                   f"{family_cls.name!r}")
    names = model.get("param_names")
    if not isinstance(names, list) or len(names) > MAX_TENSORS or not all(isinstance(n, str) for n in names):
        raise _bad(path, "model.param_names", names, f"a list of at most {MAX_TENSORS} parameter names")
    weights = budget.network_size(cfg, family)[0]
    if weights > budget.max_network_weights():  # the same bound as a run's (budget.check_memory)
        key = "channels" if cfg.name == "conv4" else "hidden"
        raise _bad(path, f"model.{key}", getattr(cfg, key), f"a network of at most {budget.max_network_weights()} "
                   f"weights, what this machine's memory holds (this one has {weights})")
    return cfg


def _registered(path, meta: dict, key: str, registry):
    """The class that metadata ``key`` names in ``registry`` (the families' or the algorithms')."""
    if key not in meta:
        raise BundleError(f"{path}: {key}: missing from the bundle metadata")
    try:
        return registry.get(meta[key], where=f"{path}: {key}")
    except ConfigError as e:
        raise BundleError(str(e)) from None


def validate_bundle(path: Path, meta: dict, tensors: dict) -> BundleSpec:
    """Check a bundle's metadata (types, allowed values, consistency of kind / family / algorithm, and the
    sizes it asks for) and its tensors' names, dtypes and shapes against it, before anything is allocated.
    Raises :class:`BundleError` with one line naming the file, the key and the value."""
    from workbench.core.config import ModelConfig
    from workbench.core.registry import ALGORITHMS

    if not isinstance(meta, dict):
        raise BundleError(f"{path}: not a workbench model bundle (no metadata object)")
    fmt = meta.get("format")
    if fmt != FORMAT:
        raise BundleError(f"{path}: not a workbench model bundle (format {_short(fmt)})")
    version = meta.get("format_version")
    if not _is_int(version) or version < 1:
        raise BundleError(f"{path}: bundle format version {_short(version)} is not valid")
    if version > FORMAT_VERSION:
        raise BundleError(f"{path}: bundle format version {version!r} is newer than this workbench supports "
                          f"({FORMAT_VERSION}); upgrade the workbench")
    for key in ("workbench_version", "created"):
        if key in meta and not isinstance(meta[key], str):
            raise _bad(path, key, meta[key], "a string")
    # -- family, kind, task
    family_cls = _registered(path, meta, "family", FAMILIES)
    family_kind = family_cls.kind
    kind = meta.get("kind", "regression")
    if kind not in KINDS:
        raise _bad(path, "kind", kind, f"one of {', '.join(map(repr, KINDS))} (no kind: 'regression')")
    if kind != family_kind:
        raise _bad(path, "kind", meta.get("kind"), f"{family_kind!r} for the {family_kind} family {family_cls.name!r}")
    task_cfg = _section(path, family_cls.Config, _table(path, meta, "task"), "task")
    try:
        family = family_cls(task_cfg)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, ImportError, RuntimeError, OSError) as e:
        raise BundleError(f"{path}: task: the {family_cls.name} family cannot be built from it here "
                          f"({type(e).__name__}: {e})".replace("\n", " ")) from None
    # -- algorithm
    algo_cls = _registered(path, meta, "algorithm", ALGORITHMS)
    if family_cls.name not in algo_cls.families:
        raise _bad(path, "algorithm", meta["algorithm"], f"an algorithm for the family {family_cls.name!r} "
                   f"({algo_cls.name} supports: {', '.join(algo_cls.families) or 'none'})")
    algo_cfg = _section(path, algo_cls.Config, _table(path, meta, "algorithm_config"), "algorithm_config")
    # -- the network, and its size before anything is allocated
    model = _table(path, meta, "model")
    if kind == "rl" or "name" not in model:  # an MLP policy, or a format-1 bundle of an MLP
        spec = _validate_mlp_table(path, model, family, family_cls)
        model_cfg = ModelConfig(hidden=list(spec.hidden), activation=spec.activation)
    else:
        adaptation = meta.get("adaptation")
        embedding = isinstance(adaptation, dict) and adaptation.get("kind") == "prototypes"
        spec, model_cfg = None, _validate_model_table(path, model, family, family_cls, embedding)
    # -- what is only shown
    training = _table(path, meta, "training", required=False)
    if "iterations" in training and (not _is_int(training["iterations"]) or training["iterations"] < 0):
        raise _bad(path, "training.iterations", training["iterations"], "a non-negative integer")
    preset = _table(path, meta, "preset", required=False)
    for key in ("name", "description", "source"):
        if key in preset and not isinstance(preset[key], str):
            raise _bad(path, f"preset.{key}", preset[key], "a string")
    # -- tensors
    if len(tensors) > MAX_TENSORS:
        raise BundleError(f"{path}: {len(tensors)} tensors: expected at most {MAX_TENSORS}")
    for name, t in tensors.items():
        if not t.dtype.is_floating_point:
            raise BundleError(f"{path}: {name}: dtype {str(t.dtype).removeprefix('torch.')}: expected floating point")
    out = BundleSpec(path, meta, kind, family_cls, family, algo_cls, algo_cfg, spec, model_cfg)
    out.sizes = SimpleNamespace(task=task_cfg, algorithm=algo_cfg, model=model_cfg)
    if kind == "rl":
        _validate_rl(out, tensors)
    else:
        _validate_regression(out, tensors)
    return out


def _param(path, tensors: dict, name: str) -> torch.Tensor:
    if name not in tensors:
        raise BundleError(f"{path}: {name}: missing from the bundle's tensors")
    return tensors[name]


def _validate_regression(b: BundleSpec, tensors: dict) -> None:
    """The adaptation table (first, steps, lr) of a supervised bundle; the tensors' shapes are checked
    against the network when it is built (load_bundle)."""
    path = b.path
    ad = _table(path, b.meta, "adaptation")
    steps, lr = ad.get("steps"), ad.get("lr")
    if "first" in ad:
        first = ad["first"]
        if not _is_int(first) or first < 0:
            raise _bad(path, "adaptation.first", first, "the index of the first adapted parameter")
    else:  # format 1: a layer of the MLP
        first = ad.get("first_layer")
        if not _is_int(first):
            raise _bad(path, "adaptation.first_layer", first, "an integer layer index")
        if not 0 <= first < b.spec.n_layers:
            raise BundleError(f"{path}: adaptation.first_layer = {first} but the model has {b.spec.n_layers} layers")
        first = 2 * first
    loss = ad.get("loss", b.family.loss)
    if loss != b.family.loss:
        raise _bad(path, "adaptation.loss", loss, f"{b.family.loss!r}, the loss of the family {b.family_cls.name!r}")
    if not _is_int(steps):
        raise _bad(path, "adaptation.steps", steps, "an integer number of inner steps")
    if steps < 0:
        raise BundleError(f"{path}: adaptation.steps = {steps} is negative")
    if steps > MAX_ADAPT_STEPS:
        raise _bad(path, "adaptation.steps", steps, f"at most {MAX_ADAPT_STEPS} inner steps")
    if lr != "per-parameter":
        if isinstance(lr, bool) or not isinstance(lr, (int, float)):
            raise _bad(path, "adaptation.lr", lr, "a number or 'per-parameter'")
        if not math.isfinite(lr):
            raise BundleError(f"{path}: adaptation.lr = {lr!r} is not a finite number")
    kind = ad.get("kind", "sgd")
    if kind not in ("sgd", "prototypes"):
        raise _bad(path, "adaptation.kind", kind, "'sgd' or 'prototypes'")
    if kind == "prototypes" and (b.family.kind != "classification" or steps != 0):
        raise _bad(path, "adaptation.kind", kind, "'sgd': prototypes classify images with 0 inner steps")
    b.first, b.steps, b.lr, b.adapt_kind = first, steps, lr, kind


def _build_network(b: BundleSpec):
    """The bundle's network (a user's module is imported now; the error says which module it needs)."""
    from workbench.models.network import FastMLP
    from workbench.models.zoo import build_network

    if b.spec is not None:
        return FastMLP(b.spec)
    cfg = b.model_cfg
    try:
        out_dim = None if b.adapt_kind == "prototypes" else b.family.out_dim  # prototypes: an embedding
        return build_network(cfg, b.family.in_shape, out_dim, b.family.loss, f"{b.path}: model")
    except ConfigError as e:
        needs = f" (this model needs the module {cfg.module!r})" if cfg.module and "cannot import" in str(e) else ""
        raise BundleError(f"{e}{needs}") from None


def _rl_param_shapes(b: BundleSpec) -> list[tuple[int, ...]] | None:
    """The shapes of the parameters the learner will create, from the algorithm's own spec objects (which
    allocate nothing); None when this algorithm's structure is not known here (the counts are then checked
    after it is built)."""
    try:
        from workbench.rl.learner import RLMetaLearner
        from workbench.algorithms.pearl import PEARL, _Nets
        from workbench.rl.policies import GaussianPolicy, make_policy
    except ImportError:
        return None
    spec, family = b.spec, b.family
    if issubclass(b.algo_cls, RLMetaLearner):
        policy = make_policy(family, spec.hidden, spec.activation)
        extra = [(policy.act_dim,)] if isinstance(policy, GaussianPolicy) else []
        return [tuple(s) for s in policy.spec.param_shapes()] + extra
    if issubclass(b.algo_cls, PEARL):
        nets = _Nets(family, spec.hidden, spec.activation, b.algo_cfg.latent_dim)
        return [tuple(s) for key in ("encoder", "q1", "q2", "actor") for s in nets.specs[key].param_shapes()] + [(1,)]
    return None


def _validate_rl(b: BundleSpec, tensors: dict) -> None:
    path, meta, spec, family = b.path, b.meta, b.spec, b.family
    n = meta.get("n_params")
    if not _is_int(n) or not 1 <= n <= MAX_TENSORS:
        raise _bad(path, "n_params", n, f"an integer from 1 to {MAX_TENSORS}")
    held = [_param(path, tensors, f"param.{i}") for i in range(n)]
    shapes = _rl_param_shapes(b)
    if shapes is not None:
        if len(shapes) != n:
            raise BundleError(f"{path}: the bundle has {n} parameters, the policy {len(shapes)}")
        for i, (t, shape) in enumerate(zip(held, shapes)):
            if tuple(t.shape) != shape:
                raise BundleError(f"{path}: param.{i} must be finite with shape {shape}")
    if b.algo_cls.name == "rl2":  # a GRU over hidden[0]: its recurrent weights (h, 3h) must be in the file
        if not spec.hidden:
            raise _bad(path, "model.hidden", list(spec.hidden), "at least one layer (the GRU's width)")
        h = spec.hidden[0]
        if sum(t.numel() for t in held) < 3 * h * h:
            raise _bad(path, "model.hidden", list(spec.hidden), f"a GRU width the bundle's {n} parameters hold")
    # replay buffers allocated when the learner is built (PEARL: tasks x capacity x transition)
    cfg = b.algo_cfg
    tasks, cap = getattr(cfg, "train_tasks", 0), getattr(cfg, "buffer_size", 0)
    if _is_int(tasks) and _is_int(cap) and tasks * cap:
        need = budget.replay_bytes(cfg, family)
        if need > budget.physical_memory():  # the same bound as a run's (budget.check_memory)
            raise _bad(path, "algorithm_config.buffer_size", cap, f"replay buffers that fit in this machine's memory "
                       f"(train_tasks {tasks} x buffer_size {cap} need {need / 2**30:.1f} GiB)")
    b.n_params = n


def _load_rl(b: BundleSpec, tensors: dict) -> RLModel:
    path, meta = b.path, b.meta
    try:
        learner = b.algo_cls(b.algo_cfg, b.spec, torch.device("cpu"), torch.Generator().manual_seed(0), 1,
                             family=b.family)
        if len(learner.params) != b.n_params:
            raise BundleError(f"{path}: the bundle has {b.n_params} parameters, the policy {len(learner.params)}")
        with torch.no_grad():
            for i, p in enumerate(learner.params):
                t = tensors[f"param.{i}"]
                if t.shape != p.shape or not torch.isfinite(t).all():
                    raise BundleError(f"{path}: param.{i} must be finite with shape {tuple(p.shape)}")
                p.copy_(t)
    except ConfigError as e:
        raise BundleError(f"{path}: incompatible bundle: {e}") from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        raise BundleError(f"{path}: incomplete or corrupt bundle metadata ({type(e).__name__}: {e})") from None
    model = RLModel(path, meta, learner, b.family)
    model.sizes = b.sizes
    return model


def load_bundle(path: str | Path) -> MetaModel | RLModel:
    """Load a model bundle (a ``.safetensors`` file, or a run directory holding ``model.safetensors``).
    Only a regular file is read, the metadata is validated (:func:`validate_bundle`) before anything is
    allocated, and nothing is unpickled; any problem is a one-line :class:`BundleError`."""
    path = Path(path)
    try:
        if path.is_dir() and (path / BUNDLE).is_file():
            path = path / BUNDLE  # a run directory
    except OSError:
        pass
    try:
        tensors, meta = load_tensors(path, max(MAX_TENSOR_BYTES, budget.physical_memory() // 2))
    except UnreadableFile as e:
        raise BundleError(f"{path}: cannot load model bundle: {e}") from None
    b = validate_bundle(path, meta, tensors)
    if b.kind == "rl":
        return _load_rl(b, tensors)
    network = _build_network(b)
    n = len(network.names)
    names = b.meta["model"].get("param_names")
    if names is not None and list(names) != list(network.names):
        raise BundleError(f"{path}: model.param_names: the bundle's parameters ({_short(names)}) are not the "
                          f"network's ({_short(list(network.names))})")
    params = []
    for i, shape in enumerate(network.shapes):
        p = _param(path, tensors, f"param.{i}")
        if tuple(p.shape) != tuple(shape):
            raise BundleError(f"{path}: param.{i} has shape {tuple(p.shape)}, the network's "
                              f"{network.names[i]} has {tuple(shape)}")
        if not torch.isfinite(p).all():
            raise BundleError(f"{path}: param.{i} holds NaN or infinite weights")
        params.append(p.float())
    k = b.first
    if k >= n and not (b.adapt_kind == "prototypes" and k == n):  # prototypes adapt no parameter
        raise BundleError(f"{path}: adaptation.first = {k} but the network has {n} parameters")
    if b.spec is not None or getattr(network, "spec", None) is not None:
        if k % 2:  # the fused MLP adapts whole layers
            raise BundleError(f"{path}: adaptation.first = {k}: expected the first parameter of a layer (an even "
                              f"index) of this MLP")
    if b.lr == "per-parameter":
        lrs = []
        for i, p in enumerate(params[k:]):
            lr = _param(path, tensors, f"lr.{i}")
            if lr.shape != p.shape or not torch.isfinite(lr).all():
                raise BundleError(f"{path}: lr.{i} must be finite with the shape of its parameter "
                                  f"{tuple(p.shape)}, got {tuple(lr.shape)}")
            lrs.append(lr.float())
    else:
        lrs = [float(b.lr)] * (n - k)
    rule = AdaptationRule(lrs, k, b.steps, b.family.loss, kind=b.adapt_kind)
    model = MetaModel(path, network, params, rule, b.meta, b.family)
    model.sizes = b.sizes
    if "prototypes" in tensors:  # a prototype classifier adapted to one task (`workbench adapt`)
        protos = tensors["prototypes"]
        if b.adapt_kind != "prototypes" or protos.dim() != 2 or protos.shape[0] < 2 or not torch.isfinite(protos).all():
            raise BundleError(f"{path}: prototypes: expected a finite (classes, D) tensor of a prototype classifier, "
                              f"got {tuple(protos.shape)}")
        model.task_prototypes = protos.float()
    return model
