"""Glyphs: a procedural stand-in for Omniglot, made on the machine and fully determined by a seed.

Each class is a random character of 2 to 4 pen strokes, each stroke a cubic Bézier curve whose control
points lie in the middle of the image; about half the strokes start where the previous one ended, as a pen
that is not lifted.  Each *drawing* of a class (``drawings`` of them, as Omniglot's 20 people per
character) is that character written again: its control points moved by ``jitter``, then the whole
character rotated (±0.2 rad), scaled (0.85–1.15), sheared (±0.2) and shifted (±10% of the image), with a
pen width of its own (1.3–2.4 pixels at 28×28), rendered anti-aliased as white ink, 1.0, on black, 0.0
(Omniglot's images inverted, as its loaders usually do).

Background and evaluation classes come from separate random streams, so the pools are disjoint, and a
class is the same whatever the pool sizes are.  Drawings are rendered on first use, a whole class at a time
(about 5 ms for 20 drawings), and kept as uint8 in memory: 4,000 classes × 20 drawings of 28×28 is 63 MB.
Once training samples its first tasks, a background thread renders the remaining training characters
(about 20 s of one core for 4,000), so sampling soon reads only the cache.
"""
from __future__ import annotations

import atexit
import threading
from dataclasses import dataclass

import torch

from workbench.core.config import param
from workbench.core.errors import ConfigError
from workbench.core.registry import FAMILIES
from workbench.core.seeding import stream_seed

from .classification import ROTATIONS, ClassificationFamily, ImagePool, NWayKShotConfig

MAX_STROKES = 4
CURVE_POINTS = 32  # points sampled along each stroke for the distance field
ROTATE, SCALE, SHEAR, SHIFT = 0.2, 0.15, 0.2, 0.1  # a drawing's affine distortion: ± radians, ± fraction
PEN_WIDTHS = (0.024, 0.042)  # a drawing's pen half-width, uniform in this range (image units)
PREFETCH_CLASSES = 16  # classes the prefetch thread renders at a time
RENDER_CHUNK = 128  # drawings rendered at once (bounds the distance field's memory: chunk × pixels × points)


@dataclass
class GlyphsConfig(NWayKShotConfig):
    background_classes: int = param(4000, "Characters meta-training draws its tasks from.", low=2, high=100_000)
    evaluation_classes: int = param(1000, "Held-out characters, never seen in training.", low=2, high=100_000)
    drawings: int = param(20, "Drawings of each character (Omniglot has 20).", low=2, high=1000)
    size: int = param(28, "Image height and width in pixels.", low=8, high=256)
    jitter: float = param(0.04, "How far a drawing moves the strokes' control points (fraction of the image).",
                          low=0.0, high=0.5)
    dataset_seed: int = param(0, "Seed of the characters and their drawings (the data set, not the run).",
                              low=0, high=2**31 - 1)

    def validate(self, where: str) -> None:
        if self.shots + self.query > self.drawings or self.shots + self.eval_query > self.drawings:
            need = self.shots + max(self.query, self.eval_query)
            raise ConfigError(f"{where}: shots + query = {need} images per class, but a character has "
                              f"drawings = {self.drawings}")
        turns = ROTATIONS if self.rotations else 1
        for key in ("background_classes", "evaluation_classes"):
            if getattr(self, key) * turns < self.ways:
                raise ConfigError(f"{where}: ways = {self.ways}, but {key} = {getattr(self, key)} gives "
                                  f"{getattr(self, key) * turns} classes{' with rotations' if turns > 1 else ''}")


class GlyphPool(ImagePool):
    """``n`` characters of the random stream ``stream``; their drawings rendered on first use, and by
    :meth:`prefetch` ahead of it.  A class's drawings do not depend on when or by which thread they are
    rendered (each class has its own generator), so the cache only saves time."""

    def __init__(self, cfg: GlyphsConfig, stream: str, n: int):
        self.cfg, self.stream = cfg, stream
        self.n_classes = n
        self.image_shape = (1, cfg.size, cfg.size)
        self.per_class = torch.full((n,), cfg.drawings, dtype=torch.int64)
        self._cache: torch.Tensor | None = None  # (n, drawings, size, size) uint8, allocated on first use
        self._rendered = torch.zeros(n, dtype=torch.bool)
        self._lock = threading.Lock()  # a class's drawings are written, then marked rendered, under it
        self._prefetching: threading.Thread | None = None

    def class_name(self, c: int) -> str:
        return f"glyph {c}"

    def images(self, classes: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        with self._lock:
            missing = classes[~self._rendered[classes]].unique()
        if len(missing):
            self._store(missing, self.render_classes(missing))
        return self._cache[classes, index].unsqueeze(1).float().div_(255.0)

    def _store(self, classes: torch.Tensor, drawings: torch.Tensor) -> None:
        with self._lock:
            if self._cache is None:  # its pages are touched as classes are stored (services/budget.py counts it)
                c = self.cfg
                self._cache = torch.empty(self.n_classes, c.drawings, c.size, c.size, dtype=torch.uint8)
            self._cache[classes] = drawings
            self._rendered[classes] = True

    def prefetch(self) -> None:
        """Render every class not rendered yet on a background thread, a few classes at a time (at exit the
        thread finishes its chunk and stops), so that sampling soon reads only the cache.  Rendering is torch ops that
        release the GIL: on a machine with a free core (the trainer leaves one) it costs the training
        nothing.  Called again, it does nothing."""
        if self._prefetching is not None:
            return
        stop = threading.Event()

        def run() -> None:
            for start in range(0, self.n_classes, PREFETCH_CLASSES):
                if stop.is_set():
                    return
                chunk = torch.arange(start, min(self.n_classes, start + PREFETCH_CLASSES))
                with self._lock:
                    chunk = chunk[~self._rendered[chunk]]
                if len(chunk):
                    self._store(chunk, self.render_classes(chunk))

        self._prefetching = threading.Thread(target=run, name=f"glyphs-{self.stream}-prefetch", daemon=True)
        self._prefetching.start()

        def finish() -> None:  # a thread inside a torch op when the interpreter ends aborts the process
            stop.set()
            self._prefetching.join()

        atexit.register(finish)

    def render_classes(self, classes: torch.Tensor) -> torch.Tensor:
        """Every drawing of ``classes`` (M,): uint8 (M, drawings, size, size)."""
        d = self.cfg.drawings
        ctrl, pen, affine = [], [], []
        for c in classes.tolist():
            g = torch.Generator().manual_seed(stream_seed(f"glyphs:{self.stream}:{self.cfg.dataset_seed}", c))
            strokes = character(g)
            ctrl.append(strokes.unsqueeze(0) + self.cfg.jitter * torch.randn(d, *strokes.shape, generator=g))
            pen.append(PEN_WIDTHS[0] + (PEN_WIDTHS[1] - PEN_WIDTHS[0]) * torch.rand(d, generator=g))
            affine.append(torch.rand(d, 5, generator=g))
        ctrl, pen, affine = torch.cat(ctrl), torch.cat(pen), torch.cat(affine)
        used = ctrl[:, :, 0, 0] < 9  # (M·d, S): the strokes each character has
        out = torch.empty(len(ctrl), self.cfg.size, self.cfg.size, dtype=torch.uint8)
        for s in range(0, len(ctrl), RENDER_CHUNK):
            sl = slice(s, s + RENDER_CHUNK)
            out[sl] = draw(ctrl[sl], used[sl], pen[sl], affine[sl], self.cfg.size)
        return out.view(len(classes), d, self.cfg.size, self.cfg.size)


def character(g: torch.Generator) -> torch.Tensor:
    """A character's strokes: control points (MAX_STROKES, 4, 2) in [0.2, 0.8]² (image units); strokes past
    its count (2 to 4) are marked unused by a first coordinate of 10."""
    u = torch.rand(MAX_STROKES * 9 + 1, generator=g)
    pts = (0.2 + 0.6 * u[: MAX_STROKES * 8]).view(MAX_STROKES, 4, 2)
    joined = u[MAX_STROKES * 8: MAX_STROKES * 9] < 0.5
    count = 2 + int(u[-1] * 3)  # 2, 3 or 4 strokes
    for s in range(1, MAX_STROKES):
        if joined[s]:
            pts[s, 0] = pts[s - 1, 3]
    pts[count:, :, 0] = 10.0
    return pts


def draw(ctrl: torch.Tensor, used: torch.Tensor, pen: torch.Tensor, affine: torch.Tensor, size: int) -> torch.Tensor:
    """Render drawings: ``ctrl`` (M, S, 4, 2) control points, ``used`` (M, S) which strokes exist, ``pen``
    (M,) half-width (image units), ``affine`` (M, 5) uniform [0, 1) numbers for rotation, scale, shear and
    shift.  Returns uint8 (M, size, size): 255 on the stroke, 0 off it, one pixel of anti-aliased edge."""
    m = ctrl.shape[0]
    t = torch.linspace(0, 1, CURVE_POINTS).view(1, 1, -1, 1)
    a, b, c, d = (ctrl[:, :, i].unsqueeze(2) for i in range(4))
    curve = (1 - t) ** 3 * a + 3 * (1 - t) ** 2 * t * b + 3 * (1 - t) * t ** 2 * c + t ** 3 * d  # (M, S, T, 2)
    angle = (affine[:, 0] - 0.5) * 2 * ROTATE
    scale = 1 - SCALE + 2 * SCALE * affine[:, 1]
    shear = (affine[:, 2] - 0.5) * 2 * SHEAR
    shift = (affine[:, 3:5] - 0.5) * 2 * SHIFT
    cos, sin = torch.cos(angle), torch.sin(angle)
    mat = torch.stack([torch.stack([cos, -sin + shear], -1), torch.stack([sin, cos], -1)], -2) * scale.view(-1, 1, 1)
    pts = (curve - 0.5).reshape(m, -1, 2) @ mat.transpose(1, 2) + 0.5 + shift.unsqueeze(1)
    far = ~used.repeat_interleave(CURVE_POINTS, 1)
    pts = pts.masked_fill(far.unsqueeze(-1), 100.0)  # strokes a character does not have never come near
    grid = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    gy, gx = torch.meshgrid(grid, grid, indexing="ij")
    pixels = torch.stack([gx, gy], -1).view(1, -1, 2).expand(m, -1, -1)
    dist = torch.cdist(pixels, pts).amin(-1)  # (M, size²): distance to the nearest point of any stroke
    ink = ((pen.unsqueeze(1) + 0.5 / size - dist) * size).clamp_(0.0, 1.0)
    return ink.mul_(255.0).round_().to(torch.uint8).view(m, size, size)


@FAMILIES.register
class Glyphs(ClassificationFamily):
    """N-way K-shot classification of procedural handwritten characters (see the module docstring)."""

    name = "glyphs"
    title = "Glyphs (procedural characters, N-way K-shot)"
    Config = GlyphsConfig

    def pools(self):
        c = self.cfg
        return GlyphPool(c, "background", c.background_classes), GlyphPool(c, "evaluation", c.evaluation_classes)

    def cache_bytes(self) -> int:
        """Bytes of the rendered drawings once every character is drawn (uint8)."""
        c = self.cfg
        return (c.background_classes + c.evaluation_classes) * c.drawings * c.size * c.size

    def tasks(self, pool, n, shots, query, generator, ways=None):
        if pool is self.background:  # training has started: draw its characters ahead of time
            pool.prefetch()
        return super().tasks(pool, n, shots, query, generator, ways)

