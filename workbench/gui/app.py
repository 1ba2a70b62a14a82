"""The QApplication: name, icon, stylesheet, and a CPU core left free for the GUI thread."""
from __future__ import annotations

import os
import sys

from PySide6.QtCore import QLocale
from PySide6.QtWidgets import QApplication

from .resources import app_icon, stylesheet


def make_app() -> QApplication:
    app = QApplication.instance()
    if app is None:
        app = QApplication(sys.argv[:1])
    app.setApplicationName("Meta-Learning Workbench")
    app.setOrganizationName("workbench")
    app.setApplicationDisplayName("Meta-Learning Workbench")
    app.setWindowIcon(app_icon())
    # numbers read and written with a decimal point in every field of the app, whatever the desktop's locale
    # (a decimal-comma locale made "0.5" typed into a field 5.0): as presets and the command line write them
    from .forms import NUMBERS

    QLocale.setDefault(NUMBERS)
    app.setStyle("Fusion")
    app.setStyleSheet(stylesheet())
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
    return app
