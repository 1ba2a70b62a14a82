"""Shipped presets: TOML files in the repository's ``presets/`` folder (or the installed copy)."""
from __future__ import annotations

import os
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError


def presets_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("WORKBENCH_PRESETS"):
        dirs.append(Path(os.environ["WORKBENCH_PRESETS"]))
    dirs.append(Path(__file__).resolve().parents[2] / "presets")  # a source checkout / editable install
    dirs.append(Path(sys.prefix) / "share" / "workbench" / "presets")  # a wheel install
    return [d for d in dirs if d.is_dir()]


@dataclass
class PresetInfo:
    name: str
    path: Path
    description: str
    family: str
    algorithm: str


def list_presets() -> list[PresetInfo]:
    seen, out = set(), []
    for d in presets_dirs():
        for path in sorted(d.glob("*.toml")):
            if path.stem in seen:
                continue
            seen.add(path.stem)
            try:
                data = tomllib.loads(path.read_text("utf-8"))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
                out.append(PresetInfo(path.stem, path, f"(unreadable: {e})", "?", "?"))
                continue
            out.append(PresetInfo(path.stem, path, data.get("meta", {}).get("description", ""),
                                  data.get("task", {}).get("family", "?"), data.get("algorithm", {}).get("name", "?")))
    return out


def resolve_preset(name_or_path: str) -> Path:
    """A preset file path as given, or the shipped preset of that name."""
    p = Path(name_or_path)
    if p.exists() or p.suffix == ".toml" or os.sep in name_or_path:
        return p  # errors (missing, unreadable) are reported when it is read, naming the file
    for info in list_presets():
        if info.name == name_or_path:
            return info.path
    import difflib

    names = [i.name for i in list_presets()]
    close = difflib.get_close_matches(name_or_path, names, n=1, cutoff=0.5)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(f"preset {name_or_path!r}: no such file and no shipped preset of that name{hint}; "
                      f"see 'workbench presets'")
