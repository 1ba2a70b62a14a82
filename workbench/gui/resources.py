"""The app's icon and stylesheet, from the repository's resources/ folder (or the installed copy)."""
from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

from PySide6.QtGui import QIcon


@lru_cache(maxsize=1)
def resources_dir() -> Path:
    for d in (Path(__file__).resolve().parents[2] / "resources", Path(sys.prefix) / "share" / "workbench" / "resources"):
        if (d / "style.qss").is_file():
            return d
    return Path(__file__).resolve().parents[2] / "resources"


def app_icon() -> QIcon:
    path = resources_dir() / "icon.svg"
    return QIcon(str(path)) if path.is_file() else QIcon()


def stylesheet() -> str:
    path = resources_dir() / "style.qss"
    try:
        return path.read_text("utf-8")
    except OSError:
        return ""
