"""Deleting a run never deletes the user's files: only what the workbench writes into a run folder goes, the
folder only when that leaves it empty, and nothing outside the runs folder (also through links or '..')."""
import json
import os
import socket
from pathlib import Path

import pytest

from conftest import tiny_config
from workbench.services import runs
from workbench.core.storage import atomic_write_text

WRITTEN = ["config.toml", "status.json", "metrics.csv", "eval.csv", "eval_tasks.csv", "sweep.json",
           "checkpoint.safetensors", "model.safetensors", "model.onnx", ".lock",
           "events.out.tfevents.0001700000.host.123.000001", ".status.json.k2j3h4_x.tmp",
           ".events.out.tfevents.0001700000.host.123.000001.abcd1234.tmp"]


@pytest.fixture(scope="module")
def config_text():
    return tiny_config("maml", iterations=5).to_toml()


def make_run(folder: Path, config_text: str, **status) -> Path:
    """A run folder as the recorder, trainer, exporter and sweep leave it (contents are stand-ins)."""
    folder.mkdir(parents=True)
    (folder / "config.toml").write_text(config_text)
    (folder / "status.json").write_text(json.dumps({"status": "finished", "message": "", **status}))
    (folder / "metrics.csv").write_text("iteration,elapsed,its_per_sec,loss\n1,0.1,10,0.5\n")
    (folder / "eval.csv").write_text("iteration,step,mean,ci95\n1,0,1.0,0.1\n")
    for name in WRITTEN[4:]:
        if not (folder / name).exists():
            (folder / name).write_bytes(b"x")
    return folder


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "runs"
    r.mkdir()
    return r


def hidden_leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if "deleting" in p.name]


def test_a_run_of_only_workbench_files_is_removed_with_its_folder(root, config_text):
    run = make_run(root / "r", config_text)
    assert all(runs.is_run_file(n) for n in os.listdir(run))
    assert runs.delete_run(runs.read_run(run, root)) == []
    assert not run.exists() and hidden_leftovers(root) == []


def test_foreign_files_are_kept_with_their_folder(root, config_text):
    run = make_run(root / "r", config_text)
    (run / "thesis.tex").write_text("\\documentclass{article} six months of work")
    (run / "notes.txt").write_text("keep me")
    (run / ".thesis.tex.swp").write_text("an editor's swap file")
    (run / "status.json.bak").write_text("{}")  # near a run file's name, still the user's
    (run / ".status.json.tmp").write_text("not a temp file of ours: no random part")
    kept = runs.delete_run(runs.read_run(run, root))
    expected = sorted(["thesis.tex", "notes.txt", ".thesis.tex.swp", "status.json.bak", ".status.json.tmp"])
    assert sorted(p.name for p in kept) == expected and all(p.parent == run for p in kept)
    assert sorted(os.listdir(run)) == expected  # every workbench file gone, every foreign one still there
    assert "six months" in (run / "thesis.tex").read_text()
    assert hidden_leftovers(root) == []  # the user's files were never moved into a hidden folder
    after = runs.read_run(run, root)
    assert not after.readable and "not a workbench run" in after.error


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_only_regular_files_are_removed(root, config_text):
    run = make_run(root / "r", config_text)
    (run / "model.onnx").unlink()
    os.mkfifo(run / "model.onnx")  # a run file's name, but not a file the workbench wrote
    kept = runs.delete_run(runs.read_run(run, root))
    assert [p.name for p in kept] == ["model.onnx"] and os.listdir(run) == ["model.onnx"]


def test_a_folder_outside_the_runs_folder_is_refused(root, config_text, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "status.json").write_text(json.dumps({"status": "finished"}))
    (outside / "data.bin").write_bytes(b"user data")
    before = sorted(os.listdir(outside))
    for run in (runs.read_run(root / ".." / "outside", root), root / ".." / "outside"):
        with pytest.raises(runs.RunError, match="not inside the runs folder"):
            runs.delete_run(run, root=root)
    with pytest.raises(runs.RunError, match="not inside the runs folder"):
        runs.delete_run(runs.read_run(outside, root))  # the RunInfo's root is enough
    assert sorted(os.listdir(outside)) == before
    # the runs folder itself
    make_run(root / "r", config_text)
    with pytest.raises(runs.RunError, match="runs folder .* itself|not deleted"):
        runs.delete_run(root, root=root)
    assert (root / "r").is_dir()


def test_symlink_tricks_are_refused(root, config_text, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    victim = make_run(elsewhere / "victim", config_text)
    (victim / "thesis.tex").write_text("mine")
    before = sorted(os.listdir(victim))
    # the run folder is a link to a run outside
    (root / "link").symlink_to(victim, target_is_directory=True)
    with pytest.raises(runs.RunError, match="symbolic link|not inside"):
        runs.delete_run(runs.read_run(root / "link", root))
    # a folder on the way is a link that leads outside
    (root / "sweep").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(runs.RunError, match="not inside the runs folder"):
        runs.delete_run(runs.read_run(root / "sweep" / "victim", root))
    # a run whose status.json is a link to a file outside
    run = make_run(root / "r", config_text)
    (run / "status.json").unlink()
    (run / "status.json").symlink_to(victim / "status.json")
    with pytest.raises(runs.RunError, match="symbolic link"):
        runs.delete_run(runs.read_run(run, root))
    assert sorted(os.listdir(victim)) == before and (run / "config.toml").exists()
    # a runs folder reached through a link is fine: the run is inside it
    (tmp_path / "runs-link").symlink_to(root, target_is_directory=True)
    alias = tmp_path / "runs-link"
    good = make_run(root / "good", config_text)
    assert runs.delete_run(runs.read_run(alias / "good", alias)) == [] and not good.exists()


def test_still_refuses_what_it_refused(root, config_text):
    run = make_run(root / "r", config_text, status="running", pid=os.getpid(), host=socket.gethostname())
    with pytest.raises(runs.RunError, match="still running"):
        runs.delete_run(runs.read_run(run, root))
    (run / "sub").mkdir()
    atomic_write_text(run / "status.json", json.dumps({"status": "finished"}))
    with pytest.raises(runs.RunError, match="contains folders"):
        runs.delete_run(runs.read_run(run, root))
    assert (run / "config.toml").exists()


def test_the_runs_panel_says_which_files_it_kept(qtbot, root, config_text, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    from workbench.gui.runs_panel import RunsPanel

    make_run(root / "plain", config_text)
    mixed = make_run(root / "mixed", config_text)
    (mixed / "thesis.tex").write_text("mine")
    panel = RunsPanel(root)
    qtbot.addWidget(panel)
    panel.refresh()
    asked = []
    monkeypatch.setattr(QMessageBox, "question",
                        staticmethod(lambda *a, **k: asked.append(a[2]) or QMessageBox.StandardButton.Yes))
    listed = {r.name: r for r in runs.scan_runs(root)}
    deleted = panel.delete([listed["plain"], listed["mixed"]])
    assert len(deleted) == 2 and "Files you added" in asked[0]
    assert not (root / "plain").exists() and (mixed / "thesis.tex").read_text() == "mine"
    text = panel.message.text()
    assert "mixed" in text and "thesis.tex" in text and "kept" in text
