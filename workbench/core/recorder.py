"""Writes a run directory from the trainer's events: the resolved config, every metric as CSV.

    config.toml          the resolved experiment (re-loadable as a preset)
    metrics.csv          iteration, elapsed seconds, it/s, and each training metric
    eval.csv             iteration, inner step, mean held-out loss, 95% CI half-width
    eval_tasks.csv       iteration, task, inner step, loss (every held-out adaptation curve)
    status.json          the run's status (running / finished / stopped / failed) and message, when it
                         started, the process writing it (pid, host) and the last evaluation
    events.out.tfevents.*  the same scalars and the hyperparameters for TensorBoard (core/tensorboard.py;
                         one file per session, buffered, flushed at checkpoints and at the end)
    checkpoint.safetensors, model.safetensors    written by the trainer
"""
from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import os
import socket
import warnings
from pathlib import Path

from . import events as ev
from .storage import atomic_write_text


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
        atomic_write_text(self.run_dir / "config.toml", config.to_toml())
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

    def truncate(self, iteration: int) -> None:
        """Drop rows logged after ``iteration`` (a resumed run re-does them)."""
        for name in ("metrics.csv", "eval.csv", "eval_tasks.csv"):
            path = self.run_dir / name
            if not path.exists():
                continue
            with path.open(newline="") as f:
                rows = list(csv.reader(f))
            if not rows:
                continue
            width = len(rows[0])  # a row of another width was cut short by a crash
            kept = [rows[0]] + [r for r in rows[1:] if len(r) == width and _iteration_of(r) <= iteration]
            buf = io.StringIO()
            csv.writer(buf).writerows(kept)
            atomic_write_text(path, buf.getvalue())
            if name == "metrics.csv":
                self._metric_keys = rows[0][3:]
        self._resumed_at = iteration
        if self._tensorboard:
            from .tensorboard import truncate_event_files

            self._tb_call(truncate_event_files, self.run_dir, iteration)

    def _writer(self, name: str, header: list[str]) -> csv.writer:
        if name not in self._writers:
            path = self.run_dir / name
            fresh = not path.exists() or path.stat().st_size == 0
            f = path.open("a", newline="")
            w = csv.writer(f)
            if fresh:
                w.writerow(header)
            self._files[name], self._writers[name] = f, w
        return self._writers[name]

    def _flush(self) -> None:
        for f in self._files.values():
            f.flush()
        if self._tb is not None:
            self._tb_call(self._tb.flush)

    def _close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()
        self._writers.clear()
        if self._tb is not None:
            self._tb_call(self._tb.close)
            self._tb = None

    def _status(self, status: str, message: str, **extra) -> None:
        atomic_write_text(self.run_dir / "status.json",
                          json.dumps({"status": status, "message": message, **extra, **self._info}, indent=1))

    # -- events ------------------------------------------------------------------------------------
    def __call__(self, event) -> None:
        if isinstance(event, ev.IterationMetrics):
            if self._metric_keys is None:
                self._metric_keys = sorted(event.metrics)
            w = self._writer("metrics.csv", ["iteration", "elapsed", "its_per_sec", *self._metric_keys])
            w.writerow([event.iteration, f"{event.elapsed:.4f}", f"{event.its_per_sec:.2f}",
                        *(repr(event.metrics.get(k, float("nan"))) for k in self._metric_keys)])
            if self._tb is not None:
                self._tb_call(self._tb.add_scalars, event.iteration,
                              {f"train/{k}": v for k, v in event.metrics.items()})
        elif isinstance(event, ev.Evaluation):
            w = self._writer("eval.csv", ["iteration", "step", "mean", "ci95"])
            for s, m, c in zip(event.steps, event.mean, event.ci95):
                w.writerow([event.iteration, s, repr(float(m)), repr(float(c))])
            wt = self._writer("eval_tasks.csv", ["iteration", "task", "step", event.metric])
            for t, row in enumerate(event.per_task):
                for s, v in zip(event.steps, row):
                    wt.writerow([event.iteration, t, s, repr(float(v))])
            self._info["last_eval"] = {"iteration": event.iteration, "metric": event.metric,
                                       "trained_steps": min(event.trained_steps, len(event.mean) - 1),
                                       "before": _num(event.before), "after": _num(event.after)}
            self._status("running", "")  # the last evaluation readable while the run goes on
            if self._tb is not None:
                self._tb_call(self._tb.add_scalars, event.iteration,
                              {"eval/before": event.before, "eval/after": event.after,
                               **{f"eval/reference/{k}": v for k, v in event.references.items()}})
        elif isinstance(event, ev.CheckpointSaved):
            self._flush()
        elif isinstance(event, ev.RunFinished):
            if self._tb is not None:
                from .tensorboard import STATUS_FAILURE, STATUS_SUCCESS, STATUS_UNKNOWN

                code = {"finished": STATUS_SUCCESS, "failed": STATUS_FAILURE}.get(event.status, STATUS_UNKNOWN)
                self._tb_call(self._tb.add_session_end, code, event.iteration)
            self._close()
            self._status(event.status, event.message, iteration=event.iteration, bundle=event.bundle_path)


def _num(x: float) -> float | None:
    """JSON has no NaN / inf: a diverged evaluation is recorded as null."""
    return x if x == x and abs(x) != float("inf") else None


def read_status(run_dir: Path) -> dict:
    """A run's status.json as a dict ({} when missing or unreadable)."""
    try:
        data = json.loads((run_dir / "status.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def update_status(run_dir: Path, **changes) -> None:
    """Change some keys of a run's status.json (written whole, atomically)."""
    atomic_write_text(run_dir / "status.json", json.dumps({**read_status(run_dir), **changes}, indent=1))


def _iteration_of(row: list[str]) -> float:
    try:
        return int(row[0])
    except (ValueError, IndexError):  # a row cut short by a crash
        return float("inf")
