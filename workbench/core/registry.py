"""Registries of task families, algorithms and networks: adding one is adding a file and a decorator."""
from __future__ import annotations

import difflib
from typing import Generic, TypeVar

from .errors import ConfigError
from .family import check_family

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, check=None):
        self.kind = kind
        self._check = check  # raises TypeError when a class does not meet the registry's contract
        self._items: dict[str, type[T]] = {}

    def register(self, cls: type[T]) -> type[T]:
        name = cls.name
        if self._check is not None:
            self._check(cls)
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} registered twice")
        self._items[name] = cls
        return cls

    def get(self, name: str, where: str = "") -> type[T]:
        _load_builtins()
        prefix = f"{where}: " if where else ""
        if not isinstance(name, str):
            raise ConfigError(f"{prefix}{self.kind} must be a string, got {name!r}; known: {', '.join(self.names())}")
        if name not in self._items:
            close = difflib.get_close_matches(str(name), list(self._items), n=1, cutoff=0.5)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{prefix}unknown {self.kind} {name!r}{hint}; known: {', '.join(self.names())}")
        return self._items[name]

    def names(self) -> list[str]:
        _load_builtins()
        return list(self._items)

    def items(self):
        _load_builtins()
        return list(self._items.items())


class FamiliesOfKind:
    """The names of every registered family of some kinds ("rl"; "regression", "classification"), looked up
    when asked, so an algorithm that works on any RL family supports the ones added later without a list to
    maintain."""

    def __init__(self, *kinds: str):
        self.kinds = kinds

    def _names(self) -> list[str]:
        return [name for name, cls in FAMILIES.items() if cls.kind in self.kinds]

    def __contains__(self, name) -> bool:
        return name in self._names()

    def __iter__(self):
        return iter(self._names())

    def __repr__(self) -> str:
        return f"FamiliesOfKind{self.kinds!r}"


FAMILIES: Registry = Registry("task family", check=check_family)  # the contract: workbench.core.family


def family_availability(cls) -> tuple[bool, str]:
    """(True, "") or (False, why): a family that needs an optional dependency (MuJoCo, EGL) says so through
    a classmethod ``available() -> (bool, reason)``."""
    check = getattr(cls, "available", None)
    if check is None:
        return True, ""
    ok, reason = check()
    return bool(ok), str(reason or "")
ALGORITHMS: Registry = Registry("algorithm")
MODELS: Registry = Registry("model")  # networks a preset's [model] name can pick (workbench.models.zoo)

PLUGIN_GROUP = "workbench.plugins"  # entry points: a callable that registers families and algorithms
BUILTIN_PLUGIN = "workbench.plugins:register_builtins"  # when the distribution's metadata is not installed
_loaded = False


def _load_builtins() -> None:
    """Load the plug-ins once, when a registry is first asked: every ``workbench.plugins`` entry point of
    the installed distributions (the built-ins are one, see :mod:`workbench.plugins`).  The registry itself
    imports no family and no algorithm, so they can import it without an import cycle.  A plug-in that
    fails to load is skipped with a warning naming it (the built-ins' errors are raised)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    import importlib
    import warnings
    from importlib.metadata import entry_points

    found = {ep.value: ep for ep in entry_points(group=PLUGIN_GROUP)}
    if BUILTIN_PLUGIN not in found:  # a source tree on sys.path, not installed: the built-ins all the same
        module, _, attr = BUILTIN_PLUGIN.partition(":")
        getattr(importlib.import_module(module), attr)()
    for value, ep in found.items():
        try:
            ep.load()()
        except Exception as e:  # noqa: BLE001 - someone else's plug-in must not take the workbench down
            if value == BUILTIN_PLUGIN:
                raise
            warnings.warn(f"workbench plug-in {ep.name!r} ({value}) not loaded: {type(e).__name__}: {e}")
