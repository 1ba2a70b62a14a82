"""Where runs live by default: $WORKBENCH_RUNS, else the user's data directory (XDG on Linux)."""
from __future__ import annotations

import os
import sys
from pathlib import Path


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


def safe_run_name(name: str) -> str:
    """A preset name made safe as one path component: no separators, no '..', never empty."""
    import re

    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-")
    return cleaned[:80] or "run"
