"""The run directory's one owner (services/rundir.py): fresh names under races, atomic status.json, the CSV
schemas the recorder writes, and no other module spelling the run folder's file names."""
import ast
import csv
import datetime as dt
import errno
import json
import re
import threading
from pathlib import Path

import numpy as np
import pytest

from conftest import tiny_config
from workbench.core import events as ev
from workbench.core.errors import ConfigError
from workbench.services import rundir
from workbench.services.recorder import RunRecorder

REPO = Path(__file__).resolve().parents[1]


# -- new_run_dir ----------------------------------------------------------------------------------------
def test_new_run_dir_takes_the_first_free_name_and_touches_nothing_that_exists(tmp_path):
    runs = tmp_path / "runs" / "deeper"  # created with its parents
    first = rundir.new_run_dir(runs, "maml")
    assert first == runs / "maml" and first.is_dir() and not any(first.iterdir())
    (first / "config.toml").write_text("mine")
    (runs / "maml-2").write_text("a file, not a folder")  # a file of that name is not overwritten either
    (runs / "maml-3").mkdir()
    (runs / "maml-3" / "notes.txt").write_text("keep")
    fourth = rundir.new_run_dir(runs, "maml")
    assert fourth == runs / "maml-4" and not any(fourth.iterdir())
    assert (first / "config.toml").read_text() == "mine"
    assert (runs / "maml-2").read_text() == "a file, not a folder"
    assert (runs / "maml-3" / "notes.txt").read_text() == "keep"
    assert rundir.new_run_dir(runs, "maml") == runs / "maml-5"


def test_new_run_dir_racing_threads_each_get_their_own_folder(tmp_path):
    n = 24
    barrier = threading.Barrier(n)
    got, errors = [], []

    def take():
        try:
            barrier.wait(timeout=10)
            got.append(rundir.new_run_dir(tmp_path, "race"))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=take) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    assert len(got) == n and len(set(got)) == n  # no folder handed out twice
    assert {p.name for p in got} == {"race", *(f"race-{i}" for i in range(2, n + 1))}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in got)


@pytest.mark.parametrize("name", ["a/b", "..", "", ".hidden", "with space", "x" * 81, "trailing-"])
def test_new_run_dir_refuses_a_name_that_is_not_one_safe_folder_name(tmp_path, name):
    with pytest.raises(ConfigError, match="run name"):
        rundir.new_run_dir(tmp_path, name)
    assert not any(tmp_path.iterdir())


def test_new_run_dir_in_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "runs").write_text("not a folder")
    with pytest.raises(ConfigError, match="exists and is not a folder"):
        rundir.new_run_dir(tmp_path / "runs", "maml")


def test_default_run_names_are_safe_and_fit_a_rename():
    from workbench.services.runs import check_run_name

    when = dt.datetime(2026, 1, 2, 3, 4, 5)
    assert rundir.default_run_name("maml-sinusoid", when) == "maml-sinusoid-20260102-030405"
    assert rundir.default_run_name("my preset/../x", when) == "my-preset-..-x-20260102-030405"
    long = rundir.default_run_name("y" * 70 + "-z" * 20, when)
    assert len(long) <= rundir.MAX_NAME and long.endswith("-20260102-030405")
    for name in (long, rundir.default_run_name("///", when)):
        assert check_run_name(name) == name == rundir.safe_run_name(name)


def test_the_old_import_places_still_work():
    """The app imports these from their old modules; they are rundir's."""
    from workbench.services import paths, recorder, runs, trainer

    assert paths.safe_run_name is rundir.safe_run_name
    assert recorder.read_status is rundir.read_status and recorder.update_status is rundir.update_status
    assert runs.is_run_file is rundir.is_run_file
    assert trainer.remove_stale_temporaries is rundir.remove_stale_temporaries
    for name in ("CONFIG", "STATUS", "METRICS", "EVAL", "EVAL_TASKS", "SWEEP", "BUNDLE", "CHECKPOINT", "ONNX",
                 "RUN_FILES", "EVENT_FILE_PREFIX", "METRICS_HEADER", "EVAL_HEADER", "STATUSES"):
        assert getattr(runs, name) == getattr(rundir, name), name


# -- status.json ----------------------------------------------------------------------------------------
def test_status_round_trip_and_checked_reading(tmp_path):
    assert rundir.read_status(tmp_path) == {}
    assert rundir.status_or_error(tmp_path)[1].startswith("status.json: cannot read")
    rundir.write_status(tmp_path, {"status": "running", "message": "", "pid": 7})
    rundir.update_status(tmp_path, status="failed", message="disk full")
    data = json.loads((tmp_path / rundir.STATUS).read_text())
    assert data == {"status": "failed", "message": "disk full", "pid": 7}
    assert rundir.status_or_error(tmp_path) == (data, None)
    for text, why in (("{garbage", "not valid JSON"), ("[1]", "no status in it"),
                      ('{"status": "dancing"}', "unknown status 'dancing'")):
        (tmp_path / rundir.STATUS).write_text(text)
        assert rundir.status_or_error(tmp_path) == ({}, f"status.json: {why}")
    assert rundir.read_status(tmp_path) == {"status": "dancing"}  # the lenient reader: any JSON object


def test_status_writes_are_atomic(tmp_path, monkeypatch):
    rundir.write_status(tmp_path, {"status": "running", "n": 0})
    # readers never see a half-written file while it is rewritten over and over
    stop = threading.Event()
    seen = []

    def read():
        while not stop.is_set():
            seen.append(rundir.read_status(tmp_path).get("n"))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(1, 150):
            rundir.write_status(tmp_path, {"status": "running", "n": i, "pad": "x" * 20_000}, durable=False)
    finally:
        stop.set()
        reader.join()
    assert seen and None not in seen
    # a write that fails before the rename leaves the old file whole, and no temporary behind
    import os

    def broken_replace(src, dst):
        raise OSError(errno.EIO, "input/output error")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError) as info:
        rundir.write_status(tmp_path, {"status": "finished"})
    assert info.value.filename == str(tmp_path / rundir.STATUS)
    assert rundir.read_status(tmp_path)["n"] == 149
    assert [p.name for p in tmp_path.iterdir()] == [rundir.STATUS]


def test_status_on_a_full_disk_is_overwritten_in_place(tmp_path, monkeypatch):
    rundir.write_status(tmp_path, {"status": "running", "message": "x" * 100})

    def full(path, text, durable=True):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(rundir, "atomic_write_text", full)
    rundir.write_status(tmp_path, {"status": "failed", "message": "the disk is full"})
    assert rundir.read_status(tmp_path) == {"status": "failed", "message": "the disk is full"}


# -- the CSV schemas are what the recorder writes -----------------------------------------------------------
def test_schemas_are_the_recorders_headers(tmp_path):
    run = tmp_path / "run"
    rec = RunRecorder(run, tensorboard=False)
    rec.start(tiny_config("maml", 2))
    rec(ev.IterationMetrics(1, {"loss": 0.5, "grad_norm": 2.0}, 0.1, 10.0))
    per_task = np.array([[1.0, 0.5], [2.0, 0.25]])
    rec(ev.Evaluation(1, "mse", [0, 1], per_task, per_task.mean(0), np.zeros(2)))
    rec(ev.RunFinished("finished", 1, None, ""))

    def header(name):
        with open(run / name, newline="") as f:
            return next(csv.reader(f))

    assert header(rundir.METRICS) == rundir.metrics_columns(["grad_norm", "loss"])
    assert header(rundir.METRICS)[:3] == rundir.METRICS_HEADER == ["iteration", "elapsed", "its_per_sec"]
    assert header(rundir.EVAL) == rundir.EVAL_HEADER == ["iteration", "step", "mean", "ci95"]
    assert header(rundir.EVAL_TASKS) == rundir.eval_tasks_columns("mse") == ["iteration", "task", "step", "mse"]
    assert rundir.status_or_error(run)[0]["status"] == "finished"
    names = sorted(p.name for p in run.iterdir())
    assert names == sorted([rundir.CONFIG, rundir.STATUS, *rundir.CSV_FILES])
    assert all(rundir.is_run_file(n) for n in names)


# -- one owner: nobody else spells the names ---------------------------------------------------------------
def _string_constants(path: Path):
    """(line, text) of every string constant of a module except docstrings (f-string parts included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.lineno, node.value


def _names_a_run_file(text: str) -> bool:
    """A literal that names a run folder's file: the name itself, a path ending in it ("/status.json"), or an
    event file's name or pattern.  (Prose that mentions a file, "... status.json says ...", is not a name.)"""
    if rundir.EVENT_FILE_MARK in text and " " not in text:
        return True
    return any(re.search(rf"(^|[/\\]){re.escape(n)}$", text) for n in rundir.RUN_FILES)


def test_no_module_but_rundir_spells_the_run_folders_file_names():
    assert _names_a_run_file("status.json") and _names_a_run_file("/model.safetensors")
    assert _names_a_run_file("events.out.tfevents.") and _names_a_run_file("*tfevents*")
    assert not _names_a_run_file("status.json says running") and not _names_a_run_file("my.lock")
    modules = [p for p in sorted((REPO / "workbench" / "services").glob("*.py")) if p.name != "rundir.py"]
    modules.append(REPO / "workbench" / "cli.py")
    found = [f"{p.relative_to(REPO)}:{line}: {text!r}" for p in modules for line, text in _string_constants(p)
             if _names_a_run_file(text)]
    assert not found, "run-folder file names spelled outside services/rundir.py:\n" + "\n".join(found)
