"""The regression playground, without Qt: adapt a meta-learned model to support points a person chose.

A :class:`RegressionSession` wraps a supervised :class:`~workbench.services.bundle.MetaModel` of a 1-D
regression family whose true function is known (the sinusoid), and optionally a baseline model of the same
family (usually the pretrained one).  From a set of support points it adapts both, one inner step at a
time, each with the inner rule it was trained with (learning rates, Meta-SGD's per-parameter rates,
which layers adapt), and reports after every step the prediction on a dense grid and the support and
query losses::

    session = RegressionSession(load_bundle("runs/maml/model.safetensors"), load_bundle("runs/pre/..."))
    x, y = session.sample_points(10, amplitude=2.0, phase=0.5, seed=0)
    for r in session.steps(x, y, 10, true=(2.0, 0.5)):
        print(r.step, r.support_loss, r.query_loss, r.baseline_support_loss)

Nothing here touches widgets: the GUI runs :meth:`Adaptation.run` on a worker thread and draws the
:class:`StepResult` objects it yields (fresh numpy arrays, never mutated afterwards).
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from workbench.core.errors import WorkbenchError

SUPPORTED_FAMILIES = ("sinusoid",)  # 1-D regression families whose true function the playground can draw
GRID_POINTS = 200
Y_MARGIN = 1.3  # clicks are accepted up to 30% beyond the family's largest amplitude


class PlaygroundError(WorkbenchError):
    """Input the playground cannot adapt to (no points, points out of range, a diverged prediction)."""


@dataclass
class StepResult:
    """The state after ``step`` inner steps (0 = before adaptation).  Arrays are float64, shape (G,)."""

    step: int
    grid_x: np.ndarray
    prediction: np.ndarray
    baseline_prediction: np.ndarray | None
    support_loss: float
    query_loss: float | None  # MSE on the grid against the true function; None when it is unknown
    baseline_support_loss: float | None
    baseline_query_loss: float | None


def _is_meta_model(model) -> bool:
    from .bundle import MetaModel

    return isinstance(model, MetaModel)


def describe_rule(model) -> str:
    """One line on how a model adapts: its algorithm, inner learning rate(s), adapted layers, trained steps."""
    rule = model.rule
    lr = ("learned per-parameter learning rates" if not all(isinstance(v, float) for v in rule.lrs)
          else f"inner lr {rule.lrs[0]:g}" if rule.lrs else "no adapted parameters")
    net = model.network
    layers = ("all layers adapt" if rule.first == 0 else "only the head adapts" if rule.first == net.head_start
              else f"parameters {', '.join(net.names[rule.first:])} adapt")
    return f"{model.algorithm}: {lr}, {layers}, trained with {rule.steps} step{'s' if rule.steps != 1 else ''}"


class RegressionSession:
    """A model (and an optional baseline of the same family) ready to adapt to hand-placed support points."""

    def __init__(self, model, baseline=None):
        reason = self.why_not(model)
        if reason:
            raise PlaygroundError(reason)
        if baseline is not None:
            reason = self.why_not(baseline)
            if reason:
                raise PlaygroundError(f"baseline: {reason}")
            if baseline.meta["family"] != model.meta["family"]:
                raise PlaygroundError(f"the baseline is a {baseline.meta['family']} model, the model a "
                                      f"{model.meta['family']} one: open a baseline of the same family")
        self.model, self.baseline = model, baseline
        self.family = model.family
        cfg = self.family.cfg
        self.x_range = (float(cfg.x_min), float(cfg.x_max))
        self.amp_range = (float(cfg.amp_min), float(cfg.amp_max))
        self.phase_range = (float(cfg.phase_min), float(cfg.phase_max))
        # tasks as far as the family's task map reaches (its margin beyond the training range): a map cell
        # opens here, extrapolation included
        from workbench.core.taskmap import DEFAULT_MARGIN

        self.task_extent = {p.name: tuple(float(v) for v in p.grid(2, DEFAULT_MARGIN))
                            for p in self.family.map_params()}
        self.task_extent.setdefault("amplitude", self.amp_range)
        self.task_extent.setdefault("phase", self.phase_range)
        reach = Y_MARGIN * max(*map(abs, self.task_extent["amplitude"]), 0.8)
        self.y_range = (-reach, reach)
        self.shots = int(cfg.shots)
        self.grid = self.family.input_grid(GRID_POINTS).to(torch.float32)  # (G, 1)

    # -- what the playground can open ---------------------------------------------------------------
    @staticmethod
    def why_not(model) -> str:
        """Why ``model`` cannot be used here ("" when it can)."""
        if model is None:
            return "no model: train one or open a bundle"
        if not _is_meta_model(model):
            family = getattr(model, "meta", {}).get("family", "?") if isinstance(getattr(model, "meta", None),
                                                                                  dict) else "?"
            return (f"a {family} model adapts from the trajectories it collects; the regression playground "
                    f"takes a supervised 1-D regression model (sinusoid)")
        family = model.meta.get("family", getattr(model.family, "name", "?"))
        if family not in SUPPORTED_FAMILIES or model.network.in_shape != (1,) or model.network.out_dim != 1:
            return (f"the regression playground works on 1-D regression families with a known true function "
                    f"({', '.join(SUPPORTED_FAMILIES)}), not on {family!r}")
        return ""

    @staticmethod
    def supports(model) -> bool:
        return not RegressionSession.why_not(model)

    # -- the true function -------------------------------------------------------------------------
    def _check_task(self, amplitude: float, phase: float) -> None:
        for name, value, (lo, hi) in (("amplitude", amplitude, self.amp_range), ("phase", phase, self.phase_range)):
            elo, ehi = self.task_extent[name]
            if not math.isfinite(value) or not elo - 1e-9 <= value <= ehi + 1e-9:
                raise PlaygroundError(f"{name} {value:g} is outside the family's range [{lo:g}, {hi:g}] and the "
                                      f"task map's margin beyond it ({elo:.3g} to {ehi:.3g})")

    def true_values(self, x, amplitude: float, phase: float) -> np.ndarray:
        """The true function of task (amplitude, phase) at inputs ``x`` (N,)."""
        params = torch.tensor([[amplitude, phase]], dtype=torch.float64)
        x = torch.as_tensor(np.asarray(x, dtype=np.float64)).reshape(1, -1, 1)
        return self.family.function(params, x)[0, :, 0].numpy().astype(np.float64)

    def true_curve(self, amplitude: float, phase: float) -> tuple[np.ndarray, np.ndarray]:
        """The true function on the playground's grid: (grid_x, y), float64."""
        gx = self.grid[:, 0].double().numpy()
        return gx, self.true_values(gx, amplitude, phase)

    def sample_points(self, k: int, amplitude: float, phase: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``k`` support points of task (amplitude, phase), inputs uniform over the family's range."""
        if int(k) < 1:
            raise PlaygroundError(f"K = {k}: place at least 1 support point (choose K >= 1)")
        self._check_task(amplitude, phase)
        g = torch.Generator().manual_seed(int(seed))
        x = self.family.sample_inputs(1, int(k), g)[0, :, 0].double().numpy()
        return x, self.true_values(x, amplitude, phase)

    # -- checks ------------------------------------------------------------------------------------
    def check_point(self, x: float, y: float) -> None:
        """Refuse one point outside the family's input range (or far outside its outputs)."""
        if not (math.isfinite(x) and math.isfinite(y)):
            raise PlaygroundError(f"the point (x={x}, y={y}) has a non-finite coordinate")
        lo, hi = self.x_range
        if not lo <= x <= hi:
            raise PlaygroundError(f"the point at x = {x:.3g} is outside the family's input range "
                                  f"[{lo:g}, {hi:g}]")
        ylo, yhi = self.y_range
        if not ylo <= y <= yhi:
            raise PlaygroundError(f"the point at y = {y:.3g} is outside the outputs of the family's tasks "
                                  f"(amplitude up to {self.amp_range[1]:g}; accepted [{ylo:.3g}, {yhi:.3g}])")

    def validate(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """The support set as float64 arrays (K,), or a :class:`PlaygroundError` naming what is wrong."""
        try:
            x = np.asarray(x, dtype=np.float64).reshape(-1)
            y = np.asarray(y, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as e:
            raise PlaygroundError(f"the support points are not numbers ({e})") from None
        if len(x) != len(y):
            raise PlaygroundError(f"{len(x)} x values but {len(y)} y values")
        if len(x) < 1:
            raise PlaygroundError("no support points: place at least 1 support point")
        for i, (a, b) in enumerate(zip(x, y)):
            if not (np.isfinite(a) and np.isfinite(b)):
                raise PlaygroundError(f"support point {i + 1} has a non-finite value (x={a}, y={b})")
        for a, b in zip(x, y):
            self.check_point(float(a), float(b))
        return x, y

    # -- adaptation --------------------------------------------------------------------------------
    def start(self, x, y, true: tuple[float, float] | None = None) -> "Adaptation":
        """A fresh adaptation to support points (x, y); ``true`` = (amplitude, phase) when known."""
        x, y = self.validate(x, y)
        if true is not None:
            self._check_task(float(true[0]), float(true[1]))
        return Adaptation(self, x, y, true)

    def steps(self, x, y, n_steps: int, true: tuple[float, float] | None = None,
              cancel: threading.Event | None = None) -> Iterator[StepResult]:
        """Step 0 (before adaptation) and each of ``n_steps`` inner steps; stops early once ``cancel`` is set."""
        if int(n_steps) < 0:
            raise PlaygroundError(f"{n_steps} steps: choose 0 or more")
        return self.start(x, y, true).run(int(n_steps), cancel)


class _Learner:
    """One model's fast weights on the support set."""

    def __init__(self, model, xs: torch.Tensor, ys: torch.Tensor):
        self.model, self.rule = model, model.rule
        self.xs, self.ys = xs, ys
        self.fast = [p.detach() for p in model.params]

    def step(self) -> None:
        from workbench.core.adaptation import inner_step

        with torch.no_grad():
            self.fast = inner_step(self.model.network, self.fast, self.rule, self.xs, self.ys)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        # the same parameters, in the same layout, as MetaModel.adapt(...).predict(x)
        params = [p[0] if p.dim() > s.dim() else p for p, s in zip(self.fast, self.model.params)]
        with torch.no_grad():
            return self.model.network.forward(params, x.unsqueeze(0))[0]


class Adaptation:
    """One support set being adapted to, step by step: the model and the baseline, each with its own rule.

    :meth:`run` may be called again to go on from where it stopped (the GUI's Step button); one thread at a
    time.
    """

    def __init__(self, session: RegressionSession, x: np.ndarray, y: np.ndarray,
                 true: tuple[float, float] | None):
        self.session = session
        self.x, self.y = x.copy(), y.copy()
        self.true = None if true is None else (float(true[0]), float(true[1]))
        xs = torch.from_numpy(x.astype(np.float32)).reshape(1, -1, 1)
        ys = torch.from_numpy(y.astype(np.float32)).reshape(1, -1, 1)
        self._xs, self._ys = xs[0], ys[0]
        self.learner = _Learner(session.model, xs, ys)
        self.base = _Learner(session.baseline, xs, ys) if session.baseline is not None else None
        self.grid = session.grid
        self.grid_x = self.grid[:, 0].double().numpy()
        self.truth = None if self.true is None else torch.from_numpy(
            session.true_values(self.grid_x, *self.true).astype(np.float32)).unsqueeze(-1)
        self.step = 0  # inner steps taken
        self._reported = -1  # the last step a StepResult was produced for

    def _measure(self, learner: _Learner, who: str) -> tuple[np.ndarray, float, float | None]:
        pred = learner.predict(self.grid)
        support = learner.predict(self._xs)
        support_loss = float((support - self._ys).pow(2).mean())
        query_loss = None if self.truth is None else float((pred - self.truth).pow(2).mean())
        finite = torch.isfinite(pred).all() and math.isfinite(support_loss) and (
            query_loss is None or math.isfinite(query_loss))
        if not finite:
            raise PlaygroundError(f"{who} prediction diverged at step {self.step}; fewer steps or another model")
        return pred[:, 0].double().numpy().copy(), support_loss, query_loss

    def result(self) -> StepResult:
        """The state after the steps taken so far."""
        pred, sl, ql = self._measure(self.learner, "the")
        bpred = bsl = bql = None
        if self.base is not None:
            bpred, bsl, bql = self._measure(self.base, f"the baseline's ({self.base.model.algorithm})")
        self._reported = self.step
        return StepResult(self.step, self.grid_x.copy(), pred, bpred, sl, ql, bsl, bql)

    def _take_step(self) -> None:
        self.learner.step()
        if self.base is not None:
            self.base.step()
        self.step += 1

    def advance(self) -> StepResult:
        """One more inner step of the model and the baseline."""
        self._take_step()
        return self.result()

    def skip(self, n_steps: int, cancel: threading.Event | None = None) -> None:
        """Take ``n_steps`` steps without reporting them (to get back to a state already shown)."""
        for _ in range(int(n_steps)):
            if cancel is not None and cancel.is_set():
                return
            self._take_step()
        self._reported = self.step

    def run(self, n_steps: int, cancel: threading.Event | None = None) -> Iterator[StepResult]:
        """Yield the current state if it was never reported (step 0 of a fresh adaptation), then ``n_steps``
        more steps; ``cancel`` is checked before each."""
        if self._reported < self.step:
            if cancel is not None and cancel.is_set():
                return
            yield self.result()
        for _ in range(int(n_steps)):
            if cancel is not None and cancel.is_set():
                return
            yield self.advance()


# -- what the page shows, computed without Qt ---------------------------------------------------------------
SLIDER_TICKS = 200  # the amplitude and phase sliders' resolution


def tick_value(tick: int, low: float, high: float, ticks: int = SLIDER_TICKS) -> float:
    """The value at slider position ``tick`` of ``ticks`` over [low, high]."""
    return low + (high - low) * int(tick) / ticks


def value_tick(value: float, low: float, high: float, ticks: int = SLIDER_TICKS) -> int:
    """The slider position nearest ``value`` (clamped to 0..ticks; 0 for an empty range)."""
    if not high > low:
        return 0
    return max(0, min(ticks, round(ticks * (value - low) / (high - low))))


def log_ticks(lo: float, hi: float) -> list:
    """Ticks of a log axis over log10 values lo..hi: labelled decades, and 2 and 5 between them labelled
    only when the axis spans under 2.5 decades (pyqtgraph's own labels every minor tick and they overlap)."""
    label_minor = hi - lo < 2.5
    major = [(float(k), f"{10.0 ** k:g}") for k in range(math.floor(lo), math.ceil(hi) + 1) if lo <= k <= hi]
    minor = []
    for k in range(math.floor(lo) - 1, math.ceil(hi) + 1):
        for m in ((2, 5) if label_minor else (2, 3, 4, 5, 6, 7, 8, 9)):
            v = math.log10(m) + k
            if lo <= v <= hi:
                minor.append((v, f"{m * 10.0 ** k:g}" if label_minor else ""))
    return [major, minor]


def loss_view(total: int, values: np.ndarray, view: tuple | None) -> tuple | None:
    """The loss chart's view (steps, log10 low, log10 high) for the positive losses ``values`` over ``total``
    steps, or None when the current ``view`` still holds them (the range changes now and then, not per step)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v) & (v > 0)]
    if not len(v):
        return None
    lo, hi = float(np.log10(v.min())), float(np.log10(v.max()))
    if view is not None and view[0] == total and lo >= view[1] and hi <= view[2]:
        return None
    span = max(hi - lo, 0.5)
    return total, lo - 0.1 * span, hi + 0.1 * span


class StepPacer:
    """When the steps of an adaptation appear: at most one every ``interval`` seconds, faster for a long
    adaptation so that all of it takes about ``animation`` seconds (the steps animate, never crawl)."""

    def __init__(self, interval: float = 0.06, animation: float = 2.0):
        self.interval, self.animation = interval, animation
        self.step_interval = interval
        self.started = 0.0
        self.shown = 0

    def start(self, n_steps: int, now: float) -> None:
        self.step_interval = min(self.interval, self.animation / max(1, int(n_steps)))
        self.started, self.shown = now, 0

    def due(self, now: float) -> int:
        """How many more steps may be shown at time ``now``."""
        return max(0, int((now - self.started) / self.step_interval) + 1 - self.shown)

    def showed(self, n: int) -> None:
        self.shown += int(n)


def _steps(n: int) -> str:
    return f"{n} step{'s' if n != 1 else ''}"


def step_caption(step: int, support: float, query: float | None) -> str:
    """The numbers of one plot after ``step`` steps: "step 3: support MSE 0.12, query MSE 0.4"."""
    text = f"step {step}: support MSE {support:.3g}"
    return text + (f", query MSE {query:.3g}" if query is not None else "")


def adaptation_summary(results: list, model_algorithm: str, baseline_algorithm: str | None = None) -> str:
    """One line on an adaptation shown (a list of :class:`StepResult`): the losses before → after."""
    first, last = results[0], results[-1]
    text = f"{model_algorithm}: support MSE {first.support_loss:.3g} → {last.support_loss:.3g}"
    if last.query_loss is not None:
        text += f", query MSE {first.query_loss:.3g} → {last.query_loss:.3g}"
    text += f" after {_steps(last.step)}"
    if last.baseline_support_loss is not None:
        text += (f"; {baseline_algorithm}: support {first.baseline_support_loss:.3g} → "
                 f"{last.baseline_support_loss:.3g}")
        if last.baseline_query_loss is not None:
            text += f", query {first.baseline_query_loss:.3g} → {last.baseline_query_loss:.3g}"
    return text


class SupportSet:
    """The support points a person placed or sampled, and the task (amplitude, phase) they were sampled
    from while that is known (a point placed by hand makes it unknown; removing one keeps it)."""

    def __init__(self):
        self.x: list[float] = []
        self.y: list[float] = []
        self.true: tuple[float, float] | None = None

    def __len__(self) -> int:
        return len(self.x)

    def replace(self, x, y, true: tuple[float, float] | None = None) -> None:
        self.x = [float(v) for v in np.asarray(x, dtype=np.float64).reshape(-1)]
        self.y = [float(v) for v in np.asarray(y, dtype=np.float64).reshape(-1)]
        self.true = None if true is None else (float(true[0]), float(true[1]))

    def add(self, x: float, y: float) -> None:
        self.x.append(float(x))
        self.y.append(float(y))
        self.true = None

    def remove(self, index: int) -> bool:
        if not 0 <= index < len(self.x):
            return False
        del self.x[index], self.y[index]
        return True

    def clear(self) -> None:
        self.x, self.y, self.true = [], [], None

    def keep_fitting(self, session: RegressionSession) -> None:
        """Drop the points ``session``'s family refuses (to compare models on the same points); the task is
        forgotten when a point went or it is outside the family's ranges."""
        def fits(x, y):
            try:
                session.check_point(x, y)
            except PlaygroundError:
                return False
            return True

        keep = [(x, y) for x, y in zip(self.x, self.y) if fits(x, y)]
        if self.true is not None:
            (alo, ahi), (plo, phi) = session.amp_range, session.phase_range
            if len(keep) < len(self.x) or not (alo <= self.true[0] <= ahi and plo <= self.true[1] <= phi):
                self.true = None
        self.x, self.y = [x for x, _ in keep], [y for _, y in keep]

    def describe(self) -> str:
        n = len(self.x)
        points = f"{n} point{'s' if n != 1 else ''}"
        if self.true is not None:
            return (f"{points} sampled from A sin(x − φ), A = {self.true[0]:.2f}, φ = {self.true[1]:.2f}: "
                    f"the true function (dashed) and query loss are known")
        if n:
            return f"{points} placed by hand: the true function is unknown"
        return "no points yet"

    def nearest(self, xs, ys, x: float, y: float) -> tuple[int, float]:
        """The index of the point nearest (x, y) and its distance, the points given at positions (xs, ys)
        (e.g. in pixels); (-1, inf) when there are none."""
        if not len(xs):
            return -1, math.inf
        d = np.hypot(np.asarray(xs, dtype=np.float64) - x, np.asarray(ys, dtype=np.float64) - y)
        i = int(np.argmin(d))
        return i, float(d[i])
