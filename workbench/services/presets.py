"""Shipped presets: TOML files in the repository's ``presets/`` folder (or the installed copy).

:func:`list_presets` never raises for one bad file: a preset that cannot be read (a FIFO, a device, too
large, not UTF-8), parsed or that has the wrong shape (``meta = 3``) is listed with ``error`` set and a
description saying "(unreadable: why)", so the CLI and the app still list, train and open the others.
"""
from __future__ import annotations

import os
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from workbench.core.errors import ConfigError
from workbench.core.storage import MAX_TEXT_BYTES, UnreadableFile, check_regular, read_regular_bytes

MAX_PRESET_BYTES = MAX_TEXT_BYTES
SECTIONS = ("meta", "task", "algorithm", "model", "run")  # as ExperimentConfig.SECTIONS (no torch import here)


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
    error: str | None = None  # why the preset cannot be used (unreadable, malformed); None for a good one

    @property
    def readable(self) -> bool:
        return self.error is None


def _shape_error(data: dict) -> str | None:
    """Why a parsed preset cannot be listed (the types :func:`list_presets` relies on), or None.  The full
    validation (known keys, ranges, registered family and algorithm) happens when it is loaded."""
    for section, value in data.items():
        if section not in SECTIONS:
            return f"unknown section [{section}]; sections: {', '.join(SECTIONS)}"
        if not isinstance(value, dict):
            return f"{section} = {value!r:.60}: expected a table ([{section}])"
    meta = data.get("meta", {})
    for key in ("name", "description", "source"):
        if key in meta and not isinstance(meta[key], str):
            return f"[meta] {key} = {meta[key]!r:.60}: expected a string"
    for section, key in (("task", "family"), ("algorithm", "name")):
        value = data.get(section, {}).get(key)
        if not isinstance(value, str):
            return (f"[{section}] needs a '{key}' string" if value is None else
                    f"[{section}] {key} = {value!r:.60}: expected a string")
    return None


def read_preset_info(path: Path) -> PresetInfo:
    """One preset file as a :class:`PresetInfo`; never raises (a bad file has ``error`` set)."""
    path = Path(path)

    def bad(why: str) -> PresetInfo:
        return PresetInfo(path.stem, path, f"(unreadable: {why})", "?", "?", error=why)

    try:
        data = tomllib.loads(read_regular_bytes(path, MAX_PRESET_BYTES).decode("utf-8"))
    except UnreadableFile as e:
        return bad(str(e))
    except UnicodeDecodeError:
        return bad("not a text file (invalid UTF-8)")
    except tomllib.TOMLDecodeError as e:
        return bad(f"malformed TOML: {e}")
    except RecursionError:
        return bad("malformed TOML: nested too deeply")
    why = _shape_error(data)
    if why:
        return bad(why)
    return PresetInfo(path.stem, path, data.get("meta", {}).get("description", ""), data["task"]["family"],
                      data["algorithm"]["name"])


def list_presets() -> list[PresetInfo]:
    """Every preset of :func:`presets_dirs` (the first of each name), unreadable ones included with
    ``error`` set; never raises for a bad file."""
    seen, out = set(), []
    for d in presets_dirs():
        try:
            paths = sorted(d.glob("*.toml"))
        except OSError:
            continue
        for path in paths:
            if path.stem in seen:
                continue
            seen.add(path.stem)
            out.append(read_preset_info(path))
    return out


def check_preset_file(path: str | Path) -> None:
    """Raise :class:`ConfigError` if ``path`` exists but is not a regular file of at most
    :data:`MAX_PRESET_BYTES` (a FIFO, a device, a directory, a huge file): reading it would block or never
    end.  A missing file passes (reading it reports that, naming the file).  Never opens the file."""
    try:
        st = os.stat(path)
    except OSError:
        return
    try:
        check_regular(st, MAX_PRESET_BYTES)
    except UnreadableFile as e:
        raise ConfigError(f"{path}: {e}: expected a TOML preset") from None


def resolve_preset(name_or_path: str) -> Path:
    """A preset file path as given, or the shipped preset of that name.  A path that is not a regular file
    (a FIFO, a device) is refused here, before anything tries to read it."""
    p = Path(name_or_path)
    if p.exists() or p.suffix == ".toml" or os.sep in name_or_path:
        check_preset_file(p)
        return p  # other errors (missing, unreadable) are reported when it is read, naming the file
    presets = list_presets()
    for info in presets:
        if info.name == name_or_path:
            check_preset_file(info.path)
            return info.path  # an unreadable one: loading it reports why, naming the file
    import difflib

    names = [i.name for i in presets]
    close = difflib.get_close_matches(name_or_path, names, n=1, cutoff=0.5)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(f"preset {name_or_path!r}: no such file and no shipped preset of that name{hint}; "
                      f"see 'workbench presets'")
