"""The classification playground, without Qt: classify a character a person drew, from support drawings
they made (or a held-out task they sampled and then edited), with a meta-learned model and beside it a
baseline, each adapting with the rule it was trained with.

A :class:`ClassificationSession` wraps a :class:`~workbench.services.bundle.MetaModel` of an N-way K-shot
image family (``glyphs``, Omniglot, mini-ImageNet) and optionally a baseline of the same family (usually the
pretrained one, which fine-tunes its head).  Drawings are mouse strokes, lists of (x, y) points in [0, 1]²
image coordinates (x to the right, y down), rasterised as the ``glyphs`` family draws its characters: white
ink 1.0 on black 0.0, a pen half-width within the family's range, one pixel of anti-aliased edge::

    session = ClassificationSession(load_bundle("runs/protonet/model.safetensors"), load_bundle("runs/pre/..."))
    image = session.rasterize([[(0.2, 0.2), (0.8, 0.8)], [(0.8, 0.2), (0.2, 0.8)]])  # an "x": (1, 28, 28)
    task = session.sample_task(seed=0)
    for r in session.steps(task.images, task.labels, task.query):
        print(r.step, r.probabilities, r.baseline_probabilities)

Classes are labelled 0..N-1 in the arrays and named "class 1".."class N" in messages (as the GUI shows them).

Batch norm: the few-shot networks normalise with the statistics of the batch they are given (no running
statistics, as MAML's reference code), so one image alone would be normalised by itself.  The query is
therefore classified in one batch with the support drawings (the images of the task's own classes, as the
query batch of a training episode is); the inner steps see the support set alone, as in training.

Nothing here touches widgets: the GUI runs :meth:`ClassificationSession.steps` on a worker thread and draws
the :class:`ClassStep` objects it yields (fresh numpy arrays, never mutated afterwards).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from workbench.tasks.glyphs import PEN_WIDTHS

from .playground_regression import PlaygroundError, describe_rule

__all__ = ["ClassificationSession", "ClassStep", "SampledTask", "PlaygroundError", "describe", "rasterize",
           "PEN_RANGE", "PEN"]

PEN_RANGE = PEN_WIDTHS  # the glyphs family's pen half-widths (image units)
PEN = 0.033  # a person's drawings: the middle of that range
MAX_POINTS = 20_000  # points of all the strokes of one drawing (a long scribble is ~1,000)
MAX_SUPPORT = 1_000  # support drawings of one task
SEGMENT_BUDGET = 1 << 20  # pixel × segment pairs rasterised at once


@dataclass
class ClassStep:
    """The class probabilities after ``step`` inner steps (0 = before adaptation).  A model with fewer
    trained steps than ``step`` stays at its last one: ``model_step`` / ``baseline_step`` say which."""

    step: int
    probabilities: np.ndarray  # (N,) float64, sums to 1
    model_step: int
    baseline_probabilities: np.ndarray | None
    baseline_step: int | None

    @property
    def predicted(self) -> int:
        return int(np.argmax(self.probabilities))

    @property
    def baseline_predicted(self) -> int | None:
        return None if self.baseline_probabilities is None else int(np.argmax(self.baseline_probabilities))


@dataclass
class SampledTask:
    """A held-out N-way K-shot task: ``images`` (N·K, C, H, W) float32 in [0, 1], class-major; ``labels``
    (N·K,) int64; one ``query`` image (C, H, W) of class ``query_label``; the pool's ``class_names``."""

    images: np.ndarray
    labels: np.ndarray
    query: np.ndarray
    query_label: int
    class_names: list[str]


def _is_meta_model(model) -> bool:
    from .bundle import MetaModel

    return isinstance(model, MetaModel)


def describe(model) -> str:
    """One line on how a classifier adapts: prototypes, or its inner rule and trained steps."""
    if model.rule.kind == "prototypes":
        return f"{model.algorithm}: nearest prototype (mean embedding of each class's drawings), no inner steps"
    return describe_rule(model)


def _segment_distance(pixels: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Distance of every pixel centre (P, 2) to the polyline through ``pts`` (M, 2), M >= 1: (P,).  Segments
    go in chunks, so that a long scribble on a large image needs ~50 MB at most."""
    if len(pts) == 1:
        return np.hypot(*(pixels - pts[0]).T)
    out = np.full(len(pixels), np.inf)
    chunk = max(1, SEGMENT_BUDGET // len(pixels))
    for s in range(0, len(pts) - 1, chunk):
        b = pts[s + 1:s + chunk + 1]
        a = pts[s:s + len(b)]  # (S, 2) segments a -> b
        ab = b - a
        length2 = (ab ** 2).sum(-1)  # (S,)
        ap = pixels[:, None, :] - a[None]  # (P, S, 2)
        t = ((ap * ab).sum(-1) / np.where(length2 > 0, length2, 1.0)).clip(0.0, 1.0)  # 0 for a zero-length one
        d = ap - t[..., None] * ab
        out = np.minimum(out, np.sqrt((d ** 2).sum(-1)).min(1))
    return out


def rasterize(strokes, size, pen: float = PEN, channels: int = 1) -> np.ndarray:
    """Mouse ``strokes`` (a list of strokes, each a sequence of (x, y) in [0, 1]²; a single point is a dot)
    drawn like a glyph: (channels, H, W) float32, 1.0 on the stroke, 0.0 off it, one pixel of anti-aliased
    edge (``size``: H = W, or (H, W); ``pen``: the half-width in image units)."""
    h, w = (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))
    if not (1 <= h <= 4096 and 1 <= w <= 4096):
        raise PlaygroundError(f"an image of {h}×{w} pixels cannot be drawn")
    if not (np.isfinite(pen) and 0 < pen <= 0.5):
        raise PlaygroundError(f"pen half-width {pen!r}: expected a number in (0, 0.5] (image units)")
    side = float(min(h, w))
    gy, gx = np.meshgrid((np.arange(h) + 0.5) / h * h / side, (np.arange(w) + 0.5) / w * w / side, indexing="ij")
    pixels = np.stack([gx.ravel(), gy.ravel()], -1)  # pixel centres, in units of the shorter side
    dist = np.full(h * w, np.inf)
    total = 0
    for i, stroke in enumerate(strokes or []):
        try:
            pts = np.asarray(stroke, dtype=np.float64).reshape(-1, 2)
        except (TypeError, ValueError):
            raise PlaygroundError(f"stroke {i + 1} is not a list of (x, y) points") from None
        if len(pts) == 0:
            continue
        if not np.isfinite(pts).all():
            raise PlaygroundError(f"stroke {i + 1} has a non-finite point")
        total += len(pts)
        if total > MAX_POINTS:
            raise PlaygroundError(f"the drawing has more than {MAX_POINTS} points")
        pts = pts.clip(-0.5, 1.5) * np.array([w / side, h / side])  # the pen may go off the image
        dist = np.minimum(dist, _segment_distance(pixels, pts))
    ink = ((pen + 0.5 / side - dist) * side).clip(0.0, 1.0).astype(np.float32).reshape(1, h, w)
    return np.repeat(ink, channels, 0) if channels > 1 else ink


class ClassificationSession:
    """A classifier (and an optional baseline of the same family) ready to classify drawings."""

    def __init__(self, model, baseline=None):
        reason = self.why_not(model)
        if reason:
            raise PlaygroundError(reason)
        if baseline is not None:
            reason = self.why_not(baseline)
            if reason:
                raise PlaygroundError(f"baseline: {reason}")
            if baseline.meta.get("family") != model.meta.get("family") or (
                    tuple(baseline.family.in_shape) != tuple(model.family.in_shape)
                    or baseline.family.cfg.ways != model.family.cfg.ways):
                raise PlaygroundError(f"the baseline is a {baseline.family.cfg.ways}-way {baseline.meta.get('family')} "
                                      f"model, the model a {model.family.cfg.ways}-way {model.meta.get('family')} one: "
                                      f"open a baseline of the same family and ways")
        self.model, self.baseline = model, baseline
        self.family = model.family
        cfg = self.family.cfg
        self.ways, self.shots = int(cfg.ways), int(cfg.shots)
        self.image_shape = tuple(int(v) for v in self.family.in_shape)  # (C, H, W)

    # -- what the playground can open ---------------------------------------------------------------
    @staticmethod
    def why_not(model) -> str:
        """Why ``model`` cannot be used here ("" when it can)."""
        if model is None:
            return "no model: train one or open a bundle"
        family = getattr(getattr(model, "family", None), "name", None) or (
            model.meta.get("family", "?") if isinstance(getattr(model, "meta", None), dict) else "?")
        if not _is_meta_model(model) or getattr(model.family, "kind", None) != "classification":
            return (f"the classification playground takes an N-way K-shot image classifier (glyphs, Omniglot, "
                    f"mini-ImageNet), not a {family} model")
        shape = tuple(getattr(model.family, "in_shape", ()))
        if len(shape) != 3 or shape[0] not in (1, 3):
            return f"the classification playground draws grayscale or RGB images; {family} has images of shape {shape}"
        return ""

    @staticmethod
    def supports(model) -> bool:
        return not ClassificationSession.why_not(model)

    @property
    def size(self) -> tuple[int, int]:
        return self.image_shape[1], self.image_shape[2]

    def rasterize(self, strokes, pen: float = PEN) -> np.ndarray:
        """Strokes drawn as one of this family's images (C, H, W) (the ink on every channel)."""
        return rasterize(strokes, self.size, pen, self.image_shape[0])

    def class_name(self, label: int) -> str:
        return f"class {int(label) + 1}"

    # -- checks ------------------------------------------------------------------------------------
    def _image(self, image, what: str) -> np.ndarray:
        if image is None:
            raise PlaygroundError(f"{what} is blank: draw a character")
        try:
            a = np.asarray(image, dtype=np.float32)
        except (TypeError, ValueError):
            raise PlaygroundError(f"{what} is not an image (an array of pixel values)") from None
        c, h, w = self.image_shape
        if a.shape == (h, w) and c == 1:
            a = a[None]
        if a.shape != (c, h, w):
            raise PlaygroundError(f"{what} has shape {tuple(a.shape)}; this model takes images of shape {(c, h, w)}")
        if not np.isfinite(a).all():
            raise PlaygroundError(f"{what} has non-finite pixel values")
        if a.min() < -1e-6 or a.max() > 1 + 1e-6:
            raise PlaygroundError(f"{what} has pixel values outside [0, 1] ({a.min():.3g}..{a.max():.3g})")
        if a.max() <= 0:
            raise PlaygroundError(f"{what} is blank: draw a character")
        return a.clip(0.0, 1.0)

    def validate(self, support_images, labels, query_image) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The task as tensors (xs (M, C, H, W), ys (M,), xq (1, C, H, W)), or a :class:`PlaygroundError`
        naming what is wrong (a class without a drawing, a blank or misshapen image, a label out of range)."""
        try:
            labels = np.asarray(labels).reshape(-1)
        except (TypeError, ValueError):
            raise PlaygroundError("the labels are not a list of class numbers") from None
        if labels.size and not (np.issubdtype(labels.dtype, np.integer) or (
                np.issubdtype(labels.dtype, np.floating) and np.isfinite(labels).all()
                and (labels == np.round(labels)).all())):
            raise PlaygroundError(f"the labels must be class numbers 0..{self.ways - 1}, got {labels.dtype} values")
        labels = labels.astype(np.int64)
        images = list(support_images) if support_images is not None else []
        if len(images) != len(labels):
            raise PlaygroundError(f"{len(images)} support drawings but {len(labels)} labels")
        if len(images) > MAX_SUPPORT:
            raise PlaygroundError(f"{len(images)} support drawings: at most {MAX_SUPPORT}")
        bad = [int(v) for v in labels if not 0 <= v < self.ways]
        if bad:
            raise PlaygroundError(f"label {bad[0]} is not a class of this {self.ways}-way model "
                                  f"(labels 0..{self.ways - 1})")
        counts = np.bincount(labels, minlength=self.ways)
        missing = [c for c in range(self.ways) if counts[c] == 0]
        if missing:
            names = ", ".join(self.class_name(c) for c in missing)
            verb = "has" if len(missing) == 1 else "have"
            raise PlaygroundError(f"{names} {verb} no drawing: draw at least one character for each of the "
                                  f"{self.ways} classes (or press 'Sample a new task')")
        seen = np.zeros(self.ways, dtype=np.int64)
        xs = []
        for image, label in zip(images, labels):
            seen[label] += 1
            xs.append(self._image(image, f"drawing {seen[label]} of {self.class_name(label)}"))
        xq = self._image(query_image, "the query")
        return (torch.from_numpy(np.stack(xs)), torch.from_numpy(labels.copy()), torch.from_numpy(xq[None].copy()))

    # -- classification ------------------------------------------------------------------------------
    def trained_steps(self, model) -> int:
        return 0 if model.rule.kind == "prototypes" else int(model.rule.steps)

    def steps(self, support_images, labels, query_image, n_steps: int | None = None,
              cancel: threading.Event | None = None) -> Iterator[ClassStep]:
        """The class probabilities of the query after step 0 (before adaptation) and each inner step, for
        the model and the baseline side by side; each takes its trained number of steps (``n_steps``: that
        many for both; prototypes always 0), and the longer one sets how many results come.  Stops early,
        without an error, once ``cancel`` is set.  Input errors are raised here, before the first result."""
        xs, ys, xq = self.validate(support_images, labels, query_image)
        if n_steps is not None and not (isinstance(n_steps, (int, np.integer)) and 0 <= int(n_steps) <= 1000):
            raise PlaygroundError(f"{n_steps!r} steps: choose 0 to 1000")
        return self._run(xs, ys, xq, n_steps, cancel)

    def _run(self, xs, ys, xq, n_steps, cancel) -> Iterator[ClassStep]:
        learners = [_Learner(self.model, xs, ys, xq, self.ways, n_steps, "the model's")]
        if self.baseline is not None:
            learners.append(_Learner(self.baseline, xs, ys, xq, self.ways, n_steps,
                                     f"the baseline's ({self.baseline.algorithm})"))
        total = max(learner.steps for learner in learners)
        for s in range(total + 1):
            if cancel is not None and cancel.is_set():
                return
            out = [learner.advance_to(s) for learner in learners]
            (p, ps), (b, bs) = out[0], (out[1] if len(out) > 1 else (None, None))
            yield ClassStep(s, p, ps, b, bs)

    # -- sampled tasks -------------------------------------------------------------------------------
    def sample_task(self, seed: int = 0) -> SampledTask:
        """A new N-way K-shot task of the family's evaluation classes (never seen in training), and one of
        its query images, chosen by ``seed``."""
        batch = self.family.evaluation_batch(1, int(seed))
        g = np.random.default_rng(int(seed))
        q = int(g.integers(batch.xq.shape[1]))
        names = (self.family.class_names(batch.params[0]) if hasattr(self.family, "class_names")
                 else [f"class {c}" for c in batch.params[0].tolist()])
        return SampledTask(batch.xs[0].numpy().astype(np.float32).copy(), batch.ys[0].numpy().astype(np.int64).copy(),
                           batch.xq[0, q].numpy().astype(np.float32).copy(), int(batch.yq[0, q]), names)


class _Learner:
    """One model on one task: its fast weights (or prototypes), stepped on demand up to its own last step."""

    def __init__(self, model, xs, ys, xq, ways: int, n_steps: int | None, who: str):
        self.model, self.rule, self.who, self.ways = model, model.rule, who, ways
        self.xs, self.ys = xs.unsqueeze(0), ys.unsqueeze(0)  # one task: (1, M, C, H, W), (1, M)
        self.joint = torch.cat([xs, xq]).unsqueeze(0)  # the query beside the support set (see the docstring)
        protos = self.rule.kind == "prototypes"
        self.steps = 0 if protos else int(model.rule.steps if n_steps is None else n_steps)
        self.fast = [p.detach() for p in model.params]
        self.step = 0
        self._last: np.ndarray | None = None

    def _probabilities(self) -> np.ndarray:
        net = self.model.network
        with torch.no_grad():
            if self.rule.kind == "prototypes":
                from workbench.core.adaptation import distance_logits, prototypes

                z = net.forward(self.fast, self.joint)  # (1, M + 1, D)
                m = self.xs.shape[1]
                logits = distance_logits(z[:, m:], prototypes(z[:, :m], self.ys, self.ways))[0, 0]
            else:
                params = [p[0] if p.dim() > s.dim() else p for p, s in zip(self.fast, self.model.params)]
                logits = net.forward(params, self.joint)[0, -1]
        logits = logits.double()
        if not torch.isfinite(logits).all():
            raise PlaygroundError(f"{self.who} prediction diverged at step {self.step}; try a model trained with "
                                  f"fewer steps")
        return torch.softmax(logits, -1).numpy().copy()

    def advance_to(self, s: int) -> tuple[np.ndarray, int]:
        """Probabilities after min(s, steps) inner steps, and that step count (a step is taken at most once)."""
        from workbench.core.adaptation import inner_step

        target = min(s, self.steps)
        if self._last is not None and target == self.step:
            return self._last.copy(), self.step
        while self.step < target:
            with torch.no_grad():
                self.fast = inner_step(self.model.network, self.fast, self.rule, self.xs, self.ys)
            self.step += 1
        self._last = self._probabilities()
        return self._last.copy(), self.step



# -- what the page shows, computed without Qt ---------------------------------------------------------------
def canvas_side(height: float, rows: int, low: int, high: int, gap: int) -> int:
    """The side of a support canvas, in pixels: as large as lets ``rows`` rows ``gap`` px apart fit in
    ``height`` px, between ``low`` and ``high``."""
    n = max(1, int(rows))
    return int(min(high, max(low, (height - gap * (n - 1)) / n)))


def query_side(width: float, height: float, support_width: float, low: int, high: int) -> int:
    """The side of the query canvas on a page ``width`` × ``height`` px whose support panel is
    ``support_width`` px wide: about a third of the height, at most 40% of the room beside the support set."""
    room = width - support_width
    return max(low, int(min(high, max(low, 0.36 * height), 0.4 * room)))


def after_text(step: int, prototypes: bool) -> str:
    """How far a model has adapted: "prototypes", "before adapting" or "N steps"."""
    if prototypes:
        return "prototypes"
    return "before adapting" if step == 0 else f"{step} step{'s' if step != 1 else ''}"


def step_text(step: int, last: int, running: bool) -> str:
    """The step slider's label: which of the steps is shown."""
    text = "one prediction: no inner steps" if last == 0 and not running else f"step {step} of {last}"
    return text + (" (running)" if running else "")


def bar_label(probability: float, predicted: bool) -> tuple[str, bool]:
    """A probability bar's number, and whether it goes inside the bar's end (a long bar has no room after it)."""
    inside = probability > 0.6
    return f"{100 * probability:.0f}%" + (" ◀" if predicted and not inside else ""), inside


def classification_summary(result: ClassStep, model_algorithm: str, baseline_algorithm: str | None,
                           query_label: int | None) -> str:
    """One line on a classification shown: each model's class and its probability (and the true class)."""
    text = f"{model_algorithm}: class {result.predicted + 1} ({100 * result.probabilities.max():.0f}%)"
    if result.baseline_probabilities is not None:
        text += (f"; {baseline_algorithm}: class {result.baseline_predicted + 1} "
                 f"({100 * result.baseline_probabilities.max():.0f}%)")
    if query_label is not None:
        text += f"; the query is class {query_label + 1}"
    return text
