"""The task-family contract, written down once: what every registered family declares.

A family is a class registered with ``@FAMILIES.register`` (see :mod:`workbench.core.registry`) whose
class attributes say what it is, checked when it registers (:func:`check_family`):

========================  ===============================================================================
``name``, ``title``       registry key and the label the app shows
``Config``                the dataclass of its ``[task]`` keys (defaults, ranges and help text)
``kind``                  ``"regression"`` / ``"classification"`` (supervised: support and query sets of
                          (x, y)) or ``"rl"`` (environments stepped by a policy); one of :data:`KINDS`
``loss``                  what the inner and outer loops minimise: ``"mse"`` or ``"cross_entropy"``
                          (supervised), ``"return"`` (RL: the policy-gradient surrogate of the return)
``metric``                what the held-out evaluation reports: ``"mse"``, ``"accuracy"``, ``"return"``
``task_param_names``      the columns of the task-parameter rows ``(B, P)`` it samples
``payload``               the :class:`~workbench.core.payloads.RenderPayload` subclass its ``render()``
                          returns (None: a supervised family without a rollout view)
========================  ===============================================================================

Supervised families also have ``in_shape`` (a point's input shape, e.g. ``(1,)`` or ``(1, 28, 28)``) and
``out_dim`` (outputs per point: targets' width, or the number of classes / ways), and give
:class:`~workbench.tasks.base.TaskBatch` es; RL families give batched environments
(:mod:`workbench.tasks.rl_base`).

Render payloads are typed per kind of view (:mod:`workbench.core.payloads`): dataclasses of numpy arrays
and numbers, one class per picture the app draws.
"""
from __future__ import annotations

from .payloads import RenderPayload

KINDS = ("regression", "classification", "rl")
SUPERVISED = ("regression", "classification")
LOSSES_OF_KIND = {"regression": ("mse",), "classification": ("cross_entropy",), "rl": ("return",)}
METRICS_OF_KIND = {"regression": ("mse",), "classification": ("accuracy",), "rl": ("return",)}


def check_family(cls) -> None:
    """Raise TypeError when registered family ``cls`` misses an attribute of the contract above or
    declares a kind, loss or metric that does not go together."""
    for attr in ("name", "title", "Config", "kind", "loss", "metric", "task_param_names", "payload"):
        if not hasattr(cls, attr):
            raise TypeError(f"task family {cls.__name__} declares no {attr!r} (see workbench.core.family)")
    if cls.kind not in KINDS:
        raise TypeError(f"task family {cls.name!r}: kind {cls.kind!r} is not one of {', '.join(KINDS)}")
    if cls.loss not in LOSSES_OF_KIND[cls.kind]:
        raise TypeError(f"task family {cls.name!r}: loss {cls.loss!r} is not one of a {cls.kind} family "
                        f"({', '.join(LOSSES_OF_KIND[cls.kind])})")
    if cls.metric not in METRICS_OF_KIND[cls.kind] + ("mse", "cross_entropy"):
        raise TypeError(f"task family {cls.name!r}: metric {cls.metric!r} is not one of a {cls.kind} family")
    if cls.payload is not None and not (isinstance(cls.payload, type) and issubclass(cls.payload, RenderPayload)):
        raise TypeError(f"task family {cls.name!r}: payload {cls.payload!r} is not a RenderPayload class")
    if cls.payload is None and cls.kind == "rl":
        raise TypeError(f"task family {cls.name!r}: an RL family declares the payload its render() gives")


def is_supervised(family) -> bool:
    """Whether a family (class or instance) has support / query sets rather than environments."""
    return family.kind in SUPERVISED
