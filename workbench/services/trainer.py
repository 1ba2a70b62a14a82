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

from workbench.core import events as ev
from workbench.core import seeding, taskmap
from workbench.core.evaluation import copy_evaluation, events_from
from .bundle import write_bundle
from workbench.core.config import ExperimentConfig
from .budget import check_memory, physical_memory
from workbench.core.errors import Cancelled, ConfigError, TrainingDiverged, is_out_of_memory
from .recorder import RunRecorder
from workbench.core.registry import ALGORITHMS, FAMILIES
from .runlock import RunLock
# the run folder's files (SWEEP: a sweep's trial); remove_stale_temporaries re-exported from here
from .rundir import (BUNDLE, CHECKPOINT, CONFIG, LOCK, SWEEP, is_temporary, new_run_dir, read_status,
                     remove_stale_temporaries)  # noqa: F401
from workbench.core.storage import MAX_TENSOR_BYTES, UnreadableFile, load_tensors, save_tensors


def _status(run_dir: Path) -> str:
    return str(read_status(run_dir).get("status", ""))


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
                 callbacks: list[Callable] = (), _resuming: bool = False, unique_name: bool = False):
        self.config = config
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self._callbacks = list(callbacks)
        try:
            self.device = resolve_device(config.run.device)
        except ConfigError as e:
            raise ConfigError(f"run.device: {e}") from None
        self.family = FAMILIES.get(config.family)(config.task)
        check_memory(config, self.family)  # before anything large is allocated
        self.algo_cls = ALGORITHMS.get(config.algorithm_name)
        # the network (any nn.Module for the supervised learners; an MLP policy spec for the RL ones): a
        # user's module is imported here, when the run is built, never when the preset is read
        self.model = self.algo_cls.make_model(config.model, self.family, config.where("model"))
        seed = config.run.seed
        init_gen = seeding.generator(seeding.INIT, seed)
        # Training tasks, the held-out set and test tasks come from separate streams (core/seeding.py).
        self.task_gen = seeding.generator(seeding.TRAIN, seed)
        self.learner = self.algo_cls(config.algorithm, self.model, self.device, init_gen, config.run.iterations,
                                     family=self.family)
        self.learner.sampler_workers = config.run.sampler_workers  # the RL families' physics threads
        self.eval_batch = self.family.evaluation_batch(config.run.eval_tasks, config.run.eval_seed).to(self.device)
        self.iteration = 0
        self.elapsed = 0.0
        self.last_metrics: dict[str, float] = {}
        self.last_eval: ev.Evaluation | None = None
        self._eval_pending = False  # the evaluation due at self.iteration was cancelled by a stop
        self._in_step = False  # inside meta-step self.iteration + 1 (for the message of a failure)
        self._pause = threading.Event()
        self._stop = threading.Event()
        self.recorder: RunRecorder | None = None
        self._lock: RunLock | None = None
        self.live_task_map = False  # make a coarse task-space map after each evaluation (the app's view)
        if self.run_dir is not None:
            self.run_dir = self._take_folder(self.run_dir, _resuming, unique_name)
            self.recorder = RunRecorder(self.run_dir)
            self._callbacks.insert(0, self.recorder)

    def _take_folder(self, run_dir: Path, resuming: bool, unique_name: bool) -> Path:
        """Create (or open) the run folder and hold its lock; refuse a folder that holds something else.

        With ``unique_name``, ``run_dir`` is a base name: the first of run_dir, run_dir-2, run_dir-3, ...
        that this process creates itself is taken (several trainings started in the same second each get
        their own folder: :func:`workbench.services.rundir.new_run_dir`)."""
        if unique_name:
            run_dir = new_run_dir(run_dir.parent, run_dir.name)
        elif run_dir.exists() and not run_dir.is_dir():
            raise ConfigError(f"{run_dir}: exists and is not a folder; choose another output folder")
        if not resuming and run_dir.is_dir():
            self._refuse_occupied(run_dir)  # before the lock file: a foreign folder is left exactly as it was
        run_dir.mkdir(parents=True, exist_ok=True)
        self._lock = RunLock(run_dir).acquire()
        try:
            if not resuming:
                self._refuse_occupied(run_dir)  # again, now that no other trainer can be starting in it
            remove_stale_temporaries(run_dir)
        except BaseException:
            self._lock.release()
            raise
        return run_dir

    @staticmethod
    def _refuse_occupied(run_dir: Path) -> None:
        """A new run takes a new or empty folder: refuse a run's folder and a folder of anything else."""
        if (run_dir / CONFIG).exists():
            raise ConfigError(f"{run_dir}: already holds a run; resume it with --resume {run_dir} "
                              f"or choose another output folder")
        foreign = sorted(p.name for p in run_dir.iterdir()
                         if p.name not in (LOCK, SWEEP) and not is_temporary(p.name))
        if foreign:
            shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise ConfigError(f"{run_dir}: not empty and not a workbench run (holds {shown}); a run needs a new "
                              f"or empty folder, so that nothing there is overwritten")

    def release(self) -> None:
        """Let go of the run folder (the run is over); called by :meth:`run` on every way out."""
        if self._lock is not None:
            self._lock.release()

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
        """Continue a run from its last checkpoint, to exactly the results of an uninterrupted run.

        A run killed before its first checkpoint starts again from iteration 0 with its own config.  The
        rows it logged after the checkpoint are dropped (they are redone), and so are the checkpoint's own
        evaluation rows when that evaluation is redone (the final one, when the run died before its bundle).
        Every value of the checkpoint is checked before any file is touched."""
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise ConfigError(f"{run_dir}: no such run directory")
        if not (run_dir / CONFIG).is_file():
            raise ConfigError(f"{run_dir}: not a run directory (no {CONFIG})")
        overrides = list(overrides)
        if iterations is not None:
            overrides.append(f"run.iterations={iterations}")
        config = ExperimentConfig.load(run_dir / CONFIG, overrides)
        ckpt = run_dir / CHECKPOINT
        if ckpt.exists() or ckpt.is_symlink():
            try:  # the run's own checkpoint: as large as its config made it (what memory holds)
                tensors, meta = load_tensors(ckpt, limit=max(MAX_TENSOR_BYTES, physical_memory()))
            except UnreadableFile as e:
                raise ConfigError(f"{ckpt}: cannot resume: {e}") from None
            done, elapsed, evaluated = _checked_meta(ckpt, meta, config)
        else:  # killed before its first checkpoint: start again from the beginning
            tensors, done, elapsed, evaluated = None, 0, 0.0, False
        if config.run.iterations < done or (config.run.iterations == done and _status(run_dir) == "finished"):
            raise ConfigError(f"{run_dir}: the run is at iteration {done} of {config.run.iterations}; pass "
                              f"--iterations N with N > {done} to train further")
        trainer = cls(config, run_dir, callbacks, _resuming=True)
        try:  # any refusal from here on lets go of the folder
            if tensors is not None:
                try:
                    trainer.learner.load_state_tensors({k: v.to(trainer.device) for k, v in tensors.items()})
                    trainer.task_gen.set_state(_generator_state(ckpt, tensors, trainer.task_gen))
                except (KeyError, RuntimeError, ValueError, TypeError, IndexError) as e:
                    raise ConfigError(f"{ckpt}: checkpoint does not match the run's config ({e})") from None
            trainer.iteration, trainer.elapsed = done, elapsed
            trainer._eval_pending = not evaluated
            # the evaluation run() does first (at iteration 0, a cancelled one) or last (the final one, when the
            # run died between its final checkpoint and its bundle) replaces the rows it logged before
            redo = done == 0 or not evaluated or done >= config.run.iterations
            trainer.recorder.truncate(done, keep_evaluation=not redo)
        except BaseException:
            trainer.release()
            raise
        return trainer

    # -- work ------------------------------------------------------------------------------------
    def evaluate(self) -> ev.Evaluation:
        """Evaluate on the held-out tasks; a stop request cancels it (raises :class:`Cancelled`)."""
        cfg = self.config.run
        self._eval_pending = True
        outcome = self.learner.evaluate(self.family, self.eval_batch, cfg.eval_steps, cfg.render_tasks,
                                        cancel=self._stop)
        self._eval_pending = False
        evaluation, render = events_from(self.iteration, outcome)
        self.last_eval = evaluation
        self.emit(copy_evaluation(evaluation))
        if render is not None:
            self.emit(render)
        if self.live_task_map:
            task_map = self.task_map(evaluation.trained_steps)
            if task_map is not None:
                self.emit(ev.TaskMapMade(self.iteration, task_map))
        return evaluation

    def task_map(self, steps: int, points: int | None = None, tasks_per_cell: int | None = None):
        """The task-space map of the model as it is now (workbench.core.taskmap) over the family's first
        two map parameters, after ``steps`` inner steps, on held-out-stream tasks; by default as coarse as
        keeps its cost near 15% of an evaluation (:func:`live_plan`).  None for a family without map
        parameters.  A stop request cancels it (raises Cancelled)."""
        if not taskmap.map_params(self.family):
            return None
        params = taskmap.choose_params(self.family, None)
        cfg = self.config.run
        plan = taskmap.live_plan(params, cfg.eval_tasks, cfg.eval_steps, steps)
        points, tpc = points or plan[0], tasks_per_cell or plan[1]
        axes = taskmap.grid_axes(params, points, taskmap.DEFAULT_MARGIN)

        def evaluate(batch, s):
            return self.learner.evaluate(self.family, batch.to(self.device), s, 0, cancel=self._stop).per_task

        return taskmap.build_map(self.family, evaluate, params, axes, steps, tpc, cfg.eval_seed, seeding.HELD_OUT,
                                 iteration=self.iteration)

    def checkpoint(self) -> Path | None:
        if self.run_dir is None:
            return None
        tensors = self.learner.state_tensors()
        tensors["task_generator"] = self.task_gen.get_state()
        path = self.run_dir / CHECKPOINT
        if self.recorder is not None:
            self.recorder.sync()  # every row up to this iteration is on disk before the checkpoint says so
        # atomic: on an error (which names the file) the previous checkpoint is still in place
        save_tensors(path, tensors, {"iteration": self.iteration, "elapsed": self.elapsed,
                                     "evaluated": not self._eval_pending,
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
        """Train to ``run.iterations``; returns (and emits) the :class:`RunFinished` event.

        Every way a run can end is an ending: finished, stopped (between iterations, or during an
        evaluation), or failed — a diverged loss, an error of the algorithm, out of memory, a full disk —
        with the reason in status.json and the last good checkpoint kept.  Only a second Ctrl-C
        (KeyboardInterrupt) leaves it as it is."""
        try:
            return self._run()
        except Exception as e:  # noqa: BLE001 - any failure ends the run cleanly, with its reason
            return self._fail(e)
        finally:
            self.release()

    def _fail(self, error: BaseException) -> ev.RunFinished:
        ckpt = self.run_dir / CHECKPOINT if self.run_dir else None
        kept = (f"the last good checkpoint ({ckpt}) is kept" if ckpt and ckpt.exists()
                else "no checkpoint had been written yet")
        where = (f"at iteration {self.iteration + 1}" if self._in_step else f"after iteration {self.iteration}")
        message = f"training stopped {where}: {describe_failure(error)}; {kept}"
        finished = ev.RunFinished("failed", self.iteration, None, message)
        problems = []
        for cb in self._callbacks:  # every listener hears the end, even if one of them cannot write
            try:
                cb(finished)
            except Exception as e:  # noqa: BLE001 - e.g. status.json on the full disk that failed the run
                problems.append(describe_failure(e))
        if problems:
            finished = ev.RunFinished("failed", self.iteration, None,
                                      f"{message} (and the run's status could not be recorded: {problems[0]})")
        return finished

    def _run(self) -> ev.RunFinished:
        cfg = self.config.run
        torch.set_num_threads(cfg.threads or default_threads())
        total = cfg.iterations
        meta_batch = self.config.algorithm.meta_batch
        if self.recorder is not None:
            self.recorder.start(self.config)
        self.emit(ev.RunStarted(str(self.run_dir) if self.run_dir else None, self.iteration, total,
                                str(self.device), self.config.family, self.config.algorithm_name,
                                self.learner.train_metric, self.learner.eval_metric))
        window: deque[tuple[int, float]] = deque(maxlen=64)
        status, message = "finished", ""
        try:
            if self.iteration == 0 or self._eval_pending:
                self.evaluate()
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
                self._in_step = True
                batch = self.learner.training_batch(self.family, meta_batch, self.task_gen).to(self.device)
                metrics = self.learner.meta_step(batch, self.iteration)
                t1 = time.perf_counter()
                self.iteration += 1
                self._in_step = False
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
            if status == "finished" and (self.last_eval is None or self.last_eval.iteration != self.iteration):
                self.evaluate()
        except Cancelled:  # a stop during an evaluation: the checkpoint says it is still due
            status = "stopped"
        except TrainingDiverged as e:
            return self._fail(e)
        self.checkpoint()
        bundle = self.export()
        finished = ev.RunFinished(status, self.iteration, str(bundle) if bundle else None, message)
        self.emit(finished)
        return finished


def describe_failure(error: BaseException) -> str:
    """One line for the user: what failed, with the file for an OS error and a hint for memory."""
    if isinstance(error, OSError) and error.strerror:
        where = error.filename if error.filename is not None else "a file of the run"
        return f"{where}: {error.strerror}"
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if is_out_of_memory(error):
        return f"out of memory ({text or type(error).__name__}); make the network, the meta-batch or the evaluation smaller"
    if isinstance(error, TrainingDiverged):
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _checked_meta(path: Path, meta: dict, config: ExperimentConfig) -> tuple[int, float, bool]:
    """(iteration, elapsed seconds, evaluated) of a checkpoint's metadata, or a ConfigError naming the bad key."""
    if (meta.get("algorithm"), meta.get("family")) != (config.algorithm_name, config.family):
        raise ConfigError(f"{path}: the checkpoint is {meta.get('algorithm')} on {meta.get('family')}, but the "
                          f"run's {CONFIG} says {config.algorithm_name} on {config.family}")
    it = meta.get("iteration")
    if not isinstance(it, int) or isinstance(it, bool) or not 0 <= it <= 10_000_000:
        raise ConfigError(f"{path}: iteration: {it!r}: expected an integer from 0 to 10000000")
    elapsed = meta.get("elapsed", 0.0)
    if (not isinstance(elapsed, (int, float)) or isinstance(elapsed, bool) or elapsed != elapsed
            or not 0 <= elapsed < float("inf")):
        raise ConfigError(f"{path}: elapsed: {elapsed!r}: expected a number of seconds >= 0")
    evaluated = meta.get("evaluated", True)
    if not isinstance(evaluated, bool):
        raise ConfigError(f"{path}: evaluated: {evaluated!r}: expected true or false")
    return it, float(elapsed), evaluated


def _generator_state(path: Path, tensors: dict, generator: torch.Generator) -> torch.Tensor:
    """The checkpoint's task-generator state, if it has the dtype and size of ``generator``'s."""
    state = tensors.get("task_generator")
    want = generator.get_state()
    if state is None:
        raise ConfigError(f"{path}: task_generator: missing")
    if state.dtype != want.dtype or state.shape != want.shape:
        raise ConfigError(f"{path}: task_generator: a {state.dtype} tensor of shape {tuple(state.shape)}; expected "
                          f"{want.dtype} of shape {tuple(want.shape)}")
    return state
