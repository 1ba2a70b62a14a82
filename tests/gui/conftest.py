import pytest


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    """The app's main window on show, with its runs folder and settings in ``tmp_path``; every background part
    stopped at the end."""
    monkeypatch.setenv("WORKBENCH_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("WORKBENCH_SETTINGS", str(tmp_path / "settings.ini"))
    from workbench.gui import MainWindow

    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    yield w
    w.runner.shutdown(10)
    w.task_maps.shutdown()
    w.playground.shutdown()
