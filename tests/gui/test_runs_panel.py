"""The Runs panel, offscreen, on real (tiny) runs next to corrupt, foreign and half-written folders."""
import csv
import dataclasses
import json
import os
import re
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QInputDialog, QLabel, QMessageBox, QPushButton

from conftest import tiny_config
from workbench.services import runs as core_runs
from workbench.core.stats import ema_tensorboard
from workbench.services.trainer import Trainer

SEEDS = ("maml-s0", "maml-s1")
OTHER = "maml-lr"
GOOD = (*SEEDS, OTHER)
BAD = ("corrupt", "foreign", "half")


def config(seed, **over):
    cfg = tiny_config("maml", iterations=30, seed=seed, eval_interval=10, checkpoint_interval=30)
    return cfg.replace([f"{k.replace('__', '.')}={v}" for k, v in over.items()]) if over else cfg


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two seeds of one config and one run with another inner_lr, trained once for the module."""
    root = tmp_path_factory.mktemp("panel-runs")
    Trainer(config(0), root / "maml-s0").run()
    Trainer(config(1), root / "maml-s1").run()
    Trainer(config(0, algorithm__inner_lr=0.02), root / OTHER).run()
    return root


@pytest.fixture
def root(trained, tmp_path):
    out = tmp_path / "runs"
    shutil.copytree(trained, out)
    (out / "corrupt").mkdir()
    (out / "corrupt" / "config.toml").write_bytes(b"[[[ garbage ]\x00 = =")
    (out / "foreign").mkdir()
    (out / "foreign" / "photo.jpg").write_bytes(os.urandom(64))
    (out / "foreign" / "notes.txt").write_text("not a run")
    (out / "half").mkdir()
    shutil.copy(out / "maml-s0" / "config.toml", out / "half" / "config.toml")  # killed before status.json
    return out


@pytest.fixture
def panel(qtbot, root):
    from workbench.gui.runs_panel import RunsPanel

    p = RunsPanel(root)
    qtbot.addWidget(p)
    p.resize(1300, 900)
    p.show()
    return p


def rows(panel):
    from workbench.gui.runs_panel import COLUMNS

    t = panel.table
    out = {}
    for i in range(t.topLevelItemCount()):
        item = t.topLevelItem(i)
        out[item.text(0)] = {c: item.text(k) for k, c in enumerate(COLUMNS)} | {"_item": item}
    return out


def legend(widget):
    return [label.text for _, label in widget.getPlotItem().legend.items]


def smoothed_curves(root, names, weight):
    curves = [core_runs.load_curves(root / n) for n in names]
    return curves, [dataclasses.replace(c, train=ema_tensorboard(c.train, weight)) for c in curves]


def data(item):
    x, y = item.getData()
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def find(panel, cls, name):
    w = panel.findChild(cls, name)
    assert w is not None, name
    return w


# -- the table -------------------------------------------------------------------------------------------
def test_table_lists_every_run_and_why_bad_ones_are_unreadable(panel, root):
    assert panel.objectName() == "runsPanel"
    from workbench.gui.elide import ElidedLabel

    for cls, name in [(ElidedLabel, "runsFolderLabel"), (QPushButton, "runsFolderButton"),
                      (QPushButton, "runsRefreshButton"),
                      (QCheckBox, "groupSeedsCheck"), (QComboBox, "bandCombo"), (QDoubleSpinBox, "runsEmaSpin"),
                      (QPushButton, "exportRunsPngButton"), (QPushButton, "exportRunsCsvButton"),
                      (QPushButton, "openRunModelButton"), (QPushButton, "renameRunButton"),
                      (QPushButton, "deleteRunButton"), (QLabel, "runsMessage")]:
        find(panel, cls, name)
    assert find(panel, ElidedLabel, "runsFolderLabel").toolTip() == str(root)
    assert panel.table.objectName() == "runsTable" and panel.table.isSortingEnabled()
    got = rows(panel)
    assert sorted(got) == sorted(GOOD + BAD)
    for name in GOOD:
        info = core_runs.read_run(root / name)
        r = got[name]
        assert (r["Preset"], r["Family"], r["Algorithm"]) == ("maml-sinusoid", "sinusoid", "maml")
        assert r["Status"] == "finished"
        assert r["Seed"] == str(info.seed) and r["Iterations"] == "30 / 30"
        assert r["Final"] == f"mse {info.final:.3g}" and info.final > 0
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", r["Date"])
        assert r["Date"] == info.date.astimezone().strftime("%Y-%m-%d %H:%M")
    assert got["maml-s1"]["Seed"] == "1"
    reasons = {"corrupt": "malformed TOML", "foreign": "not a workbench run", "half": "half-written"}
    for name, why in reasons.items():
        r = got[name]
        assert r["Status"] == "unreadable" and why in r["Final"] and why in r["_item"].toolTip(0)
        assert r["_item"].foreground(0).color().name() == "#7d808a"  # greyed
    # selecting an unreadable run draws nothing and says why
    panel.select_runs([root / "corrupt"])
    assert panel.series == [] and "malformed TOML" in panel.message.text()
    assert not legend(panel.meta_plot)
    # the table sorts numbers as numbers
    panel.table.sortByColumn(4, Qt.SortOrder.AscendingOrder)
    seeds = [panel.table.topLevelItem(i).text(4) for i in range(panel.table.topLevelItemCount())]
    assert seeds[:4] == ["0", "0", "0", "1"]


def test_interrupted_sweep_and_missing_folder(qtbot, panel, root, tmp_path):
    status_path = root / "maml-s1" / "status.json"
    status = json.loads(status_path.read_text())
    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait()
    status.update(status="running", pid=dead.pid, host=socket.gethostname())
    status_path.write_text(json.dumps(status))
    (root / OTHER / "sweep.json").write_text(json.dumps({"sweep_id": "sw-1", "trial": "0-seed0", "values": {}}))
    (root / "maml-s0" / "sweep.json").write_text(json.dumps({"sweep_id": "sw-1", "trial": "1-seed0", "values": {}}))
    panel.refresh()
    got = rows(panel)
    assert got["maml-s1"]["Status"] == "interrupted"
    assert "process that wrote it is gone" in got["maml-s1"]["_item"].toolTip(0)
    assert got[OTHER]["Sweep"] == "sw-1" and "sweep sw-1" in got[OTHER]["_item"].toolTip(0)
    panel.group_check.setChecked(False)
    panel.show_sweep("sw-1")
    assert sorted(r.name for r in panel.selected_runs()) == ["maml-lr", "maml-s0"]
    assert panel.group_check.isChecked() and len(panel.series) == 2
    panel.show_sweep("no-such-sweep")
    assert panel.selected_runs() == [] and "no runs of sweep no-such-sweep" in panel.message.text()
    # a folder that is not there: an empty list and a message, no exception
    missing = tmp_path / "nowhere"
    panel.set_runs_dir(missing)
    assert panel.table.topLevelItemCount() == 0 and panel.message.text() == f"no runs yet in {missing}"
    assert panel.poll() is False
    missing.mkdir()
    shutil.copytree(root / "maml-s0", missing / "new-run")
    assert panel.poll() is True and [r.name for r in panel.runs()] == ["new-run"]


def test_auto_refresh_only_rereads_a_changed_folder_and_keeps_the_selection(panel, root):
    assert panel._timer.isActive() and panel._timer.interval() <= 5000
    panel.select_runs([root / n for n in SEEDS])
    assert panel.poll() is False  # nothing changed
    shutil.copytree(root / OTHER, root / "maml-copy")
    assert panel.poll() is True
    assert "maml-copy" in rows(panel)
    assert sorted(r.name for r in panel.selected_runs()) == sorted(SEEDS)
    assert panel.poll() is False
    # a running run's CSV growing (the folder's mtime does not change) is noticed
    status_path = root / OTHER / "status.json"
    status = json.loads(status_path.read_text())
    status.update(status="running", pid=os.getpid(), host=socket.gethostname())
    status_path.write_text(json.dumps(status))
    assert panel.poll() is True and rows(panel)[OTHER]["Status"] == "running"
    with open(root / OTHER / "metrics.csv", "a") as f:
        f.write("31,0.1,10.0," + ",".join(["1.0"] * (len(open(root / OTHER / "metrics.csv").readline().split(",")) - 3))
                + "\n")
    assert panel.poll() is True and rows(panel)[OTHER]["Iterations"] == "31 / 30"
    panel.hide()
    assert not panel._timer.isActive()


# -- plots -----------------------------------------------------------------------------------------------
def test_seeds_are_grouped_with_a_ci_band_and_min_max(panel, root):
    from workbench.gui.runs_panel import BANDS

    panel.log_check.setChecked(False)  # compare drawn values in the data's own units
    panel.select_runs([root / n for n in GOOD])
    assert len(panel.series) == 2
    for plot in (panel.meta_plot, panel.adaptation_plot):
        assert sorted(legend(plot)) == sorted(["maml-sinusoid (n=2 seeds)", OTHER])
    group, single = sorted(panel.series, key=lambda s: not s.grouped)
    assert group.color != single.color and [r.name for r in group.runs] == list(SEEDS)
    assert "1 group of seeds" in panel.message.text()
    weight = panel.ema_spin.value()
    assert weight == pytest.approx(0.6)
    curves, smoothed = smoothed_curves(root, SEEDS, weight)
    # meta-loss: the mean of the smoothed seeds and a band of the 95% CI of that mean
    agg = core_runs.aggregate(smoothed, "train")
    line, fill = panel.meta_items[group.label]
    x, y = data(line)
    np.testing.assert_allclose(x, agg.x)
    np.testing.assert_allclose(y, agg.mean, rtol=1e-12)
    (_, lo), (_, hi) = data(fill.curves[0]), data(fill.curves[1])
    np.testing.assert_allclose(hi - y, agg.ci95, rtol=1e-9)
    np.testing.assert_allclose(y - lo, agg.ci95, rtol=1e-9)
    assert panel.meta_items[OTHER][1] is None  # a single run has no band
    # adaptation: mean and CI over seeds of the held-out curve at the last evaluation (not smoothed)
    ad = core_runs.aggregate(curves, "adaptation")
    line, fill = panel.adaptation_items[group.label]
    x, y = data(line)
    assert list(x) == [0, 1, 2, 3]
    np.testing.assert_allclose(y, ad.mean, rtol=1e-12)
    np.testing.assert_allclose(data(fill.curves[1])[1] - y, ad.ci95, rtol=1e-9)
    # min-max instead
    panel.band_combo.setCurrentText(BANDS[1])
    _, fill = panel.meta_items[group.label]
    np.testing.assert_allclose(data(fill.curves[0])[1], agg.min)
    np.testing.assert_allclose(data(fill.curves[1])[1], agg.max)
    _, fill = panel.adaptation_items[group.label]
    np.testing.assert_allclose(data(fill.curves[0])[1], ad.min)
    np.testing.assert_allclose(data(fill.curves[1])[1], ad.max)
    # ungrouped: one line per run, named by the run
    panel.group_check.setChecked(False)
    assert sorted(legend(panel.meta_plot)) == sorted(GOOD) and sorted(legend(panel.adaptation_plot)) == sorted(GOOD)
    assert len({s.color for s in panel.series}) == 3 and all(fill is None for _, fill in panel.meta_items.values())
    # the log axis draws the same data (the band cut where it would reach zero)
    panel.group_check.setChecked(True)
    panel.log_check.setChecked(True)
    line, fill = panel.meta_items[group.label]
    np.testing.assert_allclose(data(line)[1], np.log10(agg.mean), rtol=1e-9)
    assert np.isfinite(data(fill.curves[0])[1]).all()


def test_ema_smooths_each_run_before_averaging_and_0_is_raw(panel, root):
    panel.log_check.setChecked(False)
    panel.select_runs([root / n for n in GOOD])
    raw = core_runs.load_curves(root / OTHER)
    adaptation_before = data(panel.adaptation_items[OTHER][0])[1]
    for weight in (0.9, 0.0, 0.6):
        panel.ema_spin.setValue(weight)
        np.testing.assert_allclose(data(panel.meta_items[OTHER][0])[1], ema_tensorboard(raw.train, weight), rtol=1e-12)
        _, smoothed = smoothed_curves(root, SEEDS, weight)
        np.testing.assert_allclose(data(panel.meta_items["maml-sinusoid (n=2 seeds)"][0])[1],
                                   core_runs.aggregate(smoothed, "train").mean, rtol=1e-12)
        np.testing.assert_allclose(data(panel.adaptation_items[OTHER][0])[1], adaptation_before)  # not smoothed
    panel.ema_spin.setValue(0.0)
    np.testing.assert_allclose(data(panel.meta_items[OTHER][0])[1], raw.train)


def test_mixed_metrics_plot_only_the_first_metric(panel, root):
    shutil.copytree(root / OTHER, root / "rl-like")
    status_path = root / "rl-like" / "status.json"
    status = json.loads(status_path.read_text())
    status["last_eval"]["metric"] = "return"
    status_path.write_text(json.dumps(status))
    panel.refresh()
    panel.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)  # "first": in the table's order
    panel.select_runs([root / "rl-like", root / "maml-s0"])
    assert [s.label for s in panel.series] == ["maml-s0"]
    assert "mixes metrics" in panel.message.text() and "rl-like" in panel.message.text()
    assert panel.log_check.isChecked()
    panel.select_runs([root / "rl-like"])
    assert not panel.log_check.isChecked()  # a return: linear axis
    assert panel.adaptation_plot.getPlotItem().getAxis("left").labelText == "held-out return"


def test_export_writes_png_and_the_drawn_data_as_csv(panel, root, tmp_path):
    panel.select_runs([root / n for n in GOOD])
    out = tmp_path / "export"
    written = panel.export(out)
    assert sorted(p.name for p in written) == ["runs_adaptation.csv", "runs_adaptation.png", "runs_meta_loss.csv",
                                               "runs_meta_loss.png"]
    for p in written:
        assert p.stat().st_size > 0
    assert (out / "runs_meta_loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    meta = read_csv(out / "runs_meta_loss.csv")
    group = "maml-sinusoid (n=2 seeds)"
    assert sorted(r["series"] for r in meta) == sorted([group] * 30 + [OTHER] * 30)
    curves, smoothed = smoothed_curves(root, SEEDS, 0.6)
    raw, sm = core_runs.aggregate(curves, "train"), core_runs.aggregate(smoothed, "train")
    rows_g = [r for r in meta if r["series"] == group]
    assert [int(r["iteration"]) for r in rows_g] == list(range(1, 31)) and {r["n"] for r in rows_g} == {"2"}
    assert {r["band"] for r in rows_g} == {"ci95"} and {r["metric"] for r in meta} == {"loss"}
    for col, expected in (("mean", raw.mean), ("low", raw.low), ("high", raw.high), ("mean_smoothed", sm.mean),
                          ("low_smoothed", sm.low), ("high_smoothed", sm.high)):
        np.testing.assert_allclose([float(r[col]) for r in rows_g], expected, rtol=1e-12)
    single = [r for r in meta if r["series"] == OTHER]
    assert {r["low"] for r in single} == {""} and {r["n"] for r in single} == {"1"}
    np.testing.assert_allclose([float(r["mean"]) for r in single], core_runs.load_curves(root / OTHER).train)
    adapt = read_csv(out / "runs_adaptation.csv")
    expected = sorted((s, str(k)) for s in (group, OTHER) for k in range(4))
    assert sorted((r["series"], r["inner_step"]) for r in adapt) == expected
    ad = core_runs.aggregate(curves, "adaptation")
    np.testing.assert_allclose([float(r["high"]) for r in adapt if r["series"] == group], ad.high, rtol=1e-12)
    assert {r["metric"] for r in adapt} == {"mse"}
    # CSV only, min-max band
    panel.band_combo.setCurrentIndex(1)
    only = panel.export(tmp_path / "csv-only", png=False)
    assert sorted(p.name for p in only) == ["runs_adaptation.csv", "runs_meta_loss.csv"]
    rows_mm = [r for r in read_csv(tmp_path / "csv-only" / "runs_meta_loss.csv") if r["series"] == group]
    assert {r["band"] for r in rows_mm} == {"min-max"}
    np.testing.assert_allclose([float(r["low"]) for r in rows_mm], raw.min)


# -- open, rename, delete --------------------------------------------------------------------------------
def test_open_model_emits_the_bundle_path(qtbot, panel, root):
    button = find(panel, QPushButton, "openRunModelButton")
    panel.select_runs([root / "maml-s0"])
    assert button.isEnabled()
    with qtbot.waitSignal(panel.openModelRequested, timeout=1000) as sig:
        button.click()
    assert sig.args == [str(root / "maml-s0" / "model.safetensors")]
    panel.select_runs([root / n for n in SEEDS])
    assert not button.isEnabled()
    panel.select_runs([root / "half"])
    assert not button.isEnabled()
    (root / OTHER / "model.safetensors").unlink()
    panel.select_runs([root / OTHER])
    assert not button.isEnabled() and "no model bundle" in button.toolTip()


def test_rename_with_a_good_and_a_bad_name(panel, root, monkeypatch):
    answers = iter([("seed0-baseline", True), ("bad name", True), ("maml-s1", True), ("whatever", False)])
    monkeypatch.setattr(QInputDialog, "getText", staticmethod(lambda *a, **k: next(answers)))
    button = find(panel, QPushButton, "renameRunButton")
    panel.select_runs([root / "maml-s0"])
    button.click()
    assert not (root / "maml-s0").exists() and (root / "seed0-baseline" / "config.toml").is_file()
    assert [r.name for r in panel.selected_runs()] == ["seed0-baseline"] and "seed0-baseline" in rows(panel)
    assert "maml-s0" not in rows(panel)
    button.click()
    assert "only letters" in panel.message.text() and (root / "seed0-baseline").is_dir()
    button.click()
    assert "already exists" in panel.message.text()
    button.click()  # cancelled
    assert sorted(p.name for p in root.iterdir()) == sorted(["seed0-baseline", "maml-s1", OTHER, *BAD])
    panel.select_runs([root / n for n in SEEDS[1:] + (OTHER,)])
    assert not button.isEnabled()  # one run at a time


def test_delete_asks_first_and_refuses_running_runs(panel, root, monkeypatch):
    asked = []
    answer = [QMessageBox.StandardButton.No]

    def question(parent, title, text, *args, **kwargs):
        asked.append(text)
        return answer[0]

    monkeypatch.setattr(QMessageBox, "question", staticmethod(question))
    button = find(panel, QPushButton, "deleteRunButton")
    panel.select_runs([root / OTHER, root / "half"])
    button.click()
    assert len(asked) == 1 and OTHER in asked[0] and "half" in asked[0]
    assert (root / OTHER).is_dir() and (root / "half").is_dir() and "nothing deleted" in panel.message.text()
    answer[0] = QMessageBox.StandardButton.Yes
    button.click()
    assert not (root / OTHER).exists() and not (root / "half").exists()
    assert OTHER not in rows(panel) and "deleted 2 runs" in panel.message.text()
    # a foreign folder is refused with the reason
    panel.select_runs([root / "foreign"])
    button.click()
    assert (root / "foreign").is_dir() and "not deleted" in panel.message.text()
    # a run still running: refused without asking
    status_path = root / "maml-s0" / "status.json"
    status = json.loads(status_path.read_text())
    status.update(status="running", pid=os.getpid(), host=socket.gethostname())
    status_path.write_text(json.dumps(status))
    panel.refresh()
    asked.clear()
    panel.select_runs([root / "maml-s0"])
    button.click()
    assert asked == [] and (root / "maml-s0").is_dir() and "still running" in panel.message.text()
    # a run that says running but whose process cannot be checked here (another machine): deleted only after a
    # confirmation that says so
    status.update(status="running", pid=12345, host="some-other-host")
    status_path.write_text(json.dumps(status))
    panel.refresh()
    asked.clear()
    panel.select_runs([root / "maml-s0"])
    button.click()
    assert len(asked) == 1 and "cannot be checked" in asked[0] and not (root / "maml-s0").exists()



def test_groups_of_one_preset_are_told_apart_by_their_settings(panel, root):
    twin = root / "maml-lr-s1"
    shutil.copytree(root / OTHER, twin)
    text = (twin / "config.toml").read_text()
    assert "seed = 0" in text
    (twin / "config.toml").write_text(text.replace("seed = 0", "seed = 1"))
    panel.refresh()
    panel.select_runs([root / n for n in (*GOOD, "maml-lr-s1")])
    assert sorted(legend(panel.meta_plot)) == ["maml-sinusoid inner_lr=0.01 (n=2 seeds)",
                                               "maml-sinusoid inner_lr=0.02 (n=2 seeds)"]


def test_a_corrupt_csv_is_a_message_and_a_failed_png_write_is_an_error(panel, root, tmp_path):
    metrics = root / "maml-s1" / "metrics.csv"
    with metrics.open("a") as f:  # a torn last row: an unclosed quote running past csv's field limit
        f.write('9999,"' + "x" * 200_000 + "\n")
    panel.refresh()
    panel.select_runs([root / "maml-s1"])
    assert "unreadable CSV" in panel.message.text()
    blocked = tmp_path / "export"
    blocked.mkdir()
    (blocked / "runs_meta_loss.png").mkdir()  # a folder where the PNG should go: it cannot be written
    panel.select_runs([root / "maml-s0"])
    with pytest.raises(OSError):
        from workbench.gui.plots import export_plot_item
        export_plot_item(panel.meta_plot.getPlotItem(), blocked / "runs_meta_loss.png", None)
    assert not list(blocked.glob(".*tmp*"))  # no temporary file left behind


# -- a page of its own: the table first, nothing cut, nothing widened ------------------------------------
def fully_visible_rows(table):
    height = table.viewport().height()
    rects = [table.visualItemRect(table.topLevelItem(i)) for i in range(table.topLevelItemCount())]
    return sum(r.height() > 0 and r.top() >= 0 and r.bottom() < height for r in rects)


def header_inside(table, column):
    header = table.header()
    left = header.sectionViewportPosition(column)
    return left >= 0 and left + header.sectionSize(column) <= table.viewport().width() \
        and header.sectionSize(column) >= header.sectionSizeHint(column)


def test_the_table_is_the_page_and_long_names_do_not_widen_it(qtbot, panel, root, tmp_path):
    from workbench.gui.runs_panel import COLUMNS

    final = COLUMNS.index("Final")
    long_name = "n" * 190
    for i in range(5):
        shutil.copytree(root / "maml-s0", root / f"copy-{i}")
    shutil.copytree(root / OTHER, root / long_name)
    cfg = root / long_name / "config.toml"
    cfg.write_text(re.sub(r'(?m)^name = ".*"$', 'name = "' + "p" * 190 + '"', cfg.read_text(), count=1))
    panel.refresh()
    assert rows(panel)[long_name]["Preset"] == "p" * 190 and panel.table.topLevelItemCount() == 12
    for size in ((1380, 800), (1000, 680)):
        panel.resize(*size)
        qtbot.waitUntil(lambda: panel.table.viewport().width() > size[0] - 80, timeout=1000)
        assert fully_visible_rows(panel.table) >= 10, size
        assert all(header_inside(panel.table, c) for c in range(final + 1)), size  # Name … Final, none cut
    assert panel.minimumSizeHint().width() <= 640  # usable far below 1000 px
    # a long selection, a long message and a long folder path: the page asks for no more width
    panel.select_runs([root / long_name, root / "maml-s0"])
    assert sorted(len(label) for label in legend(panel.meta_plot)) == [7, 40]  # a long name is shortened
    panel.actions.say(f"{long_name}: not renamed", warn=True)
    deep = tmp_path / ("d" * 190) / ("e" * 40)
    panel.folder_bar.set_folder(str(deep))
    assert panel.folder_label.toolTip() == str(deep) and panel.message.text().startswith(long_name)
    assert panel.minimumSizeHint().width() <= 640
    # the plot controls wrap onto a second line rather than widening a narrow page
    panel.resize(panel.minimumSizeHint().width(), 680)
    qtbot.waitUntil(lambda: panel.export_csv_button.y() > panel.group_check.geometry().bottom(), timeout=1000)
    panel.resize(1000, 680)
    qtbot.waitUntil(lambda: panel.export_csv_button.y() < panel.group_check.geometry().bottom(), timeout=1000)
    assert panel.export_csv_button.geometry().right() <= panel.comparison.width()  # pushed to the right, not cut
    panel.shutdown()
    assert not panel._timer.isActive()


def test_columns_fit_the_width_and_a_dragged_column_keeps_its_width(qtbot, panel):
    from workbench.gui.runs_table import fit_widths

    assert fit_widths([100, 50, 80], [40, 50, 60], 400, elastic=(0, 2)) == [100, 50, 80]
    assert fit_widths([100, 50, 80], [40, 50, 60], 170, elastic=(0, 2)) == [55, 50, 65]  # 60 px: 3 to 1
    shrunk = fit_widths([300, 50, 200], [100, 50, 100], 300, elastic=(0, 2))
    assert sum(shrunk) == 300 and shrunk[1] == 50 and shrunk[0] > shrunk[2] >= 100  # in proportion to their room
    assert fit_widths([300, 50], [100, 50], 10, elastic=(0,)) == [100, 50]  # never below the minimum
    header = panel.table.header()
    header.resizeSection(1, 333)  # the user drags the Preset column
    panel.resize(1100, 700)
    qtbot.waitUntil(lambda: panel.table.viewport().width() > 1000, timeout=1000)
    assert header.sectionSize(1) == 333
