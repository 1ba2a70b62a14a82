"""A tiny numpy rasteriser for the rendered RL families (no pygame): every function draws into a batch of
frames ``img`` of shape (F, H, W, 3) uint8 at once, one shape per frame, with per-frame coordinates in
pixels (x to the right, y downwards).  Shapes that leave the frame are clipped."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

BACKGROUND = (30, 30, 30)  # the navigation view's background


def canvas(n: int, height: int, width: int, color=BACKGROUND) -> np.ndarray:
    one = np.empty((1, height, width, 3), np.uint8)
    one[..., 0], one[..., 1], one[..., 2] = color  # (per channel: much faster than broadcasting a tuple)
    return np.repeat(one, n, axis=0)


@lru_cache(maxsize=32)
def _disc(radius: float) -> tuple[np.ndarray, np.ndarray]:
    r = int(np.ceil(radius))
    dy, dx = np.mgrid[-r:r + 1, -r:r + 1]
    keep = dx * dx + dy * dy <= radius * radius + 1e-9
    return dy[keep], dx[keep]


def _stamp(img: np.ndarray, frame: np.ndarray, ys: np.ndarray, xs: np.ndarray, radius: float, color) -> None:
    """Discs of ``radius`` around the points (frame, ys, xs) (same shapes, any)."""
    dy, dx = _disc(radius)
    h, w = img.shape[1:3]
    y = np.rint(ys).astype(np.int64).reshape(-1, 1) + dy
    x = np.rint(xs).astype(np.int64).reshape(-1, 1) + dx
    ok = (y >= 0) & (y < h) & (x >= 0) & (x < w)
    flat = (frame.reshape(-1, 1).astype(np.int64) * h + y) * w + x
    img.reshape(-1, 3)[flat[ok]] = color


def discs(img: np.ndarray, cx, cy, radius: float, color) -> None:
    """One filled disc per frame, centred at (cx[f], cy[f])."""
    n = img.shape[0]
    cx = np.broadcast_to(np.asarray(cx, float), (n,))
    cy = np.broadcast_to(np.asarray(cy, float), (n,))
    ok = np.isfinite(cx) & np.isfinite(cy)
    _stamp(img, np.arange(n)[ok], cy[ok], cx[ok], radius, color)


def segments(img: np.ndarray, x0, y0, x1, y1, width: float, color) -> None:
    """One thick line segment per frame, from (x0[f], y0[f]) to (x1[f], y1[f]) (rounded ends)."""
    n = img.shape[0]
    x0, y0, x1, y1 = (np.broadcast_to(np.asarray(v, float), (n,)) for v in (x0, y0, x1, y1))
    ok = np.isfinite(x0) & np.isfinite(y0) & np.isfinite(x1) & np.isfinite(y1)
    if not ok.any():
        return
    x0, y0, x1, y1 = x0[ok], y0[ok], x1[ok], y1[ok]
    # long segments are clipped to a box around the frame first, so the point count stays bounded
    lim = 2.0 * max(img.shape[1], img.shape[2])
    x0, x1, y0, y1 = (np.clip(v, -lim, lim) for v in (x0, x1, y0, y1))
    spacing = max(1.0, width / 4.0)  # discs of radius width/2 this far apart leave no visible gaps
    k = int(np.ceil(np.max(np.hypot(x1 - x0, y1 - y0)) / spacing)) + 2
    t = np.linspace(0.0, 1.0, k)
    xs = x0[:, None] + (x1 - x0)[:, None] * t
    ys = y0[:, None] + (y1 - y0)[:, None] * t
    frame = np.broadcast_to(np.arange(n)[ok][:, None], xs.shape)
    _stamp(img, frame, ys, xs, width / 2.0, color)


def rects(img: np.ndarray, x0, y0, x1, y1, color) -> None:
    """One filled axis-aligned rectangle per frame, [x0, x1) x [y0, y1) (pixel coordinates)."""
    n, h, w = img.shape[:3]

    def pix(v, size):  # non-finite coordinates give an empty rectangle
        v = np.broadcast_to(np.asarray(v, float), (n,))
        return np.clip(np.rint(np.nan_to_num(v, nan=-1.0, posinf=-1.0, neginf=-1.0)), 0, size).astype(int)

    x0, x1, y0, y1 = pix(x0, w), pix(x1, w), pix(y0, h), pix(y1, h)
    for f in range(n):  # a slice per frame: cheaper than a (F, H, W) mask
        img[f, y0[f]:y1[f], x0[f]:x1[f]] = color


MAX_FRAMES = 100  # per episode: longer episodes are drawn every k-th step


def episode_frames(episodes: list, draw) -> tuple[np.ndarray, np.ndarray]:
    """Frames of one episode (task 0, trajectory 0) before adaptation and after the last step (what the
    rollout view plays; the steps between are not drawn), and the returns after every step.

    ``episodes[s]`` are the Episodes of the shown tasks after step s; ``draw(obs, actions)`` turns the
    stored observations (F, obs_dim) and actions (F, ...) of the running steps into frames (F, H, W, 3).
    Shorter episodes are padded by repeating their last frame.  Returns (frames (S+1, F, H, W, 3) uint8,
    returns (T, S+1))."""
    clips = []
    for ep in ([episodes[0], episodes[-1]] if len(episodes) > 1 else episodes):
        alive = max(1, int((ep.mask[0, 0] > 0).sum()))  # the mask is 1 on a prefix of the episode
        stride = -(-ep.mask.shape[-1] // MAX_FRAMES)
        obs = ep.obs[0, 0, :alive:stride].detach().cpu().double().numpy()
        act = ep.actions[0, 0, :alive:stride].detach().cpu().numpy()
        clips.append(draw(obs, act))
    length = max(c.shape[0] for c in clips)
    frames = np.empty((len(clips), length, *clips[0].shape[1:]), np.uint8)
    for s, c in enumerate(clips):
        frames[s, : c.shape[0]] = c
        frames[s, c.shape[0]:] = c[-1]
    returns = torch.stack([ep.returns.mean(1) for ep in episodes], 1).detach().cpu().numpy().copy()
    return frames, returns
