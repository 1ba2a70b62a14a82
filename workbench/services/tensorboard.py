"""TensorBoard event files without TensorFlow or TensorBoard: a small writer and reader.

A run directory holds one ``events.out.tfevents.*`` file per training session (a resumed run adds
one); ``tensorboard --logdir <runs folder>`` shows every run's curves and, in the HPARAMS tab, the
hyperparameters.  The CSVs stay the primary record; these files are a view for TensorBoard users.

Format (what TensorBoard reads):

* a TFRecord stream: ``uint64 length, uint32 masked_crc32c(length), data, uint32 masked_crc32c(data)``,
  little-endian, where masked(c) = ((c >> 15 | c << 17) + 0xa282ead8) mod 2**32;
* each record an ``Event`` protobuf (tensorflow/core/util/event.proto): wall_time = 1 (double),
  step = 2 (int64), file_version = 3 (the first record: "brain.Event:2"), summary = 5, session_log = 7;
* scalars as ``Summary.Value`` tag = 1, simple_value = 2 (float);
* hyperparameters as the hparams plugin's ``HParamsPluginData`` (tensorboard/plugins/hparams/
  plugin_data.proto, version 0) in ``SummaryMetadata.plugin_data`` (plugin_name "hparams") of a value
  tagged ``_hparams_/session_start_info`` (hparams = map<string, google.protobuf.Value>, group_name,
  start_time_secs) and, at the end, ``_hparams_/session_end_info`` (status, end_time_secs).

The protobufs are encoded by hand (:func:`_field` and friends); :func:`read_events` decodes the same
subset, so the tests need no TensorBoard.  Writing is buffered in memory: :meth:`EventWriter.flush`
writes the buffer out (the recorder calls it at checkpoints and at the end; the writer itself also
flushes when ``flush_secs`` have passed or the buffer is large, so a live TensorBoard keeps up).

On resume, :func:`truncate_event_files` drops the events past the checkpoint from the earlier files
(as the recorder does with the CSV rows) and the new session's file starts with a ``SessionLog.START``
event at the first step it will write, which also makes TensorBoard purge anything later from
older files.
"""
from __future__ import annotations

import itertools
import math
import os
import re
import socket
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from workbench.core.storage import atomic_write_bytes

EVENT_FILE_MARK = "tfevents"
PLUGIN_HPARAMS = "hparams"
SESSION_START_TAG = "_hparams_/session_start_info"
SESSION_END_TAG = "_hparams_/session_end_info"
EXPERIMENT_TAG = "_hparams_/experiment"
# hparams api.proto Status
STATUS_UNKNOWN, STATUS_SUCCESS, STATUS_FAILURE, STATUS_RUNNING = 0, 1, 2, 3
# event.proto SessionLog.SessionStatus
SESSION_START, SESSION_STOP = 1, 2
# A length-0 float tensor: TensorBoard's hparams summaries carry it (hparams metadata.NULL_TENSOR), since
# its data loader only keeps values that hold a tensor.
_NULL_TENSOR = b"\x08\x01\x12\x02\x12\x00"

# -- CRC32C (Castagnoli) ------------------------------------------------------------------------------
_CRC_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ (0x82F63B78 if _c & 1 else 0)
    _CRC_TABLE.append(_c)
del _i, _c


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecord(data: bytes) -> bytes:
    """One TFRecord: length, its masked CRC, the data, the data's masked CRC."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc32c(length)) + data + struct.pack("<I", masked_crc32c(data))


# -- protobuf encoding (the subset the event files need) ----------------------------------------------
def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64  # int64 / enum: two's complement, ten bytes
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(number: int, wire: int) -> bytes:
    return _varint((number << 3) | wire)


def _int(number: int, value: int) -> bytes:
    return _key(number, 0) + _varint(int(value))


def _double(number: int, value: float) -> bytes:
    return _key(number, 1) + struct.pack("<d", value)


def _float(number: int, value: float) -> bytes:
    return _key(number, 5) + struct.pack("<f", value)


def _bytes(number: int, value: bytes | str) -> bytes:
    if isinstance(value, str):
        value = value.encode("utf-8")
    return _key(number, 2) + _varint(len(value)) + value


def _struct_value(v) -> bytes:
    """google.protobuf.Value: number_value = 2, string_value = 3, bool_value = 4."""
    if isinstance(v, bool):
        return _int(4, v)
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return _double(2, float(v))
    return _bytes(3, v if isinstance(v, str) else str(v))


def _event(step: int, wall_time: float | None = None, *, summary: bytes | None = None,
           file_version: str | None = None, session_log: bytes | None = None) -> bytes:
    out = _double(1, time.time() if wall_time is None else wall_time) + _int(2, step)
    if file_version is not None:
        out += _bytes(3, file_version)
    if summary is not None:
        out += _bytes(5, summary)
    if session_log is not None:
        out += _bytes(7, session_log)
    return out


def _scalar_value(tag: str, value: float) -> bytes:
    return _bytes(1, tag) + _float(2, value)


def _plugin_value(tag: str, plugin: str, content: bytes) -> bytes:
    metadata = _bytes(1, _bytes(1, plugin) + _bytes(2, content))  # SummaryMetadata.plugin_data
    return _bytes(1, tag) + _bytes(9, metadata) + _bytes(8, _NULL_TENSOR)


def flatten_hparams(d: dict, prefix: str = "") -> dict[str, bool | float | str]:
    """{"algorithm": {"inner_lr": 0.01}} -> {"algorithm.inner_lr": 0.01}; lists become their text."""
    out: dict[str, bool | float | str] = {}
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten_hparams(v, name + "."))
        elif isinstance(v, (bool, int, float, str)):
            out[name] = v
        elif isinstance(v, (list, tuple)):
            out[name] = "[" + ", ".join(str(x) for x in v) + "]"
        elif v is not None:
            out[name] = str(v)
    return out


def session_start_content(hparams: dict, group_name: str = "", start_time: float | None = None) -> bytes:
    info = b"".join(_bytes(1, _bytes(1, k) + _bytes(2, _struct_value(v))) for k, v in sorted(hparams.items()))
    if group_name:
        info += _bytes(4, group_name)
    if start_time is not None:
        info += _double(5, start_time)
    return _int(1, 0) + _bytes(3, info)  # HParamsPluginData: version 0, session_start_info


def session_end_content(status: int, end_time: float | None = None) -> bytes:
    info = _int(1, status) + _double(2, time.time() if end_time is None else end_time)
    return _int(1, 0) + _bytes(4, info)


def experiment_content(hparams: dict, metrics: list[str]) -> bytes:
    """An hparams ``Experiment``: the columns (hparams with their types, then the metric tags).

    TensorBoard takes the experiment of the *first* run that has one and ignores the others, so in a
    folder of different runs this hides hparams other runs have; without it TensorBoard makes the
    columns from every run's session_start_info and scalar tags.  The recorder therefore does not
    write it; :meth:`EventWriter.add_hparams` does when given ``metrics``.
    """
    def dtype(v):
        return 2 if isinstance(v, bool) else 3 if isinstance(v, (int, float)) else 1

    infos = b"".join(_bytes(4, _bytes(1, k) + _int(4, dtype(v))) for k, v in sorted(hparams.items()))
    infos += b"".join(_bytes(5, _bytes(1, _bytes(2, m))) for m in metrics)  # MetricInfo.name.tag
    return _int(1, 0) + _bytes(2, infos)


# -- the writer ---------------------------------------------------------------------------------------
_counter = itertools.count(1)  # next() on it is atomic: writers may start in several threads


def event_file_name(now: float | None = None) -> str:
    """``events.out.tfevents.<unix seconds>.<host>.<pid>.<n>``: unique, and in creation order within a
    second and a process (TensorBoard reads a directory's files by name)."""
    host = re.sub(r"[^A-Za-z0-9_-]+", "-", socket.gethostname()) or "host"
    stamp = int(time.time() if now is None else now)
    return f"events.out.{EVENT_FILE_MARK}.{stamp:010d}.{host}.{os.getpid()}.{next(_counter):06d}"


class EventWriter:
    """Appends events to a new event file in ``logdir``; nothing touches the disk until :meth:`flush`."""

    def __init__(self, logdir: str | Path, *, flush_secs: float = 30.0, max_buffer: int = 1 << 20,
                 filename: str | None = None):
        self.logdir = Path(logdir)
        self.path = self.logdir / (filename or event_file_name())
        self.flush_secs = flush_secs
        self.max_buffer = max_buffer
        self._buf = bytearray()
        self._file = None
        self._last_flush = time.monotonic()
        self._closed = False
        self._write(_event(0, file_version="brain.Event:2"))

    def _write(self, event: bytes) -> None:
        if self._closed:
            raise ValueError(f"{self.path}: event writer is closed")
        self._buf += tfrecord(event)
        if len(self._buf) >= self.max_buffer or time.monotonic() - self._last_flush >= self.flush_secs:
            self.flush()

    def add_scalars(self, step: int, scalars: dict[str, float], wall_time: float | None = None) -> None:
        """Several scalars at one step, as one event.  Values that are not numbers are skipped."""
        values = b""
        for tag, v in scalars.items():
            try:
                v = float(v)
            except (TypeError, ValueError):
                continue
            if math.isfinite(v) and abs(v) > 3.4028234663852886e38:  # beyond float32: TensorBoard's own ±inf
                v = math.copysign(math.inf, v)
            values += _bytes(1, _scalar_value(tag, v))
        if values:
            self._write(_event(step, wall_time, summary=values))

    def add_scalar(self, tag: str, value: float, step: int, wall_time: float | None = None) -> None:
        self.add_scalars(step, {tag: value}, wall_time)

    def add_session_start(self, step: int, wall_time: float | None = None) -> None:
        """``SessionLog.START`` at ``step``: TensorBoard drops events at steps >= ``step`` read before it."""
        self._write(_event(step, wall_time, session_log=_int(1, SESSION_START)))

    def add_hparams(self, hparams: dict, *, group_name: str = "", start_time: float | None = None,
                    metrics: list[str] = (), step: int = 0) -> None:
        """The run's hyperparameters (nested dicts are flattened to ``section.key``)."""
        flat = flatten_hparams(hparams)
        if metrics:
            self._write(_event(step, summary=_bytes(1, _plugin_value(
                EXPERIMENT_TAG, PLUGIN_HPARAMS, experiment_content(flat, list(metrics))))))
        self._write(_event(step, summary=_bytes(1, _plugin_value(
            SESSION_START_TAG, PLUGIN_HPARAMS, session_start_content(flat, group_name, start_time)))))

    def add_session_end(self, status: int, step: int = 0, end_time: float | None = None) -> None:
        self._write(_event(step, summary=_bytes(1, _plugin_value(
            SESSION_END_TAG, PLUGIN_HPARAMS, session_end_content(status, end_time)))))

    def flush(self) -> None:
        if self._buf:
            if self._file is None:
                self.logdir.mkdir(parents=True, exist_ok=True)
                self._file = open(self.path, "ab")
            self._file.write(self._buf)
            self._file.flush()
            self._buf.clear()
        self._last_flush = time.monotonic()

    def close(self) -> None:
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            if self._file is not None:
                self._file.close()
                self._file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# -- reading ------------------------------------------------------------------------------------------
class EventFileError(ValueError):
    pass


def read_records(path: str | Path, strict: bool = False) -> Iterator[bytes]:
    """The records of a TFRecord file.  A torn or corrupt tail (a crash mid-write) ends the stream,
    or raises :class:`EventFileError` with ``strict``."""
    raw = Path(path).read_bytes()
    pos = 0
    while pos < len(raw):
        if len(raw) - pos < 12:
            if strict:
                raise EventFileError(f"{path}: truncated record header at byte {pos}")
            return
        header = raw[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        (hcrc,) = struct.unpack("<I", raw[pos + 8:pos + 12])
        if hcrc != masked_crc32c(header):
            if strict:
                raise EventFileError(f"{path}: bad length checksum at byte {pos}")
            return
        end = pos + 12 + length
        if end + 4 > len(raw):
            if strict:
                raise EventFileError(f"{path}: truncated record at byte {pos}")
            return
        data = raw[pos + 12:end]
        (dcrc,) = struct.unpack("<I", raw[end:end + 4])
        if dcrc != masked_crc32c(data):
            if strict:
                raise EventFileError(f"{path}: bad data checksum at byte {pos}")
            return
        yield data
        pos = end + 4


def _decode(buf: bytes) -> list[tuple[int, int, object]]:
    """(field number, wire type, value) of each field; values are int, bytes, or the raw 4/8 bytes."""
    out, pos, n = [], 0, len(buf)

    def varint():
        nonlocal pos
        shift = result = 0
        while True:
            if pos >= n:
                raise EventFileError("truncated varint")
            b = buf[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    while pos < n:
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            out.append((number, wire, varint()))
        elif wire == 1:
            out.append((number, wire, buf[pos:pos + 8]))
            pos += 8
        elif wire == 2:
            length = varint()
            out.append((number, wire, buf[pos:pos + length]))
            pos += length
        elif wire == 5:
            out.append((number, wire, buf[pos:pos + 4]))
            pos += 4
        else:
            raise EventFileError(f"unsupported wire type {wire}")
        if pos > n:
            raise EventFileError("truncated field")
    return out


def _int64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _decode_struct_value(buf: bytes):
    for number, _, v in _decode(buf):
        if number == 2:
            return struct.unpack("<d", v)[0]
        if number == 3:
            return v.decode("utf-8")
        if number == 4:
            return bool(v)
        if number == 1:
            return None
    return None


def decode_hparams_plugin_data(content: bytes) -> dict:
    """HParamsPluginData -> {"version", "kind": "session_start_info" | "session_end_info" | "experiment", ...}."""
    out: dict = {"version": 0}
    for number, _, v in _decode(content):
        if number == 1:
            out["version"] = v
        elif number == 3:
            out["kind"] = "session_start_info"
            hparams = {}
            for n2, _, v2 in _decode(v):
                if n2 == 1:
                    entry = dict((n3, v3) for n3, _, v3 in _decode(v2))
                    hparams[entry.get(1, b"").decode("utf-8")] = _decode_struct_value(entry.get(2, b""))
                elif n2 == 4:
                    out["group_name"] = v2.decode("utf-8")
                elif n2 == 5:
                    out["start_time_secs"] = struct.unpack("<d", v2)[0]
            out["hparams"] = hparams
        elif number == 4:
            out["kind"] = "session_end_info"
            for n2, _, v2 in _decode(v):
                if n2 == 1:
                    out["status"] = v2
                elif n2 == 2:
                    out["end_time_secs"] = struct.unpack("<d", v2)[0]
        elif number == 2:
            out["kind"] = "experiment"
            hp, metrics = [], []
            for n2, _, v2 in _decode(v):
                if n2 == 4:
                    hp.append(dict((n3, v3) for n3, _, v3 in _decode(v2)).get(1, b"").decode("utf-8"))
                elif n2 == 5:
                    name = dict((n3, v3) for n3, _, v3 in _decode(v2)).get(1, b"")
                    metrics.append(dict((n3, v3) for n3, _, v3 in _decode(name)).get(2, b"").decode("utf-8"))
            out["hparam_names"], out["metric_tags"] = hp, metrics
    return out


@dataclass
class Event:
    wall_time: float
    step: int
    file_version: str | None = None
    scalars: dict[str, float] = field(default_factory=dict)
    plugins: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # tag -> (plugin name, content)
    session_log: int | None = None  # SessionLog status


def decode_event(data: bytes) -> Event:
    """Decode one Event record; raises :class:`EventFileError` when it is not one."""
    try:
        return _decode_event(data)
    except (struct.error, UnicodeDecodeError, IndexError) as e:
        raise EventFileError(f"not an Event record ({e})") from None


def _decode_event(data: bytes) -> Event:
    ev = Event(0.0, 0)
    for number, _, v in _decode(data):
        if number == 1:
            ev.wall_time = struct.unpack("<d", v)[0]
        elif number == 2:
            ev.step = _int64(v)
        elif number == 3:
            ev.file_version = v.decode("utf-8")
        elif number == 5:
            for n2, _, value in _decode(v):
                if n2 != 1:
                    continue
                tag, simple, plugin = "", None, None
                for n3, _, x in _decode(value):
                    if n3 == 1:
                        tag = x.decode("utf-8")
                    elif n3 == 2:
                        simple = struct.unpack("<f", x)[0]
                    elif n3 == 9:
                        for n4, _, pd in _decode(x):
                            if n4 == 1:
                                pdf = dict((n5, v5) for n5, _, v5 in _decode(pd))
                                plugin = (pdf.get(1, b"").decode("utf-8"), pdf.get(2, b""))
                if simple is not None:
                    ev.scalars[tag] = simple
                if plugin is not None:
                    ev.plugins[tag] = plugin
        elif number == 7:
            ev.session_log = dict((n2, v2) for n2, _, v2 in _decode(v)).get(1, 0)
    return ev


def event_files(logdir: str | Path) -> list[Path]:
    """The event files directly in ``logdir``, in the order TensorBoard reads them (by name)."""
    logdir = Path(logdir)
    if not logdir.is_dir():
        return []
    return sorted((p for p in logdir.iterdir() if EVENT_FILE_MARK in p.name and p.is_file()
                   and not p.name.startswith(".")), key=lambda p: p.name)


def read_events(path: str | Path, strict: bool = False) -> list[Event]:
    return [decode_event(r) for r in read_records(path, strict)]


@dataclass
class RunEvents:
    """What TensorBoard would show for one run directory."""
    scalars: dict[str, list[tuple[int, float]]]  # tag -> [(step, value)] in file order
    hparams: dict  # the last session_start_info's hparams
    group_name: str = ""
    end_status: int | None = None
    files: list[Path] = field(default_factory=list)


def read_run_events(logdir: str | Path) -> RunEvents:
    """Merge a run directory's event files as TensorBoard does, including its purge on restart: a
    ``SessionLog.START`` after the first one drops the scalars at steps >= its step read so far."""
    scalars: dict[str, list[tuple[int, float]]] = {}
    hparams: dict = {}
    group, status, seen_start = "", None, False
    files = event_files(logdir)
    for path in files:
        try:
            events = [decode_event(r) for r in read_records(path)]
        except (OSError, EventFileError):
            continue  # unreadable file (TensorBoard would skip what it cannot parse too)
        for ev in events:
            if ev.session_log == SESSION_START:
                if seen_start:
                    for tag in scalars:
                        scalars[tag] = [(s, v) for s, v in scalars[tag] if s < ev.step]
                seen_start = True
            for tag, v in ev.scalars.items():
                scalars.setdefault(tag, []).append((ev.step, v))
            for tag, (plugin, content) in ev.plugins.items():
                if plugin != PLUGIN_HPARAMS:
                    continue
                try:
                    data = decode_hparams_plugin_data(content)
                except (EventFileError, struct.error, UnicodeDecodeError):
                    continue
                if data.get("kind") == "session_start_info":
                    hparams, group = data["hparams"], data.get("group_name", "")
                elif data.get("kind") == "session_end_info":
                    status = data.get("status")
    return RunEvents(scalars, hparams, group, status, files)


def truncate_event_files(logdir: str | Path, step: int) -> None:
    """Drop the events past ``step`` from the event files in ``logdir`` (a resumed run redoes them), a torn
    tail, and the hparams session info (the resumed session writes its own: TensorBoard keeps the first
    it reads).  Files are rewritten atomically, and only when something changes; one that is not an
    event file at all is left alone."""
    def keep(ev: Event) -> bool:
        return ev.step <= step and not any(p == PLUGIN_HPARAMS for p, _ in ev.plugins.values())

    for path in event_files(logdir):
        try:
            raw = path.read_bytes()
            kept = [r for r in read_records(path) if keep(decode_event(r))]
        except (OSError, EventFileError, struct.error, UnicodeDecodeError):
            continue
        data = b"".join(tfrecord(r) for r in kept)
        if data != raw:
            atomic_write_bytes(path, data)

