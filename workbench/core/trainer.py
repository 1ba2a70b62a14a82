"""The trainer: meta-iterations, held-out evaluation, checkpoints, events.  No Qt here.

The CLI runs it in the main thread, the GUI in a worker thread, sweeps in Ray workers; all of them
listen to the same typed events (:mod:`workbench.core.events`).  ``pause()``, ``unpause()`` and
``stop()`` may be called from any thread; they take effect between iterations.
"""
from __future__ import annotations

import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable

import torch

from . import events as ev
from . import seeding
from .evaluation import copy_evaluation, events_from
from .bundle import write_bundle
from .config import ExperimentConfig
from .errors import ConfigError, TrainingDiverged
from .recorder import RunRecorder
from .registry import ALGORITHMS, FAMILIES
from .storage import UnreadableFile, load_tensors, save_tensors

CHECKPOINT = "checkpoint.safetensors"
BUNDLE = "model.safetensors"
CONFIG = "config.toml"


def _status(run_dir: Path) -> str:
    import json

    try:
        return json.loads((run_dir / "status.json").read_text()).get("status", "")
    except (OSError, ValueError, AttributeError):
        return ""


def resolve_device(name: str) -> torch.device:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' | 'mps' -> a usable torch.device, or a ConfigError saying why."""
    name = name.strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"device {name!r}: expected auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r}: CUDA is not available on this machine (use cpu or auto)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) present")
        return dev
    if dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ConfigError(f"device {name!r}: MPS is not available on this machine")
        return dev
    raise ConfigError(f"device {name!r}: expected auto, cpu, cuda, cuda:N or mps")


def available_devices() -> list[str]:
    out = ["cpu"]
    if torch.cuda.is_available():
        out += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        out.append("mps")
    return out


def default_threads() -> int:
    return max(1, (os.cpu_count() or 2) - 1)


class Trainer:
    def __init__(self, config: ExperimentConfig, run_dir: str | Path | None = None,
                 callbacks: list[Callable] = (), _resuming: bool = False):
        self.config = config
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self._callbacks = list(callbacks)
        try:
            self.device = resolve_device(config.run.device)
        except ConfigError as e:
            raise ConfigError(f"run.device: {e}") from None
        self.family = FAMILIES.get(config.family)(config.task)
        self.algo_cls = ALGORITHMS.get(config.algorithm_name)
        from workbench.models.mlp import MLPSpec

        self.spec = MLPSpec(self.family.in_dim, self.family.out_dim, tuple(config.model.hidden),
                            config.model.activation)
        seed = config.run.seed
        init_gen = seeding.generator(seeding.INIT, seed)
        # Training tasks, the held-out set and test tasks come from separate streams (core/seeding.py).
        self.task_gen = seeding.generator(seeding.TRAIN, seed)
        self.learner = self.algo_cls(config.algorithm, self.spec, self.device, init_gen, config.run.iterations,
                                     family=self.family)
        self.eval_batch = self.family.evaluation_batch(config.run.eval_tasks, config.run.eval_seed).to(self.device)
        self.iteration = 0
        self.elapsed = 0.0
        self.last_metrics: dict[str, float] = {}
        self.last_eval: ev.Evaluation | None = None
        self._pause = threading.Event()
        self._stop = threading.Event()
        self.recorder: RunRecorder | None = None
        if self.run_dir is not None:
            if not _resuming and (self.run_dir / CONFIG).exists():
                raise ConfigError(f"{self.run_dir}: already holds a run; resume it with --resume "
                                  f"or choose another output directory")
            self.recorder = RunRecorder(self.run_dir)
            self._callbacks.insert(0, self.recorder)

    # -- control (any thread) ----------------------------------------------------------------------
    def pause(self) -> None:
        self._pause.set()

    def unpause(self) -> None:
        self._pause.clear()

    def stop(self) -> None:
        self._stop.set()

    @property
    def paused(self) -> bool:
        return self._pause.is_set()

    def subscribe(self, callback: Callable) -> None:
        self._callbacks.append(callback)

    def emit(self, event) -> None:
        for cb in self._callbacks:
            cb(event)

    # -- resume ----------------------------------------------------------------------------------
    @classmethod
    def from_run_dir(cls, run_dir: str | Path, callbacks: list[Callable] = (), iterations: int | None = None,
                     overrides: list[str] = ()) -> "Trainer":
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise ConfigError(f"{run_dir}: no such run directory")
        if not (run_dir / CONFIG).is_file():
            raise ConfigError(f"{run_dir}: not a run directory (no {CONFIG})")
        overrides = list(overrides)
        if iterations is not None:
            overrides.append(f"run.iterations={iterations}")
        config = ExperimentConfig.load(run_dir / CONFIG, overrides)
        try:
            tensors, meta = load_tensors(run_dir / CHECKPOINT)
        except UnreadableFile as e:
            raise ConfigError(f"{run_dir / CHECKPOINT}: cannot resume: {e}") from None
        done = int(meta.get("iteration", -1))
        if (meta.get("algorithm"), meta.get("family")) != (config.algorithm_name, config.family):
            raise ConfigError(f"{run_dir / CHECKPOINT}: the checkpoint is {meta.get('algorithm')} on "
                              f"{meta.get('family')}, but {run_dir / CONFIG} says {config.algorithm_name} on "
                              f"{config.family}")
        if config.run.iterations < done or (config.run.iterations == done and _status(run_dir) == "finished"):
            raise ConfigError(f"{run_dir}: the run is at iteration {done} of {config.run.iterations}; pass "
                              f"--iterations N with N > {done} to train further")
        trainer = cls(config, run_dir, callbacks, _resuming=True)
        try:
            trainer.learner.load_state_tensors({k: v.to(trainer.device) for k, v in tensors.items()})
            trainer.task_gen.set_state(tensors["task_generator"])
            trainer.iteration = int(meta["iteration"])
            trainer.elapsed = float(meta.get("elapsed", 0.0))
        except (KeyError, RuntimeError, ValueError) as e:
            raise ConfigError(f"{run_dir / CHECKPOINT}: checkpoint does not match the run's config ({e})") from None
        trainer.recorder.truncate(trainer.iteration)
        return trainer

    # -- work ------------------------------------------------------------------------------------
    def evaluate(self) -> ev.Evaluation:
        cfg = self.config.run
        outcome = self.learner.evaluate(self.family, self.eval_batch, cfg.eval_steps, cfg.render_tasks)
        evaluation, render = events_from(self.iteration, outcome)
        self.last_eval = evaluation
        self.emit(copy_evaluation(evaluation))
        if render is not None:
            self.emit(render)
        return evaluation

    def checkpoint(self) -> Path | None:
        if self.run_dir is None:
            return None
        tensors = self.learner.state_tensors()
        tensors["task_generator"] = self.task_gen.get_state()
        path = self.run_dir / CHECKPOINT
        save_tensors(path, tensors, {"iteration": self.iteration, "elapsed": self.elapsed,
                                     "algorithm": self.config.algorithm_name, "family": self.config.family})
        self.emit(ev.CheckpointSaved(self.iteration, str(path)))
        return path

    def summary(self) -> dict:
        out = {"iterations": self.iteration, "train_seconds": round(self.elapsed, 3),
               "seed": self.config.run.seed, "final_metrics": self.last_metrics}
        if self.last_eval is not None:
            out["eval"] = {"iteration": self.last_eval.iteration, "metric": self.last_eval.metric,
                           "steps": self.last_eval.steps, "mean": self.last_eval.mean.tolist(),
                           "ci95": self.last_eval.ci95.tolist(), "tasks": int(self.last_eval.per_task.shape[0])}
        return out

    def export(self, path: str | Path | None = None) -> Path | None:
        if path is None:
            if self.run_dir is None:
                return None
            path = self.run_dir / BUNDLE
        return write_bundle(path, self.learner, self.config, self.summary())

    def run(self) -> ev.RunFinished:
        cfg = self.config.run
        torch.set_num_threads(cfg.threads or default_threads())
        total = cfg.iterations
        meta_batch = self.config.algorithm.meta_batch
        if self.recorder is not None:
            self.recorder.start(self.config)
        self.emit(ev.RunStarted(str(self.run_dir) if self.run_dir else None, self.iteration, total,
                                str(self.device), self.config.family, self.config.algorithm_name,
                                self.learner.train_metric, self.learner.eval_metric))
        if self.iteration == 0:
            self.evaluate()
        window: deque[tuple[int, float]] = deque(maxlen=64)
        status, message = "finished", ""
        try:
            while self.iteration < total:
                if self._pause.is_set() and not self._stop.is_set():
                    self.emit(ev.Paused(self.iteration))
                    while self._pause.is_set() and not self._stop.is_set():
                        self._stop.wait(0.05)
                    self.emit(ev.Resumed(self.iteration))
                    window.clear()
                if self._stop.is_set():
                    status = "stopped"
                    break
                t0 = time.perf_counter()
                batch = self.family.sample_batch(meta_batch, self.task_gen).to(self.device)
                metrics = self.learner.meta_step(batch, self.iteration)
                t1 = time.perf_counter()
                self.iteration += 1
                self.elapsed += t1 - t0
                window.append((self.iteration, t1))
                its = ((window[-1][0] - window[0][0]) / (window[-1][1] - window[0][1])
                       if len(window) > 1 and window[-1][1] > window[0][1] else 1.0 / max(t1 - t0, 1e-9))
                self.last_metrics = metrics
                self.emit(ev.IterationMetrics(self.iteration, dict(metrics), self.elapsed, its))
                if self.iteration % cfg.eval_interval == 0 or self.iteration == total:
                    self.evaluate()
                if self.iteration % cfg.checkpoint_interval == 0 and self.iteration < total:
                    self.checkpoint()
        except TrainingDiverged as e:
            ckpt = self.run_dir / CHECKPOINT if self.run_dir else None
            kept = (f"the last good checkpoint ({ckpt}) is kept" if ckpt and ckpt.exists()
                    else "no checkpoint had been written yet")
            message = f"training stopped at iteration {self.iteration + 1}: {e}; {kept}"
            finished = ev.RunFinished("failed", self.iteration, None, message)
            self.emit(finished)
            return finished
        if status == "finished" and (self.last_eval is None or self.last_eval.iteration != self.iteration):
            self.evaluate()
        self.checkpoint()
        bundle = self.export()
        finished = ev.RunFinished(status, self.iteration, str(bundle) if bundle else None, message)
        self.emit(finished)
        return finished

