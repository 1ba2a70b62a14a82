"""The Playground tab: it takes a model (a bundle or a run folder), shows the page of its family, finds a
pretrained baseline of the same family in the runs folder, and says why when it cannot play."""
import shutil
import time
from pathlib import Path

import pytest
from PySide6.QtWidgets import QComboBox, QWidget

from conftest import PRESETS, tiny_config
from workbench.core.config import ExperimentConfig
from workbench.services.trainer import Trainer

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture
def tab(qtbot, tmp_path):
    from workbench.gui.playground import PlaygroundTab

    t = PlaygroundTab(tmp_path / "runs")
    qtbot.addWidget(t)
    t.resize(1300, 800)
    t.show()
    yield t
    t.cancel()
    qtbot.waitUntil(lambda: not t.busy(), timeout=10_000)


def test_a_pretrained_run_of_the_family_in_the_runs_folder_is_the_baseline(tab, tmp_path):
    runs = tmp_path / "runs"
    Trainer(tiny_config("maml", iterations=20), runs / "maml-run").run()
    Trainer(tiny_config("pretrained", iterations=20), runs / "pretrained-run").run()
    shutil.copytree(DATA, runs / "not-runs")  # bundles outside run folders are not candidates
    assert tab.set_model(runs / "maml-run")  # a run folder works as well as its bundle
    assert tab.page().objectName() == "sinusoidPlayground"
    combo = tab.findChild(QComboBox, "playgroundBaselineCombo")
    assert "pretrained-run" in combo.currentText() and tab.baseline is not None
    assert tab.baseline_path == runs / "pretrained-run" / "model.safetensors"
    assert "beside the pretrained baseline" in tab.message_text()
    # choosing "none" drops it
    combo.setCurrentIndex(0)
    combo.activated.emit(0)
    assert tab.baseline is None and "No pretrained baseline" in tab.message_text()
    # a baseline of another family is refused with both families named
    assert not tab.set_baseline(DATA / "navigation-pretrained.safetensors")
    assert "navigation" in tab.message_text() and "sinusoid" in tab.message_text()


def test_rl_bundles_show_the_rl_page_and_bandits_are_refused_with_the_reason(tab, tmp_path):
    assert tab.set_model(DATA / "navigation-maml-trpo.safetensors")
    assert tab.page().objectName() == "rlPlayground"
    assert tab.set_baseline(DATA / "navigation-pretrained.safetensors")
    assert tab.baseline.algorithm == "pretrained-rl"
    cfg = ExperimentConfig.load(PRESETS / "rl2-bandits.toml", ["run.iterations=0", "run.threads=1",
                                                             "run.eval_tasks=2"])
    bandits = Trainer(cfg).export(tmp_path / "bandits.safetensors")
    assert not tab.set_model(bandits)
    assert "bandits family has no playground" in tab.message_text()
    assert tab.page().objectName() == "rlPlayground" and tab.model.meta["family"] == "navigation"  # kept
    assert tab.findChild(QWidget, "playgroundMessage").property("error") is True


def test_shutdown_while_an_adaptation_runs_returns_promptly_and_leaves_no_running_job(tab, qtbot):
    assert tab.set_model(DATA / "navigation-maml-trpo.safetensors")
    page = tab.page()
    page.trajectories = 3000  # ~10 slow steps: several seconds if it ran to the end
    page.steps_spin.setValue(10)
    assert page.start()
    qtbot.wait(300)
    assert tab.busy() and len(page.job.active) == 1  # the adaptation is running in the background
    t0 = time.monotonic()
    assert tab.shutdown()  # what the main window calls on close
    assert time.monotonic() - t0 < 3.0
    assert not tab.busy() and page.job.active == [] and page.job.jobs.active == []
    assert page.run_button.isEnabled()
