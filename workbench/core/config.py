"""Typed configuration: the single source of every hyperparameter.

Each section is a dataclass whose fields carry their default, allowed range and help text in the
field metadata (see :func:`param`).  Presets are TOML files that map onto these dataclasses; the CLI's
``--set section.key=value`` overrides and, later, the GUI forms are generated from the same metadata.

Layout of a preset::

    [meta]       name, description, source (where the setup comes from)
    [task]       family = "<registered family>" + that family's parameters
    [algorithm]  name = "<registered algorithm>" + that algorithm's hyperparameters
    [model]      network architecture
    [run]        iterations, seed, device, evaluation and checkpoint cadence
"""
from __future__ import annotations

import dataclasses
import difflib
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError


def param(default: Any, help: str, *, low: float | None = None, high: float | None = None,
          choices: tuple | None = None, low_inclusive: bool = True) -> Any:
    """A config field with its range and help text kept next to its default."""
    meta = {"help": help, "low": low, "high": high, "choices": choices, "low_inclusive": low_inclusive}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


def choices_of(f: dataclasses.Field) -> tuple | None:
    """The allowed values of a field: its ``choices`` (a tuple, or a callable giving one, for a registry
    whose names are known only once the plug-ins are loaded), or None."""
    c = f.metadata.get("choices")
    return tuple(c()) if callable(c) else c


def describe_range(f: dataclasses.Field) -> str:
    m = f.metadata
    if choices_of(f):
        return "one of " + ", ".join(repr(c) for c in choices_of(f))
    lo, hi = m.get("low"), m.get("high")
    if lo is None and hi is None:
        return "any value"
    left = "[" if m.get("low_inclusive", True) else "("
    return f"{left}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"


@dataclass
class MetaInfo:
    name: str = param("untitled", "Short name of the preset.")
    description: str = param("", "One line saying what this setup is.")
    source: str = param("", "Where the setup comes from (paper, repository, config file).")


def _model_names() -> tuple[str, ...]:
    from .registry import MODELS

    return tuple(MODELS.names())


@dataclass
class ModelConfig:
    """The network: a registered one (``name``) or a user's ``torch.nn.Module`` (``module``, ``kwargs``)."""
    name: str = param("mlp", "Network from the model registry (ignored when 'module' is set).",
                      choices=_model_names)
    hidden: list[int] = param([40, 40], "Hidden layer widths of the MLP.", low=1, high=4096)
    activation: str = param("relu", "Hidden-layer nonlinearity of the MLP.", choices=("relu", "tanh"))
    channels: int = param(64, "Filters of each convolution of conv4.", low=1, high=1024)
    downsample: str = param("maxpool", "How conv4 halves its feature maps: 2×2 max-pooling after each block "
                                       "(Vinyals et al.) or stride-2 convolutions (the MAML paper's Omniglot "
                                       "network, ~4× less compute).", choices=("maxpool", "stride"))
    module: str = param("", "Your own torch.nn.Module as 'package.module:ClassName' (imported when the run "
                            "starts); empty: the registered network 'name'.")
    kwargs: dict = param({}, "Keyword arguments of the module's constructor, e.g. { width = 32 }.")
    head: str = param("", "Submodule that is the head (ANIL adapts only it); empty: the last layer with "
                          "parameters.")


@dataclass
class RunConfig:
    iterations: int = param(1000, "Number of meta-iterations (outer steps).", low=0, high=10_000_000)
    seed: int = param(0, "Seed for initialisation and training-task sampling.", low=0, high=2**63 - 1)
    device: str = param("auto", "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'.")
    eval_interval: int = param(200, "Evaluate on the held-out tasks every N iterations.", low=1, high=10_000_000)
    eval_tasks: int = param(100, "Number of held-out evaluation tasks.", low=1, high=100_000)
    eval_steps: int = param(10, "Inner steps of the held-out adaptation curve (0..S).", low=0, high=1000)
    eval_seed: int = param(2**31 - 1, "Seed of the fixed held-out task set (never used for training).",
                           low=0, high=2**63 - 1)
    render_tasks: int = param(4, "Held-out tasks included in each render payload.", low=0, high=64)
    checkpoint_interval: int = param(1000, "Write a checkpoint every N iterations.", low=1, high=10_000_000)
    threads: int = param(0, "Torch CPU threads (0: all cores but one, at least 1).", low=0, high=1024)
    sampler_workers: int = param(0, "CPU threads that step an RL meta-batch's simulations in parallel (MuJoCo "
                                 "families; tensor-stepped families ignore it). 0: automatic, as many as the "
                                 "torch threads; 1: serial. Results are identical for any value.", low=0, high=256)


LRSchedule = typing.Union[float, list[float]]
"""The type of a per-step learning rate: one number for every inner step, or a schedule ``[α_0, α_1, ...]``
whose entry min(k, len − 1) is the rate of inner step k (the MAML paper's tests used [0.5, 0.25])."""


def lr_at(schedule: "float | list[float]", step: int) -> float:
    """The learning rate of inner step ``step`` (0-based) under ``schedule`` (a float, or a list of floats
    whose last entry repeats)."""
    if isinstance(schedule, (list, tuple)):
        return float(schedule[min(step, len(schedule) - 1)])
    return float(schedule)


def is_schedule_type(tp) -> bool:
    """Whether a field's type is :data:`LRSchedule` (a float or a list of floats)."""
    return typing.get_origin(tp) in (typing.Union, types.UnionType) and set(typing.get_args(tp)) == {float,
                                                                                                      list[float]}


def fields_of(cls_or_obj) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls_or_obj)}


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is list:
        return f"list of {typing.get_args(tp)[0].__name__}"
    return getattr(tp, "__name__", str(tp))


def coerce_value(cls, key: str, value: Any, where: str) -> Any:
    """Check ``value`` against the type and range of field ``key`` of dataclass ``cls``."""
    f = fields_of(cls)[key]
    hints = typing.get_type_hints(cls)
    tp = hints[key]
    origin = typing.get_origin(tp)

    def bad(reason: str) -> ConfigError:
        return ConfigError(f"{where}: {key} = {value!r}: {reason}")

    if is_schedule_type(tp):  # a number, or a non-empty list of numbers (one per inner step, the last repeats)
        items = value if isinstance(value, list) else [value]
        if not items or len(items) > 1000:
            raise bad("expected a number or a list of 1 to 1000 numbers, e.g. [0.5, 0.25]")
        out = []
        for v in items:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or v in (float("inf"), float("-inf")):
                raise bad(f"expected a number or a list of finite numbers, e.g. [0.5, 0.25], found {v!r}")
            out.append(_check_range(f, float(v), bad))
        return out if isinstance(value, list) else out[0]
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise bad(f"expected a list of {item_tp.__name__}")
        out = []
        for v in value:
            if item_tp is int and (isinstance(v, bool) or not isinstance(v, int)):
                raise bad(f"expected a list of int, found {v!r}")
            out.append(_check_range(f, v, bad))
        return out
    if tp is dict:
        if not isinstance(value, dict):
            raise bad("expected a table, e.g. { width = 32 }")
        if not _json_like(value):
            raise bad("expected strings, numbers, booleans, lists and tables only (no dates or times)")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise bad("expected true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise bad("expected an integer")
        return _check_range(f, value, bad)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("expected a number")
        value = float(value)
        if value != value or value in (float("inf"), float("-inf")):
            raise bad("expected a finite number")
        return _check_range(f, value, bad)
    if tp is str:
        if not isinstance(value, str):
            raise bad("expected a string")
        choices = choices_of(f)
        if choices and value not in choices:
            raise bad("expected " + describe_range(f) + _suggest(value, choices))
        return value
    raise bad(f"unsupported field type {tp}")


def _json_like(value) -> bool:
    """Whether ``value`` holds only what JSON stores (a bundle records it): no TOML dates or times."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_like(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_json_like(v) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


def _check_range(f: dataclasses.Field, v, bad):
    lo, hi = f.metadata.get("low"), f.metadata.get("high")
    inclusive = f.metadata.get("low_inclusive", True)
    if lo is not None and (v < lo or (not inclusive and v == lo)):
        raise bad(f"out of range, allowed {describe_range(f)}")
    if hi is not None and v > hi:
        raise bad(f"out of range, allowed {describe_range(f)}")
    return v


def _suggest(word: str, options) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def build_section(cls, values: dict, where: str, skip: tuple[str, ...] = ()):
    """Instantiate dataclass ``cls`` from a TOML table, validating every key."""
    known = fields_of(cls)
    kwargs = {}
    for key, value in values.items():
        if key in skip:
            continue
        if key not in known:
            raise ConfigError(f"{where}: unknown key {key!r}{_suggest(key, list(known) + list(skip))}; "
                              f"known keys: {', '.join(sorted(known))}")
        kwargs[key] = coerce_value(cls, key, value, where)
    obj = cls(**kwargs)
    if hasattr(obj, "validate"):
        obj.validate(where)
    return obj


@dataclass
class ExperimentConfig:
    """A whole experiment: what a preset describes."""
    meta: MetaInfo
    family: str
    task: Any
    algorithm_name: str
    algorithm: Any
    model: ModelConfig
    run: RunConfig
    source_path: str = field(default="", compare=False)  # the preset file it was read from ("" : built in code)
    overrides: list = field(default_factory=list, compare=False)  # the --set items applied to it when read

    SECTIONS = ("meta", "task", "algorithm", "model", "run")

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict, where: str = "config") -> "ExperimentConfig":
        from .registry import ALGORITHMS, FAMILIES, family_availability

        for section in data:
            if section not in cls.SECTIONS:
                raise ConfigError(f"{where}: unknown section [{section}]{_suggest(section, cls.SECTIONS)}; "
                                  f"sections: {', '.join(cls.SECTIONS)}")
            if not isinstance(data[section], dict):
                raise ConfigError(f"{where}: {section} must be a table ([{section}])")
        task_tbl = data.get("task", {})
        algo_tbl = data.get("algorithm", {})
        if "family" not in task_tbl:
            raise ConfigError(f"{where}: [task] needs a 'family' key; families: {', '.join(FAMILIES.names())}")
        if "name" not in algo_tbl:
            raise ConfigError(f"{where}: [algorithm] needs a 'name' key; algorithms: "
                              f"{', '.join(ALGORITHMS.names())}")
        family_cls = FAMILIES.get(task_tbl["family"], where=f"{where}: [task] family")
        algo_cls = ALGORITHMS.get(algo_tbl["name"], where=f"{where}: [algorithm] name")
        ok, reason = family_availability(family_cls)
        if not ok:
            raise ConfigError(f"{where}: task family {family_cls.name!r} is not available here: {reason}")
        if family_cls.name not in algo_cls.families:
            raise ConfigError(f"{where}: algorithm {algo_cls.name!r} does not support family {family_cls.name!r}; "
                              f"it supports: {', '.join(algo_cls.families)}")
        return cls(
            meta=build_section(MetaInfo, data.get("meta", {}), f"{where}: [meta]"),
            family=family_cls.name,
            task=build_section(family_cls.Config, task_tbl, f"{where}: [task]", skip=("family",)),
            algorithm_name=algo_cls.name,
            algorithm=build_section(algo_cls.Config, algo_tbl, f"{where}: [algorithm]", skip=("name",)),
            model=build_section(ModelConfig, data.get("model", {}), f"{where}: [model]"),
            run=build_section(RunConfig, data.get("run", {}), f"{where}: [run]"),
        )

    @classmethod
    def load(cls, path: str | Path, overrides: list[str] = ()) -> "ExperimentConfig":
        path = Path(path)
        data = read_toml(path)
        if overrides:
            import copy

            plain = copy.deepcopy(data)
            for item in overrides:
                apply_override(data, item)
            try:
                config = cls.from_dict(data, where=str(path))
            except ConfigError:
                cls.from_dict(plain, where=str(path))  # the file's own mistake is named as the file's
                culprits = []  # else the overrides': those that fail on the file alone, or all of them
                for item in overrides:
                    alone = copy.deepcopy(plain)
                    apply_override(alone, item)
                    try:
                        cls.from_dict(alone, where="")
                    except ConfigError:
                        culprits.append(item)
                where = "--set " + " ".join(culprits or overrides)
                config = cls.from_dict(data, where=where if len(where) <= 120 else "--set")
        else:
            config = cls.from_dict(data, where=str(path))
        config.source_path = str(path)
        config.overrides = list(overrides)
        return config

    def to_dict(self) -> dict:
        return {
            "meta": dataclasses.asdict(self.meta),
            "task": {"family": self.family, **dataclasses.asdict(self.task)},
            "algorithm": {"name": self.algorithm_name, **dataclasses.asdict(self.algorithm)},
            "model": dataclasses.asdict(self.model),
            "run": dataclasses.asdict(self.run),
        }

    def to_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(self.to_dict())

    def replace(self, overrides: list[str]) -> "ExperimentConfig":
        data = self.to_dict()
        for item in overrides:
            apply_override(data, item)
        config = ExperimentConfig.from_dict(data, where="overrides")
        config.source_path = self.source_path
        return config

    def where(self, section: str) -> str:
        """How a one-line error names a section of this config: ``"presets/x.toml: [model]"``, with the
        ``--set`` overrides of that section when it has some (``"presets/x.toml with --set model.name=conv4:
        [model]"``): a value found bad when the run is built may have come from either."""
        mine = [o for o in self.overrides if o.partition(".")[0].strip() == section]
        source = self.source_path + (f" with --set {' '.join(mine)}" if mine else "") if self.source_path else ""
        return f"{source}: [{section}]" if source else f"[{section}]"


def read_toml(path: Path) -> dict:
    from .storage import UnreadableFile, read_regular_bytes

    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, expected a TOML preset")
    try:  # a regular file of bounded size: a FIFO or a device never blocks or reads without end
        raw = read_regular_bytes(path)
    except UnreadableFile as e:
        raise ConfigError(f"{path}: {e}") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror})") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (invalid UTF-8)") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: malformed TOML: {e}") from None


def inline_toml(value: Any) -> str:
    """``value`` (a table, list, string, number or boolean) as a TOML inline value, e.g. ``{ width = 32 }``."""
    import json
    import re

    if isinstance(value, dict):
        keys = [k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k) for k in value]
        return "{ " + ", ".join(f"{k} = {inline_toml(v)}" for k, v in zip(keys, value.values())) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(inline_toml(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def parse_literal(text: str) -> Any:
    """Parse the value of a ``--set`` override as a TOML value (bare words are strings)."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_override(data: dict, item: str) -> None:
    """Apply ``section.key=value`` to a raw preset dict (validated later, with everything else)."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected section.key=value")
    path, _, text = item.partition("=")
    parts = path.strip().split(".")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"--set {item!r}: expected section.key=value, e.g. algorithm.inner_lr=0.01")
    section, key = parts
    if section not in ExperimentConfig.SECTIONS:
        raise ConfigError(f"--set {item!r}: unknown section {section!r}"
                          f"{_suggest(section, ExperimentConfig.SECTIONS)}")
    data.setdefault(section, {})[key] = parse_literal(text.strip())
