"""Atomic files: tensors as safetensors with JSON metadata in the header, text via write-and-rename.

Nothing here unpickles: a checkpoint or bundle from elsewhere can at worst fail to load.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

META_KEY = "workbench"


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are meant to be shared like the CSVs
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_write_bytes(path, st_save(cpu, metadata={META_KEY: json.dumps(meta)}))


class UnreadableFile(Exception):
    pass


def load_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a file written by :func:`save_tensors`; raises :class:`UnreadableFile` with the reason."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UnreadableFile("no such file") from None
    except IsADirectoryError:
        raise UnreadableFile("is a directory") from None
    except OSError as e:
        raise UnreadableFile(f"cannot read ({e.strerror})") from None
    if len(raw) < 8:
        raise UnreadableFile("too short to be a safetensors file")
    header_len = int.from_bytes(raw[:8], "little")
    if header_len <= 0 or header_len > len(raw) - 8:
        raise UnreadableFile("not a safetensors file (bad header length)")
    try:
        header = json.loads(raw[8:8 + header_len])
        meta = json.loads(header.get("__metadata__", {}).get(META_KEY, "null"))
    except (ValueError, AttributeError):
        raise UnreadableFile("not a safetensors file (bad header)") from None
    if not isinstance(meta, dict):
        raise UnreadableFile("a safetensors file, but not one written by the workbench (no metadata)")
    try:
        tensors = st_load(raw)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise UnreadableFile(f"corrupt tensor data ({e})") from None
    return tensors, meta
