"""The built-in task families, algorithms and networks, registered as a plug-in of the workbench.

The registries (``workbench.core.registry``) know no family and no algorithm: they load the plug-ins
named by the ``workbench.plugins`` entry points of the installed distributions when first asked, and a
plug-in registers its classes by importing the modules that hold them (each class registers itself with
``@FAMILIES.register`` / ``@ALGORITHMS.register``).  This one is the workbench's own, declared in its
``pyproject.toml``; another package adds its families or algorithms the same way::

    [project.entry-points."workbench.plugins"]
    mine = "mypackage.workbench_plugin:register"
"""
from __future__ import annotations


def register_builtins() -> None:
    """Register the built-in task families and algorithms (importing them registers them)."""
    import workbench.algorithms  # noqa: F401
    import workbench.models.zoo  # noqa: F401
    import workbench.tasks  # noqa: F401
