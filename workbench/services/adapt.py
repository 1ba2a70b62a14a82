"""From a few samples to a small deployed model (``workbench adapt``, the Playground's "Export adapted
model…"): adapt a meta-learned bundle to one new task with the trained inner-loop rule, and write the
adapted network as a bundle of its own (``model.safetensors``) and as ONNX (``model.onnx``), optionally
with an int8 ONNX copy (``model.int8.onnx``, onnxruntime's dynamic quantisation) and its size and metric
beside the float one's.

What a task's samples are, by family kind:

* regression: a CSV file, one point per row: the input column(s) then the target column(s) (an optional
  header row of names);
* classification: a folder with one sub-folder of images per class (its name is the class; classes are
  labelled 0..N-1 in sorted order); each image is read as the family's (grey or colour, resized, inverted
  for ink-on-paper data sets);
* RL (gradient-adapted policies: MAML-TRPO and its baselines): the task's parameters, ``goal_x=0.3,
  goal_y=-0.2``, or a JSON file of them; the policy collects its own trajectories in that task.

Every problem with what the user gave is a ConfigError of one line naming the file (the row, the column or
the value); the output folder is written only when everything has been checked, and never over files.
"""
from __future__ import annotations

import csv
import datetime as _dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from workbench.core import losses, seeding
from workbench.core.errors import ConfigError
from workbench.core.storage import save_tensors

from .bundle import MAX_ADAPT_STEPS, MAX_POINTS, AdaptedModel, MetaModel, PrototypeModel
from .rundir import BUNDLE, ONNX

ADAPTED_BUNDLE, FLOAT_ONNX = BUNDLE, ONNX  # an adapted model's folder names its files as a run folder does
INT8_ONNX = "model.int8.onnx"
MAX_SUPPORT_BYTES = 64 * 1024 * 1024  # a support CSV or values file
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass
class Samples:
    """A task's data: ``x`` (N, *in_shape) float32, ``y`` (N, out) float32 targets or (N,) int64 labels."""
    x: np.ndarray
    y: np.ndarray
    source: str
    classes: list[str] = field(default_factory=list)


# -- reading what the user gave ------------------------------------------------------------------------
def read_samples(model, path: str | Path, where: str = "--support") -> Samples:
    """The samples in ``path`` for ``model``'s family (see the module docstring)."""
    kind = model.family.kind
    path = Path(path)
    if kind == "classification":
        return _read_image_folder(model, path, where)
    return _read_csv(model, path, where)


def _read_csv(model, path: Path, where: str) -> Samples:
    net = model.network
    n_in, n_out = int(np.prod(net.in_shape)), net.out_dim
    if len(net.in_shape) != 1:
        raise ConfigError(f"{where} {path}: this model takes {tuple(net.in_shape)} arrays; a CSV holds vectors")
    if not path.is_file():
        raise ConfigError(f"{where} {path}: no such file")
    if path.stat().st_size > MAX_SUPPORT_BYTES:
        raise ConfigError(f"{where} {path}: larger than {MAX_SUPPORT_BYTES // 2**20} MiB")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (UnicodeDecodeError, OSError) as e:
        raise ConfigError(f"{where} {path}: not a readable text file ({e.__class__.__name__})") from None
    try:
        rows = [r for r in csv.reader(text.splitlines()) if r and any(c.strip() for c in r)]
    except csv.Error as e:  # a field longer than the csv module allows, a NUL byte, ...
        raise ConfigError(f"{where} {path}: not a CSV of numbers ({e})") from None
    if rows and not _numeric(rows[0][0]):
        rows = rows[1:]  # a header of column names
    want = n_in + n_out
    values = []
    for i, row in enumerate(rows, 1):
        if len(row) != want:
            raise ConfigError(f"{where} {path}: row {i} has {len(row)} column(s); expected {want} ({n_in} input "
                              f"then {n_out} target column(s))")
        try:
            nums = [float(c) for c in row]
        except ValueError:
            bad = next(c for c in row if not _numeric(c))
            raise ConfigError(f"{where} {path}: row {i}: {bad.strip()!r} is not a number") from None
        with np.errstate(over="ignore"):  # finite as float64 but not as the float32 the network takes
            finite = np.isfinite(np.asarray(nums, dtype=np.float32)).all()
        if not finite:
            raise ConfigError(f"{where} {path}: row {i}: {row} holds NaN, an infinite value or one beyond float32's "
                              f"range (±3.4e38)")
        values.append(nums)
    if not values:
        raise ConfigError(f"{where} {path}: no data rows")
    if len(values) > MAX_POINTS:
        raise ConfigError(f"{where} {path}: {len(values)} rows; at most {MAX_POINTS}")
    a = np.asarray(values, dtype=np.float32)
    return Samples(a[:, :n_in], a[:, n_in:], f"{path} ({len(a)} points)")


def _numeric(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _read_image_folder(model, path: Path, where: str) -> Samples:
    from workbench.tasks.image_folders import decode_image

    if not path.is_dir():
        raise ConfigError(f"{where} {path}: not a folder (a classification task's samples are a folder with one "
                          f"sub-folder of images per class)")
    classes = sorted(d.name for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    ways = model.family.out_dim
    prototypes = getattr(model.rule, "kind", "") == "prototypes"
    if len(classes) < 2:
        raise ConfigError(f"{where} {path}: {len(classes)} class folder(s); a task needs at least 2")
    if not prototypes and len(classes) != ways:
        raise ConfigError(f"{where} {path}: {len(classes)} class folders; this {model.algorithm} model classifies "
                          f"{ways} classes (its head has {ways} outputs)")
    if prototypes and len(classes) > ways:
        raise ConfigError(f"{where} {path}: {len(classes)} class folders; this {model.algorithm} model classifies "
                          f"2 to {ways} classes (its training tasks' ways)")
    c = model.network.in_shape[0]
    invert = bool(getattr(model.family.evaluation, "invert", False))
    xs, ys = [], []
    for label, name in enumerate(classes):
        files = sorted(f for f in (path / name).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
        if not files:
            raise ConfigError(f"{where} {path / name}: no images ({', '.join(IMAGE_SUFFIXES)})")
        if len(files) > MAX_POINTS:
            raise ConfigError(f"{where} {path / name}: {len(files)} images; at most {MAX_POINTS} per class")
        for f in files:
            a = decode_image(f, model.network.in_shape, invert, where)  # as the data-set families read theirs
            xs.append((a[None] if c == 1 else a.transpose(2, 0, 1)).astype(np.float32) / 255.0)
            ys.append(label)
    return Samples(np.stack(xs), np.asarray(ys, dtype=np.int64), f"{path} ({len(classes)} classes, {len(xs)} "
                   f"images)", classes)


def read_task(model, text: str, where: str = "--support") -> torch.Tensor:
    """An RL task row (1, P) from ``name=value,...`` or a JSON file of {name: value}: every task parameter
    of the family, each once."""
    names = [p.name for p in (model.family.playground_params() or [])]
    example = ",".join(f"{n}=0.1" for n in names) or "goal_x=0.1"
    path = Path(text)
    if path.suffix.lower() == ".json" or path.is_file():
        if not path.is_file():
            raise ConfigError(f"{where} {path}: no such file")
        if path.stat().st_size > 1024 * 1024:
            raise ConfigError(f"{where} {path}: larger than 1 MiB; a task is a few numbers")
        pairs = []
        try:
            json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=lambda kv: pairs.append(kv) or dict(kv))
            values = pairs[-1] if pairs else None
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
            raise ConfigError(f"{where} {path}: not a JSON object of task parameters ({type(e).__name__})") from None
        if not isinstance(values, list) or len(pairs) != 1:
            first = names[0] if names else "goal_x"
            raise ConfigError(f"{where} {path}: not a flat JSON object of task parameters, e.g. {{\"{first}\": 0.1}}")
    else:
        values = []
        for part in text.split(","):
            name, sep, value = part.partition("=")
            if not sep or not name.strip():
                raise ConfigError(f"{where} {text!r}: expected NAME=VALUE pairs separated by commas, e.g. {example}")
            values.append((name.strip(), value.strip()))
    seen = [n for n, _ in values]
    twice = sorted({n for n in seen if seen.count(n) > 1})
    if twice:
        raise ConfigError(f"{where}: {twice[0]} is given {seen.count(twice[0])} times")
    missing = [n for n in names if n not in seen]
    if missing and not set(seen) - set(names):
        raise ConfigError(f"{where}: give every task parameter of the {model.family.name} family: "
                          f"{', '.join(missing)} missing (e.g. {example})")
    try:
        return model.family.task_params_from(dict(values))
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


# -- adapting ---------------------------------------------------------------------------------------
@dataclass
class Adapted:
    """One task's adapted network: its parameters (unbatched) and, for a prototype classifier, the
    prototypes (ways, D)."""
    network: object
    params: list[torch.Tensor]
    steps: int
    prototypes: torch.Tensor | None = None
    task: dict | None = None  # RL: the task's parameters

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Outputs (N, out) on ``x`` (N, *in_shape), as the bundle's adapted model gives them."""
        if self.prototypes is not None:
            return PrototypeModel(self.network, self.params, self.prototypes).predict(x)
        return AdaptedModel(self.network, self.params).predict(x)


def adapt_supervised(model: MetaModel, samples: Samples, steps: int | None) -> Adapted:
    """``model`` adapted to ``samples`` with its trained rule (``steps`` inner steps; default as trained)."""
    steps = _steps(model, steps)
    try:
        adapted = model.adapt(samples.x, samples.y, steps=steps)
    except ValueError as e:
        raise ConfigError(f"--support: {e}") from None
    protos = getattr(adapted, "prototypes", None)
    return Adapted(model.network, [p.detach() for p in adapted._params], steps, protos)


def _steps(model, steps) -> int:
    """``steps``, checked against the model (default: as trained)."""
    if steps is None:
        return model.trained_steps
    if not 0 <= steps <= MAX_ADAPT_STEPS:
        raise ConfigError(f"--steps {steps}: expected 0 to {MAX_ADAPT_STEPS} inner steps")
    model.check_steps(steps)
    return steps


def adapt_policy(model, row: torch.Tensor, steps: int | None, seed: int = 0) -> Adapted:
    """A gradient-adapted policy: ``steps`` inner policy-gradient steps on trajectories the policy collects in
    the task ``row`` (1, P), as the held-out evaluation adapts (its trajectories and learning rates)."""
    from workbench.rl.rollout import collect

    learner = model.learner
    if not hasattr(learner, "inner_update"):
        raise ConfigError(f"{model.path}: a {model.algorithm} policy adapts in its memory (recurrent state or task "
                          f"context), not its weights: there is no adapted network to write")
    steps = _steps(model, steps)
    env = model.family.make_env(row)
    gen = seeding.generator("adapt", seed)
    fast = learner.expand([p.detach() for p in learner.params], 1)
    for s in range(steps):
        episodes = collect(env, learner.policy, fast, learner.eval_trajectories, gen)
        fast = learner.inner_update(fast, episodes, learner.advantages(episodes), False, values_only=True, step=s)
    names = list(model.family.task_param_names)
    return Adapted(None, [p[0].detach().clone() for p in fast], steps,
                   task={n: float(f"{v:.7g}") for n, v in zip(names, row[0].tolist())})  # as given (float32 row)


# -- writing --------------------------------------------------------------------------------------------
def check_out_dir(out: Path) -> None:
    """The output folder must be new or empty: nothing of the user's is written over."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--out {out}: {'is a file' if not out.is_dir() else 'is not empty'}; name a new folder")
    if not out.exists() and out.parent != out and not out.parent.exists():
        raise ConfigError(f"--out {out}: its folder {out.parent} does not exist")


def write_adapted(model, adapted: Adapted, out: Path, source: str) -> list[Path]:
    """The adapted bundle and its float ONNX in ``out``; returns the files written."""
    from .onnx_export import write_network_onnx

    out.mkdir(parents=True, exist_ok=True)
    meta = json.loads(json.dumps(model.meta))  # a deep copy of plain JSON
    meta["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    meta["adapted"] = {"from": str(model.path), "samples": source, "steps": adapted.steps}
    if adapted.task is not None:
        meta["adapted"]["task"] = adapted.task
    tensors = {f"param.{i}": p for i, p in enumerate(adapted.params)}
    rule = getattr(model, "rule", None)
    if rule is not None and not all(isinstance(lr, float) for lr in rule.lrs):
        tensors.update({f"lr.{i}": torch.as_tensor(lr) for i, lr in enumerate(rule.lrs)})
    if adapted.prototypes is not None:
        tensors["prototypes"] = adapted.prototypes
        meta["adapted"]["classes"] = int(adapted.prototypes.shape[0])
    bundle = out / ADAPTED_BUNDLE
    save_tensors(bundle, tensors, meta)
    onnx = out / FLOAT_ONNX
    if model.family.kind == "rl":  # the policy's layers (the parameters after them: its log std, a baseline)
        from .onnx_export import write_onnx

        spec = model.learner.policy.spec
        write_onnx(onnx, [p.numpy() for p in adapted.params[:2 * spec.n_layers]], spec)
    else:
        write_network_onnx(onnx, adapted.network, adapted.params, adapted.prototypes)
    return [bundle, onnx]


def supervised_metric(metric: str, outputs: np.ndarray, y: np.ndarray) -> float:
    """The family's metric (workbench.core.losses: MSE, accuracy) of ``outputs`` (N, out) against ``y``."""
    return float(losses.per_task(metric, torch.as_tensor(outputs)[None], torch.as_tensor(y)[None])[0])


def policy_return(family, spec, discrete: bool, act, row: torch.Tensor, trajectories: int, seed: int = 0) -> float:
    """Mean undiscounted return of ``trajectories`` episodes in the task ``row`` (1, P), each action the
    deterministic one of the network outputs ``act(obs)`` (obs (M, obs_dim) numpy -> (M, out)): the mean of
    a Gaussian policy, the arg-max of a categorical one."""
    env = family.make_env(row)
    obs = env.reset(trajectories, seeding.generator("adapt-returns", seed))
    total = torch.zeros(1, trajectories, dtype=torch.float64)
    alive = torch.ones(1, trajectories, dtype=torch.float64)
    for _ in range(env.horizon):
        out = torch.as_tensor(act(obs.reshape(-1, obs.shape[-1]).float().numpy()), dtype=torch.float32)
        out = out.reshape(1, trajectories, -1)
        actions = out.argmax(-1) if discrete else out
        obs, reward, done = env.step(actions)
        total += alive * reward.double()
        alive = alive * (~done).double()
        if not alive.any():
            break
    return float(total.mean())


@dataclass
class Comparison:
    """The float and int8 ONNX files' sizes and metrics on held-out data of the task."""
    metric: str
    float_bytes: int
    int8_bytes: int
    float_metric: float
    int8_metric: float
    held_out: str  # what the metric was measured on
    max_abs_diff: float  # between the float and int8 outputs on that data

    @property
    def size_ratio(self) -> float:
        return self.int8_bytes / self.float_bytes

    def lines(self) -> list[str]:
        change = self.int8_metric - self.float_metric
        return [f"int8 ONNX: {self.int8_bytes:,} bytes, {self.size_ratio:.2f} x the float model's "
                f"{self.float_bytes:,}",
                f"{self.metric} on {self.held_out}: float {self.float_metric:.4g}, int8 {self.int8_metric:.4g} "
                f"(change {change:+.4g}); largest output difference {self.max_abs_diff:.3g}"]


def adapt_and_export(model, support, out: Path, steps: int | None = None, query: Samples | None = None,
                     quantize: bool = False, seed: int = 0) -> tuple[list[str], list[Path]]:
    """Adapt ``model`` to ``support`` (:class:`Samples`, or an RL task row (1, P)) and write the adapted
    bundle, its float ONNX and with ``quantize`` its int8 ONNX into the new folder ``out`` (built beside it
    and renamed into place: whole or not at all).  The metrics are on ``query`` (default: the support
    samples; RL: fresh deterministic episodes in the task).  Returns the report's lines and the files."""
    import os
    import shutil

    from .onnx_export import onnx_runner, quantize_int8, run_onnx

    out = Path(out).absolute()  # (an --out of "." is the folder by its name: the temporary one goes beside it)
    check_out_dir(out)
    rl = model.family.kind == "rl"
    if rl:
        row = support
        source = ", ".join(f"{k}={v:.4g}" for k, v in zip(model.family.task_param_names, row[0].tolist()))
        adapted = adapt_policy(model, row, steps, seed)
    else:
        if query is not None and query.classes and support.classes and query.classes != support.classes:
            raise ConfigError(f"--query: its classes ({', '.join(query.classes)}) are not the support's "
                              f"({', '.join(support.classes)})")
        source = support.source
        adapted = adapt_supervised(model, support, steps)
    on_query = query is not None
    query = query if query is not None else support
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    try:
        written = [out / p.name for p in write_adapted(model, adapted, tmp, source)]
        onnx = tmp / FLOAT_ONNX
        if rl:
            spec, discrete = model.learner.policy.spec, model.family.discrete_actions
            n = model.learner.eval_trajectories
            metric, held_out = "return", f"{n} episodes in the task"
            got = policy_return(model.family, spec, discrete, onnx_runner(onnx), row, n, seed)
            lines = [f"adapted {model.algorithm} policy to {source} in {adapted.steps} inner step(s); return of the "
                     f"deterministic float ONNX policy over {n} episodes: {got:.4g}"]
        else:
            want, outputs = adapted.predict(query.x), run_onnx(onnx, query.x)
            metric = model.family.metric
            held_out = "the query samples" if on_query else "the support samples (no query samples given)"
            got = supervised_metric(metric, outputs, query.y)
            lines = [f"adapted {model.algorithm} to {source} in {adapted.steps} inner step(s); {metric} on "
                     f"{'the query samples' if on_query else 'its support samples'}: "
                     f"{supervised_metric(metric, want, query.y):.4g}",
                     f"ONNX reproduces the adapted predictions: largest difference "
                     f"{float(np.abs(outputs - want).max()):.2g}"]
        if quantize:
            int8 = quantize_int8(onnx, tmp / INT8_ONNX)
            written.append(out / INT8_ONNX)
            if rl:
                probe = model.family.make_env(row).reset(n, seeding.generator("adapt-returns", seed))
                probe = probe.reshape(-1, probe.shape[-1]).float().numpy()
                diff = float(np.abs(run_onnx(int8, probe) - run_onnx(onnx, probe)).max())
                got8 = policy_return(model.family, spec, discrete, onnx_runner(int8), row, n, seed)
            else:
                q8 = run_onnx(int8, query.x)
                diff, got8 = float(np.abs(q8 - outputs).max()), supervised_metric(metric, q8, query.y)
            lines += Comparison(metric, onnx.stat().st_size, int8.stat().st_size, got, got8, held_out, diff).lines()
        if out.exists():
            out.rmdir()  # new or empty (check_out_dir): renamed over
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return lines, written


__all__ = ["Adapted", "Comparison", "Samples", "adapt_and_export", "adapt_policy", "adapt_supervised", "check_out_dir",
           "policy_return", "read_samples", "read_task", "supervised_metric", "write_adapted"]
