"""Run history: list, group, aggregate, rename and delete the runs in a runs folder.  No Qt here.

A run is a directory written by :class:`workbench.services.recorder.RunRecorder` (config.toml, status.json,
metrics.csv, eval.csv, ...).  :func:`scan_runs` lists every directory of a runs folder and never raises
for a bad one: a half-written, foreign or corrupt directory comes back with ``error`` saying why.  A
directory that is not a run but holds runs (a sweep's folder) is listed through, one level deep.

Status comes from status.json as the recorder last wrote it.  A run whose process died without
writing its end still says "running"; when the status names a process on this machine,
``RunInfo.process_alive`` tells whether it still exists (``None``: unknown, e.g. another machine or a
run written before the recorder kept its pid), and :attr:`RunInfo.interrupted` is true when it is gone.

Runs whose configs are identical except the seed (and settings that only say where or how fast to
run: :data:`GROUP_IGNORED`) share a ``group_key``; :func:`group_runs` collects them and
:func:`aggregate` gives their mean curve with a 95% confidence band.
"""
from __future__ import annotations

import copy
import csv
import datetime as _dt
import hashlib
import io
import json
import math
import os
import socket
import stat
import sys
import tomllib
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from workbench.core.errors import WorkbenchError
from workbench.core.stats import t975
from .runlock import is_locked
from workbench.core.storage import MAX_CSV_BYTES, MAX_TEXT_BYTES, UnreadableFile, open_regular, read_regular_bytes
# The run folder's file names, CSV schemas and status.json are rundir's; re-exported here, where the app and
# older callers look for them (runs.CONFIG, runs.STATUS, runs.is_run_file, ...).
from .rundir import (BUNDLE, CHECKPOINT, CONFIG, EVAL, EVAL_HEADER, EVAL_TASKS, EVENT_FILE_PREFIX, LOCK,  # noqa: F401
                     METRICS, METRICS_HEADER, ONNX, RUN_FILES, STATUS, STATUSES, SWEEP, is_run_file, safe_run_name,
                     status_or_error, write_status)
# settings that do not change what a run computes, left out of the group key with run.seed
GROUP_IGNORED = {"run": ("seed", "threads", "sampler_workers", "device", "output", "output_dir", "run_dir")}
MAX_JSON_BYTES = MAX_TEXT_BYTES  # config.toml, status.json, sweep.json
_MAX_HEADER = 1 << 16  # characters of a CSV's first line read to check its header
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)),
                     *(f"lpt{i}" for i in range(1, 10))}


class RunError(WorkbenchError):
    """A run cannot be renamed, deleted or read; the message says why."""


@dataclass
class RunInfo:
    path: Path
    name: str  # the directory's name (relative to the runs folder: "sweep-x/trial-3" for nested runs)
    preset: str = ""  # [meta] name
    family: str = ""
    algorithm: str = ""
    seed: int | None = None
    status: str = ""  # running / finished / stopped / failed ("" when status.json is missing or bad)
    iterations: int = 0  # meta-iterations done
    total_iterations: int | None = None  # run.iterations of the config
    metric: str = ""  # the held-out metric: "mse" (lower is better), "accuracy" or "return" (core/losses.py)
    final: float | None = None  # the last held-out evaluation after adaptation (None: none yet / diverged)
    date: _dt.datetime | None = None  # when the run started (timezone-aware, UTC)
    sweep_id: str | None = None
    group_key: str = ""
    error: str | None = None  # why the directory is unreadable; None for a good run
    message: str = ""  # status.json's message (why a run failed)
    process_alive: bool | None = None  # for "running": does the writing process still exist (None: unknown)
    trial: object = None  # sweep.json "trial"
    sweep_values: dict = field(default_factory=dict)  # sweep.json "values"
    warning: str | None = None  # something odd that does not make the run unreadable (a bad sweep.json)
    root: Path | None = field(default=None, repr=False)
    config: dict | None = field(default=None, repr=False, compare=False)  # config.toml as read

    @property
    def readable(self) -> bool:
        return self.error is None

    @property
    def interrupted(self) -> bool:
        """Says "running" but the process that wrote that is gone (a crash or a kill)."""
        return self.status == "running" and self.process_alive is False

    @property
    def higher_is_better(self) -> bool:
        from workbench.core.losses import higher_is_better

        return higher_is_better(self.metric)


@dataclass
class RunGroup:
    """Runs that differ only in their seed."""
    key: str
    runs: list[RunInfo]

    @property
    def n(self) -> int:
        return len(self.runs)

    @property
    def seeds(self) -> list[int | None]:
        return [r.seed for r in self.runs]

    @property
    def preset(self) -> str:
        return self.runs[0].preset

    @property
    def family(self) -> str:
        return self.runs[0].family

    @property
    def algorithm(self) -> str:
        return self.runs[0].algorithm

    @property
    def metric(self) -> str:
        return self.runs[0].metric

    @property
    def sweep_id(self) -> str | None:
        ids = {r.sweep_id for r in self.runs}
        return ids.pop() if len(ids) == 1 else None

    def final_mean_ci95(self) -> tuple[float | None, float | None]:
        """Mean of the runs' final held-out values and the 95% CI half-width (None without values / < 2)."""
        vals = np.array([r.final for r in self.runs if r.final is not None], dtype=np.float64)
        if len(vals) == 0:
            return None, None
        if len(vals) == 1:
            return float(vals[0]), None
        return float(vals.mean()), float(t975(len(vals) - 1) * vals.std(ddof=1) / math.sqrt(len(vals)))


# -- grouping ---------------------------------------------------------------------------------------
def config_group_key(config: dict) -> str:
    """A stable hash of a config (as ``ExperimentConfig.to_dict()`` or config.toml gives it) without the
    seed and :data:`GROUP_IGNORED`: equal for runs that differ only in those."""
    data = copy.deepcopy(config)
    for section, keys in GROUP_IGNORED.items():
        if isinstance(data.get(section), dict):
            for k in keys:
                data[section].pop(k, None)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def group_runs(runs: list[RunInfo]) -> list[RunGroup]:
    """Readable runs by group key, in order of first appearance; each group's runs sorted by seed.
    Unreadable runs are in no group."""
    groups: dict[str, RunGroup] = {}
    for r in runs:
        if r.error is None:
            groups.setdefault(r.group_key, RunGroup(r.group_key, [])).runs.append(r)
    for g in groups.values():
        g.runs.sort(key=lambda r: (r.seed is None, r.seed if r.seed is not None else 0, r.name))
    return list(groups.values())


# -- scanning -----------------------------------------------------------------------------------------
def scan_runs(root: str | Path, depth: int = 2) -> list[RunInfo]:
    """Every directory of ``root`` as a :class:`RunInfo`, sorted by name; never raises for a bad run.

    Hidden entries (starting with '.') and plain files are skipped.  A directory that is not a run
    itself but contains runs is listed through (``depth`` levels in all).  A missing root gives [].
    """
    root = Path(root)
    out: list[RunInfo] = []
    _scan(root, root, depth, out)
    return out


def _scan(root: Path, folder: Path, depth: int, out: list[RunInfo]) -> None:
    try:
        entries = sorted(folder.iterdir(), key=lambda p: p.name)
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            if not entry.is_dir():
                continue
        except OSError:
            continue
        if depth > 1 and _holds_runs(entry):
            _scan(root, entry, depth - 1, out)
        else:
            out.append(read_run(entry, root))


def _is_run_like(path: Path) -> bool:
    return (path / CONFIG).exists() or (path / STATUS).exists() or (path / SWEEP).exists()


def _holds_runs(path: Path) -> bool:
    """Not a run, but some of its sub-directories are (a sweep's folder)."""
    try:
        if _is_run_like(path):
            return False
        return any(p.is_dir() and not p.name.startswith(".") and _is_run_like(p) for p in path.iterdir())
    except OSError:
        return False


def read_run(path: str | Path, root: str | Path | None = None) -> RunInfo:
    """One run directory as a :class:`RunInfo`; a bad one has ``error`` set, this never raises."""
    path = Path(path)
    root = Path(root) if root is not None else None
    try:
        name = path.relative_to(root).as_posix() if root is not None else path.name
    except ValueError:
        name = path.name
    info = RunInfo(path=path, name=name, root=root)
    try:
        _fill(info)
    except Exception as e:  # noqa: BLE001 -- a listing must survive any directory; the reason is shown
        info.error = f"cannot read the run ({type(e).__name__}: {e})"
    return info


def _fill(info: RunInfo) -> None:
    path = info.path
    try:
        names = {p.name for p in path.iterdir()}
    except PermissionError:
        info.error = "permission denied"
        return
    except OSError as e:
        info.error = f"cannot list the directory ({e.strerror or e})"
        return
    has_config, has_status = CONFIG in names, STATUS in names
    if not has_config and not has_status:
        if SWEEP in names:
            _fill_sweep(info)
            info.error = f"a sweep trial that has not started (only {SWEEP})"
        else:
            info.error = ("empty directory" if not names else
                          f"not a workbench run (no {CONFIG} or {STATUS})")
        return
    errors: list[str] = []
    # -- config
    if has_config:
        config, err = _read_config(path / CONFIG)
        if err:
            errors.append(err)
        else:
            info.config = config
            meta, task, algo, run = (config.get(s, {}) for s in ("meta", "task", "algorithm", "run"))
            info.preset = str(meta.get("name", "")) if isinstance(meta, dict) else ""
            info.family, info.algorithm = str(task["family"]), str(algo["name"])
            seed, total = run.get("seed"), run.get("iterations")
            info.seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else None
            info.total_iterations = total if isinstance(total, int) and not isinstance(total, bool) else None
            info.group_key = config_group_key(config)
            if isinstance(meta, dict) and meta.get("sweep_id") is not None:
                info.sweep_id = str(meta["sweep_id"])
    else:
        errors.append(f"half-written: {STATUS} but no {CONFIG}")
    # -- status
    status: dict = {}
    if has_status:
        status, err = status_or_error(path)
        if err:
            errors.append(err)
        else:
            info.status = status["status"]
            info.message = str(status.get("message") or "")
            if info.status == "running":
                info.process_alive = _process_alive(status.get("pid"), status.get("host"))
    else:
        errors.append(f"half-written: {CONFIG} but no {STATUS} (interrupted while starting?)")
    # -- progress and the last held-out evaluation
    if METRICS in names:
        last, err = _last_iteration(path / METRICS)
        if err:
            errors.append(err)
        else:
            info.iterations = last
    if info.status in ("finished", "stopped", "stopped early", "failed") and isinstance(status.get("iteration"), int):
        info.iterations = status["iteration"]  # where it ended (a crash may have logged rows past that)
    _fill_final(info, status, names)
    # -- when and which sweep
    info.date = _parse_date(status.get("started")) or _mtime(path / CONFIG) or _mtime(path / STATUS)
    if SWEEP in names:
        _fill_sweep(info)
    if errors:
        info.error = "; ".join(errors)
        if info.status and info.message:  # e.g. a sweep trial that failed before its run began
            info.error += f" ({STATUS} says {info.status}: {info.message})"


def _read_sweep(path: Path) -> tuple[dict, str | None]:
    try:
        sweep = json.loads(read_regular_bytes(path / SWEEP, MAX_JSON_BYTES).decode("utf-8"))
    except UnreadableFile as e:
        return {}, f"{SWEEP} unreadable ({e})"
    except (UnicodeDecodeError, ValueError, RecursionError):
        return {}, f"{SWEEP} unreadable (not valid JSON)"
    if not isinstance(sweep, dict) or sweep.get("sweep_id") is None:
        return {}, f"{SWEEP} unreadable (no sweep_id)"
    return sweep, None


def _fill_sweep(info: RunInfo) -> None:
    """sweep.json, written by services/sweep.py into each trial's run: {"sweep_id", "trial", "values", ...}."""
    sweep, err = _read_sweep(info.path)
    if err:
        info.warning = err
        return
    info.sweep_id = str(sweep["sweep_id"])
    info.trial = sweep.get("trial")
    info.sweep_values = sweep.get("values") if isinstance(sweep.get("values"), dict) else {}


def _read_config(path: Path) -> tuple[dict | None, str | None]:
    try:
        data = tomllib.loads(read_regular_bytes(path, MAX_JSON_BYTES).decode("utf-8"))
    except UnreadableFile as e:
        return None, f"{CONFIG}: cannot read ({e})"
    except RecursionError:
        return None, f"{CONFIG}: malformed TOML (nested too deeply)"
    except UnicodeDecodeError:
        return None, f"{CONFIG}: not a text file"
    except tomllib.TOMLDecodeError as e:
        return None, f"{CONFIG}: malformed TOML ({e})"
    task, algo = data.get("task"), data.get("algorithm")
    if not (isinstance(task, dict) and isinstance(task.get("family"), str)
            and isinstance(algo, dict) and isinstance(algo.get("name"), str)):
        return None, f"{CONFIG}: not a workbench config (no [task] family or [algorithm] name)"
    for section in ("meta", "run", "model"):
        if section in data and not isinstance(data[section], dict):
            return None, f"{CONFIG}: [{section}] is not a table"
    return data, None


def _open_text(path: Path, limit: int | None = None):
    """A regular file opened as UTF-8 text for the csv module (never a FIFO or a device): raises
    :class:`UnreadableFile` with the reason."""
    return io.TextIOWrapper(open_regular(path, limit), encoding="utf-8", errors="replace", newline="")


def _tail_lines(path: Path, block: int = 8192) -> list[str]:
    """The last complete-looking lines of a text file, read from its end (files can be long)."""
    with open_regular(path) as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - block))
        data = f.read()
    lines = data.decode("utf-8", errors="replace").splitlines()
    return lines[1:] if size > block else lines


def _last_iteration(path: Path) -> tuple[int, str | None]:
    try:
        with _open_text(path) as f:
            first = f.readline(_MAX_HEADER)
        if not first.strip():
            return 0, None  # created, nothing written yet
        header = next(csv.reader([first]), [])
        if header[:3] != METRICS_HEADER:
            return 0, f"{METRICS}: not a workbench metrics file"
        width = len(header)
        for line in reversed(_tail_lines(path)):
            row = next(csv.reader([line]), [])
            if len(row) == width:
                try:
                    return int(row[0]), None
                except ValueError:
                    if row == header:
                        return 0, None
        return 0, None
    except UnreadableFile as e:
        return 0, f"{METRICS}: cannot read ({e})"
    except OSError as e:
        return 0, f"{METRICS}: cannot read ({e.strerror or e})"


def _fill_final(info: RunInfo, status: dict, names: set[str]) -> None:
    last = status.get("last_eval")
    if isinstance(last, dict) and isinstance(last.get("metric"), str):
        info.metric = last["metric"]
        after = last.get("after")
        info.final = float(after) if isinstance(after, (int, float)) and math.isfinite(after) else None
        return
    # runs written before the recorder kept the last evaluation in status.json: read eval.csv
    if EVAL_TASKS in names:
        try:
            with _open_text(info.path / EVAL_TASKS) as f:
                header = next(csv.reader([f.readline(_MAX_HEADER)]), [])
            if len(header) == 4:
                info.metric = header[3]
        except (OSError, UnreadableFile, csv.Error):
            pass
    if EVAL in names:
        try:
            ev = _read_eval(info.path / EVAL, _trained_steps(info.config, status))
        except (OSError, RunError):
            return
        if len(ev[0]):
            after = float(ev[2][-1])
            info.final = after if math.isfinite(after) else None


def _trained_steps(config: dict | None, status: dict) -> int | None:
    """The inner step that counts as "after adaptation": status.json says it; for older runs the
    config's inner_steps is a good guess; None: the last step."""
    last = status.get("last_eval") if isinstance(status, dict) else None
    if isinstance(last, dict) and isinstance(last.get("trained_steps"), int):
        return last["trained_steps"]
    steps = (config or {}).get("algorithm", {}).get("inner_steps")
    return steps if isinstance(steps, int) and not isinstance(steps, bool) else None


def _parse_date(text) -> _dt.datetime | None:
    if not isinstance(text, str):
        return None
    try:
        d = _dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return d if d.tzinfo is not None else d.replace(tzinfo=_dt.timezone.utc)


def _mtime(path: Path) -> _dt.datetime | None:
    try:
        return _dt.datetime.fromtimestamp(path.stat().st_mtime, _dt.timezone.utc)
    except OSError:
        return None


def _process_alive(pid, host) -> bool | None:
    """Whether process ``pid`` on ``host`` exists; None when that cannot be known from here."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0 or host != socket.gethostname():
        return None
    if pid == os.getpid():
        return True
    if sys.platform == "win32":
        return None  # os.kill(pid, 0) would send CTRL_C_EVENT there
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return None
    return True


# -- curves -----------------------------------------------------------------------------------------
@dataclass
class Curves:
    """A run's logged curves, read from its CSVs (rows cut short by a crash are skipped, a repeated
    iteration keeps its last row)."""
    iterations: np.ndarray  # (N,) int
    train: np.ndarray  # (N,) the training metric
    train_metric: str  # its column: "loss" when logged, else "return", else the first metric column
    columns: dict[str, np.ndarray]  # every metrics.csv column after "iteration" (elapsed, its_per_sec, ...)
    eval_iterations: np.ndarray  # (E,) int
    before: np.ndarray  # (E,) mean held-out metric before adaptation (step 0)
    after: np.ndarray  # (E,) after the trained number of inner steps
    eval_steps: np.ndarray  # (S,) inner steps evaluated
    eval_mean: np.ndarray  # (E, S) mean held-out curve of each evaluation (NaN where not logged)
    eval_ci95: np.ndarray  # (E, S) its 95% CI half-width
    eval_metric: str = ""

    def series(self, which: str) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of "train", "before", "after", "adaptation" or a metrics.csv column.

        "adaptation": the held-out metric vs inner step (0 = before adaptation) at the run's last
        evaluation; empty before the first one."""
        if which == "train":
            return self.iterations, self.train
        if which in ("before", "after"):
            return self.eval_iterations, getattr(self, which)
        if which == "adaptation":
            if not len(self.eval_iterations):
                return np.zeros(0, dtype=np.int64), np.zeros(0)
            return self.eval_steps, self.eval_mean[-1]
        if which in self.columns:
            return self.iterations, self.columns[which]
        raise KeyError(f"no curve {which!r}; curves: train, before, after, adaptation, {', '.join(self.columns)}")


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


def _read_csv_file(path: Path):
    try:
        return _open_text(path, MAX_CSV_BYTES)
    except UnreadableFile as e:
        raise RunError(f"{path}: cannot read ({e})") from None


def _read_metrics(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    with _read_csv_file(path) as f:
        try:
            rows = list(csv.reader(f))
        except csv.Error as e:  # a torn or foreign file (an unclosed quote, a huge field)
            raise RunError(f"{path}: unreadable CSV ({e})") from None
    if not rows:
        return np.zeros(0, dtype=np.int64), {}
    if rows[0][:3] != METRICS_HEADER:
        raise RunError(f"{path}: not a workbench metrics file")
    header, width = rows[0], len(rows[0])
    by_it: dict[int, list[str]] = {}
    for r in rows[1:]:
        if len(r) != width:
            continue
        try:
            by_it[int(r[0])] = r
        except ValueError:
            continue
    its = sorted(by_it)
    columns = {h: np.array([_float(by_it[i][c]) for i in its], dtype=np.float64)
               for c, h in enumerate(header) if c > 0}
    return np.array(its, dtype=np.int64), columns


def _read_eval(path: Path, trained: int | None):
    """(iterations, before, after, steps, mean matrix, ci matrix) from eval.csv."""
    with _read_csv_file(path) as f:
        try:
            rows = list(csv.reader(f))
        except csv.Error as e:  # a torn or foreign file (an unclosed quote, a huge field)
            raise RunError(f"{path}: unreadable CSV ({e})") from None
    if rows and rows[0] != EVAL_HEADER:
        raise RunError(f"{path}: not a workbench evaluation file")
    cells: dict[int, dict[int, tuple[float, float]]] = {}
    for r in rows[1:]:
        if len(r) != 4:
            continue
        try:
            it, step = int(r[0]), int(r[1])
        except ValueError:
            continue
        cells.setdefault(it, {})[step] = (_float(r[2]), _float(r[3]))
    its = sorted(cells)
    steps = sorted({s for c in cells.values() for s in c})
    col = {s: j for j, s in enumerate(steps)}
    mean = np.full((len(its), len(steps)), np.nan)
    ci = np.full((len(its), len(steps)), np.nan)
    for i, it in enumerate(its):
        for s, (m, c) in cells[it].items():
            mean[i, col[s]], ci[i, col[s]] = m, c
    before = np.array([mean[i, col[min(cells[it])]] for i, it in enumerate(its)], dtype=np.float64)
    after = []
    for i, it in enumerate(its):
        logged = sorted(cells[it])
        # Evaluation.after: the trained step, or the last one evaluated when the curve is shorter
        if trained is None:
            s = logged[-1]
        else:
            s = trained if trained in cells[it] else logged[min(trained, len(logged) - 1)]
        after.append(mean[i, col[s]])
    return (np.array(its, dtype=np.int64), before, np.array(after, dtype=np.float64),
            np.array(steps, dtype=np.int64), mean, ci)


def load_curves(run: RunInfo | str | Path, train_metric: str | None = None) -> Curves:
    """The curves of a run from its CSVs; raises :class:`RunError` for an unreadable run.  A run without
    iterations or evaluations yet gives empty arrays."""
    info = run if isinstance(run, RunInfo) else read_run(run)
    if info.error is not None:
        raise RunError(f"{info.name}: unreadable run ({info.error})")
    path = info.path
    try:
        if (path / METRICS).exists():
            its, columns = _read_metrics(path / METRICS)
        else:
            its, columns = np.zeros(0, dtype=np.int64), {}
        status, _ = status_or_error(path)
        if (path / EVAL).exists():
            ev = _read_eval(path / EVAL, _trained_steps(info.config, status))
        else:
            ev = (np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64),
                  np.zeros((0, 0)), np.zeros((0, 0)))
    except OSError as e:
        raise RunError(f"{info.name}: cannot read its curves ({e.strerror or e})") from None
    metric_cols = [c for c in columns if c not in METRICS_HEADER]
    if train_metric is None:
        fallback = metric_cols[0] if metric_cols else ""
        train_metric = next((m for m in ("loss", "return") if m in metric_cols), fallback)
    if train_metric and columns and train_metric not in columns:
        raise RunError(f"{info.name}: no training metric {train_metric!r}; logged: {', '.join(metric_cols)}")
    train = columns.get(train_metric, np.zeros(0))
    return Curves(its, train, train_metric, columns, *ev, eval_metric=info.metric)


@dataclass
class Aggregate:
    """Curves of several runs (seeds) on common x: mean, 95% CI of the mean, min and max."""
    x: np.ndarray
    mean: np.ndarray
    low: np.ndarray  # mean - CI half-width (NaN where fewer than 2 runs)
    high: np.ndarray
    min: np.ndarray
    max: np.ndarray
    n: np.ndarray  # runs contributing at each x

    @property
    def ci95(self) -> np.ndarray:
        return self.high - self.mean


def aggregate(curves_list: list[Curves], which: str = "train", common: bool = True) -> Aggregate:
    """Mean, Student-t 95% CI (as :func:`workbench.core.stats.mean_ci95`), min and max across runs.

    ``common``: only the x every run has (a seed still running shortens the group's curve); otherwise
    every x any run has, each from the runs that have it (``n`` varies).  A NaN in a run (a diverged
    value) makes that x NaN, as :func:`mean_ci95` does.
    """
    if not curves_list:
        raise ValueError("aggregate: no curves")
    series = [c.series(which) for c in curves_list]
    xs = [np.asarray(x, dtype=np.int64) for x, _ in series]
    if common:
        x = xs[0]
        for other in xs[1:]:
            x = np.intersect1d(x, other)
    else:
        x = np.unique(np.concatenate(xs))
    k = len(series)
    values = np.zeros((k, len(x)))
    present = np.zeros((k, len(x)), dtype=bool)
    for i, (xi, (_, yi)) in enumerate(zip(xs, series)):
        if not len(x):
            break
        yi = np.asarray(yi, dtype=np.float64)
        idx = np.clip(np.searchsorted(x, xi), 0, len(x) - 1)
        ok = x[idx] == xi
        values[i, idx[ok]] = yi[ok]
        present[i, idx[ok]] = True
    n = present.sum(0)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        mean = np.where(present, values, 0.0).sum(0) / n
        dev = np.where(present, values - mean, 0.0)
        sem = np.sqrt((dev ** 2).sum(0) / (n - 1)) / np.sqrt(n)
        counts, where = np.unique(n, return_inverse=True)  # one quantile per distinct number of runs
        tq = np.array([t975(int(m) - 1) if m >= 2 else np.nan for m in counts], dtype=np.float64)[where]
        half = tq * sem
        lo_fill, hi_fill = np.where(present, values, np.inf), np.where(present, values, -np.inf)
        vmin, vmax = lo_fill.min(0), hi_fill.max(0)
        anynan = (np.isnan(values) & present).any(0)
    vmin[anynan] = vmax[anynan] = np.nan
    return Aggregate(x, mean, mean - half, mean + half, vmin, vmax, n)


def run_bundle(run: RunInfo | str | Path) -> Path | None:
    """The model bundle a run exported, in its own directory: the file status.json's "bundle" names (by
    its name: the path there is stale once the runs folder was moved or copied), else the run's
    model.safetensors; None when there is none (yet)."""
    info = run if isinstance(run, RunInfo) else read_run(run)
    status, err = status_or_error(info.path)
    bundle = status.get("bundle") if not err else None
    names = [Path(bundle).name] if isinstance(bundle, str) and Path(bundle).name else []
    for name in (*names, BUNDLE):
        try:
            if (info.path / name).is_file():
                return info.path / name
        except OSError:
            continue
    return None


PRETRAINED_ALGORITHMS = ("pretrained", "pretrained-rl")  # the baselines a meta-learner is compared with


def pretrained_bundles(root: str | Path, family: str) -> list[tuple[RunInfo, Path]]:
    """The pretrained runs of ``family`` in the runs folder ``root`` that have a bundle, with it, newest
    first (the Playground's and the task map's baseline candidates); none when ``root`` cannot be read."""
    try:
        runs = scan_runs(root)
    except OSError:
        return []
    runs = [r for r in runs if r.readable and r.family == family and r.algorithm in PRETRAINED_ALGORITHMS]
    runs.sort(key=lambda r: r.date.timestamp() if r.date else 0.0, reverse=True)
    return [(r, b) for r in runs if (b := run_bundle(r)) is not None]


# -- rename / delete ----------------------------------------------------------------------------------
def _ours(path: Path) -> str | None:
    """None when ``path`` looks like a directory the workbench wrote, else why not."""
    if path.is_symlink():
        return "it is a symbolic link"
    if not path.is_dir():
        return "no such directory"
    entries = list(path.iterdir())
    folders = [p.name for p in entries if p.is_dir() and not p.is_symlink()]
    if folders:
        return f"it contains folders ({', '.join(sorted(folders)[:3])}), which a run never has"
    links = [p.name for p in entries if p.is_symlink()]
    if links:
        return f"it contains symbolic links ({', '.join(sorted(links)[:3])})"
    names = {p.name for p in entries}
    if CONFIG in names and _read_config(path / CONFIG)[1] is None:
        return None
    if STATUS in names and status_or_error(path)[1] is None:
        return None
    if SWEEP in names and _read_sweep(path)[1] is None:
        return None
    for name, header in ((METRICS, METRICS_HEADER), (EVAL, EVAL_HEADER)):
        if name in names:
            try:
                with _open_text(path / name) as f:
                    if f.readline(_MAX_HEADER).strip().split(",")[:len(header)] == header:
                        return None
            except (OSError, UnreadableFile):
                pass
    return f"neither its {CONFIG}, {STATUS}, {SWEEP} nor its CSVs are the workbench's"


def _refuse_running(run: RunInfo, verb: str, force: bool) -> None:
    status, err = status_or_error(run.path)  # now, not when the list was made
    if force or err or status.get("status") != "running":
        return
    alive = _process_alive(status.get("pid"), status.get("host"))
    if alive is False:
        return
    who = f" (process {status.get('pid')} on {status.get('host')})" if status.get("pid") else ""
    raise RunError(f"{run.name}: cannot {verb} a run that is still running{who}; stop it first"
                   + ("" if alive else ", or pass force=True if it is not running any more"))


def check_run_name(new_name: str) -> str:
    """``new_name`` if it is usable as a run's directory name, else :class:`RunError` saying why."""
    if not isinstance(new_name, str) or not new_name.strip():
        raise RunError("a run needs a name")
    if new_name != new_name.strip():
        raise RunError(f"run name {new_name!r}: no leading or trailing spaces")
    if new_name.startswith("."):
        raise RunError(f"run name {new_name!r}: must not start with '.' (hidden)")
    if len(new_name) > 80:
        raise RunError(f"run name {new_name!r}: at most 80 characters")
    if safe_run_name(new_name) != new_name:
        raise RunError(f"run name {new_name!r}: use only letters, digits, '.', '_' and '-' "
                       f"(e.g. {safe_run_name(new_name)!r})")
    if new_name.split(".")[0].lower() in _WINDOWS_RESERVED:
        raise RunError(f"run name {new_name!r}: reserved on Windows")
    return new_name


def rename_run(run: RunInfo | str | Path, new_name: str, *, force: bool = False) -> RunInfo:
    """Rename a run's directory (in the same folder); returns the run as read from its new place.

    Refuses an unsafe name, a name that is taken (also differing only in case), a directory that does
    not look like a run, and a run still running (unless ``force``)."""
    info = run if isinstance(run, RunInfo) else read_run(run)
    check_run_name(new_name)
    why = _ours(info.path)
    if why:
        raise RunError(f"{info.name}: not renamed: {why}")
    _refuse_running(info, "rename", force)
    if new_name == info.path.name:
        return read_run(info.path, info.root)
    target = info.path.parent / new_name
    for sibling in info.path.parent.iterdir():
        if sibling.name.lower() == new_name.lower() and sibling.name != info.path.name:
            raise RunError(f"{info.name}: not renamed: {sibling.name!r} already exists")
    try:
        info.path.rename(target)
    except OSError as e:
        raise RunError(f"{info.name}: not renamed: {e.strerror or e}") from None
    _repoint_status(info.path, target)
    return read_run(target, info.root)


def _repoint_status(old: Path, new: Path) -> None:
    """status.json names the exported bundle by its path: make it follow the rename."""
    status, err = status_or_error(new)
    bundle = status.get("bundle")
    if err or not isinstance(bundle, str):
        return
    try:
        target = new / Path(bundle).relative_to(old)
    except ValueError:  # the folder was moved since: the bundle was <old name>/<file> all the same
        if Path(bundle).parent.name != old.name or not (new / Path(bundle).name).exists():
            return
        target = new / Path(bundle).name
    status["bundle"] = str(target)
    try:
        write_status(new, status)
    except OSError:
        pass


def _outside(path: Path, root: Path) -> str | None:
    """Why ``path`` is not a folder inside the runs folder ``root`` (after following links and '..'), or None."""
    try:
        real_root = Path(root).resolve(strict=True)
        real = Path(path).resolve(strict=True)
    except (OSError, RuntimeError) as e:
        return f"cannot resolve its path ({getattr(e, 'strerror', None) or e})"
    if real == real_root:
        return f"it is the runs folder {root} itself"
    if real_root not in real.parents:
        return f"it is not inside the runs folder {root} (it is {real})"
    return None


def _locked(path: Path) -> bool:
    try:
        return is_locked(path)
    except OSError:
        return False


def _remove_run_files(folder: Path) -> list[str]:
    """Unlink the regular files named as the workbench's (:func:`is_run_file`) in ``folder``; returns the
    names of what is left.  Links, FIFOs and anything else are never removed.  Where the platform allows,
    works through a descriptor of the folder opened without following links, so swapping the folder for a
    link meanwhile cannot redirect the removal elsewhere."""
    use_fd = os.unlink in os.supports_dir_fd and os.stat in os.supports_dir_fd and hasattr(os, "O_DIRECTORY")
    fd = None
    if use_fd:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_NOFOLLOW", 0))
    try:
        names = os.listdir(fd if fd is not None else folder)
        for name in names:
            if not is_run_file(name):
                continue
            if fd is not None:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if stat.S_ISREG(st.st_mode):
                    os.unlink(name, dir_fd=fd)
            else:
                p = folder / name
                if stat.S_ISREG(os.lstat(p).st_mode):
                    os.unlink(p)
        return sorted(os.listdir(fd if fd is not None else folder))
    finally:
        if fd is not None:
            os.close(fd)


def delete_run(run: RunInfo | str | Path, *, force: bool = False, root: str | Path | None = None) -> list[Path]:
    """Delete a run: remove the files the workbench wrote into its folder (:func:`is_run_file`), then the
    folder if that left it empty.  Returns the files that were kept: files the workbench did not write
    (a ``thesis.tex`` saved there) are never touched, and while any remain the folder stays too.

    Refused (:class:`RunError`, nothing removed): a folder outside its runs folder (``root``, else the
    run's :attr:`RunInfo.root`, after following links and '..'), a folder that does not look like a
    workbench run (sub-folders, links, no config.toml / status.json / CSV the workbench wrote), and a run
    still running (unless ``force``; never while a live process holds its lock).  A folder holding only
    the workbench's files is first renamed to a hidden name, so a half-done delete is not listed."""
    info = run if isinstance(run, RunInfo) else read_run(run, root)
    root = Path(root) if root is not None else info.root
    if root is not None:
        why = _outside(info.path, root)
        if why:
            raise RunError(f"{info.name}: not deleted: {why}")
    why = _ours(info.path)
    if why:
        raise RunError(f"{info.name}: not deleted: {why}")
    if _locked(info.path):
        raise RunError(f"{info.name}: cannot delete a run that is still running (a process holds its lock); "
                       f"stop it first")
    _refuse_running(info, "delete", force)
    try:
        names = [p.name for p in info.path.iterdir()]
    except OSError as e:
        raise RunError(f"{info.name}: not deleted: {e.strerror or e}") from None
    if any(not is_run_file(n) for n in names):
        target = info.path  # the user's files stay where they are, under the name they know
    else:
        target = info.path.parent / f".{info.path.name}.deleting-{uuid.uuid4().hex[:8]}"
        try:
            info.path.rename(target)
        except OSError as e:
            raise RunError(f"{info.name}: not deleted: {e.strerror or e}") from None
    try:
        left = _remove_run_files(target)
        if not left:
            os.rmdir(target)
            return []
    except OSError as e:
        where = _give_back_name(target, info.path)
        raise RunError(f"{info.name}: only partly deleted ({e.strerror or e}); what is left is in {where}") from None
    where = _give_back_name(target, info.path)  # a file saved there meanwhile: not left in a hidden folder
    return [where / n for n in left]


def _give_back_name(target: Path, original: Path) -> Path:
    if target == original:
        return original
    try:
        target.rename(original)
        return original
    except OSError:
        return target
