"""Run history (services/runs.py) and TensorBoard event files (services/tensorboard.py)."""
import csv
import dataclasses
import datetime as dt
import json
import math
import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest

from conftest import tiny_config
from workbench.core import events as ev
from workbench.services import runs
from workbench.services import tensorboard as tb
from workbench.core.stats import ema_tensorboard, mean_ci95
from workbench.services.trainer import Trainer


def small(seed=0, iterations=10, **over):
    config = tiny_config("maml", iterations, seed=seed, eval_interval=5, checkpoint_interval=5)
    return config.replace([f"{k.replace('__', '.')}={v}" for k, v in over.items()]) if over else config


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two seeds of one config and one other config, trained once for the module."""
    root = tmp_path_factory.mktemp("runs")
    Trainer(small(seed=0), root / "maml-a").run()
    Trainer(small(seed=1), root / "maml-b").run()
    Trainer(small(seed=0, algorithm__outer_lr=0.002), root / "maml-c").run()
    return root


@pytest.fixture
def root(trained, tmp_path):
    out = tmp_path / "runs"
    shutil.copytree(trained, out)
    return out


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def add_bad_runs(root):
    corrupt = root / "corrupt"
    corrupt.mkdir()
    (corrupt / "config.toml").write_text("[[[ not toml")
    (corrupt / "status.json").write_text("{garbage")
    foreign = root / "holiday-photos"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("not a run")
    half = root / "half"
    half.mkdir()
    shutil.copy(root / "maml-a" / "config.toml", half / "config.toml")  # killed before status.json
    (root / "empty").mkdir()
    strange = root / "strange-status"
    shutil.copytree(root / "maml-a", strange)
    (strange / "status.json").write_text('{"status": "exploded"}')
    (root / ".hidden").mkdir()
    (root / "stray-file.txt").write_text("x")


# -- scanning -----------------------------------------------------------------------------------------
def test_scan_lists_every_run_and_says_why_bad_ones_are_unreadable(root):
    add_bad_runs(root)
    listed = runs.scan_runs(root)
    by_name = {r.name: r for r in listed}
    assert sorted(by_name) == ["corrupt", "empty", "half", "holiday-photos", "maml-a", "maml-b", "maml-c",
                               "strange-status"]
    assert "malformed TOML" in by_name["corrupt"].error and "status.json: not valid JSON" in by_name["corrupt"].error
    assert "not a workbench run" in by_name["holiday-photos"].error
    assert "half-written" in by_name["half"].error and by_name["half"].family == "sinusoid"
    assert by_name["empty"].error == "empty directory"
    assert "unknown status 'exploded'" in by_name["strange-status"].error
    good = by_name["maml-a"]
    assert good.error is None and good.readable
    assert (good.preset, good.family, good.algorithm, good.seed) == ("maml-sinusoid", "sinusoid", "maml", 0)
    assert (good.status, good.iterations, good.total_iterations, good.metric) == ("finished", 10, 10, "mse")
    assert by_name["maml-b"].seed == 1
    # final: the last evaluation's mean after the trained inner step (1), as eval.csv holds it
    last = [r for r in read_csv(root / "maml-a" / "eval.csv") if r["iteration"] == "10"]
    assert good.final == pytest.approx(float(last[1]["mean"]), rel=1e-12)
    assert good.date.tzinfo is not None
    assert abs((dt.datetime.now(dt.timezone.utc) - good.date).total_seconds()) < 3600
    assert good.sweep_id is None and not good.interrupted
    assert runs.scan_runs(root / "no-such-folder") == []


def test_scan_never_raises_on_truncated_or_binary_files(root):
    run = root / "maml-a"
    lines = (run / "metrics.csv").read_text().splitlines(keepends=True)
    (run / "metrics.csv").write_text("".join(lines[:-1]) + "10,0.01")  # the last row cut short by a crash
    (root / "maml-b" / "config.toml").write_bytes(b"\xff\xfe\x00binary")
    (root / "maml-c" / "metrics.csv").write_text("foo,bar\n1,2\n")
    by_name = {r.name: r for r in runs.scan_runs(root)}
    assert by_name["maml-a"].error is None and by_name["maml-a"].iterations == 10  # status.json says 10
    assert by_name["maml-b"].error == "config.toml: not a text file"
    assert "not a workbench metrics file" in by_name["maml-c"].error
    curves = runs.load_curves(by_name["maml-a"])
    assert list(curves.iterations) == list(range(1, 10))  # the torn row is skipped
    with pytest.raises(runs.RunError, match="unreadable run"):
        runs.load_curves(by_name["maml-b"])
    (run / "eval.csv").write_bytes(b"\x00\xff\xfe garbage")
    with pytest.raises(runs.RunError, match="not a workbench evaluation file"):
        runs.load_curves(run)


def test_sweep_folders_and_sweep_json(root):
    sweep = root / "sweep-7"
    sweep.mkdir()
    shutil.copytree(root / "maml-a", sweep / "trial-0")
    (sweep / "trial-0" / "sweep.json").write_text(json.dumps(
        {"sweep_id": "sw-7", "trial": 0, "values": {"algorithm.inner_lr": 0.01}}))
    shutil.copytree(root / "maml-b", sweep / "trial-1")
    (sweep / "trial-1" / "sweep.json").write_text("{broken")
    (sweep / "trial-2").mkdir()  # services/sweep.py writes sweep.json before the trainer starts
    (sweep / "trial-2" / "sweep.json").write_text(json.dumps({"sweep_id": "sw-7", "trial": 2, "values": {}}))
    by_name = {r.name: r for r in runs.scan_runs(root)}
    t0, t1, t2 = by_name["sweep-7/trial-0"], by_name["sweep-7/trial-1"], by_name["sweep-7/trial-2"]
    assert (t0.sweep_id, t0.trial, t0.sweep_values) == ("sw-7", 0, {"algorithm.inner_lr": 0.01})
    assert t1.error is None and t1.sweep_id is None and "sweep.json unreadable" in t1.warning
    assert "has not started" in t2.error and t2.sweep_id == "sw-7"
    runs.delete_run(t2)
    assert not (sweep / "trial-2").exists()


def test_running_status_and_a_dead_process(root):
    status_path = root / "maml-a" / "status.json"
    status = json.loads(status_path.read_text())
    status.update(status="running", pid=os.getpid(), host=socket.gethostname())
    status_path.write_text(json.dumps(status))
    info = runs.read_run(root / "maml-a")
    assert info.status == "running" and info.process_alive is True and not info.interrupted
    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait()
    status["pid"] = dead.pid
    status_path.write_text(json.dumps(status))
    info = runs.read_run(root / "maml-a")
    assert info.status == "running" and info.process_alive is False and info.interrupted
    status["host"] = "some-other-machine"
    status_path.write_text(json.dumps(status))
    assert runs.read_run(root / "maml-a").process_alive is None


# -- grouping and aggregation -------------------------------------------------------------------------
def test_runs_differing_only_in_seed_are_grouped(root):
    add_bad_runs(root)
    groups = runs.group_runs(runs.scan_runs(root))
    assert [(g.n, g.seeds) for g in groups] == [(2, [0, 1]), (1, [0])]
    pair, single = groups
    assert [r.name for r in pair.runs] == ["maml-a", "maml-b"] and single.runs[0].name == "maml-c"
    assert pair.key == runs.config_group_key(small(seed=5).to_dict()) != single.key
    assert runs.config_group_key(small(seed=0, run__threads=3).to_dict()) == pair.key  # not a hyperparameter
    assert runs.config_group_key(small(seed=0, iterations=11).to_dict()) != pair.key
    mean, half = pair.final_mean_ci95()
    finals = np.array([r.final for r in pair.runs])
    t975_1 = math.tan(0.475 * math.pi)  # Student t, 1 degree of freedom: Cauchy, tan(π(p - ½))
    assert mean == pytest.approx(finals.mean()) and half == pytest.approx(t975_1 * finals.std(ddof=1) / math.sqrt(2))


def test_aggregate_matches_numpy_on_the_csv_data(root):
    pair = runs.group_runs(runs.scan_runs(root))[0]
    curves = [runs.load_curves(r) for r in pair.runs]
    loss = np.array([[float(row["loss"]) for row in read_csv(r.path / "metrics.csv")] for r in pair.runs])
    agg = runs.aggregate(curves, "train")
    assert list(agg.x) == list(range(1, 11)) and list(agg.n) == [2] * 10
    np.testing.assert_allclose(agg.mean, loss.mean(0), rtol=1e-12)
    half = math.tan(0.475 * math.pi) * loss.std(0, ddof=1) / math.sqrt(2)  # Student t, 1 dof: Cauchy, tan(π(p - ½))
    np.testing.assert_allclose(agg.high - agg.mean, half, rtol=1e-9)
    np.testing.assert_allclose(agg.mean - agg.low, half, rtol=1e-9)
    np.testing.assert_allclose(agg.high - agg.mean, mean_ci95(loss)[1], rtol=1e-12)
    np.testing.assert_allclose(agg.min, loss.min(0)) and np.testing.assert_allclose(agg.max, loss.max(0))
    # held-out before / after adaptation, from eval.csv
    evals = [read_csv(r.path / "eval.csv") for r in pair.runs]
    before = np.array([[float(x["mean"]) for x in e if x["step"] == "0"] for e in evals])
    after = np.array([[float(x["mean"]) for x in e if x["step"] == "1"] for e in evals])
    for which, expected in (("before", before), ("after", after)):
        agg = runs.aggregate(curves, which)
        assert list(agg.x) == [0, 5, 10]
        np.testing.assert_allclose(agg.mean, expected.mean(0), rtol=1e-12)
        np.testing.assert_allclose(agg.ci95, mean_ci95(expected)[1], rtol=1e-12)
    assert curves[0].eval_mean.shape == (3, 4) and list(curves[0].eval_steps) == [0, 1, 2, 3]
    # a seed that is behind: common x stops where it stops, the union keeps going with n = 1
    curves[1].iterations, curves[1].train = curves[1].iterations[:4], curves[1].train[:4]
    assert list(runs.aggregate(curves).x) == [1, 2, 3, 4]
    union = runs.aggregate(curves, common=False)
    assert list(union.n) == [2] * 4 + [1] * 6
    np.testing.assert_allclose(union.mean[4:], loss[0, 4:])
    assert np.isnan(union.low[4:]).all()


# -- rename / delete ----------------------------------------------------------------------------------
def test_rename_and_its_refusals(root):
    add_bad_runs(root)
    a = runs.read_run(root / "maml-a", root)
    renamed = runs.rename_run(a, "seed0-baseline")
    assert renamed.path == root / "seed0-baseline" and renamed.name == "seed0-baseline" and renamed.error is None
    assert not (root / "maml-a").exists()
    bundle = json.loads((renamed.path / "status.json").read_text())["bundle"]
    assert bundle == str(root / "seed0-baseline" / "model.safetensors")  # follows the rename
    for bad, why in [("maml-b", "already exists"), ("MAML-B", "already exists"), ("../escape", "must not start"),
                     ("x/../y", "only letters"),
                     ("a/b", "only letters"), (".hidden", "must not start with"), ("", "needs a name"),
                     ("x" * 81, "at most 80"), ("with space", "only letters"), ("con", "reserved")]:
        with pytest.raises(runs.RunError, match=why):
            runs.rename_run(renamed, bad)
    with pytest.raises(runs.RunError, match="not a workbench run|neither"):
        runs.rename_run(runs.read_run(root / "holiday-photos"), "photos")
    assert (root / "holiday-photos").is_dir() and (root / "seed0-baseline").is_dir()


def test_delete_only_what_looks_like_a_run(root):
    add_bad_runs(root)
    runs.delete_run(runs.read_run(root / "maml-c"))
    assert not (root / "maml-c").exists()
    assert not [p for p in root.iterdir() if "deleting" in p.name]
    for name, why in [("holiday-photos", "neither"), ("corrupt", "neither"), ("no-such-run", "no such directory")]:
        with pytest.raises(runs.RunError, match=why):
            runs.delete_run(root / name)
    (root / "maml-b" / "sub").mkdir()
    with pytest.raises(runs.RunError, match="contains folders"):
        runs.delete_run(root / "maml-b")
    (root / "link").symlink_to(root / "maml-a")
    with pytest.raises(runs.RunError, match="symbolic link"):
        runs.delete_run(root / "link")
    # a run that is still running is refused, unless forced
    status_path = root / "maml-a" / "status.json"
    status = json.loads(status_path.read_text())
    status.update(status="running", pid=os.getpid(), host=socket.gethostname())
    status_path.write_text(json.dumps(status))
    with pytest.raises(runs.RunError, match="still running"):
        runs.delete_run(root / "maml-a")
    with pytest.raises(runs.RunError, match="still running"):
        runs.rename_run(root / "maml-a", "other")
    runs.delete_run(root / "maml-a", force=True)
    assert not (root / "maml-a").exists()
    assert (root / "half").is_dir()
    runs.delete_run(root / "half")  # half-written, but its config.toml is the workbench's
    assert not (root / "half").exists()


# -- TensorBoard --------------------------------------------------------------------------------------
# The event files are written with tensorboardX and read back here with TensorBoard's own reader.
@dataclasses.dataclass
class TensorBoardView:
    """What TensorBoard shows for one run directory (its EventAccumulator, restart purge included)."""
    scalars: dict  # tag -> [(step, value)]
    hparams: dict  # session_start_info's hparams as Python values
    group_name: str
    end_status: int | None


def tensorboard_view(run) -> TensorBoardView:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    acc = EventAccumulator(str(run))
    acc.Reload()
    scalars = {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    content = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content[tb.SESSION_START_TAG]).session_start_info
    hparams = {k: getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()}
    end = content.get(tb.SESSION_END_TAG)
    status = plugin_data_pb2.HParamsPluginData.FromString(end).session_end_info.status if end else None
    return TensorBoardView(scalars, hparams, start.group_name, status)


def read_events_strict(path):
    """Every event of one file through TensorBoard's record reader, which raises DataLossError on a torn
    record or a bad checksum."""
    pytest.importorskip("tensorboard")
    from tensorboard.compat.proto import event_pb2
    from tensorboard.compat.tensorflow_stub import errors, pywrap_tensorflow

    reader = pywrap_tensorflow.PyRecordReader_New(str(path))
    events = []
    while True:
        try:
            reader.GetNext()
        except errors.OutOfRangeError:
            return events
        events.append(event_pb2.Event.FromString(reader.record()))


def test_event_files_hold_the_scalars_and_hparams(root):
    run = root / "maml-a"
    files = tb.event_files(run)
    assert len(files) == 1 and files[0].name.startswith("events.out.tfevents.")
    events = read_events_strict(files[0])
    assert events[0].file_version == "brain.Event:2"
    got = tensorboard_view(run)
    metrics = read_csv(run / "metrics.csv")
    assert [s for s, _ in got.scalars["train/loss"]] == list(range(1, 11))
    np.testing.assert_allclose([v for _, v in got.scalars["train/loss"]], [float(r["loss"]) for r in metrics],
                               rtol=1e-6)  # stored as float32
    evals = read_csv(run / "eval.csv")
    for tag, step in (("eval/before", "0"), ("eval/after", "1")):
        assert [s for s, _ in got.scalars[tag]] == [0, 5, 10]
        np.testing.assert_allclose([v for _, v in got.scalars[tag]],
                                   [float(r["mean"]) for r in evals if r["step"] == step], rtol=1e-6)
    hp = got.hparams
    assert hp["algorithm.name"] == "maml" and hp["task.family"] == "sinusoid" and hp["run.seed"] == 0
    assert hp["algorithm.inner_lr"] == 0.01 and hp["model.hidden"] == "[40, 40]"
    assert hp["algorithm.first_order"] is False and hp["meta.name"] == "maml-sinusoid"
    assert got.group_name == runs.read_run(run).group_key
    assert got.end_status == tb.STATUS_SUCCESS


def test_tensorboard_reads_the_event_files(root):
    """The same files through TensorBoard's own reader (skipped where TensorBoard is not installed)."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    run = root / "maml-a"
    acc = EventAccumulator(str(run))
    acc.Reload()
    assert {"train/loss", "eval/before", "eval/after"} <= set(acc.Tags()["scalars"])
    loss = acc.Scalars("train/loss")
    assert [e.step for e in loss] == list(range(1, 11))
    np.testing.assert_allclose([e.value for e in loss], [float(r["loss"]) for r in read_csv(run / "metrics.csv")],
                               rtol=1e-6)
    content = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    assert start.session_start_info.hparams["algorithm.name"].string_value == "maml"
    assert start.session_start_info.hparams["run.seed"].number_value == 0
    assert start.session_start_info.group_name == runs.read_run(run).group_key
    end = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_end_info"])
    assert end.session_end_info.status == 1  # STATUS_SUCCESS


def framed_scalar_event(tmp_path, step: int, tag: str, value: float) -> bytes:
    """One scalar event as the bytes of a TFRecord (tensorboardX's framing)."""
    from tensorboardX.proto.event_pb2 import Event
    from tensorboardX.proto.summary_pb2 import Summary
    from tensorboardX.record_writer import RecordWriter

    path = tmp_path / f"scratch-{step}"
    writer = RecordWriter(str(path))
    writer.write(Event(step=step, summary=Summary(value=[Summary.Value(tag=tag, simple_value=value)]))
                 .SerializeToString())
    writer.close()
    return path.read_bytes()


def test_resume_writes_a_new_event_file_and_drops_redone_steps(tmp_path):
    run = tmp_path / "run"

    def stop_at_6(event):
        if isinstance(event, ev.IterationMetrics) and event.iteration == 6:
            part.stop()

    part = Trainer(small(), run, [stop_at_6])
    assert part.run().status == "stopped"
    # a crash after the checkpoint: steps 7 and 8 reached the event file (the CSV rows are dropped on resume)
    with open(tb.event_files(run)[0], "ab") as f:
        for step in (7, 8):
            f.write(framed_scalar_event(tmp_path, step, "train/loss", 99.0))
        f.write(b"\x05\x00\x00")  # and a torn record
    resumed = Trainer.from_run_dir(run)
    assert resumed.run().status == "finished"
    files = tb.event_files(run)
    assert len(files) == 2
    got = tensorboard_view(run)
    loss = [float(r["loss"]) for r in read_csv(run / "metrics.csv")]
    assert [s for s, _ in got.scalars["train/loss"]] == list(range(1, 11))
    np.testing.assert_allclose([v for _, v in got.scalars["train/loss"]], loss, rtol=1e-6)
    assert [s for s, _ in got.scalars["eval/after"]] == [0, 5, 10]
    assert got.end_status == tb.STATUS_SUCCESS and got.hparams["run.iterations"] == 10
    assert max(e.step for e in read_events_strict(files[0])) == 6  # the old file was cut back, torn tail too
    # the old file's own hparams session went with it: TensorBoard keeps the first one it reads
    first = read_events_strict(files[0])
    assert not any(v.metadata.plugin_data.plugin_name == "hparams" for e in first for v in e.summary.value)
    info = runs.read_run(run)
    assert (info.status, info.iterations, info.error) == ("finished", 10, None)


def test_record_framing_and_torn_files(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.compat.tensorflow_stub import errors

    with tb.EventWriter(tmp_path) as w:
        w.add_scalars(3, {"a": 1.5, "b": -2.0, "skip": "not a number"})
        w.add_scalar("a", float("nan"), 4)
        assert not w.path.exists()  # buffered until flushed
    assert w.path.name.startswith("events.out.tfevents.") and tb.event_files(tmp_path) == [w.path]
    raw = w.path.read_bytes()
    events = read_events_strict(w.path)  # every checksum right, no torn record
    assert events[1].step == 3 and {v.tag: v.simple_value for v in events[1].summary.value} == {"a": 1.5, "b": -2.0}
    assert math.isnan(events[2].summary.value[0].simple_value)
    w.path.write_bytes(raw[:-3])
    with pytest.raises(errors.DataLossError, match="truncated"):
        read_events_strict(w.path)
    tb.truncate_event_files(tmp_path, 3)  # what a resume does: the torn tail and the later steps go
    assert [e.step for e in read_events_strict(w.path)] == [0, 3]
    flipped = bytearray(raw)
    flipped[20] ^= 0xFF
    w.path.write_bytes(bytes(flipped))
    with pytest.raises(errors.DataLossError, match="crc32"):
        read_events_strict(w.path)


def test_ema_matches_tensorboards_debiased_formula():
    # TensorBoard: last = w * last + (1 - w) * v, starting at 0; shown: last / (1 - w ** n), n values so far
    w = 0.6
    values = [1.0, 3.0, 2.0, 6.0]
    lasts = [0.4 * 1.0]  # 0.4
    lasts.append(0.6 * lasts[-1] + 0.4 * 3.0)  # 1.44
    lasts.append(0.6 * lasts[-1] + 0.4 * 2.0)  # 1.664
    lasts.append(0.6 * lasts[-1] + 0.4 * 6.0)  # 3.3984
    expected = [0.4 / 0.4, 1.44 / (1 - 0.36), 1.664 / (1 - 0.216), 3.3984 / (1 - 0.1296)]
    np.testing.assert_allclose(lasts, [0.4, 1.44, 1.664, 3.3984])
    np.testing.assert_allclose(expected, [1.0, 2.25, 2.122448979591837, 3.904411764705882])
    np.testing.assert_allclose(ema_tensorboard(values, w), expected, rtol=1e-12)
    np.testing.assert_allclose(ema_tensorboard(values, 0.0), values)  # weight 0: no smoothing
    np.testing.assert_allclose(ema_tensorboard([5.0] * 4, 0.9), [5.0] * 4)  # the debiasing keeps a constant
    # non-finite values are shown as they are and leave the average alone, as in TensorBoard
    got = ema_tensorboard([1.0, float("nan"), 3.0], w)
    assert math.isnan(got[1])
    np.testing.assert_allclose(got[[0, 2]], [1.0, 2.25], rtol=1e-12)


def test_adaptation_curve_of_the_last_evaluation_and_the_bundle(root):
    pair = runs.group_runs(runs.scan_runs(root))[0]
    curves = [runs.load_curves(r) for r in pair.runs]
    evals = [read_csv(r.path / "eval.csv") for r in pair.runs]
    last = np.array([[float(x["mean"]) for x in e if x["iteration"] == "10"] for e in evals])
    x, y = curves[0].series("adaptation")
    assert list(x) == [0, 1, 2, 3]
    np.testing.assert_allclose(y, last[0], rtol=1e-12)
    agg = runs.aggregate(curves, "adaptation")
    assert list(agg.x) == [0, 1, 2, 3] and list(agg.n) == [2] * 4
    np.testing.assert_allclose(agg.mean, last.mean(0), rtol=1e-12)
    np.testing.assert_allclose(agg.ci95, mean_ci95(last)[1], rtol=1e-12)
    empty = runs.Curves(*([np.zeros(0)] * 2), "loss", {}, np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0),
                        np.zeros(0, dtype=np.int64), np.zeros((0, 0)), np.zeros((0, 0)))
    assert [len(a) for a in empty.series("adaptation")] == [0, 0]
    # the bundle: status.json's, following a moved runs folder by its name; None without one
    a = pair.runs[0]
    assert runs.run_bundle(a) == a.path / "model.safetensors"
    moved = root.parent / "moved"
    shutil.move(root, moved)
    assert runs.run_bundle(moved / a.name) == moved / a.name / "model.safetensors"
    (moved / a.name / "model.safetensors").unlink()
    assert runs.run_bundle(moved / a.name) is None


def test_student_t_quantiles_and_tensorboard_values_beyond_float32(tmp_path):
    from workbench.core.stats import t975

    exact = {1: 12.706, 10: 2.228, 11: 2.201, 16: 2.120, 31: 2.040, 40: 2.021, 99: 1.984, 1000: 1.962}
    for dof, t in exact.items():
        assert abs(t975(dof) - t) < 6e-4, dof
    assert math.isnan(t975(0))
    w = tb.EventWriter(tmp_path)
    w.add_scalars(3, {"big": 1e39, "small": -1e39, "ok": 2.5})  # a diverging float64 metric: never an error
    w.close()
    (event,) = [e for e in read_events_strict(w.path) if e.summary.value]
    scalars = {v.tag: v.simple_value for v in event.summary.value}
    assert scalars["big"] == math.inf and scalars["small"] == -math.inf and scalars["ok"] == 2.5


def test_a_torn_csv_is_a_run_error(root):
    path = root / "maml-a" / "metrics.csv"
    with path.open("a") as f:
        f.write('9999,"' + "x" * 200_000 + "\n")
    with pytest.raises(runs.RunError, match="unreadable CSV"):
        runs.load_curves(root / "maml-a")
