"""Where runs live by default: $WORKBENCH_RUNS, else the user's data directory (XDG on Linux).

(Run names are :mod:`workbench.services.rundir`'s; :func:`safe_run_name` is re-exported here for the app.)
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from .rundir import safe_run_name  # noqa: F401 - re-exported: the app imports it from here

__all__ = ["user_data_dir", "default_runs_dir", "safe_run_name"]


def user_data_dir() -> Path:
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "workbench"


def default_runs_dir() -> Path:
    env = os.environ.get("WORKBENCH_RUNS")
    return Path(env) if env else user_data_dir() / "runs"
