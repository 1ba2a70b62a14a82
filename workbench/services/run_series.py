"""What the Runs panel shows, worked out without Qt: table rows, series compared across seeds, their
CSV, the folder's state and the delete plan.

The panel (:mod:`workbench.gui.runs_panel`) only lays these out.  The numbers come from
:mod:`workbench.services.runs` (listing, reading curves, :func:`~workbench.services.runs.aggregate`:
the mean over seeds with its 95% CI band, min and max) and
:func:`workbench.core.stats.ema_tensorboard` (smoothing); this module puts them together:

- a run as a table row: :func:`row_texts`, :func:`sort_keys` (numbers sort as numbers, missing last,
  the newest date first), :func:`run_tooltip`;
- runs as plotted series: :func:`make_series` buckets the selected runs (by ``group_key`` when seeds
  are grouped), smooths each run before averaging and names each series (:func:`series_labels`);
  :func:`split_by_kind` keeps losses and returns apart;
- what a plot's view and a log axis need: :func:`view_range`, :func:`log_floor`,
  :func:`band_on_log_axis`;
- the plots' data as CSV: :func:`meta_loss_csv`, :func:`adaptation_csv`;
- reading a folder cheaply: :class:`CurveCache` (curves per run until its files change) and
  :func:`folder_snapshot` (what changes when the listing may have);
- deleting: :func:`plan_delete` (who is refused, what the confirmation says) and :func:`delete_planned`.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from workbench.core.stats import ema_tensorboard
from workbench.services import runs as core_runs
from workbench.services.runs import GROUP_IGNORED, Aggregate, Curves, RunError, RunInfo, aggregate, load_curves

COLUMNS = ["Name", "Preset", "Family", "Algorithm", "Seed", "Status", "Iterations", "Final", "Date", "Sweep"]
(COL_NAME, COL_PRESET, COL_FAMILY, COL_ALGORITHM, COL_SEED, COL_STATUS, COL_ITERATIONS, COL_FINAL, COL_DATE,
 COL_SWEEP) = range(len(COLUMNS))
BANDS = ("95% CI", "min–max")
MAX_LISTED = 15  # runs named in the delete confirmation
MAX_NAME = 60  # characters of a name in a confirmation or a message (the table and the CSV have it whole)
LEGEND_NAME = 40  # characters of a series' name in a plot's legend


# -- a run as a row ----------------------------------------------------------------------------------
def path_key(path) -> str:
    """One key per run folder, however its path was spelled."""
    return os.path.normcase(os.path.abspath(os.fspath(path)))


def shorten(text: str, limit: int = MAX_NAME) -> str:
    """``text`` cut in the middle with "…" to at most ``limit`` characters (for names without spaces)."""
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    return text[:head] + "…" + text[len(text) - (limit - 1 - head):]


def status_text(info: RunInfo) -> str:
    if info.error is not None:
        return "unreadable"
    if info.interrupted:
        return "interrupted"
    return info.status or "?"


def final_text(info: RunInfo) -> str:
    """The last held-out value after adaptation with its metric ("mse 0.512", "return -14.3")."""
    if info.error is not None:
        return info.error
    if not info.metric:
        return "–"
    return f"{info.metric} –" if info.final is None else f"{info.metric} {info.final:.3g}"


def date_text(info: RunInfo) -> str:
    return info.date.astimezone().strftime("%Y-%m-%d %H:%M") if info.date is not None else ""


def still_running(info: RunInfo) -> bool:
    """Says "running" and its process is not known to be gone."""
    return info.error is None and info.status == "running" and not info.interrupted


def row_texts(info: RunInfo) -> list[str]:
    """The table's cells of a run, in :data:`COLUMNS` order."""
    bad = info.error is not None
    done = str(info.iterations) if not bad or info.iterations else ""
    iters = f"{done} / {info.total_iterations}" if info.total_iterations is not None and done else done
    return [info.name, info.preset, info.family, info.algorithm, "" if info.seed is None else str(info.seed),
            status_text(info), iters, final_text(info), date_text(info), info.sweep_id or ""]


def sort_keys(info: RunInfo) -> tuple:
    """Per column, the key a row sorts by: numbers as numbers, missing values last; the date's key is minus
    the time, so that ascending order is newest first; an unreadable run's Final sorts after every value."""
    def num(v):
        return (0, v) if v is not None else (1, 0)

    bad = info.error is not None
    return (info.name.lower(), info.preset, info.family, info.algorithm, num(info.seed), status_text(info),
            num(info.iterations if not bad else None), (2, 0) if bad else num(info.final),
            (0, -info.date.timestamp()) if info.date is not None else (1, 0), info.sweep_id or "")


def run_tooltip(info: RunInfo) -> str:
    """Where a run is, and why it is unreadable, interrupted or odd."""
    lines = [str(info.path)]
    if info.error is not None:
        lines.append(f"unreadable: {info.error}")
    if info.interrupted:
        lines.append("status.json says running, but the process that wrote it is gone (crashed or killed)")
    elif info.status == "running" and info.process_alive is None:
        lines.append("running (its process is on another machine or unknown)")
    if info.message:
        lines.append(f"{info.status}: {info.message}")
    if info.sweep_id is not None:
        trial = f", trial {info.trial}" if info.trial is not None else ""
        values = ", ".join(f"{k}={v}" for k, v in info.sweep_values.items())
        lines.append(f"sweep {info.sweep_id}{trial}" + (f" ({values})" if values else ""))
    if info.warning:
        lines.append(f"note: {info.warning}")
    return "\n".join(lines)


def describe_folder(root: Path, listed: list[RunInfo]) -> tuple[str, bool]:
    """What the panel says about a runs folder with nothing selected, and whether it is a warning."""
    if not root.exists():
        return f"no runs yet in {root}", False
    if not root.is_dir():
        return f"{root} is not a folder", True
    if not os.access(root, os.R_OK | os.X_OK):
        return f"cannot read {root} (permission denied)", True
    if not listed:
        return f"no runs yet in {root}", False
    bad = sum(r.error is not None for r in listed)
    text = f"{len(listed)} run{'s' if len(listed) > 1 else ''}"
    text += f", {bad} unreadable (hover over a row for why)" if bad else ""
    return text + "; select runs to compare their curves", False


# -- runs as series ----------------------------------------------------------------------------------
@dataclass
class Series:
    """One legend entry: a run, or runs that differ only in their seed (mean and band)."""
    label: str
    runs: list[RunInfo]
    color: str
    train: Aggregate  # training metric vs iteration, as logged
    smoothed: Aggregate  # each run smoothed (TensorBoard's EMA) before aggregating: what is drawn
    adaptation: Aggregate  # held-out metric vs inner step at each run's last evaluation
    train_metric: str = ""  # the training curve's metrics.csv column ("loss", "return")

    @property
    def grouped(self) -> bool:
        return len(self.runs) > 1

    def band(self, agg: Aggregate, kind: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(low, high) of the band drawn around ``agg``'s mean (``kind``: one of :data:`BANDS`); None for
        a single run."""
        if not self.grouped:
            return None
        return (agg.min, agg.max) if kind == BANDS[1] else (agg.low, agg.high)


def curve_kind(info: RunInfo, curves: Curves) -> str:
    """"return" (higher is better: a return or an accuracy; linear axis) or "loss": runs of different kinds
    are not overlaid."""
    return "return" if info.higher_is_better or curves.train_metric == "return" else "loss"


def split_by_kind(loaded: list[tuple[RunInfo, Curves]]) -> tuple[list[tuple[RunInfo, Curves]], str | None, str]:
    """Keep the runs of the first run's kind: (kept, kind or None when nothing is loaded, a note naming the
    runs left out or "")."""
    if not loaded:
        return [], None, ""
    kinds = [curve_kind(r, c) for r, c in loaded]
    first = kinds[0]
    left_out = [r.name for (r, _), k in zip(loaded, kinds) if k != first]
    note = ""
    if left_out:
        other = "return" if first == "loss" else "loss"
        note = (f"the selection mixes metrics ({first} and {other}): showing only the {first} runs; "
                f"left out: {', '.join(left_out)}")
    return [rc for rc, k in zip(loaded, kinds) if k == first], first, note


def _flat(config: dict | None) -> dict[str, str]:
    out = {}
    for section, values in (config or {}).items():
        if section == "meta" or not isinstance(values, dict):
            continue
        ignored = GROUP_IGNORED.get(section, ())
        for k, v in values.items():
            if k not in ignored:
                out[f"{section}.{k}"] = json.dumps(v, sort_keys=True, default=str)
    return out


def _short(value: str) -> str:
    try:
        v = json.loads(value)
    except ValueError:
        return value
    return f"{v:g}" if isinstance(v, float) else str(v)


def config_differences(configs: list[dict | None], limit: int = 3) -> list[str]:
    """For configs that share a name, the settings that tell them apart ("inner_lr=0.02"), one per config."""
    flats = [_flat(c) for c in configs]
    keys = sorted({k for f in flats for k in f})
    differ = [k for k in keys if len({f.get(k) for f in flats}) > 1]
    out = []
    for f in flats:
        parts = [f"{k.split('.')[-1]}={_short(f[k]) if k in f else '–'}" for k in differ[:limit]]
        out.append(", ".join(parts) + (", …" if len(differ) > limit else ""))
    return out


def series_labels(buckets: list[list[tuple[RunInfo, Curves]]]) -> list[str]:
    """A legend label per bucket: a run's name, or a group's preset with its count ("… (n=3 seeds)") and,
    when groups share a preset, the settings that tell them apart."""
    base = []
    for b in buckets:
        r = b[0][0]
        base.append(r.name if len(b) == 1 else (r.preset or f"{r.algorithm}-{r.family}"))
    by_name: dict[str, list[int]] = {}
    for i, b in enumerate(buckets):
        if len(b) > 1:
            by_name.setdefault(base[i], []).append(i)
    for name, idxs in by_name.items():
        if len(idxs) < 2:
            continue
        diffs = config_differences([buckets[i][0][0].config for i in idxs])
        for i, d in zip(idxs, diffs):
            base[i] = f"{name} {d}" if d else f"{name} [{buckets[i][0][0].name}…]"

    def count(b) -> str:  # reruns of one seed are not seeds: say so rather than count them as such
        seeds = {rc[0].seed for rc in b}
        return f"n={len(b)} seeds" if len(seeds) == len(b) else f"n={len(b)} runs, {len(seeds)} seeds"

    return [f"{base[i]} ({count(b)})" if len(b) > 1 else base[i] for i, b in enumerate(buckets)]


def make_series(loaded: list[tuple[RunInfo, Curves]], group: bool = True, weight: float = 0.6,
                color: Callable[[int], str] = lambda i: "") -> list[Series]:
    """The series to draw for loaded runs, in first-seen order: with ``group``, runs sharing a
    ``group_key`` are one series (seeds sorted); ``weight`` is the EMA applied to each run's training curve
    before the mean; ``color(i)`` names the i-th series' colour."""
    buckets: dict[str, list] = {}
    for r, c in loaded:
        buckets.setdefault(r.group_key if group else path_key(r.path), []).append((r, c))
    bucket_list = list(buckets.values())
    for b in bucket_list:
        b.sort(key=lambda rc: (rc[0].seed is None, rc[0].seed or 0, rc[0].name))
    out = []
    for i, (bucket, label) in enumerate(zip(bucket_list, series_labels(bucket_list))):
        curves = [c for _, c in bucket]
        # a seed that has not logged anything yet would empty the group's common x: it waits
        trained = [c for c in curves if len(c.iterations)] or curves
        smoothed = [dataclasses.replace(c, train=ema_tensorboard(c.train, weight)) for c in trained]
        evaluated = [c for c in curves if len(c.eval_iterations)] or curves
        out.append(Series(label, [r for r, _ in bucket], color(i), aggregate(trained, "train"),
                          aggregate(smoothed, "train"), aggregate(evaluated, "adaptation"), curves[0].train_metric))
    return out


# -- what the plots need ------------------------------------------------------------------------------
def log_floor(series: list[Series]) -> float:
    """The smallest positive mean drawn, over ten: where a band reaching zero or below is cut on a log axis."""
    vals = [a.mean for s in series for a in (s.smoothed, s.adaptation)]
    vals = np.concatenate(vals) if vals else np.zeros(0)
    vals = vals[np.isfinite(vals) & (vals > 0)]
    return float(vals.min()) / 10 if len(vals) else 1e-6


def band_on_log_axis(low: np.ndarray, agg: Aggregate, floor: float) -> np.ndarray:
    """A band's lower edge on a log axis: where it reaches zero or below, the lowest run's value (or
    ``floor``), never above the mean."""
    lowest = np.where(np.isfinite(agg.min) & (agg.min > 0), agg.min, floor)
    return np.where(np.isfinite(low) & (low > 0), low, np.minimum(lowest, agg.mean))


def view_range(drawn: list[tuple[np.ndarray, np.ndarray]], log: bool, rows: int):
    """(x0, x1, y0, y1) that fits every drawn (x, y), in the axis' units (log10 of y on a log axis), with
    room at the top for a legend of ``rows`` entries; None when nothing finite is drawn."""
    x = np.concatenate([a for a, _ in drawn]).astype(np.float64) if drawn else np.zeros(0)
    y = np.concatenate([b for _, b in drawn]).astype(np.float64) if drawn else np.zeros(0)
    if log:
        y = y[y > 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            y = np.log10(y)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    if not len(x) or not len(y):
        return None
    x0, x1 = float(x.min()), float(x.max())
    y0, y1 = float(y.min()), float(y.max())
    if x1 - x0 < 1e-12:
        x0, x1 = x0 - 0.5, x1 + 0.5
    if y1 - y0 < 1e-12:
        y0, y1 = y0 - (0.5 if log else max(abs(y0) * 0.1, 0.5)), y1 + (0.5 if log else max(abs(y1) * 0.1, 0.5))
    y1 += (y1 - y0) * min(0.5, 0.08 * rows + 0.04)
    return x0, x1, y0, y1


def inner_steps(series: list[Series], most: int = 25) -> list[int] | None:
    """The inner steps evaluated, for the adaptation plot's ticks; None when there are none or too many."""
    steps = sorted({int(v) for s in series for v in s.adaptation.x})
    return steps if 0 < len(steps) <= most else None


# -- the plots' data as CSV ---------------------------------------------------------------------------
def _fmt(v) -> str:
    return repr(float(v))


def _band_name(band_kind: str) -> str:
    return "min-max" if band_kind == BANDS[1] else "ci95"


def meta_loss_csv(series: list[Series], band_kind: str, weight: float) -> str:
    """The meta-loss plot's data: per series and iteration, n, the mean and band as logged and as drawn
    (smoothed with ``weight``); the band is empty for a single run."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["series", "metric", "band", "ema_weight", "iteration", "n", "mean", "low", "high",
                "mean_smoothed", "low_smoothed", "high_smoothed"])
    for s in series:
        raw_band, sm_band = s.band(s.train, band_kind), s.band(s.smoothed, band_kind)
        for k, x in enumerate(s.train.x):
            j = int(np.searchsorted(s.smoothed.x, x))
            lo, hi = (_fmt(raw_band[0][k]), _fmt(raw_band[1][k])) if raw_band else ("", "")
            slo, shi = (_fmt(sm_band[0][j]), _fmt(sm_band[1][j])) if sm_band else ("", "")
            w.writerow([s.label, s.train_metric, _band_name(band_kind) if raw_band else "", repr(weight), int(x),
                        int(s.train.n[k]), _fmt(s.train.mean[k]), lo, hi, _fmt(s.smoothed.mean[j]), slo, shi])
    return buf.getvalue()


def adaptation_csv(series: list[Series], band_kind: str) -> str:
    """The adaptation plot's data: per series and inner step, n, the mean and its band."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["series", "metric", "band", "inner_step", "n", "mean", "low", "high"])
    for s in series:
        a = s.adaptation
        band = s.band(a, band_kind)
        for k, x in enumerate(a.x):
            lo, hi = (_fmt(band[0][k]), _fmt(band[1][k])) if band else ("", "")
            w.writerow([s.label, s.runs[0].metric, _band_name(band_kind) if band else "", int(x), int(a.n[k]),
                        _fmt(a.mean[k]), lo, hi])
    return buf.getvalue()


# -- reading a folder cheaply -------------------------------------------------------------------------
def _stat(path: Path):
    try:
        s = path.stat()
        return s.st_mtime_ns, s.st_size
    except OSError:
        return None


def files_key(path: Path) -> tuple:
    """What changes when a run's curves may have: its files' mtimes and sizes."""
    return tuple(_stat(path / f) for f in (core_runs.CONFIG, core_runs.STATUS, core_runs.METRICS, core_runs.EVAL))


class CurveCache:
    """Each run's curves, read once and again only when its files change."""

    def __init__(self):
        self._hits: dict[str, tuple] = {}  # path key -> (files key, Curves or RunError)

    def get(self, info: RunInfo) -> Curves:
        """A run's curves; raises :class:`RunError` (cached too) when they cannot be read."""
        key, files = path_key(info.path), files_key(info.path)
        hit = self._hits.get(key)
        if hit is None or hit[0] != files:
            try:
                hit = (files, load_curves(info))
            except RunError as e:
                hit = (files, e)
            except Exception as e:  # noqa: BLE001 - a file changing under the reader, a foreign file: never a crash
                hit = (files, RunError(f"{info.name}: cannot read its curves ({type(e).__name__}: {e})"))
            self._hits[key] = hit
        if isinstance(hit[1], RunError):
            raise hit[1]
        return hit[1]

    def forget(self, path) -> None:
        self._hits.pop(path_key(path), None)

    def keep_only(self, keys: set[str]) -> None:
        """Drop the runs whose path keys are not in ``keys`` (gone from the folder)."""
        for k in [k for k in self._hits if k not in keys]:
            del self._hits[k]

    def clear(self) -> None:
        self._hits.clear()


def folder_snapshot(root: Path, listed: list[RunInfo]) -> tuple:
    """What changes when the listing may have: the folder's and its sub-folders' mtimes, each run's
    status.json, and the files of running or half-written runs (appending to a CSV does not touch the
    folder).  A few stats per run: cheap next to re-reading every run."""
    parts: list = [_stat(root)]
    try:
        with os.scandir(root) as it:
            for e in it:
                if not e.name.startswith("."):
                    try:
                        if e.is_dir():
                            parts.append((e.name, e.stat().st_mtime_ns))
                    except OSError:
                        continue
    except OSError:
        pass
    for info in listed:
        key = path_key(info.path)
        if info.path.parent != root:  # runs in a sweep's folder
            parts.append((key, _stat(info.path)))
        parts.append((key, _stat(info.path / core_runs.STATUS)))  # also when written in place
        if info.status == "running" or info.error is not None:
            parts.append((key, *files_key(info.path)))
            if info.status == "running" and info.error is None:  # has its process died since?
                parts.append((key, core_runs.read_run(info.path, root).interrupted))
    return tuple(parts)


# -- deleting -----------------------------------------------------------------------------------------
@dataclass
class DeletePlan:
    """Which runs a delete removes (``todo``), which it refuses (``busy``: running here) and which say
    running but cannot be checked from here (``unknown``: deleted with force, after the confirmation says so)."""
    todo: list[RunInfo]
    busy: list[RunInfo] = field(default_factory=list)
    unknown: list[RunInfo] = field(default_factory=list)

    @property
    def refusals(self) -> list[str]:
        return [f"{r.name}: not deleted: it is still running; stop it first" for r in self.busy]

    def question(self, root: Path) -> str:
        """The confirmation's text: the runs by name (at most :data:`MAX_LISTED`), what is kept, no undo."""
        todo = self.todo
        names = "\n".join(f"  {shorten(r.name)}" + (" (unreadable)" if r.error else "") + (
            " (says running; its process cannot be checked from here)" if r in self.unknown else "")
            for r in todo[:MAX_LISTED])
        if len(todo) > MAX_LISTED:
            names += f"\n  … and {len(todo) - MAX_LISTED} more"
        skipped = (f"\n\nNot deleted (still running): {', '.join(shorten(r.name) for r in self.busy)}"
                   if self.busy else "")
        many = len(todo) > 1
        return (f"Delete {len(todo)} run{'s' if many else ''} and the files the workbench wrote for "
                f"{'them' if many else 'it'} from {root}?\n\n{names}{skipped}\n\n"
                f"Files you added to a run's folder are kept, with the folder.  This cannot be undone.")


def plan_delete(runs: list[RunInfo]) -> DeletePlan:
    """Refuse runs whose process is alive here; a run whose process cannot be checked (written on another
    machine, or before runs kept their pid) is deleted only when the confirmation names it as such."""
    busy = [r for r in runs if still_running(r) and r.process_alive is not False and r.process_alive is not None]
    todo = [r for r in runs if r not in busy]
    return DeletePlan(todo, busy, [r for r in todo if still_running(r)])


def delete_planned(plan: DeletePlan, root: Path) -> tuple[list[RunInfo], list[str]]:
    """Delete ``plan.todo``; returns (the runs deleted, notes: refusals, failures and folders kept for files
    the workbench did not write)."""
    deleted, notes = [], plan.refusals
    for r in plan.todo:
        try:
            kept = core_runs.delete_run(r, force=r in plan.unknown, root=root)
        except RunError as e:
            notes.append(str(e))
        except OSError as e:
            notes.append(f"{r.name}: not deleted: {e.strerror or e}")
        else:
            deleted.append(r)
            if kept:  # files the workbench did not write: left where they were, with their folder
                shown = ", ".join(p.name for p in kept[:3])
                shown += f" and {len(kept) - 3} more" if len(kept) > 3 else ""
                notes.append(f"{r.name}: its folder was kept for {len(kept)} file{'s' if len(kept) > 1 else ''} "
                             f"the workbench did not write ({shown})")
    return deleted, notes
