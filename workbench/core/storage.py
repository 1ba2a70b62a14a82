"""Atomic files: tensors as safetensors with JSON metadata in the header, text via write-and-rename.

Nothing here unpickles: a checkpoint or bundle from elsewhere can at worst fail to load.  Nothing here
reads a FIFO, a device or an unbounded file either: :func:`read_regular_bytes` / :func:`open_regular`.
(torch and safetensors are imported when tensors are saved or loaded, so the text readers stay light.)
"""
from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path

META_KEY = "workbench"
MAX_TEXT_BYTES = 8 * 2**20  # presets, config.toml, status.json, sweep.json: a few MB is far more than they hold
MAX_TENSOR_BYTES = 4 * 2**30  # a model bundle or checkpoint
MAX_CSV_BYTES = 2 * 2**30  # a run's metrics.csv / eval.csv, read whole for the curves or a resume


def atomic_write_bytes(path: str | Path, data: bytes, durable: bool = True) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the whole new one.

    ``durable``: fsync the data before the rename, so that it survives a power loss too (about 0.1 s on a
    slow disk); without, a crash of the process still leaves the old or the new file, never a mix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are meant to be shared like the CSVs
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError) and e.errno is not None:  # name the file being written, not the temporary
            raise type(e)(e.errno, e.strerror or str(e), str(path)) from None
        raise


def atomic_write_text(path: str | Path, text: str, durable: bool = True) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), durable)


def save_tensors(path: str | Path, tensors: dict[str, "torch.Tensor"], meta: dict) -> None:
    from safetensors.torch import save as st_save

    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_write_bytes(path, st_save(cpu, metadata={META_KEY: json.dumps(meta)}))


class UnreadableFile(Exception):
    """A file that cannot be read; the message is the reason, without the path (callers add it)."""


def file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def check_regular(st: os.stat_result, limit: int | None) -> None:
    """Raise :class:`UnreadableFile` unless ``st`` is a regular file of at most ``limit`` bytes."""
    if stat.S_ISDIR(st.st_mode):
        raise UnreadableFile("is a directory")
    if not stat.S_ISREG(st.st_mode):
        raise UnreadableFile(f"{file_kind(st.st_mode)}, not a regular file")
    if limit is not None and st.st_size > limit:
        raise UnreadableFile(f"too large ({st.st_size} bytes; at most {limit} expected)")


def open_regular(path: str | Path, limit: int | None = None):
    """Open ``path`` for binary reading if it is a regular file of at most ``limit`` bytes; raises
    :class:`UnreadableFile` with the reason otherwise.

    Never blocks and never reads a device: the file is checked with stat() before it is opened, opened
    with O_NONBLOCK (a FIFO that appears in between does not wait for a writer) and checked again with
    fstat() on what was opened."""
    path = Path(path)
    try:
        check_regular(os.stat(path), limit)  # refuse a FIFO, socket or device without even opening it
        flags = (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
                 | getattr(os, "O_BINARY", 0))
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise UnreadableFile("no such file") from None
    except IsADirectoryError:
        raise UnreadableFile("is a directory") from None
    except NotADirectoryError:
        raise UnreadableFile("no such file (a parent is not a directory)") from None
    except PermissionError:
        raise UnreadableFile("cannot read (permission denied)") from None
    except OSError as e:
        raise UnreadableFile(f"cannot read ({e.strerror or e})") from None
    try:
        check_regular(os.fstat(fd), limit)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular_bytes(path: str | Path, limit: int = MAX_TEXT_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (see :func:`open_regular`); raises
    :class:`UnreadableFile` with the reason for anything else (missing, a directory, a FIFO, a device,
    too large, an I/O error)."""
    with open_regular(path, limit) as f:
        try:
            size = os.fstat(f.fileno()).st_size
            data = f.read(size + 1)  # read(n) reserves n bytes: ask for what fstat() says, not for the limit
            if len(data) > size:  # it grows while we read: go on, in bounded chunks, up to the limit
                parts, total = [data], len(data)
                while total <= limit:
                    chunk = f.read(min(limit + 1 - total, 1 << 24))
                    if not chunk:
                        break
                    parts.append(chunk)
                    total += len(chunk)
                data = b"".join(parts)
        except OSError as e:
            raise UnreadableFile(f"cannot read ({e.strerror or e})") from None
    if len(data) > limit:
        raise UnreadableFile(f"too large (over {limit} bytes)")
    return data


def load_tensors(path: str | Path, limit: int = MAX_TENSOR_BYTES) -> tuple[dict[str, "torch.Tensor"], dict]:
    """Read a file written by :func:`save_tensors`; raises :class:`UnreadableFile` with the reason.
    Only a regular file of at most ``limit`` bytes is read (never a FIFO or a device)."""
    raw = read_regular_bytes(path, limit)
    if len(raw) < 8:
        raise UnreadableFile("too short to be a safetensors file")
    header_len = int.from_bytes(raw[:8], "little")
    if header_len <= 0 or header_len > len(raw) - 8:
        raise UnreadableFile("not a safetensors file (bad header length)")
    try:
        header = json.loads(raw[8:8 + header_len])
        meta = json.loads(header.get("__metadata__", {}).get(META_KEY, "null"))
    except (ValueError, AttributeError, TypeError, RecursionError):
        raise UnreadableFile("not a safetensors file (bad header)") from None
    if not isinstance(meta, dict):
        raise UnreadableFile("a safetensors file, but not one written by the workbench (no metadata)")
    from safetensors import SafetensorError
    from safetensors.torch import load as st_load

    try:
        tensors = st_load(raw)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise UnreadableFile(f"corrupt tensor data ({e})") from None
    return tensors, meta
