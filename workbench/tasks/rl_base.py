"""The interface of a reinforcement-learning task family: tasks are parameter rows, environments are
batched tensors over (task, trajectory), stepped together."""
from __future__ import annotations

import functools
import inspect
import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from workbench.core import seeding
from workbench.core.errors import ConfigError
from workbench.core.payloads import RenderPayload
from workbench.core.taskmap import MapParam


@dataclass
class RLTaskBatch:
    params: torch.Tensor  # (B, P): what defines each task (a goal, arm means, an MDP)

    def to(self, device) -> "RLTaskBatch":
        return RLTaskBatch(self.params.to(device))

    def __len__(self) -> int:
        return self.params.shape[0]

    def __getitem__(self, item) -> "RLTaskBatch":
        return RLTaskBatch(self.params[item])


@dataclass(frozen=True)
class TaskParam:
    """One hand-set task parameter of the playground: a number in [low, high] ("float"), or one of
    ``choices`` ("choice", e.g. a direction ±1; ``choice_labels`` name them)."""

    name: str  # as in the family's task_param_names
    label: str  # for the user, with its unit
    low: float
    high: float
    default: float
    kind: str = "float"  # "float" or "choice"
    choices: tuple[float, ...] = ()
    choice_labels: tuple[str, ...] = ()

    def describe_range(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(f"{c:g} ({n})" if n else f"{c:g}"
                                         for c, n in zip(self.choices, self.choice_labels or [""] * len(self.choices)))
        return f"[{self.low:g}, {self.high:g}]"


class BatchedEnv:
    """Environments of B tasks x N trajectories as tensors: reset(N, gen) -> obs (B, N, obs_dim);
    step(actions) -> obs, reward (B, N), done (B, N)."""

    horizon: int
    n_tasks: int

    def reset(self, n_traj: int, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def step(self, actions: torch.Tensor):
        raise NotImplementedError


def _accepts_workers(make_env) -> bool:
    """Whether a ``make_env`` function takes the ``workers`` keyword (by name or through ``**kwargs``)."""
    try:
        params = inspect.signature(make_env).parameters.values()
    except (TypeError, ValueError):
        return True  # not introspectable: leave it as it is
    return any(p.name == "workers" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


class RLFamily:
    name: ClassVar[str]
    title: ClassVar[str]
    Config: ClassVar[type]
    kind: ClassVar[str] = "rl"
    payload: ClassVar[type]  # the RenderPayload class render() gives (workbench.core.payloads)
    loss: ClassVar[str] = "return"
    metric: ClassVar[str] = "return"
    discrete_actions: ClassVar[bool] = False
    obs_dim: ClassVar[int] = 1
    act_dim: ClassVar[int] = 1
    n_actions: ClassVar[int] = 0
    task_param_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg):
        self.cfg = cfg

    @property
    def in_dim(self) -> int:
        return self.obs_dim

    @property
    def out_dim(self) -> int:
        return self.n_actions if self.discrete_actions else self.act_dim

    @property
    def action_scale(self) -> float:
        """Bound of continuous actions (|a| <= action_scale per dimension) for squashed policies."""
        return float(getattr(self.cfg, "max_action", 1.0))

    @property
    def horizon(self) -> int:
        return self.cfg.horizon

    # -- to implement --------------------------------------------------------------------------
    def sample_task_params(self, n: int, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def make_env(self, task_params: torch.Tensor, workers: int = 0) -> BatchedEnv:
        """The batched environment of the tasks ``task_params`` (B, P).

        ``workers`` is ``run.sampler_workers``: the CPU threads that may step the B x N simulations in
        parallel (0: automatic, as many as the torch threads; 1: serial).  A family that steps its
        environments as tensors (navigation, bandits, cartpole ...) is already parallel through torch and
        ignores it; one that steps a simulator per environment (MuJoCo) splits them over that many threads.
        The environment's results must not depend on it: the same seed gives the same episodes for any
        value."""
        raise NotImplementedError

    def __init_subclass__(cls, **kwargs):
        """A family whose own ``make_env(task_params)`` predates ``workers`` (a plug-in) still takes the
        keyword, and ignores it."""
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("make_env")
        if own is not None and not _accepts_workers(own):
            @functools.wraps(own)
            def make_env(self, task_params, workers: int = 0):
                return own(self, task_params)

            cls.make_env = make_env

    def render(self, task_params: torch.Tensor, episodes: list, steps: list[int], cancel=None) -> RenderPayload:
        """Payload for the rollout view from the episodes collected after 0..S adaptation steps.  ``cancel``
        (a threading.Event, or None) is for renders slow enough to check it as they go (MuJoCo frames)."""
        raise NotImplementedError

    def references(self, task_params: torch.Tensor, seed: int, pulls: int | None = None) -> dict[str, torch.Tensor]:
        """Per-task mean episode returns of non-learning reference methods (none by default)."""
        return {}

    # -- the playground ---------------------------------------------------------------------------
    playground_note: ClassVar[str] = "its tasks are random tables"  # why a family has no playground

    def playground_params(self) -> list[TaskParam] | None:
        """The task parameters a user may set by hand, in the order of a task row; None: no playground."""
        return None

    def playground_unavailable(self) -> str:
        return f"the {self.name} family has no playground: {self.playground_note}; use Open model… to evaluate it"

    def task_params_from(self, values: dict) -> torch.Tensor:
        """One task row (1, P) from the user's values (missing ones take their defaults); a value that is not
        a finite number in the family's range is a ConfigError naming the parameter, the value and the range."""
        params = self.playground_params()
        if params is None:
            raise ConfigError(self.playground_unavailable())
        known = {p.name for p in params}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{self.name}: unknown task parameter(s) {', '.join(unknown)}; known: "
                              f"{', '.join(p.name for p in params)}")
        row = []
        for p in params:
            raw = values.get(p.name, p.default)
            try:
                v = float(raw)
            except (TypeError, ValueError):
                raise ConfigError(f"{p.name} = {raw!r} is not a number") from None
            if not math.isfinite(v):
                raise ConfigError(f"{p.name} = {raw!r} is not a finite number")
            if p.kind == "choice":
                match = [c for c in p.choices if abs(c - v) < 1e-9]
                if not match:
                    raise ConfigError(f"{p.name} = {v:g} is not allowed in the {self.name} family: "
                                      f"{p.describe_range()}")
                v = match[0]
            else:
                tol = 1e-9 * max(1.0, abs(p.low), abs(p.high))
                if not p.low - tol <= v <= p.high + tol:
                    raise ConfigError(f"{p.name} = {v:g} is outside the {self.name} family's range "
                                      f"{p.describe_range()}")
                v = min(max(v, p.low), p.high)
            row.append(v)
        return torch.tensor([row], dtype=torch.get_default_dtype())

    # -- the task-space map ----------------------------------------------------------------------
    def map_params(self) -> list[MapParam]:
        """The task parameters a task-space map can lay a grid over (workbench.core.taskmap): the
        playground's numeric ones, each over its training range."""
        names = list(self.task_param_names)
        return [MapParam.of_range(p.name, p.label, p.low, p.high, names.index(p.name))
                for p in (self.playground_params() or []) if p.kind == "float" and p.name in names]

    # -- shared ------------------------------------------------------------------------------------
    def batch_of(self, rows: torch.Tensor, generator: torch.Generator | None = None) -> RLTaskBatch:
        """The tasks of parameter rows ``rows`` (B, P) (the policy collects its own trajectories)."""
        return RLTaskBatch(rows)

    def sample_batch(self, n: int, generator: torch.Generator) -> RLTaskBatch:
        return RLTaskBatch(self.sample_task_params(n, generator))

    def evaluation_batch(self, n: int, seed: int, shots=None, query=None, stream: str = seeding.HELD_OUT):
        return RLTaskBatch(self.sample_task_params(n, seeding.generator(stream, seed)))
