"""Sweeps: the cross product of seeds and grid values, each an independent run, on Ray.  No Qt here.

    trials = plan_sweep("presets/maml-sinusoid.toml", seeds=2, grid=["algorithm.inner_lr=0.01,0.02"])
    result = run_sweep(trials, runs_dir)          # local Ray on this machine; address="host:6379" for a cluster
    print(result.table())

:func:`plan_sweep` resolves and validates every trial's config before anything starts (an unknown grid
key or a value out of range is a :class:`ConfigError` naming it), without importing Ray.
:func:`run_sweep` runs each trial as a Ray task (one worker process per running trial, torch on one
thread unless the preset sets ``run.threads``; a GPU when ``run.device`` is cuda).  Each trial is an
ordinary run directory in the runs folder, ``<runs_dir>/<sweep_id>-<trial>``, with a ``sweep.json``
next to its config::

    {"sweep_id": "maml-sinusoid-sweep-20260101-120000", "trial": "1-seed1-inner_lr0.01",
     "values": {"algorithm.inner_lr": 0.01}, "seed": 1, ...}

Failures: a trial whose worker raised or died is retried by Ray (``max_retries``; a retry resumes from
the trial's last checkpoint when it has one).  A run that diverged is not retried (it would diverge
again) and is reported failed.  Stopping (Ctrl-C, or ``stop_event``): running trials stop after their
current iteration with a checkpoint (status "stopped"), trials not started yet are dropped ("cancelled");
a trial that does not stop within ``grace`` seconds is cancelled by force and its run marked stopped.

On a cluster, a trial that runs on another node than this one writes its run in a temporary folder
there and ships it back at the end; only trials on this node appear in the runs folder while running.

Connecting to a cluster (``address``) is bounded: an address that does not answer as Ray does (a refused
port, a host that drops packets, a port of something else, no cluster for ``auto``) is a
:class:`ConfigError` naming it within :data:`CONNECT_TIMEOUT` seconds (``$WORKBENCH_RAY_CONNECT_TIMEOUT``
overrides it), and ``stop_event`` or Ctrl-C end the attempt at once.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import itertools
import json
import logging
import math
import os
import shutil
import signal
import socket
import sys
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from workbench.core.config import ExperimentConfig, apply_override, parse_literal, read_toml
from workbench.core.errors import ConfigError, WorkbenchError
from .rundir import CONFIG, SWEEP as SWEEP_FILE  # the trial's config.toml and sweep.json
from .rundir import is_run_file, read_status, safe_run_name, timestamp, update_status

RAY_MISSING = "workbench sweep needs Ray: pip install 'workbench[cluster]'"
MAX_TRIALS = 10_000
REPORT_EVERY = 0.5  # seconds between a running trial's progress reports (and stop-flag checks)
CONNECT_TIMEOUT = 30.0  # seconds to connect to a Ray cluster at an address before giving up
CONNECT_TIMEOUT_ENV = "WORKBENCH_RAY_CONNECT_TIMEOUT"  # overrides CONNECT_TIMEOUT (seconds)
CLIENT_PORT = 10001  # Ray Client's port when a ray:// address names none


class RayMissing(ConfigError):
    """Ray is not installed: the sweep command says what to install."""


def require_ray():
    try:
        import ray
    except ImportError:
        raise RayMissing(RAY_MISSING) from None
    return ray


# -- plan ---------------------------------------------------------------------------------------------
@dataclass
class Trial:
    index: int
    name: str  # unique within the sweep, safe as a path component: "<index>-seed<seed>[-<key><value>...]"
    seed: int
    values: dict[str, Any]  # grid key ("section.key") -> value, in grid order
    config: dict  # the resolved, validated experiment (ExperimentConfig.to_dict())
    num_cpus: float = 1
    num_gpus: float = 0
    preset: str = ""

    @property
    def group(self) -> tuple:
        return tuple(_hashable(v) for v in self.values.values())

    def label(self) -> str:
        parts = [f"seed {self.seed}"] + [f"{k.split('.', 1)[1]}={format_value(v)}" for k, v in self.values.items()]
        return ", ".join(parts)


def split_values(text: str) -> list[str]:
    """Split ``v1,v2,...`` at top-level commas (a list value such as ``[40,40]`` or a quoted string stays whole)."""
    out, depth, quote, cur = [], 0, None, []
    for ch in text:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
            cur.append(ch)
        elif ch in "[{":
            depth += 1
            cur.append(ch)
        elif ch in "]}":
            depth -= 1
            cur.append(ch)
        elif ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur).strip())
    return out


def parse_grid(items: list[str]) -> list[tuple[str, list[str]]]:
    """``["section.key=v1,v2", ...]`` -> ``[("section.key", ["v1", "v2"]), ...]``; the syntax only."""
    grid, seen = [], set()
    for item in items:
        key, eq, text = item.partition("=")
        key = key.strip()
        parts = key.split(".")
        if not eq or len(parts) != 2 or not all(parts):
            raise ConfigError(f"--grid {item!r}: expected section.key=v1,v2,..., e.g. algorithm.inner_lr=0.01,0.02")
        if key in seen:
            raise ConfigError(f"--grid {item!r}: {key} is already in the grid; give all its values at once")
        if key == "run.seed":
            raise ConfigError(f"--grid {item!r}: seeds come from --seeds N (run.seed, run.seed + 1, ...)")
        values = split_values(text)
        if any(v == "" for v in values):
            raise ConfigError(f"--grid {item!r}: empty value; expected {key}=v1,v2,...")
        if len(set(values)) != len(values):
            raise ConfigError(f"--grid {item!r}: a value is repeated")
        seen.add(key)
        grid.append((key, values))
    return grid


def plan_sweep(preset: str | Path | ExperimentConfig | dict, seeds: int = 1, grid: list[str] = (),
               base_overrides: list[str] = ()) -> list[Trial]:
    """Every trial of the sweep with its resolved config; raises :class:`ConfigError` before anything starts.

    ``preset``: a preset file, or the experiment itself (an :class:`ExperimentConfig`, or a config dict
    as a preset's TOML reads, e.g. what the app's forms hold and no file has).  ``seeds``: N runs per grid
    point, with seeds run.seed, run.seed + 1, ... (run.seed from the preset and ``base_overrides``).
    ``grid``: ``"section.key=v1,v2,..."`` items; values are TOML literals as in ``--set`` (bare words are
    strings).
    """
    path = None if isinstance(preset, (ExperimentConfig, dict)) else Path(preset)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= MAX_TRIALS:
        raise ConfigError(f"--seeds {seeds}: expected 1 to {MAX_TRIALS} seeds")
    parsed = parse_grid(list(grid))
    n = seeds * math.prod(len(v) for _, v in parsed)
    if n > MAX_TRIALS:
        raise ConfigError(f"--grid: {n} trials; at most {MAX_TRIALS} in one sweep")
    if path is not None:
        raw, source, preset_ref = read_toml(path), str(path), str(path.resolve())
    else:  # the experiment itself, from no file ("config 'maml-sinusoid'" in messages)
        raw = preset.to_dict() if isinstance(preset, ExperimentConfig) else _copy(preset)
        meta = raw.get("meta")
        name = meta.get("name") if isinstance(meta, dict) else None
        source, preset_ref = (f"config {name!r}" if isinstance(name, str) and name else "config"), ""
    for item in base_overrides:
        apply_override(raw, item)
    base = ExperimentConfig.from_dict(_copy(raw), where=source)
    # Each grid value alone first, so that an error names the grid item rather than a combination.
    for key, values in parsed:
        for text in values:
            data = _copy(raw)
            try:
                apply_override(data, f"{key}={text}")
                ExperimentConfig.from_dict(data, where=source)
            except ConfigError as e:
                raise ConfigError(f"--grid {key}={text}: {e}") from None
    first_seed = base.run.seed
    if first_seed + seeds - 1 > 2**63 - 1:
        raise ConfigError(f"--seeds {seeds}: run.seed {first_seed} + {seeds - 1} is out of range")
    width = len(str(n - 1))
    trials: list[Trial] = []
    combos = list(itertools.product(*(values for _, values in parsed)))
    for combo in combos:
        for s in range(seeds):
            seed = first_seed + s
            data = _copy(raw)
            for (key, _), text in zip(parsed, combo):
                apply_override(data, f"{key}={text}")
            apply_override(data, f"run.seed={seed}")
            where = source + "".join(f" --grid {k}={t}" for (k, _), t in zip(parsed, combo))
            config = ExperimentConfig.from_dict(data, where=where)  # combinations can clash (min > max)
            _check_device_name(config.run.device, where)
            threads = config.run.threads or 1
            config.run.threads = threads
            gpus = 1 if config.run.device.strip().lower().startswith("cuda") else 0
            values = {k: parse_literal(t) for (k, _), t in zip(parsed, combo)}
            index = len(trials)
            name = safe_run_name(f"{index:0{width}d}-seed{seed}" + "".join(
                f"-{k.split('.', 1)[1]}{format_value(v)}" for k, v in values.items()))
            trials.append(Trial(index, name, seed, values, config.to_dict(), threads, gpus, preset_ref))
    return trials


def _check_device_name(name: str, where: str) -> None:
    import re

    if not re.fullmatch(r"auto|cpu|cuda|cuda:\d+|mps", name.strip().lower()):
        raise ConfigError(f"{where}: [run] device = {name!r}: expected auto, cpu, cuda, cuda:N or mps")


def _copy(data: dict) -> dict:
    return json.loads(json.dumps(data))


def _hashable(v):
    return tuple(_hashable(x) for x in v) if isinstance(v, list) else v


def format_value(v) -> str:
    """A grid value as run names and tables show it: 0.01, 40x40, true."""
    if isinstance(v, list):
        return "x".join(format_value(x) for x in v)
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


# -- results ------------------------------------------------------------------------------------------
@dataclass
class TrialEvent:
    """What a sweep's callback receives, on the thread that called :func:`run_sweep`."""
    trial: Trial
    status: str  # queued | running | retrying | finished | stopped | failed | cancelled
    iteration: int = 0
    total: int = 0
    metric: str | None = None  # held-out metric name ("mse", "return") of ``value``
    value: float | None = None  # the latest held-out metric after adaptation
    message: str = ""
    attempt: int = 1


@dataclass
class TrialResult:
    trial: Trial
    status: str  # finished | stopped | failed | cancelled
    run_dir: str | None = None
    iteration: int = 0
    total: int = 0
    metric: str | None = None
    before: float | None = None  # held-out metric before adaptation, at the last evaluation
    after: float | None = None  # ... and after the trained number of inner steps: the trial's final metric
    higher_is_better: bool = False
    bundle: str | None = None
    message: str = ""
    seconds: float = 0.0
    attempts: int = 1
    node: str = ""


@dataclass
class Group:
    values: dict[str, Any]
    trials: list[TrialResult]
    metric: str | None = None
    mean: float | None = None  # mean over the group's finished trials of their final metric
    std: float | None = None  # sample standard deviation (None with fewer than two)

    @property
    def seeds(self) -> list[int]:
        return [t.trial.seed for t in self.trials]

    @property
    def finished(self) -> int:
        return sum(t.status == "finished" for t in self.trials)


@dataclass
class SweepResult:
    sweep_id: str
    runs_dir: str
    grid_keys: list[str]
    trials: list[TrialResult]
    groups: list[Group] = field(default_factory=list)
    interrupted: bool = False
    wall_seconds: float = 0.0
    startup_seconds: float | None = None  # Ray start (or connect) until the first trial was running

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.trials:
            out[t.status] = out.get(t.status, 0) + 1
        return out

    def table(self) -> str:
        metric = next((g.metric for g in self.groups if g.metric), "metric")
        heads = self.grid_keys + ["seeds", "finished", f"{metric} after (mean ± sd)"]
        rows = []
        for g in self.groups:
            if g.mean is None:
                score = "n/a"
            else:
                score = f"{g.mean:.4f}" + (f" ± {g.std:.4f}" if g.std is not None else "")
            rows.append([format_value(g.values[k]) for k in self.grid_keys]
                        + [",".join(map(str, g.seeds)), f"{g.finished}/{len(g.trials)}", score])
        widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(heads)]
        lines = ["  ".join(h.ljust(w) for h, w in zip(heads, widths)).rstrip()]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"sweep_id": self.sweep_id, "runs_dir": self.runs_dir, "grid_keys": self.grid_keys,
                "interrupted": self.interrupted, "wall_seconds": round(self.wall_seconds, 3),
                "trials": [{"trial": t.trial.name, "seed": t.trial.seed, "values": t.trial.values, "status": t.status,
                            "run_dir": t.run_dir, "iteration": t.iteration, "metric": t.metric, "after": t.after,
                            "message": t.message, "attempts": t.attempts} for t in self.trials],
                "groups": [{"values": g.values, "seeds": g.seeds, "finished": g.finished, "metric": g.metric,
                            "mean": g.mean, "std": g.std} for g in self.groups]}


def group_results(results: list[TrialResult]) -> list[Group]:
    groups: dict[tuple, Group] = {}
    for r in results:
        g = groups.setdefault(r.trial.group, Group(dict(r.trial.values), []))
        g.trials.append(r)
    for g in groups.values():
        done = [t for t in g.trials if t.status == "finished" and t.after is not None and math.isfinite(t.after)]
        g.metric = next((t.metric for t in g.trials if t.metric), None)
        if done:
            vals = [t.after for t in done]
            g.mean = sum(vals) / len(vals)
            if len(vals) > 1:
                g.std = math.sqrt(sum((v - g.mean) ** 2 for v in vals) / (len(vals) - 1))
    return list(groups.values())


# -- the worker side ----------------------------------------------------------------------------------
class _Hub:
    """A Ray actor: trials report progress to it, the driver drains it, and it carries the stop flag."""

    def __init__(self):
        self.events: list[dict] = []
        self.stop_flag = False
        self.attempts: dict[int, int] = {}

    def report(self, event: dict) -> bool:
        if event.get("kind") == "start":
            self.attempts[event["index"]] = self.attempts.get(event["index"], 0) + 1
            event["attempt"] = self.attempts[event["index"]]
        self.events.append(event)
        return self.stop_flag

    def drain(self) -> list[dict]:
        out, self.events = self.events, []
        return out

    def stop(self) -> None:
        self.stop_flag = True


class _Reporter:
    """Trainer callback in the worker: progress to the hub every REPORT_EVERY seconds, and the stop flag back."""

    def __init__(self, ray, hub, index: int):
        self.ray, self.hub, self.index = ray, hub, index
        self.trainer = None
        self.last = 0.0
        self.metric = self.value = None
        self.replies: list = []
        self.stop_requested = False

    def send(self, **event) -> None:
        # Never ray.get / ray.wait here: a task blocked in them (even with timeout=0) lends its CPU to
        # the next queued trial, and the machine ends up running more trials than it has cores.  The
        # hub's reply (the stop flag) is a future, read once it has arrived, at a later report.
        self.replies.append(self.hub.report.remote({"index": self.index, **event}).future())
        ready = [f for f in self.replies if f.done()]
        self.replies = [f for f in self.replies if not f.done()]
        if any(_reply(f) for f in ready):
            self.stop_requested = True
            if self.trainer is not None:
                self.trainer.stop()

    def __call__(self, event) -> None:
        from workbench.core import events as ev

        if isinstance(event, ev.Evaluation):
            self.metric, self.value = event.metric, float(event.after)
            self.send(kind="progress", iteration=event.iteration, metric=self.metric, value=self.value)
            self.last = time.monotonic()
        elif isinstance(event, ev.IterationMetrics):
            now = time.monotonic()
            if now - self.last >= REPORT_EVERY:
                self.last = now
                self.send(kind="progress", iteration=event.iteration, metric=self.metric, value=self.value)


def _reply(future) -> bool:
    try:
        return bool(future.result())
    except Exception:  # noqa: BLE001 - the hub is gone (the driver ended): nothing to obey
        return False


def _trial_task(trial: Trial, runs_dir: str, run_name: str, sweep_id: str, hub, driver_node: str | None) -> dict:
    """One trial, in a Ray worker process.  Returns a plain dict (and the run, packed, when shipped)."""
    import ray

    from .trainer import Trainer

    t0 = time.monotonic()
    reporter = _Reporter(ray, hub, trial.index)
    reporter.send(kind="start", iteration=0, total=int(trial.config["run"]["iterations"]))
    node = ray.get_runtime_context().get_node_id()
    shipped = driver_node is None or node != driver_node
    root = Path(tempfile.mkdtemp(prefix="workbench-trial-")) if shipped else Path(runs_dir)
    run_dir = root / run_name
    run_dir.mkdir(parents=True, exist_ok=True)
    from workbench.core.storage import atomic_write_text

    atomic_write_text(run_dir / SWEEP_FILE, json.dumps({
        "sweep_id": sweep_id, "trial": trial.name, "values": trial.values, "seed": trial.seed,
        "index": trial.index, "preset": trial.preset}, indent=1))
    data = _copy(trial.config)
    device = str(data["run"].get("device", "auto")).strip().lower()
    if device.startswith("cuda"):
        data["run"]["device"] = "cuda"  # Ray makes the trial's GPU the only visible one
    elif device == "auto" and not trial.num_gpus:
        data["run"]["device"] = "cpu"  # no GPU was reserved for this trial: keep off the others'
    config = ExperimentConfig.from_dict(data, where=f"sweep trial {trial.name}")
    try:
        trainer = None
        if (run_dir / CONFIG).is_file():  # a retry after the worker died: go on from its checkpoint (if any)
            try:
                trainer = Trainer.from_run_dir(run_dir, [reporter],
                                               overrides=[f"run.device={json.dumps(data['run']['device'])}"])
            except WorkbenchError:  # an unreadable checkpoint: start afresh, removing only the run's own files
                for p in run_dir.iterdir():
                    if p.name != SWEEP_FILE and is_run_file(p.name) and p.is_file() and not p.is_symlink():
                        p.unlink()
        if trainer is None:
            trainer = Trainer(config, run_dir, [reporter])
        reporter.trainer = trainer
        if reporter.stop_requested:
            trainer.stop()
        reporter.send(kind="progress", iteration=trainer.iteration)
        finished = trainer.run()
    except BaseException as e:  # noqa: BLE001 - recorded, then re-raised for Ray's retry / cancellation
        stopped = isinstance(e, (KeyboardInterrupt, SystemExit))
        if stopped and not (run_dir / CONFIG).exists():  # cancelled before the run began: leave no trace of ours
            for p in run_dir.iterdir():
                if is_run_file(p.name) and p.is_file() and not p.is_symlink():
                    p.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                run_dir.rmdir()  # only when nothing else is in it
        elif run_dir.is_dir():
            update_status(run_dir, status="stopped" if stopped else "failed", message=_one_line(e))
        raise
    e = trainer.last_eval
    out = {"status": finished.status, "iteration": finished.iteration, "total": config.run.iterations,
           "message": finished.message, "bundle": finished.bundle_path, "node": node,
           "run_dir": None if shipped else str(run_dir), "seconds": time.monotonic() - t0,
           "metric": e.metric if e is not None else None, "before": e.before if e is not None else None,
           "after": e.after if e is not None else None,
           "higher_is_better": e.higher_is_better if e is not None else False}
    if shipped:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            tar.add(run_dir, arcname=run_name)
        out["archive"] = buf.getvalue()
        shutil.rmtree(root, ignore_errors=True)
    return out


def _one_line(e: BaseException) -> str:
    cause = getattr(e, "cause", None)  # RayTaskError: the exception raised in the task
    if isinstance(cause, BaseException):
        e = cause
    text = str(e).strip()
    if isinstance(e, WorkbenchError) and text:
        return text.splitlines()[0]
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return f"{type(e).__name__}: {lines[-1]}" if lines else type(e).__name__


# -- the driver side ----------------------------------------------------------------------------------
def new_sweep_id(trials: list[Trial], runs_dir: Path) -> str:
    name = safe_run_name(trials[0].config.get("meta", {}).get("name", "sweep")) if trials else "sweep"
    base = f"{name}-sweep-{timestamp()}"
    sweep_id, n = base, 1
    while runs_dir.is_dir() and any(p.name.startswith(sweep_id + "-") for p in runs_dir.iterdir()):
        n += 1
        sweep_id = f"{base}-{n}"
    return sweep_id


def _check_resources(ray, trials: list[Trial], gpus_per_trial: float | None) -> None:
    """Refuse trials the cluster can never place (Ray would keep them waiting forever)."""
    have = ray.cluster_resources()
    cpus, gpus = have.get("CPU", 0), have.get("GPU", 0)
    for t in trials:
        need_gpu = t.num_gpus if gpus_per_trial is None else gpus_per_trial
        if t.num_cpus > cpus:
            raise ConfigError(f"trial {t.name}: run.threads = {t.num_cpus} needs {t.num_cpus} CPUs per trial; "
                              f"the Ray cluster has {cpus:g}")
        if need_gpu > gpus:
            raise ConfigError(f"trial {t.name}: run.device = {t.config['run']['device']!r} needs a GPU per trial; "
                              f"the Ray cluster has {'none' if not gpus else f'{gpus:g}'}")


# -- connecting to a cluster --------------------------------------------------------------------------
# What a gRPC server (Ray's GCS, Ray Client's server) answers the HTTP/2 connection preface with: its own
# SETTINGS frame.  A port that accepts TCP but answers otherwise (or not at all) is not Ray.
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
_HTTP2_SETTINGS = 0x4
_abandoned: threading.Thread | None = None  # a connection attempt given up on that has not ended yet


def still_connecting() -> bool:
    """Whether a connection attempt given up on (timed out, stopped, interrupted) is still inside ``ray.init``
    in this process: Ray may still print its retry warnings until it gives up by itself."""
    return _abandoned is not None and _abandoned.is_alive()


class _Unreachable(Exception):
    """The address does not answer as a Ray cluster does; the message says how (one line)."""


def connect_timeout() -> float:
    """Seconds to connect to a Ray cluster: ``$WORKBENCH_RAY_CONNECT_TIMEOUT``, else :data:`CONNECT_TIMEOUT`."""
    text = os.environ.get(CONNECT_TIMEOUT_ENV, "").strip()
    if not text:
        return float(CONNECT_TIMEOUT)
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{CONNECT_TIMEOUT_ENV}={text!r}: expected a number of seconds > 0")
    return value


def _split_host_port(address: str, text: str, default_port: int | None = None) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or "]" in port:  # no port ("host", "[::1]")
        host, port = text, ""
    host = host.strip("[]")
    if not port and default_port is not None:
        port = str(default_port)
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--address {address}: expected host:port, auto or ray://host:port")
    return host, int(port)


def check_address(address: str | None) -> None:
    """Refuse an ``address`` that is not ``host:port``, ``auto`` or ``ray://host[:port]`` (no network used)."""
    if address is None or address in ("auto", "local"):
        return
    if address.startswith("ray://"):
        _split_host_port(address, address[len("ray://"):].rstrip("/"), CLIENT_PORT)
    else:
        _split_host_port(address, address)


def _endpoint(address: str) -> tuple[str, int] | None:
    """The host and port that ``ray.init(address=address)`` connects to (None: not known here)."""
    if address.startswith("ray://"):
        return _split_host_port(address, address[len("ray://"):].rstrip("/"), CLIENT_PORT)
    try:  # Ray's own reading: RAY_ADDRESS and the latest local cluster for "auto", localhost as this node's IP
        from ray._private import services

        canonical = services.canonicalize_bootstrap_address(address)
    except ConnectionError:  # "auto" and no cluster on this machine
        raise _Unreachable("no running Ray cluster found on this machine (start one with 'ray start --head', "
                           "or give its host:port)") from None
    except ValueError:
        raise ConfigError(f"--address {address}: expected host:port, auto or ray://host:port") from None
    except Exception:  # noqa: BLE001 - Ray's internals moved: check the address as given
        canonical = None if address == "auto" else address
    return None if canonical is None else _split_host_port(address, canonical)


def _probe(host: str, port: int, deadline: float) -> None:
    """Raise :class:`_Unreachable` unless ``host:port`` accepts a connection and answers as a gRPC server."""
    where = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    wait = max(0.05, deadline - time.monotonic())
    try:
        sock = socket.create_connection((host, port), timeout=wait)
    except ConnectionRefusedError:
        raise _Unreachable(f"connection refused by {where} (no Ray there?)") from None
    except socket.gaierror:
        raise _Unreachable(f"unknown host {host!r}") from None
    except TimeoutError:
        raise _Unreachable(f"no answer from {where} within {wait:.3g} s") from None
    except OSError as e:
        raise _Unreachable(f"{where}: {e.strerror or e}") from None
    with sock:
        if os.environ.get("RAY_USE_TLS", "").strip().lower() in ("1", "true"):
            return  # TLS first: the plain preface below would get no answer
        head, t0 = b"", time.monotonic()
        try:
            sock.settimeout(max(0.05, deadline - t0))
            sock.sendall(_HTTP2_PREFACE)
            while len(head) < 9:
                chunk = sock.recv(9 - len(head))
                if not chunk:
                    break
                head += chunk
        except TimeoutError:
            raise _Unreachable(f"{where} accepted the connection but gave no answer within "
                               f"{time.monotonic() - t0:.2g} s (not a Ray port?)") from None
        except OSError:
            pass  # reset: answered below as what it is
        if len(head) < 9 or head[3] != _HTTP2_SETTINGS:
            raise _Unreachable(f"{where} is not a Ray port (it does not answer as Ray does)")


def _auth_hint() -> str:
    return ("" if os.environ.get("RAY_AUTH_MODE") else
            " (a cluster with token authentication, Ray's default, also needs RAY_AUTH_MODE=token here "
            "and its token in ~/.ray/auth_token)")


def _wait_for_abandoned(deadline: float, address: str | None) -> None:
    """An attempt given up on earlier may still be inside ``ray.init``: never run two at once."""
    global _abandoned
    previous = _abandoned
    if previous is not None:
        previous.join(max(0.0, deadline - time.monotonic()))
        if previous.is_alive():
            raise ConfigError((f"--address {address}: " if address else "")
                              + "an earlier attempt to connect to Ray has not given up yet; try again in a minute")
        _abandoned = None


def _connect(ray, address: str, kwargs: dict, timeout: float, stop_event: threading.Event | None,
             force_event: threading.Event | None) -> bool:
    """``ray.init(**kwargs)`` for the cluster at ``address``, within ``timeout`` seconds.

    The attempt runs on a daemon thread (Ray's own retries can last many minutes), while this thread
    waits in short slices: a KeyboardInterrupt ends the wait at once and is re-raised, ``stop_event``
    or ``force_event`` end it with False.  An address that does not answer as Ray does is a
    :class:`ConfigError` naming it.  An attempt given up on is left to end by itself; should it still
    connect, it disconnects again.
    """
    deadline = time.monotonic() + timeout
    done, lock = threading.Event(), threading.Lock()
    state: dict[str, Any] = {"stage": "connect"}

    def attempt() -> None:
        try:
            endpoint = _endpoint(address)
            if endpoint is not None:
                state["where"] = f"{endpoint[0]}:{endpoint[1]}"
                _probe(*endpoint, deadline)
            with lock:
                if state.get("abandoned"):
                    return
                state["stage"] = "init"
            ray.init(**kwargs)
        except BaseException as e:  # noqa: BLE001 - handed to the waiting thread
            state["error"] = e
        else:
            with lock:
                late = bool(state.get("abandoned"))
                state["connected"] = not late
            if late:
                try:
                    ray.shutdown()
                except Exception:  # noqa: BLE001 - nobody is waiting for this attempt any more
                    pass
        finally:
            done.set()

    def give_up() -> bool:
        """Leave the attempt to itself; True if it had connected after all."""
        global _abandoned
        with lock:
            if state.get("connected"):
                return True
            state["abandoned"] = True
        if not done.is_set():
            _abandoned = thread
        return False

    if threading.current_thread() is threading.main_thread():  # as ray.init does on the main thread
        try:
            signal.signal(signal.SIGBREAK if sys.platform == "win32" else signal.SIGTERM, _exit_on_sigterm)
        except (ValueError, OSError, AttributeError):
            pass
    thread = threading.Thread(target=attempt, name="workbench-ray-connect", daemon=True)
    thread.start()
    stopped = False
    try:
        while not done.wait(0.05):
            if (stop_event is not None and stop_event.is_set()) or (force_event is not None and force_event.is_set()):
                stopped = True
                break
            if time.monotonic() >= deadline:
                done.wait(0.2)  # a probe timing out just now says more than "no answer"
                break
    except BaseException:  # KeyboardInterrupt: end the wait now
        if give_up():
            try:
                ray.shutdown()
            except BaseException:  # noqa: BLE001 - the interrupt is what the caller must see
                pass
        raise
    if done.is_set() and "error" in state:
        e = state["error"]
        if isinstance(e, ConfigError):
            raise e
        if isinstance(e, _Unreachable):
            raise ConfigError(f"--address {address}: cannot connect to a Ray cluster: {e}") from None
        raise ConfigError(f"--address {address}: cannot connect to a Ray cluster: {_one_line(e)}{_auth_hint()}"
                          ) from None
    if give_up():
        if stopped:
            ray.shutdown()
            return False
        return True
    if stopped:
        return False
    where = state.get("where", address)
    if state["stage"] == "init":
        why = f"Ray at {where} did not answer within {timeout:g} s{_auth_hint()}"
    else:
        why = f"no answer from {where} within {timeout:g} s"
    raise ConfigError(f"--address {address}: cannot connect to a Ray cluster: {why}")


def _exit_on_sigterm(signum, frame):
    sys.exit(signum)


def _stopped_before_start(trials: list[Trial], sweep_id: str, runs_dir: Path, emit, t_start: float) -> SweepResult:
    """The result of a sweep stopped while it connected to Ray: every trial cancelled, no run made."""
    results = []
    for t in trials:
        total = int(t.config["run"]["iterations"])
        r = TrialResult(t, "cancelled", total=total, message="the sweep was stopped before it connected to Ray")
        results.append(r)
        emit(TrialEvent(t, "cancelled", total=total, message=r.message))
    grid_keys = list(trials[0].values) if trials else []
    return SweepResult(sweep_id, str(runs_dir), grid_keys, results, group_results(results), True,
                       time.monotonic() - t_start, None)


def run_sweep(trials: list[Trial], runs_dir: str | Path, address: str | None = None, num_cpus: int | None = None,
              callback: Callable[[TrialEvent], None] | None = None, max_retries: int = 1,
              sweep_id: str | None = None, stop_event: threading.Event | None = None, grace: float = 30.0,
              gpus_per_trial: float | None = None, force_event: threading.Event | None = None,
              log_to_driver: bool = False, _ship: bool | None = None) -> SweepResult:
    """Run ``trials`` (from :func:`plan_sweep`) on Ray and wait for them; see the module docstring.

    ``address``: None starts a local Ray on this machine (``num_cpus`` of its cores, default all), else
    the address of an existing cluster (``host:port``, ``auto``, ``ray://host:port``).  When Ray is
    already initialised in this process, that instance is used and left running.  ``callback`` gets
    :class:`TrialEvent` s as trials start, progress and end.  ``stop_event``: set it (from any thread)
    to stop the sweep as Ctrl-C does; ``force_event``: set it to cancel the trials by force now, as a
    second Ctrl-C does (their runs are marked stopped, without a final checkpoint).  ``gpus_per_trial``
    overrides the trials' own GPU need (e.g. 0.25 to share a GPU between four small trials).
    ``log_to_driver``: print what the trials' workers write (and Ray's own worker messages) in this process,
    on ``sys.stdout``/``sys.stderr`` as Ray does (the command line sends both to stderr).

    Connecting to ``address`` takes at most :func:`connect_timeout` seconds (else a :class:`ConfigError`
    naming the address); ``stop_event`` set meanwhile ends the sweep at once with every trial cancelled.
    """
    ray = require_ray()
    trials = list(trials)
    runs_dir = Path(runs_dir).expanduser().resolve()
    if max_retries < 0:
        raise ConfigError(f"max_retries {max_retries}: expected 0 or more")
    if num_cpus is not None and address is not None:
        raise ConfigError("num_cpus applies to a local Ray only; a cluster has its own")
    if num_cpus is not None and num_cpus < 1:
        raise ConfigError(f"num_cpus {num_cpus}: expected at least 1")
    sweep_id = sweep_id or new_sweep_id(trials, runs_dir)
    names = {t.index: f"{sweep_id}-{t.name}" for t in trials}
    emit = callback or (lambda event: None)
    t_start = time.monotonic()
    started_here = False
    check_address(address)
    timeout = connect_timeout() if address is not None else 0.0
    _wait_for_abandoned(time.monotonic() + (timeout or CONNECT_TIMEOUT), address)
    if not ray.is_initialized():
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=log_to_driver,
                                      logging_level=logging.ERROR)
        if address is None:
            kwargs.update(address="local", num_cpus=num_cpus)
            try:
                ray.init(**kwargs)
            except Exception as e:  # noqa: BLE001 - RuntimeError, ValueError, ...
                raise ConfigError(f"cannot start a local Ray: {_one_line(e)}") from None
        else:
            pkg = Path(__file__).resolve().parents[1]  # the workers run this very code, not what the nodes have
            kwargs.update(address=address, runtime_env={"py_modules": [str(pkg)], "excludes": ["__pycache__"]})
            if not _connect(ray, address, kwargs, timeout, stop_event, force_event):
                return _stopped_before_start(trials, sweep_id, runs_dir, emit, t_start)
        started_here = True
    results: dict[int, TrialResult] = {}
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
        client = address is not None and address.startswith("ray://")
        if _ship is None:
            driver_node = None if client else ray.get_runtime_context().get_node_id()
        else:
            driver_node = None if _ship else ray.get_runtime_context().get_node_id()
        _check_resources(ray, trials, gpus_per_trial)
        hub = ray.remote(num_cpus=0)(_Hub).remote()
        task = ray.remote(_trial_task)
        pending: dict[Any, Trial] = {}
        for t in trials:
            gpus = t.num_gpus if gpus_per_trial is None else gpus_per_trial
            ref = task.options(num_cpus=t.num_cpus, num_gpus=gpus, max_retries=max_retries, retry_exceptions=True,
                               name=f"workbench-trial-{t.name}"
                               ).remote(t, str(runs_dir), names[t.index], sweep_id, hub, driver_node)
            pending[ref] = t
            emit(TrialEvent(t, "queued", total=int(t.config["run"]["iterations"])))
        state = {t.index: TrialEvent(t, "queued", total=int(t.config["run"]["iterations"])) for t in trials}
        by_index = {t.index: t for t in trials}
        first_running: list[float] = []
        stop_deadline: float | None = None

        def drain() -> None:
            for e in ray.get(hub.drain.remote()):
                t = by_index[e["index"]]
                prev = state[t.index]
                if e["kind"] == "start":
                    status = "running" if e["attempt"] == 1 else "retrying"
                    if not first_running:
                        first_running.append(time.monotonic())
                    ev_ = TrialEvent(t, status, e.get("iteration", 0), e.get("total", prev.total), prev.metric,
                                     prev.value, attempt=e["attempt"])
                else:
                    ev_ = TrialEvent(t, "running" if prev.attempt == 1 else "retrying", e.get("iteration", 0),
                                     prev.total, e.get("metric") or prev.metric,
                                     e.get("value") if e.get("value") is not None else prev.value,
                                     attempt=prev.attempt)
                state[t.index] = ev_
                emit(ev_)

        def collect(ref) -> None:
            t = pending.pop(ref)
            attempts = state[t.index].attempt
            try:
                out = ray.get(ref)
            except ray.exceptions.TaskCancelledError:
                if state[t.index].status == "queued":
                    out = {"status": "cancelled", "message": "the sweep was stopped before this trial started"}
                else:
                    why = ("the sweep was cancelled" if force_event is not None and force_event.is_set()
                           else "it did not stop in time")
                    out = {"status": "stopped", "message": f"cancelled by force: {why}"}
            except ray.exceptions.RayError as e:
                out = {"status": "failed", "message": _one_line(e)}
            archive = out.pop("archive", None)
            run_dir = runs_dir / names[t.index]
            if archive is not None:
                with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
                    tar.extractall(runs_dir, filter="data")
                if out.get("bundle"):  # it was written in the worker's temporary folder
                    out["bundle"] = str(run_dir / Path(out["bundle"]).name)
                    if read_status(run_dir).get("bundle"):
                        update_status(run_dir, bundle=out["bundle"])
            if run_dir.is_dir():
                out["run_dir"] = str(run_dir)
                if out["status"] in ("failed", "stopped") and read_status(run_dir).get("status") in ("running", None):
                    update_status(run_dir, status=out["status"], message=out.get("message", ""),
                                   iteration=state[t.index].iteration)  # the worker died without a word
            else:
                out["run_dir"] = None
            fields = {f.name for f in dataclasses.fields(TrialResult)}
            r = TrialResult(t, **{k: v for k, v in out.items() if k in fields and k not in ("trial", "attempts")},
                            attempts=attempts)
            r.total = r.total or int(t.config["run"]["iterations"])
            r.iteration = r.iteration or state[t.index].iteration
            r.metric = r.metric or state[t.index].metric
            results[t.index] = r
            emit(TrialEvent(t, r.status, r.iteration, r.total, r.metric, r.after, r.message, attempts))

        def request_stop() -> None:
            nonlocal stop_deadline
            if stop_deadline is None:
                ray.get(hub.stop.remote())
                stop_deadline = time.monotonic() + grace
                drain()
                for ref, t in pending.items():  # not started yet: drop them
                    if state[t.index].status == "queued":
                        ray.cancel(ref)

        interrupted = False
        while pending:
            try:
                if force_event is not None and force_event.is_set():
                    interrupted = True
                    request_stop()
                    break
                if stop_event is not None and stop_event.is_set():
                    interrupted = True
                    request_stop()
                if stop_deadline is not None and time.monotonic() > stop_deadline:
                    break
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.2)
                drain()
                for ref in ready:
                    collect(ref)
            except KeyboardInterrupt:
                interrupted = True
                if stop_deadline is None:
                    request_stop()
                else:  # a second Ctrl-C: do not wait for the clean stop
                    break
        if pending:  # stop requested and the grace period is over (or a second Ctrl-C)
            for ref in list(pending):
                ray.cancel(ref, force=True, recursive=True)
            for ref in list(pending):
                collect(ref)
        drain()
    finally:
        if started_here:
            for _ in range(2):  # once more if a Ctrl-C cut the first one short
                try:
                    ray.shutdown()
                    break
                except BaseException:  # noqa: BLE001 - shutting down after an interrupt must not mask it
                    pass
    ordered = [results[t.index] for t in trials if t.index in results]
    grid_keys = list(trials[0].values) if trials else []
    return SweepResult(sweep_id, str(runs_dir), grid_keys, ordered, group_results(ordered), interrupted,
                       time.monotonic() - t_start, (first_running[0] - t_start) if first_running else None)
