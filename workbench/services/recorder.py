"""Writes a run directory from the trainer's events: the resolved config, every metric as CSV.

    config.toml          the resolved experiment (re-loadable as a preset)
    metrics.csv          iteration, elapsed seconds, it/s, and each training metric
    eval.csv             iteration, inner step, mean held-out loss, 95% CI half-width
    eval_tasks.csv       iteration, task, inner step, loss (every held-out adaptation curve)
    status.json          the run's status (running / finished / stopped / failed) and message, when it
                         started, the process writing it (pid, host) and the last evaluation
    events.out.tfevents.*  the same scalars and the hyperparameters for TensorBoard (services/tensorboard.py;
                         one file per session, buffered, flushed at checkpoints and at the end)
    checkpoint.safetensors, model.safetensors    written by the trainer

The file names, the CSV columns and status.json's reading and writing are :mod:`workbench.services.rundir`'s.
"""
from __future__ import annotations

import csv
import errno
import datetime as _dt
import io
import math
import os
import socket
import stat
import warnings
from pathlib import Path

from workbench.core import events as ev
from workbench.core.errors import ConfigError, with_path
from workbench.core.storage import MAX_CSV_BYTES, UnreadableFile, atomic_write_text, open_regular
from . import rundir
from .rundir import read_status, update_status  # noqa: F401 - re-exported: callers import them from here


class RunRecorder:
    def __init__(self, run_dir: Path, tensorboard: bool = True):
        self.run_dir = Path(run_dir)
        self._files: dict[str, object] = {}
        self._writers: dict[str, csv.writer] = {}
        self._metric_keys: list[str] | None = None
        self._tensorboard = tensorboard
        self._tb = None  # tensorboard.EventWriter while a session runs
        self._resumed_at: int | None = None
        self._info: dict = {}  # kept in status.json: started, pid, host, last_eval

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self, config) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.run_dir / rundir.CONFIG, config.to_toml())  # an OS error names the file
        old = read_status(self.run_dir) if self._resumed_at is not None else {}
        now = _dt.datetime.now(_dt.timezone.utc)
        self._info = {"started": old.get("started") or now.isoformat(timespec="seconds"),
                      "pid": os.getpid(), "host": socket.gethostname()}
        if isinstance(old.get("last_eval"), dict):
            self._info["last_eval"] = old["last_eval"]
        self._status("running", "")
        if self._tensorboard:
            self._tb_call(self._tb_start, config, now.timestamp())

    def _tb_start(self, config, start_time: float) -> None:
        from .runs import config_group_key
        from .tensorboard import EventWriter

        self._tb = EventWriter(self.run_dir)
        # a resumed session: TensorBoard drops what older files hold from the step it redoes onwards
        self._tb.add_session_start(0 if self._resumed_at is None else self._resumed_at + 1)
        data = config.to_dict()
        hparams = {k: v for k, v in data.items() if k != "meta"}
        hparams["meta"] = {"name": data["meta"]["name"]}
        self._tb.add_hparams(hparams, group_name=config_group_key(data), start_time=start_time,
                             step=self._resumed_at or 0)
        self._tb.flush()

    def _tb_call(self, fn, *args) -> None:
        """TensorBoard files are a secondary view: an error there turns them off, never the run."""
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - a full disk, a value it cannot encode: the CSVs carry on
            warnings.warn(f"{self.run_dir}: TensorBoard event file disabled ({e}); the CSVs are unaffected")
            tb, self._tb = self._tb, None
            try:
                if tb is not None:
                    tb.close()
            except OSError:
                pass

    def truncate(self, iteration: int, keep_evaluation: bool = True) -> None:
        """Drop rows logged after ``iteration`` (a resumed run re-does them), and the evaluation rows of
        ``iteration`` itself unless ``keep_evaluation`` (the resumed run evaluates that iteration again).

        Every file is read and checked before any is rewritten: a file that cannot be read is a
        :class:`ConfigError` naming it, and nothing is changed."""
        rewritten = []
        for name in rundir.CSV_FILES:
            path = self.run_dir / name
            if not (path.exists() or path.is_symlink()):
                continue
            try:
                with io.TextIOWrapper(open_regular(path, MAX_CSV_BYTES), encoding="utf-8", newline="") as f:
                    rows = list(csv.reader(f))
            except UnreadableFile as e:  # a FIFO, a device, a folder: never blocks, never reads without end
                raise ConfigError(f"{path}: {e}; cannot resume") from None
            except UnicodeDecodeError:
                raise ConfigError(f"{path}: not a text file (invalid UTF-8); cannot resume") from None
            except csv.Error as e:
                raise ConfigError(f"{path}: not a CSV file ({e}); cannot resume") from None
            except OSError as e:
                raise ConfigError(f"{path}: cannot read ({e.strerror or e}); cannot resume") from None
            if not rows:
                continue
            width = len(rows[0])  # a row of another width was cut short by a crash
            last = iteration if keep_evaluation or name == rundir.METRICS else iteration - 1
            kept = [rows[0]] + [r for r in rows[1:] if len(r) == width and _iteration_of(r) <= last]
            buf = io.StringIO()
            csv.writer(buf).writerows(kept)
            rewritten.append((path, buf.getvalue()))
            if name == rundir.METRICS:
                self._metric_keys = rows[0][len(rundir.METRICS_HEADER):]
        for path, text in rewritten:
            atomic_write_text(path, text)
        self._resumed_at = iteration
        if self._tensorboard:
            from .tensorboard import truncate_event_files

            self._tb_call(truncate_event_files, self.run_dir, iteration)

    def sync(self) -> None:
        """Flush the CSVs to the disk (fsync): called before each checkpoint, so that a checkpoint on disk
        never claims iterations whose rows are not."""
        for name, f in self._files.items():
            try:
                f.flush()
                os.fsync(f.fileno())
            except OSError as e:
                raise with_path(e, self.run_dir / name) from None
        if self._tb is not None:
            self._tb_call(self._tb.flush)

    def _writer(self, name: str, header: list[str]) -> csv.writer:
        if name not in self._writers:
            path = self.run_dir / name
            try:
                fresh = not path.exists() or path.stat().st_size == 0
                if not fresh and not stat.S_ISREG(path.stat().st_mode):  # appending to a FIFO would block
                    raise OSError(errno.EINVAL, "not a regular file", str(path))
                f = path.open("a", newline="", encoding="utf-8")
                w = csv.writer(f)
                if fresh:
                    w.writerow(header)
            except OSError as e:
                raise with_path(e, path) from None
            self._files[name], self._writers[name] = f, w
        return self._writers[name]

    def _rows(self, name: str, header: list[str], rows) -> None:
        """Append rows to one CSV; an OS error (a full disk) names the file."""
        w = self._writer(name, header)
        try:
            w.writerows(rows)
        except OSError as e:
            raise with_path(e, self.run_dir / name) from None

    def _close(self) -> None:
        """Close the CSVs; a failure to write their last rows (a full disk) does not stop the others closing."""
        first = None
        for name, f in self._files.items():
            try:
                f.close()
            except OSError as e:
                first = first or with_path(e, self.run_dir / name)
        self._files.clear()
        self._writers.clear()
        if self._tb is not None:
            self._tb_call(self._tb.close)
            self._tb = None
        if first is not None:
            raise first

    def _status(self, status: str, message: str, **extra) -> None:
        # the progress of a running run is rewritten at the next event: no fsync (~0.1 s each) for it
        rundir.write_status(self.run_dir, {"status": status, "message": message, **extra, **self._info},
                            durable=status != "running")

    # -- events ------------------------------------------------------------------------------------
    def __call__(self, event) -> None:
        if isinstance(event, ev.IterationMetrics):
            if self._metric_keys is None:
                self._metric_keys = sorted(event.metrics)
            self._rows(rundir.METRICS, rundir.metrics_columns(self._metric_keys),
                       [[event.iteration, f"{event.elapsed:.4f}", f"{event.its_per_sec:.2f}",
                         *(repr(event.metrics.get(k, float("nan"))) for k in self._metric_keys)]])
            if self._tb is not None:
                self._tb_call(self._tb.add_scalars, event.iteration,
                              {f"train/{k}": v for k, v in event.metrics.items()})
        elif isinstance(event, ev.Evaluation):
            self._rows(rundir.EVAL, rundir.EVAL_HEADER,
                       ([event.iteration, s, repr(float(m)), repr(float(c))]
                        for s, m, c in zip(event.steps, event.mean, event.ci95)))
            self._rows(rundir.EVAL_TASKS, rundir.eval_tasks_columns(event.metric),
                       ([event.iteration, t, s, repr(float(v) if math.isfinite(v) else float("nan"))]
                        for t, row in enumerate(event.per_task) for s, v in zip(event.steps, row)))
            self._info["last_eval"] = {"iteration": event.iteration, "metric": event.metric,
                                       "trained_steps": min(event.trained_steps, len(event.mean) - 1),
                                       "before": _num(event.before), "after": _num(event.after)}
            diverged = event.diverged
            if diverged:  # which held-out tasks overflowed, and from which step
                self._info["last_eval"]["diverged"] = {str(t): s for t, s in sorted(diverged.items())}
            self._status("running", "")  # the last evaluation readable while the run goes on
            if self._tb is not None:
                self._tb_call(self._tb.add_scalars, event.iteration,
                              {"eval/before": event.before, "eval/after": event.after,
                               **{f"eval/reference/{k}": v for k, v in event.references.items()}})
        elif isinstance(event, ev.RunFinished):
            if self._tb is not None:
                from .tensorboard import STATUS_FAILURE, STATUS_SUCCESS, STATUS_UNKNOWN

                code = {"finished": STATUS_SUCCESS, "failed": STATUS_FAILURE}.get(event.status, STATUS_UNKNOWN)
                self._tb_call(self._tb.add_session_end, code, event.iteration)
            try:
                self._close()
            finally:  # the status is written even when the CSVs' last rows could not be
                self._status(event.status, event.message, iteration=event.iteration, bundle=event.bundle_path)


def _num(x: float) -> float | None:
    """JSON has no NaN / inf: a diverged evaluation is recorded as null."""
    return x if x == x and abs(x) != float("inf") else None


def _iteration_of(row: list[str]) -> float:
    try:
        return int(row[0])
    except (ValueError, IndexError):  # a row cut short by a crash
        return float("inf")
