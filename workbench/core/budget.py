"""Memory a run will need, estimated from its config before anything is allocated.

A size inside every field's own range can still ask for more memory than the machine has: 100,000
held-out tasks of 100,000 query points each, a network of eight 4096-wide layers copied for every task
of a meta-batch.  Such a run would die minutes later with an out-of-memory error (or take the machine
down with it); :func:`check_memory` refuses it before the run starts, naming the keys and values that
make it too large.  The estimate is deliberately rough and generous (it counts the tensors every
algorithm keeps: the data, the per-task copies of the network's parameters and the activations of each
inner step), so that no run that fits is refused: only runs several times over the limit are.
"""
from __future__ import annotations

import os

from .errors import ConfigError

FLOAT = 4  # bytes per float32
KEEP = 3  # tensors kept per value for the backward pass (value, gradient, an intermediate)


def physical_memory() -> int:
    """Bytes of RAM of this machine ($WORKBENCH_MEMORY_LIMIT, in bytes, overrides it)."""
    env = os.environ.get("WORKBENCH_MEMORY_LIMIT")
    if env:
        return int(float(env))
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: assume a large machine
        return 1 << 40


def parameter_count(in_dim: int, hidden: list[int], out_dim: int) -> int:
    """Weights and biases of an MLP in_dim -> hidden... -> out_dim."""
    sizes = [int(in_dim), *map(int, hidden), int(out_dim)]
    return sum(a * b + b for a, b in zip(sizes, sizes[1:]))


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def estimate(config, family) -> list[tuple[str, float]]:
    """[(what, bytes)] for the parts of a run that scale with its config: training and evaluation."""
    task, algo, run, hidden = config.task, config.algorithm, config.run, list(config.model.hidden)
    in_dim, out_dim = int(family.in_dim), int(family.out_dim)
    params = parameter_count(in_dim, hidden, out_dim)
    width = in_dim + out_dim + sum(hidden)  # floats per row of one forward pass
    rl = getattr(family, "kind", "") != "regression"
    horizon = int(getattr(task, "horizon", getattr(task, "pulls", 1)))
    trajectories = int(getattr(algo, "trajectories", 1))
    episodes = int(getattr(algo, "episodes", 1))
    inner = int(getattr(algo, "inner_steps", 1) or 0)

    def rows(tasks: int, query: int) -> int:
        if rl:
            return tasks * max(trajectories, 1) * horizon * max(episodes, 1)
        return tasks * (int(getattr(task, "shots", 1)) + query)

    meta_batch = int(getattr(algo, "meta_batch", 1))
    train_steps = inner + 1
    train = (rows(meta_batch, int(getattr(task, "query", 1))) * width * train_steps
             + meta_batch * params * train_steps) * FLOAT * KEEP
    eval_steps = int(run.eval_steps) + 1 if not rl else min(int(run.eval_steps), 10) + 1
    tasks = int(run.eval_tasks) * int(getattr(algo, "eval_trials", 1))
    # the evaluation keeps no graph, but holds the data and one step's activations of every task at once
    evaluation = (rows(tasks, int(getattr(task, "eval_query", 1))) * (width + eval_steps)
                  + tasks * params * 2) * FLOAT
    network = params * FLOAT * 4  # the meta-parameters, their gradient and two optimiser moments
    return [("the network", network), ("a meta-batch", train), ("the held-out evaluation", evaluation)]


def check_memory(config, family, where: str = "") -> None:
    """Raise :class:`ConfigError` when the run would need more memory than the machine has.

    The message names the part that is too large and the keys that size it, with their values.
    """
    limit = physical_memory()
    parts = estimate(config, family)
    total = sum(b for _, b in parts)
    if total <= limit:
        return
    what, size = max(parts, key=lambda p: p[1])
    task, algo, run = config.task, config.algorithm, config.run
    keys = {
        "the network": [("model.hidden", list(config.model.hidden))],
        "a meta-batch": [(f"algorithm.{k}", getattr(algo, k)) for k in ("meta_batch", "trajectories", "inner_steps")
                         if hasattr(algo, k)] + [(f"task.{k}", getattr(task, k)) for k in ("shots", "query", "horizon")
                                                  if hasattr(task, k)] + [("model.hidden", list(config.model.hidden))],
        "the held-out evaluation": [("run.eval_tasks", run.eval_tasks), ("run.eval_steps", run.eval_steps)]
        + [(f"task.{k}", getattr(task, k)) for k in ("shots", "eval_query", "horizon") if hasattr(task, k)]
        + [("model.hidden", list(config.model.hidden))],
    }[what]
    named = ", ".join(f"{k}={v}" for k, v in keys)
    raise ConfigError(f"{where + ': ' if where else ''}{named}: {what} alone needs about {_gib(size)} of memory (the run about "
                      f"{_gib(total)}), more than this machine's {_gib(limit)}; make these smaller")
