"""Command line: ``workbench train | sweep | eval | export | presets`` (and, with no command, the app).

Errors that are the user's to fix print one line naming the file, key and value, and exit with status 2.
``train`` prints progress on stderr; the last line it prints on stdout is the path of the model bundle.
``sweep`` prints per-trial progress on stderr, a table of the grouped results on stdout, and the sweep id last.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from pathlib import Path

from workbench import __version__
from workbench.core.errors import ConfigError, WorkbenchError, is_out_of_memory

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors: one line, like ours, status 2
        print(f"workbench: error: {message} (see '{self.prog} --help')", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    from workbench.services.rundir import SWEEP

    p = _Parser(prog="workbench", description="Meta-Learning Workbench: meta-train few-shot learners, "
                "watch them adapt, export them.")
    p.add_argument("--version", action="version", version=f"workbench {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    t = sub.add_parser("train", help="meta-train headless from a preset; prints the bundle path last")
    t.add_argument("preset", nargs="?", help="preset file or name of a shipped preset (see 'workbench presets')")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one preset value, e.g. --set algorithm.inner_lr=0.02 (repeatable)")
    t.add_argument("--iterations", type=int, help="number of meta-iterations (run.iterations)")
    t.add_argument("--device", help="auto | cpu | cuda | cuda:N | mps (run.device)")
    t.add_argument("--seed", type=int, help="random seed (run.seed)")
    t.add_argument("--out", help="run directory to create (default: runs/<preset>-<time>)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--address", help="a Ray cluster (host:port, auto, ray://host:port) whose actors step the "
                   "run's MuJoCo simulations, run.sampler_workers of them (default: the cluster's CPUs); the "
                   "episodes are the same as sampled here.  Needs Ray: pip install 'workbench[cluster]'")

    w = sub.add_parser("sweep", help="sweep seeds, grid values and searched values as runs on Ray Tune; prints the "
                       "sweep id last",
                       description="Run --seeds x every --grid (x --samples of the --uniform / --loguniform / --choice "
                       "keys) as runs on Ray Tune (a local Ray on this machine, or the cluster at --address), "
                       "searched at random or by Optuna's TPE, optionally stopping bad trials early (ASHA on the "
                       "held-out metric after adaptation).  Each trial is an ordinary run in the runs folder, named "
                       f"<sweep id>-<trial>, with a {SWEEP} naming its sweep.  Needs Ray Tune: pip install "
                       "'workbench[cluster]'.")
    w.add_argument("preset", nargs="?", help="preset file or name of a shipped preset (see 'workbench presets'); "
                   "not with --resume")
    w.add_argument("--seeds", type=int, default=1, metavar="N",
                   help="runs per grid point and sample, seeds run.seed, run.seed+1, ... (default 1)")
    w.add_argument("--grid", action="append", default=[], metavar="SECTION.KEY=V1,V2,...",
                   help="values of one preset key to sweep, e.g. --grid algorithm.inner_lr=0.01,0.02 (repeatable: "
                   "the cross product)")
    w.add_argument("--uniform", action="append", default=[], metavar="SECTION.KEY=LO,HI",
                   help="search a key uniformly in [LO, HI] (integers when both are), e.g. "
                   "--uniform algorithm.inner_lr=0.001,0.1 (repeatable)")
    w.add_argument("--loguniform", action="append", default=[], metavar="SECTION.KEY=LO,HI",
                   help="search a key log-uniformly in [LO, HI], LO > 0, e.g. --loguniform algorithm.outer_lr=1e-4,1e-2")
    w.add_argument("--choice", action="append", default=[], metavar="SECTION.KEY=A,B,...",
                   help="search a key among values, e.g. --choice model.activation=relu,tanh (repeatable)")
    w.add_argument("--samples", type=int, default=1, metavar="N",
                   help="number of samples drawn from the searched keys (default 1); trials = samples x grid x seeds")
    w.add_argument("--search", default="random", choices=["random", "optuna"],
                   help="random: draw each sample independently (Ray Tune's variant generator); optuna: Optuna's "
                   "TPE proposes each trial from the results so far (default random)")
    w.add_argument("--scheduler", default="none", choices=["none", "asha"],
                   help="asha: stop trials whose held-out metric after adaptation falls behind at an evaluation "
                   "(ASHA, keeping the best half at each rung; run.eval_interval sets the first rung); "
                   "none: run every trial to the end (default)")
    w.add_argument("--max-concurrent", type=int, default=0, metavar="N",
                   help="run at most N trials at once (default 0: as many as the CPUs / GPUs allow)")
    w.add_argument("--resume", metavar="SWEEP_ID",
                   help="finish an interrupted sweep in the runs folder: finished trials are kept, the others go on "
                   "from their checkpoints, trials not begun are run")
    w.add_argument("--address", help="an existing Ray cluster (host:port, auto, ray://host:port); default: start "
                   "a local Ray on this machine.  An address that does not answer as Ray ends the command within 30 s "
                   "(WORKBENCH_RAY_CONNECT_TIMEOUT seconds) with exit status 2")
    w.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one preset value in every trial (repeatable)")
    w.add_argument("--iterations", type=int, help="number of meta-iterations of every trial (run.iterations)")
    w.add_argument("--out", help="runs folder to put the trials in (default: $WORKBENCH_RUNS or the app's runs "
                   "folder)")
    w.add_argument("--quiet", action="store_true", help="no progress lines")

    e = sub.add_parser("eval", help="evaluate a model bundle on fresh tasks")
    e.add_argument("model", help="model bundle (.safetensors) or run directory")
    e.add_argument("--tasks", type=int, help="number of fresh tasks (default 100; 600 for classification, as the "
                                             "few-shot literature reports)")
    e.add_argument("--seed", type=int, default=0, help="seed of the fresh tasks (default 0)")
    e.add_argument("--steps", help="inner steps to report, e.g. 0,1,10 (default: 0,1,10 for few-shot "
                   "regression; every episode of the trial for RL²; 0 and the trained steps for MAML-TRPO)")
    e.add_argument("--shots", type=int, help="support points per task (default: as trained)")
    e.add_argument("--inner-lr", dest="inner_lr", metavar="LR[,LR...]",
                   help="learning rate of the inner policy-gradient steps of a MAML-TRPO (or baseline) policy: one "
                   "number, or one per step with the last repeating, e.g. 0.5,0.25 as the MAML paper tested "
                   "navigation (default: as trained)")
    e.add_argument("--json", action="store_true", help="print one JSON object instead of a table")

    x = sub.add_parser("export", help="export a model bundle to another format")
    x.add_argument("model", help="model bundle (.safetensors) or run directory")
    x.add_argument("--format", required=True, choices=["onnx"], help="output format")
    x.add_argument("--out", help="output file (default: next to the bundle)")

    from . import cli_models

    cli_models.add_parsers(sub)

    sub.add_parser("presets", help="list the shipped presets")
    g = sub.add_parser("gui", help="open the desktop app")
    g.add_argument("preset", nargs="?", help="preset to load")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        return _gui(None, parser)
    from . import cli_models

    handler = {"train": _train, "sweep": _sweep, "eval": _eval, "export": _export, "presets": _presets,
               "taskmap": cli_models.taskmap, "adapt": cli_models.adapt,
               "gui": lambda a: _gui(a.preset, parser)}[args.command]
    try:
        return handler(args)
    except WorkbenchError as e:
        print(f"workbench: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # the reader went away (`| head`): not an error; quiet, as standard tools
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's own flush at exit must not raise again
        return 128 + signal.SIGPIPE
    except OSError as e:  # an output path that cannot be written, a file that cannot be read
        where = e.filename if e.filename is not None else "file system"
        print(f"workbench: error: {where}: {e.strerror or e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("workbench: interrupted", file=sys.stderr)
        return 130
    except (MemoryError, RuntimeError) as e:
        if not is_out_of_memory(e):
            raise
        text = str(e).strip().splitlines()[0] if str(e).strip() else ""
        print(f"workbench: error: {args.command}: out of memory{f' ({text})' if text else ''}; use fewer tasks, "
              f"steps or points", file=sys.stderr)
        return 1


def _gui(preset, parser) -> int:
    try:
        from workbench.gui import launch
    except ImportError as e:  # the Qt binding is missing or broken: the CLI still works
        parser.print_help()
        print(f"\nworkbench: the desktop app is unavailable ({e}); reinstall with pip install -e .", file=sys.stderr)
        return 2
    if preset is not None:
        from workbench.services.presets import resolve_preset

        try:
            preset = resolve_preset(preset)
        except WorkbenchError as e:
            print(f"workbench: error: {e}", file=sys.stderr)
            return EXIT_USAGE
    return launch(preset)


# -- train -----------------------------------------------------------------------------------------
def _train(args) -> int:
    from workbench.core.config import ExperimentConfig
    from workbench.services.presets import resolve_preset
    from workbench.services.rundir import default_run_name
    from workbench.services.trainer import Trainer

    if args.address is not None:  # connected before anything is written: an address that fails leaves nothing
        from workbench.services.sweep import connect

        connect(args.address)
    progress = None if args.quiet else Progress(sys.stderr)
    callbacks = [progress] if progress else []
    if args.resume:
        if args.preset or args.overrides or args.seed is not None or args.out:
            raise ConfigError("--resume continues a run with its own config; only --iterations and --device "
                              "may change")
        overrides = [f"run.device={json.dumps(args.device)}"] if args.device else []
        trainer = Trainer.from_run_dir(args.resume, callbacks, iterations=args.iterations, overrides=overrides)
    else:
        if not args.preset:
            raise ConfigError("train needs a PRESET (a file, or a name from 'workbench presets') or --resume RUN_DIR")
        path = resolve_preset(args.preset)
        overrides = list(args.overrides)
        for flag, key in (("iterations", "run.iterations"), ("device", "run.device"), ("seed", "run.seed")):
            value = getattr(args, flag)
            if value is not None:
                overrides.append(f"{key}={json.dumps(value)}")
        config = ExperimentConfig.load(path, overrides)
        if args.address is not None:  # refused before the run's folder is made
            _sample_on_cluster(args.address, config)
        out = Path(args.out) if args.out else Path("runs") / default_run_name(config.meta.name)
        trainer = Trainer(config, out, callbacks, unique_name=not args.out)  # a default name is made unique

    if args.address is not None and args.resume:
        _sample_on_cluster(args.address, trainer.config)
    previous = signal.signal(signal.SIGINT, lambda *_: _interrupt(trainer))
    try:
        result = trainer.run()
    finally:
        signal.signal(signal.SIGINT, previous)
        if progress:
            progress.close()
        if args.address is not None:
            _leave_cluster()
    if result.status == "failed":
        print(f"workbench: error: {result.message}", file=sys.stderr)
        return 1
    if result.status == "stopped":
        print(f"workbench: stopped at iteration {result.iteration}; checkpoint kept, resume with "
              f"'workbench train --resume {trainer.run_dir}'", file=sys.stderr)
    if trainer.last_eval is not None:
        e = trainer.last_eval
        if len(e.steps) == 1:  # no inner steps (Prototypical Networks): one point
            print(f"held-out {e.metric} ({e.per_task.shape[0]} tasks): {_value(e.after, '.4f')} "
                  f"({e.step_label})", file=sys.stderr)
        else:
            print(f"held-out {e.metric} ({e.per_task.shape[0]} tasks): {_value(e.before, '.4f')} before adaptation, "
                  f"{_value(e.after, '.4f')} after {min(e.trained_steps, e.steps[-1])} step(s)", file=sys.stderr)
        if e.diverged and progress is None:  # (the progress lines have named them at each evaluation)
            from workbench.core.stats import describe_divergence

            print(f"held-out evaluation at iteration {e.iteration}: {describe_divergence(e.diverged, e.per_task.shape[0])}",
                  file=sys.stderr)
    print(result.bundle_path, flush=True)
    return 130 if result.status == "stopped" else 0


def _sample_on_cluster(address: str, config) -> None:
    """Step the run's MuJoCo simulations on actors of the Ray cluster this process is connected to; a family
    that steps no MuJoCo simulations, or more actors than the cluster has CPUs, is a ConfigError."""
    import ray

    from workbench.core.registry import FAMILIES
    from workbench.tasks import cheetah, cheetah_remote

    if not issubclass(FAMILIES.get(config.family), cheetah._CheetahFamily):
        raise ConfigError(f"--address {address}: family {config.family!r} steps its environments as tensors in "
                          "this process; --address spreads the MuJoCo families' sampling (cheetah-vel, cheetah-dir)")
    cpus = int(ray.cluster_resources().get("CPU", 0))
    actors = config.run.sampler_workers or max(1, cpus)
    if actors > cpus:
        raise ConfigError(f"--address {address}: run.sampler_workers = {actors} actors need {actors} CPUs; the Ray "
                          f"cluster has {cpus}")
    cheetah_remote.use_ray_actors(actors)
    print(f"sampling on {actors} Ray actor(s) of the cluster at {address}", file=sys.stderr)


def _leave_cluster() -> None:
    import ray

    from workbench.tasks import cheetah_remote

    cheetah_remote.use_ray_actors(0)
    cheetah_remote.release()
    if ray.is_initialized():
        ray.shutdown()


def _interrupt(trainer) -> None:
    if trainer._stop.is_set():  # a second Ctrl-C: give up on the clean stop
        raise KeyboardInterrupt
    print("\nworkbench: stopping after this iteration (Ctrl-C again to abort)...", file=sys.stderr)
    trainer.stop()


class Progress:
    """Training progress on ``stream`` (stderr), a trainer callback.

    On a terminal: a tqdm bar (iterations done / total, it/s, ETA, the last training metrics and the last
    held-out evaluation), redrawn at most every 0.1 s.  Anywhere else (a log file, a pipe) no bar: one plain
    line every 10 s and at the last iteration, ``[####    ] 30/100  30%   12.3 it/s ETA 0:00:05 loss 0.5 ...``.
    Both print the run's first line and any diverged evaluation as lines of their own."""

    def __init__(self, stream, width: int = 24):
        self.stream, self.width = stream, width
        self.tty = stream.isatty()
        self.total, self.start_iter, self.last_draw = 0, 0, 0.0
        self.held_out = ""
        self.bar = None  # the tqdm bar, on a terminal, from the start of the run

    def __call__(self, event) -> None:
        from workbench.core import events as ev

        if isinstance(event, ev.RunStarted):
            self.total, self.start_iter = event.total_iterations, event.start_iteration
            self._line(f"training {event.algorithm} on {event.family}, device {event.device}, "
                       f"iterations {event.start_iteration}..{event.total_iterations}"
                       + (f", run {event.run_dir}" if event.run_dir else ""))
            if self.tty:
                self._open_bar()
        elif isinstance(event, ev.Evaluation):
            self.held_out = f"held-out {_value(event.before)}→{_value(event.after)}"
            diverged = event.diverged
            if diverged:
                from workbench.core.stats import describe_divergence

                self._line(f"evaluation at iteration {event.iteration}: "
                           f"{describe_divergence(diverged, event.per_task.shape[0])}")
        elif isinstance(event, ev.IterationMetrics):
            losses = " ".join(f"{k} {v:.4g}" for k, v in event.metrics.items())
            if self.bar is not None:
                self.bar.set_postfix_str(f"{losses} {self.held_out}".strip(), refresh=False)
                self.bar.update(max(0, event.iteration - self.bar.n))  # tqdm redraws at most every 0.1 s
                return
            now = time.monotonic()
            done = event.iteration >= self.total
            if not done and now - self.last_draw < 10.0:
                return
            self.last_draw = now
            frac = event.iteration / max(1, self.total)
            eta = (self.total - event.iteration) / max(event.its_per_sec, 1e-9)
            bar = "#" * int(frac * self.width)
            self._line(f"[{bar:<{self.width}}] {event.iteration}/{self.total} {frac:4.0%} "
                       f"{event.its_per_sec:7.1f} it/s ETA {_hms(eta)} {losses} {self.held_out}")

    def _open_bar(self) -> None:
        from tqdm import tqdm

        try:  # a terminal that reports no size (0 columns: some pseudo-terminals) would get an empty bar
            width = dict(ncols=80) if os.get_terminal_size(self.stream.fileno()).columns <= 0 else {}
        except (AttributeError, OSError, ValueError):  # not a real file (a test's stream)
            width = {}
        self.bar = tqdm(total=self.total, initial=self.start_iter, file=self.stream, unit="it",
                        dynamic_ncols=not width, mininterval=0.1, leave=True, **width,
                        bar_format="{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} {rate_fmt} ETA {remaining}"
                                   "{postfix}")

    def _line(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=self.stream)  # above the bar, which is drawn again below
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def close(self) -> None:
        """End the bar's line (the bar stays on the screen); idempotent."""
        bar, self.bar = self.bar, None
        if bar is not None:
            bar.close()


def _value(x: float, fmt: str = ".3f") -> str:
    """A held-out value, or "diverged" where it is not a number (the reporting rule of stats.mean_ci95)."""
    return format(x, fmt) if math.isfinite(x) else "diverged"


def _hms(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


# -- sweep -----------------------------------------------------------------------------------------
def _sweep(args) -> int:
    import threading

    from workbench.services.paths import default_runs_dir
    from workbench.services.presets import resolve_preset
    from workbench.services.sweep import (check_address, connect_timeout, load_plan, plan_search, require_ray,
                                          run_sweep)

    require_ray()
    overrides = list(args.overrides)
    if args.iterations is not None:
        overrides.append(f"run.iterations={json.dumps(args.iterations)}")
    runs_dir = Path(args.out) if args.out else default_runs_dir()
    searched = args.uniform or args.loguniform or args.choice or args.samples != 1 or args.search != "random"
    if args.resume is not None:
        if (args.preset or args.grid or searched or overrides or args.seeds != 1 or args.scheduler != "none"
                or args.max_concurrent):
            raise ConfigError(f"--resume {args.resume}: the sweep's own plan is resumed; give no preset, --grid, "
                              "--seeds, search, --max-concurrent or --set with it")
        plan = load_plan(runs_dir, args.resume)  # refuses an unknown id before Ray starts
    elif not args.preset:
        raise ConfigError("a preset, or --resume SWEEP_ID, is needed")
    else:
        plan = plan_search(resolve_preset(args.preset), args.seeds, args.grid, overrides, args.uniform,
                           args.loguniform, args.choice, args.samples, args.search, args.scheduler,
                           args.max_concurrent)  # refuses before Ray starts
    if runs_dir.exists() and not runs_dir.is_dir():
        raise ConfigError(f"--out {runs_dir}: not a folder")
    if args.address is not None:
        check_address(args.address)  # a malformed one: refused before anything starts, as the grid is
        connect_timeout()  # (and a bad $WORKBENCH_RAY_CONNECT_TIMEOUT)
    if not sys.stderr.isatty():
        import os

        os.environ.setdefault("RAY_COLOR_PREFIX", "0")  # no colour codes in the worker lines of a log file
    stop = threading.Event()
    interrupts = []
    connected = []  # the first event of a trial: Ray is up (or reached) and the trials are queued

    def on_sigint(*_):
        if args.address and not connected:  # still connecting to the cluster: nothing to stop cleanly
            raise KeyboardInterrupt
        interrupts.append(1)
        if len(interrupts) == 1:
            print("\nworkbench: stopping the sweep: running trials stop after this iteration and keep a checkpoint "
                  "(Ctrl-C again to cancel them now)...", file=sys.stderr, flush=True)
            stop.set()
        elif len(interrupts) == 2:  # a second Ctrl-C: cancel the trials by force
            print("workbench: cancelling the trials...", file=sys.stderr, flush=True)
            raise KeyboardInterrupt

    progress = None if args.quiet else SweepProgress(sys.stderr, plan.total)
    where = f"Ray at {args.address}" if args.address else "a local Ray"
    output = _SweepOutput(hold_stderr=bool(args.address))

    def on_event(event) -> None:
        if not connected:
            connected.append(1)
            output.release()  # Ray's warnings while it connected, if any, now that it did
        if progress:
            progress(event)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        with output:  # (with an address, this line waits until Ray answers: a failure is one line)
            if progress:
                print(f"sweep of {plan.total} trial(s) on {where}, runs in {runs_dir}", file=sys.stderr, flush=True)
            result = run_sweep(None if args.resume else plan, runs_dir, address=args.address, callback=on_event,
                               stop_event=stop, log_to_driver=True, resume=args.resume)
    finally:
        signal.signal(signal.SIGINT, previous)
    counts = ", ".join(f"{n} {s}" for s, n in result.counts.items())
    print(f"sweep {result.sweep_id}: {len(result.trials)} trial(s), {counts}; runs in {result.runs_dir}")
    print(result.table())
    for t in result.trials:
        if t.status == "failed":
            print(f"workbench: trial {t.trial.name} failed: {t.message}", file=sys.stderr)
    print(result.sweep_id, flush=True)
    if result.interrupted:
        return 130
    return 1 if any(t.status == "failed" for t in result.trials) else 0


class _SweepOutput:
    """While a sweep runs, stdout is kept for its results: whatever is written to it (file descriptor 1 and
    ``sys.stdout``: Ray's forwarding of its workers' output, Ray's own warnings, anything a trial or a
    library prints) goes to stderr instead, so that the results table and the sweep id are alone on stdout.

    With ``hold_stderr`` (connecting to a cluster), what is written to both descriptors meanwhile (Ray's
    own connection warnings, several a second when it cannot connect) is held back until :meth:`release`:
    shown then, once connected, or dropped if the sweep never connected (its error is one line).  Python's
    ``sys.stderr`` writes too.  Everything is restored on leaving, however the sweep ended.
    """

    def __init__(self, hold_stderr: bool = False):
        self.hold_stderr = hold_stderr
        self._stdout = None
        self._saved_out: int | None = None
        self._saved_err: int | None = None
        self._held = None

    def __enter__(self):
        import os
        import tempfile

        _flush(sys.stdout, sys.stderr)
        self._stdout, sys.stdout = sys.stdout, sys.stderr
        try:
            self._saved_out = os.dup(1)
            self._saved_err = os.dup(2)
        except OSError:  # no such descriptor (a process started without one): Python-level only
            self._close_saved()
            return self
        target = self._saved_err
        if self.hold_stderr:
            try:
                self._held = tempfile.TemporaryFile()
                target = self._held.fileno()
            except OSError:
                self._held = None
        os.dup2(target, 1)
        if self._held is not None:
            os.dup2(target, 2)
        return self

    def release(self, show: bool = True) -> None:
        """Stop holding stderr back; write what was held to it (``show``) or drop it."""
        import os

        held, self._held = self._held, None
        if held is None:
            return
        _flush(sys.stdout, sys.stderr, self._stdout)
        os.dup2(self._saved_err, 1)
        os.dup2(self._saved_err, 2)
        with held:
            if show:
                held.seek(0)
                while chunk := held.read(1 << 16):
                    _write_all(2, chunk)

    def __exit__(self, *exc) -> None:
        import atexit
        import os

        from workbench.services.sweep import still_connecting

        try:
            if self._held is not None and exc[0] is not None and still_connecting():
                # Ray's connection attempt, given up on, goes on in the background until the process ends:
                # its warnings would follow the error line, so the exit silences them
                atexit.register(_silence_at_exit)
            self.release(show=exc[0] is None)
            _flush(sys.stdout, sys.stderr, self._stdout)  # buffered output of the sweep: to stderr still
            if self._saved_out is not None:
                os.dup2(self._saved_out, 1)
        finally:
            self._close_saved()
            sys.stdout = self._stdout

    def _close_saved(self) -> None:
        import os

        for fd in (self._saved_out, self._saved_err):
            if fd is not None:
                os.close(fd)
        self._saved_out = self._saved_err = None


def _silence_at_exit() -> None:
    import os

    _flush(sys.stdout, sys.stderr)
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
    except OSError:
        pass


def _flush(*streams) -> None:
    for stream in streams:
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # closed, or a broken pipe: nothing to keep
            pass


def _write_all(fd: int, data: bytes) -> None:
    import os

    try:
        while data:
            data = data[os.write(fd, data):]
    except OSError:
        pass


class SweepProgress:
    """Per-trial progress of a sweep: a line per start and end, and every few seconds one line for the rest."""

    def __init__(self, stream, total: int, every: float | None = None):
        self.stream, self.total = stream, total
        self.every = every if every is not None else (2.0 if stream.isatty() else 10.0)
        self.running: dict[int, object] = {}
        self.done, self.last = 0, time.monotonic()

    def __call__(self, event) -> None:
        t = event.trial
        if event.status in ("running", "retrying") and t.index not in self.running:
            self.running[t.index] = event
            again = f" (attempt {event.attempt})" if event.status == "retrying" else ""
            self._line(f"trial {t.name} ({t.label()}) started{again}")
        elif event.status in ("running", "retrying"):
            self.running[t.index] = event
            now = time.monotonic()
            if now - self.last >= self.every:
                self.last = now
                parts = [f"{e.trial.index}: {e.iteration}/{e.total}" for e in self.running.values()]
                self._line(f"[{self.done}/{self.total} done] running " + ", ".join(parts))
        elif event.status in ("finished", "stopped", "stopped early", "failed", "cancelled"):
            self.running.pop(t.index, None)
            self.done += 1
            score = f", held-out {event.metric} {event.value:.4f}" if event.value is not None else ""
            why = f": {event.message}" if event.message and event.status != "finished" else ""
            self._line(f"[{self.done}/{self.total}] trial {t.name} {event.status} at iteration "
                       f"{event.iteration}/{event.total}{score}{why}")

    def _line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()


# -- eval / export / presets ------------------------------------------------------------------------
def _parse_steps(text: str) -> list[int]:
    try:
        steps = sorted(set(int(s) for s in text.split(",") if s.strip() != ""))
    except ValueError:
        raise ConfigError(f"--steps {text!r}: expected comma-separated non-negative integers, e.g. 0,1,10") from None
    if not steps or steps[0] < 0:
        raise ConfigError(f"--steps {text!r}: expected comma-separated non-negative integers, e.g. 0,1,10")
    if steps[-1] > 10_000:
        raise ConfigError(f"--steps {text!r}: at most 10000 inner steps")
    return steps


def _parse_lr_schedule(text: str):
    """``--inner-lr 0.5,0.25`` → [0.5, 0.25]; ``0.1`` → 0.1 (ranges are the algorithm's, checked later)."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise ConfigError(f"--inner-lr {text!r}: expected a number or comma-separated numbers, e.g. 0.5,0.25") from None
    return values[0] if len(values) == 1 else values


def _eval(args) -> int:
    import workbench

    steps = _parse_steps(args.steps) if args.steps is not None else None
    inner_lr = _parse_lr_schedule(args.inner_lr) if args.inner_lr is not None else None
    if args.tasks is not None and not 1 <= args.tasks <= 100_000:
        raise ConfigError(f"--tasks {args.tasks}: expected 1 to 100000 tasks")
    if args.shots is not None and not 1 <= args.shots <= 10_000:
        raise ConfigError(f"--shots {args.shots}: expected 1 to 10000 support points")
    if not 0 <= args.seed < 2**63:
        raise ConfigError(f"--seed {args.seed}: expected an integer in [0, 2**63)")
    model = workbench.load_model(args.model)
    tasks = args.tasks if args.tasks is not None else 600 if model.family.kind == "classification" else 100
    extra = {}
    if inner_lr is not None:
        if not hasattr(getattr(model, "learner", None), "inner_update"):
            raise ConfigError(f"--inner-lr {args.inner_lr}: {model.path} is a {model.algorithm} model; the flag sets "
                              f"the policy-gradient steps of MAML-TRPO and its baselines")
        extra["inner_lr"] = inner_lr
    result = model.evaluate(tasks=tasks, seed=args.seed, steps=steps, shots=args.shots, **extra)
    result["model"] = str(model.path)
    if args.json:
        print(json.dumps(result, allow_nan=False))
        return 0
    shots = f", {result['shots']} shot{'s' if result.get('shots') != 1 else ''}" if result.get("shots") else ""
    print(f"{model.path}: {model.algorithm} on {result['family']}, {result['tasks']} fresh tasks "
          f"(seed {result['seed']}){shots}")
    print(f"{'step':>6}  {'mean ' + result['metric']:>12}  {'± 95% CI':>10}")
    for s, m, c, d in zip(result["steps"], result["mean"], result["ci95"], result["diverged"]):
        if d:
            print(f"{s:>6}  {'diverged':>12}  ({d} of {result['tasks']} tasks overflowed)")
        else:
            print(f"{s:>6}  {m:>12.4f}  {'n/a' if c is None else format(c, '.4f'):>10}")
    for name, value in result.get("references", {}).items():
        print(f"{'ref':>6}  {value:>12.4f}  {name}")
    if result.get("diverged_tasks"):
        from workbench.core.stats import describe_divergence

        print(describe_divergence({int(t): s for t, s in result["diverged_tasks"].items()}, result["tasks"]))
    return 0


def _export(args) -> int:
    import workbench

    model = workbench.load_model(args.model)
    out = Path(args.out) if args.out else model.path.with_suffix(".onnx")
    path = model.to_onnx(out)
    print(path)
    return 0


def _presets(args) -> int:
    from workbench.services.presets import list_presets

    rows = list_presets()
    if not rows:
        print("no presets found")
        return 0
    width = max(len(r.name) for r in rows)
    for r in rows:
        print(f"{r.name:<{width}}  {r.description}")
    return 0
