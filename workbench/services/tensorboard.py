"""TensorBoard event files, written with tensorboardX: the runs' scalars and hyperparameters for TensorBoard.

A run directory holds one ``events.out.tfevents.*`` file per training session (a resumed run adds
one); ``tensorboard --logdir <runs folder>`` shows every run's curves and, in the HPARAMS tab, the
hyperparameters.  The CSVs stay the primary record; these files are a view for TensorBoard users.

What is written (tensorboardX's protobuf messages and its TFRecord framing, ``RecordWriter``):

* the first event: ``file_version`` "brain.Event:2";
* a ``SessionLog.START`` at the first step the session writes (TensorBoard then purges anything at later
  steps that older files of the run hold);
* the hyperparameters as the hparams plugin's ``HParamsPluginData`` (version 0) in a value tagged
  ``_hparams_/session_start_info`` (flattened ``section.key`` hparams, group name, start time) and, at the
  end, ``_hparams_/session_end_info`` (status, end time);
* scalars as ``Summary.Value(tag, simple_value)`` (float32: values beyond its range become ±inf), several
  tags of one step in one event: ``train/<metric>`` per iteration, ``eval/before``, ``eval/after`` and
  ``eval/reference/<name>`` per evaluation (services/recorder.py).

Writing is buffered in memory: :meth:`EventWriter.flush` writes the buffer out (the recorder calls it at
checkpoints and at the end; the writer itself also flushes when ``flush_secs`` have passed or the buffer
is large, so a live TensorBoard keeps up).  Nothing touches the disk before the first flush.

On resume, :func:`truncate_event_files` drops the events past the checkpoint from the earlier files (as
the recorder does with the CSV rows), and the hparams session info (the new session writes its own).
"""
from __future__ import annotations

import itertools
import math
import os
import re
import socket
import struct
import time
from pathlib import Path
from typing import Iterator

from tensorboardX.proto.api_pb2 import DataType, Experiment, HParamInfo, MetricInfo, MetricName
from tensorboardX.proto.event_pb2 import Event, SessionLog
from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData, SessionEndInfo, SessionStartInfo
from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboardX.proto.tensor_pb2 import TensorProto
from tensorboardX.proto.tensor_shape_pb2 import TensorShapeProto
from tensorboardX.record_writer import RecordWriter, masked_crc32c

from workbench.core.storage import atomic_write_bytes
from .rundir import EVENT_FILE_MARK, EVENT_FILE_PREFIX, is_event_file

__all__ = ["EventWriter", "EVENT_FILE_MARK", "event_file_name", "event_files", "flatten_hparams", "read_records",
           "truncate_event_files", "STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]

PLUGIN_HPARAMS = "hparams"
SESSION_START_TAG = "_hparams_/session_start_info"
SESSION_END_TAG = "_hparams_/session_end_info"
EXPERIMENT_TAG = "_hparams_/experiment"
# hparams api.proto Status
STATUS_UNKNOWN, STATUS_SUCCESS, STATUS_FAILURE, STATUS_RUNNING = 0, 1, 2, 3
_FLOAT32_MAX = 3.4028234663852886e38


def _null_tensor() -> TensorProto:
    """A length-0 float tensor: TensorBoard's hparams summaries carry one (hparams metadata.NULL_TENSOR),
    since its data loader only keeps values that hold a tensor."""
    return TensorProto(dtype=1, tensor_shape=TensorShapeProto(dim=[TensorShapeProto.Dim(size=0)]))  # DT_FLOAT


def flatten_hparams(d: dict, prefix: str = "") -> dict[str, bool | float | str]:
    """{"algorithm": {"inner_lr": 0.01}} -> {"algorithm.inner_lr": 0.01}; lists become their text, None is left out."""
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


def _plugin_summary(tag: str, content: HParamsPluginData) -> Summary:
    metadata = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(
        plugin_name=PLUGIN_HPARAMS, content=content.SerializeToString()))
    return Summary(value=[Summary.Value(tag=tag, metadata=metadata, tensor=_null_tensor())])


def _session_start(hparams: dict, group_name: str, start_time: float | None) -> HParamsPluginData:
    info = SessionStartInfo(group_name=group_name, start_time_secs=start_time or 0.0)
    for k, v in sorted(hparams.items()):
        if isinstance(v, bool):
            info.hparams[k].bool_value = v
        elif isinstance(v, (int, float)):
            info.hparams[k].number_value = float(v)
        else:
            info.hparams[k].string_value = str(v)
    return HParamsPluginData(version=0, session_start_info=info)


def _experiment(hparams: dict, metrics: list[str]) -> HParamsPluginData:
    """An hparams ``Experiment``: the columns (hparams with their types, then the metric tags).

    TensorBoard takes the experiment of the *first* run that has one and ignores the others, so in a
    folder of different runs this hides hparams other runs have; without it TensorBoard makes the
    columns from every run's session_start_info and scalar tags.  The recorder therefore does not
    write it; :meth:`EventWriter.add_hparams` does when given ``metrics``."""
    def dtype(v):
        return (DataType.DATA_TYPE_BOOL if isinstance(v, bool) else
                DataType.DATA_TYPE_FLOAT64 if isinstance(v, (int, float)) else DataType.DATA_TYPE_STRING)

    return HParamsPluginData(version=0, experiment=Experiment(
        hparam_infos=[HParamInfo(name=k, type=dtype(v)) for k, v in sorted(hparams.items())],
        metric_infos=[MetricInfo(name=MetricName(tag=m)) for m in metrics]))


# -- the writer ---------------------------------------------------------------------------------------
_counter = itertools.count(1)  # next() on it is atomic: writers may start in several threads


def event_file_name(now: float | None = None) -> str:
    """``events.out.tfevents.<unix seconds, 10 digits>.<host>.<pid>.<n, 6 digits>``: unique, and in creation
    order within a second and a process (TensorBoard reads a directory's files by name)."""
    host = re.sub(r"[^A-Za-z0-9_-]+", "-", socket.gethostname()) or "host"
    stamp = int(time.time() if now is None else now)
    return f"{EVENT_FILE_PREFIX}{stamp:010d}.{host}.{os.getpid()}.{next(_counter):06d}"


class EventWriter:
    """Appends events to a new event file ``logdir/<event_file_name()>`` through tensorboardX's
    ``RecordWriter``; nothing touches the disk until :meth:`flush` (which creates ``logdir`` if need be).

    Steps are meta-iterations (int); wall times are Unix seconds (default: now).  Not thread-safe: one
    writer per session, called from the thread that trains.  A write error (a full disk) is the ``OSError``
    of the file system; the writer is closed by :meth:`close` all the same."""

    def __init__(self, logdir: str | Path, *, flush_secs: float = 30.0, max_buffer: int = 1 << 20):
        self.logdir = Path(logdir)
        self.path = self.logdir / event_file_name()
        self.flush_secs = flush_secs
        self.max_buffer = max_buffer
        self._pending: list[bytes] = []  # serialized Event messages not written yet
        self._pending_bytes = 0
        self._writer: RecordWriter | None = None
        self._last_flush = time.monotonic()
        self._closed = False
        self._write(Event(wall_time=time.time(), step=0, file_version="brain.Event:2"))

    def _write(self, event: Event) -> None:
        if self._closed:
            raise ValueError(f"{self.path}: event writer is closed")
        data = event.SerializeToString()
        self._pending.append(data)
        self._pending_bytes += len(data)
        if self._pending_bytes >= self.max_buffer or time.monotonic() - self._last_flush >= self.flush_secs:
            self.flush()

    @staticmethod
    def _event(step: int, wall_time: float | None = None, **fields) -> Event:
        return Event(wall_time=time.time() if wall_time is None else wall_time, step=int(step), **fields)

    def add_scalars(self, step: int, scalars: dict[str, float], wall_time: float | None = None) -> None:
        """Several scalars at one step, as one event.  Values that are not numbers are skipped; NaN is kept;
        beyond float32's range a value becomes ±inf, as TensorBoard shows it."""
        values = []
        for tag, v in scalars.items():
            try:
                v = float(v)
            except (TypeError, ValueError):
                continue
            if math.isfinite(v) and abs(v) > _FLOAT32_MAX:
                v = math.copysign(math.inf, v)
            values.append(Summary.Value(tag=tag, simple_value=v))
        if values:
            self._write(self._event(step, wall_time, summary=Summary(value=values)))

    def add_scalar(self, tag: str, value: float, step: int, wall_time: float | None = None) -> None:
        self.add_scalars(step, {tag: value}, wall_time)

    def add_session_start(self, step: int, wall_time: float | None = None) -> None:
        """``SessionLog.START`` at ``step``: TensorBoard drops events at steps >= ``step`` read before it."""
        self._write(self._event(step, wall_time, session_log=SessionLog(status=SessionLog.START)))

    def add_hparams(self, hparams: dict, *, group_name: str = "", start_time: float | None = None,
                    metrics: list[str] = (), step: int = 0) -> None:
        """The run's hyperparameters (nested dicts are flattened to ``section.key``; numbers are written as
        doubles, booleans as booleans, anything else as text), with ``metrics`` an hparams experiment too."""
        flat = flatten_hparams(hparams)
        if metrics:
            self._write(self._event(step, summary=_plugin_summary(EXPERIMENT_TAG, _experiment(flat, list(metrics)))))
        self._write(self._event(step, summary=_plugin_summary(
            SESSION_START_TAG, _session_start(flat, group_name, start_time))))

    def add_session_end(self, status: int, step: int = 0, end_time: float | None = None) -> None:
        """The hparams session's end: ``status`` one of :data:`STATUS_SUCCESS`, :data:`STATUS_FAILURE`, ..."""
        info = SessionEndInfo(status=status, end_time_secs=time.time() if end_time is None else end_time)
        self._write(self._event(step, summary=_plugin_summary(
            SESSION_END_TAG, HParamsPluginData(version=0, session_end_info=info))))

    def flush(self) -> None:
        """Write the buffered events to the file (created at the first flush) and sync it to the disk."""
        if self._pending:
            if self._writer is None:
                self.logdir.mkdir(parents=True, exist_ok=True)
                self._writer = RecordWriter(str(self.path))
            for data in self._pending:
                self._writer.write(data)
            self._pending.clear()
            self._pending_bytes = 0
            self._writer.flush()
        self._last_flush = time.monotonic()

    def close(self) -> None:
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            if self._writer is not None:
                self._writer.close()
                self._writer = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# -- resuming: cut the earlier files back -------------------------------------------------------------
def event_files(logdir: str | Path) -> list[Path]:
    """The event files directly in ``logdir``, in the order TensorBoard reads them (by name)."""
    logdir = Path(logdir)
    if not logdir.is_dir():
        return []
    return sorted((p for p in logdir.iterdir() if is_event_file(p.name) and p.is_file()), key=lambda p: p.name)


def read_records(raw: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(framed record, its data) of each whole TFRecord in ``raw`` (``uint64 length, uint32 masked CRC-32C of
    it, data, uint32 masked CRC-32C of the data``, little-endian; the checksums are tensorboardX's).  A torn
    or corrupt tail (a crash mid-write) ends the stream."""
    pos, n = 0, len(raw)
    while n - pos >= 12:
        header = raw[pos:pos + 8]
        if struct.unpack("<I", raw[pos + 8:pos + 12])[0] != masked_crc32c(header):
            return
        end = pos + 12 + struct.unpack("<Q", header)[0]
        if end + 4 > n:
            return
        data = raw[pos + 12:end]
        if struct.unpack("<I", raw[end:end + 4])[0] != masked_crc32c(data):
            return
        yield raw[pos:end + 4], data
        pos = end + 4


def truncate_event_files(logdir: str | Path, step: int) -> None:
    """Drop the events past ``step`` from the event files in ``logdir`` (a resumed run redoes them), a torn
    tail, and the hparams session info (the resumed session writes its own: TensorBoard keeps the first
    it reads).  Files are rewritten atomically, and only when something changes; one that is not an
    event file at all is left alone."""
    def keep(data: bytes) -> bool:
        ev = Event.FromString(data)
        return ev.step <= step and not any(v.metadata.plugin_data.plugin_name == PLUGIN_HPARAMS
                                           for v in ev.summary.value)

    for path in event_files(logdir):
        try:
            raw = path.read_bytes()
            kept = b"".join(record for record, data in read_records(raw) if keep(data))
        except Exception:  # noqa: BLE001 - unreadable, or not an Event (protobuf's DecodeError): leave it be
            continue
        if kept != raw:
            atomic_write_bytes(path, kept)
