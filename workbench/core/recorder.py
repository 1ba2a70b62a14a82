"""Writes a run directory from the trainer's events: the resolved config, every metric as CSV.

    config.toml          the resolved experiment (re-loadable as a preset)
    metrics.csv          iteration, elapsed seconds, it/s, and each training metric
    eval.csv             iteration, inner step, mean held-out loss, 95% CI half-width
    eval_tasks.csv       iteration, task, inner step, loss (every held-out adaptation curve)
    status.json          the run's status (running / finished / stopped / failed) and message
    checkpoint.safetensors, model.safetensors    written by the trainer
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from . import events as ev
from .storage import atomic_write_text


class RunRecorder:
    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self._files: dict[str, object] = {}
        self._writers: dict[str, csv.writer] = {}
        self._metric_keys: list[str] | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self, config) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.run_dir / "config.toml", config.to_toml())
        self._status("running", "")

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

    def _close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()
        self._writers.clear()

    def _status(self, status: str, message: str, **extra) -> None:
        atomic_write_text(self.run_dir / "status.json",
                          json.dumps({"status": status, "message": message, **extra}, indent=1))

    # -- events ------------------------------------------------------------------------------------
    def __call__(self, event) -> None:
        if isinstance(event, ev.IterationMetrics):
            if self._metric_keys is None:
                self._metric_keys = sorted(event.metrics)
            w = self._writer("metrics.csv", ["iteration", "elapsed", "its_per_sec", *self._metric_keys])
            w.writerow([event.iteration, f"{event.elapsed:.4f}", f"{event.its_per_sec:.2f}",
                        *(repr(event.metrics.get(k, float("nan"))) for k in self._metric_keys)])
        elif isinstance(event, ev.Evaluation):
            w = self._writer("eval.csv", ["iteration", "step", "mean", "ci95"])
            for s, m, c in zip(event.steps, event.mean, event.ci95):
                w.writerow([event.iteration, s, repr(float(m)), repr(float(c))])
            wt = self._writer("eval_tasks.csv", ["iteration", "task", "step", event.metric])
            for t, row in enumerate(event.per_task):
                for s, v in zip(event.steps, row):
                    wt.writerow([event.iteration, t, s, repr(float(v))])
        elif isinstance(event, ev.CheckpointSaved):
            self._flush()
        elif isinstance(event, ev.RunFinished):
            self._close()
            self._status(event.status, event.message, iteration=event.iteration, bundle=event.bundle_path)


def _iteration_of(row: list[str]) -> float:
    try:
        return int(row[0])
    except (ValueError, IndexError):  # a row cut short by a crash
        return float("inf")
