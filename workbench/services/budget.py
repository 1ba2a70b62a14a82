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

import numpy as np

from workbench.core.errors import ConfigError

FLOAT = 4  # bytes per float32
KEEP = 3  # tensors kept per value for the backward pass (value, gradient, an intermediate)
RL_KEEP = 4  # an RL evaluation's peak over one step's rollout rows: measured about 3 (maml-trpo on navigation
#               and pendulum, 500-2000 held-out tasks: 3.4-6.7 GiB), with a margin


def physical_memory() -> int:
    """Bytes of memory this process may use: the machine's RAM, or its cgroup's limit (a container) when
    lower; $WORKBENCH_MEMORY_LIMIT (bytes) overrides both."""
    env = os.environ.get("WORKBENCH_MEMORY_LIMIT")
    if env:
        return int(float(env))
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: assume a large machine
        total = 1 << 40
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read(64).strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def max_network_weights() -> int:
    """The largest network (weights and biases) a run or a bundle may have here: its meta-parameters,
    gradient and two optimiser moments must fit in memory."""
    return physical_memory() // (FLOAT * 4)


def parameter_count(in_dim: int, hidden: list[int], out_dim: int) -> int:
    """Weights and biases of an MLP in_dim -> hidden... -> out_dim."""
    sizes = [int(in_dim), *map(int, hidden), int(out_dim)]
    return sum(a * b + b for a, b in zip(sizes, sizes[1:]))


def network_size(model, family) -> tuple[int, int]:
    """(weights, floats of one point's forward pass) of the network ``model`` (a ModelConfig) on ``family``.
    A user's module is not imported to be measured: its inputs and outputs are counted, not its layers."""
    shape = tuple(getattr(family, "in_shape", None) or (int(family.in_dim),))
    size_in, out_dim = 1, int(family.out_dim)
    for s in shape:
        size_in *= int(s)
    name, module = getattr(model, "name", "mlp"), getattr(model, "module", "")
    if module:
        return 0, size_in + out_dim
    if name == "conv4" and len(shape) == 3:
        c, h, w = (int(s) for s in shape)
        ch = int(model.channels)
        params, width, cin = 0, size_in + out_dim, c
        for _ in range(4):  # conv, batch norm (2 tensors kept), pool per block
            params += ch * cin * 9 + ch + 2 * ch
            width += 3 * ch * h * w + ch * (h // 2) * (w // 2)
            cin, h, w = ch, h // 2, w // 2
        return params + ch * h * w * out_dim + out_dim, width
    hidden = list(model.hidden)
    return parameter_count(size_in, hidden, out_dim), size_in + out_dim + sum(hidden)


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def estimate(config, family, eval_tasks: int | None = None, eval_steps: int | None = None) -> list[tuple[str, float]]:
    """[(what, bytes)] for the parts of a run that scale with its config: the network, a meta-batch, the
    held-out evaluation (``eval_tasks`` x ``eval_steps``; default the run's) and replay buffers.

    ``config`` needs ``task``, ``algorithm``, ``model`` and (without the two arguments) ``run``;
    a bundle's metadata gives the same (see bundle.py)."""
    task, algo = config.task, config.algorithm
    eval_tasks = int(config.run.eval_tasks if eval_tasks is None else eval_tasks)
    eval_steps = int(config.run.eval_steps if eval_steps is None else eval_steps)
    params, width = network_size(config.model, family)
    rl = family.kind == "rl"
    horizon = int(getattr(task, "horizon", getattr(task, "pulls", 1)))
    trajectories = int(getattr(algo, "trajectories", 1))
    episodes = int(getattr(algo, "episodes", 1))
    # inner steps inside a meta-step keep a graph per step; a baseline's are taken only at test time
    inner = int(getattr(algo, "inner_steps", 1) or 0) if getattr(algo, "trains_inner_steps", True) else 0

    eval_trajectories = int(getattr(algo, "eval_trajectories", 0) or trajectories)

    def rows(tasks: int, query: int, n_traj: int = trajectories) -> int:
        if rl:
            return tasks * max(n_traj, 1) * horizon * max(episodes, 1)
        # an N-way task has shots + query points per class
        return tasks * int(getattr(task, "ways", 1)) * (int(getattr(task, "shots", 1)) + query)

    meta_batch = int(getattr(algo, "meta_batch", 1))
    # convolutional networks run one task at a time (models/network.py): one task's activations are live;
    # but the pretrained baseline's joint classifier trains on every image of a meta-batch in one batch
    chunked = getattr(config.model, "name", "mlp") == "conv4" and not getattr(config.model, "module", "")
    train_chunked = chunked and getattr(algo, "trains_inner_steps", True)
    train_steps = inner + 1
    keep = RL_KEEP if rl else KEEP
    train_ways = int(getattr(algo, "train_ways", 0) or 0)  # ProtoNets' training episodes can have more ways
    if train_ways:
        ways = int(getattr(task, "ways", 1))
        train_rows = rows(meta_batch, int(getattr(task, "query", 1))) * train_ways // max(1, ways)
    else:
        train_rows = rows(meta_batch, int(getattr(task, "query", 1)))
    live = train_rows // meta_batch if train_chunked and meta_batch else train_rows
    train = (live * (width + 8 * rl) * train_steps * keep + meta_batch * params * train_steps * KEEP) * FLOAT
    tasks = eval_tasks * int(getattr(algo, "eval_trials", 1))
    if rl:  # a step's trajectories (observations, actions, log-probabilities, returns, masks) and the policy's
        #     activations over them, a few steps' worth at the peak
        evaluation = rows(tasks, 0, eval_trajectories) * (width + 8) * FLOAT * RL_KEEP
    elif chunked:  # no graph: the data of every task, one task's activations
        q = int(getattr(task, "eval_query", 1))
        size_in = int(np.prod(getattr(family, "in_shape", (1,))))
        evaluation = (rows(tasks, q) * (size_in + eval_steps + 1) + rows(1, q) * width + params * 2) * FLOAT
    else:  # no graph: the data and one step's activations of every task at once
        evaluation = (rows(tasks, int(getattr(task, "eval_query", 1))) * (width + eval_steps + 1)
                      + tasks * params * 2) * FLOAT
    network = params * FLOAT * 4  # the meta-parameters, their gradient and two optimiser moments
    parts = [("the network", network), ("a meta-batch", train), ("the held-out evaluation", evaluation)]
    if hasattr(algo, "buffer_size") and hasattr(algo, "train_tasks"):
        parts.append(("the replay buffers", replay_bytes(algo, family)))
    cache = getattr(family, "cache_bytes", None)
    if cache is not None:  # decoded or rendered images kept for the whole run
        parts.append(("the image cache", int(cache())))
    return parts


def replay_bytes(algo, family) -> int:
    """PEARL's per-task replay buffers: train_tasks x buffer_size transitions (obs, next obs, action,
    reward, done)."""
    act = family.n_actions if getattr(family, "discrete_actions", False) else int(getattr(family, "act_dim", 1))
    width = 2 * int(family.obs_dim) + act + 2
    return int(algo.train_tasks) * int(algo.buffer_size) * width * FLOAT


def check_memory(config, family, where: str = "", eval_tasks: int | None = None, eval_steps: int | None = None,
                 algorithm_section: str = "algorithm") -> None:
    """Raise :class:`ConfigError` when the run (or, with ``eval_tasks``, one evaluation of a bundle) would
    need more memory than the machine has.  The message names the part that is too large and the keys
    that size it, with their values (a bundle's metadata calls the algorithm's table ``algorithm_config``)."""
    limit = physical_memory()
    parts = estimate(config, family, eval_tasks, eval_steps)
    total = sum(b for _, b in parts)
    if total <= limit:
        return
    what, size = max(parts, key=lambda p: p[1])
    task, algo = config.task, config.algorithm
    model = config.model
    hidden = (("model.channels", model.channels) if getattr(model, "name", "mlp") == "conv4" and not
              getattr(model, "module", "") else ("model.hidden", list(model.hidden)))

    def of(section: str, obj, names) -> list:
        section = algorithm_section if section == "algorithm" else section
        return [(f"{section}.{k}", getattr(obj, k)) for k in names if hasattr(obj, k)]

    run_keys = ([("run.eval_tasks", config.run.eval_tasks), ("run.eval_steps", config.run.eval_steps)]
                if eval_tasks is None else [("tasks", eval_tasks), ("steps", eval_steps)])
    keys = {
        "the network": [hidden],
        "a meta-batch": of("algorithm", algo, ("meta_batch", "train_ways", "trajectories", "inner_steps"))
        + of("task", task, ("shots", "query", "horizon")) + [hidden],
        "the held-out evaluation": run_keys + of("algorithm", algo, ("trajectories", "eval_trajectories", "eval_trials"))
        + of("task", task, ("shots", "eval_query", "horizon")) + [hidden],
        "the replay buffers": of("algorithm", algo, ("train_tasks", "buffer_size")),
        "the image cache": of("task", task, ("background_classes", "evaluation_classes", "drawings", "size")),
    }[what]
    named = ", ".join(f"{k}={v}" for k, v in keys)
    raise ConfigError(f"{where + ': ' if where else ''}{named}: {what} alone needs about {_gib(size)} of memory (the run about "
                      f"{_gib(total)}), more than this machine's {_gib(limit)}; make these smaller")
