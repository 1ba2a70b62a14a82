"""The desktop app (PySide6 + pyqtgraph).  It renders what the engine emits and computes no metric."""
from __future__ import annotations

import os
import sys
import time

_T0 = time.perf_counter()


def launch(preset=None) -> int:
    """Open the main window (optionally with a preset) and run the event loop."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                                                   or os.environ.get("QT_QPA_PLATFORM")):
        print("workbench: error: no display to open the app on (DISPLAY is not set); run it on a desktop, "
              "under Xvfb, or use the command line: workbench --help", file=sys.stderr)
        return 2
    from .app import make_app
    from .main_window import MainWindow

    app = make_app()
    window = MainWindow(preset)
    window.show()
    if os.environ.get("WORKBENCH_STARTUP_PROBE"):  # benchmarks: report when the window is on screen, then quit
        from PySide6.QtCore import QTimer

        def report():
            print(f"window-visible {time.perf_counter() - _T0:.3f}", flush=True)
            app.quit()

        QTimer.singleShot(0, report)
    return app.exec()


def __getattr__(name):
    if name == "MainWindow":
        from .main_window import MainWindow

        return MainWindow
    raise AttributeError(name)
