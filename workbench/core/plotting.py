"""Plot arithmetic without Qt: bounded summaries of long series, tick choice, label placement, step names.

The app's live views (``workbench.gui.plots``) draw with pyqtgraph; everything they decide by arithmetic
lives here, so it is tested without a display:

- :class:`GrowingSeries` and :class:`PeakEnvelope`: an append-only series and its bounded min / max summary
  (what a live frame draws costs O(buckets), not O(run));
- :func:`choose_ticks`: a few tick labels that never overlap, on linear, integer and log axes;
- :func:`spread_labels`: positions for text labels of horizontal lines that do not overlap;
- :func:`step_names`: what each adaptation step is called ("before adaptation", "after 2 steps", or the
  algorithm's own names: "episode 3 of the trial", "after 2 episodes of context").
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

__all__ = ["GrowingSeries", "PeakEnvelope", "Ticks", "choose_ticks", "format_tick", "spread_labels",
           "step_name", "step_names", "view_range"]


class GrowingSeries:
    """An append-only float64 series with amortised O(1) appends and no copies for reading."""

    def __init__(self, capacity: int = 4096):
        self._a = np.empty(capacity, dtype=np.float64)
        self.n = 0

    def extend(self, values) -> None:
        values = np.asarray(values, dtype=np.float64)
        need = self.n + len(values)
        if need > len(self._a):
            grown = np.empty(max(need, 2 * len(self._a)), dtype=np.float64)
            grown[: self.n] = self._a[: self.n]
            self._a = grown
        self._a[self.n: need] = values
        self.n = need

    @property
    def data(self) -> np.ndarray:
        return self._a[: self.n]

    def clear(self) -> None:
        self.n = 0


# rows of PeakEnvelope._b: each bucket's lowest, highest and lowest positive finite sample (x and y)
_LOX, _LOY, _HIX, _HIY, _POSX, _POSY = range(6)
_EMPTY = np.array([np.nan, np.inf, np.nan, -np.inf, np.nan, np.inf])  # a bucket without finite samples


def _peak_buckets(x: np.ndarray, y: np.ndarray, width: int) -> np.ndarray:
    """(6, ceil(len / width)) buckets of ``width`` consecutive samples (the last one may hold fewer)."""
    m = len(y)
    k = -(-m // width)
    finite = np.isfinite(y)
    rows = np.empty((3, k * width))
    rows[:, m:] = _EMPTY[[_LOY, _HIY, _POSY], None]
    rows[0, :m] = np.where(finite, y, np.inf)
    rows[1, :m] = np.where(finite, y, -np.inf)
    with np.errstate(invalid="ignore"):
        rows[2, :m] = np.where(finite & (y > 0), y, np.inf)
    xs = np.full(k * width, np.nan)
    xs[:m] = x
    rows, xs = rows.reshape(3, k, width), xs.reshape(k, width)
    at = (rows[0].argmin(1), rows[1].argmax(1), rows[2].argmin(1))
    r = np.arange(k)
    out = np.empty((6, k))
    for j, i in enumerate(at):
        out[2 * j] = xs[r, i]
        out[2 * j + 1] = rows[j, r, i]
    return out


def _merge_buckets(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Buckets a[:, i] and b[:, i] as one (b's samples follow a's; a wins ties: the first extreme)."""
    out = a.copy()
    for x, y, take in ((_LOX, _LOY, b[_LOY] < a[_LOY]), (_HIX, _HIY, b[_HIY] > a[_HIY]),
                       (_POSX, _POSY, b[_POSY] < a[_POSY])):
        out[x] = np.where(take, b[x], a[x])
        out[y] = np.where(take, b[y], a[y])
    return out


class PeakEnvelope:
    """A bounded min / max ('peak') summary of an append-only series, kept up to date as samples arrive.

    At most ``buckets`` buckets of ``width`` consecutive samples each; each keeps its lowest, highest and
    lowest positive finite sample (the last for a log scale, where the others are not drawn).  When the
    buckets are full, neighbours are merged pairwise and ``width`` doubles: a new sample costs amortised
    O(1), and what a frame draws (:meth:`points`) and its range (:meth:`bounds`) cost O(buckets) whatever the
    run's length.  Every point drawn is a real sample at its own x; each bucket's extremes are never lost."""

    def __init__(self, buckets: int = 1024):
        if buckets < 2 or buckets % 2:
            raise ValueError("buckets must be an even number >= 2")
        self.capacity = buckets
        self._b = np.empty((6, buckets))
        self.clear()

    def clear(self) -> None:
        self.width = 1  # samples per bucket
        self.nb = 0  # buckets in use; all but the last hold ``width`` samples
        self.last_count = 0  # samples in the last bucket
        self.n = 0
        self.x_max = -np.inf
        self.last = (np.nan, np.nan)  # the newest sample: the curve ends there

    def extend(self, x, y) -> None:
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        m = len(y)
        if not m:
            return
        i = 0
        while i < m:
            if self.nb and self.last_count < self.width:  # top up the last bucket
                t = min(self.width - self.last_count, m - i)
                last = self._b[:, self.nb - 1: self.nb]
                self._b[:, self.nb - 1] = _merge_buckets(last, _peak_buckets(x[i: i + t], y[i: i + t], t))[:, 0]
                self.last_count += t
                i += t
                continue
            if self.nb == self.capacity:  # all full: merge neighbours, twice as wide
                half = self.capacity // 2
                self._b[:, :half] = _merge_buckets(self._b[:, 0::2], self._b[:, 1::2])
                self.nb, self.width = half, 2 * self.width
                self.last_count = self.width
            t = min((self.capacity - self.nb) * self.width, m - i)
            new = _peak_buckets(x[i: i + t], y[i: i + t], self.width)
            k = new.shape[1]
            self._b[:, self.nb: self.nb + k] = new
            self.nb += k
            self.last_count = t - (k - 1) * self.width
            i += t
        self.n += m
        finite_x = x[np.isfinite(x)]
        if len(finite_x):
            self.x_max = max(self.x_max, float(finite_x.max()))
        self.last = (float(x[-1]), float(y[-1]))

    def points(self, log: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """x, y (in the series' units) of each bucket's extremes in x order, then the newest sample: at most
        2 * buckets + 1 points.  ``log``: the lowest positive instead of the lowest (y > 0 only)."""
        b = self._b[:, : self.nb]
        ax, ay = (b[_POSX], b[_POSY]) if log else (b[_LOX], b[_LOY])
        ok = np.isfinite(ay)  # a bucket with a (positive) finite sample has a highest one, finite (positive)
        if self.width == 1:  # one sample per bucket: it is both extremes
            xs, ys = ax[ok], ay[ok]
        else:
            ax, ay, bx, by = ax[ok], ay[ok], b[_HIX][ok], b[_HIY][ok]
            first = ax <= bx
            xs, ys = np.empty((len(ax), 2)), np.empty((len(ax), 2))
            xs[:, 0], xs[:, 1] = np.where(first, ax, bx), np.where(first, bx, ax)
            ys[:, 0], ys[:, 1] = np.where(first, ay, by), np.where(first, by, ay)
            xs, ys = xs.ravel(), ys.ravel()
        lx, ly = self.last
        if len(xs) and lx > xs[-1] and np.isfinite(ly) and (ly > 0 or not log):
            xs, ys = np.append(xs, lx), np.append(ys, ly)
        return xs, ys

    def bounds(self, log: bool = False) -> tuple[float, float] | None:
        """The lowest (lowest positive when ``log``) and highest finite y, or None when there is none."""
        b = self._b[:, : self.nb]
        if not self.nb:
            return None
        lo, hi = float((b[_POSY] if log else b[_LOY]).min()), float(b[_HIY].max())
        return (lo, hi) if np.isfinite(lo) and np.isfinite(hi) else None


def view_range(x: np.ndarray, ys: Sequence[np.ndarray], log_y: bool):
    """((x0, x1), (y0, y1)) that show ``x`` and every finite y (positive y in log10 when ``log_y``), each at
    least 1 wide when the data has no extent; None when there is nothing to show."""
    ys = [np.asarray(y, dtype=np.float64) for y in ys if len(y)]
    ys = [y[np.isfinite(y)] for y in ys]
    ys = [y[y > 0] if log_y else y for y in ys]
    ys = [y for y in ys if len(y)]
    x = np.asarray(x, dtype=np.float64)
    if not len(x) or not ys or not np.isfinite(x).any():
        return None
    lo = min(float(y.min()) for y in ys)
    hi = max(float(y.max()) for y in ys)
    if log_y:
        lo, hi = math.log10(lo), math.log10(hi)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    x0, x1 = float(np.nanmin(x)), float(np.nanmax(x))
    if x1 - x0 < 1e-9:
        x0, x1 = x0 - 0.5, x1 + 0.5
    return (x0, x1), (lo, hi)


MINOR_PX = 40  # the closest two unlabelled grid lines come (pixels): a light grid, not a hatching
UNEVEN = 3.0  # on a log axis, the widest gap between labels is at most this many times the narrowest


# -- ticks ----------------------------------------------------------------------------------------------
@dataclass
class Ticks:
    """Where an axis puts its labelled ticks (``major``, with ``labels``) and its unlabelled grid lines
    (``minor``), in axis coordinates: the log10 of the value on a log axis."""
    major: list[float] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    minor: list[float] = field(default_factory=list)
    spacing: float = 1.0  # of the majors, in axis coordinates (for the log axis: a typical gap)


def format_tick(value: float, decimals: int) -> str:
    """``value`` with ``decimals`` decimals; very large or small magnitudes as '2e-05' → '2e-5'."""
    a = abs(value)
    if a and (a >= 1e5 or a < 1e-4):
        mant, exp = f"{value:.{max(0, min(decimals, 3))}e}".split("e")
        mant = mant.rstrip("0").rstrip(".") if "." in mant else mant
        return f"{mant}e{int(exp)}"
    text = f"{value:.{max(0, decimals)}f}"
    return "0" if float(text) == 0 else text  # never "-0"


def _decimals(step: float) -> int:
    """Decimals that tell apart multiples of ``step`` (1, 2, 2.5 or 5 times a power of ten)."""
    for d in range(13):
        if abs(round(step, d) - step) <= 1e-9 * step:
            return d
    return 12


def _linear_candidates(lo: float, hi: float, integer: bool, most: int):
    """Multiples of 1, 2, 2.5 and 5 × 10^k over [lo, hi], coarse to fine, up to ``most`` of them:
    (positions, labels, spacing)."""
    span = hi - lo
    top = math.ceil(math.log10(span)) + 1
    for k in range(top, top - 6, -1):
        for m in (5, 2.5, 2, 1):
            step = m * 10.0 ** k
            if integer and step < 1:
                return
            if integer and not step.is_integer():
                continue
            first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
            if last - first + 1 > most:  # finer sets have more still
                return
            values = [i * step for i in range(first, last + 1)]
            yield values, [format_tick(v, _decimals(step)) for v in values], step


def _log_candidates(lo: float, hi: float, most: int):
    """Tick sets of a log axis over log10 values [lo, hi], coarse to fine: (log10 positions, labels, spacing).
    Every few decades; 1, 2, 5 × 10^k; then evenly spaced values (for a range of about a decade or less)."""
    k0, k1 = math.floor(lo), math.ceil(hi)
    if k1 - k0 > 600:  # a degenerate range: nothing sensible to label
        return
    for stride in (100, 50, 20, 10, 5, 3, 2, 1):
        ks = [k for k in range(k0, k1 + 1) if k % stride == 0 and lo - 1e-9 <= k <= hi + 1e-9]
        yield [float(k) for k in ks], [format_tick(10.0 ** k, max(0, -k)) for k in ks], float(stride)
    pos, labels = [], []
    for k in range(k0, k1 + 1):
        for m in (1, 2, 5):
            p = math.log10(m) + k
            if lo - 1e-9 <= p <= hi + 1e-9:
                pos.append(p)
                labels.append(format_tick(m * 10.0 ** k, max(0, -k)))
    if len(pos) <= most:
        yield pos, labels, math.log10(2.0)
    v0, v1 = 10.0 ** lo, 10.0 ** hi
    for values, labels, step in _linear_candidates(v0, v1, False, most):
        keep = [(math.log10(v), t) for v, t in zip(values, labels) if v > 0]
        yield [p for p, _ in keep], [t for _, t in keep], step


def choose_ticks(lo: float, hi: float, length_px: float, extent: Callable[[str], float], gap_px: float, *,
                 log: bool = False, integer: bool = False, every_px: float = 90.0) -> Ticks:
    """A few labelled ticks for an axis over [lo, hi] (log10 of the values when ``log``) that is
    ``length_px`` pixels long, whose labels never overlap.

    ``extent(label)`` is a label's size along the axis in pixels (its width on a horizontal axis, its
    height on a vertical one); neighbouring labels keep ``gap_px`` between them, and none runs past an end.
    Among the tick sets whose labels fit (multiples of 1, 2, 2.5, 5 × 10^k; on a log axis also every few
    decades and 1, 2, 5 × 10^k, with gaps that differ by at most a factor ``UNEVEN``), the one whose count
    is nearest to one label per ``every_px`` pixels (better 3 than 2); a tie goes to the sparser set.
    ``integer``: only whole numbers (iterations, steps, episodes)."""
    lo, hi = (float(lo), float(hi)) if lo <= hi else (float(hi), float(lo))
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi - lo <= 0 or length_px <= 1:
        return Ticks()
    if integer and not log and math.floor(hi + 1e-9) < math.ceil(lo - 1e-9):
        return Ticks()  # no whole number in the range
    per_px = length_px / (hi - lo)
    target = max(2, round(length_px / every_px) + 1)
    best, best_key, fallback = None, None, None
    most = int(length_px / (gap_px + max(1.0, extent("0")))) + 1  # more labels than this cannot fit
    candidates = _log_candidates(lo, hi, most) if log else _linear_candidates(lo, hi, integer, most)
    for pos, labels, spacing in candidates:
        sizes = [extent(t) for t in labels]
        px = [(p - lo) * per_px for p in pos]
        inside = [i for i, (x, e) in enumerate(zip(px, sizes)) if e / 2 <= x + 0.5 and x + e / 2 <= length_px + 0.5]
        if not inside:
            continue
        if len(inside) < len(pos):  # a label that would run past an end of the axis is not drawn
            pos, labels = [pos[i] for i in inside], [labels[i] for i in inside]
            px, sizes = [px[i] for i in inside], [sizes[i] for i in inside]
        fits = all(px[i + 1] - px[i] >= (sizes[i] + sizes[i + 1]) / 2 + gap_px for i in range(len(pos) - 1))
        if not fits:
            continue
        if log and len(px) > 2:  # evenly spaced values on a log axis bunch up towards the top: not too much
            gaps = [b - a for a, b in zip(px, px[1:])]
            if max(gaps) > UNEVEN * min(gaps):
                continue
        if len(set(labels)) != len(labels):  # e.g. 0.50 and 0.5 at a coarse rounding: not distinct
            continue
        if fallback is None:
            fallback = (pos, labels, spacing)
        if len(pos) < 2:
            continue
        key = abs(len(pos) - target) + (1 if len(pos) < 3 else 0)  # two labels say little about a scale
        if round(spacing / 10.0 ** math.floor(math.log10(spacing)), 6) == 2.5:
            key += 1.5  # 0.25, 0.75: less round than 0.2 or 0.5, taken only when these do not fit
        if best_key is None or key < best_key:
            best, best_key = (pos, labels, spacing), key
    chosen = best or fallback
    if chosen is None:
        return Ticks()
    pos, labels, spacing = chosen
    return Ticks(list(pos), list(labels), _minor_ticks(lo, hi, pos, spacing, per_px, log, integer), spacing)


def _minor_ticks(lo, hi, major, spacing, per_px, log, integer) -> list[float]:
    """Unlabelled grid lines between the majors, when they are at least ``MINOR_PX`` apart."""
    out: list[float] = []
    if log and spacing == 1.0 and abs(major[1] - major[0] if len(major) > 1 else 1.0) == 1.0:
        if math.log10(10 / 9) * per_px >= MINOR_PX / 2:
            out = [k + math.log10(m) for k in range(math.floor(lo), math.ceil(hi) + 1) for m in range(2, 10)]
    elif not log:
        for div in (5, 2):
            sub = spacing / div
            if (integer and not float(sub).is_integer()) or sub * per_px < MINOR_PX:
                continue
            first, last = math.ceil(lo / sub - 1e-9), math.floor(hi / sub + 1e-9)
            out = [i * sub for i in range(first, last + 1)] if last - first < 1000 else []
            break
    majors = set(round(p, 9) for p in major)
    return [p for p in out if lo <= p <= hi and round(p, 9) not in majors]


# -- labels -------------------------------------------------------------------------------------------------
def spread_labels(wanted: Sequence[float], size: float, lo: float, hi: float) -> list[float]:
    """Centres for labels ``size`` pixels tall wanted at ``wanted`` (pixels along one axis), moved as little as
    it takes (least squares) so that no two overlap, within [lo, hi] when they fit there; in the given order."""
    n = len(wanted)
    if not n:
        return []
    order = sorted(range(n), key=lambda i: wanted[i])
    half = size / 2
    wish = [min(max(float(wanted[i]), lo + half), hi - half) for i in order]
    # labels that would overlap form a cluster, evenly spaced around the mean of its members' wishes
    clusters: list[list] = []  # [index of its first label, count, sum of wishes]
    for i, w in enumerate(wish):
        clusters.append([i, 1, w])
        while len(clusters) > 1:
            (_, ca, sa), (_, cb, sb) = clusters[-2], clusters[-1]
            if sa / ca - (ca - 1) * half + ca * size <= sb / cb - (cb - 1) * half:
                break
            clusters[-2][1] += cb
            clusters[-2][2] += sb
            clusters.pop()
    pos = [0.0] * n
    for first, count, total in clusters:
        start = total / count - (count - 1) * half  # the centre of the cluster's first label
        for j in range(count):
            pos[first + j] = start + j * size
    for i in range(n):  # within the bounds, and (first) never overlapping
        pos[i] = max(pos[i], lo + half, pos[i - 1] + size if i else -math.inf)
    for i in range(n - 1, -1, -1):
        pos[i] = min(pos[i], hi - half, pos[i + 1] - size if i < n - 1 else math.inf)
    out = [0.0] * n
    for k, i in enumerate(order):
        out[i] = pos[k]
    return out


# -- adaptation steps -------------------------------------------------------------------------------------
def step_name(step: int) -> str:
    """The default name of inner step ``step``: 'before adaptation', 'after 1 step', 'after 3 steps'."""
    return "before adaptation" if step == 0 else f"after {step} step{'s' if step > 1 else ''}"


def step_names(steps: Sequence[int], names: Sequence[str] | None = None) -> list[str]:
    """A name for each entry of ``steps``: the algorithm's own (``names``: RL²'s 'episode 3 of the trial',
    PEARL's 'after 2 episodes of context') when it gives one per entry, else :func:`step_name`."""
    if names is not None and len(names) == len(steps):
        return [str(n) for n in names]
    return [step_name(int(s)) for s in steps]
