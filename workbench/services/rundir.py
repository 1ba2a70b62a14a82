"""The run directory: the one owner of its file names, its CSV schemas, ``status.json`` and fresh run names.

A run directory (``<runs folder>/<name>``) holds, and nothing else writes into it::

    config.toml              the resolved experiment (re-loadable as a preset)           CONFIG
    status.json              running / finished / stopped / failed, message, ...          STATUS
    metrics.csv              METRICS_HEADER + the training metrics, one row per iteration  METRICS
    eval.csv                 EVAL_HEADER, one row per (evaluation, inner step)            EVAL
    eval_tasks.csv           EVAL_TASKS_HEADER + the metric, one row per (evaluation, task, step)  EVAL_TASKS
    checkpoint.safetensors   the state to resume from                                     CHECKPOINT
    model.safetensors        the model bundle exported at the end                         BUNDLE
    model.onnx               ``workbench export`` next to the bundle                      ONNX
    sweep.json               a sweep's trial: which sweep, which values                   SWEEP
    .lock                    held by the process writing the run (services/runlock.py)    LOCK
    events.out.tfevents.*    TensorBoard event files, one per session                     EVENT_FILE_PREFIX

Every other module names these files through the constants here (a test checks that no module of
``workbench/services`` or ``workbench/cli.py`` spells them itself).  Qt-free and torch-free.
"""
from __future__ import annotations

import datetime as _dt
import errno
import json
import os
import re
from pathlib import Path

from workbench.core.errors import ConfigError
from workbench.core.storage import MAX_TEXT_BYTES, UnreadableFile, atomic_write_text, read_regular_bytes

# -- file names ---------------------------------------------------------------------------------------
CONFIG = "config.toml"
STATUS = "status.json"
METRICS = "metrics.csv"
EVAL = "eval.csv"
EVAL_TASKS = "eval_tasks.csv"
SWEEP = "sweep.json"
CHECKPOINT = "checkpoint.safetensors"
BUNDLE = "model.safetensors"  # what the trainer exports at the end of a run
ONNX = "model.onnx"  # `workbench export` next to the bundle
LOCK = ".lock"
EVENT_FILE_MARK = "tfevents"  # what TensorBoard looks for in a file name
EVENT_FILE_PREFIX = f"events.out.{EVENT_FILE_MARK}."  # services/tensorboard.py, one file per session
CSV_FILES = (METRICS, EVAL, EVAL_TASKS)  # the row logs (cut back together on resume)
# Every file the workbench writes into a run folder (with the event files); delete_run removes these only.
RUN_FILES = frozenset({CONFIG, STATUS, METRICS, EVAL, EVAL_TASKS, SWEEP, CHECKPOINT, BUNDLE, ONNX, LOCK})

# -- CSV schemas --------------------------------------------------------------------------------------
METRICS_HEADER = ["iteration", "elapsed", "its_per_sec"]  # then the training metrics, sorted by name
EVAL_HEADER = ["iteration", "step", "mean", "ci95"]
EVAL_TASKS_HEADER = ["iteration", "task", "step"]  # then one column named after the held-out metric


def metrics_columns(metric_keys) -> list[str]:
    """metrics.csv's header: iteration, elapsed (seconds of training), its_per_sec, then ``metric_keys``."""
    return [*METRICS_HEADER, *metric_keys]


def eval_tasks_columns(metric: str) -> list[str]:
    """eval_tasks.csv's header: iteration, task (index in the held-out set), step (inner step), ``metric``."""
    return [*EVAL_TASKS_HEADER, metric]


# -- status.json --------------------------------------------------------------------------------------
STATUSES = ("running", "finished", "stopped", "stopped early", "failed")  # "stopped early": by a sweep's scheduler
MAX_STATUS_BYTES = MAX_TEXT_BYTES


def status_or_error(run_dir: str | Path) -> tuple[dict, str | None]:
    """A run's status.json checked: ``(data, None)``, or ``({}, why)`` with ``why`` naming the file
    ("status.json: not valid JSON", ...) when it is missing, unreadable, not a JSON object with a ``status``
    or has an unknown status.  Never reads a FIFO or a device, nor more than :data:`MAX_STATUS_BYTES`."""
    try:
        data = json.loads(read_regular_bytes(Path(run_dir) / STATUS, MAX_STATUS_BYTES).decode("utf-8"))
    except UnreadableFile as e:
        return {}, f"{STATUS}: cannot read ({e})"
    except (UnicodeDecodeError, ValueError, RecursionError):
        return {}, f"{STATUS}: not valid JSON"
    if not isinstance(data, dict) or not isinstance(data.get("status"), str):
        return {}, f"{STATUS}: no status in it"
    if data["status"] not in STATUSES:
        return {}, f"{STATUS}: unknown status {data['status']!r}"
    return data, None


def read_status(run_dir: str | Path) -> dict:
    """A run's status.json as a dict; ``{}`` when it is missing, unreadable or not a JSON object (never raises)."""
    try:
        data = json.loads(read_regular_bytes(Path(run_dir) / STATUS, MAX_STATUS_BYTES))
    except (OSError, ValueError, UnreadableFile, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def write_status(run_dir: str | Path, data: dict, *, durable: bool = True) -> None:
    """Write a run's status.json whole: ``data`` as indented JSON, through a temporary file and
    :func:`os.replace`, so a reader sees the old or the new file, never a mix.  ``durable``: fsync first
    (skip it for the frequent rewrites of a running run).  On a full disk, where the temporary copy has no
    room, the file is overwritten in its own blocks instead.  Raises ``OSError`` naming the file."""
    path = Path(run_dir) / STATUS
    text = json.dumps(data, indent=1)
    try:
        atomic_write_text(path, text, durable=durable)
    except OSError as e:
        if e.errno != errno.ENOSPC or not _overwrite_in_place(path, text.encode("utf-8")):
            raise


def update_status(run_dir: str | Path, **changes) -> None:
    """Change some keys of a run's status.json (read, merged, written whole and atomically)."""
    write_status(run_dir, {**read_status(run_dir), **changes})


def _overwrite_in_place(path: Path, data: bytes) -> bool:
    """Rewrite a small file in its own blocks: on a full disk the atomic write-and-rename has no room for
    its temporary copy, but the status of the run that the full disk failed must still be recorded."""
    try:
        with path.open("r+b") as f:
            f.write(data)
            f.truncate()
            f.flush()
            os.fsync(f.fileno())
        return True
    except OSError:
        return False


# -- which files are the workbench's ------------------------------------------------------------------
def is_event_file(name: str) -> bool:
    """Whether ``name`` is a TensorBoard event file's (what TensorBoard reads: the name holds "tfevents")."""
    return EVENT_FILE_MARK in name and not name.startswith(".")


def is_run_file(name: str) -> bool:
    """Whether a file named ``name`` is one the workbench writes into a run folder: :data:`RUN_FILES`, the
    TensorBoard event files, and the temporary files of :func:`~workbench.core.storage.atomic_write_bytes`
    for those (``.<name>.<random>.tmp``, left behind by a crash mid-write)."""
    if name in RUN_FILES or name.startswith(EVENT_FILE_PREFIX):
        return True
    if name.startswith(".") and name.endswith(".tmp"):
        base, dot, rand = name[1:-4].rpartition(".")
        return (bool(dot) and bool(rand) and rand.replace("_", "").isalnum()
                and (base in RUN_FILES or base.startswith(EVENT_FILE_PREFIX)))
    return False


def is_temporary(name: str) -> bool:
    """What a killed atomic write of a run's own file leaves: ``.<name>.<random>.tmp``."""
    return name.startswith(".") and name.endswith(".tmp") and is_run_file(name)


def remove_stale_temporaries(run_dir: str | Path) -> list[str]:
    """Delete the temporary files that a write killed half-way left in a run folder (only names the
    workbench's own atomic writes use; call with the folder's lock held).  Returns the names removed."""
    removed = []
    for p in Path(run_dir).iterdir():
        if is_temporary(p.name) and p.is_file() and not p.is_symlink():
            try:
                p.unlink()
                removed.append(p.name)
            except OSError:
                pass
    return removed


# -- run names ----------------------------------------------------------------------------------------
MAX_NAME = 80  # characters of a run's folder name
MAX_TRIES = 10_000  # name, name-2, ..., name-10000


def safe_run_name(name: str) -> str:
    """``name`` made safe as one path component: letters, digits, '.', '_' and '-' only (any other run of
    characters becomes '-'), no leading or trailing '.' / '-' (so never '..' or hidden), at most
    :data:`MAX_NAME` characters, never empty ("run")."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", str(name)).strip(".-")
    return cleaned[:MAX_NAME] or "run"


def timestamp(now: _dt.datetime | None = None) -> str:
    """``YYYYmmdd-HHMMSS`` in local time: the suffix of default run names and sweep ids."""
    return (now or _dt.datetime.now()).strftime("%Y%m%d-%H%M%S")


def default_run_name(preset_name: str, now: _dt.datetime | None = None) -> str:
    """The name a new run gets when the user gives none: ``<safe preset name>-<YYYYmmdd-HHMMSS>``."""
    base = safe_run_name(preset_name)[:MAX_NAME - 16].rstrip(".-") or "run"  # the whole name fits MAX_NAME
    return f"{base}-{timestamp(now)}"


def new_run_dir(runs_dir: str | Path, name: str) -> Path:
    """Create and return a new, empty run folder in ``runs_dir`` (created with its parents if missing):
    ``runs_dir/name``, else the first free one of ``name-2``, ``name-3``, ...

    Never reuses or overwrites anything that exists (a folder or a file of that name): each candidate is
    taken by ``mkdir`` without ``exist_ok``, which exactly one of several racing threads or processes wins.
    ``name`` must be one safe path component (:func:`safe_run_name` of itself) else :class:`ConfigError`;
    :class:`ConfigError` too when :data:`MAX_TRIES` names are taken.  ``OSError`` (naming the folder) when
    ``runs_dir`` cannot be created or written."""
    runs_dir = Path(runs_dir)
    if not isinstance(name, str) or safe_run_name(name) != name:
        raise ConfigError(f"run name {name!r}: expected one folder name of letters, digits, '.', '_' and '-' "
                          f"(e.g. {safe_run_name(str(name))!r})")
    if runs_dir.exists() and not runs_dir.is_dir():
        raise ConfigError(f"{runs_dir}: exists and is not a folder; choose another runs folder")
    runs_dir.mkdir(parents=True, exist_ok=True)
    for n in range(1, MAX_TRIES + 1):
        candidate = runs_dir / (name if n == 1 else f"{name}-{n}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise ConfigError(f"{runs_dir / name}: no free run name ({name}-2 ... {name}-{MAX_TRIES} are taken)")
