"""Sweeps on Ray Tune: seeds x grid values, random or Bayesian (Optuna) search, early stopping (ASHA).  No Qt here.

    trials = plan_sweep("presets/maml-sinusoid.toml", seeds=2, grid=["algorithm.inner_lr=0.01,0.02"])
    plan = plan_search("presets/maml-sinusoid.toml", loguniform=["algorithm.inner_lr=0.001,0.1"], samples=8,
                       search="optuna", scheduler="asha")
    result = run_sweep(trials or plan, runs_dir)   # local Ray on this machine; address="host:6379" for a cluster
    print(result.table())
    run_sweep(None, runs_dir, resume=result.sweep_id)   # finish an interrupted sweep

:func:`plan_sweep` and :func:`plan_search` resolve and validate the trials' configs before anything starts
(an unknown key, a value out of range, either end of a searched range out of range is a
:class:`ConfigError` naming it), without importing Ray.  :func:`run_sweep` runs the trials as one Ray
Tune experiment (``Tuner``): Tune's variant generator for the grid and the random search
(each sample's values kept for all its seeds and grid points), Optuna's TPE through Tune's
``OptunaSearch``, and Tune's ``ASHAScheduler`` on the held-out metric after adaptation, which each trial
reports at every evaluation (direction from the family's metric: loss down, accuracy and return up).
Each trial is a function trainable in a Ray worker (torch on one thread unless the preset sets
``run.threads``; a GPU when ``run.device`` is cuda) and an ordinary run directory in the runs folder,
``<runs_dir>/<sweep_id>-<trial>``, with a ``sweep.json`` next to its config::

    {"sweep_id": "maml-sinusoid-sweep-20260101-120000", "trial": "1-seed1-inner_lr0.01",
     "values": {"algorithm.inner_lr": 0.01}, "seed": 1, ...}

A trial that ASHA stops is a run with status "stopped early" and the reason.  The sweep's plan is kept
in ``<runs_dir>/.sweeps/<sweep_id>/plan.json`` (JSON; Tune's own files beside it), so that
``resume=sweep_id`` can finish an interrupted sweep: finished trials are kept, the others go on from
their runs' checkpoints, trials not begun are run (nothing of Tune's state is unpickled: the runs
folder says what was done).

Failures: a trial whose worker raised or died is retried by Tune (``max_retries``; a retry resumes from
the trial's last checkpoint when it has one).  A run that diverged is not retried (it would diverge
again) and is reported failed.  Stopping (Ctrl-C, or ``stop_event``): running trials stop after their
current iteration with a checkpoint (status "stopped"), trials not started yet are not started
("cancelled"); then the experiment ends as Tune ends an interrupted one.  A trial that does not stop
within ``grace`` seconds is ended by force and its run marked stopped.

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

RAY_MISSING = "workbench sweep needs Ray Tune: pip install 'workbench[cluster]'"
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


# -- search spaces ------------------------------------------------------------------------------------
SEARCHES = ("random", "optuna")  # --search: Tune's random / grid variant generator, or Optuna's TPE
SCHEDULERS = ("none", "asha")  # --scheduler: run every trial to the end, or stop bad ones early (ASHA)
DIST_KINDS = ("uniform", "loguniform", "choice")


@dataclass
class Dist:
    """One searched key: ``uniform`` / ``loguniform`` over [lo, hi] (integers when both ends are integers),
    or ``choice`` among values."""
    key: str  # "section.key"
    kind: str  # uniform | loguniform | choice
    values: list  # [lo, hi] for uniform / loguniform; the choices for choice

    def describe(self) -> str:
        return f"--{self.kind} {self.key}={','.join(format_value(v) for v in self.values)}"

    def tune_domain(self):
        """The Ray Tune search domain of this key."""
        from ray import tune

        if self.kind == "choice":
            return tune.choice(self.values)
        lo, hi = self.values
        ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (lo, hi))
        if self.kind == "uniform":
            return tune.randint(lo, hi + 1) if ints else tune.uniform(lo, hi)
        return tune.lograndint(lo, hi + 1) if ints else tune.loguniform(lo, hi)


def parse_dists(uniform: list[str] = (), loguniform: list[str] = (), choice: list[str] = ()) -> list[Dist]:
    """``--uniform key=lo,hi``, ``--loguniform key=lo,hi``, ``--choice key=a,b,c`` -> :class:`Dist` s (syntax only)."""
    out: list[Dist] = []
    for kind, items in (("uniform", uniform), ("loguniform", loguniform), ("choice", choice)):
        for item in items:
            key, eq, text = item.partition("=")
            key = key.strip()
            parts = key.split(".")
            flag = f"--{kind} {item!r}"
            example = "algorithm.inner_lr=0.001,0.1" if kind != "choice" else "model.activation=relu,tanh"
            if not eq or len(parts) != 2 or not all(parts):
                raise ConfigError(f"{flag}: expected section.key={'lo,hi' if kind != 'choice' else 'a,b,...'}, "
                                  f"e.g. {example}")
            if key == "run.seed":
                raise ConfigError(f"{flag}: seeds come from --seeds N (run.seed, run.seed + 1, ...)")
            texts = split_values(text)
            if any(t == "" for t in texts):
                raise ConfigError(f"{flag}: empty value")
            values = [parse_literal(t) for t in texts]
            if kind == "choice":
                if len(set(map(repr, values))) != len(values):
                    raise ConfigError(f"{flag}: a value is repeated")
            else:
                if len(values) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                               and math.isfinite(v) for v in values):
                    raise ConfigError(f"{flag}: expected two numbers lo,hi")
                lo, hi = values
                if not lo < hi:
                    raise ConfigError(f"{flag}: lo = {lo!r} is not below hi = {hi!r}")
                if kind == "loguniform" and lo <= 0:
                    raise ConfigError(f"{flag}: lo = {lo!r}: a log-uniform range must be above 0")
            out.append(Dist(key, kind, values))
    return out


@dataclass
class SweepPlan:
    """A whole sweep: the preset, the grid and searched keys, seeds, samples, search and scheduler.

    The number of trials is ``samples x grid points x seeds``; with ``search = "random"`` each sample's
    values are drawn once and kept for all its grid points and seeds (Tune's ``constant_grid_search``), so
    that every group of seeds shares its values; with ``"optuna"`` Optuna's TPE proposes each trial from the
    results so far (one seed per trial; grid keys become categorical choices).  ``trials``: the planned
    trials of a plain grid (no searched key), None when Tune draws them."""
    raw: dict
    source: str
    preset_ref: str
    grid: list[tuple[str, list]]  # key -> the grid's values (TOML literals, parsed)
    dists: list[Dist]
    seeds: list[int]
    samples: int = 1
    search: str = "random"
    scheduler: str = "none"
    metric: str = "loss"  # the family's held-out metric ("mse", "accuracy", "return")
    iterations: int = 0
    eval_interval: int = 0
    max_concurrent: int = 0  # 0: as many as the cluster's CPUs (GPUs) allow
    trials: list[Trial] | None = None
    # a resumed sweep's search for the samples not drawn yet: the samples drawn before it (its draws start
    # from another random state, its samples are numbered after them) and the whole sweep's trial count
    drawn: int = 0
    sweep_total: int = 0
    sample_ids: dict = field(default_factory=dict)  # a resumed sweep's trials: index -> the sample they are of

    @property
    def total(self) -> int:
        return len(self.trials) if self.trials is not None else (
            self.samples * len(self.seeds) * math.prod(len(v) for _, v in self.grid))

    @property
    def keys(self) -> list[str]:
        return [k for k, _ in self.grid] + [d.key for d in self.dists]

    @property
    def mode(self) -> str:
        from workbench.core.losses import higher_is_better

        return "max" if higher_is_better(self.metric) else "min"

    def width(self) -> int:
        return len(str(max(0, (self.sweep_total or self.total) - 1)))

    @property
    def per_sample(self) -> int:
        """Trials of one sample: its grid points x seeds (one with Optuna)."""
        return 1 if self.search == "optuna" else len(self.seeds) * math.prod(len(v) for _, v in self.grid)

    def trial(self, index: int, values: dict[str, Any], seed: int) -> Trial:
        """Trial ``index`` with ``values`` (key -> value) and ``seed``, resolved and validated."""
        if self.trials is not None:
            return self.trials[index]
        data = _copy(self.raw)
        for key, value in values.items():
            section, name = key.split(".", 1)
            data.setdefault(section, {})[name] = value
        where = self.source + "".join(f" {k}={format_value(v)}" for k, v in values.items())
        config, threads, gpus = _resolve(data, seed, where)
        name = safe_run_name(f"{index:0{self.width()}d}-seed{seed}" + "".join(
            f"-{k.split('.', 1)[1]}{format_value(v)}" for k, v in values.items()))
        return Trial(index, name, seed, dict(values), config, threads, gpus, self.preset_ref)

    def param_space(self) -> dict:
        """Ray Tune's ``param_space``: {"index": ...} for planned trials, else {"seed": ..., "values": {...}}."""
        from ray import tune

        if self.trials is not None:
            return {"index": tune.grid_search([t.index for t in self.trials])}
        values: dict[str, Any] = {}
        for key, vals in self.grid:
            values[key_of(key)] = tune.grid_search(vals) if self.search == "random" else tune.choice(vals)
        for d in self.dists:
            values[key_of(d.key)] = d.tune_domain()
        space: dict[str, Any] = {"values": values}
        space["seed"] = tune.grid_search(self.seeds) if len(self.seeds) > 1 else self.seeds[0]
        return space

    def values_of(self, config: dict) -> tuple[dict[str, Any], int]:
        """A Tune trial's config -> (key -> value in the plan's key order, seed)."""
        got = config.get("values", {})
        return {k: _plain(got[key_of(k)]) for k in self.keys}, int(config["seed"])

    def to_dict(self) -> dict:
        return {"raw": self.raw, "source": self.source, "preset_ref": self.preset_ref,
                "grid": [[k, v] for k, v in self.grid], "dists": [dataclasses.asdict(d) for d in self.dists],
                "seeds": self.seeds, "samples": self.samples, "search": self.search, "scheduler": self.scheduler,
                "metric": self.metric, "iterations": self.iterations, "eval_interval": self.eval_interval,
                "max_concurrent": self.max_concurrent,
                "trials": None if self.trials is None else [dataclasses.asdict(t) for t in self.trials]}

    @classmethod
    def from_dict(cls, d: dict) -> "SweepPlan":
        d = dict(d)
        d["grid"] = [(k, v) for k, v in d["grid"]]
        d["dists"] = [Dist(**x) for x in d["dists"]]
        if d.get("trials") is not None:
            d["trials"] = [Trial(**t) for t in d["trials"]]
        return cls(**d)


def planned_trials(plan: SweepPlan) -> list[Trial]:
    """The plan's trials as known before it runs: a plain grid's, or one placeholder per trial the search
    will draw (name "", no values; the trial's events carry the drawn one)."""
    if plan.trials is not None:
        return list(plan.trials)
    return [Trial(i, "", 0, {}, plan.raw) for i in range(plan.total)]


def key_of(key: str) -> str:
    """A preset key as a key of a Tune config: "algorithm.inner_lr" -> "algorithm__inner_lr" (Tune and its
    searchers read "/" in keys as nesting, and some read dots)."""
    return key.replace(".", "__")


def _plain(v):
    """Numpy scalars (what Tune's domains draw) -> Python numbers, so that configs and JSON stay plain."""
    if hasattr(v, "item") and not isinstance(v, (list, dict, str)):
        return v.item()
    return v


def _resolve(data: dict, seed: int, where: str) -> tuple[dict, int, int]:
    """A trial's raw config with its seed -> (validated config dict, CPUs, GPUs)."""
    data = _copy(data)
    data.setdefault("run", {})["seed"] = seed
    config = ExperimentConfig.from_dict(data, where=where)
    _check_device_name(config.run.device, where)
    threads = config.run.threads or 1
    config.run.threads = threads
    gpus = 1 if config.run.device.strip().lower().startswith("cuda") else 0
    return config.to_dict(), threads, gpus


def plan_search(preset: str | Path | ExperimentConfig | dict, seeds: int = 1, grid: list[str] = (),
                base_overrides: list[str] = (), uniform: list[str] = (), loguniform: list[str] = (),
                choice: list[str] = (), samples: int = 1, search: str = "random", scheduler: str = "none",
                max_concurrent: int = 0) -> SweepPlan:
    """A sweep with searched keys, a search algorithm and a scheduler; refuses bad input before Ray starts.

    Without searched keys and with the random search (the default), the plan's ``trials`` are
    :func:`plan_sweep`'s cross product.  Each searched key is checked at both ends of its range (every
    value of a choice) against the preset, so that a key the preset does not have or a value out of its
    range is a :class:`ConfigError` naming the flag.  Raises ConfigError for an unknown ``search`` or
    ``scheduler``, ``samples`` < 1, more than :data:`MAX_TRIALS` trials, or ``seeds`` > 1 with Optuna."""
    if search not in SEARCHES:
        raise ConfigError(f"--search {search}: expected one of {', '.join(SEARCHES)}")
    if scheduler not in SCHEDULERS:
        raise ConfigError(f"--scheduler {scheduler}: expected one of {', '.join(SCHEDULERS)}")
    if isinstance(samples, bool) or not isinstance(samples, int) or not 1 <= samples <= MAX_TRIALS:
        raise ConfigError(f"--samples {samples}: expected 1 to {MAX_TRIALS}")
    if isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int) or max_concurrent < 0:
        raise ConfigError(f"--max-concurrent {max_concurrent}: expected 0 (as many as fit) or more")
    dists = parse_dists(uniform, loguniform, choice)
    if samples > 1 and not dists:
        raise ConfigError(f"--samples {samples}: nothing to sample; give --uniform, --loguniform or --choice")
    planned = plan_sweep(preset, seeds, grid, base_overrides)  # checks the preset, seeds and grid
    parsed = [(k, [parse_literal(t) for t in texts]) for k, texts in parse_grid(list(grid))]
    first = planned[0]
    raw = _copy(first.config)  # every grid key and the seed are set again per trial
    if search == "optuna" and seeds > 1:
        raise ConfigError(f"--seeds {seeds} with --search optuna: Optuna proposes every trial from the results "
                          "so far; repeat seeds with --search random")
    if search == "optuna" and not (dists or parsed):
        raise ConfigError("--search optuna: nothing to search; give --uniform, --loguniform, --choice or --grid")
    taken = {k for k, _ in parsed}
    source = _source_of(preset)
    for d in dists:
        if d.key in taken:
            raise ConfigError(f"{d.describe()}: {d.key} is already searched or in the grid")
        taken.add(d.key)
        section, name = d.key.split(".", 1)
        if not isinstance(raw.get(section), dict):
            raise ConfigError(f"{d.describe()}: the preset has no [{section}] section")
        points = [t for t in planned if t.seed == planned[0].seed]  # every grid point
        for v in d.values:  # both ends of a range, every value of a choice, at every grid point
            for t in points:
                data = _copy(t.config)
                data[section][name] = v
                try:
                    ExperimentConfig.from_dict(data, where=source)
                except ConfigError as e:
                    at = "".join(f" with {k}={format_value(x)}" for k, x in t.values.items())
                    raise ConfigError(f"{d.describe()}{at}: {e}") from None
    total = samples * seeds * math.prod(len(v) for _, v in parsed)
    if total > MAX_TRIALS:
        raise ConfigError(f"--samples {samples}: {total} trials; at most {MAX_TRIALS} in one sweep")
    from workbench.core.registry import FAMILIES

    family = FAMILIES.get(first.config["task"]["family"])
    run = first.config["run"]
    seed_list = [t.seed for t in planned[:seeds]]
    fixed = planned if not dists and search == "random" and samples == 1 else None
    # the raw config of the trials: the preset with its overrides, the seed and grid values set per trial
    return SweepPlan(raw, source, first.preset, parsed, dists, seed_list, samples, search, scheduler,
                     family.metric, int(run["iterations"]), int(run.get("eval_interval") or 0), max_concurrent,
                     fixed)


def _source_of(preset) -> str:
    if isinstance(preset, (ExperimentConfig, dict)):
        raw = preset.to_dict() if isinstance(preset, ExperimentConfig) else preset
        meta = raw.get("meta")
        name = meta.get("name") if isinstance(meta, dict) else None
        return f"config {name!r}" if isinstance(name, str) and name else "config"
    return str(preset)


# -- results ------------------------------------------------------------------------------------------
@dataclass
class TrialEvent:
    """What a sweep's callback receives, on the thread that called :func:`run_sweep`."""
    trial: Trial
    status: str  # queued | running | retrying | finished | stopped | stopped early | failed | cancelled
    iteration: int = 0
    total: int = 0
    metric: str | None = None  # held-out metric name ("mse", "return") of ``value``
    value: float | None = None  # the latest held-out metric after adaptation
    message: str = ""
    attempt: int = 1


@dataclass
class TrialResult:
    trial: Trial
    status: str  # finished | stopped | stopped early | failed | cancelled
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
    """A Ray actor: trials take their index here, report progress to it, ship runs from other nodes
    through it, and read the stop flag from it; the driver drains it."""

    def __init__(self, assigned: dict[str, int], next_index: int):
        self.events: list[dict] = []
        self.stop_flag = False
        self.released = False  # the experiment is ending: parked trials may return
        self.attempts: dict[int, int] = {}
        self.assigned = dict(assigned)  # Tune trial id -> the sweep's trial index
        self.next_index = next_index
        self.archives: dict[int, bytes] = {}

    def assign(self, trial_id: str, index: int | None = None) -> int:
        if trial_id not in self.assigned:
            self.assigned[trial_id] = self.next_index if index is None else index
            self.next_index = max(self.next_index, self.assigned[trial_id] + 1)
        return self.assigned[trial_id]

    def report(self, event: dict) -> bool:
        if event.get("kind") == "start":
            self.attempts[event["index"]] = self.attempts.get(event["index"], 0) + 1
            event["attempt"] = self.attempts[event["index"]]
        self.events.append(event)
        return self.stop_flag

    def ship(self, index: int, archive: bytes) -> None:
        self.archives[index] = archive

    def drain(self) -> tuple[list[dict], dict[int, bytes], dict[str, int]]:
        out, self.events = self.events, []
        archives, self.archives = self.archives, {}
        return out, archives, dict(self.assigned)

    def stop(self) -> None:
        self.stop_flag = True

    def stopping(self) -> bool:
        return self.stop_flag

    def release(self) -> None:
        self.released = True

    def is_released(self) -> bool:
        return self.released


class _Reporter:
    """Trainer callback in the worker: each evaluation to Ray Tune (the scheduler's input) and to the hub,
    progress to the hub every REPORT_EVERY seconds, and the hub's stop flag back to the trainer."""

    def __init__(self, hub, index: int):
        self.hub, self.index = hub, index
        self.trainer = None
        self.last = 0.0
        self.metric = self.value = None
        self.replies: list = []
        self.stop_requested = False  # the sweep is being stopped (Ctrl-C, the dialog's Stop)
        self.stopped_early = False  # the scheduler stopped this trial

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
            last = self.trainer is not None and event.iteration >= self.trainer.config.run.iterations
            if not (self.stop_requested or self.stopped_early or last):  # the last one comes with the ending
                self.tune_report({"iteration": event.iteration, "after": self.value, "before": float(event.before),
                                  "wb_done": 0})
        elif isinstance(event, ev.IterationMetrics):
            now = time.monotonic()
            if now - self.last >= REPORT_EVERY:
                self.last = now
                self.send(kind="progress", iteration=event.iteration, metric=self.metric, value=self.value)

    def tune_report(self, metrics: dict) -> None:
        from ray import tune

        try:
            tune.report(metrics)
        except SystemExit:  # Tune stops this trial (the scheduler's decision): end the run with a checkpoint
            self.stopped_early = True
            self.send(kind="stopped early")
            if self.trainer is not None:
                self.trainer.stop()


def _reply(future) -> bool:
    try:
        return bool(future.result())
    except Exception:  # noqa: BLE001 - the hub is gone (the driver ended): nothing to obey
        return False


def _sample_of(plan: SweepPlan, trial_id: str, config: dict) -> int | None:
    """The sample a Tune trial belongs to: Tune numbers the trials of its variant generator in the order it
    draws them (``<prefix>_00005``), a sample's grid points and seeds one after another."""
    if plan.trials is not None:
        index = int(config["index"])
        return plan.sample_ids.get(index, index // max(1, plan.per_sample))
    try:
        return plan.drawn + int(trial_id.rsplit("_", 1)[-1]) // max(1, plan.per_sample)
    except ValueError:  # a searcher's own ids (Optuna): one trial per sample, numbered by the hub
        return None


def _park(hub) -> None:
    """A trial stopped by the sweep's stop waits here until the driver ends the experiment, so that Tune starts
    no queued trial in its place; then it returns, and Tune's own clean-up of its actor is immediate (a trial
    still inside its function would be killed only after Tune's grace of some 15 s).  Its run folder says
    "stopped" and ``--resume`` goes on from its checkpoint; Tune's record of it is not used."""
    while True:
        try:  # a future, not ray.get: a task blocked in ray.get lends its CPU to the next queued trial
            if hub.is_released.remote().future().result(timeout=10):
                return
        except Exception:  # noqa: BLE001 - the hub is gone: the sweep has ended
            return
        time.sleep(0.1)


def _trial_fn(config: dict, plan: SweepPlan, runs_dir: str, sweep_id: str, hub, driver_node: str | None) -> None:
    """One trial, as a Ray Tune function trainable in a Ray worker process."""
    import ray
    from ray import tune

    from workbench.core.storage import atomic_write_text

    from .trainer import Trainer

    t0 = time.monotonic()
    trial_id = tune.get_context().get_trial_id()
    if plan.trials is not None:
        index = ray.get(hub.assign.remote(trial_id, int(config["index"])))
        trial = next(t for t in plan.trials if t.index == index)
    else:
        index = ray.get(hub.assign.remote(trial_id))
        values, seed = plan.values_of(config)
        try:
            trial = plan.trial(index, values, seed)
        except ConfigError as e:  # drawn values that clash (min above max): this trial fails, not the sweep
            hub.report.remote({"index": index, "kind": "error", "message": str(e)})
            raise
    reporter = _Reporter(hub, index)
    run_name = f"{sweep_id}-{trial.name}"
    sample = _sample_of(plan, trial_id, config)
    reporter.send(kind="start", iteration=0, total=int(trial.config["run"]["iterations"]),
                  trial=dataclasses.asdict(trial))
    if ray.get(hub.stopping.remote()):  # the sweep is being stopped: do not begin
        _park(hub)
        return
    node = ray.get_runtime_context().get_node_id()
    shipped = driver_node is None or node != driver_node
    root = Path(tempfile.mkdtemp(prefix="workbench-trial-")) if shipped else Path(runs_dir)
    run_dir = root / run_name
    data = _copy(trial.config)
    device = str(data["run"].get("device", "auto")).strip().lower()
    if device.startswith("cuda"):
        data["run"]["device"] = "cuda"  # Ray makes the trial's GPU the only visible one
    elif device == "auto" and not trial.num_gpus:
        data["run"]["device"] = "cpu"  # no GPU was reserved for this trial: keep off the others'
    config_ = ExperimentConfig.from_dict(data, where=f"sweep trial {trial.name}")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / SWEEP_FILE, json.dumps({
            "sweep_id": sweep_id, "trial": trial.name, "values": trial.values, "seed": trial.seed,
            "index": trial.index, "preset": trial.preset, "sample": sample}, indent=1))
        trainer = None
        if (run_dir / CONFIG).is_file():  # a retry, or a resumed sweep: go on from its checkpoint (if any)
            try:
                trainer = Trainer.from_run_dir(run_dir, [reporter],
                                               overrides=[f"run.device={json.dumps(data['run']['device'])}"])
            except WorkbenchError:  # an unreadable checkpoint: start afresh, removing only the run's own files
                for p in run_dir.iterdir():
                    if p.name != SWEEP_FILE and is_run_file(p.name) and p.is_file() and not p.is_symlink():
                        p.unlink()
        if trainer is None:
            trainer = Trainer(config_, run_dir, [reporter])
        reporter.trainer = trainer
        if reporter.stop_requested:
            trainer.stop()
        reporter.send(kind="progress", iteration=trainer.iteration)
        finished = trainer.run()
    except BaseException as e:  # noqa: BLE001 - recorded, then re-raised for Tune's retry
        reporter.send(kind="error", message=_one_line(e))
        if run_dir.is_dir() and (run_dir / CONFIG).exists():
            update_status(run_dir, status="failed", message=_one_line(e))
        raise
    if reporter.stop_requested and finished.status == "stopped":
        reporter.send(kind="parked", iteration=finished.iteration)
        _park(hub)
        return
    e = trainer.last_eval
    out = {"status": finished.status, "iteration": finished.iteration, "total": config_.run.iterations,
           "message": finished.message, "bundle": finished.bundle_path or "", "node": node,
           "run_dir": "" if shipped else str(run_dir), "seconds": time.monotonic() - t0,
           "metric": e.metric if e is not None else "", "before": e.before if e is not None else math.nan,
           "after": e.after if e is not None else math.nan, "higher_is_better": bool(e and e.higher_is_better)}
    if shipped:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            tar.add(run_dir, arcname=run_name)
        ray.get(hub.ship.remote(index, buf.getvalue()))
        shutil.rmtree(root, ignore_errors=True)
    if reporter.stopped_early:
        return
    reporter.tune_report({**out, "iteration": finished.iteration, "wb_done": 1})


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
SWEEPS_DIR = ".sweeps"  # in the runs folder: each sweep's plan (plan.json) and Ray Tune's own files
PLAN_FILE = "plan.json"


def sweep_dir(runs_dir: str | Path, sweep_id: str) -> Path:
    """Where a sweep keeps its plan and Ray Tune's experiment files (hidden from the Runs panel)."""
    return Path(runs_dir) / SWEEPS_DIR / sweep_id


def new_sweep_id(trials: list[Trial] | SweepPlan, runs_dir: Path) -> str:
    if isinstance(trials, SweepPlan):
        name = safe_run_name(trials.raw.get("meta", {}).get("name", "sweep")) if trials.trials is None else None
        trials = trials.trials or []
    else:
        name = None
    name = name or (safe_run_name(trials[0].config.get("meta", {}).get("name", "sweep")) if trials else "sweep")
    base = f"{name}-sweep-{timestamp()}"
    sweep_id, n = base, 1
    while runs_dir.is_dir() and (any(p.name.startswith(sweep_id + "-") for p in runs_dir.iterdir())
                                 or sweep_dir(runs_dir, sweep_id).exists()):
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


def plan_of(trials: list[Trial] | SweepPlan) -> SweepPlan:
    """A list of planned trials (:func:`plan_sweep`) as a :class:`SweepPlan` (a plain grid, no scheduler)."""
    if isinstance(trials, SweepPlan):
        return trials
    trials = list(trials)
    if not trials:
        raise ConfigError("a sweep needs at least one trial")
    from workbench.core.registry import FAMILIES

    first = trials[0].config
    keys = list(trials[0].values)
    grid = [(k, list(dict.fromkeys(_hashable(t.values[k]) for t in trials))) for k in keys]
    grid = [(k, [list(v) if isinstance(v, tuple) else v for v in vals]) for k, vals in grid]
    seeds = sorted({t.seed for t in trials})
    return SweepPlan(_copy(first), "config", trials[0].preset, grid, [], seeds, 1, "random", "none",
                     FAMILIES.get(first["task"]["family"]).metric, int(first["run"]["iterations"]),
                     int(first["run"].get("eval_interval") or 0), 0, trials)


class _Watch:
    """The driver's view of Tune's trials: each one's last result and final state (filled on the thread
    that runs the experiment, through :meth:`callback`)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.last: dict[str, dict] = {}  # Tune trial id -> its last result
        self.state: dict[str, str] = {}  # Tune trial id -> PENDING / RUNNING / TERMINATED / ERROR / PAUSED
        self.errors: dict[str, str] = {}

    def callback(self):
        """A Tune callback that fills this watch (Tune pickles its callbacks with the experiment: the
        callback names the watch by a key instead of holding it)."""
        from ray import tune

        global _WatchCallback
        if _WatchCallback is None:
            class _WatchCallback(tune.Callback):  # noqa: N801 - defined once, on first use (Tune is optional)
                def __init__(self, key: int):
                    self.key = key

                def on_trial_result(self, iteration, trials, trial, result, **info):
                    watch = _WATCHES[self.key]
                    with watch.lock:
                        watch.last[trial.trial_id] = dict(result)

                def on_trial_error(self, iteration, trials, trial, **info):
                    watch = _WATCHES[self.key]
                    with watch.lock:
                        watch.errors[trial.trial_id] = _tune_error(trial)

                def on_experiment_end(self, trials, **info):
                    watch = _WATCHES[self.key]
                    with watch.lock:
                        for t in trials:
                            watch.state[t.trial_id] = t.status
                            if t.status == "ERROR" and t.trial_id not in watch.errors:
                                watch.errors[t.trial_id] = _tune_error(t)

            _WatchCallback.__qualname__ = "_WatchCallback"
        _WATCHES[id(self)] = self
        return _WatchCallback(id(self))


_WatchCallback = None
_WATCHES: dict[int, _Watch] = {}


def _tune_error(trial) -> str:
    try:
        error = trial.get_error()
    except Exception:  # noqa: BLE001 - Tune's internals: the error file may be missing
        error = None
    return _one_line(error) if isinstance(error, BaseException) else "the trial's worker failed"


class _Interrupt:
    """Ends a Tune experiment as Ctrl-C does (its state saved, unfinished trials left unfinished) from any
    thread: Tune's own hook for that is the event its SIGINT handler sets, made here and handed to it."""

    def __init__(self):
        self.event = threading.Event()

    @contextlib.contextmanager
    def installed(self):
        from ray.tune import tune as tune_module

        original = getattr(tune_module, "_setup_signal_catching", None)
        if original is None:  # Tune without the hook: a stop ends running trials as terminated instead
            yield False
            return
        tune_module._setup_signal_catching = lambda: self.event
        try:
            yield True
        finally:
            tune_module._setup_signal_catching = original


def _known_trials(runs_dir: Path, sweep_id: str) -> dict[int, tuple[Path, dict]]:
    """The trials of sweep ``sweep_id`` that have a run in ``runs_dir``: index -> (run dir, sweep.json)."""
    out: dict[int, tuple[Path, dict]] = {}
    if not runs_dir.is_dir():
        return out
    for p in runs_dir.iterdir():
        if not p.name.startswith(sweep_id + "-") or not (p / SWEEP_FILE).is_file():
            continue
        try:
            info = json.loads((p / SWEEP_FILE).read_text())
        except (OSError, ValueError):
            continue
        if info.get("sweep_id") == sweep_id and isinstance(info.get("index"), int):
            out[info["index"]] = (p, info)
    return out


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


def connect(address: str) -> None:
    """Connect this process to the Ray cluster at ``address`` (``host:port``, ``auto``, ``ray://host:port``)
    as a sweep does (its workers run this package's code), within :func:`connect_timeout` seconds; an
    address that does not answer as Ray does is a :class:`ConfigError` naming it."""
    ray = require_ray()
    check_address(address)
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    timeout = connect_timeout()
    _wait_for_abandoned(time.monotonic() + timeout, address)
    pkg = Path(__file__).resolve().parents[1]
    kwargs = dict(address=address, include_dashboard=False, log_to_driver=True, logging_level=logging.ERROR,
                  runtime_env={"py_modules": [str(pkg)], "excludes": ["__pycache__"]})
    _connect(ray, address, kwargs, timeout, None, None)


def _exit_on_sigterm(signum, frame):
    sys.exit(signum)


def _stopped_before_start(trials: list[Trial], sweep_id: str, runs_dir: Path, emit, t_start: float,
                          grid_keys: list[str]) -> SweepResult:
    """The result of a sweep stopped while it connected to Ray: every trial cancelled, no run made."""
    results = []
    for t in trials:
        total = int(t.config["run"]["iterations"])
        r = TrialResult(t, "cancelled", total=total, message="the sweep was stopped before it connected to Ray")
        results.append(r)
        emit(TrialEvent(t, "cancelled", total=total, message=r.message))
    return SweepResult(sweep_id, str(runs_dir), grid_keys, results, group_results(results), True,
                       time.monotonic() - t_start, None)


def load_plan(runs_dir: str | Path, sweep_id: str) -> SweepPlan:
    """The plan of sweep ``sweep_id`` in ``runs_dir`` (what ``--resume`` reads); ConfigError naming the file."""
    path = sweep_dir(Path(runs_dir).expanduser().resolve(), sweep_id) / PLAN_FILE
    if safe_run_name(sweep_id) != sweep_id or not path.is_file():
        raise ConfigError(f"--resume {sweep_id}: no sweep of that id in {Path(runs_dir)} (no {path})")
    try:
        return SweepPlan.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise ConfigError(f"{path}: not a sweep plan this version reads ({_one_line(e)})") from None


def _phases(plan: SweepPlan, known: dict[int, tuple[Path, dict]], first_new: int) -> tuple[list[SweepPlan], list]:
    """What is left of ``plan`` given the trials that already have a run (a resumed sweep).

    Returns the phases to run — the trials to run as they are (unfinished ones, and the missing seeds and
    grid points of samples already drawn), then a search for the samples not drawn yet — and the finished
    trials kept as they are."""
    kept, todo = [], []
    trials: dict[int, Trial] = {}
    samples_of: dict[int, int | None] = {}
    for index, (run_dir, info) in sorted(known.items()):
        if plan.trials is not None:
            t = next((x for x in plan.trials if x.index == index), None)
            if t is None:
                continue
        else:
            values = {k: info["values"][k] for k in plan.keys if k in info.get("values", {})}
            if len(values) != len(plan.keys):
                continue
            t = plan.trial(index, values, int(info["seed"]))
        trials[index] = t
        # ended for good (finished, stopped early by the scheduler, failed): kept; stopped or killed: resumed
        done = read_status(run_dir).get("status") in ("finished", "stopped early", "failed")
        (kept if done else todo).append(t)
        samples_of[index] = info.get("sample")
    fresh = not known
    if plan.trials is not None:
        todo += [t for t in plan.trials if t.index not in trials]
        return ([dataclasses.replace(plan, trials=sorted(todo, key=lambda t: t.index))] if todo else []), kept
    if fresh:
        return [plan], kept
    nxt = max([first_new, *(i + 1 for i in trials)])
    remaining = plan.total - len(trials)
    if plan.search == "random":
        dist_keys = [d.key for d in plan.dists]
        samples: dict[tuple, list[Trial]] = {}
        for t in trials.values():
            sample = samples_of.get(t.index)
            key = ("sample", sample) if isinstance(sample, int) else tuple(_hashable(t.values[k]) for k in dist_keys)
            samples.setdefault(key, []).append(t)
        combos = [dict(zip([k for k, _ in plan.grid], c)) for c in itertools.product(*(v for _, v in plan.grid))]
        for members in samples.values():
            have = {(tuple(_hashable(m.values[k]) for k, _ in plan.grid), m.seed) for m in members}
            for combo in combos:
                for seed in plan.seeds:
                    if (tuple(_hashable(v) for v in combo.values()), seed) not in have:
                        values = {**combo, **{k: members[0].values[k] for k in dist_keys}}
                        todo.append(plan.trial(nxt, {k: values[k] for k in plan.keys}, seed))
                        if isinstance(samples_of.get(members[0].index), int):
                            samples_of[nxt] = samples_of[members[0].index]
                        nxt += 1
        left = plan.samples - len(samples)
    else:
        left = remaining
    drawn = plan.samples - left if plan.search == "random" else len(trials)
    ids = {t.index: samples_of[t.index] for t in todo if isinstance(samples_of.get(t.index), int)}
    phases = [dataclasses.replace(plan, trials=todo, sweep_total=plan.total, sample_ids=ids)] if todo else []
    if left > 0:
        phases.append(dataclasses.replace(plan, samples=left, drawn=drawn, sweep_total=plan.total))
    return phases, kept


def run_sweep(trials: list[Trial] | SweepPlan | None, runs_dir: str | Path, address: str | None = None,
              num_cpus: int | None = None, callback: Callable[[TrialEvent], None] | None = None,
              max_retries: int = 1, sweep_id: str | None = None, stop_event: threading.Event | None = None,
              grace: float = 30.0, gpus_per_trial: float | None = None, force_event: threading.Event | None = None,
              log_to_driver: bool = False, _ship: bool | None = None, resume: str | None = None) -> SweepResult:
    """Run a sweep on Ray Tune and wait for it; see the module docstring.

    ``trials``: :func:`plan_sweep`'s trials or :func:`plan_search`'s plan (None with ``resume``).
    ``address``: None starts a local Ray on this machine (``num_cpus`` of its cores, default all), else
    the address of an existing cluster (``host:port``, ``auto``, ``ray://host:port``).  When Ray is
    already initialised in this process, that instance is used and left running.  ``callback`` gets
    :class:`TrialEvent` s as trials start, progress and end.  ``stop_event``: set it (from any thread)
    to stop the sweep as Ctrl-C does; ``force_event``: set it to end the trials now, as a second Ctrl-C
    does (their runs are marked stopped, without a final checkpoint).  ``gpus_per_trial`` overrides the
    trials' own GPU need (e.g. 0.25 to share a GPU between four small trials).  ``log_to_driver``: print
    what the trials' workers write in this process.  ``resume``: the id of an interrupted sweep in
    ``runs_dir`` to finish: its finished trials are kept, the others go on from their checkpoints, and
    the trials it had not begun are run.

    Connecting to ``address`` takes at most :func:`connect_timeout` seconds (else a :class:`ConfigError`
    naming the address); ``stop_event`` set meanwhile ends the sweep at once with every trial cancelled.
    """
    ray = require_ray()
    try:
        from ray import tune
    except ImportError:
        raise RayMissing(RAY_MISSING) from None
    runs_dir = Path(runs_dir).expanduser().resolve()
    if max_retries < 0:
        raise ConfigError(f"max_retries {max_retries}: expected 0 or more")
    if num_cpus is not None and address is not None:
        raise ConfigError("num_cpus applies to a local Ray only; a cluster has its own")
    if num_cpus is not None and num_cpus < 1:
        raise ConfigError(f"num_cpus {num_cpus}: expected at least 1")
    if resume is not None:
        plan = load_plan(runs_dir, resume)
        sweep_id = resume
    else:
        plan = plan_of(trials)
        sweep_id = sweep_id or new_sweep_id(plan, runs_dir)
    known = _known_trials(runs_dir, sweep_id)
    phases, kept = _phases(plan, known, 0)
    emit = callback or (lambda event: None)
    t_start = time.monotonic()
    started_here = False
    check_address(address)
    timeout = connect_timeout() if address is not None else 0.0
    _wait_for_abandoned(time.monotonic() + (timeout or CONNECT_TIMEOUT), address)
    interrupt = _Interrupt()
    listed = [t for ph in phases if ph.trials is not None for t in ph.trials]
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's progress boxes: the sweep reports its own
    if not ray.is_initialized():
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        os.environ["RAY_CHDIR_TO_TRIAL_DIR"] = "0"  # trials keep the driver's working directory
        os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # our runs log themselves
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
            kwargs.update(address=address, runtime_env={
                "py_modules": [str(pkg)], "excludes": ["__pycache__"],
                "env_vars": {"RAY_CHDIR_TO_TRIAL_DIR": "0", "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1"}})
            if not _connect(ray, address, kwargs, timeout, stop_event, force_event):
                return _stopped_before_start(listed, sweep_id, runs_dir, emit, t_start, plan.keys)
        started_here = True
    state: dict[int, TrialEvent] = {}
    by_index: dict[int, Trial] = {t.index: t for t in kept}
    parked: set[int] = set()
    early: set[int] = set()  # trials that heard the scheduler stop them
    errors: dict[int, str] = {}  # trial index -> its worker's last error (one line)
    announced: set[int] = set()  # trials whose ending the callback has been told
    assigned: dict[str, int] = {}
    first_running: list[float] = []
    interrupted = forced = False
    stop_deadline: float | None = None
    watch = _Watch()
    hub = None
    tune_log = logging.getLogger("ray.tune")
    tune_level = tune_log.level
    tune_log.setLevel(logging.ERROR)  # Tune's notes on files it did not write (our runs are the record)
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
        sdir = sweep_dir(runs_dir, sweep_id)
        sdir.mkdir(parents=True, exist_ok=True)
        if resume is None:
            from workbench.core.storage import atomic_write_text

            atomic_write_text(sdir / PLAN_FILE, json.dumps(plan.to_dict(), indent=1))
        client = address is not None and address.startswith("ray://")
        on_driver = None if client else ray.get_runtime_context().get_node_id()
        driver_node = on_driver if _ship is None else (None if _ship else ray.get_runtime_context().get_node_id())
        if listed:
            _check_resources(ray, listed, gpus_per_trial)
        elif phases:
            _check_resources(ray, [plan.trial(0, {k: _first_value(plan, k) for k in plan.keys}, plan.seeds[0])],
                             gpus_per_trial)
        first_new = max([*(i + 1 for i in known), 0])
        hub = ray.remote(num_cpus=0)(_Hub).remote({}, first_new)
        for t in kept:
            r = _kept_result(t, runs_dir / f"{sweep_id}-{t.name}")
            state[t.index] = TrialEvent(t, "finished", r.iteration, r.total, r.metric, r.after)
        for t in listed:
            state[t.index] = TrialEvent(t, "queued", total=int(t.config["run"]["iterations"]))
            by_index[t.index] = t
            emit(state[t.index])

        def drain() -> None:
            events, archives, amap = ray.get(hub.drain.remote())
            assigned.update(amap)
            for e in events:
                index = e["index"]
                if e["kind"] == "start":
                    t = Trial(**e["trial"])
                    by_index.setdefault(index, t)
                    t = by_index[index]
                    status = "running" if e["attempt"] == 1 else "retrying"
                    if not first_running:
                        first_running.append(time.monotonic())
                    prev = state.get(index)
                    ev_ = TrialEvent(t, status, e.get("iteration", 0), e.get("total", 0),
                                     prev.metric if prev else None, prev.value if prev else None, attempt=e["attempt"])
                elif index in state:
                    prev = state[index]
                    if e["kind"] == "parked":
                        parked.add(index)
                    elif e["kind"] == "stopped early":
                        early.add(index)
                    elif e["kind"] == "error":
                        errors[index] = e["message"]
                    ev_ = TrialEvent(prev.trial, prev.status, e.get("iteration", prev.iteration), prev.total,
                                     e.get("metric") or prev.metric,
                                     e.get("value") if e.get("value") is not None else prev.value,
                                     attempt=prev.attempt)
                else:
                    continue
                state[index] = ev_
                emit(ev_)
            for index, archive in archives.items():
                with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
                    tar.extractall(runs_dir, filter="data")

        def announce() -> None:
            """Tell the callback of each trial that ended since the last call (finished, or stopped early)."""
            with watch.lock:
                done = {tid: dict(r) for tid, r in watch.last.items() if r.get("wb_done")}
            for tid, r in done.items():
                index = assigned.get(tid)
                if index is None or index in announced or index not in state:
                    continue
                prev = state[index]
                after = r.get("after")
                after = None if after is None or (isinstance(after, float) and math.isnan(after)) else float(after)
                state[index] = TrialEvent(prev.trial, str(r.get("status") or "finished"), int(r.get("iteration") or 0),
                                          prev.total, r.get("metric") or prev.metric, after,
                                          str(r.get("message") or ""), prev.attempt)
                announced.add(index)
                emit(state[index])
            for index in early - announced:
                prev = state[index]
                state[index] = TrialEvent(prev.trial, "stopped early", prev.iteration, prev.total, prev.metric,
                                          prev.value, _early_message(prev.iteration, prev.metric, prev.value),
                                          prev.attempt)
                announced.add(index)
                emit(state[index])

        def running() -> set[int]:
            with watch.lock:
                done = {assigned[tid] for tid, r in watch.last.items() if r.get("wb_done") and tid in assigned}
                done |= {assigned[tid] for tid in watch.errors if tid in assigned}
            return {i for i, ev_ in state.items() if ev_.status in ("running", "retrying")} - done - parked

        released = False

        def end_experiment() -> None:
            nonlocal released
            interrupt.event.set()  # first: Tune starts no queued trial in place of one released now
            if hub is not None and not released:
                released = True
                hub.stop.remote()  # (forced: a running trial still stops at its next report, if it can)
                hub.release.remote()

        def request_stop() -> None:
            nonlocal stop_deadline, interrupted
            interrupted = True
            if stop_deadline is None:
                ray.get(hub.stop.remote())
                stop_deadline = time.monotonic() + grace

        for phase in phases:
            search_alg, scheduler = _search_and_scheduler(phase, tune)
            trainable = tune.with_parameters(_trial_fn, plan=phase, runs_dir=str(runs_dir), sweep_id=sweep_id,
                                             hub=hub, driver_node=driver_node)
            trainable = tune.with_resources(trainable, _resources_for(phase, gpus_per_trial))
            tuner = tune.Tuner(
                trainable, param_space=phase.param_space(),
                tune_config=tune.TuneConfig(metric="after", mode=phase.mode, search_alg=search_alg,
                                            # a trial that ended runs the next in its process (no new worker
                                            # to start); not under a scheduler: reusing the actor of a trial
                                            # that ASHA stopped hung the sweep (tests/test_sweep.py's ASHA test)
                                            reuse_actors=scheduler is None,
                                            scheduler=scheduler, num_samples=1 if phase.trials is not None
                                            else phase.samples),
                run_config=tune.RunConfig(name=f"tune-{len(list(sdir.glob('tune-*')))}", storage_path=str(sdir),
                                          failure_config=tune.FailureConfig(max_failures=max_retries), verbose=0,
                                          callbacks=[watch.callback()]))
            failure: list[BaseException] = []

            def fit() -> None:
                try:
                    tuner.fit()
                except BaseException as e:  # noqa: BLE001 - handed to the driver's thread
                    failure.append(e)

            with interrupt.installed() as hooked:
                if not hooked:
                    raise ConfigError("this Ray Tune has no way to interrupt an experiment that the workbench knows; "
                                      "pip install 'ray[tune]>=2.9'")
                thread = threading.Thread(target=fit, name="workbench-sweep-tune", daemon=True)
                thread.start()
                while thread.is_alive():
                    try:
                        if force_event is not None and force_event.is_set():
                            interrupted = forced = True
                            end_experiment()
                        if stop_event is not None and stop_event.is_set():
                            request_stop()
                        if stop_deadline is not None and (time.monotonic() > stop_deadline or not running()):
                            end_experiment()
                        drain()
                        announce()
                        thread.join(0.2)
                    except KeyboardInterrupt:
                        if stop_deadline is None:
                            request_stop()
                        else:  # a second Ctrl-C: do not wait for the clean stop
                            forced = True
                            end_experiment()
            drain()
            announce()
            if failure:
                raise ConfigError(f"Ray Tune failed: {_one_line(failure[0])}")
            if interrupted:
                break
    finally:
        tune_log.setLevel(tune_level)
        _WATCHES.pop(id(watch), None)
        if hub is not None:
            try:
                ray.kill(hub)  # (a Ray the caller started outlives the sweep: leave no actor of ours in it)
            except Exception:  # noqa: BLE001 - Ray is already shutting down
                pass
        if started_here:
            for _ in range(2):  # once more if a Ctrl-C cut the first one short
                try:
                    ray.shutdown()
                    break
                except BaseException:  # noqa: BLE001 - shutting down after an interrupt must not mask it
                    pass
    results = _results(plan, sweep_id, runs_dir, state, by_index, watch, assigned, interrupted, forced, emit, early, errors, announced)
    return SweepResult(sweep_id, str(runs_dir), plan.keys, results, group_results(results), interrupted,
                       time.monotonic() - t_start, (first_running[0] - t_start) if first_running else None)


def _first_value(plan: SweepPlan, key: str):
    for k, vals in plan.grid:
        if k == key:
            return vals[0]
    d = next(d for d in plan.dists if d.key == key)
    return d.values[0]


def _resources_for(plan: SweepPlan, gpus_per_trial: float | None):
    def resources(config: dict) -> dict:
        if plan.trials is not None:
            t = next(x for x in plan.trials if x.index == int(config["index"]))
        else:
            values, seed = plan.values_of(config)
            try:
                t = plan.trial(0, values, seed)
            except ConfigError:  # the trial itself says so and fails
                return {"cpu": 1, "gpu": 0 if gpus_per_trial is None else gpus_per_trial}
        return {"cpu": t.num_cpus, "gpu": t.num_gpus if gpus_per_trial is None else gpus_per_trial}
    return resources


def _search_and_scheduler(plan: SweepPlan, tune):
    """The plan's Tune search algorithm (random / grid variants, or Optuna's TPE) and scheduler (ASHA)."""
    from ray.tune.search import BasicVariantGenerator

    seed = (plan.seeds[0] + 7919 * plan.drawn) % 2**32  # a resumed search draws anew, not its first samples again
    if plan.trials is None and plan.search == "optuna":
        try:
            from ray.tune.search.optuna import OptunaSearch
        except ImportError:
            raise ConfigError("--search optuna needs Optuna: pip install optuna") from None
        search = OptunaSearch(metric="after", mode=plan.mode, seed=seed)
        if plan.max_concurrent:
            from ray.tune.search import ConcurrencyLimiter

            search = ConcurrencyLimiter(search, max_concurrent=plan.max_concurrent)
    else:
        search = BasicVariantGenerator(constant_grid_search=True, random_state=seed, max_concurrent=plan.max_concurrent)
    scheduler = None
    if plan.scheduler == "asha":
        from ray.tune.schedulers import ASHAScheduler

        grace = max(1, min(plan.eval_interval or 1, plan.iterations))
        scheduler = ASHAScheduler(time_attr="iteration", max_t=max(plan.iterations, grace), grace_period=grace,
                                  reduction_factor=ASHA_REDUCTION)
    return search, scheduler


ASHA_REDUCTION = 2  # ASHA keeps the best 1/2 of the trials at each rung (Tune's default, 4, suits larger sweeps)


def _kept_result(t: Trial, run_dir: Path) -> TrialResult:
    status = read_status(run_dir)
    last = status.get("last_eval") or {}
    from workbench.core.losses import higher_is_better

    metric = last.get("metric")
    return TrialResult(t, "finished", str(run_dir), int(status.get("iteration") or 0),
                       int(t.config["run"]["iterations"]), metric, last.get("before"), last.get("after"),
                       bool(metric and higher_is_better(metric)), status.get("bundle"),
                       "finished before the sweep was resumed")


def _results(plan, sweep_id, runs_dir, state, by_index, watch, assigned, interrupted, forced, emit,
             early, errors, announced) -> list[TrialResult]:
    """Every trial's result, from what its trainable reported, Tune's final state and its run folder."""
    from workbench.core.losses import higher_is_better

    by_tid = {index: tid for tid, index in assigned.items()}
    out: list[TrialResult] = []
    for index in sorted(state):
        t, ev_ = by_index[index], state[index]
        run_dir = runs_dir / f"{sweep_id}-{t.name}"
        total = int(t.config["run"]["iterations"])
        if ev_.status == "finished" and ev_.trial is t and index not in by_tid:  # kept from before a resume
            r = _kept_result(t, run_dir)
            out.append(r)
            continue
        tid = by_tid.get(index)
        with watch.lock:
            last = dict(watch.last.get(tid, {})) if tid else {}
            tstate = watch.state.get(tid, "PENDING") if tid else "PENDING"
            error = watch.errors.get(tid) if tid else None
        iteration = int(last.get("iteration") or ev_.iteration or 0)
        metric = last.get("metric") or ev_.metric
        after = last.get("after", ev_.value)
        after = None if after is None or (isinstance(after, float) and math.isnan(after)) else float(after)
        before = last.get("before")
        before = None if before is None or (isinstance(before, float) and math.isnan(before)) else float(before)
        hib = bool(metric) and higher_is_better(metric)
        bundle = last.get("bundle") or None
        if last.get("wb_done"):
            status, message = str(last.get("status") or "finished"), str(last.get("message") or "")
            if bundle and not Path(bundle).is_file():  # written on another node: it came back with the run
                bundle = str(run_dir / Path(bundle).name)
                if read_status(run_dir).get("bundle"):
                    update_status(run_dir, bundle=bundle)
        elif error is not None and tstate == "ERROR":
            status, message = "failed", errors.get(index, error)
        elif index in early or (tstate == "TERMINATED" and not interrupted):  # ended by the scheduler
            status, message = "stopped early", _early_message(iteration, metric, after)
        elif ev_.status == "queued" or not run_dir.is_dir():  # stopped before it began: no run, no checkpoint
            status, message = "cancelled", "the sweep was stopped before this trial started"
        else:
            status = "stopped"
            message = ("cancelled by force: the sweep was cancelled" if forced else
                       f"the sweep was stopped; 'workbench sweep --resume {sweep_id}' goes on from its checkpoint")
        if run_dir.is_dir():
            current = read_status(run_dir).get("status")
            if status == "stopped early" or (status in ("stopped", "failed") and current in ("running", None)):
                update_status(run_dir, status=status, message=message, iteration=iteration)
        r = TrialResult(t, status, str(run_dir) if run_dir.is_dir() else None, iteration, total, metric, before,
                        after, hib, bundle, message, float(last.get("seconds") or 0.0), ev_.attempt,
                        str(last.get("node") or ""))
        out.append(r)
        if index not in announced:
            emit(TrialEvent(t, status, iteration, total, metric, after, message, ev_.attempt))
    return out


def _early_message(iteration: int, metric: str | None, after: float | None) -> str:
    shown = "n/a" if after is None else f"{after:.4g}"
    return (f"stopped early by ASHA at iteration {iteration}: held-out {metric or 'metric'} {shown} after adaptation "
            f"was not among the best 1/{ASHA_REDUCTION} at that point")
